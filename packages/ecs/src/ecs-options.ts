import type { Clock } from '@comfy-serverless/core';
import { InvalidArgumentError } from '@comfy-serverless/core';

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string')
    return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return 'an object';
  return String(value);
}

/** Refuses a missing or empty string option, naming it. */
export function requireString(value: unknown, name: string, hint: string): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new InvalidArgumentError({
      argument: name,
      message: `"${name}" must be a non-empty string (${hint}); got ${describe(value)}.`,
    });
  }
  return value;
}

/** Refuses an optional string option that is present but not a non-empty string. */
export function optionalString(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  return requireString(value, name, 'or leave it out');
}

/** Refuses a number option outside [min, max], naming it. */
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
      message: `"${name}" must be ${range.integer ? 'an integer' : 'a number'} from ${range.min}${range.max === undefined ? '' : ` to ${range.max}`}; got ${describe(value)}.`,
    });
  }
  return value;
}

/** Refuses a `clock` option that is not a Clock. */
export function optionalClock(value: unknown): Clock | undefined {
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

/** Refuses an optional function option that is not a function. */
export function optionalFunction<T>(value: unknown, name: string): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') {
    throw new InvalidArgumentError({
      argument: name,
      message: `"${name}" must be a function; got ${describe(value)}.`,
    });
  }
  return value as T;
}

/** Refuses an optional record of strings (tags, environment). */
export function optionalStringRecord(value: unknown, name: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidArgumentError({
      argument: name,
      message: `"${name}" must be an object of string values; got ${describe(value)}.`,
    });
  }
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry !== 'string') {
      throw new InvalidArgumentError({
        argument: `${name}.${key}`,
        message: `"${name}.${key}" must be a string; got ${describe(entry)}.`,
      });
    }
  }
  return { ...(value as Record<string, string>) };
}
