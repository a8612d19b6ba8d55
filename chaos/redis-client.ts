import { createRequire } from 'node:module';
import type { Redis, RedisOptions } from 'ioredis';

/**
 * Connects to Redis with the ioredis that @comfy-serverless/redis depends on. The chaos
 * folder is no package of its own, so it borrows that dependency rather than adding one.
 */
export function connectRedis(url: string, options: RedisOptions = {}): Redis {
  const require = createRequire(new URL('../packages/redis/package.json', import.meta.url));
  const { Redis: RedisClient } = require('ioredis') as typeof import('ioredis');
  return new RedisClient(url, { maxRetriesPerRequest: 3, ...options });
}
