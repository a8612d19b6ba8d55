import { GetObjectCommand, type GetObjectCommandOutput, HeadObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  ApiCallError,
  assertContentRange,
  type ByteRange,
  type Clock,
  ComfyServerlessError,
  createHttp1RangeClient,
  downloadInParts,
  type FetchFunction,
  type Http1RangeClient,
  InvalidArgumentError,
  InvalidResponseError,
  type LentChunkBody,
  type ModelObjectInfo,
  type ModelRef,
  type ModelSource,
  parseRetryAfter,
  redactSecrets,
  withRetry,
} from '@comfy-serverless/core';
import { normalizePrefix, resolveS3Client, type S3ConnectionOptions, validateBucket } from './s3-client';
import { toS3ApiCallError } from './s3-error';

/** Options of `createS3ModelSource`. */
export interface S3ModelSourceOptions extends S3ConnectionOptions {
  bucket: string;
  /** Models live at `<prefix>/<folder>/<name>`. @default '' */
  prefix?: string;
  /** Bytes per ranged GET. @default 8 MiB (as the AWS CLI and s3transfer) */
  partSizeBytes?: number;
  /** Ranged GETs in flight per download. @default 10 (as the AWS CLI) */
  concurrency?: number;
  /** Retries per part, with exponential backoff and jitter (5 attempts, as s3transfer). @default 4 */
  retries?: number;
  /** First backoff delay in ms. @default 200 */
  retryMinDelayMs?: number;
  /** Flush each file to disk before it is renamed into place (skip only on disks a power loss wipes anyway). @default true */
  durable?: boolean;
  /** Bytes gathered from a part's stream before each write to disk. @default 1 MiB */
  writeBufferBytes?: number;
  /**
   * How ranged GETs are sent, each on a presigned GetObject URL with `Range` and
   * `If-Match` headers (except `sdk`). `socket`: kept-alive HTTP/1.1 connections that
   * read into one reused buffer each, with no allocation per read: a fraction of the CPU
   * of the others per byte, which is what a download costs when the network is fast.
   * `fetch`: the given or global `fetch`. `sdk`: a `GetObjectCommand` per part.
   * @default 'socket'; 'fetch' when `fetch` is given; 'sdk' when `client` is given (its
   * request handler, with any proxy, agent or CA, is then used for the parts too)
   */
  rangeTransport?: 'socket' | 'fetch' | 'sdk';
  /**
   * Certificate authorities the `socket` transport trusts for https, in place of Node's
   * defaults (a private S3-compatible server). `NODE_EXTRA_CA_CERTS` works too, for every
   * transport. @default Node's root certificates
   */
  ca?: string | Buffer | Array<string | Buffer>;
  /** The fetch used by the `fetch` transport. @default globalThis.fetch */
  fetch?: FetchFunction;
  /** Clock for backoff waits (tests inject a virtual one). */
  clock?: Clock;
}

const MEBIBYTE = 1024 * 1024;

function positiveInteger(name: string, value: number | undefined, fallback: number, minimum = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < minimum) {
    throw new InvalidArgumentError({
      argument: name,
      message: `"${name}" must be a whole number of at least ${minimum}; got ${String(value)}.`,
    });
  }
  return value;
}

/** Checks a ranged answer, closing its body when it is refused. */
function checkContentRange(
  response: GetObjectCommandOutput,
  range: { start: number; end: number },
  sizeBytes: number,
  url: string,
): void {
  try {
    assertContentRange(response.ContentRange, range, sizeBytes, url);
  } catch (error) {
    (response.Body as { destroy?: () => void } | undefined)?.destroy?.();
    throw error;
  }
}

/**
 * A model source over an S3 bucket (or any S3-compatible server): a HeadObject for size
 * and ETag, then parallel ranged GetObjects with `If-Match` on that ETag, each part
 * streamed to its place in the file, retried with backoff from the last byte written, and
 * resumable after a crash. When the object is replaced mid-download (412) it starts over
 * once on the new version.
 *
 * @example
 * const source = createS3ModelSource({ bucket: 'my-models', prefix: 'comfy' });
 * // s3://my-models/comfy/checkpoints/sd_xl_base_1.0.safetensors
 */
export function createS3ModelSource(options: S3ModelSourceOptions): ModelSource {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError({ argument: 'options', message: 'createS3ModelSource needs { bucket }.' });
  }
  const bucket = validateBucket(options.bucket);
  const prefix = normalizePrefix(options.prefix);
  const partSizeBytes = positiveInteger('partSizeBytes', options.partSizeBytes, 8 * MEBIBYTE, 64 * 1024);
  const concurrency = positiveInteger('concurrency', options.concurrency, 10);
  const retries = positiveInteger('retries', options.retries, 4, 0);
  const retryMinDelayMs = positiveInteger('retryMinDelayMs', options.retryMinDelayMs, 200, 0);
  let client: ReturnType<typeof resolveS3Client> | undefined;
  const clientOf = () => {
    client ??= resolveS3Client(options);
    return client;
  };

  const keyOf = (model: ModelRef) => {
    const name = model.name.replaceAll('\\', '/');
    return `${prefix}${model.folder === null || model.folder === '' ? '' : `${model.folder}/`}${name}`;
  };
  const urlOf = (key: string) => `s3://${bucket}/${key}`;
  // A client of one's own may carry a request handler (a proxy, a CA, an agent) that only
  // the SDK transport goes through.
  const rangeTransport =
    options.rangeTransport ??
    (options.fetch !== undefined ? 'fetch' : options.client !== undefined ? 'sdk' : 'socket');
  if (rangeTransport !== 'socket' && rangeTransport !== 'fetch' && rangeTransport !== 'sdk') {
    throw new InvalidArgumentError({
      argument: 'rangeTransport',
      message: `"rangeTransport" must be 'socket', 'fetch' or 'sdk'; got ${JSON.stringify(rangeTransport)}.`,
    });
  }
  let rangeClient: Http1RangeClient | undefined;
  const fetchFunction: FetchFunction = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  // A presigned URL signs the object, not the range: one serves every part for a while.
  const presigned = new Map<string, { url: string; at: number }>();
  const presignedUrlOf = async (key: string) => {
    const known = presigned.get(key);
    if (known !== undefined && Date.now() - known.at < 5 * 60_000) return known.url;
    const url = await getSignedUrl(clientOf(), new GetObjectCommand({ Bucket: bucket, Key: key }), {
      expiresIn: 15 * 60,
    });
    presigned.set(key, { url, at: Date.now() });
    return url;
  };

  /** One ranged GET by fetch; errors name `s3://bucket/key`, never the signed URL. */
  /**
   * The error for a ranged GET not answered 206, from either HTTP transport: a 2xx is the
   * whole object, likely, and is not read (every part would read all of it before
   * failing); anything else is S3's error, with its code and Retry-After.
   */
  const notPartialContent = async (
    key: string,
    url: string,
    answer: {
      status: number;
      header(name: string): string | undefined;
      cancel(): void;
      text(): Promise<string>;
    },
  ): Promise<unknown> => {
    if (answer.status >= 200 && answer.status < 300) {
      answer.cancel();
      return new InvalidResponseError({
        message: `GetObject ${url} answered a ranged request with ${answer.status}, not 206; the server does not honour ranges.`,
        url,
      });
    }
    const body = await answer.text().catch(() => '');
    const code = /<Code>([^<]+)<\/Code>/.exec(body)?.[1];
    const retryAfter = answer.header('retry-after');
    if (answer.status === 403) presigned.delete(key);
    return toS3ApiCallError(
      {
        ...(code === undefined ? {} : { name: code }),
        $metadata: { httpStatusCode: answer.status },
        $response: {
          headers:
            retryAfter === undefined
              ? {}
              : { 'retry-after': String((parseRetryAfter(retryAfter) ?? 0) / 1000) },
        },
      },
      'GetObject',
      url,
    );
  };
  const fetchRange = async (
    key: string,
    range: ByteRange,
    rangeOptions: { signal: AbortSignal; etag?: string; sizeBytes: number },
  ): Promise<AsyncIterable<Uint8Array>> => {
    const url = urlOf(key);
    const signedUrl = await presignedUrlOf(key);
    let response: Response;
    try {
      response = await fetchFunction(signedUrl, {
        headers: {
          range: `bytes=${range.start}-${range.end}`,
          ...(rangeOptions.etag === undefined ? {} : { 'if-match': rangeOptions.etag }),
        },
        signal: rangeOptions.signal,
      });
    } catch (error) {
      if (rangeOptions.signal.aborted) throw rangeOptions.signal.reason;
      const reason = redactSecrets(error instanceof Error ? error.message : String(error), [signedUrl]);
      throw toS3ApiCallError({ name: 'NetworkError', message: reason }, 'GetObject', url);
    }
    if (response.status !== 206) {
      throw await notPartialContent(key, url, {
        status: response.status,
        header: (name) => response.headers.get(name) ?? undefined,
        // Not awaited: a cancel can wait on a peer that has stopped reading.
        cancel: () => void response.body?.cancel().catch(() => {}),
        text: () => response.text(),
      });
    }
    try {
      assertContentRange(response.headers.get('content-range'), range, rangeOptions.sizeBytes, url);
    } catch (error) {
      // Not awaited: a cancel can wait on a peer that has stopped reading.
      response.body?.cancel().catch(() => {});
      throw error;
    }
    if (response.body === null)
      throw new InvalidResponseError({ message: `GetObject ${url} had no body.`, url });
    return response.body as unknown as AsyncIterable<Uint8Array>;
  };
  /** One ranged GET on a kept-alive connection; errors name `s3://bucket/key`, never the signed URL. */
  const socketRange = async (
    key: string,
    range: ByteRange,
    rangeOptions: { signal: AbortSignal; etag?: string; sizeBytes: number },
  ): Promise<LentChunkBody> => {
    const url = urlOf(key);
    const signedUrl = await presignedUrlOf(key);
    rangeClient ??= createHttp1RangeClient(options.ca === undefined ? {} : { ca: options.ca });
    let response: Awaited<ReturnType<Http1RangeClient['get']>>;
    try {
      response = await rangeClient.get(signedUrl, {
        headers: {
          range: `bytes=${range.start}-${range.end}`,
          ...(rangeOptions.etag === undefined ? {} : { 'if-match': rangeOptions.etag }),
        },
        signal: rangeOptions.signal,
      });
    } catch (error) {
      if (rangeOptions.signal.aborted) throw rangeOptions.signal.reason;
      const reason = redactSecrets(error instanceof Error ? error.message : String(error), [signedUrl]);
      // A failure trying again cannot cure (an untrusted certificate) keeps its advice and is not retried.
      if (ComfyServerlessError.isInstance(error) && !error.isRetryable) {
        const code = ApiCallError.isInstance(error) ? error.networkErrorCode : undefined;
        throw new ApiCallError({
          message: `S3 GetObject ${url} failed: ${reason}`,
          url,
          isRetryable: false,
          ...(code === undefined ? {} : { networkErrorCode: code }),
        });
      }
      throw toS3ApiCallError({ name: 'NetworkError', message: reason }, 'GetObject', url);
    }
    if (response.status !== 206) {
      throw await notPartialContent(key, url, {
        status: response.status,
        header: (name) => response.header(name),
        cancel: () => response.body.cancel(),
        text: () => response.text(64 * 1024),
      });
    }
    try {
      assertContentRange(response.header('content-range'), range, rangeOptions.sizeBytes, url);
    } catch (error) {
      response.body.cancel();
      throw error;
    }
    return response.body;
  };
  const retryOptions = {
    retries,
    minDelayMs: retryMinDelayMs,
    maxDelayMs: 10_000,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  };

  const stat = async (
    model: ModelRef,
    statOptions: { signal?: AbortSignal } = {},
  ): Promise<ModelObjectInfo> => {
    const key = keyOf(model);
    const head = await withRetry(
      async () => {
        try {
          return await clientOf().send(
            new HeadObjectCommand({ Bucket: bucket, Key: key }),
            statOptions.signal === undefined ? {} : { abortSignal: statOptions.signal },
          );
        } catch (error) {
          throw toS3ApiCallError(error, 'HeadObject', urlOf(key));
        }
      },
      { ...retryOptions, ...(statOptions.signal === undefined ? {} : { signal: statOptions.signal }) },
    );
    if (typeof head.ContentLength !== 'number') {
      throw new InvalidResponseError({
        message: `HeadObject ${urlOf(key)} gave no ContentLength.`,
        url: urlOf(key),
      });
    }
    const sha256 = head.Metadata?.sha256;
    return {
      sizeBytes: head.ContentLength,
      ...(head.ETag === undefined ? {} : { etag: head.ETag }),
      ...(sha256 !== undefined && /^[0-9a-f]{64}$/i.test(sha256) ? { sha256: sha256.toLowerCase() } : {}),
    };
  };

  return {
    id: `s3://${bucket}/${prefix}`,
    stat,
    async download(model, downloadOptions) {
      const key = keyOf(model);
      const url = urlOf(key);
      const signal = downloadOptions.signal;
      const object = downloadOptions.info ?? (await stat(model, signal === undefined ? {} : { signal }));
      const result = await downloadInParts({
        filePath: downloadOptions.filePath,
        object,
        label: url,
        partSizeBytes,
        concurrency,
        retry: { retries, minDelayMs: retryMinDelayMs, maxDelayMs: 10_000 },
        ...(options.durable === undefined ? {} : { durable: options.durable }),
        ...(options.writeBufferBytes === undefined ? {} : { writeBufferBytes: options.writeBufferBytes }),
        ...(options.clock === undefined ? {} : { clock: options.clock }),
        ...(signal === undefined ? {} : { signal }),
        ...(downloadOptions.onProgress === undefined ? {} : { onProgress: downloadOptions.onProgress }),
        restat: (restatOptions) => stat(model, restatOptions),
        readRange: async (range, rangeOptions) => {
          if (rangeTransport === 'socket') return socketRange(key, range, rangeOptions);
          if (rangeTransport === 'fetch') return fetchRange(key, range, rangeOptions);
          let response: GetObjectCommandOutput;
          try {
            response = await clientOf().send(
              new GetObjectCommand({
                Bucket: bucket,
                Key: key,
                Range: `bytes=${range.start}-${range.end}`,
                ...(rangeOptions.etag === undefined ? {} : { IfMatch: rangeOptions.etag }),
              }),
              { abortSignal: rangeOptions.signal },
            );
          } catch (error) {
            throw toS3ApiCallError(error, 'GetObject', url);
          }
          checkContentRange(response, range, rangeOptions.sizeBytes, url);
          if (response.Body === undefined)
            throw new InvalidResponseError({ message: `GetObject ${url} had no body.`, url });
          return response.Body as AsyncIterable<Uint8Array>;
        },
      });
      return { ...result, ...(object.sha256 === undefined ? {} : { sha256: object.sha256 }) };
    },
  };
}
