import type { Task } from '@aws-sdk/client-ecs';
import {
  ApiCallError,
  type Clock,
  ConfigurationError,
  InvalidArgumentError,
  JobFailedError,
  type ProviderCallOptions,
  type ProviderHealth,
  type ProviderJobEvent,
  type ProviderJobRequest,
  type RemoteJobRef,
  type WorkflowRequirements,
} from '@comfy-serverless/core';
import type { EcsCalls } from './ecs-calls';
import type { ComfyAccess } from './ecs-comfy-access';
import { isTaskServing, type ResolveTaskUrl } from './ecs-task';
import { watchPromptOnTask } from './ecs-watch-prompt';

/** One task of the service that takes jobs. */
export interface EcsServiceMember {
  taskArn: string;
  /** ComfyUI's base URL in the task. */
  url: string;
}

/** What service mode needs from the provider. */
export interface ServiceModeContext {
  providerId: string;
  service: string;
  calls: EcsCalls;
  access: ComfyAccess;
  clock: Clock;
  port: number;
  resolveTaskUrl: ResolveTaskUrl;
  /** How long a membership reading is used before ECS is asked again. */
  membershipTtlMs: number;
}

/** The journalled part of a service-mode job. */
interface ServiceRefData {
  mode: 'service';
  taskArn: string;
  server: string;
  clientId: string;
  submittedAt?: number;
}

function readServiceRef(ref: RemoteJobRef): ServiceRefData & { promptId: string } {
  const data = ref?.data as Partial<ServiceRefData> | undefined;
  if (
    typeof ref?.remoteId !== 'string' ||
    data?.mode !== 'service' ||
    typeof data.taskArn !== 'string' ||
    typeof data.server !== 'string' ||
    typeof data.clientId !== 'string'
  ) {
    throw new InvalidArgumentError({
      argument: 'ref',
      message:
        'This reference was not made by an ECS provider in service mode: it needs remoteId and data.mode, data.taskArn, data.server, data.clientId.',
    });
  }
  return { ...(data as ServiceRefData), promptId: ref.remoteId };
}

function isConnectionFailure(error: unknown): boolean {
  return ApiCallError.isInstance(error) && error.statusCode === undefined;
}

/**
 * Service mode: the RUNNING tasks of an ECS service form a pool of ComfyUI servers. The
 * membership comes from ListTasks and DescribeTasks, is read again after
 * `membershipTtlMs` and after a connection error; only tasks RUNNING and meant to stay
 * running take new jobs (a draining task keeps its running jobs, which are watched at the
 * address their reference names, to the end). Each job is bound to one task.
 */
export function createServiceMode(context: ServiceModeContext) {
  const { calls, access, clock, providerId, service } = context;
  let membership: { members: EcsServiceMember[]; readAt: number } | undefined;
  let reading: Promise<EcsServiceMember[]> | undefined;

  const readMembers = async (signal?: AbortSignal): Promise<EcsServiceMember[]> => {
    const arns = await calls.listTasks({ serviceName: service, desiredStatus: 'RUNNING' }, signal);
    const { tasks } =
      arns.length === 0 ? { tasks: [] as Task[] } : await calls.describeTasks(arns, signal ? { signal } : {});
    const members: EcsServiceMember[] = [];
    for (const task of tasks) {
      if (!isTaskServing(task) || task.taskArn === undefined || task.healthStatus === 'UNHEALTHY') continue;
      try {
        members.push({
          taskArn: task.taskArn,
          url: await context.resolveTaskUrl(task, { port: context.port }),
        });
      } catch {
        // A task without an address yet (its ENI is still attaching) joins on the next reading.
      }
    }
    members.sort((a, b) => a.taskArn.localeCompare(b.taskArn));
    membership = { members, readAt: clock.now() };
    return members;
  };

  const members = async (refresh: boolean, signal?: AbortSignal): Promise<EcsServiceMember[]> => {
    if (!refresh && membership !== undefined && clock.now() - membership.readAt < context.membershipTtlMs) {
      return membership.members;
    }
    // Concurrent submissions share one reading.
    reading ??= readMembers(signal).finally(() => {
      reading = undefined;
    });
    return reading;
  };

  const markStale = () => {
    membership = undefined;
  };

  const noTasksError = (jobId?: string) =>
    new JobFailedError({
      message: `ECS service ${service} has no RUNNING task to take the job. Raise its desiredCount (createEcsServiceTarget) or wait for tasks to start; the job can run elsewhere.`,
      isRetryable: true,
      providerId,
      ...(jobId === undefined ? {} : { jobId }),
    });

  return {
    /** The tasks that take new jobs now, read again when `refresh` or stale. */
    members,

    async submit(request: ProviderJobRequest, options: ProviderCallOptions): Promise<RemoteJobRef> {
      for (let attempt = 0; ; attempt++) {
        const current = await members(attempt > 0, options.signal);
        if (current.length === 0) throw noTasksError(request.jobId);
        const pool = access.pool(current.map((member) => member.url));
        let inner: RemoteJobRef;
        try {
          inner = await pool.doSubmit(request, options);
        } catch (error) {
          // A task that went away since the last reading: read the membership again once.
          if (attempt === 0 && isConnectionFailure(error) && !options.signal?.aborted) {
            markStale();
            continue;
          }
          throw error;
        }
        const server = String(inner.data?.['server']);
        const member = current.find((entry) => entry.url === server);
        if (member === undefined) {
          throw new JobFailedError({
            message: `The job went to ${server}, which is not a task of ${service}; this is a bug in the ECS adapter.`,
            providerId,
            jobId: request.jobId,
          });
        }
        const data: ServiceRefData = {
          ...(inner.data as Omit<ServiceRefData, 'mode' | 'taskArn'>),
          mode: 'service',
          taskArn: member.taskArn,
        };
        return { remoteId: inner.remoteId, data: { ...data } };
      }
    },

    async *watch(ref: RemoteJobRef, options: ProviderCallOptions): AsyncGenerator<ProviderJobEvent> {
      const data = readServiceRef(ref);
      yield* watchPromptOnTask(
        { access, calls, providerId, onConnectionTrouble: markStale },
        data.taskArn,
        ref,
        options.signal,
        undefined,
      );
    },

    async cancel(ref: RemoteJobRef, options: ProviderCallOptions): Promise<void> {
      const data = readServiceRef(ref);
      try {
        await access.single(data.server).doCancel(ref, options);
      } catch (error) {
        // A task that is gone has nothing left to cancel.
        if (isConnectionFailure(error)) {
          const { tasks } = await calls.describeTasks(
            [data.taskArn],
            options.signal ? { signal: options.signal } : {},
          );
          const task = tasks[0];
          if (task === undefined || task.lastStatus === 'STOPPED' || task.desiredStatus === 'STOPPED') return;
        }
        throw error;
      }
    },

    async health(options: ProviderCallOptions): Promise<ProviderHealth> {
      const [described, current] = await Promise.all([
        calls.describeService(service, options.signal),
        members(true, options.signal),
      ]);
      const found = described.service;
      if (found === undefined) {
        const reason = described.failures.map((failure) => failure.reason).join(', ') || 'not found';
        return {
          status: 'unhealthy',
          message: `ECS service ${service} is ${reason}; check the "service" and "cluster" options.`,
          checkedAt: clock.now(),
        };
      }
      const pending = found.pendingCount ?? 0;
      const desired = found.desiredCount ?? 0;
      const inner =
        current.length > 0
          ? await access.pool(current.map((member) => member.url)).doHealth(options)
          : undefined;
      let status: ProviderHealth['status'];
      const notes: string[] = [];
      if (found.status !== undefined && found.status !== 'ACTIVE') {
        status = 'unhealthy';
        notes.push(`service status ${found.status}`);
      } else if (current.length === 0) {
        status = desired > 0 || pending > 0 ? 'degraded' : 'unhealthy';
        notes.push(`no RUNNING task (desired ${desired}, pending ${pending})`);
      } else {
        status = inner?.status ?? 'healthy';
        if (inner?.message) notes.push(inner.message);
      }
      return {
        status,
        ...(inner?.queued === undefined ? {} : { queued: inner.queued }),
        ...(inner?.running === undefined ? {} : { running: inner.running }),
        idleWorkers: inner?.idleWorkers ?? 0,
        busyWorkers: inner?.busyWorkers ?? 0,
        initializingWorkers: pending,
        ...(notes.length > 0 ? { message: notes.join('; ').slice(0, 500) } : {}),
        checkedAt: clock.now(),
      };
    },

    async preflight(requirements: WorkflowRequirements, options: ProviderCallOptions) {
      const current = await members(false, options.signal);
      if (current.length === 0) throw noTasksError();
      const pool = access.pool(current.map((member) => member.url));
      if (pool.doPreflight === undefined) {
        throw new ConfigurationError({ message: 'The self-hosted pool has no preflight.', providerId });
      }
      return pool.doPreflight(requirements, options);
    },
  };
}
