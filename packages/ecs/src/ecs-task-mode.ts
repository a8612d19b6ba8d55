import { randomUUID } from 'node:crypto';
import type {
  CapacityProviderStrategyItem,
  KeyValuePair,
  NetworkConfiguration,
  Task,
  TaskOverride,
} from '@aws-sdk/client-ecs';
import {
  type Clock,
  type ComfyServerlessError,
  InvalidArgumentError,
  JobFailedError,
  type ProviderCallOptions,
  type ProviderHealth,
  type ProviderJobEvent,
  type ProviderJobRequest,
  type RemoteJobRef,
  sleep,
  toComfyServerlessError,
} from '@comfy-serverless/core';
import type { EcsCalls } from './ecs-calls';
import type { ComfyAccess } from './ecs-comfy-access';
import { runTaskFailureError, stoppedTaskError } from './ecs-error';
import { clientTokenFor, JOB_ID_TAG, PROVIDER_TAG, startedByForJob, tagValueForJob } from './ecs-job-tags';
import type { ResolveTaskUrl } from './ecs-task';
import { stoppedTaskInfo, watchPromptOnTask } from './ecs-watch-prompt';

/** The `stoppedReason` prefixes the adapter writes, so that any process can tell why it stopped a task. */
export const STOP_REASONS = {
  cancelled: 'comfy-serverless: job cancelled',
  provisioning: 'comfy-serverless: provisioning deadline passed',
  startup: 'comfy-serverless: ComfyUI did not answer in time',
  idle: 'comfy-serverless: idle timeout',
  closed: 'comfy-serverless: provider closed',
} as const;

/** What task mode needs from the provider. */
export interface TaskModeContext {
  providerId: string;
  cluster: string;
  calls: EcsCalls;
  access: ComfyAccess;
  clock: Clock;
  port: number;
  resolveTaskUrl: ResolveTaskUrl;
  taskDefinition: string;
  capacityProviderStrategy?: CapacityProviderStrategyItem[] | undefined;
  networkConfiguration?: NetworkConfiguration | undefined;
  /** The container whose command and environment are overridden, when either is given. */
  containerName?: string | undefined;
  command?: string[] | undefined;
  environment?: Record<string, string> | undefined;
  tags?: Record<string, string> | undefined;
  group?: string | undefined;
  provisioningTimeoutMs: number;
  startupTimeoutMs: number;
  idleTimeoutMs: number;
  maxTasks: number;
  pollIntervalMs: number;
  /** How long a just-started task may be unknown to DescribeTasks (eventual consistency). */
  missingGraceMs: number;
}

/** A task this provider started (or adopted) and keeps track of. */
interface TaskRecord {
  taskArn: string;
  state: 'launching' | 'ready' | 'stopping';
  url?: string;
  /** The job bound to the task; a task runs one job at a time. */
  jobId?: string;
  idleTimer?: unknown;
}

/** A job of this process in task mode. */
interface TaskJob {
  jobId: string;
  taskArn: string;
  ref: RemoteJobRef;
  /** Kept until the prompt is queued on the task's ComfyUI. */
  request?: ProviderJobRequest;
  /** The self-hosted reference of the prompt once it is queued. */
  inner?: RemoteJobRef;
  cancelled: boolean;
  released: boolean;
}

/** The journalled part of a task-mode job. */
interface TaskRefData {
  mode: 'task';
  taskArn: string;
  jobId: string;
  /** Epoch ms the task was started (or the job bound to it), for the provisioning deadline. */
  launchedAt: number;
}

function readTaskRef(ref: RemoteJobRef): TaskRefData {
  const data = ref?.data as Partial<TaskRefData> | undefined;
  if (
    typeof ref?.remoteId !== 'string' ||
    data?.mode !== 'task' ||
    typeof data.taskArn !== 'string' ||
    typeof data.jobId !== 'string' ||
    typeof data.launchedAt !== 'number'
  ) {
    throw new InvalidArgumentError({
      argument: 'ref',
      message:
        'This reference was not made by an ECS provider in task mode: it needs remoteId and data.mode, data.taskArn, data.jobId, data.launchedAt.',
    });
  }
  return data as TaskRefData;
}

function isStopped(task: Task): boolean {
  return task.lastStatus === 'STOPPED' || task.desiredStatus === 'STOPPED';
}

/**
 * Task mode: each job gets a task of its own, started with RunTask on a GPU capacity
 * provider (`startedBy` and a tag carry the job id; a client token makes the call
 * idempotent) and followed through PROVISIONING, PENDING and RUNNING under the adapter's
 * provisioning deadline. Once ComfyUI in the task answers, the job is queued there and
 * watched; the task then stays warm for further jobs until `idleTimeoutMs`, then StopTask.
 */
export function createTaskMode(context: TaskModeContext) {
  const { calls, access, clock, providerId } = context;
  const tasks = new Map<string, TaskRecord>();
  const jobs = new Map<string, TaskJob>();
  /** Definite RunTask refusals per job attempt, so that a new try gets a new client token. */
  const refusals = new Map<string, number>();

  const ids = (jobId?: string) => ({ providerId, ...(jobId === undefined ? {} : { jobId }) });

  const stopTask = async (record: TaskRecord | undefined, taskArn: string, reason: string) => {
    if (record !== undefined) {
      record.state = 'stopping';
      if (record.idleTimer !== undefined) clock.clearTimeout(record.idleTimer);
      tasks.delete(taskArn);
      if (record.url !== undefined) access.forget(record.url);
    }
    await calls.stopTask(taskArn, reason);
  };

  const stopQuietly = (record: TaskRecord | undefined, taskArn: string, reason: string) =>
    stopTask(record, taskArn, reason).catch(() => {
      // A task we could not stop is stopped by ECS when its instance scales in; health shows it meanwhile.
    });

  const armIdleTimer = (record: TaskRecord) => {
    if (record.idleTimer !== undefined) clock.clearTimeout(record.idleTimer);
    record.idleTimer = clock.setTimeout(() => {
      record.idleTimer = undefined;
      if (record.jobId === undefined && tasks.get(record.taskArn) === record) {
        void stopQuietly(record, record.taskArn, STOP_REASONS.idle);
      }
    }, context.idleTimeoutMs);
  };

  /** The job is over on its task: the task goes back to the warm pool. */
  const release = (job: TaskJob) => {
    if (job.released) return;
    job.released = true;
    job.request = undefined;
    jobs.delete(job.jobId);
    const record = tasks.get(job.taskArn);
    if (record === undefined || record.jobId !== job.jobId) return;
    record.jobId = undefined;
    if (record.state !== 'stopping') armIdleTimer(record);
  };

  const bind = (record: TaskRecord, request: ProviderJobRequest): RemoteJobRef => {
    if (record.idleTimer !== undefined) clock.clearTimeout(record.idleTimer);
    record.idleTimer = undefined;
    record.jobId = request.jobId;
    const data: TaskRefData = {
      mode: 'task',
      taskArn: record.taskArn,
      jobId: request.jobId,
      launchedAt: clock.now(),
    };
    const ref = { remoteId: record.taskArn, data: { ...data } };
    jobs.set(request.jobId, {
      jobId: request.jobId,
      taskArn: record.taskArn,
      ref,
      request,
      cancelled: false,
      released: false,
    });
    return ref;
  };

  const overrides = (): TaskOverride | undefined => {
    if (context.containerName === undefined) return undefined;
    const environment: KeyValuePair[] = Object.entries(context.environment ?? {}).map(([name, value]) => ({
      name,
      value,
    }));
    return {
      containerOverrides: [
        {
          name: context.containerName,
          ...(context.command === undefined ? {} : { command: context.command }),
          ...(environment.length === 0 ? {} : { environment }),
        },
      ],
    };
  };

  const launch = async (request: ProviderJobRequest, signal?: AbortSignal): Promise<RemoteJobRef> => {
    const key = `${request.jobId}\u0000${request.attempt}`;
    const refused = refusals.get(key) ?? 0;
    const taskOverrides = overrides();
    const answer = await calls.runTask(
      {
        taskDefinition: context.taskDefinition,
        ...(context.capacityProviderStrategy
          ? { capacityProviderStrategy: context.capacityProviderStrategy }
          : {}),
        ...(context.networkConfiguration ? { networkConfiguration: context.networkConfiguration } : {}),
        ...(taskOverrides ? { overrides: taskOverrides } : {}),
        ...(context.group ? { group: context.group } : {}),
        startedBy: startedByForJob(request.jobId),
        tags: [
          ...Object.entries(context.tags ?? {}).map(([key, value]) => ({ key, value })),
          { key: JOB_ID_TAG, value: tagValueForJob(request.jobId) },
          { key: PROVIDER_TAG, value: tagValueForJob(providerId) },
        ],
        clientToken: clientTokenFor(providerId, request.jobId, request.attempt, refused),
      },
      { jobId: request.jobId, ...(signal ? { signal } : {}) },
    );
    const task = answer.tasks[0];
    if (task?.taskArn === undefined) {
      refusals.set(key, refused + 1);
      throw runTaskFailureError(answer.failures, { ...ids(request.jobId), cluster: context.cluster });
    }
    refusals.delete(key);
    const record: TaskRecord = { taskArn: task.taskArn, state: 'launching' };
    tasks.set(task.taskArn, record);
    return bind(record, request);
  };

  /** Follows the task until it runs and ComfyUI answers; returns its URL or a terminal event. */
  async function* untilReady(
    data: TaskRefData,
    job: TaskJob | undefined,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<ProviderJobEvent, string | undefined> {
    const record = tasks.get(data.taskArn);
    let url = record?.state === 'ready' ? record.url : undefined;
    const sleepOptions = { clock, ...(signal ? { signal } : {}) };
    while (url === undefined) {
      if (job?.cancelled) {
        yield { type: 'cancelled' };
        return undefined;
      }
      const { tasks: found, failures } = await calls.describeTasks([data.taskArn], signal ? { signal } : {});
      const task = found[0];
      const elapsed = clock.now() - data.launchedAt;
      if (task === undefined) {
        if (failures.length > 0 && elapsed >= context.missingGraceMs) {
          if (job) release(job);
          tasks.delete(data.taskArn);
          yield {
            type: 'failed',
            error: new JobFailedError({
              message: `ECS does not know task ${data.taskArn} (${failures.map((failure) => failure.reason).join(', ')}); it may have stopped long ago. The job can run elsewhere.`,
              isRetryable: true,
              ...ids(data.jobId),
            }),
            executionStarted: false,
          };
          return undefined;
        }
      } else if (isStopped(task)) {
        if (job) release(job);
        tasks.delete(data.taskArn);
        if (task.stoppedReason?.startsWith(STOP_REASONS.cancelled)) {
          yield { type: 'cancelled' };
          return undefined;
        }
        const error = task.stoppedReason?.startsWith(STOP_REASONS.provisioning)
          ? provisioningError(data)
          : stoppedTaskError(
              {
                taskArn: data.taskArn,
                stopCode: task.stopCode,
                stoppedReason: task.stoppedReason,
                exitCodes: (task.containers ?? []).map((container) => ({
                  name: container.name,
                  exitCode: container.exitCode,
                  reason: container.reason,
                })),
              },
              ids(data.jobId),
            );
        // Nothing of the job ran: the task stopped before ComfyUI had it.
        yield { type: 'failed', error: retryableBeforeStart(error), executionStarted: false };
        return undefined;
      } else if (task.lastStatus === 'RUNNING') {
        url = await context.resolveTaskUrl(task, { port: context.port });
        if (record !== undefined) {
          record.state = 'ready';
          record.url = url;
        }
        break;
      }
      if (elapsed >= context.provisioningTimeoutMs) {
        // With managed scaling a shortage does not fail RunTask: the task waits in
        // PROVISIONING for an instance. Past our deadline the job is better off elsewhere.
        if (job) release(job);
        await stopQuietly(tasks.get(data.taskArn), data.taskArn, STOP_REASONS.provisioning);
        yield { type: 'failed', error: provisioningError(data, task?.lastStatus), executionStarted: false };
        return undefined;
      }
      await sleep(context.pollIntervalMs, sleepOptions);
    }
    // RUNNING is not ready: ComfyUI loads for a while after the container starts.
    const readySince = clock.now();
    for (;;) {
      if (job?.cancelled) {
        yield { type: 'cancelled' };
        return undefined;
      }
      const health = await access.single(url).doHealth(signal ? { signal } : {});
      if (health.status === 'healthy') return url;
      // A warm task may have died since its last job: ask ECS before waiting on it.
      const stopped = await stoppedTaskInfo(calls, data.taskArn, signal);
      if (stopped !== undefined) {
        if (job) release(job);
        tasks.delete(data.taskArn);
        access.forget(url);
        const error = stoppedTaskError(stopped, ids(data.jobId));
        yield { type: 'failed', error: retryableBeforeStart(error), executionStarted: false };
        return undefined;
      }
      if (clock.now() - readySince >= context.startupTimeoutMs) {
        if (job) release(job);
        await stopQuietly(tasks.get(data.taskArn), data.taskArn, STOP_REASONS.startup);
        yield {
          type: 'failed',
          error: new JobFailedError({
            message: `ComfyUI in ECS task ${data.taskArn} did not answer within ${context.startupTimeoutMs} ms of the task running (${health.message ?? 'no answer'}). The task was stopped; check its logs (model downloads, port ${context.port}). The job can run elsewhere.`,
            isRetryable: true,
            ...ids(data.jobId),
          }),
          executionStarted: false,
        };
        return undefined;
      }
      await sleep(context.pollIntervalMs, sleepOptions);
    }
  }

  const provisioningError = (data: TaskRefData, lastStatus?: string) =>
    new JobFailedError({
      message: `ECS task ${data.taskArn} was still ${lastStatus ?? 'starting'} after ${context.provisioningTimeoutMs} ms (the "provisioningTimeoutMs" deadline): cluster ${context.cluster} has no free GPU capacity. The task was stopped; the job can run elsewhere.`,
      isRetryable: true,
      ...ids(data.jobId),
    });

  const retryableBeforeStart = (error: ComfyServerlessError) =>
    error.isRetryable
      ? error
      : new JobFailedError({ message: error.message, cause: error, isRetryable: true, ...ids(error.jobId) });

  /**
   * The prompt of a job this process did not submit, on its dedicated task's queue: the
   * entry whose `extra_data` names the job (or, from a ComfyUI that drops extra data, the
   * only one there), watched as the websocket client it was submitted with.
   */
  const findPromptOnTask = async (
    url: string,
    jobId: string,
    signal?: AbortSignal,
  ): Promise<RemoteJobRef | undefined> => {
    const queue = await access.client(url).getQueue(signal ? { signal } : {});
    const items = [...queue.running, ...queue.pending];
    const item =
      items.find((entry) => entry.extraData?.['comfy_serverless_job_id'] === jobId) ??
      (items.length === 1 && items[0]?.extraData?.['comfy_serverless_job_id'] === undefined
        ? items[0]
        : undefined);
    if (item === undefined) return undefined;
    const clientId = item.extraData?.['client_id'];
    return {
      remoteId: item.promptId,
      data: {
        server: url,
        clientId: typeof clientId === 'string' ? clientId : `comfy-serverless-${randomUUID()}`,
      },
    };
  };

  return {
    async submit(request: ProviderJobRequest, options: ProviderCallOptions): Promise<RemoteJobRef> {
      const existing = jobs.get(request.jobId);
      if (existing !== undefined && !existing.cancelled) return existing.ref;
      // A warm task first, then one started but not yet bound (adopted after a restart).
      const free = [...tasks.values()].filter((record) => record.jobId === undefined);
      const warm =
        free.find((record) => record.state === 'ready') ??
        free.find((record) => record.state === 'launching');
      if (warm !== undefined) return bind(warm, request);
      const active = [...tasks.values()].filter((record) => record.state !== 'stopping').length;
      if (active >= context.maxTasks) {
        throw new JobFailedError({
          message: `All ${context.maxTasks} ECS tasks of ${providerId} are busy ("maxTasks"); the job can run elsewhere, or raise maxTasks.`,
          isRetryable: true,
          ...ids(request.jobId),
        });
      }
      return launch(request, options.signal);
    },

    async *watch(ref: RemoteJobRef, options: ProviderCallOptions): AsyncGenerator<ProviderJobEvent> {
      const data = readTaskRef(ref);
      const { signal } = options;
      let job = jobs.get(data.jobId);
      if (job !== undefined && job.taskArn !== data.taskArn) job = undefined;
      if (job?.cancelled && job.inner === undefined) {
        yield { type: 'cancelled' };
        return;
      }
      let inner = job?.inner;
      let coldStartMs: number | undefined;
      if (inner === undefined) {
        yield { type: 'queued' };
        const wasReady = tasks.get(data.taskArn)?.state === 'ready';
        const url = yield* untilReady(data, job, signal);
        if (url === undefined) return;
        // The wait for a task of its own is the job's cold start (and is billed as such).
        if (!wasReady && job !== undefined) coldStartMs = Math.max(0, clock.now() - data.launchedAt);
        if (job?.request !== undefined) {
          try {
            inner = await access.single(url).doSubmit(job.request, signal ? { signal } : {});
          } catch (error) {
            if (signal?.aborted) throw signal.reason;
            release(job);
            yield {
              type: 'failed',
              error: toComfyServerlessError(error, ids(data.jobId)),
              executionStarted: false,
            };
            return;
          }
          job.inner = inner;
          job.request = undefined;
          if (job.cancelled)
            await access
              .single(url)
              .doCancel(inner)
              .catch(() => {});
        } else {
          inner = await findPromptOnTask(url, data.jobId, signal);
          if (inner === undefined) {
            // Another process started this job and its prompt is not on the task: either it
            // finished while nobody watched, or it was never queued. Neither can be told apart.
            await stopQuietly(tasks.get(data.taskArn), data.taskArn, STOP_REASONS.idle);
            yield {
              type: 'failed',
              error: new JobFailedError({
                message: `The job's ECS task ${data.taskArn} is running but holds no prompt: the job finished while no process watched it, or it was never queued. Its outputs cannot be recovered; run it again.`,
                isRetryable: true,
                ...ids(data.jobId),
              }),
              executionStarted: true,
            };
            return;
          }
          if (job !== undefined) job.inner = inner;
        }
      }
      let ended = false;
      try {
        for await (const event of watchPromptOnTask(
          { access, calls, providerId },
          data.taskArn,
          inner,
          signal,
          data.jobId,
          coldStartMs,
        )) {
          if (event.type === 'completed' || event.type === 'failed' || event.type === 'cancelled')
            ended = true;
          yield event;
        }
      } finally {
        if (ended && job !== undefined) release(job);
      }
    },

    async cancel(ref: RemoteJobRef, options: ProviderCallOptions): Promise<void> {
      const data = readTaskRef(ref);
      const job = jobs.get(data.jobId);
      if (job !== undefined && job.taskArn === data.taskArn) {
        job.cancelled = true;
        if (job.inner !== undefined) {
          await access.single(String(job.inner.data?.['server'])).doCancel(job.inner, options);
          release(job);
          return;
        }
        job.request = undefined;
        const record = tasks.get(data.taskArn);
        if (record?.state === 'ready') {
          // A warm task that had not yet been given the prompt stays warm.
          release(job);
          return;
        }
        await stopTask(record, data.taskArn, STOP_REASONS.cancelled);
        release(job);
        return;
      }
      // A job of another process: its task is dedicated to it, so stopping the task cancels it.
      const { tasks: found } = await calls.describeTasks(
        [data.taskArn],
        options.signal ? { signal: options.signal } : {},
      );
      const task = found[0];
      if (task === undefined || isStopped(task)) return;
      await calls.stopTask(data.taskArn, STOP_REASONS.cancelled, options.signal);
    },

    async lookup(jobId: string, options: ProviderCallOptions): Promise<RemoteJobRef | undefined> {
      const known = jobs.get(jobId);
      if (known !== undefined) return known.ref;
      const arns = await calls.listTasks(
        { startedBy: startedByForJob(jobId), desiredStatus: 'RUNNING' },
        options.signal,
      );
      if (arns.length === 0) return undefined;
      const { tasks: found } = await calls.describeTasks(arns, {
        tags: true,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      const wanted = tagValueForJob(jobId);
      for (const task of found) {
        const ours = task.tags?.some((tag) => tag.key === JOB_ID_TAG && tag.value === wanted);
        if (!ours || task.taskArn === undefined || isStopped(task) || tasks.has(task.taskArn)) continue;
        // The job was never queued on it (prompts are queued only after the reference is
        // journalled), so the job is sent again; the task it left behind is adopted so that
        // the new submission runs on it instead of starting another.
        const record: TaskRecord = { taskArn: task.taskArn, state: 'launching' };
        tasks.set(task.taskArn, record);
        armIdleTimer(record);
      }
      return undefined;
    },

    health(cluster: { status?: string | undefined } | undefined, failures: string[]): ProviderHealth {
      let idle = 0;
      let busy = 0;
      let starting = 0;
      let waiting = 0;
      for (const record of tasks.values()) {
        if (record.state === 'stopping') continue;
        if (record.state === 'launching') {
          starting += 1;
          if (record.jobId !== undefined) waiting += 1;
        } else if (record.jobId === undefined) idle += 1;
        else busy += 1;
      }
      const active = cluster?.status === 'ACTIVE';
      return {
        status: active ? 'healthy' : 'unhealthy',
        queued: waiting,
        running: busy,
        idleWorkers: idle,
        busyWorkers: busy,
        initializingWorkers: starting,
        maxWorkers: context.maxTasks,
        ...(active
          ? {}
          : {
              message: `ECS cluster ${context.cluster} is ${cluster?.status ?? (failures.join(', ') || 'not found')}; check the "cluster" option and region.`,
            }),
        checkedAt: clock.now(),
      };
    },

    /** Stops every task this provider holds that runs no job, and forgets the timers. */
    async close(): Promise<void> {
      const idle = [...tasks.values()].filter((record) => record.jobId === undefined);
      await Promise.all(idle.map((record) => stopQuietly(record, record.taskArn, STOP_REASONS.closed)));
    },

    /** Tasks this provider holds, for tests and dashboards. */
    tasks(): Array<{ taskArn: string; state: string; jobId?: string }> {
      return [...tasks.values()].map((record) => ({
        taskArn: record.taskArn,
        state: record.state,
        ...(record.jobId === undefined ? {} : { jobId: record.jobId }),
      }));
    },
  };
}
