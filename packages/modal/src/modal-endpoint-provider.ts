import type {
  Clock,
  ComfyServerlessError,
  FetchFunction,
  GpuInput,
  ImageDescriptor,
  ProviderCallOptions,
  ProviderHealth,
  ProviderJobEvent,
  ProviderJobRequest,
  ProviderLimits,
  ProviderPricing,
  ProviderV1,
  RemoteJobRef,
} from '@comfy-serverless/core';
import {
  ApiCallError,
  ConfigurationError,
  InvalidArgumentError,
  InvalidResponseError,
  JobExpiredError,
  JobFailedError,
  JobTimeoutError,
  LoadApiKeyError,
  mayHaveBeenReceived,
  redactSecrets,
  requestJson,
  SubmissionUnknownError,
  systemClock,
} from '@comfy-serverless/core';
import { resolveModalGpu } from './modal-gpu';
import {
  abortable,
  optionalClock,
  optionalNumber,
  optionalString,
  requireJobId,
  requireString,
} from './modal-options';
import { buildRunRequest, decodeRunResult, runResultEvents } from './modal-result';

/** Options of `createModalEndpoint`. */
export interface ModalEndpointOptions {
  /** The web endpoint of the reference app (`https://<workspace>--comfyui-api.modal.run`). */
  url: string;
  /** Proxy auth token id (`wk-...`), sent as `Modal-Key`. @default process.env.MODAL_PROXY_TOKEN_ID */
  key?: string;
  /** Proxy auth token secret (`ws-...`), sent as `Modal-Secret`. @default process.env.MODAL_PROXY_TOKEN_SECRET */
  secret?: string;
  /** The GPU of the class behind the endpoint. */
  gpu: GpuInput;
  /** @default Modal's list price for the GPU */
  pricing?: ProviderPricing;
  region?: string;
  image?: ImageDescriptor;
  limits?: ProviderLimits;
  /** @default 30000 */
  coldStartMs?: number;
  /** @default `modal-endpoint:<host>` */
  id?: string;
  /** How long the endpoint holds one result poll open, in ms (Modal answers a request longer than 150 s with a 303, which is followed). @default 60000 */
  pollWaitMs?: number;
  /** Extra headers for every request. */
  headers?: Record<string, string>;
  fetch?: FetchFunction;
  /** Where environment variables are read from, when first needed. @default process.env */
  env?: Record<string, string | undefined>;
  clock?: Clock;
}

/** What the reference endpoint answers to `GET /jobs/{callId}`. */
interface PollAnswer {
  status?: string;
  result?: unknown;
  error?: { type?: string; message?: string };
}

/**
 * A provider that talks to the reference app's HTTP endpoint instead of Modal's SDK
 * (for hosts that cannot use gRPC): `POST /jobs` spawns a `ComfyWorker.run` call,
 * `GET /jobs/{callId}` long-polls its result, `DELETE /jobs/{callId}` cancels it,
 * `GET /health` reads the backlog. Every call carries `Modal-Key`/`Modal-Secret` when
 * set, follows Modal's 303 for requests longer than 150 s, and turns a 401 into an
 * error naming the option or variable to set.
 *
 * @example
 * const modal = createModalEndpoint({ url: 'https://acme--comfyui-api.modal.run', gpu: 'L40S' });
 */
export function createModalEndpoint(options: ModalEndpointOptions): ProviderV1 {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError({
      argument: 'options',
      message: 'createModalEndpoint needs { url, gpu, ... }.',
    });
  }
  const rawUrl = requireString(options.url, 'url', "the reference app's web endpoint URL");
  let baseUrl: URL;
  try {
    baseUrl = new URL(rawUrl.endsWith('/') ? rawUrl : `${rawUrl}/`);
  } catch {
    throw new InvalidArgumentError({
      argument: 'url',
      message: `"url" must be an absolute URL; got "${rawUrl.slice(0, 80)}".`,
    });
  }
  if (baseUrl.protocol !== 'https:' && baseUrl.protocol !== 'http:') {
    throw new InvalidArgumentError({
      argument: 'url',
      message: `"url" must be http(s); got ${baseUrl.protocol}`,
    });
  }
  const { gpu, pricing } = resolveModalGpu(options.gpu, options.pricing);
  const region = optionalString(options.region, 'region');
  const coldStartMs = optionalNumber(options.coldStartMs, 'coldStartMs', { min: 0 }) ?? 30_000;
  const pollWaitMs = optionalNumber(options.pollWaitMs, 'pollWaitMs', { min: 0, max: 3_600_000 }) ?? 60_000;
  const clock = optionalClock(options.clock) ?? systemClock;
  const id = optionalString(options.id, 'id') ?? `modal-endpoint:${baseUrl.host}`;
  optionalString(options.key, 'key');
  optionalString(options.secret, 'secret');

  let credentials: { key?: string; secret?: string } | undefined;
  /** Read on first use, never at creation. */
  const getCredentials = () => {
    if (credentials !== undefined) return credentials;
    const env = options.env ?? process.env;
    const key = options.key ?? env.MODAL_PROXY_TOKEN_ID;
    const secret = options.secret ?? env.MODAL_PROXY_TOKEN_SECRET;
    if ((key === undefined) !== (secret === undefined)) {
      throw new LoadApiKeyError({
        message: `Half a Modal proxy auth token was given: set ${key === undefined ? 'key (or MODAL_PROXY_TOKEN_ID)' : 'secret (or MODAL_PROXY_TOKEN_SECRET)'} as well.`,
        providerId: id,
      });
    }
    credentials = { ...(key === undefined ? {} : { key }), ...(secret === undefined ? {} : { secret }) };
    return credentials;
  };
  const secretsOf = () => [credentials?.secret, options.secret, credentials?.key];

  const cancellations = new Map<string, AbortController>();

  const call = async <T>(
    method: string,
    path: string,
    init: { body?: unknown; signal?: AbortSignal; timeoutMs?: number; jobId?: string } = {},
  ): Promise<T> => {
    const { key, secret } = getCredentials();
    const url = new URL(path, baseUrl).toString();
    try {
      const response = await requestJson<T>({
        url,
        method,
        headers: {
          ...options.headers,
          ...(key === undefined ? {} : { 'Modal-Key': key }),
          ...(secret === undefined ? {} : { 'Modal-Secret': secret }),
        },
        ...(init.body === undefined ? {} : { body: init.body }),
        ...(init.signal === undefined ? {} : { signal: init.signal }),
        ...(init.timeoutMs === undefined ? {} : { timeoutMs: init.timeoutMs }),
        ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
        secrets: secretsOf(),
        providerId: id,
        ...(init.jobId === undefined ? {} : { jobId: init.jobId }),
      });
      return response.value;
    } catch (error) {
      throw refine(error, key !== undefined);
    }
  };

  const refine = (error: unknown, sentCredentials: boolean): unknown => {
    if (!ApiCallError.isInstance(error)) return error;
    if (error.statusCode === 401 || error.statusCode === 403) {
      return new LoadApiKeyError({
        message: sentCredentials
          ? `The Modal endpoint refused the proxy auth token (${error.statusCode}). Check the key and secret options (or MODAL_PROXY_TOKEN_ID and MODAL_PROXY_TOKEN_SECRET) against the token in Modal's dashboard.`
          : `The Modal endpoint requires proxy auth (${error.statusCode}: ${redactSecrets(error.responseBody ?? '', secretsOf()).slice(0, 120)}). Pass key and secret to createModalEndpoint, or set MODAL_PROXY_TOKEN_ID and MODAL_PROXY_TOKEN_SECRET (a proxy auth token from Modal's dashboard).`,
        providerId: id,
      });
    }
    return error;
  };

  const jobPath = (callId: string) => `jobs/${encodeURIComponent(callId)}`;

  async function* watch(
    ref: RemoteJobRef,
    callOptions: ProviderCallOptions = {},
  ): AsyncGenerator<ProviderJobEvent> {
    if (typeof ref?.remoteId !== 'string' || ref.remoteId === '') {
      throw new InvalidArgumentError({
        argument: 'ref.remoteId',
        message: 'The job reference has no remoteId (the call id).',
      });
    }
    const callId = ref.remoteId;
    const signal = callOptions.signal;
    const submittedAt = typeof ref.data?.submittedAt === 'number' ? ref.data.submittedAt : undefined;
    const deadlineAt = typeof ref.data?.deadlineAt === 'number' ? ref.data.deadlineAt : undefined;
    const jobId = typeof ref.data?.jobId === 'string' ? ref.data.jobId : undefined;
    const ids = { providerId: id, ...(jobId === undefined ? {} : { jobId }) };
    let cancellation = cancellations.get(callId);
    if (cancellation === undefined) {
      cancellation = new AbortController();
      cancellations.set(callId, cancellation);
    }
    signal?.throwIfAborted();
    try {
      yield { type: 'queued' };
      for (;;) {
        signal?.throwIfAborted();
        if (cancellation.signal.aborted) {
          yield { type: 'cancelled' };
          return;
        }
        const now = clock.now();
        if (deadlineAt !== undefined && now >= deadlineAt) {
          await call('DELETE', jobPath(callId)).catch(() => {});
          yield {
            type: 'failed',
            error: new JobTimeoutError({
              message: `The job passed its deadline (${new Date(deadlineAt).toISOString()}) before the Modal endpoint returned a result; the call was cancelled.`,
              ...ids,
            }),
            executionStarted: true,
          };
          return;
        }
        const waitMs =
          deadlineAt === undefined ? pollWaitMs : Math.max(0, Math.min(pollWaitMs, deadlineAt - now));
        let answer: PollAnswer;
        try {
          answer = await abortable(
            call<PollAnswer>('GET', `${jobPath(callId)}?waitMs=${Math.round(waitMs)}`, {
              signal: AbortSignal.any([cancellation.signal, ...(signal ? [signal] : [])]),
              // Modal answers within 150 s (with a result or a 303); this only guards a hung connection.
              timeoutMs: waitMs + 180_000,
              ...(jobId === undefined ? {} : { jobId }),
            }),
            [signal, cancellation.signal],
          );
        } catch (error) {
          signal?.throwIfAborted();
          if (cancellation.signal.aborted) {
            yield { type: 'cancelled' };
            return;
          }
          if (ApiCallError.isInstance(error) && (error.statusCode === 404 || error.statusCode === 410)) {
            yield {
              type: 'failed',
              error: new JobExpiredError({
                message: `The Modal endpoint no longer knows call ${callId} (Modal keeps results for 7 days). Submit the job again.`,
                remoteId: callId,
                ...ids,
              }),
              executionStarted: false,
            };
            return;
          }
          throw error;
        }
        const status = answer?.status;
        if (status === 'pending' || status === 'queued' || status === 'running') continue;
        if (status === 'cancelled') {
          yield { type: 'cancelled' };
          return;
        }
        if (status === 'failed') {
          yield {
            type: 'failed',
            error: callError(answer.error, ids),
            executionStarted: answer.error?.type !== 'expired',
          };
          return;
        }
        if (status !== 'done') {
          throw new InvalidResponseError({
            message: `The Modal endpoint answered GET /jobs/${callId} with status ${JSON.stringify(status)}; expected pending, done, failed or cancelled. Is it the reference comfyui_app.py?`,
            ...ids,
          });
        }
        const result = decodeRunResult(answer.result, {
          ...ids,
          source: `The Modal endpoint ${baseUrl.host}`,
        });
        for (const event of runResultEvents(result, submittedAt)) yield event;
        return;
      }
    } finally {
      if (!cancellation.signal.aborted && cancellations.get(callId) === cancellation)
        cancellations.delete(callId);
    }
  }

  return {
    specificationVersion: 'v1',
    id,
    platform: 'modal',
    ...(region === undefined ? {} : { region }),
    gpu,
    pricing,
    ...(options.image === undefined ? {} : { image: options.image }),
    ...(options.limits === undefined ? {} : { limits: { ...options.limits } }),
    coldStartMs,

    async doSubmit(
      request: ProviderJobRequest,
      callOptions: ProviderCallOptions = {},
    ): Promise<RemoteJobRef> {
      requireJobId(request);
      callOptions.signal?.throwIfAborted();
      const submittedAt = clock.now();
      const body = buildRunRequest(request, { encoding: 'base64', submittedAt });
      let answer: { callId?: unknown };
      try {
        answer = await call<{ callId?: unknown }>('POST', 'jobs', {
          body,
          jobId: request.jobId,
          timeoutMs: 160_000,
          ...(callOptions.signal === undefined ? {} : { signal: callOptions.signal }),
        });
      } catch (error) {
        if (ApiCallError.isInstance(error) && (error.statusCode === 404 || error.statusCode === 405)) {
          throw new ConfigurationError({
            message: `${baseUrl.host} has no POST /jobs (${error.statusCode}): deploy deploy/modal/comfyui_app.py with its web endpoint and use the URL \`modal deploy\` prints.`,
            providerId: id,
            jobId: request.jobId,
          });
        }
        // POST /jobs spawns without an idempotency key: a lost answer may hide a queued call.
        if (mayHaveBeenReceived(error)) {
          throw new SubmissionUnknownError({
            message: `The Modal endpoint may have spawned job ${request.jobId}, but the answer to POST /jobs was lost (${(error as Error).message})`,
            cause: error,
            providerId: id,
            jobId: request.jobId,
          });
        }
        throw error;
      }
      if (typeof answer?.callId !== 'string' || answer.callId === '') {
        throw new InvalidResponseError({
          message: `The Modal endpoint answered POST /jobs without a callId. Is ${baseUrl.host} the reference comfyui_app.py endpoint?`,
          providerId: id,
          jobId: request.jobId,
        });
      }
      return {
        remoteId: answer.callId,
        data: {
          url: baseUrl.toString(),
          jobId: request.jobId,
          submittedAt,
          ...(request.deadlineAt === undefined ? {} : { deadlineAt: request.deadlineAt }),
        },
      };
    },

    doWatch: (ref, callOptions) => watch(ref, callOptions),

    async doCancel(ref: RemoteJobRef, callOptions: ProviderCallOptions = {}): Promise<void> {
      const callId = ref.remoteId;
      let cancellation = cancellations.get(callId);
      if (cancellation === undefined) {
        cancellation = new AbortController();
        cancellations.set(callId, cancellation);
      }
      cancellation.abort(new Error('cancelled'));
      clock.setTimeout(() => cancellations.delete(callId), 10 * 60_000);
      try {
        await call(
          'DELETE',
          jobPath(callId),
          callOptions.signal === undefined ? {} : { signal: callOptions.signal },
        );
      } catch (error) {
        if (ApiCallError.isInstance(error) && (error.statusCode === 404 || error.statusCode === 410)) return;
        throw error;
      }
    },

    async doHealth(callOptions: ProviderCallOptions = {}): Promise<ProviderHealth> {
      const checkedAt = clock.now();
      try {
        const stats = await call<{ backlog?: unknown; runners?: unknown }>('GET', 'health', {
          timeoutMs: 30_000,
          ...(callOptions.signal === undefined ? {} : { signal: callOptions.signal }),
        });
        const backlog = typeof stats?.backlog === 'number' ? stats.backlog : undefined;
        const runners = typeof stats?.runners === 'number' ? stats.runners : undefined;
        return {
          status: 'healthy',
          ...(backlog === undefined ? {} : { queued: backlog }),
          ...(backlog !== undefined && backlog > 0 && runners !== undefined
            ? { busyWorkers: runners, idleWorkers: 0 }
            : {}),
          message: `${runners ?? '?'} container(s) up, ${backlog ?? '?'} call(s) waiting`,
          checkedAt,
        };
      } catch (error) {
        const typed = error as Partial<ComfyServerlessError>;
        return {
          status: typed.isRetryable === true ? 'degraded' : 'unhealthy',
          message: redactSecrets(error instanceof Error ? error.message : String(error), secretsOf()),
          checkedAt,
        };
      }
    },
  };
}

function callError(
  raw: PollAnswer['error'],
  ids: { providerId: string; jobId?: string },
): ComfyServerlessError {
  const message = typeof raw?.message === 'string' ? raw.message : 'The call failed without a message.';
  switch (raw?.type) {
    case 'timeout':
      return new JobTimeoutError({
        message: `Modal stopped the call after the ComfyWorker timeout (${message}). This is Modal's own limit, not your deadline: raise \`timeout=\` in comfyui_app.py.`,
        ...ids,
      });
    case 'internal':
      return new JobFailedError({
        message: `Modal reported an internal failure: ${message}. It is safe to try again.`,
        isRetryable: true,
        ...ids,
      });
    case 'expired':
      return new JobExpiredError({ message: `Modal no longer has this call's result: ${message}`, ...ids });
    default:
      return new JobFailedError({
        message: `The ComfyWorker call raised an error: ${message}`,
        isRetryable: false,
        ...ids,
      });
  }
}
