import { InvalidArgumentError } from '../spec/errors';
import type { JobEvent } from '../spec/job';
import type { LoggerLike, LogLevel } from './json-logger';
import { isObservedDispatcher, type ObservedDispatcher, subscribe } from './observed-dispatcher';
import { redactValue } from './redact';
import { BoundedMap } from './ring-buffer';

/** Options of `attachLogger`. */
export interface AttachLoggerOptions {
  /** The `service` field of every line (your application's name). */
  service: string;
  /** Values removed from every line (API keys, tokens), on top of presigned-URL signatures and bearer tokens. */
  secrets?: readonly string[];
  /** The job metadata key that holds the user id. @default 'userId' */
  userIdKey?: string;
}

/** Fields a started event may carry beyond the spec's (a worker or GPU id, when a provider reports them). */
interface WorkerFields {
  workerId?: unknown;
  containerId?: unknown;
  gpuId?: unknown;
}

interface JobLogState {
  userId: string | undefined;
  /** The provider the job was last sent to. */
  providerId: string | undefined;
  containerId: string | undefined;
  gpuId: string | undefined;
  /** Lines held until the job's metadata (user id) has been read, in order. */
  pending: Array<() => void> | undefined;
}

/** Jobs whose fields are remembered at once; the oldest are forgotten past this. */
const TRACKED_JOBS = 100_000;

type TerminalEvent = Extract<JobEvent, { type: 'completed' | 'failed' | 'cancelled' | 'timed_out' }>;

/**
 * Writes one structured log line per dispatcher event to a pino-compatible logger: fields
 * `timestamp`, `service`, `execution_id` (the job id), `provider_id`, `gpu_type`, and
 * `container_id`, `gpu_id`, `user_id` where known (the user id from the job's metadata, the
 * worker from its started event). Secrets and presigned-URL signatures are redacted;
 * previews and output bytes are never logged. Returns a function that stops logging.
 *
 * Levels: progress, previews, outputs, health readings and successful provider calls are
 * `debug`; a job's milestones `info`; retries, failed provider calls and open circuits
 * `warn`; failures and timeouts `error`.
 *
 * @example
 * import pino from 'pino';
 * const detach = attachLogger(dispatcher, pino(), { service: 'render-api', secrets: [process.env.RUNPOD_API_KEY] });
 */
export function attachLogger(
  dispatcher: ObservedDispatcher,
  logger: LoggerLike,
  options: AttachLoggerOptions,
): () => void {
  if (!isObservedDispatcher(dispatcher)) {
    throw new InvalidArgumentError({
      argument: 'dispatcher',
      message: 'attachLogger takes a dispatcher (an object with "events" from createDispatcher).',
    });
  }
  for (const level of ['debug', 'info', 'warn', 'error'] as const) {
    if (typeof (logger as Partial<LoggerLike> | undefined)?.[level] !== 'function') {
      throw new InvalidArgumentError({
        argument: 'logger',
        message: `"logger" must be pino-compatible (debug, info, warn and error methods taking (fields, message)); it has no ${level}().`,
      });
    }
  }
  if (
    options === null ||
    typeof options !== 'object' ||
    typeof options.service !== 'string' ||
    options.service === ''
  ) {
    throw new InvalidArgumentError({
      argument: 'service',
      message: '"service" must name your service (a non-empty string), for the service field of each line.',
    });
  }
  if (options.secrets !== undefined && !Array.isArray(options.secrets)) {
    throw new InvalidArgumentError({
      argument: 'secrets',
      message: '"secrets" must be an array of strings to remove from every line.',
    });
  }
  const secrets = (options.secrets ?? []).filter((secret): secret is string => typeof secret === 'string');
  const userIdKey = options.userIdKey ?? 'userId';
  const service = options.service;
  const jobs = new BoundedMap<string, JobLogState>(TRACKED_JOBS);
  const lastHealth = new Map<string, string>();

  const gpuTypeOf = (providerId: string | undefined): string | undefined =>
    providerId === undefined
      ? undefined
      : dispatcher.providers?.find((provider) => provider.id === providerId)?.gpu.type;

  const emit = (level: LogLevel, fields: Record<string, unknown>, message: string) => {
    try {
      const safe = redactValue(fields, secrets) as Record<string, unknown>;
      logger[level](safe, redactValue(message, secrets) as string);
    } catch {
      // A logger that fails (a full disk, a closed stream) must not break the job it describes.
    }
  };

  const stateOf = (jobId: string, metadata?: unknown): JobLogState => {
    let state = jobs.get(jobId);
    if (state !== undefined) return state;
    const known =
      metadata !== null && typeof metadata === 'object' ? (metadata as Record<string, unknown>) : undefined;
    state = {
      userId: typeof known?.[userIdKey] === 'string' ? (known[userIdKey] as string) : undefined,
      providerId: undefined,
      containerId: undefined,
      gpuId: undefined,
      pending: undefined,
    };
    jobs.set(jobId, state);
    const journal = dispatcher.journal;
    // An event that carries the job's metadata spares a journal read (a round trip with Redis).
    if (journal !== undefined && known === undefined) {
      const held: Array<() => void> = [];
      state.pending = held;
      const settle = (userId: string | undefined) => {
        const current = jobs.get(jobId) ?? state!;
        current.userId = userId;
        current.pending = undefined;
        for (const line of held) line();
      };
      let lookup: Promise<{ request?: { metadata?: Record<string, string> } } | undefined>;
      try {
        lookup = Promise.resolve(journal.get(jobId));
      } catch {
        lookup = Promise.resolve(undefined);
      }
      lookup.then(
        (record) => {
          const value = record?.request?.metadata?.[userIdKey];
          settle(typeof value === 'string' ? value : undefined);
        },
        () => settle(undefined),
      );
    }
    return state;
  };

  /** Writes a job's line once its metadata is known, keeping the job's lines in order. */
  const jobLine = (
    event: JobEvent,
    level: LogLevel,
    fields: Record<string, unknown>,
    message: string,
    terminal = false,
    providerOverride?: string,
  ) => {
    const state = stateOf(event.jobId);
    const providerId = providerOverride ?? ('providerId' in event ? event.providerId : state.providerId);
    if (event.type === 'routed' || event.type === 'submitted' || event.type === 'started')
      state.providerId = event.providerId;
    if (event.type === 'retrying') state.providerId = event.nextProviderId;
    const gpuType = gpuTypeOf(providerId);
    const write = () => {
      emit(
        level,
        {
          timestamp: new Date(event.at).toISOString(),
          service,
          execution_id: event.jobId,
          event: `job:${event.type}`,
          ...(providerId === undefined ? {} : { provider_id: providerId }),
          ...(gpuType === undefined ? {} : { gpu_type: gpuType }),
          ...(state.containerId === undefined ? {} : { container_id: state.containerId }),
          ...(state.gpuId === undefined ? {} : { gpu_id: state.gpuId }),
          ...(state.userId === undefined ? {} : { user_id: state.userId }),
          ...fields,
        },
        message,
      );
    };
    if (state.pending !== undefined) state.pending.push(write);
    else write();
    if (terminal) {
      if (state.pending === undefined) jobs.delete(event.jobId);
      else state.pending.push(() => jobs.delete(event.jobId));
    }
  };

  const providerLine = (level: LogLevel, at: number, fields: Record<string, unknown>, message: string) => {
    emit(level, { timestamp: new Date(at).toISOString(), service, ...fields }, message);
  };

  const end = (event: TerminalEvent) => {
    switch (event.type) {
      case 'completed': {
        const { result } = event;
        jobLine(
          event,
          'info',
          {
            duration_ms: result.timing.totalMs,
            queued_ms: result.timing.queuedMs,
            execution_ms: result.timing.executionMs,
            ...(result.timing.coldStartMs === undefined ? {} : { cold_start_ms: result.timing.coldStartMs }),
            cost_usd: result.cost.usd,
            gpu_seconds: result.cost.gpuSeconds,
            attempts: result.attempts,
            outputs: result.outputs.length,
          },
          `job completed on ${result.providerId} in ${result.timing.totalMs} ms`,
          true,
          result.providerId,
        );
        return;
      }
      case 'failed':
        jobLine(
          event,
          'error',
          { error: event.error },
          `job failed: ${event.error.name}: ${event.error.message}`,
          true,
          event.error.providerId,
        );
        return;
      case 'cancelled':
        jobLine(
          event,
          'info',
          event.reason === undefined ? {} : { reason: event.reason },
          event.reason === undefined ? 'job cancelled' : `job cancelled: ${event.reason}`,
          true,
        );
        return;
      case 'timed_out':
        jobLine(
          event,
          'error',
          { timeout_ms: event.timeoutMs },
          `job timed out after ${event.timeoutMs} ms`,
          true,
        );
        return;
    }
  };

  return subscribe(dispatcher, {
    'job:queued': (event) => {
      stateOf(event.jobId, (event as typeof event & { metadata?: unknown }).metadata);
      jobLine(event, 'info', {}, 'job queued');
    },
    'job:routed': (event) =>
      jobLine(event, 'info', { candidates: event.candidates }, `job routed to ${event.providerId}`),
    'job:submitted': (event) =>
      jobLine(
        event,
        'info',
        { remote_id: event.remoteId, attempt: event.attempt },
        `job submitted to ${event.providerId} (attempt ${event.attempt})`,
      ),
    'job:started': (event) => {
      const worker = event as typeof event & WorkerFields;
      const state = stateOf(event.jobId);
      const container = worker.containerId ?? worker.workerId;
      if (typeof container === 'string') state.containerId = container;
      if (typeof worker.gpuId === 'string') state.gpuId = worker.gpuId;
      jobLine(
        event,
        'info',
        event.coldStartMs === undefined ? {} : { cold_start_ms: event.coldStartMs },
        event.coldStartMs ? `job started after a ${event.coldStartMs} ms cold start` : 'job started',
      );
    },
    'job:progress': (event) =>
      jobLine(
        event,
        'debug',
        { fraction: event.fraction, ...(event.nodeId === undefined ? {} : { node_id: event.nodeId }) },
        'job progress',
      ),
    'job:preview': (event) =>
      jobLine(event, 'debug', { mime: event.mime, bytes: event.data.byteLength }, 'job preview'),
    'job:output': (event) =>
      jobLine(
        event,
        'debug',
        {
          node_id: event.output.nodeId,
          kind: event.output.kind,
          filename: event.output.filename,
          mime: event.output.mime,
          ...(event.output.url === undefined ? {} : { url: event.output.url }),
          ...(event.output.data === undefined ? {} : { bytes: event.output.data.byteLength }),
        },
        'job output',
      ),
    'job:retrying': (event) =>
      jobLine(
        event,
        'warn',
        {
          error: event.error,
          next_provider_id: event.nextProviderId,
          attempt: event.attempt,
          delay_ms: event.delayMs,
        },
        `job failed on ${event.providerId} (${event.error.name}: ${event.error.message}); trying ${event.nextProviderId}`,
      ),
    'job:completed': end,
    'job:failed': end,
    'job:cancelled': end,
    'job:timed_out': end,
    'provider:health': (event) => {
      const previous = lastHealth.get(event.providerId);
      lastHealth.set(event.providerId, event.health.status);
      const changed = previous !== undefined && previous !== event.health.status;
      const level: LogLevel = !changed ? 'debug' : event.health.status === 'healthy' ? 'info' : 'warn';
      providerLine(
        level,
        event.health.checkedAt,
        {
          event: 'provider:health',
          provider_id: event.providerId,
          status: event.health.status,
          ...(event.health.busyWorkers === undefined ? {} : { busy_workers: event.health.busyWorkers }),
          ...(event.health.idleWorkers === undefined ? {} : { idle_workers: event.health.idleWorkers }),
          ...(event.health.queued === undefined ? {} : { queued: event.health.queued }),
          ...(event.health.message === undefined ? {} : { detail: event.health.message }),
        },
        changed
          ? `provider ${event.providerId} is ${event.health.status} (was ${previous})`
          : `provider ${event.providerId} is ${event.health.status}`,
      );
    },
    'provider:circuit-open': (event) =>
      providerLine(
        'warn',
        event.at,
        { event: 'provider:circuit-open', provider_id: event.providerId },
        `circuit opened for provider ${event.providerId}: it gets no jobs until it cools down`,
      ),
    'provider:call': (event) =>
      providerLine(
        event.ok ? 'debug' : 'warn',
        event.at,
        {
          event: 'provider:call',
          provider_id: event.providerId,
          call: event.call,
          duration_ms: event.durationMs,
          ok: event.ok,
          ...(event.statusCode === undefined ? {} : { status_code: event.statusCode }),
        },
        event.ok
          ? `${event.call} on ${event.providerId} took ${event.durationMs} ms`
          : `${event.call} on ${event.providerId} failed${event.statusCode === undefined ? '' : ` with ${event.statusCode}`} after ${event.durationMs} ms`,
      ),
  });
}
