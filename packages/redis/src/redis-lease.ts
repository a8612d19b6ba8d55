import { InvalidArgumentError } from '@comfy-serverless/core';
import type { Redis } from 'ioredis';
import { checkMilliseconds, checkName, checkRedis } from './options';
import { RedisScript } from './redis-script';

/**
 * Proof of holding a lease. The same shape as `LeaseGrant` of `@comfy-serverless/scaler`
 * (matched structurally, so this package does not depend on the scaler).
 */
export interface RedisLeaseGrant {
  holder: string;
  /** Fencing token: strictly greater at every new acquisition (a Redis INCR). */
  token: number;
  /**
   * Epoch ms at which the holder must consider the grant lapsed. Counted from when the
   * request was sent, so it ends no later than the key's expiry in Redis: nobody else can
   * acquire the lease before this holder stops believing it holds it.
   */
  expiresAt: number;
}

/** Options of `createRedisLease`. */
export interface RedisLeaseOptions {
  /** The ioredis client to use; the lease never connects or quits it. */
  redis: Redis;
  /** The lease's name: its Redis key prefix. Every contender for one role uses the same name. */
  name: string;
  /** Time to live used when `acquire`/`renew` are called without one, ms. @default 30000 */
  ttlMs?: number;
  /** Milliseconds since the epoch, for `expiresAt`; must tick in real time. @default Date.now */
  now?: () => number;
}

/**
 * A leader lease in Redis. It fits `LeaseV1` of `@comfy-serverless/scaler` (pass it as the
 * autoscaler's `lease`) so that, of many hosts, only one applies scaling decisions.
 */
export interface RedisLease {
  readonly specificationVersion: 'v1';
  readonly name: string;
  /** Takes the lease for `ttlMs` (or renews it when `holder` holds it); undefined when another holder does. */
  acquire(holder: string, ttlMs?: number): Promise<RedisLeaseGrant | undefined>;
  /** Extends a held lease; the new grant, or undefined when it was lost (expired or taken). */
  renew(grant: RedisLeaseGrant, ttlMs?: number): Promise<RedisLeaseGrant | undefined>;
  /** Gives the lease up at once if this grant still holds it, so that another host can take it. */
  release(grant: RedisLeaseGrant): Promise<void>;
  /** Whether this grant (holder and token) is the current one and has not lapsed. */
  isHeld(grant: RedisLeaseGrant): Promise<boolean>;
}

// KEYS: holder, token counter. ARGV: holder, ttl ms.
// The holder key's value is "<token> <holder>"; holders may contain anything but newlines.
const ACQUIRE = new RedisScript(`
local current = redis.call('GET', KEYS[1])
if current then
  local space = string.find(current, ' ', 1, true)
  local token = string.sub(current, 1, space - 1)
  if string.sub(current, space + 1) ~= ARGV[1] then return {0, token} end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, token}
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ' ' .. ARGV[1], 'PX', ARGV[2])
return {1, tostring(token)}
`);

// KEYS: holder. ARGV: "<token> <holder>", ttl ms.
const RENEW = new RedisScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`);

// KEYS: holder. ARGV: "<token> <holder>".
const RELEASE = new RedisScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`);

function checkHolder(holder: unknown): asserts holder is string {
  if (typeof holder !== 'string' || holder.length === 0 || holder.length > 200 || /[\r\n]/.test(holder)) {
    throw new InvalidArgumentError({
      argument: 'holder',
      message: `A lease holder must be a non-empty string of at most 200 characters on one line; got ${String(holder).slice(0, 80)}.`,
    });
  }
}

function checkGrant(grant: unknown): asserts grant is RedisLeaseGrant {
  const value = grant as Partial<RedisLeaseGrant> | null;
  if (
    value === null ||
    typeof value !== 'object' ||
    typeof value.holder !== 'string' ||
    !Number.isInteger(value.token) ||
    typeof value.expiresAt !== 'number'
  ) {
    throw new InvalidArgumentError({
      argument: 'grant',
      message: 'Pass the grant that acquire() or renew() returned ({ holder, token, expiresAt }).',
    });
  }
}

/**
 * Creates a leader lease in Redis: `acquire` sets the holder key with a TTL and takes a
 * fencing token from `INCR`; `renew` and `release` are compare-and-set scripts on holder
 * and token, so a holder that lost the lease can neither extend nor delete the next
 * holder's. Releasing hands the lease over at once instead of after the TTL.
 *
 * @example
 * import { Redis } from 'ioredis';
 * const lease = createRedisLease({ redis: new Redis(), name: 'myapp:autoscaler' });
 * const autoscaler = createAutoscaler({ policy, targets, dispatcher, lease, leaseTtlMs: 30_000 });
 */
export function createRedisLease(options: RedisLeaseOptions): RedisLease {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError({
      argument: 'options',
      message: 'createRedisLease needs an options object with "redis" and "name".',
    });
  }
  checkRedis(options.redis);
  checkName('name', options.name);
  const defaultTtlMs = options.ttlMs ?? 30_000;
  checkMilliseconds('ttlMs', defaultTtlMs, 1);
  if (options.now !== undefined && typeof options.now !== 'function') {
    throw new InvalidArgumentError({
      argument: 'now',
      message: `Option "now" must be a function returning epoch milliseconds; got ${typeof options.now}.`,
    });
  }
  const { redis, name } = options;
  const now = options.now ?? Date.now;
  const holderKey = `${name}:holder`;
  const tokenKey = `${name}:token`;
  const ttlOf = (ttlMs: number | undefined): number => {
    const value = ttlMs ?? defaultTtlMs;
    checkMilliseconds('ttlMs', value, 1);
    return value;
  };
  const holderValue = (grant: RedisLeaseGrant) => `${grant.token} ${grant.holder}`;

  return {
    specificationVersion: 'v1',
    name,
    async acquire(holder, ttlMs) {
      checkHolder(holder);
      const ttl = ttlOf(ttlMs);
      const sentAt = now();
      const [won, token] = (await ACQUIRE.run(redis, [holderKey, tokenKey], [holder, ttl])) as [
        number,
        string,
      ];
      if (won !== 1) return undefined;
      return { holder, token: Number(token), expiresAt: sentAt + ttl };
    },
    async renew(grant, ttlMs) {
      checkGrant(grant);
      const ttl = ttlOf(ttlMs);
      const sentAt = now();
      const renewed = await RENEW.run(redis, [holderKey], [holderValue(grant), ttl]);
      return renewed === 1
        ? { holder: grant.holder, token: grant.token, expiresAt: sentAt + ttl }
        : undefined;
    },
    async release(grant) {
      checkGrant(grant);
      await RELEASE.run(redis, [holderKey], [holderValue(grant)]);
    },
    async isHeld(grant) {
      checkGrant(grant);
      if (grant.expiresAt <= now()) return false;
      return (await redis.get(holderKey)) === holderValue(grant) && grant.expiresAt > now();
    },
  };
}
