import type { Clock } from '../spec/clock';
import { ApiCallError, ComfyServerlessError } from '../spec/errors';
import { sleep, systemClock } from '../util/clock';

/** How to retry. */
export interface RetryOptions {
  /** Retries after the first try. @default 4 */
  retries?: number;
  /** First backoff delay in ms. @default 500 */
  minDelayMs?: number;
  /** Largest backoff delay in ms (a server's Retry-After may ask for more, up to `maxRetryAfterMs`). @default 30000 */
  maxDelayMs?: number;
  /** Longest Retry-After honoured, in ms. @default 120000 */
  maxRetryAfterMs?: number;
  /** Growth factor per attempt. @default 2 */
  factor?: number;
  /** Spread delays over [delay/2, delay] ("equal jitter") so that many clients do not retry in step. @default true */
  jitter?: boolean;
  /** Random numbers in [0, 1), for reproducible tests. @default Math.random */
  random?: () => number;
  clock?: Clock;
  signal?: AbortSignal;
  /** Decides whether an error is retried. @default the error's `isRetryable` flag */
  shouldRetry?: (error: unknown) => boolean;
  onRetry?: (info: { error: unknown; attempt: number; delayMs: number }) => void;
}

/** The delay before retry number `attempt` (1-based), honouring an ApiCallError's Retry-After. */
export function retryDelayMs(error: unknown, attempt: number, options: RetryOptions = {}): number {
  const minDelayMs = options.minDelayMs ?? 500;
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  const factor = options.factor ?? 2;
  let delay = Math.min(maxDelayMs, minDelayMs * factor ** (attempt - 1));
  if (options.jitter ?? true) delay = delay / 2 + (options.random ?? Math.random)() * (delay / 2);
  if (ApiCallError.isInstance(error) && error.retryAfterMs !== undefined) {
    delay = Math.max(delay, Math.min(error.retryAfterMs, options.maxRetryAfterMs ?? 120_000));
  }
  return Math.round(delay);
}

function defaultShouldRetry(error: unknown): boolean {
  return ComfyServerlessError.isInstance(error) && error.isRetryable;
}

/**
 * Runs `task` until it succeeds, an error is not retryable, or retries run out; waits with
 * exponential backoff and jitter between tries, longer when the server sent Retry-After.
 *
 * Written here rather than taken from p-retry because p-retry can neither honour a
 * server's Retry-After nor run on an injected clock.
 */
export async function withRetry<T>(
  task: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const retries = options.retries ?? 4;
  const shouldRetry = options.shouldRetry ?? defaultShouldRetry;
  for (let attempt = 1; ; attempt++) {
    try {
      return await task(attempt);
    } catch (error) {
      if (options.signal?.aborted) throw error;
      if (attempt > retries || !shouldRetry(error)) throw error;
      const delayMs = retryDelayMs(error, attempt, options);
      options.onRetry?.({ error, attempt, delayMs });
      await sleep(delayMs, {
        clock: options.clock ?? systemClock,
        ...(options.signal ? { signal: options.signal } : {}),
      });
    }
  }
}
