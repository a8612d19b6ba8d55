import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';

/** The Redis the tests use (`.ci/run` starts one on 127.0.0.1:6379). */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key prefix no other test (or parallel test file) uses. */
export function uniquePrefix(label: string): string {
  return `test:${label}:${randomUUID()}`;
}

/** A client for a test: fails fast instead of queueing commands while Redis is down. */
export function connect(): Redis {
  return new Redis(REDIS_URL, { maxRetriesPerRequest: 1, enableOfflineQueue: true, lazyConnect: false });
}

/** Deletes every key under `prefix`. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

/** Waits for real: only for time that lives in Redis (key expiry). */
export function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
