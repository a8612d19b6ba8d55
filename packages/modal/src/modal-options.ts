import type { Clock } from '@comfy-serverless/core';
import { InvalidArgumentError } from '@comfy-serverless/core';

/** Refuses a missing or empty string option, naming it. */
export function requireString(value: unknown, name: string, hint: string): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new InvalidArgumentError({
      argument: name,
      message: `"${name}" must be a non-empty string (${hint}); got ${value === undefined ? 'nothing' : typeof value}.`,
    });
  }
  return value;
}

/** Refuses an optional string option that is present but not a non-empty string. */
export function optionalString(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  return requireString(value, name, 'or leave it out');
}

/** Refuses a number option outside [min, max]. */
export function optionalNumber(
  value: unknown,
  name: string,
  range: { min: number; max?: number; integer?: boolean },
): number | undefined {
  if (value === undefined) return undefined;
  const bad =
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < range.min ||
    (range.max !== undefined && value > range.max) ||
    (range.integer === true && !Number.isInteger(value));
  if (bad) {
    throw new InvalidArgumentError({
      argument: name,
      message: `"${name}" must be ${range.integer ? 'an integer' : 'a number'} from ${range.min}${range.max === undefined ? '' : ` to ${range.max}`}; got ${String(value)}.`,
    });
  }
  return value;
}

/** Refuses a `clock` option that is not a Clock. */
export function optionalClock(value: unknown): Clock | undefined {
  if (value === undefined) return undefined;
  const clock = value as Clock;
  if (
    typeof clock.now !== 'function' ||
    typeof clock.setTimeout !== 'function' ||
    typeof clock.clearTimeout !== 'function'
  ) {
    throw new InvalidArgumentError({
      argument: 'clock',
      message: '"clock" must have now, setTimeout and clearTimeout.',
    });
  }
  return clock;
}

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
