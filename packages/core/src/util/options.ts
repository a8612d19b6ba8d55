import type { Clock } from '../spec/clock';
import { InvalidArgumentError } from '../spec/errors';
import { safeDescribe } from './gpu';

/**
 * Option checks for adapters: each refuses a bad value at once with an
 * `InvalidArgumentError` that names the option, the expected value and what was given
 * (never the value itself when it is long, since options may hold secrets).
 */

/** Refuses a missing or empty string option. `hint` says where the value comes from. */
export function requireStringOption(value: unknown, name: string, hint: string): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new InvalidArgumentError({
      argument: name,
      message: `"${name}" must be a non-empty string (${hint}); got ${describeOption(value)}.`,
    });
  }
  return value;
}

/** Refuses an optional string option that is present but not a non-empty string. */
export function optionalStringOption(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  return requireStringOption(value, name, 'or leave it out');
}

/** Refuses a number option outside [min, max] (or not whole, with `integer`). */
export function optionalNumberOption(
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
      message: `"${name}" must be ${range.integer ? 'an integer' : 'a number'} from ${range.min}${range.max === undefined ? '' : ` to ${range.max}`}; got ${describeOption(value)}.`,
    });
  }
  return value;
}

/** Refuses a `clock` option that is not a Clock. */
export function optionalClockOption(value: unknown): Clock | undefined {
  if (value === undefined) return undefined;
  const clock = value as Clock;
  if (
    clock === null ||
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

/** A short description of a given option value for messages: `nothing` for undefined. */
export function describeOption(value: unknown): string {
  return value === undefined ? 'nothing' : safeDescribe(value);
}
