import { randomUUID } from 'node:crypto';
import {
  type Clock,
  type Dispatcher,
  type DispatcherMetrics,
  InvalidArgumentError,
  systemClock,
} from '@comfy-serverless/core';
import { checkMilliseconds, checkName } from './options';
import type { RedisMetricWindows } from './redis-metric-windows';

/** Options of `shareDispatcherDemand`. */
export interface ShareDispatcherDemandOptions {
  /** The shared windows (`createRedisMetricWindows`). */
  windows: RedisMetricWindows;
  /** This process's dispatcher: its job events are recorded, its load published. */
  dispatcher: Pick<Dispatcher, 'events' | 'metrics'>;
  /** This process's name among those that publish load. @default a random id */
  processId?: string;
  /** How often this process publishes its load and re-reads the merged view, ms. @default 5000 */
  intervalMs?: number;
  /** Clock for the timer. @default the system clock */
  clock?: Clock;
  /** Called when Redis refused a write or read; demand sharing is best effort and never stops jobs. */
  onError?: (error: unknown) => void;
}

/**
 * Every process's demand, read from Redis, in the shape of `dispatcher.metrics()`: pass it
 * as the autoscaler's `dispatcher` so that the leader scales for all processes.
 */
export interface SharedDemandSource {
  /** The merged view as of the last refresh (this process's own metrics until the first one). */
  metrics(): DispatcherMetrics;
  /** Publishes this process's load now and re-reads the merged view. */
  refresh(): Promise<DispatcherMetrics>;
  /** Resolves once every recording made so far has reached Redis (or failed to). */
  flush(): Promise<void>;
  /** Stops listening and publishing, waits for recordings in progress, and withdraws this process's load. */
  close(): Promise<void>;
}

const MAX_TRACKED_JOBS = 100_000;

/**
 * Feeds shared metric windows from a dispatcher and reads them back merged: arrivals
 * (`job:queued`), queue waits (`job:started`), execution times (`job:completed`) and this
 * process's queue depth and in-flight jobs every `intervalMs`.
 *
 * @example
 * const windows = createRedisMetricWindows({ redis, prefix: 'myapp:metrics' });
 * const demand = shareDispatcherDemand({ windows, dispatcher });
 * const autoscaler = createAutoscaler({ policy, targets, dispatcher: demand, lease });
 */
export function shareDispatcherDemand(options: ShareDispatcherDemandOptions): SharedDemandSource {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError({
      argument: 'options',
      message: 'shareDispatcherDemand needs an options object with "windows" and "dispatcher".',
    });
  }
  const { windows, dispatcher } = options;
  if (windows === null || typeof windows !== 'object' || typeof windows.snapshot !== 'function') {
    throw new InvalidArgumentError({
      argument: 'windows',
      message: 'Option "windows" must come from createRedisMetricWindows(...).',
    });
  }
  if (
    dispatcher === null ||
    typeof dispatcher !== 'object' ||
    typeof dispatcher.metrics !== 'function' ||
    typeof dispatcher.events?.on !== 'function'
  ) {
    throw new InvalidArgumentError({
      argument: 'dispatcher',
      message: 'Option "dispatcher" must be a dispatcher (createDispatcher(...)).',
    });
  }
  const processId = options.processId ?? `process-${randomUUID()}`;
  checkName('processId', processId);
  const intervalMs = options.intervalMs ?? 5_000;
  checkMilliseconds('intervalMs', intervalMs, 1);
  const clock = options.clock ?? systemClock;
  const onError = options.onError ?? (() => {});
  const pending = new Set<Promise<unknown>>();
  const report = (promise: Promise<unknown>) => {
    const tracked = promise.catch(onError).finally(() => pending.delete(tracked));
    pending.add(tracked);
  };
  const flush = async () => {
    while (pending.size > 0) await Promise.all([...pending]);
  };

  // When each job of this process was accepted, to measure its wait when it starts.
  const queuedAt = new Map<string, number>();
  const onQueued = (event: { jobId: string; at: number }) => {
    if (queuedAt.size >= MAX_TRACKED_JOBS) queuedAt.delete(queuedAt.keys().next().value as string);
    queuedAt.set(event.jobId, event.at);
    report(windows.recordArrival());
  };
  const onStarted = (event: { jobId: string; at: number }) => {
    const at = queuedAt.get(event.jobId);
    queuedAt.delete(event.jobId);
    if (at !== undefined) report(windows.recordWait(Math.max(0, event.at - at)));
  };
  const onCompleted = (event: { jobId: string; result: { timing: { executionMs: number } } }) => {
    queuedAt.delete(event.jobId);
    report(windows.recordExecution(Math.max(0, event.result.timing.executionMs)));
  };
  const onEnded = (event: { jobId: string }) => {
    queuedAt.delete(event.jobId);
  };
  const events = dispatcher.events;
  events.on('job:queued', onQueued);
  events.on('job:started', onStarted);
  events.on('job:completed', onCompleted);
  events.on('job:failed', onEnded);
  events.on('job:cancelled', onEnded);
  events.on('job:timed_out', onEnded);

  let merged: DispatcherMetrics | undefined;
  let closed = false;
  let timer: unknown;

  const refresh = async (): Promise<DispatcherMetrics> => {
    await flush();
    const local = dispatcher.metrics();
    await windows.publishLoad(processId, {
      queueDepth: local.demand.queueDepth,
      inFlight: local.demand.inFlight,
      providers: local.providers,
    });
    const shared = await windows.snapshot();
    merged = { demand: shared.demand, providers: shared.providers };
    return merged;
  };

  const schedule = () => {
    if (closed) return;
    timer = clock.setTimeout(() => {
      timer = undefined;
      refresh().catch(onError).finally(schedule);
    }, intervalMs);
  };
  schedule();

  return {
    metrics: () => merged ?? dispatcher.metrics(),
    refresh,
    flush,
    async close() {
      closed = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      events.off('job:queued', onQueued);
      events.off('job:started', onStarted);
      events.off('job:completed', onCompleted);
      events.off('job:failed', onEnded);
      events.off('job:cancelled', onEnded);
      events.off('job:timed_out', onEnded);
      await flush();
      await windows.withdrawLoad(processId);
    },
  };
}
