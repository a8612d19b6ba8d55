import { randomUUID } from 'node:crypto';
import type { Clock } from '../spec/clock';
import { ApiCallError, ComfyExecutionError, InvalidArgumentError } from '../spec/errors';
import type { ProviderJobEvent, ProviderJobRequest, RemoteJobRef } from '../spec/job';
import type { GpuSpec, ProviderPricing, ProviderV1 } from '../spec/provider-v1';
import type { ScaleSettings, ScaleTargetState, ScaleTargetV1 } from '../spec/scale-target-v1';
import { systemClock, unrefTimer } from '../util/clock';
import { defaultGpuPrice, type GpuInput, resolveGpu } from '../util/gpu';
import { placeholderOutput } from './mock-provider';

/** Options of `createSimulatedProvider`. */
export interface SimulatedProviderOptions {
  /** @default `simulated-<gpu type>` */
  id?: string;
  gpu: GpuInput;
  /** @default the GPU's list price */
  pricing?: ProviderPricing;
  region?: string;
  /** Worker bounds. @default { min: 0, max: 4 } */
  workers?: { min?: number; max?: number };
  /** Time for a new worker to become ready, ms: a number, or a function drawn per start. */
  coldStartMs: number | (() => number);
  /** Execution time of a job, ms: a number, or a function of the job. */
  executionMs: number | ((request: ProviderJobRequest) => number);
  /** An idle worker stops after this long, ms. @default 5000 (RunPod's default idle timeout) */
  idleTimeoutMs?: number;
  /** Share of jobs that fail during execution, 0..1. @default 0 */
  failureRate?: number;
  /** Random numbers in [0, 1), for reproducible failures. @default Math.random */
  random?: () => number;
  clock?: Clock;
}

/** What the simulated platform billed and did. */
export interface SimulatedProviderStats {
  /** Worker-seconds billed, each worker rounded up to the second, cold start and idle time included. */
  gpuSecondsBilled: number;
  usdBilled: number;
  coldStarts: number;
  jobsCompleted: number;
  jobsFailed: number;
  jobsCancelled: number;
  /** Executions started per job id (a second execution of one job shows here). */
  executions: Map<string, number>;
}

/** A provider over a simulated serverless pool, with a scale target for its worker bounds. */
export interface SimulatedProvider extends ProviderV1 {
  /** A scale target over the simulated pool's minimum and maximum workers. */
  readonly target: ScaleTargetV1;
  stats(): SimulatedProviderStats;
}

interface SimJob {
  remoteId: string;
  jobId: string;
  request: ProviderJobRequest;
  state: 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
  submittedAt: number;
  events: ProviderJobEvent[];
  waiters: Set<() => void>;
  worker?: SimWorker;
  timer?: unknown;
}

interface SimWorker {
  id: number;
  state: 'starting' | 'idle' | 'busy';
  startedAt: number;
  readyAt: number;
  coldStartMs: number;
  servedJobs: number;
  timer?: unknown;
}

/**
 * A serverless GPU pool in (real or virtual) time: jobs queue, workers cold-start up to
 * `max`, run one job at a time, stay idle for `idleTimeoutMs`, and are billed per second
 * from start to stop. Jobs return a placeholder PNG. For the quickstart, tests and
 * benchmarks; no GPU or account involved.
 */
export function createSimulatedProvider(options: SimulatedProviderOptions): SimulatedProvider {
  const gpu: GpuSpec = resolveGpu(options.gpu);
  const price = options.pricing?.usdPerSecond ?? defaultGpuPrice(gpu);
  if (price === undefined) {
    throw new InvalidArgumentError({
      argument: 'pricing',
      message: `No list price is known for GPU "${gpu.type}": give "pricing: { usdPerSecond }".`,
    });
  }
  const pricing: ProviderPricing = { usdPerSecond: price };
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  let minWorkers = options.workers?.min ?? 0;
  let maxWorkers = options.workers?.max ?? 4;
  if (
    !(
      Number.isInteger(minWorkers) &&
      Number.isInteger(maxWorkers) &&
      minWorkers >= 0 &&
      maxWorkers >= Math.max(1, minWorkers)
    )
  ) {
    throw new InvalidArgumentError({
      argument: 'workers',
      message: `"workers" must be { min >= 0, max >= max(1, min) } whole numbers; got ${JSON.stringify(options.workers)}.`,
    });
  }
  let idleTimeoutMs = options.idleTimeoutMs ?? 5_000;
  const failureRate = options.failureRate ?? 0;
  const coldStart = () =>
    typeof options.coldStartMs === 'function' ? options.coldStartMs() : options.coldStartMs;
  const typicalColdStartMs = typeof options.coldStartMs === 'number' ? options.coldStartMs : coldStart();
  const id = options.id ?? `simulated-${gpu.type}`;

  const jobs = new Map<string, SimJob>();
  const queue: SimJob[] = [];
  const workers = new Set<SimWorker>();
  let workerSequence = 0;
  const stats: SimulatedProviderStats = {
    gpuSecondsBilled: 0,
    usdBilled: 0,
    coldStarts: 0,
    jobsCompleted: 0,
    jobsFailed: 0,
    jobsCancelled: 0,
    executions: new Map(),
  };

  const push = (job: SimJob, event: ProviderJobEvent) => {
    job.events.push(event);
    for (const wake of job.waiters) wake();
  };

  const stopWorker = (worker: SimWorker) => {
    workers.delete(worker);
    if (worker.timer !== undefined) clock.clearTimeout(worker.timer);
    const seconds = Math.ceil((clock.now() - worker.startedAt) / 1000);
    stats.gpuSecondsBilled += seconds;
    stats.usdBilled += seconds * pricing.usdPerSecond;
  };

  const makeIdle = (worker: SimWorker) => {
    worker.state = 'idle';
    if (worker.timer !== undefined) clock.clearTimeout(worker.timer);
    worker.timer = clock.setTimeout(() => {
      worker.timer = undefined;
      if (worker.state === 'idle' && workers.size > minWorkers) stopWorker(worker);
    }, idleTimeoutMs);
    // An idle worker waiting to stop is no reason for the host process to stay up.
    unrefTimer(worker.timer);
  };

  const startWorker = () => {
    const coldStartMs = Math.max(0, coldStart());
    const worker: SimWorker = {
      id: ++workerSequence,
      state: 'starting',
      startedAt: clock.now(),
      readyAt: clock.now() + coldStartMs,
      coldStartMs,
      servedJobs: 0,
    };
    workers.add(worker);
    stats.coldStarts += 1;
    worker.timer = clock.setTimeout(() => {
      worker.timer = undefined;
      makeIdle(worker);
      schedule();
    }, coldStartMs);
  };

  const finishJob = (job: SimJob, worker: SimWorker, executionMs: number) => {
    job.timer = undefined;
    job.worker = undefined;
    worker.servedJobs += 1;
    if (random() < failureRate) {
      job.state = 'failed';
      stats.jobsFailed += 1;
      const error = new ComfyExecutionError({
        message: 'Simulated failure in KSampler: CUDA out of memory (simulated)',
        nodeId: '3',
        nodeType: 'KSampler',
        exceptionType: 'torch.OutOfMemoryError',
        isRetryable: false,
      });
      push(job, { type: 'failed', error, executionStarted: true });
    } else {
      job.state = 'completed';
      stats.jobsCompleted += 1;
      push(job, { type: 'completed', outputs: [placeholderOutput()], timing: { executionMs } });
    }
    makeIdle(worker);
    schedule();
  };

  const runJob = (job: SimJob, worker: SimWorker) => {
    worker.state = 'busy';
    if (worker.timer !== undefined) clock.clearTimeout(worker.timer);
    worker.timer = undefined;
    job.state = 'running';
    job.worker = worker;
    stats.executions.set(job.jobId, (stats.executions.get(job.jobId) ?? 0) + 1);
    const waited = clock.now() - job.submittedAt;
    const coldStartMs = worker.servedJobs === 0 ? Math.min(waited, worker.coldStartMs) : undefined;
    push(job, {
      type: 'started',
      queuedMs: waited,
      workerId: `worker-${worker.id}`,
      ...(coldStartMs === undefined || coldStartMs === 0 ? {} : { coldStartMs }),
    });
    const executionMs = Math.max(
      0,
      typeof options.executionMs === 'function' ? options.executionMs(job.request) : options.executionMs,
    );
    job.timer = clock.setTimeout(() => finishJob(job, worker, executionMs), executionMs);
  };

  function schedule(): void {
    for (const worker of workers) {
      if (queue.length === 0) break;
      if (worker.state === 'idle') runJob(queue.shift()!, worker);
    }
    const starting = [...workers].filter((worker) => worker.state === 'starting').length;
    let shortfall = queue.length - starting;
    while (shortfall > 0 && workers.size < maxWorkers) {
      startWorker();
      shortfall -= 1;
    }
    while (workers.size < minWorkers) startWorker();
  }

  const counts = () => {
    let idle = 0;
    let busy = 0;
    let starting = 0;
    for (const worker of workers) {
      if (worker.state === 'idle') idle += 1;
      else if (worker.state === 'busy') busy += 1;
      else starting += 1;
    }
    return { idle, busy, starting };
  };

  const describe = async (): Promise<ScaleTargetState> => {
    const { idle, busy, starting } = counts();
    return {
      minWorkers,
      maxWorkers,
      // The pool keeps its desired count as its minimum (see apply).
      desiredWorkers: minWorkers,
      runningWorkers: idle + busy,
      idleWorkers: idle,
      pendingWorkers: starting,
      queueDepth: queue.length,
      idleTimeoutSeconds: idleTimeoutMs / 1000,
      bounds: { minWorkers: 0, maxWorkers: 1000 },
      usdPerSecond: pricing.usdPerSecond,
      coldStartMs: typicalColdStartMs,
      describedAt: clock.now(),
    };
  };

  const target: ScaleTargetV1 = {
    specificationVersion: 'v1',
    id: `${id}:pool`,
    platform: 'simulated',
    providerId: id,
    describe,
    async apply(settings: ScaleSettings) {
      // Like RunPod, the pool has no desired count: a desired number of workers is kept as its minimum.
      const nextMin = settings.desiredWorkers ?? settings.minWorkers ?? minWorkers;
      const nextMax = settings.maxWorkers ?? maxWorkers;
      if (
        !(
          Number.isInteger(nextMin) &&
          Number.isInteger(nextMax) &&
          nextMin >= 0 &&
          nextMax >= Math.max(1, nextMin) &&
          nextMax <= 1000
        )
      ) {
        throw new InvalidArgumentError({
          argument: 'settings',
          message: `Worker bounds must be whole numbers with 0 <= minWorkers <= maxWorkers <= 1000 and maxWorkers >= 1; got min ${nextMin}, max ${nextMax}.`,
        });
      }
      if (settings.idleTimeoutSeconds !== undefined) {
        if (!(settings.idleTimeoutSeconds >= 0)) {
          throw new InvalidArgumentError({
            argument: 'idleTimeoutSeconds',
            message: `idleTimeoutSeconds must be >= 0; got ${settings.idleTimeoutSeconds}.`,
          });
        }
        idleTimeoutMs = settings.idleTimeoutSeconds * 1000;
      }
      minWorkers = nextMin;
      maxWorkers = nextMax;
      // Idle workers beyond the new bounds stop; busy ones finish their job first.
      for (const worker of [...workers]) {
        if (workers.size <= maxWorkers) break;
        if (worker.state === 'idle') stopWorker(worker);
      }
      schedule();
      return describe();
    },
  };

  // Workers the pool keeps at minimum start with the pool, as on the platforms.
  schedule();

  return {
    specificationVersion: 'v1',
    id,
    platform: 'simulated',
    ...(options.region === undefined ? {} : { region: options.region }),
    gpu,
    pricing,
    coldStartMs: typicalColdStartMs,
    target,
    stats: () => {
      // Workers still up are billed up to now, as the platform would if they stopped now.
      let aliveSeconds = 0;
      for (const worker of workers) aliveSeconds += Math.ceil((clock.now() - worker.startedAt) / 1000);
      return {
        ...stats,
        gpuSecondsBilled: stats.gpuSecondsBilled + aliveSeconds,
        usdBilled: stats.usdBilled + aliveSeconds * pricing.usdPerSecond,
        executions: new Map(stats.executions),
      };
    },
    async doSubmit(request) {
      if (request.workflow === null || typeof request.workflow !== 'object') {
        throw new ApiCallError({
          message: 'Simulated platform: the workflow is missing.',
          url: 'simulated://run',
          statusCode: 400,
        });
      }
      const job: SimJob = {
        remoteId: `sim-${randomUUID()}`,
        jobId: request.jobId,
        request,
        state: 'queued',
        submittedAt: clock.now(),
        events: [{ type: 'queued', position: queue.length }],
        waiters: new Set(),
      };
      jobs.set(job.remoteId, job);
      queue.push(job);
      schedule();
      return { remoteId: job.remoteId };
    },
    doWatch(ref: RemoteJobRef, callOptions) {
      const job = jobs.get(ref.remoteId);
      return {
        async *[Symbol.asyncIterator]() {
          if (job === undefined) {
            yield {
              type: 'failed',
              error: new ApiCallError({
                message: `Simulated platform has no job ${ref.remoteId} (a simulated provider keeps jobs only in memory).`,
                url: 'simulated://status',
                statusCode: 404,
                isRetryable: false,
              }),
              executionStarted: false,
            };
            return;
          }
          const signal = callOptions?.signal;
          let index = 0;
          for (;;) {
            while (index < job.events.length) {
              const event = job.events[index++]!;
              yield event;
              if (event.type === 'completed' || event.type === 'failed' || event.type === 'cancelled') return;
            }
            if (signal?.aborted) return;
            await new Promise<void>((resolve) => {
              const wake = () => {
                job.waiters.delete(wake);
                signal?.removeEventListener('abort', wake);
                resolve();
              };
              job.waiters.add(wake);
              signal?.addEventListener('abort', wake, { once: true });
            });
          }
        },
      };
    },
    async doCancel(ref) {
      const job = jobs.get(ref.remoteId);
      if (
        job === undefined ||
        job.state === 'completed' ||
        job.state === 'failed' ||
        job.state === 'cancelled'
      )
        return;
      if (job.state === 'queued') {
        const index = queue.indexOf(job);
        if (index >= 0) queue.splice(index, 1);
      } else if (job.worker !== undefined) {
        if (job.timer !== undefined) clock.clearTimeout(job.timer);
        const worker = job.worker;
        job.worker = undefined;
        makeIdle(worker);
      }
      job.state = 'cancelled';
      stats.jobsCancelled += 1;
      push(job, { type: 'cancelled' });
      schedule();
    },
    async doHealth() {
      const { idle, busy, starting } = counts();
      return {
        status: 'healthy',
        queued: queue.length,
        running: busy,
        idleWorkers: idle,
        busyWorkers: busy,
        initializingWorkers: starting,
        maxWorkers,
        checkedAt: clock.now(),
      };
    },
  };
}
