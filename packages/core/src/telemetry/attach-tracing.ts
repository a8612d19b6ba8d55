import { createRequire } from 'node:module';
import type * as OpenTelemetryApi from '@opentelemetry/api';
import type { Attributes, Context, Span, Tracer } from '@opentelemetry/api';
import { ConfigurationError, InvalidArgumentError, type SerializedError } from '../spec/errors';
import type { JobEvent } from '../spec/job';
import { isObservedDispatcher, type ObservedDispatcher, subscribe } from './observed-dispatcher';
import { redactSecrets } from './redact';
import { BoundedMap } from './ring-buffer';

/** The `@opentelemetry/api` module, as `import * as api from '@opentelemetry/api'` gives it. */
export type OpenTelemetryApiModule = Pick<typeof OpenTelemetryApi, 'trace' | 'context'>;

/** Options of `attachTracing`. */
export interface AttachTracingOptions {
  /** The tracer spans are made with: `trace.getTracer('comfy-serverless')` from your OpenTelemetry setup. */
  tracer: Tracer;
  /** The `@opentelemetry/api` module; loaded from `@opentelemetry/api` when absent (an optional peer dependency). */
  api?: OpenTelemetryApiModule;
  /** Values removed from every attribute and status message (API keys). */
  secrets?: readonly string[];
}

/** The names of the spans `attachTracing` makes. */
export const SPAN_NAMES = {
  /** One per job, from acceptance to its end; the parent of the others. */
  job: 'comfy.job',
  /** Acceptance (or a failed attempt) until a provider was chosen: admission and routing. */
  routing: 'comfy.job.routing',
  /** A provider chosen until it accepted the job: its concurrency queue and the submit call. */
  queueing: 'comfy.job.queueing',
  /** Accepted until execution started: the platform's queue and any worker start (`comfy.cold_start_ms`). */
  coldStart: 'comfy.job.cold_start',
  /** Execution started until the job ended. */
  execution: 'comfy.job.execution',
  /** First output received until the job ended. */
  outputDownload: 'comfy.job.output_download',
} as const;

// SpanStatusCode.ERROR in @opentelemetry/api; a constant of the specification.
const STATUS_ERROR = 2;
const TRACKED_JOBS = 100_000;

interface JobSpans {
  jobId: string;
  root: Span;
  context: Context;
  phase: Span | undefined;
  output: Span | undefined;
  attempt: number;
}

function loadApi(): OpenTelemetryApiModule {
  try {
    return createRequire(import.meta.url)('@opentelemetry/api') as OpenTelemetryApiModule;
  } catch (cause) {
    throw new ConfigurationError({
      message:
        'attachTracing needs the "@opentelemetry/api" package: install it (npm install @opentelemetry/api) or pass it as the "api" option.',
      cause,
    });
  }
}

/**
 * Makes an OpenTelemetry span per job, with child spans for routing, queueing, cold start,
 * execution and output download (names in `SPAN_NAMES`), all carrying `execution_id` (the
 * job id). Span times are the dispatcher's event times. Sampling, export and the parent of
 * the job span (the active context when the job is submitted) are your OpenTelemetry
 * setup's. Returns a function that stops tracing.
 *
 * @example
 * import { trace } from '@opentelemetry/api';
 * const detach = attachTracing(dispatcher, { tracer: trace.getTracer('comfy-serverless') });
 */
export function attachTracing(dispatcher: ObservedDispatcher, options: AttachTracingOptions): () => void {
  if (!isObservedDispatcher(dispatcher)) {
    throw new InvalidArgumentError({
      argument: 'dispatcher',
      message: 'attachTracing takes a dispatcher (an object with "events" from createDispatcher).',
    });
  }
  if (options === null || typeof options !== 'object' || typeof options.tracer?.startSpan !== 'function') {
    throw new InvalidArgumentError({
      argument: 'tracer',
      message: '"tracer" must be an OpenTelemetry Tracer (trace.getTracer("comfy-serverless")).',
    });
  }
  if (options.api !== undefined && typeof options.api?.trace?.setSpan !== 'function') {
    throw new InvalidArgumentError({
      argument: 'api',
      message: '"api" must be the @opentelemetry/api module (import * as api from "@opentelemetry/api").',
    });
  }
  const api = options.api ?? loadApi();
  const { tracer } = options;
  const secrets = (options.secrets ?? []).filter((secret): secret is string => typeof secret === 'string');
  const clean = (text: string) => redactSecrets(text, secrets);
  const jobs = new BoundedMap<string, JobSpans>(TRACKED_JOBS);

  const jobOf = (event: JobEvent): JobSpans => {
    let spans = jobs.get(event.jobId);
    if (spans !== undefined) return spans;
    // The first event seen: `queued` for a new job, a later one for a job resumed after a restart.
    const root = tracer.startSpan(
      SPAN_NAMES.job,
      { startTime: event.at, attributes: { execution_id: clean(event.jobId) } },
      api.context.active(),
    );
    spans = {
      jobId: event.jobId,
      root,
      context: api.trace.setSpan(api.context.active(), root),
      phase: undefined,
      output: undefined,
      attempt: 0,
    };
    jobs.set(event.jobId, spans);
    return spans;
  };

  const child = (spans: JobSpans, name: string, at: number, attributes: Attributes = {}): Span =>
    tracer.startSpan(
      name,
      { startTime: at, attributes: { execution_id: clean(spans.jobId), ...attributes } },
      spans.context,
    );

  const startPhase = (event: JobEvent, name: string, attributes: Attributes = {}) => {
    const spans = jobOf(event);
    spans.phase?.end(event.at);
    spans.phase = child(spans, name, event.at, {
      'comfy.attempt': Math.max(1, spans.attempt),
      ...attributes,
    });
  };

  const fail = (span: Span | undefined, error: SerializedError, at: number) => {
    if (span === undefined) return;
    const message = clean(`${error.name}: ${error.message}`);
    span.addEvent(
      'exception',
      { 'exception.type': clean(error.name), 'exception.message': clean(error.message) },
      at,
    );
    span.setStatus({ code: STATUS_ERROR, message });
  };

  const finish = (event: JobEvent, outcome: string, error?: SerializedError, attributes: Attributes = {}) => {
    const spans = jobs.get(event.jobId) ?? jobOf(event);
    jobs.delete(event.jobId);
    if (error !== undefined) {
      fail(spans.phase, error, event.at);
      fail(spans.root, error, event.at);
    }
    spans.output?.end(event.at);
    spans.phase?.end(event.at);
    spans.root.setAttributes({ 'comfy.outcome': outcome, ...attributes });
    spans.root.end(event.at);
  };

  return subscribe(dispatcher, {
    'job:queued': (event) => startPhase(event, SPAN_NAMES.routing),
    'job:routed': (event) => {
      const spans = jobOf(event);
      spans.attempt += 1;
      if (spans.phase !== undefined) {
        spans.phase.setAttributes({
          'comfy.provider_id': clean(event.providerId),
          'comfy.candidates': event.candidates.length,
        });
      }
      spans.root.setAttribute('comfy.provider_id', clean(event.providerId));
      startPhase(event, SPAN_NAMES.queueing, { 'comfy.provider_id': clean(event.providerId) });
    },
    'job:submitted': (event) => {
      startPhase(event, SPAN_NAMES.coldStart, {
        'comfy.provider_id': clean(event.providerId),
        'comfy.remote_id': clean(event.remoteId),
      });
    },
    'job:started': (event) => {
      const spans = jobOf(event);
      if (spans.phase !== undefined && event.coldStartMs !== undefined) {
        spans.phase.setAttribute('comfy.cold_start_ms', event.coldStartMs);
      }
      if (event.coldStartMs !== undefined) spans.root.setAttribute('comfy.cold_start_ms', event.coldStartMs);
      startPhase(event, SPAN_NAMES.execution, { 'comfy.provider_id': clean(event.providerId) });
    },
    'job:output': (event) => {
      const spans = jobOf(event);
      if (spans.output === undefined) {
        spans.output = child(spans, SPAN_NAMES.outputDownload, event.at, {
          'comfy.provider_id': clean(event.providerId),
        });
      }
      spans.output.addEvent(
        'output',
        {
          'comfy.node_id': clean(event.output.nodeId),
          'comfy.output_kind': event.output.kind,
          'comfy.filename': clean(event.output.filename),
        },
        event.at,
      );
    },
    'job:retrying': (event) => {
      const spans = jobOf(event);
      fail(spans.phase, event.error, event.at);
      spans.output?.end(event.at);
      spans.output = undefined;
      spans.root.addEvent(
        'retry',
        {
          'comfy.provider_id': clean(event.providerId),
          'comfy.next_provider_id': clean(event.nextProviderId),
          'exception.type': clean(event.error.name),
        },
        event.at,
      );
      startPhase(event, SPAN_NAMES.routing, { 'comfy.failed_provider_id': clean(event.providerId) });
    },
    'job:completed': (event) => {
      const { result } = event;
      const spans = jobs.get(event.jobId);
      if (spans !== undefined && spans.output === undefined && result.outputs.length > 0) {
        // Outputs that came with the completion only: downloading them took no separate time.
        spans.output = child(spans, SPAN_NAMES.outputDownload, event.at, {
          'comfy.provider_id': clean(result.providerId),
          'comfy.outputs': result.outputs.length,
        });
      }
      finish(event, 'completed', undefined, {
        'comfy.provider_id': clean(result.providerId),
        'comfy.attempts': result.attempts,
        'comfy.cost_usd': result.cost.usd,
        'comfy.gpu_seconds': result.cost.gpuSeconds,
        'comfy.queued_ms': result.timing.queuedMs,
        'comfy.execution_ms': result.timing.executionMs,
        'comfy.total_ms': result.timing.totalMs,
        ...(result.timing.coldStartMs === undefined
          ? {}
          : { 'comfy.cold_start_ms': result.timing.coldStartMs }),
      });
    },
    'job:failed': (event) => finish(event, 'failed', event.error),
    'job:cancelled': (event) =>
      finish(
        event,
        'cancelled',
        undefined,
        event.reason === undefined ? {} : { 'comfy.reason': clean(event.reason) },
      ),
    'job:timed_out': (event) =>
      finish(
        event,
        'timed_out',
        {
          name: 'JobTimeoutError',
          message: `did not finish within ${event.timeoutMs} ms`,
          isRetryable: false,
        },
        { 'comfy.timeout_ms': event.timeoutMs },
      ),
  });
}
