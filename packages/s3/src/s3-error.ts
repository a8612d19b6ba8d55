import { ApiCallError, isRetryableStatus } from '@comfy-serverless/core';

interface ServiceErrorShape {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { headers?: Record<string, string | undefined> };
}

const RETRYABLE_CODES = new Set([
  'SlowDown',
  'RequestTimeout',
  'InternalError',
  'ServiceUnavailable',
  'Throttling',
]);

function advice(code: string | undefined, status: number | undefined): string {
  if (
    status === 403 ||
    code === 'AccessDenied' ||
    code === 'InvalidAccessKeyId' ||
    code === 'SignatureDoesNotMatch'
  )
    return 'Check the credentials and that they may read (or write) this bucket and prefix.';
  if (status === 404 || code === 'NoSuchKey' || code === 'NotFound')
    return 'Check the bucket, the prefix and that the object was uploaded.';
  if (code === 'NoSuchBucket') return 'Check the bucket name and region.';
  if (status === 412)
    return 'The object changed while it was being read; it is read again from its new version.';
  if (status === 416) return 'The object is shorter than expected; it is read again from its new version.';
  if (status === 503 || code === 'SlowDown')
    return 'S3 asked to slow down; the request is retried with backoff.';
  return 'Check the endpoint and the network.';
}

/** Turns an AWS SDK error into an `ApiCallError` (aborts pass through unchanged). */
export function toS3ApiCallError(error: unknown, operation: string, url: string): unknown {
  // An abort is the caller's decision, not a failure of S3: it keeps its identity.
  if (error instanceof Error && error.name === 'AbortError') return error;
  const shape = (error ?? {}) as ServiceErrorShape;
  const status = shape.$metadata?.httpStatusCode;
  const code = shape.name;
  const retryAfter = shape.$response?.headers?.['retry-after'];
  const retryAfterSeconds = retryAfter === undefined ? Number.NaN : Number(retryAfter);
  const isRetryable =
    status === undefined ? true : RETRYABLE_CODES.has(code ?? '') || isRetryableStatus(status);
  return new ApiCallError({
    message: `S3 ${operation} ${url} failed${status === undefined ? '' : ` with HTTP ${status}`}${code === undefined ? '' : ` (${code})`}. ${advice(code, status)}`,
    url,
    ...(status === undefined ? {} : { statusCode: status }),
    isRetryable,
    ...(Number.isFinite(retryAfterSeconds) ? { retryAfterMs: retryAfterSeconds * 1000 } : {}),
    cause: error,
  });
}
