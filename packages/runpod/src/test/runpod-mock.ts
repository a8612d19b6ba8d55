import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ApiWorkflow, Clock } from '@comfy-serverless/core';
import { systemClock } from '@comfy-serverless/core';
import type { ConformanceJob, ConformanceScenario } from '@comfy-serverless/core/test';
import {
  MockRateLimiter,
  RUNPOD_RATE_LIMITS,
  type RunpodRateLimit,
  type RunpodRateRoute,
} from './mock-rate-limiter';
import { type MockJobPlan, planFromInput } from './mock-worker-comfyui';

/** A clock the mock can move forward by itself (`createVirtualClock` from core's test doubles). */
interface SteppableClock extends Clock {
  next(): Promise<boolean>;
  pending(): number;
}

/** Options of `startRunpodMock`. */
export interface RunpodMockOptions {
  /** Job timing, holds, rate windows and retention run on this clock. @default the system clock */
  clock?: Clock;
  /**
   * With a virtual clock: jump to the next timer whenever every open request is held (or none
   * is open) and nothing has happened for `quietMs` of real time. Lets clients that wait on
   * the same clock run unattended. `true` means `{ quietMs: 10 }`.
   */
  autoAdvance?: boolean | { quietMs?: number };
  /** @default 'mock-endpoint' */
  endpointId?: string;
  /** The key requests must carry. @default 'mock-api-key' */
  apiKey?: string;
  /** `workersMax`. @default 3 */
  workersMax?: number;
  /** `workersMin`: workers kept up (and warm from the start). @default 0 */
  workersMin?: number;
  /** `idleTimeout`, s. @default 5 */
  idleTimeoutSeconds?: number;
  /** Time a new worker takes to start, ms. @default 5000 */
  coldStartMs?: number;
  /** Handler time of a job without a plan, ms. @default 2000 */
  executionMs?: number;
  /** GPUs RunPod can give this endpoint; workers beyond this count are `throttled`. @default unlimited */
  gpusAvailable?: number;
  /** Models on the worker by folder; when given, workflows naming others fail validation like worker-comfyui. */
  models?: Record<string, string[]>;
  /** Node types on the worker; when given, other `class_type`s fail like ComfyUI's `invalid_prompt`. */
  nodeTypes?: string[];
  /** Return outputs as `s3_url` under this URL (worker-comfyui with `BUCKET_ENDPOINT_URL`). */
  bucketUrl?: string;
  /** Serve `/status-sync` (undocumented route). @default true */
  statusSync?: boolean;
  /** Longest hold of `/stream` when nothing new is there, ms. @default 90000 */
  streamHoldMs?: number;
  /** Rate limits by route. @default RunPod's published limits */
  rateLimits?: Partial<Record<RunpodRateRoute, RunpodRateLimit>>;
  /** Result retention after a `/run` job ends, ms. @default 1800000 */
  runRetentionMs?: number;
  /** Result retention after a `/runsync` job ends, ms. @default 60000 */
  runsyncRetentionMs?: number;
  /** Decides a job's plan from its input; `undefined` falls back to the worker-comfyui emulation. */
  plan?: (input: unknown, context: { jobId: string }) => MockJobPlan | undefined;
}

/** A failure the mock returns instead of handling a request. */
export interface MockFailure {
  status: number;
  /** How many requests to fail. @default 1 */
  count?: number;
  /** Sent as Retry-After (seconds). */
  retryAfterSeconds?: number;
  body?: unknown;
}

/** The mock's routes, as counted. */
export type RunpodMockRoute =
  | 'run'
  | 'runsync'
  | 'status'
  | 'status-sync'
  | 'stream'
  | 'cancel'
  | 'retry'
  | 'purge-queue'
  | 'health'
  | 'rest-get'
  | 'rest-patch';

/** A job as the mock holds it. */
export interface RunpodMockJob {
  id: string;
  status: 'IN_QUEUE' | 'IN_PROGRESS' | 'COMPLETED' | 'FAILED' | 'CANCELLED' | 'TIMED_OUT';
  input: unknown;
  submittedAt: number;
  startedAt?: number;
  finishedAt?: number;
  workerId?: string;
  /** Times a worker started this job (more than 1 after `/retry`). */
  executions: number;
  sync: boolean;
  deleted: boolean;
}

/** What the mock counted. */
export interface RunpodMockStats {
  /** Requests by route, 429s and injected failures included. */
  requests: Record<RunpodMockRoute, number>;
  totalRequests: number;
  /** Requests answered 429. */
  rateLimited: number;
  /** Jobs accepted. */
  jobsAccepted: number;
  jobsCompleted: number;
  /** Worker starts of each job by id. */
  executions: Record<string, number>;
  /** Workers started since the mock began (cold starts). */
  workersStarted: number;
}

/** Endpoint settings as the REST management API shows them. */
export interface RunpodMockEndpoint {
  id: string;
  name: string;
  workersMin: number;
  workersMax: number;
  idleTimeout: number;
  scalerType: 'QUEUE_DELAY' | 'REQUEST_COUNT';
  scalerValue: number;
  gpuTypeIds: string[];
  gpuCount: number;
  executionTimeoutMs: number;
}

/** A running mock of hosted RunPod Serverless (job API and REST management API). */
export interface RunpodMock {
  /** Job API base to give `createRunpod` as `baseURL` (`http://127.0.0.1:<port>/v2`). */
  readonly url: string;
  /** REST base to give `createRunpodEndpointTarget` as `restBaseURL`. */
  readonly restUrl: string;
  readonly endpointId: string;
  readonly apiKey: string;
  readonly clock: Clock;
  /** The next jobs (FIFO) follow these plans instead of the default. */
  enqueuePlan(plan: MockJobPlan): void;
  /** The next requests to `route` fail with `failure.status`. */
  failNext(route: RunpodMockRoute, failure: MockFailure): void;
  /** Arranges the next submission for a conformance scenario and returns the job to submit. */
  arrange(scenario: ConformanceScenario): ConformanceJob;
  /** A job by id (also deleted ones, marked `deleted`). */
  job(id: string): RunpodMockJob | undefined;
  jobs(): RunpodMockJob[];
  stats(): RunpodMockStats;
  resetStats(): void;
  /** The endpoint's settings (REST view). */
  endpoint(): RunpodMockEndpoint;
  /** Requests held open now (long polls waiting). */
  heldRequests(): number;
  /** Resolves once at least `count` requests are held. */
  waitForHeld(count?: number): Promise<void>;
  /** Waits until every open request is held and things are quiet, then fires the next timer (virtual clock). */
  step(): Promise<boolean>;
  /** Cuts every open connection, as a client host that dies mid-request would. Jobs go on. */
  dropConnections(): number;
  close(): Promise<void>;
}

type Status = RunpodMockJob['status'];
const TERMINAL: Status[] = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];

interface Job extends RunpodMockJob {
  plan: MockJobPlan;
  policy: { executionTimeout: number; ttl: number };
  output?: unknown;
  error?: string;
  details?: string[];
  streamChunks: unknown[];
  streamCursor: number;
  timers: unknown[];
  ttlTimer?: unknown;
  retentionTimer?: unknown;
  retried: boolean;
}

interface Worker {
  id: string;
  state: 'initializing' | 'idle' | 'running' | 'throttled';
  jobId?: string;
  timer?: unknown;
}

interface Hold {
  jobId: string;
  kind: 'status-sync' | 'runsync' | 'stream';
  timer: unknown;
  answer: () => void;
}

const JSON_HEADERS = { 'content-type': 'application/json' };
const DEFAULT_WORKFLOW: ApiWorkflow = {
  '3': { class_type: 'KSampler', inputs: { seed: 1, steps: 20, model: ['4', 0] } },
  '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd_xl_base_1.0.safetensors' } },
  '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'ComfyUI', images: ['3', 0] } },
};

function isSteppable(clock: Clock): clock is SteppableClock {
  return (
    typeof (clock as Partial<SteppableClock>).next === 'function' &&
    typeof (clock as Partial<SteppableClock>).pending === 'function'
  );
}

function emptyCounts(): Record<RunpodMockRoute, number> {
  return {
    run: 0,
    runsync: 0,
    status: 0,
    'status-sync': 0,
    stream: 0,
    cancel: 0,
    retry: 0,
    'purge-queue': 0,
    health: 0,
    'rest-get': 0,
    'rest-patch': 0,
  };
}

/**
 * Starts a mock of hosted RunPod Serverless on 127.0.0.1 (a random port): `/run`,
 * `/runsync`, `/status`, `/status-sync`, `/stream`, `/cancel`, `/retry`, `/purge-queue`,
 * `/health`, and the REST `GET|PATCH /endpoints/{id}`, with workers, cold starts, rate
 * limits, retention windows and TTL on an injectable clock. Jobs behave like
 * worker-comfyui's.
 *
 * @example
 * const clock = createVirtualClock();
 * const mock = await startRunpodMock({ clock, autoAdvance: true, coldStartMs: 0 });
 * const runpod = createRunpod({ endpointId: mock.endpointId, apiKey: mock.apiKey, baseURL: mock.url, gpu: 'L4-24GB', clock });
 */
export async function startRunpodMock(options: RunpodMockOptions = {}): Promise<RunpodMock> {
  const clock = options.clock ?? systemClock;
  const endpointId = options.endpointId ?? 'mock-endpoint';
  const apiKey = options.apiKey ?? 'mock-api-key';
  const coldStartMs = options.coldStartMs ?? 5_000;
  const defaultExecutionMs = options.executionMs ?? 2_000;
  const runRetentionMs = options.runRetentionMs ?? 30 * 60_000;
  const runsyncRetentionMs = options.runsyncRetentionMs ?? 60_000;
  const streamHoldMs = options.streamHoldMs ?? 90_000;
  const statusSyncServed = options.statusSync ?? true;
  const gpusAvailable = options.gpusAvailable ?? Number.POSITIVE_INFINITY;
  const limiter = new MockRateLimiter(clock, { ...RUNPOD_RATE_LIMITS, ...(options.rateLimits ?? {}) });
  const endpointSettings: RunpodMockEndpoint = {
    id: endpointId,
    name: `${endpointId} (mock)`,
    workersMin: options.workersMin ?? 0,
    workersMax: options.workersMax ?? 3,
    idleTimeout: options.idleTimeoutSeconds ?? 5,
    scalerType: 'QUEUE_DELAY',
    scalerValue: 4,
    gpuTypeIds: ['NVIDIA GeForce RTX 4090'],
    gpuCount: 1,
    executionTimeoutMs: 600_000,
  };

  const jobs = new Map<string, Job>();
  const queue: string[] = [];
  const workers: Worker[] = [];
  const plans: MockJobPlan[] = [];
  const failures = new Map<RunpodMockRoute, MockFailure[]>();
  const holds = new Set<Hold>();
  const heldWaiters: Array<{ count: number; resolve: () => void }> = [];
  const openResponses = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  let counts = emptyCounts();
  let rateLimited = 0;
  let jobsAccepted = 0;
  let jobsCompleted = 0;
  let workersStarted = 0;
  let jobSequence = 0;
  let workerSequence = 0;
  let lastActivity = performance.now();
  let closed = false;

  // The mock's own timers, told apart from those of clients sleeping on the same clock.
  const ownTimers = new Set<unknown>();
  const setTimer = (callback: () => void, ms: number): unknown => {
    const handle: unknown = clock.setTimeout(() => {
      ownTimers.delete(handle);
      callback();
    }, ms);
    ownTimers.add(handle);
    return handle;
  };
  const clearTimer = (handle: unknown): void => {
    if (handle === undefined) return;
    ownTimers.delete(handle);
    clock.clearTimeout(handle);
  };

  const touch = () => {
    lastActivity = performance.now();
  };

  // ---- workers and jobs -------------------------------------------------------------

  const liveWorkers = () => workers.filter((worker) => worker.state !== 'throttled');

  const startWorker = (warm: boolean): void => {
    const allocated = liveWorkers().length;
    const worker: Worker = { id: `worker-${++workerSequence}`, state: 'initializing' };
    workers.push(worker);
    if (allocated >= gpusAvailable) {
      worker.state = 'throttled';
      return;
    }
    workersStarted += 1;
    if (warm || coldStartMs === 0) {
      worker.state = 'idle';
      return;
    }
    worker.timer = setTimer(() => {
      worker.timer = undefined;
      worker.state = 'idle';
      dispatch();
    }, coldStartMs);
  };

  const retireIdle = (worker: Worker): void => {
    if (worker.timer !== undefined) clearTimer(worker.timer);
    worker.timer = setTimer(() => {
      worker.timer = undefined;
      if (worker.state !== 'idle') return;
      if (liveWorkers().length <= endpointSettings.workersMin) return;
      workers.splice(workers.indexOf(worker), 1);
    }, endpointSettings.idleTimeout * 1000);
  };

  const scale = (): void => {
    // Keep workersMin up; start one worker per queued job not covered by an idle or starting one.
    while (workers.length < endpointSettings.workersMin) startWorker(false);
    const spare = workers.filter(
      (worker) => worker.state === 'idle' || worker.state === 'initializing',
    ).length;
    let needed = queue.length - spare;
    while (needed > 0 && workers.length < endpointSettings.workersMax) {
      startWorker(false);
      needed -= 1;
    }
    // Throttled workers get a GPU when one frees up.
    for (const worker of workers) {
      if (worker.state !== 'throttled') continue;
      if (liveWorkers().length >= gpusAvailable) break;
      workers.splice(workers.indexOf(worker), 1);
      startWorker(false);
    }
  };

  const freeWorker = (job: Job): void => {
    const worker = workers.find((candidate) => candidate.id === job.workerId);
    if (!worker) return;
    worker.state = 'idle';
    worker.jobId = undefined;
    retireIdle(worker);
  };

  const clearJobTimers = (job: Job): void => {
    for (const timer of job.timers) clearTimer(timer);
    job.timers = [];
  };

  const answerHolds = (job: Job, kinds?: Hold['kind'][]): void => {
    for (const hold of [...holds]) {
      if (hold.jobId !== job.id || (kinds && !kinds.includes(hold.kind))) continue;
      hold.answer();
    }
  };

  const finish = (job: Job, status: Status): void => {
    if (TERMINAL.includes(job.status)) return;
    const wasRunning = job.status === 'IN_PROGRESS';
    job.status = status;
    job.finishedAt = clock.now();
    clearJobTimers(job);
    const index = queue.indexOf(job.id);
    if (index >= 0) queue.splice(index, 1);
    if (status === 'COMPLETED') {
      jobsCompleted += 1;
      job.output = job.plan.output;
      // A handler that yields nothing streams its result as one chunk when it returns.
      if (job.streamChunks.length === 0 && job.output !== undefined) job.streamChunks.push(job.output);
    }
    if (status === 'FAILED') {
      job.error = job.plan.error ?? 'Job processing failed';
      if (job.plan.details) job.details = job.plan.details;
    }
    if (wasRunning) freeWorker(job);
    const retention = job.sync ? runsyncRetentionMs : runRetentionMs;
    if (job.retentionTimer !== undefined) clearTimer(job.retentionTimer);
    job.retentionTimer = setTimer(() => remove(job), retention);
    answerHolds(job);
    dispatch();
  };

  const remove = (job: Job): void => {
    if (job.deleted) return;
    const wasRunning = job.status === 'IN_PROGRESS';
    job.deleted = true;
    clearJobTimers(job);
    if (job.ttlTimer !== undefined) clearTimer(job.ttlTimer);
    if (job.retentionTimer !== undefined) clearTimer(job.retentionTimer);
    const index = queue.indexOf(job.id);
    if (index >= 0) queue.splice(index, 1);
    if (wasRunning) freeWorker(job);
    answerHolds(job);
    dispatch();
  };

  const start = (job: Job, worker: Worker): void => {
    worker.state = 'running';
    worker.jobId = job.id;
    if (worker.timer !== undefined) {
      clearTimer(worker.timer);
      worker.timer = undefined;
    }
    job.status = 'IN_PROGRESS';
    job.startedAt = clock.now();
    job.workerId = worker.id;
    job.executions += 1;
    const plan = job.plan;
    const executionMs = plan.executionMs ?? defaultExecutionMs;
    const timeout = job.policy.executionTimeout;
    const chunks = plan.stream ?? [];
    chunks.forEach((chunk, index) => {
      const at = Math.floor((executionMs * (index + 1)) / (chunks.length + 1));
      if (at >= timeout || plan.outcome === 'hang') return;
      job.timers.push(
        setTimer(() => {
          job.streamChunks.push(chunk);
          answerHolds(job, ['stream']);
        }, at),
      );
    });
    if (plan.outcome === 'hang' || executionMs >= timeout) {
      job.timers.push(setTimer(() => finish(job, 'TIMED_OUT'), timeout));
      return;
    }
    job.timers.push(
      setTimer(() => finish(job, plan.outcome === 'failed' ? 'FAILED' : 'COMPLETED'), executionMs),
    );
  };

  const dispatch = (): void => {
    for (;;) {
      const jobId = queue[0];
      if (jobId === undefined) break;
      const worker = workers.find((candidate) => candidate.state === 'idle');
      if (!worker) break;
      queue.shift();
      const job = jobs.get(jobId);
      if (job && job.status === 'IN_QUEUE' && !job.deleted) start(job, worker);
    }
    scale();
    // Workers that start without a cold start are idle at once: give them the queue.
    if (queue.length > 0 && workers.some((worker) => worker.state === 'idle')) dispatch();
  };

  const accept = (body: Record<string, unknown>, sync: boolean): Job => {
    const id = `${sync ? 'sync-' : ''}${(++jobSequence).toString(16).padStart(8, '0')}-mock-u1`;
    const policy = (body.policy ?? {}) as { executionTimeout?: number; ttl?: number };
    const plan =
      plans.shift() ??
      options.plan?.(body.input, { jobId: id }) ??
      planFromInput(body.input, {
        jobId: id,
        ...(options.models ? { models: options.models } : {}),
        ...(options.nodeTypes ? { nodeTypes: options.nodeTypes } : {}),
        ...(options.bucketUrl ? { bucketUrl: options.bucketUrl } : {}),
      });
    const derived =
      plan.output === undefined && (plan.outcome ?? 'completed') === 'completed'
        ? {
            ...plan,
            output: planFromInput(body.input, {
              jobId: id,
              ...(options.bucketUrl ? { bucketUrl: options.bucketUrl } : {}),
            }).output,
          }
        : plan;
    const job: Job = {
      id,
      status: 'IN_QUEUE',
      input: body.input,
      submittedAt: clock.now(),
      executions: 0,
      sync,
      deleted: false,
      plan: derived,
      policy: {
        executionTimeout: policy.executionTimeout ?? endpointSettings.executionTimeoutMs,
        ttl: policy.ttl ?? 86_400_000,
      },
      streamChunks: [],
      streamCursor: 0,
      timers: [],
      retried: false,
    };
    jobs.set(id, job);
    jobsAccepted += 1;
    job.ttlTimer = setTimer(() => remove(job), job.policy.ttl);
    queue.push(id);
    dispatch();
    return job;
  };

  // ---- HTTP ---------------------------------------------------------------------------

  const send = (
    response: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ) => {
    if (response.writableEnded || response.destroyed) return;
    response.writeHead(status, { ...JSON_HEADERS, ...headers });
    response.end(JSON.stringify(body));
  };

  const statusBody = (job: Job): Record<string, unknown> => {
    const body: Record<string, unknown> = { id: job.id, status: job.status };
    if (job.startedAt !== undefined) body.delayTime = job.startedAt - job.submittedAt;
    if (job.workerId !== undefined) body.workerId = job.workerId;
    if (job.finishedAt !== undefined && job.startedAt !== undefined)
      body.executionTime = job.finishedAt - job.startedAt;
    if (job.status === 'COMPLETED') body.output = job.output;
    if (job.status === 'FAILED') {
      body.error = job.error;
      if (job.details) body.details = job.details;
    }
    return body;
  };

  const notifyHeld = () => {
    for (const waiter of [...heldWaiters]) {
      if (holds.size >= waiter.count) {
        heldWaiters.splice(heldWaiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  };

  const hold = (
    response: ServerResponse,
    job: Job,
    kind: Hold['kind'],
    waitMs: number,
    ready: () => boolean,
    reply: () => void,
  ): void => {
    if (ready() || job.deleted) {
      reply();
      return;
    }
    const entry: Hold = {
      jobId: job.id,
      kind,
      timer: undefined,
      answer: () => {
        if (!holds.delete(entry)) return;
        clearTimer(entry.timer);
        reply();
      },
    };
    entry.timer = setTimer(entry.answer, waitMs);
    holds.add(entry);
    response.on('close', () => {
      if (holds.delete(entry)) clearTimer(entry.timer);
    });
    notifyHeld();
  };

  const readBody = (request: IncomingMessage, limit: number): Promise<{ text: string; tooLarge: boolean }> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let tooLarge = false;
      request.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) tooLarge = true;
        else chunks.push(chunk);
      });
      request.on('end', () => resolve({ text: Buffer.concat(chunks).toString('utf8'), tooLarge }));
      request.on('error', reject);
    });

  const unknownJob = (response: ServerResponse) => send(response, 404, { error: 'request does not exist' });

  const liveJob = (id: string): Job | undefined => {
    const job = jobs.get(decodeURIComponent(id));
    return job && !job.deleted ? job : undefined;
  };

  const waitParam = (url: URL, fallback: number, min: number, max: number): number => {
    const raw = url.searchParams.get('wait');
    const value = raw === null ? fallback : Number(raw);
    return Number.isFinite(value) ? Math.min(max, Math.max(min, value)) : fallback;
  };

  const rateRouteOf = (route: RunpodMockRoute): RunpodRateRoute | undefined => {
    if (route === 'status' || route === 'status-sync') return 'status';
    if (
      route === 'run' ||
      route === 'runsync' ||
      route === 'stream' ||
      route === 'cancel' ||
      route === 'purge-queue'
    )
      return route;
    return undefined;
  };

  const validPolicy = (body: Record<string, unknown>): string | undefined => {
    if (!('input' in body) || body.input === undefined) return 'input is required';
    const policy = body.policy as Record<string, unknown> | undefined;
    if (policy !== undefined) {
      if (policy.executionTimeout !== undefined && !(Number(policy.executionTimeout) >= 5_000))
        return 'policy.executionTimeout must be at least 5000 ms';
      if (policy.ttl !== undefined && !(Number(policy.ttl) >= 10_000))
        return 'policy.ttl must be at least 10000 ms';
    }
    return undefined;
  };

  const handleJobApi = async (
    route: RunpodMockRoute,
    parts: string[],
    url: URL,
    request: IncomingMessage,
    response: ServerResponse,
  ) => {
    switch (route) {
      case 'run':
      case 'runsync': {
        const limit = route === 'run' ? 10_000_000 : 20_000_000;
        const { text, tooLarge } = await readBody(request, limit);
        if (tooLarge)
          return send(response, 413, {
            error: `request body over ${limit / 1_000_000} MB; send large inputs by URL`,
          });
        let body: Record<string, unknown>;
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          return send(response, 400, { error: 'invalid JSON body' });
        }
        const problem = body && typeof body === 'object' ? validPolicy(body) : 'body must be an object';
        if (problem) return send(response, 400, { error: problem });
        const job = accept(body, route === 'runsync');
        if (route === 'run') return send(response, 200, { id: job.id, status: 'IN_QUEUE' });
        const waitMs = waitParam(url, 90_000, 1_000, 300_000);
        return hold(
          response,
          job,
          'runsync',
          waitMs,
          () => TERMINAL.includes(job.status),
          () => send(response, 200, statusBody(job)),
        );
      }
      case 'status':
      case 'status-sync': {
        const job = liveJob(parts[1] ?? '');
        if (!job) return unknownJob(response);
        if (route === 'status') return send(response, 200, statusBody(job));
        const waitMs = waitParam(url, 90_000, 1_000, 90_000);
        return hold(
          response,
          job,
          'status-sync',
          waitMs,
          () => TERMINAL.includes(job.status),
          () => (job.deleted ? unknownJob(response) : send(response, 200, statusBody(job))),
        );
      }
      case 'stream': {
        const job = liveJob(parts[1] ?? '');
        if (!job) return unknownJob(response);
        const fresh = () => job.streamChunks.length > job.streamCursor;
        return hold(
          response,
          job,
          'stream',
          streamHoldMs,
          () => fresh() || TERMINAL.includes(job.status),
          () => {
            if (job.deleted) return unknownJob(response);
            const chunks = job.streamChunks.slice(job.streamCursor).map((output) => ({ output }));
            job.streamCursor = job.streamChunks.length;
            send(response, 200, {
              status: job.status,
              stream: chunks,
              ...(job.status === 'FAILED' ? { error: job.error } : {}),
            });
          },
        );
      }
      case 'cancel': {
        const job = liveJob(parts[1] ?? '');
        if (!job) return unknownJob(response);
        if (!TERMINAL.includes(job.status)) finish(job, 'CANCELLED');
        return send(response, 200, { id: job.id, status: job.status });
      }
      case 'retry': {
        const job = liveJob(parts[1] ?? '');
        if (!job) return unknownJob(response);
        if (job.status !== 'FAILED' && job.status !== 'TIMED_OUT')
          return send(response, 400, {
            error: `job ${job.id} is ${job.status}; only FAILED or TIMED_OUT jobs can be retried`,
          });
        if (job.retentionTimer !== undefined) clearTimer(job.retentionTimer);
        job.status = 'IN_QUEUE';
        job.retried = true;
        delete job.finishedAt;
        delete job.startedAt;
        delete job.error;
        delete job.details;
        queue.push(job.id);
        dispatch();
        return send(response, 200, { id: job.id, status: 'IN_QUEUE' });
      }
      case 'purge-queue': {
        let removed = 0;
        for (const jobId of [...queue]) {
          const job = jobs.get(jobId);
          if (!job) continue;
          finish(job, 'CANCELLED');
          removed += 1;
        }
        return send(response, 200, { removed, status: 'completed' });
      }
      case 'health': {
        const all = [...jobs.values()].filter((job) => !job.deleted);
        return send(response, 200, {
          jobs: {
            completed: all.filter((job) => job.status === 'COMPLETED').length,
            failed: all.filter((job) => job.status === 'FAILED' || job.status === 'TIMED_OUT').length,
            inProgress: all.filter((job) => job.status === 'IN_PROGRESS').length,
            inQueue: all.filter((job) => job.status === 'IN_QUEUE').length,
            retried: all.filter((job) => job.retried).length,
          },
          workers: {
            idle: workers.filter((worker) => worker.state === 'idle').length,
            running: workers.filter((worker) => worker.state === 'running').length,
            initializing: workers.filter((worker) => worker.state === 'initializing').length,
            throttled: workers.filter((worker) => worker.state === 'throttled').length,
          },
        });
      }
      default:
        return send(response, 404, { error: 'not found' });
    }
  };

  const validatePatch = (patch: Record<string, unknown>): string | undefined => {
    const next = { ...endpointSettings, ...patch } as Record<string, unknown>;
    const integer = (name: string, min: number, max: number) => {
      const value = next[name];
      return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max
        ? undefined
        : `${name} must be an integer from ${min} to ${max}`;
    };
    const unknownKey = Object.keys(patch).find(
      (key) =>
        ![
          'workersMin',
          'workersMax',
          'idleTimeout',
          'scalerType',
          'scalerValue',
          'name',
          'gpuTypeIds',
          'executionTimeoutMs',
        ].includes(key),
    );
    if (unknownKey) return `unknown field ${unknownKey}`;
    const problem =
      integer('workersMin', 0, 1_000) ??
      integer('workersMax', 0, 1_000) ??
      integer('idleTimeout', 1, 3_600) ??
      integer('scalerValue', 1, 3_600) ??
      integer('executionTimeoutMs', 5_000, 7 * 24 * 3_600_000);
    if (problem) return problem;
    if ((next.workersMin as number) > (next.workersMax as number))
      return 'workersMin must not exceed workersMax';
    if (next.scalerType !== 'QUEUE_DELAY' && next.scalerType !== 'REQUEST_COUNT')
      return 'scalerType must be QUEUE_DELAY or REQUEST_COUNT';
    return undefined;
  };

  const handleRest = async (route: RunpodMockRoute, request: IncomingMessage, response: ServerResponse) => {
    if (route === 'rest-get')
      return send(response, 200, { ...endpointSettings, gpuTypeIds: [...endpointSettings.gpuTypeIds] });
    const { text } = await readBody(request, 1_000_000);
    let patch: Record<string, unknown>;
    try {
      patch = JSON.parse(text || '{}') as Record<string, unknown>;
    } catch {
      return send(response, 400, { error: 'invalid JSON body' });
    }
    const problem =
      patch && typeof patch === 'object' && !Array.isArray(patch)
        ? validatePatch(patch)
        : 'body must be an object';
    if (problem) return send(response, 400, { error: problem });
    Object.assign(endpointSettings, patch);
    // Fewer workers allowed: idle ones above the new maximum go at once.
    for (const worker of [...workers]) {
      if (workers.length <= endpointSettings.workersMax) break;
      if (worker.state === 'idle' || worker.state === 'throttled' || worker.state === 'initializing') {
        if (worker.timer !== undefined) clearTimer(worker.timer);
        workers.splice(workers.indexOf(worker), 1);
      }
    }
    dispatch();
    return send(response, 200, { ...endpointSettings, gpuTypeIds: [...endpointSettings.gpuTypeIds] });
  };

  const routeOf = (
    method: string,
    path: string[],
  ): { kind: 'job' | 'rest'; route: RunpodMockRoute; parts: string[] } | undefined => {
    if (path[0] === 'v2' && path[1] === endpointId) {
      const parts = path.slice(2);
      const name = parts[0] ?? '';
      const table: Record<string, { method: string; route: RunpodMockRoute; withId: boolean }> = {
        run: { method: 'POST', route: 'run', withId: false },
        runsync: { method: 'POST', route: 'runsync', withId: false },
        status: { method: 'GET', route: 'status', withId: true },
        'status-sync': { method: 'GET', route: 'status-sync', withId: true },
        stream: { method: 'GET', route: 'stream', withId: true },
        cancel: { method: 'POST', route: 'cancel', withId: true },
        retry: { method: 'POST', route: 'retry', withId: true },
        'purge-queue': { method: 'POST', route: 'purge-queue', withId: false },
        health: { method: 'GET', route: 'health', withId: false },
      };
      const entry = table[name];
      if (!entry || entry.method !== method || (entry.withId ? parts.length !== 2 : parts.length !== 1))
        return undefined;
      if (entry.route === 'status-sync' && !statusSyncServed) return undefined;
      return { kind: 'job', route: entry.route, parts };
    }
    if (
      path[0] === 'rest' &&
      path[1] === 'v1' &&
      path[2] === 'endpoints' &&
      path[3] === endpointId &&
      path.length === 4
    ) {
      if (method === 'GET') return { kind: 'rest', route: 'rest-get', parts: [] };
      if (method === 'PATCH') return { kind: 'rest', route: 'rest-patch', parts: [] };
    }
    return undefined;
  };

  const server = createServer((request, response) => {
    touch();
    openResponses.add(response);
    response.on('close', () => {
      openResponses.delete(response);
      touch();
    });
    void (async () => {
      const url = new URL(request.url ?? '/', 'http://127.0.0.1');
      const path = url.pathname.split('/').filter((part) => part !== '');
      const authorization = request.headers.authorization ?? '';
      const match = routeOf(request.method ?? 'GET', path);
      if (!match) {
        // Unknown endpoints and routes both answer 404, as RunPod does.
        await readBody(request, 1_000_000).catch(() => undefined);
        return send(response, 404, { error: 'not found' });
      }
      counts[match.route] += 1;
      if (authorization !== `Bearer ${apiKey}` && authorization !== apiKey) {
        await readBody(request, 50_000_000).catch(() => undefined);
        return send(response, 401, { error: 'Unauthorized' });
      }
      const injected = failures.get(match.route);
      const failure = injected?.[0];
      if (failure && injected) {
        failure.count = (failure.count ?? 1) - 1;
        if (failure.count <= 0) injected.shift();
        await readBody(request, 50_000_000).catch(() => undefined);
        if (failure.status === 429) rateLimited += 1;
        return send(
          response,
          failure.status,
          failure.body ?? { error: `injected ${failure.status}` },
          failure.retryAfterSeconds === undefined ? {} : { 'retry-after': String(failure.retryAfterSeconds) },
        );
      }
      const rateRoute = rateRouteOf(match.route);
      if (rateRoute) {
        const retryAfter = limiter.admit(rateRoute);
        if (retryAfter !== undefined) {
          rateLimited += 1;
          await readBody(request, 50_000_000).catch(() => undefined);
          return send(response, 429, { error: 'rate limit exceeded' }, { 'retry-after': String(retryAfter) });
        }
        response.on('close', () => limiter.release(rateRoute));
      }
      if (match.kind === 'rest') return handleRest(match.route, request, response);
      return handleJobApi(match.route, match.parts, url, request, response);
    })().catch((error: unknown) => send(response, 500, { error: String(error) }));
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;

  // Workers of workersMin are up (warm) from the start.
  for (let index = 0; index < endpointSettings.workersMin; index++) startWorker(true);

  const quietMs =
    typeof options.autoAdvance === 'object'
      ? (options.autoAdvance.quietMs ?? 10)
      : options.autoAdvance
        ? 10
        : 10;
  // Time may jump only while every client waits on the clock: each open request is held, and
  // someone is waiting (a held request, or a client's own timer such as a backoff sleep).
  // A client between two requests holds nothing and sleeps on nothing, so time stays put.
  const isQuiet = (steppable: SteppableClock) =>
    openResponses.size === holds.size &&
    (holds.size > 0 || steppable.pending() > ownTimers.size) &&
    performance.now() - lastActivity >= quietMs;

  const step = async (): Promise<boolean> => {
    if (!isSteppable(clock))
      throw new Error('step() needs a virtual clock (createVirtualClock) as the mock clock.');
    for (;;) {
      if (closed) return false;
      // Explicit steps do not need a waiting client: only that no request is being worked on.
      if (openResponses.size === holds.size && performance.now() - lastActivity >= quietMs) break;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const fired = await clock.next();
    touch();
    return fired;
  };

  let advancer: ReturnType<typeof setInterval> | undefined;
  if (options.autoAdvance) {
    if (!isSteppable(clock))
      throw new Error(
        'autoAdvance needs a virtual clock (createVirtualClock from @comfy-serverless/core/test).',
      );
    let advancing = false;
    advancer = setInterval(() => {
      if (advancing || closed || !isQuiet(clock)) return;
      advancing = true;
      void clock.next().finally(() => {
        advancing = false;
        touch();
      });
    }, 1);
    advancer.unref();
  }

  const mock: RunpodMock = {
    url: `${origin}/v2`,
    restUrl: `${origin}/rest/v1`,
    endpointId,
    apiKey,
    clock,
    enqueuePlan(plan) {
      plans.push({ ...plan });
    },
    failNext(route, failure) {
      const list = failures.get(route) ?? [];
      list.push({ ...failure, count: failure.count ?? 1 });
      failures.set(route, list);
    },
    arrange(scenario) {
      switch (scenario) {
        case 'success':
          mock.enqueuePlan({ executionMs: 3_000 });
          break;
        case 'execution-failure':
          mock.enqueuePlan({
            executionMs: 1_500,
            outcome: 'failed',
            error: 'Job processing failed',
            details: [
              'Workflow execution error: Node Type: KSampler, Node ID: 3, Message: CUDA out of memory',
            ],
          });
          break;
        case 'long-running':
          mock.enqueuePlan({ outcome: 'hang' });
          break;
        case 'submit-retryable-error':
          mock.failNext('run', { status: 503, body: { error: 'service unavailable' } });
          break;
        case 'submit-fatal-error':
          mock.failNext('run', { status: 401, body: { error: 'Unauthorized' } });
          break;
      }
      return { workflow: structuredClone(DEFAULT_WORKFLOW), images: [] };
    },
    job(id) {
      const job = jobs.get(id);
      if (!job) return undefined;
      return {
        id: job.id,
        status: job.status,
        input: job.input,
        submittedAt: job.submittedAt,
        executions: job.executions,
        sync: job.sync,
        deleted: job.deleted,
        ...(job.startedAt === undefined ? {} : { startedAt: job.startedAt }),
        ...(job.finishedAt === undefined ? {} : { finishedAt: job.finishedAt }),
        ...(job.workerId === undefined ? {} : { workerId: job.workerId }),
      };
    },
    jobs() {
      return [...jobs.keys()].flatMap((id) => {
        const job = mock.job(id);
        return job ? [job] : [];
      });
    },
    stats() {
      const executions: Record<string, number> = {};
      for (const job of jobs.values()) executions[job.id] = job.executions;
      return {
        requests: { ...counts },
        totalRequests: Object.values(counts).reduce((sum, value) => sum + value, 0),
        rateLimited,
        jobsAccepted,
        jobsCompleted,
        executions,
        workersStarted,
      };
    },
    resetStats() {
      counts = emptyCounts();
      rateLimited = 0;
      jobsAccepted = 0;
      jobsCompleted = 0;
      workersStarted = 0;
    },
    endpoint() {
      return { ...endpointSettings, gpuTypeIds: [...endpointSettings.gpuTypeIds] };
    },
    heldRequests: () => holds.size,
    waitForHeld(count = 1) {
      if (holds.size >= count) return Promise.resolve();
      return new Promise((resolve) => heldWaiters.push({ count, resolve }));
    },
    step,
    dropConnections() {
      let dropped = 0;
      for (const response of [...openResponses]) {
        response.socket?.destroy();
        dropped += 1;
      }
      return dropped;
    },
    async close() {
      closed = true;
      if (advancer) clearInterval(advancer);
      for (const entry of [...holds]) {
        holds.delete(entry);
        clearTimer(entry.timer);
      }
      for (const job of jobs.values()) {
        clearJobTimers(job);
        if (job.ttlTimer !== undefined) clearTimer(job.ttlTimer);
        if (job.retentionTimer !== undefined) clearTimer(job.retentionTimer);
      }
      for (const worker of workers) if (worker.timer !== undefined) clearTimer(worker.timer);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return mock;
}
