import type { FetchFunction } from '../http/request-json';
import { parseRetryAfter } from '../http/request-json';
import type { Clock } from '../spec/clock';
import { ApiCallError, InvalidArgumentError, InvalidResponseError } from '../spec/errors';
import type { ModelRef } from '../spec/job';
import { redactSecrets } from '../telemetry/redact';
import { assertContentRange } from './content-range';
import type { ModelObjectInfo, ModelSource } from './model-source';
import { downloadInParts } from './part-download';

/** Options of `createHttpModelSource`. */
export interface HttpModelSourceOptions {
  /** Models are fetched from `<baseURL>/<folder>/<name>`. */
  baseURL: string;
  /** Sent with every request (an `Authorization` header for a private server). Never logged. */
  headers?: Record<string, string>;
  fetch?: FetchFunction;
  /** @default 8 MiB */
  partSizeBytes?: number;
  /** @default 10 */
  concurrency?: number;
  /** Retries per part. @default 4 */
  retries?: number;
  clock?: Clock;
}

/**
 * A model source over plain HTTP(S): a HEAD for size and ETag, then parallel ranged GETs
 * pinned with If-Match, resumable, streamed to disk. Works with any server that honours
 * `Range` (nginx, a CDN, Hugging Face's resolve URLs).
 *
 * @example
 * const source = createHttpModelSource({ baseURL: 'https://models.example.com/comfy' });
 */
export function createHttpModelSource(options: HttpModelSourceOptions): ModelSource {
  if (options === null || typeof options !== 'object' || typeof options.baseURL !== 'string') {
    throw new InvalidArgumentError({
      argument: 'baseURL',
      message: '"baseURL" must be the URL models are served under (https://host/path).',
    });
  }
  let base: URL;
  try {
    base = new URL(options.baseURL.endsWith('/') ? options.baseURL : `${options.baseURL}/`);
  } catch (error) {
    throw new InvalidArgumentError({
      argument: 'baseURL',
      message: `"baseURL" is not a valid URL: ${JSON.stringify(options.baseURL)}.`,
      cause: error,
    });
  }
  const fetchFunction: FetchFunction = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const headers = options.headers ?? {};
  const secrets = Object.values(headers);

  const urlOf = (model: ModelRef) => {
    const path = [model.folder ?? '', ...model.name.replaceAll('\\', '/').split('/')]
      .filter((part) => part !== '')
      .map(encodeURIComponent)
      .join('/');
    return new URL(path, base).toString();
  };

  const failure = async (response: Response, url: string, what: string) => {
    const body = await response.text().catch(() => '');
    const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
    return new ApiCallError({
      message: `${what} ${url} failed with HTTP ${response.status}.`,
      url,
      statusCode: response.status,
      responseBody: redactSecrets(body.slice(0, 2000), secrets),
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  };

  const stat = async (
    model: ModelRef,
    statOptions: { signal?: AbortSignal } = {},
  ): Promise<ModelObjectInfo> => {
    const url = urlOf(model);
    const response = await fetchFunction(url, {
      method: 'HEAD',
      headers,
      ...(statOptions.signal === undefined ? {} : { signal: statOptions.signal }),
    });
    if (!response.ok) throw await failure(response, url, 'HEAD');
    const sizeBytes = Number(response.headers.get('content-length'));
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) {
      throw new InvalidResponseError({
        message: `HEAD ${url} gave no Content-Length; the server must say the size.`,
        url,
      });
    }
    const etag = response.headers.get('etag') ?? undefined;
    return { sizeBytes, ...(etag === undefined ? {} : { etag }) };
  };

  return {
    id: base.origin + base.pathname,
    stat,
    async download(model, downloadOptions) {
      const url = urlOf(model);
      const object = downloadOptions.info ?? (await stat(model, downloadOptions));
      const result = await downloadInParts({
        filePath: downloadOptions.filePath,
        object,
        label: url,
        restat: (restatOptions) => stat(model, restatOptions),
        ...(options.partSizeBytes === undefined ? {} : { partSizeBytes: options.partSizeBytes }),
        ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
        ...(options.retries === undefined ? {} : { retry: { retries: options.retries } }),
        ...(options.clock === undefined ? {} : { clock: options.clock }),
        ...(downloadOptions.signal === undefined ? {} : { signal: downloadOptions.signal }),
        ...(downloadOptions.onProgress === undefined ? {} : { onProgress: downloadOptions.onProgress }),
        readRange: async (range, rangeOptions) => {
          const response = await fetchFunction(url, {
            headers: {
              ...headers,
              range: `bytes=${range.start}-${range.end}`,
              ...(rangeOptions.etag === undefined ? {} : { 'if-match': rangeOptions.etag }),
            },
            signal: rangeOptions.signal,
          });
          if (response.status !== 206) {
            if (response.ok) {
              await response.body?.cancel().catch(() => {});
              throw new InvalidResponseError({
                message: `GET ${url} with a Range header answered ${response.status}, not 206; the server does not honour ranges.`,
                url,
              });
            }
            throw await failure(response, url, 'GET');
          }
          try {
            assertContentRange(response.headers.get('content-range'), range, rangeOptions.sizeBytes, url);
          } catch (error) {
            // Not awaited: a cancel can wait on a peer that has stopped reading.
            response.body?.cancel().catch(() => {});
            throw error;
          }
          if (response.body === null)
            throw new InvalidResponseError({ message: `GET ${url} had no body.`, url });
          return response.body as unknown as AsyncIterable<Uint8Array>;
        },
      });
      return result;
    },
  };
}
