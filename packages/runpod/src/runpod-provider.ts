import type {
  Clock,
  FetchFunction,
  GpuInput,
  GpuSpec,
  ImageDescriptor,
  JobOutput,
  ProviderCallOptions,
  ProviderHealth,
  ProviderJobEvent,
  ProviderJobRequest,
  ProviderLimits,
  ProviderPricing,
  ProviderV1,
  RemoteJobRef,
  WorkflowRequirements,
} from '@comfy-serverless/core';
import {
  ApiCallError,
  defaultGpuPrice,
  InvalidArgumentError,
  mayHaveBeenReceived,
  PayloadTooLargeError,
  redactSecrets,
  requestJson,
  resolveGpu,
  SubmissionUnknownError,
  sleep,
  systemClock,
  withRetry,
} from '@comfy-serverless/core';
import type { z } from 'zod';
import {
  cancelResponseSchema,
  healthResponseSchema,
  isRunpodTerminal,
  type RunpodStatusResponse,
  runResponseSchema,
  statusResponseSchema,
  streamResponseSchema,
} from './runpod-api';
import { loadRunpodApiKey } from './runpod-api-key';
import { expiredError, mapHttpError, mapJobFailure, timedOutError } from './runpod-error';
import { decodeWorkerOutput, outputNodesByPrefix } from './runpod-outputs';

/** The largest `/run` body RunPod takes (10 MB). */
export const RUNPOD_RUN_MAX_BYTES = 10_000_000;

/** How the provider waits for a job. */
export type RunpodWaitMode = 'status-sync' | 'stream';

/** Settings of `createRunpod`. */
export interface RunpodSettings {
  /** The serverless endpoint's id (RunPod console, Serverless). */
  endpointId: string;
  /** The API key. @default process.env.RUNPOD_API_KEY, read at request time */
  apiKey?: string;
  /** The job API base. @default 'https://api.runpod.ai/v2' */
  baseURL?: string;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
  /** The endpoint's GPU: a known name (`'L4-24GB'`) or `{ type, vramGb }`. */
  gpu: GpuInput;
  /** What a worker costs. @default RunPod's list price for `gpu` */
  pricing?: ProviderPricing;
  region?: string;
  /** What the worker image holds (models, node types), for preflight and routing. */
  image?: ImageDescriptor;
  fetch?: FetchFunction;
  /** The clock used for backoff and fallback polling. @default the system clock */
  clock?: Clock;
  /** Provider id. @default `runpod:<endpointId>` */
  id?: string;
  /** `policy.executionTimeout` sent with each job, in ms (at least 5000). @default 600000 */
  executionTimeoutMs?: number;
  /** `policy.ttl` sent with each job, in ms: RunPod deletes the job when it passes, even while running. @default 86400000 */
  ttlMs?: number;
  /** `policy.lowPriority`: the job does not trigger scale-up. @default false */
  lowPriority?: boolean;
  /** URL RunPod calls when the job ends. */
  webhook?: string;
  /** `wait` of each `/status-sync` long poll, in ms (1000..90000). @default 90000 */
  statusWaitMs?: number;
  /** `'stream'` follows `/stream/{id}` to yield progress and outputs as they come. @default 'status-sync' */
  waitMode?: RunpodWaitMode;
  /** Most retries of a call RunPod answered 429 (or 5xx, for reads). @default 6 */
  maxRetries?: number;
  /** Real-time limit of calls other than long polls, in ms. @default 60000 */
  requestTimeoutMs?: number;
  /** Most jobs the dispatcher should run here at once. */
  maxConcurrency?: number;
  /** Typical cold start of a worker, in ms (for routing). */
  coldStartMs?: number;
  /** Random numbers in [0, 1) for retry jitter (tests). @default Math.random */
  random?: () => number;
}

/** A `ProviderV1` for a RunPod Serverless endpoint running worker-comfyui. */
export interface RunpodProvider extends ProviderV1 {
  readonly platform: 'runpod';
  readonly endpointId: string;
}

/** What `doSubmit` journals beside the RunPod job id. */
interface RunpodRefData {
  endpointId?: string;
  executionTimeoutMs?: number;
  outputPrefixes?: Record<string, string>;
  jobId?: string;
}

const DEFAULT_BASE_URL = 'https://api.runpod.ai/v2';
const LONG_POLL_MARGIN_MS = 30_000;
const FALLBACK_POLL = { firstMs: 1_000, maxMs: 15_000 };

function invalid(argument: string, message: string): never {
  throw new InvalidArgumentError({ argument, message });
}

function checkInteger(name: string, value: number | undefined, min: number, max: number): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < min || value > max)
    invalid(name, `"${name}" must be an integer from ${min} to ${max}; got ${String(value)}.`);
}

function checkUrl(name: string, value: string | undefined): void {
  if (value === undefined) return;
  try {
    const url = new URL(value);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('protocol');
  } catch {
    invalid(name, `"${name}" must be an http(s) URL; got ${JSON.stringify(String(value).slice(0, 80))}.`);
  }
}

function toBase64(data: Uint8Array | string): string {
  return typeof data === 'string'
    ? data
    : Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
}

function refData(ref: RemoteJobRef): RunpodRefData {
  const data = (ref.data ?? {}) as Record<string, unknown>;
  return {
    ...(typeof data.endpointId === 'string' ? { endpointId: data.endpointId } : {}),
    ...(typeof data.executionTimeoutMs === 'number' ? { executionTimeoutMs: data.executionTimeoutMs } : {}),
    ...(data.outputPrefixes && typeof data.outputPrefixes === 'object'
      ? { outputPrefixes: data.outputPrefixes as Record<string, string> }
      : {}),
    ...(typeof data.jobId === 'string' ? { jobId: data.jobId } : {}),
  };
}

function progressOf(
  chunk: unknown,
): { fraction: number; value?: number; max?: number; nodeId?: string } | undefined {
  if (typeof chunk === 'string') {
    const match = /(\d+)\s*\/\s*(\d+)/.exec(chunk);
    if (!match) return undefined;
    const value = Number(match[1]);
    const max = Number(match[2]);
    return max > 0 ? { fraction: Math.min(1, value / max), value, max } : undefined;
  }
  if (!chunk || typeof chunk !== 'object') return undefined;
  const record = chunk as Record<string, unknown>;
  const inner = record.progress;
  if (typeof inner === 'number' && Number.isFinite(inner))
    return { fraction: Math.min(1, Math.max(0, inner > 1 ? inner / 100 : inner)) };
  const source = inner && typeof inner === 'object' ? (inner as Record<string, unknown>) : record;
  const value = source.value;
  const max = source.max;
  if (typeof value === 'number' && typeof max === 'number' && max > 0) {
    const node = source.node ?? source.nodeId;
    return {
      fraction: Math.min(1, Math.max(0, value / max)),
      value,
      max,
      ...(typeof node === 'string' ? { nodeId: node } : {}),
    };
  }
  return undefined;
}

/**
 * Creates a provider for a RunPod Serverless endpoint that runs worker-comfyui.
 *
 * Jobs go in with `/run` (so the id is journalled before any wait) and are followed with
 * `/status-sync` long polls, or `/stream` when `waitMode: 'stream'`. 429s are retried
 * with Retry-After and jittered backoff.
 *
 * @example
 * const runpod = createRunpod({ endpointId: 'abc123', gpu: 'L4-24GB' }); // key from RUNPOD_API_KEY
 */
export function createRunpod(settings: RunpodSettings): RunpodProvider {
  if (settings === null || typeof settings !== 'object')
    invalid('settings', 'createRunpod needs a settings object.');
  const { endpointId } = settings;
  if (typeof endpointId !== 'string' || !/^[\w-]+$/.test(endpointId))
    invalid(
      'endpointId',
      `"endpointId" must be the endpoint's id (letters, digits, - and _); got ${JSON.stringify(endpointId)}.`,
    );
  if (settings.apiKey !== undefined && (typeof settings.apiKey !== 'string' || settings.apiKey.trim() === ''))
    invalid('apiKey', '"apiKey" must be a non-empty string; leave it out to use RUNPOD_API_KEY.');
  checkUrl('baseURL', settings.baseURL);
  checkUrl('webhook', settings.webhook);
  checkInteger('statusWaitMs', settings.statusWaitMs, 1_000, 90_000);
  checkInteger('executionTimeoutMs', settings.executionTimeoutMs, 5_000, 7 * 24 * 3_600_000);
  checkInteger('ttlMs', settings.ttlMs, 10_000, 7 * 24 * 3_600_000);
  checkInteger('maxRetries', settings.maxRetries, 0, 50);
  checkInteger('requestTimeoutMs', settings.requestTimeoutMs, 1_000, 3_600_000);
  checkInteger('maxConcurrency', settings.maxConcurrency, 1, 100_000);
  if (
    settings.waitMode !== undefined &&
    settings.waitMode !== 'status-sync' &&
    settings.waitMode !== 'stream'
  )
    invalid(
      'waitMode',
      `"waitMode" must be 'status-sync' or 'stream'; got ${JSON.stringify(settings.waitMode)}.`,
    );
  const gpu: GpuSpec = resolveGpu(settings.gpu, 'gpu');
  let pricing: ProviderPricing;
  if (settings.pricing !== undefined) {
    if (!(settings.pricing.usdPerSecond >= 0))
      invalid(
        'pricing',
        `"pricing.usdPerSecond" must be a number >= 0; got ${String(settings.pricing.usdPerSecond)}.`,
      );
    pricing = { ...settings.pricing };
  } else {
    const price = defaultGpuPrice(gpu);
    if (price === undefined)
      invalid('pricing', `No default price for GPU "${gpu.type}": give "pricing: { usdPerSecond }".`);
    pricing = { usdPerSecond: price, billingIncrementSeconds: 1 };
  }

  const id = settings.id ?? `runpod:${endpointId}`;
  const baseURL = (settings.baseURL ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
  const clock = settings.clock ?? systemClock;
  const executionTimeoutMs = settings.executionTimeoutMs ?? 600_000;
  const ttlMs = settings.ttlMs ?? 86_400_000;
  const statusWaitMs = settings.statusWaitMs ?? 90_000;
  const maxRetries = settings.maxRetries ?? 6;
  const requestTimeoutMs = settings.requestTimeoutMs ?? 60_000;
  const waitMode = settings.waitMode ?? 'status-sync';
  const headers = { ...(settings.headers ?? {}) };
  // Learned once per provider: some deployments (proxies, older API versions) lack /status-sync.
  let statusSyncMissing = false;
  let streamMissing = false;

  const limits: ProviderLimits = {
    maxPayloadBytes: RUNPOD_RUN_MAX_BYTES,
    maxExecutionMs: executionTimeoutMs,
    ...(settings.maxConcurrency === undefined ? {} : { maxConcurrency: settings.maxConcurrency }),
  };

  interface CallOptions<T> {
    endpoint: string;
    route: string;
    path: string;
    method?: 'GET' | 'POST';
    body?: unknown;
    schema: z.ZodType<T>;
    signal?: AbortSignal | undefined;
    timeoutMs?: number;
    /** Retry only 429s (for /run, where a retried 5xx could run the job twice). */
    only429?: boolean;
    jobId?: string | undefined;
  }

  const call = async <T>(options: CallOptions<T>): Promise<T> => {
    const key = loadRunpodApiKey(settings.apiKey, id);
    const url = `${baseURL}/${options.endpoint}${options.path}`;
    const attempt = async () => {
      try {
        const response = await requestJson<T>({
          url,
          method: options.method ?? 'GET',
          headers: { ...headers, authorization: `Bearer ${key}` },
          ...(options.body === undefined ? {} : { body: options.body }),
          ...(settings.fetch ? { fetch: settings.fetch } : {}),
          ...(options.signal ? { signal: options.signal } : {}),
          timeoutMs: options.timeoutMs ?? requestTimeoutMs,
          schema: options.schema,
          secrets: [key],
          providerId: id,
          ...(options.jobId ? { jobId: options.jobId } : {}),
        });
        return response.value;
      } catch (error) {
        throw mapHttpError(error, { providerId: id, endpointId: options.endpoint, route: options.route });
      }
    };
    return withRetry(attempt, {
      retries: maxRetries,
      minDelayMs: 1_000,
      maxDelayMs: 30_000,
      clock,
      ...(settings.random ? { random: settings.random } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      shouldRetry: (error) => {
        if (!ApiCallError.isInstance(error) || !error.isRetryable) return false;
        return options.only429 ? error.statusCode === 429 : true;
      },
    });
  };

  const isStatus = (error: unknown, ...codes: number[]) =>
    ApiCallError.isInstance(error) && error.statusCode !== undefined && codes.includes(error.statusCode);

  async function* watch(
    ref: RemoteJobRef,
    options: ProviderCallOptions = {},
  ): AsyncGenerator<ProviderJobEvent> {
    const data = refData(ref);
    const endpoint = data.endpointId ?? endpointId;
    const remoteId = ref.remoteId;
    const signal = options.signal;
    const jobId = data.jobId;
    const context = {
      providerId: id,
      remoteId,
      ...(jobId === undefined ? {} : { jobId }),
      secrets: [settings.apiKey ?? process.env.RUNPOD_API_KEY],
      ...(data.executionTimeoutMs === undefined ? {} : { executionTimeoutMs: data.executionTimeoutMs }),
    };
    const encodedId = encodeURIComponent(remoteId);
    let started = false;
    let queued = false;
    let startedAt: number | undefined;
    const watchStartedAt = clock.now();
    let fallbackDelay = FALLBACK_POLL.firstMs;
    let quickAnswers = 0;
    const streamed: JobOutput[] = [];
    let mode: RunpodWaitMode = waitMode === 'stream' && !streamMissing ? 'stream' : 'status-sync';

    const readStatus = () =>
      call({
        endpoint,
        route: '/status',
        path: `/status/${encodedId}`,
        schema: statusResponseSchema,
        signal,
        jobId,
      });

    /** /status after a 404 elsewhere: tells an absent route from an expired job. */
    const statusAfter404 = async (): Promise<RunpodStatusResponse | 'expired'> => {
      try {
        return await readStatus();
      } catch (error) {
        if (isStatus(error, 404)) return 'expired';
        throw error;
      }
    };

    const pollStatus = async (): Promise<RunpodStatusResponse | 'expired'> => {
      if (!statusSyncMissing) {
        const askedAt = clock.now();
        try {
          const answer = await call({
            endpoint,
            route: '/status-sync',
            path: `/status-sync/${encodedId}?wait=${statusWaitMs}`,
            schema: statusResponseSchema,
            signal,
            timeoutMs: statusWaitMs + LONG_POLL_MARGIN_MS,
            jobId,
          });
          // A server that does not hold would make this a tight loop: slow down when answers come fast.
          if (!isRunpodTerminal(answer.status) && clock.now() - askedAt < 1_000) {
            quickAnswers += 1;
            if (quickAnswers > 1) {
              await sleep(fallbackDelay, { clock, ...(signal ? { signal } : {}) });
              fallbackDelay = Math.min(FALLBACK_POLL.maxMs, fallbackDelay * 2);
            }
          } else quickAnswers = 0;
          return answer;
        } catch (error) {
          if (!isStatus(error, 404, 405)) throw error;
          const answer = await statusAfter404();
          if (answer !== 'expired') statusSyncMissing = true;
          return answer;
        }
      }
      await sleep(fallbackDelay, { clock, ...(signal ? { signal } : {}) });
      fallbackDelay = Math.min(FALLBACK_POLL.maxMs, Math.round(fallbackDelay * 1.5));
      try {
        return await readStatus();
      } catch (error) {
        if (isStatus(error, 404)) return 'expired';
        throw error;
      }
    };

    const startedEvent = (status: RunpodStatusResponse | undefined): ProviderJobEvent => {
      started = true;
      startedAt ??= clock.now();
      return {
        type: 'started',
        ...(status?.delayTime == null ? {} : { queuedMs: status.delayTime }),
        ...(status?.workerId ? { workerId: status.workerId } : {}),
      };
    };

    const terminal = async function* (
      status: RunpodStatusResponse,
    ): AsyncGenerator<ProviderJobEvent, void, undefined> {
      switch (status.status) {
        case 'COMPLETED': {
          if (!started) yield startedEvent(status);
          const decoded = decodeWorkerOutput(status.output, {
            ...(data.outputPrefixes ? { prefixes: data.outputPrefixes } : {}),
            url: `${baseURL}/${endpoint}/status/${remoteId}`,
            providerId: id,
            ...(jobId ? { jobId } : {}),
          });
          const outputs = decoded.outputs.length > 0 ? decoded.outputs : streamed;
          const now = clock.now();
          yield {
            type: 'completed',
            outputs,
            timing: {
              ...(status.delayTime == null ? {} : { queuedMs: status.delayTime }),
              executionMs: status.executionTime ?? Math.max(0, now - (startedAt ?? watchStartedAt)),
            },
          };
          return;
        }
        case 'FAILED':
          yield {
            type: 'failed',
            error: mapJobFailure(
              { error: status.error, details: status.details ?? outputDetails(status.output) },
              context,
            ),
            executionStarted: started || (status.executionTime ?? 0) > 0,
          };
          return;
        case 'TIMED_OUT':
          yield { type: 'failed', error: timedOutError(context), executionStarted: true };
          return;
        case 'CANCELLED':
          yield { type: 'cancelled' };
          return;
      }
    };

    for (;;) {
      if (signal?.aborted) throw signal.reason;
      let status: RunpodStatusResponse | 'expired';
      if (mode === 'stream') {
        const askedAt = clock.now();
        let answer: z.infer<typeof streamResponseSchema> | 'expired' | 'missing';
        try {
          answer = await call({
            endpoint,
            route: '/stream',
            path: `/stream/${encodedId}`,
            schema: streamResponseSchema,
            signal,
            timeoutMs: statusWaitMs + LONG_POLL_MARGIN_MS,
            jobId,
          });
        } catch (error) {
          if (!isStatus(error, 404, 405)) throw error;
          const check = await statusAfter404();
          answer = check === 'expired' ? 'expired' : 'missing';
        }
        if (answer === 'missing') {
          streamMissing = true;
          mode = 'status-sync';
          continue;
        }
        if (answer === 'expired') {
          status = 'expired';
        } else {
          if (answer.status === 'IN_QUEUE' && !queued && !started) {
            queued = true;
            yield { type: 'queued' };
          }
          if (answer.status !== 'IN_QUEUE' && !started && (answer.stream?.length ?? 0) > 0)
            yield startedEvent(undefined);
          for (const chunk of answer.stream ?? []) {
            const output = chunk.output;
            const progress = progressOf(output);
            if (progress) {
              yield { type: 'progress', ...progress };
              continue;
            }
            if (output && typeof output === 'object' && ('images' in output || 'audio' in output)) {
              const decoded = decodeWorkerOutput(output, {
                ...(data.outputPrefixes ? { prefixes: data.outputPrefixes } : {}),
                providerId: id,
              });
              for (const item of decoded.outputs) {
                streamed.push(item);
                yield { type: 'output', output: item };
              }
            }
          }
          if (answer.status === 'IN_PROGRESS' && !started) yield startedEvent(undefined);
          if (!isRunpodTerminal(answer.status)) {
            // Empty answers that come back at once: back off rather than spin.
            if ((answer.stream?.length ?? 0) === 0 && clock.now() - askedAt < 1_000) {
              await sleep(fallbackDelay, { clock, ...(signal ? { signal } : {}) });
              fallbackDelay = Math.min(10_000, fallbackDelay * 2);
            } else fallbackDelay = FALLBACK_POLL.firstMs;
            continue;
          }
          if (answer.status === 'COMPLETED' && streamed.length > 0) {
            // The stream carried the outputs: no further request (timing as observed here).
            status = { status: 'COMPLETED', output: null };
          } else if (answer.status === 'CANCELLED') {
            status = { status: 'CANCELLED' };
          } else
            try {
              // /status holds the error, the timing and the full output.
              status = await readStatus();
            } catch (error) {
              if (!isStatus(error, 404)) throw error;
              status = 'expired';
            }
        }
      } else {
        status = await pollStatus();
      }

      if (status === 'expired') {
        yield { type: 'failed', error: expiredError(context), executionStarted: started };
        return;
      }
      if (isRunpodTerminal(status.status)) {
        yield* terminal(status);
        return;
      }
      if (status.status === 'IN_QUEUE' && !queued && !started) {
        queued = true;
        yield { type: 'queued' };
      } else if (status.status === 'IN_PROGRESS' && !started) {
        yield startedEvent(status);
      }
    }
  }

  const submissions = new Map<string, Promise<RemoteJobRef>>();

  async function submit(request: ProviderJobRequest, options: ProviderCallOptions): Promise<RemoteJobRef> {
    const now = clock.now();
    let ttl = ttlMs;
    if (request.deadlineAt !== undefined) ttl = Math.max(10_000, Math.min(ttlMs, request.deadlineAt - now));
    const body = {
      input: {
        workflow: request.workflow,
        images: request.images.map((image) => ({ name: image.name, image: toBase64(image.data) })),
      },
      policy: {
        executionTimeout: executionTimeoutMs,
        ttl,
        ...(settings.lowPriority ? { lowPriority: true } : {}),
      },
      ...(settings.webhook === undefined ? {} : { webhook: settings.webhook }),
    };
    const size = Buffer.byteLength(JSON.stringify(body), 'utf8');
    if (size > RUNPOD_RUN_MAX_BYTES) {
      throw new PayloadTooLargeError({
        message: `The /run body for job ${request.jobId} is ${size} bytes, over RunPod's ${RUNPOD_RUN_MAX_BYTES}-byte limit (input images are sent inline as base64). Put large inputs in S3 and pass their URLs (for example with @comfy-serverless/s3), or shrink the images.`,
        sizeBytes: size,
        limitBytes: RUNPOD_RUN_MAX_BYTES,
        providerId: id,
        jobId: request.jobId,
      });
    }
    let answer: z.infer<typeof runResponseSchema>;
    try {
      answer = await call({
        endpoint: endpointId,
        route: '/run',
        path: '/run',
        method: 'POST',
        body,
        schema: runResponseSchema,
        signal: options.signal,
        only429: true,
        jobId: request.jobId,
        timeoutMs: Math.max(requestTimeoutMs, 120_000),
      });
    } catch (error) {
      // /run has no idempotency key: an answer lost after RunPod read the request may
      // hide a job that is queued there. Say so, rather than let anyone send it again.
      if (mayHaveBeenReceived(error)) {
        throw new SubmissionUnknownError({
          message: `RunPod may have accepted job ${request.jobId} on endpoint ${endpointId}, but the answer to /run was lost (${(error as Error).message})`,
          cause: error,
          providerId: id,
          jobId: request.jobId,
        });
      }
      throw error;
    }
    const prefixes = outputNodesByPrefix(request.workflow);
    return {
      remoteId: answer.id,
      data: {
        endpointId,
        jobId: request.jobId,
        executionTimeoutMs,
        ...(Object.keys(prefixes).length > 0 ? { outputPrefixes: prefixes } : {}),
      },
    };
  }

  const provider: RunpodProvider = {
    specificationVersion: 'v1',
    id,
    platform: 'runpod',
    endpointId,
    gpu,
    pricing,
    limits,
    ...(settings.region === undefined ? {} : { region: settings.region }),
    ...(settings.image === undefined ? {} : { image: settings.image }),
    ...(settings.coldStartMs === undefined ? {} : { coldStartMs: settings.coldStartMs }),

    doSubmit(request: ProviderJobRequest, options: ProviderCallOptions = {}): Promise<RemoteJobRef> {
      // /run has no idempotency key: the same submission (job id and attempt) asked twice of
      // this instance, say by a retry racing a slow answer, gets the first one's job.
      const key = `${request.jobId}\u0000${request.attempt}`;
      const known = submissions.get(key);
      if (known) return known;
      const pending = submit(request, options);
      submissions.set(key, pending);
      if (submissions.size > 10_000) {
        const oldest = submissions.keys().next().value;
        if (oldest !== undefined) submissions.delete(oldest);
      }
      pending.catch(() => submissions.delete(key));
      return pending;
    },

    doWatch(ref: RemoteJobRef, options?: ProviderCallOptions): AsyncIterable<ProviderJobEvent> {
      if (!ref || typeof ref.remoteId !== 'string' || ref.remoteId === '')
        invalid('ref.remoteId', 'doWatch needs the reference doSubmit returned ({ remoteId, data }).');
      return watch(ref, options);
    },

    async doCancel(ref: RemoteJobRef, options: ProviderCallOptions = {}): Promise<void> {
      const endpoint = refData(ref).endpointId ?? endpointId;
      try {
        await call({
          endpoint,
          route: '/cancel',
          path: `/cancel/${encodeURIComponent(ref.remoteId)}`,
          method: 'POST',
          body: {},
          schema: cancelResponseSchema,
          signal: options.signal,
        });
      } catch (error) {
        // Gone already (finished and past retention, or deleted by its TTL): nothing to cancel.
        if (isStatus(error, 404)) return;
        throw error;
      }
    },

    async doPreflight(requirements: WorkflowRequirements) {
      // Without a description of the worker image nothing can be ruled out.
      const image = settings.image;
      const missingModels: string[] = [];
      if (image?.models !== undefined && image.canLoadModels !== true) {
        const everywhere = new Set(Object.values(image.models).flat());
        for (const model of requirements.models) {
          const present =
            model.folder === null
              ? everywhere.has(model.name)
              : (image.models[model.folder] ?? []).includes(model.name);
          if (!present)
            missingModels.push(model.folder === null ? model.name : `${model.folder}/${model.name}`);
        }
      }
      const missingNodeTypes =
        image?.nodeTypes === undefined
          ? []
          : requirements.nodeTypes.filter((nodeType) => !image.nodeTypes?.includes(nodeType));
      return {
        ok: missingModels.length === 0 && missingNodeTypes.length === 0,
        missingModels,
        missingNodeTypes,
      };
    },

    async doHealth(options: ProviderCallOptions = {}): Promise<ProviderHealth> {
      const answer = await call({
        endpoint: endpointId,
        route: '/health',
        path: '/health',
        schema: healthResponseSchema,
        signal: options.signal,
      });
      const jobs = answer.jobs ?? {};
      const workers = answer.workers ?? {};
      // Some answers carry `ready` beside or instead of `idle`; they may overlap, so never add them.
      const idle = workers.idle ?? workers.ready ?? 0;
      const running = workers.running ?? 0;
      const initializing = workers.initializing ?? 0;
      const throttled = workers.throttled ?? 0;
      const inQueue = jobs.inQueue ?? 0;
      const unhealthyWorkers = workers.unhealthy ?? 0;
      let status: ProviderHealth['status'] = 'healthy';
      let message: string | undefined;
      if (idle + running + initializing === 0 && throttled > 0 && inQueue > 0) {
        status = 'unhealthy';
        message = `${inQueue} jobs queued and every worker throttled: RunPod has no GPU of this type free. Add GPU types to the endpoint or route elsewhere.`;
      } else if (throttled > 0 || unhealthyWorkers > 0) {
        status = 'degraded';
        message = `${throttled} workers throttled, ${unhealthyWorkers} unhealthy.`;
      }
      return {
        status,
        queued: inQueue,
        running: jobs.inProgress ?? 0,
        idleWorkers: idle,
        busyWorkers: running,
        initializingWorkers: initializing,
        throttledWorkers: throttled,
        ...(message === undefined ? {} : { message: redactSecrets(message) }),
        checkedAt: clock.now(),
      };
    },
  };
  return provider;
}

function outputDetails(output: unknown): unknown {
  if (output && typeof output === 'object' && 'details' in output)
    return (output as { details: unknown }).details;
  return undefined;
}
