export type { FetchFunction, JsonResponse, RequestJsonOptions } from './request-json';
export { mayHaveBeenReceived, parseRetryAfter, readBodyLimited, requestJson } from './request-json';
export type { RetryOptions } from './retry';
export { retryDelayMs, withRetry } from './retry';
