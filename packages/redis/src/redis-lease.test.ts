import { InvalidArgumentError } from '@comfy-serverless/core';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, deleteKeys, uniquePrefix, wait } from './__fixtures__/redis-connection';
import { createRedisLease, type RedisLease, type RedisLeaseGrant } from './redis-lease';

describe('createRedisLease', () => {
  let first: Redis;
  let second: Redis;
  const names: string[] = [];
  const fresh = () => {
    const name = uniquePrefix('lease');
    names.push(name);
    return name;
  };
  beforeAll(() => {
    first = connect();
    second = connect();
  });
  afterAll(async () => {
    for (const name of names) await deleteKeys(first, name);
    first.disconnect();
    second.disconnect();
  });

  it('refuses bad options and arguments, naming them', async () => {
    const cases: Array<[unknown, string]> = [
      [{ redis: null, name: 'x' }, 'redis'],
      [{ redis: first, name: '' }, 'name'],
      [{ redis: first, name: 'x', ttlMs: 0 }, 'ttlMs'],
      [{ redis: first, name: 'x', now: 'soon' }, 'now'],
    ];
    for (const [options, argument] of cases) {
      expect(() => createRedisLease(options as never)).toThrow(
        expect.objectContaining({ name: 'InvalidArgumentError', argument }),
      );
    }
    const lease = createRedisLease({ redis: first, name: fresh() });
    await expect(lease.acquire('two\nlines', 1_000)).rejects.toSatisfy(InvalidArgumentError.isInstance);
    await expect(lease.renew({} as RedisLeaseGrant)).rejects.toSatisfy(InvalidArgumentError.isInstance);
  });

  it('lets one holder at a time hold it and hands it over cleanly on release', async () => {
    const name = fresh();
    const one = createRedisLease({ redis: first, name });
    const two = createRedisLease({ redis: second, name });
    const grant = (await one.acquire('host-a', 10_000))!;
    expect(grant.holder).toBe('host-a');
    expect(await two.acquire('host-b', 10_000)).toBeUndefined();
    // Acquiring again while holding renews, keeping the token.
    const again = (await one.acquire('host-a', 10_000))!;
    expect(again.token).toBe(grant.token);
    expect(await one.isHeld(grant)).toBe(true);
    expect(await two.isHeld({ ...grant, holder: 'host-b' })).toBe(false);

    await one.release(grant);
    const next = (await two.acquire('host-b', 10_000))!;
    expect(next.token).toBeGreaterThan(grant.token);
    // The old holder can neither extend nor delete the new holder's lease.
    expect(await one.renew(grant, 10_000)).toBeUndefined();
    await one.release(grant);
    expect(await one.isHeld(grant)).toBe(false);
    expect(await two.isHeld(next)).toBe(true);
    const renewed = (await two.renew(next, 10_000))!;
    expect(renewed.token).toBe(next.token);
    expect(renewed.expiresAt).toBeGreaterThanOrEqual(next.expiresAt);
  });

  it('lapses when not renewed, and the next holder gets a greater fencing token', async () => {
    const name = fresh();
    const one = createRedisLease({ redis: first, name, ttlMs: 60 });
    const two = createRedisLease({ redis: second, name, ttlMs: 60 });
    const grant = (await one.acquire('host-a'))!;
    let next: RedisLeaseGrant | undefined;
    for (let tries = 0; tries < 200 && next === undefined; tries++) {
      next = await two.acquire('host-b');
      if (next === undefined) await wait(5);
    }
    expect(next).toBeDefined();
    // The old holder stopped believing in its grant before the new one could be had.
    expect(grant.expiresAt).toBeLessThanOrEqual(Date.now());
    expect(next!.token).toBeGreaterThan(grant.token);
    expect(await one.isHeld(grant)).toBe(false);
    expect(await one.renew(grant)).toBeUndefined();
  });

  it('is never held by two contenders at once, through stalls, expiries and hand-overs', async () => {
    const name = fresh();
    const ttlMs = 80;
    // Each contender records when it believed it held the lease: from the moment a grant
    // came back until the grant's expiresAt (or its release).
    type Interval = { holder: string; token: number; from: number; to: number };
    const intervals: Interval[] = [];
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    const contend = async (lease: RedisLease, holder: string, until: number) => {
      let grant: RedisLeaseGrant | undefined;
      let open: Interval | undefined;
      const close = (at: number) => {
        if (open !== undefined) open.to = Math.min(open.to, at);
        open = undefined;
      };
      while (Date.now() < until) {
        const roll = random();
        if (grant === undefined) {
          grant = await lease.acquire(holder, ttlMs);
        } else if (roll < 0.1) {
          // A stall longer than the TTL: the lease lapses under this holder.
          await wait(ttlMs + 20);
          grant = await lease.renew(grant, ttlMs);
          if (grant === undefined) close(Date.now());
        } else if (roll < 0.2) {
          close(Date.now());
          await lease.release(grant);
          grant = undefined;
        } else {
          grant = await lease.renew(grant, ttlMs);
          if (grant === undefined) close(Date.now());
        }
        if (grant !== undefined) {
          const at = Date.now();
          if (open !== undefined && open.token === grant.token) open.to = grant.expiresAt;
          else {
            close(at);
            open = { holder, token: grant.token, from: at, to: grant.expiresAt };
            intervals.push(open);
          }
        }
        await wait(Math.floor(random() * 15));
      }
      if (grant !== undefined) {
        close(Date.now());
        await lease.release(grant);
      }
    };
    const until = Date.now() + 1_200;
    await Promise.all([
      contend(createRedisLease({ redis: first, name }), 'host-a', until),
      contend(createRedisLease({ redis: second, name }), 'host-b', until),
    ]);
    const holders = new Set(intervals.map((interval) => interval.holder));
    expect(holders.size).toBe(2);
    intervals.sort((a, b) => a.from - b.from);
    for (let index = 1; index < intervals.length; index++) {
      const previous = intervals[index - 1]!;
      const current = intervals[index]!;
      expect(current.token).toBeGreaterThan(previous.token);
      if (current.holder !== previous.holder) expect(current.from).toBeGreaterThanOrEqual(previous.to);
    }
  });
});
