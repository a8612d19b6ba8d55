import type { z } from 'zod';
import { ApiCallError, InvalidResponseError, PayloadTooLargeError } from '../spec/errors';
import { redactSecrets } from '../telemetry/redact';

/** A fetch function, as `globalThis.fetch` or undici's. */
export type FetchFunction = (input: string | URL, init?: RequestInit) => Promise<Response>;

/** Options of `requestJson`. */
export interface RequestJsonOptions<T> {
  url: string;
  method?: string;
  headers?: Record<string, string | undefined>;
  /** A value sent as JSON. */
  body?: unknown;
  fetch?: FetchFunction;
  signal?: AbortSignal;
  /** Abort the request after this many ms (real time). */
  timeoutMs?: number;
  /** Validates the parsed response. */
  schema?: z.ZodType<T>;
  /** Values to strip from every error message and body (API keys). */
  secrets?: Array<string | undefined>;
  /** Refuse response bodies larger than this. @default 64 MiB */
  maxResponseBytes?: number;
  providerId?: string;
  jobId?: string;
}

/** The answer of `requestJson`. */
export interface JsonResponse<T> {
  value: T;
  status: number;
  headers: Headers;
}

/** Parses a Retry-After header (seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Reads a body as text, refusing one larger than `limit` without holding more than that. */
export async function readBodyLimited(response: Response, limit: number, url: string): Promise<string> {
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    await response.body?.cancel().catch(() => {});
    throw new PayloadTooLargeError({
      message: `The response from ${url} is ${declared} bytes, over the ${limit}-byte limit. Raise maxResponseBytes if this is expected.`,
      sizeBytes: declared,
      limitBytes: limit,
    });
  }
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw new PayloadTooLargeError({
        message: `The response from ${url} is over the ${limit}-byte limit. Raise maxResponseBytes if this is expected.`,
        sizeBytes: size,
        limitBytes: limit,
      });
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Makes one HTTP call with a JSON answer: errors become `ApiCallError` (retryable for 408,
 * 409, 429, 5xx and network failures, with Retry-After read), bodies that are not JSON or
 * do not match `schema` become `InvalidResponseError`, and secrets never leave in either.
 */
export async function requestJson<T = unknown>(options: RequestJsonOptions<T>): Promise<JsonResponse<T>> {
  const fetchFunction = options.fetch ?? globalThis.fetch;
  const secrets = options.secrets ?? [];
  const safeUrl = redactSecrets(options.url, secrets);
  const context = {
    ...(options.providerId === undefined ? {} : { providerId: options.providerId }),
    ...(options.jobId === undefined ? {} : { jobId: options.jobId }),
  };
  const headers: Record<string, string> = { accept: 'application/json' };
  for (const [key, value] of Object.entries(options.headers ?? {}))
    if (value !== undefined) headers[key] = value;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const signals: AbortSignal[] = [];
  if (options.signal) signals.push(options.signal);
  const timeoutSignal = options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs);
  if (timeoutSignal) signals.push(timeoutSignal);
  const signal =
    signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals);

  let response: Response;
  try {
    response = await fetchFunction(options.url, {
      method: options.method ?? (body === undefined ? 'GET' : 'POST'),
      headers,
      ...(body === undefined ? {} : { body }),
      ...(signal === undefined ? {} : { signal }),
    });
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason;
    const timedOut = timeoutSignal?.aborted === true;
    const reason = timedOut
      ? `no answer within ${options.timeoutMs} ms`
      : redactSecrets(describeNetworkError(error), secrets);
    const code = networkErrorCode(error);
    throw new ApiCallError({
      message: `Request to ${safeUrl} failed: ${reason}. It will be retried where that is safe; check the network and the platform's status if it persists.`,
      url: safeUrl,
      isRetryable: true,
      ...(code === undefined ? {} : { networkErrorCode: code }),
      ...context,
    });
  }

  let text: string;
  try {
    text = await readBodyLimited(response, options.maxResponseBytes ?? 64 * 1024 * 1024, safeUrl);
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (PayloadTooLargeError.isInstance(error)) throw Object.assign(error, context);
    throw new ApiCallError({
      message: `Reading the answer from ${safeUrl} failed: ${redactSecrets(describeNetworkError(error), secrets)}.`,
      url: safeUrl,
      statusCode: response.status,
      isRetryable: true,
      ...context,
    });
  }

  if (!response.ok) {
    const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
    const responseBody = redactSecrets(text.slice(0, 4096), secrets);
    throw new ApiCallError({
      message: `${options.method ?? (body === undefined ? 'GET' : 'POST')} ${safeUrl} answered ${response.status}${responseBody ? `: ${responseBody.slice(0, 300)}` : ''}`,
      url: safeUrl,
      statusCode: response.status,
      responseBody,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      ...context,
    });
  }

  let parsed: unknown;
  try {
    parsed = text === '' ? null : JSON.parse(text);
  } catch (error) {
    throw new InvalidResponseError({
      message: `${safeUrl} answered ${response.status} with a body that is not JSON (${text.length} characters); a truncated answer is retried.`,
      url: safeUrl,
      cause: error,
      // A body cut off in transit is the usual cause, and it is worth another try.
      isRetryable: true,
      ...context,
    });
  }
  if (options.schema === undefined)
    return { value: parsed as T, status: response.status, headers: response.headers };
  const result = options.schema.safeParse(parsed);
  if (!result.success) {
    const issues = result.error.issues.map(
      (issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
    throw new InvalidResponseError({
      message: `${safeUrl} answered with an unexpected shape: ${issues.slice(0, 5).join('; ')}. The platform's API may have changed; please report it.`,
      url: safeUrl,
      issues,
      ...context,
    });
  }
  return { value: result.data, status: response.status, headers: response.headers };
}

/** The system error code under a failed fetch (`ECONNRESET`, `ECONNREFUSED`, ...), when there is one. */
function networkErrorCode(error: unknown): string | undefined {
  for (
    let current: unknown = error, depth = 0;
    current && typeof current === 'object' && depth < 4;
    depth++
  ) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z_]+$/.test(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Network errors that happen before a request leaves this machine: the server never saw it. */
const NEVER_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Whether a failed request may nevertheless have been received and acted on by the server:
 * the answer was lost (reset, timeout, a gateway error) or came back unreadable. For a
 * submission without an idempotency key such a failure must not be sent again blindly.
 */
export function mayHaveBeenReceived(error: unknown): boolean {
  if (InvalidResponseError.isInstance(error)) return true;
  if (!ApiCallError.isInstance(error)) return false;
  if (error.statusCode === undefined) {
    return error.networkErrorCode === undefined || !NEVER_SENT_CODES.has(error.networkErrorCode);
  }
  // A success status whose body was cut off: the server certainly acted on the request.
  if (error.statusCode >= 200 && error.statusCode < 300) return true;
  return error.statusCode === 502 || error.statusCode === 504;
}

function describeNetworkError(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as Error & { cause?: unknown }).cause;
    const causeCode =
      cause && typeof cause === 'object' && 'code' in cause
        ? String((cause as { code: unknown }).code)
        : undefined;
    return causeCode ? `${error.message} (${causeCode})` : error.message;
  }
  return String(error);
}
