import type { ProviderJobEvent, RemoteJobRef } from '@comfy-serverless/core';
import type { EcsCalls } from './ecs-calls';
import type { ComfyAccess } from './ecs-comfy-access';
import { stoppedTaskError } from './ecs-error';
import { taskIdOf } from './ecs-task';

/** What `watchPromptOnTask` needs. */
export interface WatchPromptOnTaskContext {
  access: ComfyAccess;
  calls: EcsCalls;
  providerId: string;
  /** Called when the watch broke on a connection error, so that membership is read again. */
  onConnectionTrouble?: () => void;
}

/** The task's stop code and reason when ECS says it has stopped (or is stopping), else undefined. */
export async function stoppedTaskInfo(calls: EcsCalls, taskArn: string, signal?: AbortSignal) {
  const { tasks, failures } = await calls.describeTasks([taskArn], signal ? { signal } : {});
  const task = tasks[0];
  if (task === undefined) {
    return failures.length > 0
      ? { taskArn, stopCode: undefined, stoppedReason: 'ECS no longer knows the task' }
      : undefined;
  }
  if (task.lastStatus !== 'STOPPED' && task.desiredStatus !== 'STOPPED') return undefined;
  return {
    taskArn,
    stopCode: task.stopCode,
    stoppedReason: task.stoppedReason,
    exitCodes: (task.containers ?? []).map((container) => ({
      name: container.name,
      exitCode: container.exitCode,
      reason: container.reason,
    })),
  };
}

/**
 * Follows a prompt on the ComfyUI of one task through core's self-hosted provider. When
 * the watch breaks (ComfyUI stops answering), ECS is asked whether the task stopped: if it
 * did, the job ends with a typed error that says why (spot interruption, container exit,
 * replacement); if not, the break is passed on and the dispatcher watches again.
 * `started` events name the task as the worker and carry `coldStartMs` when the job
 * waited for its task to start.
 */
export async function* watchPromptOnTask(
  context: WatchPromptOnTaskContext,
  taskArn: string,
  inner: RemoteJobRef,
  signal: AbortSignal | undefined,
  jobId: string | undefined,
  coldStartMs?: number,
): AsyncGenerator<ProviderJobEvent> {
  const server = String(inner.data?.['server']);
  const workerId = taskIdOf(taskArn);
  let started = false;
  try {
    for await (const event of context.access.single(server).doWatch(inner, signal ? { signal } : {})) {
      if (event.type === 'started') {
        // The task, not its address, names the worker (addresses are reused).
        yield {
          ...event,
          workerId,
          ...(coldStartMs === undefined || started ? {} : { coldStartMs }),
        };
        started = true;
      } else {
        yield event;
      }
    }
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    context.onConnectionTrouble?.();
    let stopped: Awaited<ReturnType<typeof stoppedTaskInfo>>;
    try {
      stopped = await stoppedTaskInfo(context.calls, taskArn, signal);
    } catch {
      throw error;
    }
    if (stopped === undefined) throw error;
    context.access.forget(server);
    yield {
      type: 'failed',
      error: stoppedTaskError(stopped, {
        providerId: context.providerId,
        ...(jobId === undefined ? {} : { jobId }),
      }),
      executionStarted: true,
    };
  }
}
