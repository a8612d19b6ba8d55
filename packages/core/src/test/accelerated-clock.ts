import type { Clock } from '../spec/clock';
import { InvalidArgumentError } from '../spec/errors';

/**
 * A clock that runs `speedup` times faster than real time: durations on it are realistic
 * (a 20 s cold start) while a demo or a soak test finishes in a fraction of that.
 *
 * @example
 * const clock = createAcceleratedClock(40); // a 20 s cold start takes half a second
 */
export function createAcceleratedClock(speedup: number, start = Date.now()): Clock {
  if (!(speedup > 0 && Number.isFinite(speedup))) {
    throw new InvalidArgumentError({
      argument: 'speedup',
      message: `"speedup" must be a positive number; got ${speedup}.`,
    });
  }
  const realStart = Date.now();
  return {
    now: () => start + (Date.now() - realStart) * speedup,
    setTimeout: (callback, ms) => setTimeout(callback, Math.max(0, ms) / speedup),
    clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  };
}
