import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import PQueue from 'p-queue';
import { retryDelayMs, withRetry } from '../http/retry';
import { estimateModelLoadMs } from '../images/model-load-estimate';
import type { Clock } from '../spec/clock';
import {
  ApiCallError,
  ComfyExecutionError,
  ComfyServerlessError,
  ComfyValidationError,
  InvalidArgumentError,
  JobCancelledError,
  JobConflictError,
  JobExpiredError,
  JobFailedError,
  JobTimeoutError,
  NoProviderError,
  type SerializedError,
  SubmissionUnknownError,
  toComfyServerlessError,
} from '../spec/errors';
import {
  type InputImage,
  isTerminalStatus,
  type JobEvent,
  type JobOutput,
  type JobResult,
  type ProviderJobEvent,
  type RemoteJobRef,
  type WorkflowRequirements,
} from '../spec/job';
import type {
  JobAttempt,
  JobJournalV1,
  JobRecord,
  JobRecordPatch,
  NewJobRecord,
} from '../spec/job-journal-v1';
import type { ProviderHealth, ProviderV1 } from '../spec/provider-v1';
import type { DemandSnapshot } from '../spec/scaling-policy-v1';
import { attachLogger } from '../telemetry/attach-logger';
import {
  collectPerformance,
  type JobLedger,
  type PerformanceKpis,
  type PerformanceReport,
  type PerformanceReportQuery,
} from '../telemetry/performance-report';
import { sleep, systemClock, unrefTimer } from '../util/clock';
import { CircuitBreaker } from './breaker';
import { DemandWindow } from './demand-window';
import { type JobHandle, JobRun } from './job-run';
import { createMemoryJournal, synchronousJournalOf } from './memory-journal';
import { type DispatcherOptions, validateDispatcherOptions } from './options';
import { hashRequest, payloadBytes, prepareWorkflow } from './prepare';
import { type RouteDecision, type RouteProviderSnapshot, type RouteRequest, routeJob } from './router';

/** Options of one job. */
export interface RunWorkflowOptions {
  /** Input patches by `"node.input"` path or `"Node Title.input"`, applied to a copy of the workflow. */
  inputs?: Record<string, unknown>;
  /** Images for `LoadImage` nodes, by name. */
  images?: InputImage[];
  /** The idempotency key: the same id gives the same job, also after it finished. @default a random UUID */
  jobId?: string;
  /** Cancels the job (remotely too) when it aborts; the job ends as cancelled. */
  signal?: AbortSignal;
  /** Deadline from now, ms; the job ends as timed_out (and is cancelled remotely) when it passes. */
  timeoutMs?: number;
  /** Called with every event of this job. */
  onEvent?: (event: JobEvent) => void;
  /** Prefer providers expected to finish within this many ms. */
  latencyBudgetMs?: number;
  /** Prefer providers in this region. */
  region?: string;
  /** Passed through to providers (user id, tags). */
  metadata?: Record<string, string>;
}

/** Dispatcher-wide events, named `job:<type>` after the job events, plus provider events. */
export type DispatcherEvents = {
  [Type in JobEvent['type'] as `job:${Type}`]: (event: Extract<JobEvent, { type: Type }>) => void;
} & {
  'provider:circuit-open': (event: { providerId: string; at: number }) => void;
  'provider:health': (event: { providerId: string; health: ProviderHealth }) => void;
  /** One call to a provider: how long it took and how it ended (for API latency metrics). */
  'provider:call': (event: ProviderCallEvent) => void;
};

/** One call the dispatcher made to a provider. */
export interface ProviderCallEvent {
  providerId: string;
  call: 'submit' | 'cancel' | 'health' | 'lookup';
  durationMs: number;
  ok: boolean;
  /** The HTTP status of a failed call, when there was one. */
  statusCode?: number;
  at: number;
}

/** The load the dispatcher sees, for autoscalers. */
export interface DispatcherMetrics {
  demand: DemandSnapshot;
  providers: Record<string, { queueDepth: number; inFlight: number }>;
}

/** Runs ComfyUI workflows on a set of providers. */
export interface Dispatcher {
  /** Runs a workflow to the end: resolves with the result, rejects with a typed error. */
  runWorkflow(workflow: unknown, options?: RunWorkflowOptions): Promise<JobResult>;
  /** Accepts a workflow and returns at once with a handle to follow it. */
  submit(workflow: unknown, options?: RunWorkflowOptions): Promise<JobHandle>;
  /** The journal's record of a job. */
  get(jobId: string): Promise<JobRecord | undefined>;
  /** Cancels a job by id, also one this process did not start (it is cancelled remotely and journalled). */
  cancel(jobId: string, reason?: string): Promise<void>;
  /** Re-attaches to every non-terminal job in the journal (after a restart); returns their handles. */
  resume(): Promise<JobHandle[]>;
  /** Current demand and per-provider load. */
  metrics(): DispatcherMetrics;
  /** Typed events for every job. */
  readonly events: EventEmitter<DispatcherEvents>;
  readonly providers: readonly ProviderV1[];
  readonly journal: JobJournalV1;
  /**
   * KPIs over a period (the last 15 minutes by default): throughput, latency quantiles,
   * cost per job, cold-start share, error rate by provider, and the largest bottleneck.
   */
  report(query?: PerformanceReportQuery): PerformanceKpis;
  /** Stops the dispatcher's own timers (claim renewal, take-over); running jobs are left to finish. */
  close(): void;
}

interface ProviderState {
  provider: ProviderV1;
  breaker: CircuitBreaker;
  queue: PQueue;
  health: ProviderHealth | undefined;
  healthAt: number;
  healthPending: boolean;
  /** Admitted to this provider, not yet started. */
  queued: number;
  /** Started, not yet finished. */
  inFlight: number;
  /** Moving average of execution time, ms. */
  executionMs: number | undefined;
}

interface RunContext {
  run: JobRun;
  /**
   * This process's view of the job's record, updated in place beside each journal write
   * (with the memory journal it is the journal's own record; no second copy is kept).
   */
  record: JobRecord;
  requirements: WorkflowRequirements;
  options: RunWorkflowOptions;
  /** Where the job is known to be, when it has been submitted. */
  remote: { state: ProviderState; ref: RemoteJobRef } | undefined;
  executionStarted: boolean;
  startedAt: number | undefined;
  coldStartMs: number | undefined;
  attempts: number;
  deadlineTimer: unknown;
  /** Counted in a provider's `queued` (true) or `inFlight` (false) while admitted. */
  admittedTo: ProviderState | undefined;
  /** Size of the request on the wire, for providers' payload limits. */
  payloadBytes: number;
  /** Set on resume when the job was being sent to this provider when its process died. */
  unknownSubmission: ProviderState | undefined;
  waitingInGlobalQueue: boolean;
  /** The provider of the attempt in progress, for the report's error rates. */
  routedTo: string | undefined;
}

type AttemptOutcome =
  | { kind: 'completed'; event: Extract<ProviderJobEvent, { type: 'completed' }>; outputs: JobOutput[] }
  | { kind: 'failed'; error: ComfyServerlessError; executionStarted: boolean }
  | { kind: 'cancelled-remotely' };

const SERIALIZED_ERROR_CLASSES: Record<string, (error: SerializedError) => ComfyServerlessError> = {
  ComfyValidationError: (error) =>
    new ComfyValidationError({
      message: error.message,
      type: typeof error.type === 'string' ? error.type : 'invalid_prompt',
      nodeErrors: Array.isArray(error.nodeErrors)
        ? (error.nodeErrors as ComfyValidationError['nodeErrors'])
        : [],
      isRetryable: error.isRetryable,
    }),
  ComfyExecutionError: (error) =>
    new ComfyExecutionError({
      message: error.message,
      isRetryable: error.isRetryable,
      ...(typeof error.nodeId === 'string' ? { nodeId: error.nodeId } : {}),
      ...(typeof error.nodeType === 'string' ? { nodeType: error.nodeType } : {}),
    }),
  JobTimeoutError: (error) => new JobTimeoutError({ message: error.message, isRetryable: error.isRetryable }),
  JobExpiredError: (error) => new JobExpiredError({ message: error.message }),
  JobCancelledError: (error) => new JobCancelledError({ message: error.message }),
};

/** Turns an error a provider reported (an Error or its JSON form) into a typed error. */
function reviveError(
  error: SerializedError | Error,
  providerId: string,
  jobId: string,
): ComfyServerlessError {
  if (error instanceof Error || ComfyServerlessError.isInstance(error)) {
    return toComfyServerlessError(error, { providerId, jobId });
  }
  const make = SERIALIZED_ERROR_CLASSES[error.name];
  const revived = make
    ? make(error)
    : new JobFailedError({
        message: String(error.message ?? 'The job failed'),
        isRetryable: error.isRetryable === true,
      });
  revived.providerId = providerId;
  revived.jobId = jobId;
  return revived;
}

function billedSeconds(ms: number, incrementSeconds: number): number {
  if (!(ms > 0)) return 0;
  // The small tolerance keeps 2000 ms from being billed as 3 s through float error.
  return Math.ceil(ms / 1000 / incrementSeconds - 1e-9) * incrementSeconds;
}

/**
 * Creates a dispatcher over a set of providers.
 *
 * @example
 * const dispatcher = createDispatcher({ providers: [createRunpod({ endpointId: 'abc', gpu: 'L4-24GB' })] });
 * const result = await dispatcher.runWorkflow(workflow, { inputs: { '6.text': 'a lighthouse' } });
 */
export function createDispatcher(options: DispatcherOptions): Dispatcher {
  validateDispatcherOptions(options);
  const clock: Clock = options.clock ?? systemClock;
  const journal = options.journal ?? createMemoryJournal({ now: () => clock.now() });
  const syncJournal = synchronousJournalOf(journal);
  const owner = options.owner ?? `dispatcher-${randomUUID()}`;
  const claimTtlMs = options.claimTtlMs ?? 30_000;
  const retry = {
    submitRetries: options.retry?.submitRetries ?? 3,
    watchRetries: options.retry?.watchRetries ?? 8,
    minDelayMs: options.retry?.minDelayMs ?? 500,
    maxDelayMs: options.retry?.maxDelayMs ?? 30_000,
    rerunAfterStart: options.retry?.rerunAfterStart ?? false,
    maxAttempts: options.retry?.maxAttempts ?? 4,
    random: options.retry?.random ?? Math.random,
  };
  const routerOptions = options.router ?? {};
  const route = routerOptions.route ?? routeJob;
  const healthTtlMs = routerOptions.healthTtlMs ?? 10_000;
  const defaultExecutionMs = routerOptions.defaultExecutionMs ?? 30_000;
  const defaultColdStartMs = routerOptions.defaultColdStartMs ?? 20_000;
  const emitter = new EventEmitter<DispatcherEvents>();
  /** The built-in report, told of each job as it ends (set once the dispatcher exists). */
  let ledger: JobLedger | undefined;
  const globalQueue = new PQueue({ concurrency: options.concurrency?.global ?? 1000 });
  const demand = new DemandWindow(clock);
  const runs = new Map<string, RunContext>();
  const pendingSubmissions = new Map<string, Promise<JobHandle>>();

  const states = new Map<string, ProviderState>();
  for (const provider of options.providers) {
    const perProvider = options.concurrency?.perProvider;
    const concurrency =
      (typeof perProvider === 'number' ? perProvider : perProvider?.[provider.id]) ??
      provider.limits?.maxConcurrency ??
      Number.POSITIVE_INFINITY;
    states.set(provider.id, {
      provider,
      breaker: new CircuitBreaker(clock, routerOptions.breaker),
      queue: new PQueue({ concurrency }),
      health: undefined,
      healthAt: Number.NEGATIVE_INFINITY,
      healthPending: false,
      queued: 0,
      inFlight: 0,
      executionMs: provider.expectedExecutionMs,
    });
  }

  const broadcast = (event: JobEvent) => {
    const name = BROADCAST_NAMES[event.type];
    // Most events of most jobs have no listener: skip the emitter's work for them.
    if (emitter.listenerCount(name) > 0)
      (emitter.emit as (name: string, payload: unknown) => boolean)(name, event);
  };

  /** Times one provider call and reports it as a `provider:call` event. */
  async function timed<T>(
    state: ProviderState,
    call: ProviderCallEvent['call'],
    task: () => Promise<T>,
  ): Promise<T> {
    if (emitter.listenerCount('provider:call') === 0) return task();
    const started = clock.now();
    try {
      const value = await task();
      emitter.emit('provider:call', {
        providerId: state.provider.id,
        call,
        durationMs: clock.now() - started,
        ok: true,
        at: started,
      });
      return value;
    } catch (error) {
      const statusCode = ApiCallError.isInstance(error) ? error.statusCode : undefined;
      emitter.emit('provider:call', {
        providerId: state.provider.id,
        call,
        durationMs: clock.now() - started,
        ok: false,
        ...(statusCode === undefined ? {} : { statusCode }),
        at: started,
      });
      throw error;
    }
  }

  /**
   * Runs a task under a queue's bound. A queue with room runs it at once, and then needs no
   * abort listener (a job can only be withdrawn while it waits); an unbounded one is skipped.
   */
  function admitted<T>(queue: PQueue, task: () => Promise<T>, signal: AbortSignal): Promise<T> {
    if (queue.concurrency === Number.POSITIVE_INFINITY) {
      return signal.aborted ? Promise.reject(signal.reason) : task();
    }
    if (queue.size === 0 && queue.pending < queue.concurrency) {
      if (signal.aborted) return Promise.reject(signal.reason);
      return queue.add(task) as Promise<T>;
    }
    return queue.add(task, { signal }) as Promise<T>;
  }

  function refreshHealth(state: ProviderState): void {
    if (state.healthPending || clock.now() - state.healthAt < healthTtlMs) return;
    state.healthPending = true;
    timed(state, 'health', () => state.provider.doHealth()).then(
      (health) => {
        state.health = health;
        state.healthAt = clock.now();
        state.healthPending = false;
        emitter.emit('provider:health', { providerId: state.provider.id, health });
      },
      () => {
        // A failed health check is no verdict on its own: the breaker judges real jobs.
        state.healthAt = clock.now();
        state.healthPending = false;
      },
    );
  }

  function modelLoadMsFor(
    requirements: WorkflowRequirements,
    image: NonNullable<ProviderV1['image']>,
  ): number {
    const estimate = estimateModelLoadMs(requirements, image, {
      bytesPerSecond: routerOptions.modelBandwidthBytesPerSecond ?? 100e6,
    });
    // Infinity (missing and cannot load) is the router's to refuse, with its reason.
    return Number.isFinite(estimate) ? estimate : 0;
  }

  function snapshotOf(state: ProviderState, requirements: WorkflowRequirements): RouteProviderSnapshot {
    const { provider } = state;
    // Built field by field rather than with conditional spreads: this runs for every
    // provider on every job, and spreads cost an object each.
    const snapshot: RouteProviderSnapshot = {
      id: provider.id,
      gpu: provider.gpu,
      pricing: provider.pricing,
      coldStartMs: provider.coldStartMs ?? provider.image?.coldStartMs ?? defaultColdStartMs,
      expectedExecutionMs: state.executionMs ?? defaultExecutionMs,
      available: state.breaker.allows(),
      queued: state.queued,
      inFlight: state.inFlight,
      maxConcurrency: state.queue.concurrency,
    };
    if (provider.region !== undefined) snapshot.region = provider.region;
    if (provider.image !== undefined) {
      snapshot.image = provider.image;
      // Only an image that says what it holds can be judged; an undescribed one is assumed ready.
      snapshot.modelLoadMs = modelLoadMsFor(requirements, provider.image);
    }
    if (state.health !== undefined) snapshot.health = state.health;
    const maxPayloadBytes = provider.limits?.maxPayloadBytes;
    if (maxPayloadBytes !== undefined) snapshot.maxPayloadBytes = maxPayloadBytes;
    return snapshot;
  }

  function routeFor(context: RunContext, exclude: readonly string[] | undefined): RouteDecision {
    const snapshots: RouteProviderSnapshot[] = [];
    for (const state of states.values()) {
      refreshHealth(state);
      if (exclude === undefined || !exclude.includes(state.provider.id))
        snapshots.push(snapshotOf(state, context.requirements));
    }
    const budget = context.options.latencyBudgetMs ?? routerOptions.latencyBudgetMs;
    const region = context.options.region ?? routerOptions.preferRegion;
    const request: RouteRequest = {
      payloadBytes: context.payloadBytes,
      models: context.requirements.models,
      nodeTypes: context.requirements.nodeTypes,
      providers: snapshots,
    };
    if (context.requirements.vramGbEstimate !== undefined)
      request.vramGbEstimate = context.requirements.vramGbEstimate;
    if (budget !== undefined) request.latencyBudgetMs = budget;
    if (region !== undefined) request.preferRegion = region;
    if (routerOptions.regions !== undefined) request.regions = routerOptions.regions;
    return route(request);
  }

  function noteFailure(state: ProviderState, error: ComfyServerlessError): void {
    // Only faults of the platform count against it; a broken workflow fails everywhere.
    if (!error.isRetryable) return;
    if (state.breaker.onFailure()) {
      emitter.emit('provider:circuit-open', { providerId: state.provider.id, at: clock.now() });
    }
  }

  function admit(context: RunContext, state: ProviderState): void {
    leave(context);
    context.admittedTo = state;
    if (context.executionStarted) state.inFlight += 1;
    else state.queued += 1;
  }

  function leave(context: RunContext): void {
    const state = context.admittedTo;
    if (state === undefined) return;
    if (context.executionStarted) state.inFlight -= 1;
    else state.queued -= 1;
    context.admittedTo = undefined;
  }

  async function journalSafely(jobId: string, patch: JobRecordPatch): Promise<void> {
    const pending = journalWrite(jobId, patch);
    if (pending !== undefined) await pending;
  }

  /**
   * Writes a patch to the journal: at once (undefined) when the journal lives in this
   * process's memory, else a promise. A refused backwards transition means another process
   * already finished the job, and is not an error here.
   */
  function journalWrite(jobId: string, patch: JobRecordPatch): Promise<void> | undefined {
    if (syncJournal === undefined) return journal.update(jobId, patch).then(ignore, ignoreRefusal);
    try {
      syncJournal.update(jobId, patch);
    } catch (error) {
      ignoreRefusal(error);
    }
    return undefined;
  }

  function markStarted(
    context: RunContext,
    state: ProviderState,
    coldStartMs?: number,
    workerId?: string,
  ): Promise<void> | undefined {
    if (context.executionStarted) return undefined;
    if (context.admittedTo === state) state.queued -= 1;
    context.executionStarted = true;
    if (context.admittedTo === state) state.inFlight += 1;
    const startedAt = clock.now();
    context.startedAt = startedAt;
    context.coldStartMs = coldStartMs;
    context.run.setStatus('running');
    demand.recordWait(startedAt - context.record.createdAt);
    const attempts = context.record.attempts;
    const current = attempts[attempts.length - 1];
    if (current !== undefined) current.startedAt = startedAt;
    const written = journalWrite(context.run.id, { status: 'running', startedAt, attempts });
    if (written === undefined) {
      emitStarted(context, state, startedAt, coldStartMs, workerId);
      return undefined;
    }
    return written.then(() => emitStarted(context, state, startedAt, coldStartMs, workerId));
  }

  function emitStarted(
    context: RunContext,
    state: ProviderState,
    at: number,
    coldStartMs: number | undefined,
    workerId: string | undefined,
  ): void {
    const event: Extract<JobEvent, { type: 'started' }> = {
      type: 'started',
      jobId: context.run.id,
      at,
      providerId: state.provider.id,
    };
    if (coldStartMs !== undefined) event.coldStartMs = coldStartMs;
    if (workerId !== undefined) event.workerId = workerId;
    context.run.emit(event);
  }

  /** One provider call, timed, again on retryable errors with the dispatcher's backoff. */
  function callWithRetries<T>(
    state: ProviderState,
    call: ProviderCallEvent['call'],
    task: () => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    return withRetry(() => timed(state, call, task), {
      retries: retry.submitRetries,
      minDelayMs: retry.minDelayMs,
      maxDelayMs: retry.maxDelayMs,
      random: retry.random,
      clock,
      ...(signal === undefined ? {} : { signal }),
    });
  }

  async function safeCancel(state: ProviderState, ref: RemoteJobRef): Promise<boolean> {
    try {
      await callWithRetries(state, 'cancel', () => state.provider.doCancel(ref));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * One attempt on one provider: journals the intent, sends the job (retrying what may be
   * retried), then follows it to its end. A resumed job that was already sent comes with its
   * reference and is only followed. One function, so that a job in flight holds one frame.
   */
  async function runAttempt(
    context: RunContext,
    state: ProviderState,
    resumed?: RemoteJobRef,
  ): Promise<AttemptOutcome> {
    const { run } = context;
    const provider = state.provider;
    let ref: RemoteJobRef;
    if (resumed !== undefined) {
      ref = resumed;
    } else {
      context.attempts += 1;
      state.breaker.onAttempt();
      // The intent is journalled before the request leaves, so that a process that dies
      // mid-submission leaves a trace that resume() will not blindly send again.
      const intent: JobAttempt = { providerId: provider.id, submittedAt: clock.now() };
      context.record.attempts = [...context.record.attempts, intent];
      const written = journalWrite(run.id, { attempts: context.record.attempts });
      if (written !== undefined) await written;
      try {
        // The submission itself is not aborted midway: a request the platform accepted must
        // come back with its id so that the job can be cancelled, not lost.
        const submission = submissionOf(context);
        ref = await callWithRetries(state, 'submit', () => provider.doSubmit(submission), run.signal);
      } catch (caught) {
        const error = toComfyServerlessError(caught, { providerId: provider.id, jobId: run.id });
        if (SubmissionUnknownError.isInstance(error)) {
          // The platform may have the job though its id never came back: find it, or stop here.
          const found = await lookUpSubmission(context, state);
          if (typeof found === 'object') {
            ref = found;
          } else {
            await closeLastAttempt(context, { error: error.toJSON() });
            if (found === 'unknown') {
              return {
                kind: 'failed',
                error: unknownSubmissionError(
                  context,
                  state,
                  `was sent to ${provider.id} but its answer was lost (${error.message})`,
                ),
                executionStarted: true,
              };
            }
            return { kind: 'failed', error, executionStarted: false };
          }
        } else {
          if (run.signal.aborted) throw run.signal.reason;
          return failSubmission(context, state, error);
        }
      }
      context.remote = { state, ref };
      const attempts = context.record.attempts;
      const current = attempts[attempts.length - 1];
      if (current !== undefined) current.remote = ref;
      context.record.providerId = provider.id;
      const accepted = journalWrite(run.id, { attempts, providerId: provider.id });
      if (accepted !== undefined) await accepted;
      run.emit({
        type: 'submitted',
        jobId: run.id,
        at: clock.now(),
        providerId: provider.id,
        remoteId: ref.remoteId,
        attempt: context.attempts,
      });
      if (run.signal.aborted) throw run.signal.reason;
    }
    const providerId = state.provider.id;
    let outputs: JobOutput[] | undefined;
    let watchFailures = 0;
    for (;;) {
      try {
        for await (const event of state.provider.doWatch(ref, { signal: run.signal })) {
          if (run.signal.aborted) break;
          switch (event.type) {
            case 'queued':
              break;
            case 'started': {
              const written = markStarted(context, state, event.coldStartMs, event.workerId);
              if (written !== undefined) await written;
              break;
            }
            case 'progress':
              run.emit({
                type: 'progress',
                jobId: run.id,
                at: clock.now(),
                providerId,
                fraction: Math.min(1, Math.max(0, event.fraction)),
                ...(event.nodeId === undefined ? {} : { nodeId: event.nodeId }),
              });
              break;
            case 'preview':
              run.emit({
                type: 'preview',
                jobId: run.id,
                at: clock.now(),
                providerId,
                mime: event.mime,
                data: event.data,
              });
              break;
            case 'output':
              (outputs ??= []).push(event.output);
              run.emit({ type: 'output', jobId: run.id, at: clock.now(), providerId, output: event.output });
              break;
            case 'completed':
              state.breaker.onSuccess();
              return { kind: 'completed', event, outputs: outputs ?? [] };
            case 'failed': {
              const error = reviveError(event.error, providerId, run.id);
              noteFailure(state, error);
              return {
                kind: 'failed',
                error,
                executionStarted: event.executionStarted || context.executionStarted,
              };
            }
            case 'cancelled':
              return { kind: 'cancelled-remotely' };
          }
        }
        if (run.signal.aborted) throw run.signal.reason;
        throw new JobFailedError({
          message: `Provider ${providerId} stopped reporting on job ${run.id} before it ended; watching again.`,
          isRetryable: true,
          providerId,
          jobId: run.id,
        });
      } catch (caught) {
        if (run.signal.aborted) throw run.signal.reason;
        const error = toComfyServerlessError(caught, { providerId, jobId: run.id });
        watchFailures += 1;
        if (error.isRetryable && watchFailures <= retry.watchRetries) {
          await sleep(
            retryDelayMs(error, watchFailures, {
              minDelayMs: retry.minDelayMs,
              maxDelayMs: retry.maxDelayMs,
              random: retry.random,
            }),
            { clock, signal: run.signal },
          ).catch(() => {});
          continue;
        }
        noteFailure(state, error);
        // The job may still be alive on the platform. Moving it elsewhere is safe only once
        // it is known to be stopped there; otherwise it could run twice.
        const stopped = context.executionStarted ? false : await safeCancel(state, ref);
        return { kind: 'failed', error, executionStarted: context.executionStarted || !stopped };
      }
    }
  }

  /** What a provider is sent for this job's current attempt. */
  function submissionOf(context: RunContext): Parameters<ProviderV1['doSubmit']>[0] {
    const request = context.record.request;
    const submission: Parameters<ProviderV1['doSubmit']>[0] = {
      jobId: context.run.id,
      workflow: request.workflow,
      images: request.images,
      requirements: context.requirements,
      attempt: context.attempts,
    };
    if (request.deadlineAt !== undefined) submission.deadlineAt = request.deadlineAt;
    if (request.metadata !== undefined) submission.metadata = request.metadata;
    return submission;
  }

  async function failSubmission(
    context: RunContext,
    state: ProviderState,
    error: ComfyServerlessError,
  ): Promise<AttemptOutcome> {
    noteFailure(state, error);
    await closeLastAttempt(context, { error: error.toJSON() });
    return { kind: 'failed', error, executionStarted: false };
  }

  function buildResult(
    context: RunContext,
    state: ProviderState,
    outcome: Extract<AttemptOutcome, { kind: 'completed' }>,
  ): JobResult {
    const finishedAt = clock.now();
    const createdAt = context.record.createdAt;
    const timing = outcome.event.timing ?? {};
    const executionMs =
      timing.executionMs ?? (context.startedAt === undefined ? 0 : finishedAt - context.startedAt);
    const totalMs = Math.max(0, finishedAt - createdAt);
    const queuedMs =
      context.startedAt === undefined
        ? Math.max(0, totalMs - executionMs)
        : Math.max(0, context.startedAt - createdAt);
    const coldStartMs = timing.coldStartMs ?? context.coldStartMs;
    const pricing = state.provider.pricing;
    const gpuSeconds =
      outcome.event.gpuSeconds ??
      billedSeconds(executionMs + (coldStartMs ?? 0), pricing.billingIncrementSeconds ?? 1);
    return {
      jobId: context.run.id,
      status: 'completed',
      outputs: outcome.event.outputs ?? outcome.outputs,
      timing:
        coldStartMs === undefined
          ? { queuedMs, executionMs, totalMs }
          : { queuedMs, coldStartMs, executionMs, totalMs },
      cost: { usd: gpuSeconds * pricing.usdPerSecond, gpuSeconds, providerId: state.provider.id },
      providerId: state.provider.id,
      attempts: Math.max(1, context.attempts),
    };
  }

  /**
   * Where a job whose submission outcome is unknown stands: found on the platform (its
   * reference), known not to have been accepted, or unknown. Providers that can search by
   * job id (`doLookup`) settle it; otherwise `onUnknownSubmission: 'resubmit'` treats it as
   * not accepted, and the default leaves it unknown so that it is never run twice.
   */
  async function lookUpSubmission(
    context: RunContext,
    state: ProviderState,
  ): Promise<RemoteJobRef | 'not-accepted' | 'unknown'> {
    const { run } = context;
    if (state.provider.doLookup !== undefined) {
      const lookup = state.provider.doLookup.bind(state.provider);
      const ref = await callWithRetries(
        state,
        'lookup',
        () => lookup(run.id, { signal: run.signal, attempt: context.attempts }),
        run.signal,
      );
      return ref ?? 'not-accepted';
    }
    return (options.onUnknownSubmission ?? 'fail') === 'resubmit' ? 'not-accepted' : 'unknown';
  }

  function unknownSubmissionError(
    context: RunContext,
    state: ProviderState,
    why: string,
  ): SubmissionUnknownError {
    return new SubmissionUnknownError({
      message: `Job ${context.run.id} ${why}, and ${state.provider.platform} cannot be searched for it. It may be running there; it was not sent again so that it cannot run twice. Check the platform, or set onUnknownSubmission: 'resubmit' to prefer sending it again.`,
      providerId: state.provider.id,
      jobId: context.run.id,
    });
  }

  /** Ends the last attempt in the journal, with an error or a reference. */
  async function closeLastAttempt(
    context: RunContext,
    ending: { error: SerializedError } | { remote: RemoteJobRef },
  ): Promise<void> {
    const attempts = context.record.attempts.map((attempt, index, all) =>
      index !== all.length - 1
        ? attempt
        : 'remote' in ending
          ? { ...attempt, remote: ending.remote }
          : { ...attempt, endedAt: clock.now(), error: ending.error },
    );
    context.record.attempts = attempts;
    await journalSafely(context.run.id, { attempts });
  }

  /** A resumed job whose last submission has no journalled reference: the process died while sending it. */
  async function settleUnknownSubmission(context: RunContext, state: ProviderState): Promise<void> {
    context.unknownSubmission = undefined;
    const found = await lookUpSubmission(context, state);
    if (typeof found === 'object') {
      context.remote = { state, ref: found };
      await closeLastAttempt(context, { remote: found });
      return;
    }
    if (found === 'not-accepted') {
      await closeLastAttempt(context, {
        error: {
          name: 'SubmissionUnknownError',
          message: `not found on ${state.provider.id} after a restart, or sent again by choice`,
          isRetryable: false,
        },
      });
      return;
    }
    throw unknownSubmissionError(
      context,
      state,
      `was being sent to ${state.provider.id} when the process that owned it stopped`,
    );
  }

  async function attemptLoop(context: RunContext): Promise<JobResult> {
    context.waitingInGlobalQueue = false;
    const { run } = context;
    let tried: string[] | undefined;
    let lastError: ComfyServerlessError | undefined;
    let outcome: AttemptOutcome | undefined;
    let state: ProviderState | undefined;

    if (context.unknownSubmission !== undefined)
      await settleUnknownSubmission(context, context.unknownSubmission);

    // A resumed job that was already submitted is watched where it is, never sent again.
    if (context.remote !== undefined) {
      state = context.remote.state;
      tried = [state.provider.id];
      admit(context, state);
      const resumedState = state;
      const ref = context.remote.ref;
      outcome = await admitted(resumedState.queue, () => runAttempt(context, resumedState, ref), run.signal);
    }

    for (;;) {
      if (outcome !== undefined && state !== undefined) {
        if (outcome.kind === 'completed') {
          const result = buildResult(context, state, outcome);
          const previous = state.executionMs;
          state.executionMs =
            previous === undefined
              ? result.timing.executionMs
              : previous * 0.8 + result.timing.executionMs * 0.2;
          demand.recordExecution(result.timing.executionMs);
          return result;
        }
        if (outcome.kind === 'cancelled-remotely') {
          throw new JobCancelledError({
            message: `Job ${run.id} was cancelled on ${state.provider.id} by someone other than this dispatcher.`,
            providerId: state.provider.id,
            jobId: run.id,
          });
        }
        lastError = outcome.error;
        const mayRerun = !outcome.executionStarted || (retry.rerunAfterStart && outcome.error.isRetryable);
        if (!mayRerun || context.attempts >= retry.maxAttempts) throw outcome.error;
        if (outcome.executionStarted) {
          // Opted in to re-running: the earlier execution no longer counts as started.
          leave(context);
          context.executionStarted = false;
        }
        context.remote = undefined;
      }
      if (run.signal.aborted) throw run.signal.reason;
      const decision = routeFor(context, tried);
      const next = decision.candidates[0];
      if (next === undefined) {
        if (lastError !== undefined) throw lastError;
        throw new NoProviderError({
          message: `No provider can run job ${run.id}: ${Object.entries(decision.rejected)
            .map(([id, reason]) => `${id}: ${reason}`)
            .join('; ')}. Add a provider that fits, or wait for the open circuits to cool down.`,
          rejected: decision.rejected,
          jobId: run.id,
          isRetryable: false,
        });
      }
      const nextState = states.get(next.providerId)!;
      if (lastError !== undefined && state !== undefined) {
        ledger?.attemptFailed(clock.now(), state.provider.id);
        run.emit({
          type: 'retrying',
          jobId: run.id,
          at: clock.now(),
          providerId: state.provider.id,
          error: lastError.toJSON(),
          nextProviderId: next.providerId,
          attempt: context.attempts + 1,
          delayMs: 0,
        });
      }
      run.emit({
        type: 'routed',
        jobId: run.id,
        at: clock.now(),
        providerId: next.providerId,
        candidates: decision.candidates.map((candidate) => candidate.providerId),
      });
      (tried ??= []).push(next.providerId);
      context.routedTo = next.providerId;
      state = nextState;
      admit(context, nextState);
      outcome = await admitted(nextState.queue, () => runAttempt(context, nextState), run.signal);
    }
  }

  async function finalize(
    context: RunContext,
    outcome: { result: JobResult } | { error: unknown },
  ): Promise<void> {
    try {
      const gate = completionGate.pass();
      if (gate !== undefined) await gate;
      if ('result' in outcome) {
        const written = recordCompletion(context, outcome.result);
        if (written !== undefined) await written;
      } else {
        await recordEnding(context, outcome);
      }
    } finally {
      // Only once the ending is journalled: until then this process still owns the job, and
      // its own resume() must not mistake it for an orphan and start it again.
      runs.delete(context.run.id);
    }
  }

  /** Journals a result, then tells the report, the listeners and the caller. */
  function recordCompletion(context: RunContext, result: JobResult): Promise<void> | undefined {
    const { run } = context;
    leave(context);
    if (context.deadlineTimer !== undefined) clock.clearTimeout(context.deadlineTimer);
    const at = clock.now();
    run.setStatus('completed');
    const written = journalWrite(run.id, { status: 'completed', result, finishedAt: at });
    if (written === undefined) {
      announceCompletion(run, at, result);
      return undefined;
    }
    return written.then(() => announceCompletion(run, at, result));
  }

  function announceCompletion(run: JobRun, at: number, result: JobResult): void {
    ledger?.completed(at, result);
    run.emit({ type: 'completed', jobId: run.id, at, result });
    run.finish({ result });
  }

  async function recordEnding(context: RunContext, outcome: { error: unknown }): Promise<void> {
    const { run } = context;
    leave(context);
    if (context.deadlineTimer !== undefined) clock.clearTimeout(context.deadlineTimer);
    const at = clock.now();
    const stop = run.stopRequest;
    if (stop !== undefined && (run.signal.aborted || JobCancelledError.isInstance(outcome.error))) {
      // Stopped by us: make sure the platform stops too before saying so.
      if (context.remote !== undefined) await safeCancel(context.remote.state, context.remote.ref);
      if (stop.kind === 'timed_out') {
        const timeoutMs = (context.record.request.deadlineAt ?? at) - context.record.createdAt;
        const error = new JobTimeoutError({
          message: `Job ${run.id} did not finish within its ${timeoutMs} ms deadline; it was cancelled${context.remote ? ` on ${context.remote.state.provider.id}` : ''}.`,
          timeoutMs,
          jobId: run.id,
          ...(context.remote ? { providerId: context.remote.state.provider.id } : {}),
        });
        run.setStatus('timed_out');
        await journalSafely(run.id, { status: 'timed_out', error: error.toJSON(), finishedAt: at });
        if (context.routedTo !== undefined) ledger?.attemptFailed(at, context.routedTo);
        ledger?.ended(at, 'timed_out', context.record.createdAt);
        run.emit({ type: 'timed_out', jobId: run.id, at, timeoutMs });
        run.finish({ error });
        return;
      }
      const error = new JobCancelledError({
        message: `Job ${run.id} was cancelled${stop.reason ? `: ${stop.reason}` : ''}.`,
        jobId: run.id,
        ...(context.remote ? { providerId: context.remote.state.provider.id } : {}),
      });
      run.setStatus('cancelled');
      await journalSafely(run.id, { status: 'cancelled', error: error.toJSON(), finishedAt: at });
      ledger?.ended(at, 'cancelled', context.record.createdAt);
      run.emit({ type: 'cancelled', jobId: run.id, at, ...(stop.reason ? { reason: stop.reason } : {}) });
      run.finish({ error });
      return;
    }
    const error = toComfyServerlessError(outcome.error, { jobId: run.id });
    const status = JobCancelledError.isInstance(error)
      ? 'cancelled'
      : JobTimeoutError.isInstance(error)
        ? 'timed_out'
        : 'failed';
    run.setStatus(status);
    await journalSafely(run.id, { status, error: error.toJSON(), finishedAt: at });
    const failedOn = status === 'failed' ? (context.routedTo ?? error.providerId) : context.routedTo;
    if (status !== 'cancelled' && failedOn !== undefined) ledger?.attemptFailed(at, failedOn);
    ledger?.ended(at, status, context.record.createdAt);
    if (status === 'cancelled') run.emit({ type: 'cancelled', jobId: run.id, at, reason: error.message });
    else if (status === 'timed_out')
      run.emit({
        type: 'timed_out',
        jobId: run.id,
        at,
        timeoutMs: error instanceof JobTimeoutError ? (error.timeoutMs ?? 0) : 0,
      });
    else run.emit({ type: 'failed', jobId: run.id, at, error: error.toJSON() });
    run.finish({ error });
  }

  function requestStop(run: JobRun, kind: 'cancelled' | 'timed_out', reason?: string): void {
    if (run.isFinished || run.stopRequest !== undefined) return;
    run.stopRequest = { kind, ...(reason === undefined ? {} : { reason }) };
    run.controller.abort(
      kind === 'timed_out'
        ? new JobTimeoutError({ message: `Job ${run.id} passed its deadline.`, jobId: run.id })
        : new JobCancelledError({ message: `Job ${run.id} was cancelled.`, jobId: run.id }),
    );
  }

  function start(
    record: JobRecord,
    prepared: { requirements: WorkflowRequirements; workflowBytes: number },
    jobOptions: RunWorkflowOptions,
    isNew = false,
  ): RunContext {
    const run = new JobRun(record.jobId, record.status, jobOptions.onEvent, broadcast, requestStop);
    if (isNew) {
      const metadata = record.request.metadata;
      run.emit(
        metadata
          ? { type: 'queued', jobId: record.jobId, at: record.createdAt, metadata }
          : { type: 'queued', jobId: record.jobId, at: record.createdAt },
      );
    }
    const context: RunContext = {
      run,
      record,
      requirements: prepared.requirements,
      options: jobOptions,
      remote: undefined,
      executionStarted: record.status === 'running',
      startedAt: record.startedAt,
      coldStartMs: undefined,
      attempts: record.attempts.length,
      deadlineTimer: undefined,
      admittedTo: undefined,
      unknownSubmission: undefined,
      payloadBytes: payloadBytes(prepared.workflowBytes, record.request.images),
      waitingInGlobalQueue: true,
      routedTo: undefined,
    };
    const lastAttempt = record.attempts.at(-1);
    if (lastAttempt !== undefined && lastAttempt.endedAt === undefined) {
      const state = states.get(lastAttempt.providerId);
      if (state !== undefined) {
        if (lastAttempt.remote !== undefined) context.remote = { state, ref: lastAttempt.remote };
        else context.unknownSubmission = state;
      }
    }
    runs.set(record.jobId, context);
    scheduleClaimRenewal();

    const signal = jobOptions.signal;
    if (signal !== undefined) {
      if (signal.aborted) requestStop(run, 'cancelled', describeReason(signal.reason));
      else
        signal.addEventListener('abort', () => requestStop(run, 'cancelled', describeReason(signal.reason)), {
          once: true,
        });
    }
    const deadlineAt = record.request.deadlineAt;
    if (deadlineAt !== undefined) {
      context.deadlineTimer = clock.setTimeout(
        () => requestStop(run, 'timed_out'),
        Math.max(0, deadlineAt - clock.now()),
      );
    }

    void drive(context);
    return context;
  }

  /** Runs a job from admission to its journalled ending; never rejects. */
  async function drive(context: RunContext): Promise<void> {
    let outcome: { result: JobResult } | { error: unknown };
    try {
      outcome = { result: await admitted(globalQueue, () => attemptLoop(context), context.run.signal) };
    } catch (error) {
      outcome = { error };
    }
    try {
      await finalize(context, outcome);
    } catch (error) {
      // Only a journal failure can land here: the job cannot be recorded as finished.
      context.run.finish({ error });
    }
  }

  function finishedHandle(record: JobRecord): JobHandle {
    const run = new JobRun(
      record.jobId,
      record.status,
      undefined,
      () => {},
      () => {},
    );
    if (record.status === 'completed' && record.result !== undefined) {
      run.emit({
        type: 'completed',
        jobId: record.jobId,
        at: record.finishedAt ?? record.updatedAt,
        result: record.result,
      });
      run.finish({ result: record.result });
    } else {
      const error = record.error
        ? reviveFinishedError(record)
        : new JobFailedError({
            message: `Job ${record.jobId} ended as ${record.status}.`,
            jobId: record.jobId,
          });
      run.finish({ error });
    }
    return run;
  }

  function reviveFinishedError(record: JobRecord): ComfyServerlessError {
    const serialized = record.error!;
    if (record.status === 'cancelled')
      return new JobCancelledError({ message: serialized.message, jobId: record.jobId });
    if (record.status === 'timed_out') {
      return new JobTimeoutError({ message: serialized.message, jobId: record.jobId });
    }
    return reviveError(serialized, serialized.providerId ?? record.providerId ?? 'unknown', record.jobId);
  }

  function submit(workflow: unknown, jobOptions: RunWorkflowOptions = {}): Promise<JobHandle> {
    try {
      const handle = submitNow(workflow, jobOptions);
      return handle instanceof Promise ? handle : Promise.resolve(handle);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Accepts a job: at once (the handle) when the journal lives in memory and this turn of
   * the event loop still has room, else a promise of the handle. Throws on bad options.
   */
  function submitNow(workflow: unknown, jobOptions: RunWorkflowOptions): JobHandle | Promise<JobHandle> {
    if (syncJournal !== undefined && !submissionGate.enter()) {
      return afterGate(() => submitPassed(workflow, jobOptions));
    }
    return submitPassed(workflow, jobOptions);
  }

  /** Runs `work` on a later turn of the event loop, when the submission gate lets it pass. */
  function afterGate<T>(work: () => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) =>
      submissionGate.later(() => {
        try {
          resolve(work());
        } catch (error) {
          reject(error);
        }
      }),
    );
  }

  /** `submitNow` once past the gate (for a memory journal) or before it (others). */
  function submitPassed(workflow: unknown, jobOptions: RunWorkflowOptions): JobHandle | Promise<JobHandle> {
    if (
      jobOptions.jobId !== undefined &&
      (typeof jobOptions.jobId !== 'string' || jobOptions.jobId.length === 0 || jobOptions.jobId.length > 256)
    ) {
      throw new InvalidArgumentError({
        argument: 'jobId',
        message: `Option "jobId" must be a non-empty string of at most 256 characters; got ${String(jobOptions.jobId)}.`,
      });
    }
    if (
      jobOptions.timeoutMs !== undefined &&
      !(Number.isFinite(jobOptions.timeoutMs) && jobOptions.timeoutMs > 0)
    ) {
      throw new InvalidArgumentError({
        argument: 'timeoutMs',
        message: `Option "timeoutMs" must be a number of milliseconds > 0; got ${String(jobOptions.timeoutMs)}.`,
      });
    }
    const jobId = jobOptions.jobId ?? randomUUID();
    const live = runs.get(jobId);
    if (live !== undefined) return live.run;
    // Two submissions of one id racing within this process share the first one's outcome.
    const pending = pendingSubmissions.get(jobId);
    if (pending !== undefined) return pending;
    if (syncJournal !== undefined) {
      const request = describeRequest(jobId, workflow, jobOptions);
      const handle = adopt(request, jobOptions, syncJournal.create(request.record));
      if (!(handle instanceof Promise)) return handle;
      return track(jobId, handle);
    }
    return track(jobId, acceptLater(jobId, workflow, jobOptions, submissionGate.pass()));
  }

  function track(jobId: string, submission: Promise<JobHandle>): Promise<JobHandle> {
    pendingSubmissions.set(jobId, submission);
    const forget = () => {
      if (pendingSubmissions.get(jobId) === submission) pendingSubmissions.delete(jobId);
    };
    submission.then(forget, forget);
    return submission;
  }

  interface DescribedRequest {
    record: NewJobRecord;
    prepared: { requirements: WorkflowRequirements; workflowBytes: number };
  }

  /** Checks and prepares the workflow, and describes the job record to create. */
  function describeRequest(
    jobId: string,
    workflow: unknown,
    jobOptions: RunWorkflowOptions,
  ): DescribedRequest {
    const prepared = prepareWorkflow(workflow, jobOptions.inputs);
    const images = jobOptions.images ?? [];
    const createdAt = clock.now();
    const timeoutMs = jobOptions.timeoutMs ?? options.defaultTimeoutMs;
    return {
      prepared,
      record: {
        jobId,
        requestHash: hashRequest(prepared.fingerprint, images),
        createdAt,
        request: requestOf(prepared.workflow, images, createdAt, timeoutMs, jobOptions.metadata),
        owner,
      },
    };
  }

  /** Accepts a job into a journal that answers asynchronously, once the gate lets it pass. */
  async function acceptLater(
    jobId: string,
    workflow: unknown,
    jobOptions: RunWorkflowOptions,
    gate: Promise<void> | undefined,
  ): Promise<JobHandle> {
    if (gate !== undefined) await gate;
    const request = describeRequest(jobId, workflow, jobOptions);
    return adopt(request, jobOptions, await journal.create(request.record));
  }

  /** Starts a job the journal just took, or follows the one it already had under that id. */
  function adopt(
    request: DescribedRequest,
    jobOptions: RunWorkflowOptions,
    { record, created }: { record: JobRecord; created: boolean },
  ): JobHandle | Promise<JobHandle> {
    const { jobId } = record;
    if (!created) return adoptExisting(request, jobOptions, record);
    demand.recordArrival();
    if (journal.claim !== undefined) {
      if (syncJournal === undefined) {
        return journal
          .claim(jobId, owner, claimTtlMs)
          .then(() => start(record, request.prepared, jobOptions, true).run);
      }
      syncJournal.claim(jobId, owner, claimTtlMs);
    }
    return start(record, request.prepared, jobOptions, true).run;
  }

  async function adoptExisting(
    request: DescribedRequest,
    jobOptions: RunWorkflowOptions,
    record: JobRecord,
  ): Promise<JobHandle> {
    const { jobId } = record;
    if (record.requestHash !== request.record.requestHash) {
      throw new JobConflictError({
        message: `Job id ${jobId} was already used for a different workflow or images. Use a new job id for a new job.`,
        jobId,
      });
    }
    const again = runs.get(jobId);
    if (again !== undefined) return again.run;
    if (isTerminalStatus(record.status)) return finishedHandle(record);
    if (journal.claim !== undefined && !(await journal.claim(jobId, owner, claimTtlMs))) {
      throw new JobConflictError({
        message: `Job ${jobId} is being run by another process (${record.owner ?? 'unknown'}); follow it with get(), or resume() here once that process is gone.`,
        jobId,
      });
    }
    // The claim took a round trip: this process may have started the job meanwhile.
    const startedMeanwhile = runs.get(jobId);
    if (startedMeanwhile !== undefined) return startedMeanwhile.run;
    const fresh = (await journal.get(jobId)) ?? record;
    if (isTerminalStatus(fresh.status)) return finishedHandle(fresh);
    return start(fresh, request.prepared, jobOptions).run;
  }

  async function resume(): Promise<JobHandle[]> {
    const handles: JobHandle[] = [];
    for (const listed of await journal.listNonTerminal()) {
      const jobId = listed.jobId;
      const live = runs.get(jobId);
      if (live !== undefined) {
        handles.push(live.run);
        continue;
      }
      // A job this process is accepting right now is not an orphan.
      if (pendingSubmissions.has(jobId)) continue;
      if (journal.claim !== undefined && !(await journal.claim(jobId, owner, claimTtlMs))) continue;
      // The list may be stale by now (another process finished or sent the job): act on the
      // record as it is after the claim, and never on one this process started meanwhile.
      const startedMeanwhile = runs.get(jobId);
      if (startedMeanwhile !== undefined) {
        handles.push(startedMeanwhile.run);
        continue;
      }
      if (pendingSubmissions.has(jobId)) continue;
      const record = journal.claim === undefined ? listed : await journal.get(jobId);
      if (record === undefined || isTerminalStatus(record.status)) continue;
      if (runs.has(jobId) || pendingSubmissions.has(jobId)) continue;
      let prepared: { requirements: WorkflowRequirements; workflowBytes: number };
      try {
        prepared = prepareWorkflow(record.request.workflow);
      } catch {
        // A journalled workflow was valid when it was accepted; route it without requirements.
        prepared = { requirements: { models: [], nodeTypes: [] }, workflowBytes: 0 };
      }
      handles.push(start(record, prepared, {}).run);
    }
    return handles;
  }

  async function cancel(jobId: string, reason?: string): Promise<void> {
    const live = runs.get(jobId);
    if (live !== undefined) {
      await live.run.cancel(reason);
      return;
    }
    const record = await journal.get(jobId);
    if (record === undefined || isTerminalStatus(record.status)) return;
    const last = record.attempts.at(-1);
    const state = last ? states.get(last.providerId) : undefined;
    if (last?.remote !== undefined && state !== undefined) await safeCancel(state, last.remote);
    const error = new JobCancelledError({
      message: `Job ${jobId} was cancelled${reason ? `: ${reason}` : ''}.`,
      jobId,
    });
    await journalSafely(jobId, { status: 'cancelled', error: error.toJSON(), finishedAt: clock.now() });
  }

  let renewalTimer: unknown;
  let takeOverTimer: unknown;
  let closed = false;

  /** Keeps this process's claims alive while it runs jobs, in journals that track owners. */
  function scheduleClaimRenewal(): void {
    const claim = journal.claim?.bind(journal);
    if (claim === undefined || renewalTimer !== undefined || closed) return;
    renewalTimer = clock.setTimeout(() => {
      renewalTimer = undefined;
      const ids = [...runs.keys()];
      void Promise.all(ids.map((jobId) => claim(jobId, owner, claimTtlMs).catch(() => false))).finally(() => {
        if (runs.size > 0) scheduleClaimRenewal();
      });
    }, claimTtlMs / 3);
  }

  function scheduleTakeOver(): void {
    if (options.takeOverIntervalMs === undefined || closed) return;
    takeOverTimer = clock.setTimeout(() => {
      void resume()
        .catch(() => [])
        .finally(scheduleTakeOver);
    }, options.takeOverIntervalMs);
    unrefTimer(takeOverTimer);
  }
  scheduleTakeOver();

  function close(): void {
    closed = true;
    if (renewalTimer !== undefined) clock.clearTimeout(renewalTimer);
    if (takeOverTimer !== undefined) clock.clearTimeout(takeOverTimer);
    renewalTimer = undefined;
    takeOverTimer = undefined;
  }

  function metrics(): DispatcherMetrics {
    let queueDepth = 0;
    let inFlight = 0;
    const providers: DispatcherMetrics['providers'] = {};
    for (const state of states.values()) {
      providers[state.provider.id] = { queueDepth: state.queued, inFlight: state.inFlight };
      queueDepth += state.queued;
      inFlight += state.inFlight;
    }
    for (const context of runs.values()) if (context.waitingInGlobalQueue) queueDepth += 1;
    return { demand: demand.snapshot(queueDepth, inFlight), providers };
  }

  let performance: (PerformanceReport & { ledger: JobLedger }) | undefined;
  const dispatcher: Dispatcher = {
    runWorkflow: (workflow, jobOptions = {}) => {
      if (syncJournal !== undefined && !submissionGate.enter()) {
        return afterGate(() => resultOf(submitPassed(workflow, jobOptions)));
      }
      try {
        return resultOf(submitPassed(workflow, jobOptions));
      } catch (error) {
        return Promise.reject(error);
      }
    },
    submit,
    get: (jobId) => journal.get(jobId),
    cancel,
    resume,
    metrics,
    events: emitter,
    providers: options.providers,
    journal,
    report: (query) => performance!.report(query),
    close,
  };
  performance = collectPerformance(dispatcher, { clock }, true);
  ledger = performance.ledger;
  if (options.logger !== undefined) {
    attachLogger(dispatcher, options.logger, {
      service: options.service ?? 'comfy-serverless',
      ...(options.secrets === undefined ? {} : { secrets: options.secrets }),
    });
  }
  return dispatcher;
}

/**
 * Lets timers and I/O run between bursts of work: a backend that submits thousands of
 * jobs in one go (or sees a thousand finish at once) would otherwise keep the event loop in
 * one long chain of promise callbacks, and its other requests would wait for all of them.
 * At most `perTurn` pass per turn of the loop; the rest wait, in order, for the next turns.
 */
class TurnGate {
  private readonly waiting: Array<() => void> = [];
  private head = 0;
  private passedThisTurn = 0;
  private releaseScheduled = false;

  constructor(private readonly perTurn: number) {}

  /** Resolves at once (undefined) while this turn has room, else on a later turn. */
  pass(): Promise<void> | undefined {
    if (this.enter()) return undefined;
    return new Promise<void>((resolve) => this.later(resolve));
  }

  /** Takes a place in this turn if there is one (and nobody is waiting for one). */
  enter(): boolean {
    this.scheduleRelease();
    if (this.head === this.waiting.length && this.passedThisTurn < this.perTurn) {
      this.passedThisTurn += 1;
      return true;
    }
    return false;
  }

  /** Runs `callback` on a later turn, in order, with its place counted in that turn. */
  later(callback: () => void): void {
    this.scheduleRelease();
    this.waiting.push(callback);
  }

  private scheduleRelease(): void {
    if (this.releaseScheduled) return;
    this.releaseScheduled = true;
    setImmediate(() => {
      this.releaseScheduled = false;
      this.passedThisTurn = 0;
      while (this.passedThisTurn < this.perTurn && this.head < this.waiting.length) {
        this.passedThisTurn += 1;
        this.waiting[this.head++]!();
      }
      if (this.head === this.waiting.length) {
        this.waiting.length = 0;
        this.head = 0;
      } else {
        this.scheduleRelease();
      }
    });
  }
}

const submissionGate = new TurnGate(32);
const completionGate = new TurnGate(32);

function ignore(): void {}

/** Each job event's name on `dispatcher.events`, made once rather than per event. */
const BROADCAST_NAMES: { [Type in JobEvent['type']]: `job:${Type}` } = {
  queued: 'job:queued',
  routed: 'job:routed',
  submitted: 'job:submitted',
  started: 'job:started',
  progress: 'job:progress',
  preview: 'job:preview',
  output: 'job:output',
  retrying: 'job:retrying',
  completed: 'job:completed',
  failed: 'job:failed',
  cancelled: 'job:cancelled',
  timed_out: 'job:timed_out',
};

function requestOf(
  workflow: JobRecord['request']['workflow'],
  images: InputImage[],
  createdAt: number,
  timeoutMs: number | undefined,
  metadata: Record<string, string> | undefined,
): JobRecord['request'] {
  const request: JobRecord['request'] = { workflow, images };
  if (timeoutMs !== undefined) {
    request.timeoutMs = timeoutMs;
    request.deadlineAt = createdAt + timeoutMs;
  }
  if (metadata !== undefined) request.metadata = metadata;
  return request;
}

function resultOf(handle: JobHandle | Promise<JobHandle>): Promise<JobResult> {
  return handle instanceof Promise ? handle.then((accepted) => accepted.result()) : handle.result();
}

/** Lets a journal's refusal of a backwards status change pass; anything else is thrown. */
function ignoreRefusal(error: unknown): void {
  if (!InvalidArgumentError.isInstance(error)) throw error;
}

function describeReason(reason: unknown): string | undefined {
  if (reason === undefined) return undefined;
  if (reason instanceof Error) return reason.message;
  return String(reason);
}
