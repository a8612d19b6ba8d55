import type { FetchFunction } from '../http/request-json';
import { parseRetryAfter, readBodyLimited } from '../http/request-json';
import { ApiCallError, PayloadTooLargeError } from '../spec/errors';
import { redactSecrets } from '../telemetry/redact';

/** Options of `requestBytes`. */
export interface RequestBytesOptions {
  url: string;
  method?: string;
  headers?: Record<string, string | undefined>;
  /** A body sent as is (a `FormData` for uploads). */
  body?: BodyInit;
  fetch?: FetchFunction;
  signal?: AbortSignal;
  /** Refuse answers larger than this many bytes. */
  maxResponseBytes: number;
  /** Values to strip from errors. */
  secrets?: Array<string | undefined>;
  providerId?: string;
  jobId?: string;
}

/** The answer of `requestBytes`. */
export interface BytesResponse {
  data: Uint8Array;
  status: number;
  headers: Headers;
}

/**
 * One HTTP call whose answer is read as bytes (ComfyUI's `/view`) or whose body is not JSON
 * (`/upload/image`), with the same error mapping as `requestJson`: network failures and 408,
 * 409, 429 and 5xx become retryable `ApiCallError`s, and answers over the limit become
 * `PayloadTooLargeError` without being held in memory.
 */
export async function requestBytes(options: RequestBytesOptions): Promise<BytesResponse> {
  const fetchFunction = options.fetch ?? globalThis.fetch;
  const secrets = options.secrets ?? [];
  const safeUrl = redactSecrets(options.url, secrets);
  const method = options.method ?? (options.body === undefined ? 'GET' : 'POST');
  const context = {
    ...(options.providerId === undefined ? {} : { providerId: options.providerId }),
    ...(options.jobId === undefined ? {} : { jobId: options.jobId }),
  };
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(options.headers ?? {}))
    if (value !== undefined) headers[key] = value;
  let response: Response;
  try {
    response = await fetchFunction(options.url, {
      method,
      headers,
      ...(options.body === undefined ? {} : { body: options.body }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason;
    throw new ApiCallError({
      message: `Request to ${safeUrl} failed: ${redactSecrets(error instanceof Error ? error.message : String(error), secrets)}. It will be retried where that is safe; check that the ComfyUI server is up.`,
      url: safeUrl,
      isRetryable: true,
      ...context,
    });
  }
  if (!response.ok) {
    let text = '';
    try {
      text = await readBodyLimited(response, 64 * 1024, safeUrl);
    } catch {
      // The status is what matters; a body we cannot read adds nothing.
    }
    const responseBody = redactSecrets(text.slice(0, 4096), secrets);
    const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
    throw new ApiCallError({
      message: `${method} ${safeUrl} answered ${response.status}${responseBody ? `: ${responseBody.slice(0, 300)}` : ''}`,
      url: safeUrl,
      statusCode: response.status,
      responseBody,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      ...context,
    });
  }
  const limit = options.maxResponseBytes;
  const declared = Number(response.headers.get('content-length'));
  const tooLarge = (size: number) =>
    new PayloadTooLargeError({
      message: `The answer of ${safeUrl} is ${size} bytes or more, over the ${limit}-byte limit. Raise maxOutputBytes if outputs this large are expected.`,
      sizeBytes: size,
      limitBytes: limit,
      ...context,
    });
  if (Number.isFinite(declared) && declared > limit) {
    await response.body?.cancel().catch(() => {});
    throw tooLarge(declared);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (response.body !== null) {
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.byteLength;
        if (size > limit) {
          await reader.cancel().catch(() => {});
          throw tooLarge(size);
        }
        chunks.push(value);
      }
    } catch (error) {
      if (PayloadTooLargeError.isInstance(error)) throw error;
      if (options.signal?.aborted) throw options.signal.reason;
      throw new ApiCallError({
        message: `Reading the answer of ${safeUrl} failed: ${redactSecrets(error instanceof Error ? error.message : String(error), secrets)}.`,
        url: safeUrl,
        statusCode: response.status,
        isRetryable: true,
        ...context,
      });
    }
  }
  const data = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    data.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { data, status: response.status, headers: response.headers };
}
