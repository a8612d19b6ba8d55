import { InvalidArgumentError } from '@comfy-serverless/core';
import type { Redis } from 'ioredis';

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 80));
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}

/** Throws `InvalidArgumentError` naming the option when `redis` is not an ioredis client. */
export function checkRedis(value: unknown): asserts value is Redis {
  const client = value as Partial<Redis> | null | undefined;
  if (
    client === null ||
    typeof client !== 'object' ||
    typeof client.evalsha !== 'function' ||
    typeof client.eval !== 'function' ||
    typeof client.pipeline !== 'function'
  ) {
    throw new InvalidArgumentError({
      argument: 'redis',
      message: `Option "redis" must be an ioredis client (new Redis(url)); got ${describe(value)}.`,
    });
  }
}

/** Throws `InvalidArgumentError` unless the value is a non-empty string without spaces. */
export function checkName(argument: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 200 || /\s/.test(value)) {
    throw new InvalidArgumentError({
      argument,
      message: `Option "${argument}" must be a non-empty string of at most 200 characters without spaces; got ${describe(value)}.`,
    });
  }
}

/** Throws `InvalidArgumentError` unless the value is a whole number of milliseconds in range. */
export function checkMilliseconds(
  argument: string,
  value: unknown,
  minimum: number,
  options: { allowInfinity?: boolean } = {},
): asserts value is number {
  const ok =
    typeof value === 'number' &&
    ((options.allowInfinity === true && value === Number.POSITIVE_INFINITY) ||
      (Number.isInteger(value) && value >= minimum));
  if (!ok) {
    throw new InvalidArgumentError({
      argument,
      message: `Option "${argument}" must be a whole number of milliseconds >= ${minimum}${options.allowInfinity ? ' or Infinity' : ''}; got ${describe(value)}.`,
    });
  }
}

/** Throws `InvalidArgumentError` unless the value is a whole number >= `minimum`. */
export function checkCount(argument: string, value: unknown, minimum: number): asserts value is number {
  if (!(typeof value === 'number' && Number.isInteger(value) && value >= minimum)) {
    throw new InvalidArgumentError({
      argument,
      message: `Option "${argument}" must be a whole number >= ${minimum}; got ${describe(value)}.`,
    });
  }
}
