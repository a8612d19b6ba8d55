import { describeOption as describe, InvalidArgumentError } from '@comfy-serverless/core';

// The shared checks live in core; these names keep the adapter's call sites short.
export {
  optionalClockOption as optionalClock,
  optionalNumberOption as optionalNumber,
  optionalStringOption as optionalString,
  requireStringOption as requireString,
} from '@comfy-serverless/core';

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
