import { InvalidArgumentError, type ProviderJobRequest } from '@comfy-serverless/core';

// The shared checks live in core; these names keep the adapter's call sites short.
export {
  optionalClockOption as optionalClock,
  optionalNumberOption as optionalNumber,
  optionalStringOption as optionalString,
  requireStringOption as requireString,
} from '@comfy-serverless/core';

/**
 * Waits for `promise`, or rejects with the first abort reason among `signals`; the
 * abandoned promise's outcome is ignored (Modal's `get` cannot be aborted).
 */
export function abortable<T>(promise: Promise<T>, signals: Array<AbortSignal | undefined>): Promise<T> {
  const active = signals.filter((signal): signal is AbortSignal => signal !== undefined);
  if (active.length === 0) return promise;
  return new Promise<T>((resolve, reject) => {
    const aborted = active.find((signal) => signal.aborted);
    if (aborted) {
      promise.catch(() => {});
      reject(aborted.reason);
      return;
    }
    const onAbort = (event: Event) => {
      cleanup();
      promise.catch(() => {});
      reject((event.target as AbortSignal).reason);
    };
    const cleanup = () => {
      for (const signal of active) signal.removeEventListener('abort', onAbort);
    };
    for (const signal of active) signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        cleanup();
        resolve(value);
      },
      (error: unknown) => {
        cleanup();
        reject(error);
      },
    );
  });
}

/** Refuses a job request without a non-empty job id (both Modal providers key submissions by it). */
export function requireJobId(request: ProviderJobRequest): void {
  if (
    request === null ||
    typeof request !== 'object' ||
    typeof request.jobId !== 'string' ||
    request.jobId === ''
  ) {
    throw new InvalidArgumentError({ argument: 'request.jobId', message: 'A job needs a non-empty jobId.' });
  }
}
