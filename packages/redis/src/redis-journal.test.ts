import { randomUUID } from 'node:crypto';
import { createMemoryJournal, InvalidArgumentError } from '@comfy-serverless/core';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, deleteKeys, uniquePrefix, wait } from './__fixtures__/redis-connection';
import { createRedisJournal } from './redis-journal';
import { RedisScript } from './redis-script';
import { testJournal } from './test/journal-conformance';

testJournal('memory', async () => {
  let now = 1_700_000_000_000;
  const journal = createMemoryJournal({ now: () => now });
  return {
    journal,
    peer: journal,
    elapse: async (ms) => {
      now += ms;
    },
    close: async () => {},
  };
});

testJournal(
  'redis',
  async () => {
    const prefix = uniquePrefix('journal');
    const first = connect();
    const second = connect();
    return {
      journal: createRedisJournal({ redis: first, prefix }),
      peer: createRedisJournal({ redis: second, prefix }),
      elapse: (ms) => wait(ms),
      close: async () => {
        await deleteKeys(first, prefix);
        first.disconnect();
        second.disconnect();
      },
    };
  },
  { claimTtlMs: 60 },
);

const base = { requestHash: 'h', createdAt: 1, request: { workflow: {}, images: [] } };

describe('createRedisJournal', () => {
  let redis: Redis;
  const prefixes: string[] = [];
  const fresh = (label: string) => {
    const prefix = uniquePrefix(label);
    prefixes.push(prefix);
    return prefix;
  };
  beforeAll(() => {
    redis = connect();
  });
  afterAll(async () => {
    for (const prefix of prefixes) await deleteKeys(redis, prefix);
    redis.disconnect();
  });

  it('refuses bad options, naming the option', () => {
    const cases: Array<[unknown, string]> = [
      [{ redis: {} }, 'redis'],
      [{ redis, prefix: '' }, 'prefix'],
      [{ redis, prefix: 'has space' }, 'prefix'],
      [{ redis, finishedTtlMs: 0 }, 'finishedTtlMs'],
      [{ redis, finishedTtlMs: 1.5 }, 'finishedTtlMs'],
      [{ redis, now: 5 }, 'now'],
      [{ redis, createClaimTtlMs: 0 }, 'createClaimTtlMs'],
    ];
    for (const [options, argument] of cases) {
      let caught: unknown;
      try {
        createRedisJournal(options as never);
      } catch (error) {
        caught = error;
      }
      expect(InvalidArgumentError.isInstance(caught)).toBe(true);
      expect((caught as InvalidArgumentError).argument).toBe(argument);
    }
  });

  it('keeps a finished job for finishedTtlMs, then forgets it', async () => {
    const prefix = fresh('expiry');
    const journal = createRedisJournal({ redis, prefix, finishedTtlMs: 80 });
    await journal.create({ jobId: 'done', ...base });
    await journal.create({ jobId: 'open', ...base });
    await journal.update('done', { status: 'running' });
    expect(await redis.pttl(`${prefix}:job:done`)).toBe(-1);
    await journal.update('done', { status: 'completed' });
    const ttl = await redis.pttl(`${prefix}:job:done`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(80);
    for (let tries = 0; tries < 100 && (await journal.get('done')) !== undefined; tries++) await wait(10);
    expect(await journal.get('done')).toBeUndefined();
    // A job still running never expires.
    expect((await journal.get('open'))?.status).toBe('queued');
    expect(await redis.pttl(`${prefix}:job:open`)).toBe(-1);
    // Once forgotten, the id is free again, as in the memory journal after eviction.
    expect((await journal.create({ jobId: 'done', ...base })).created).toBe(true);
  });

  it('keeps finished jobs forever with finishedTtlMs: Infinity', async () => {
    const prefix = fresh('forever');
    const journal = createRedisJournal({ redis, prefix, finishedTtlMs: Number.POSITIVE_INFINITY });
    await journal.create({ jobId: 'a', ...base });
    await journal.update('a', { status: 'failed' });
    expect(await redis.pttl(`${prefix}:job:a`)).toBe(-1);
  });

  it('drops the claim and the active entry when a job finishes', async () => {
    const prefix = fresh('finish');
    const journal = createRedisJournal({ redis, prefix });
    await journal.create({ jobId: 'a', ...base });
    expect(await journal.claim('a', 'one', 60_000)).toBe(true);
    expect(await journal.claimOwner('a')).toBe('one');
    await journal.update('a', { status: 'completed' });
    expect(await journal.claimOwner('a')).toBeUndefined();
    expect(await redis.sismember(`${prefix}:active`, 'a')).toBe(0);
  });

  it('claims a new job for its creator atomically, and never a finished or unknown job', async () => {
    const prefix = fresh('claims');
    const journal = createRedisJournal({ redis, prefix, createClaimTtlMs: 60_000 });
    await journal.create({ jobId: 'a', ...base, owner: 'creator' });
    expect(await journal.claimOwner('a')).toBe('creator');
    expect(await journal.claim('a', 'other', 60_000)).toBe(false);
    expect(await journal.claim('a', 'creator', 60_000)).toBe(true);
    // Created without an owner: free for the first claimant.
    await journal.create({ jobId: 'b', ...base });
    expect(await journal.claimOwner('b')).toBeUndefined();
    expect(await journal.claim('b', 'other', 60_000)).toBe(true);
    // A second create of the same id does not touch the claim.
    await journal.create({ jobId: 'b', ...base, owner: 'late' });
    expect(await journal.claimOwner('b')).toBe('other');
    await journal.update('a', { status: 'completed' });
    expect(await journal.claim('a', 'creator', 60_000)).toBe(false);
    expect(await journal.claim('never-created', 'creator', 60_000)).toBe(false);
  });

  it('never lets this process claim a job it is writing a terminal status for', async () => {
    const prefix = fresh('finishing');
    const journal = createRedisJournal({ redis, prefix });
    await journal.create({ jobId: 'a', ...base, owner: 'me' });
    // The dispatcher forgets a job and then journals its end; a resume() pass working from
    // an older list may try to claim it in between. The write is in flight here.
    const finishing = journal.update('a', { status: 'completed' });
    const claimed = journal.claim('a', 'me', 60_000);
    expect(await claimed).toBe(false);
    await finishing;
    expect(await journal.claim('a', 'me', 60_000)).toBe(false);
    // A refused terminal write leaves nothing behind.
    await journal.create({ jobId: 'b', ...base, owner: 'me' });
    await journal.update('b', { status: 'running' });
    await expect(journal.update('b', { status: 'queued' })).rejects.toSatisfy(
      InvalidArgumentError.isInstance,
    );
    expect(await journal.claim('b', 'me', 60_000)).toBe(true);
  });

  it('answers claims on jobs it just listed as owned by others without trusting them past expiry', async () => {
    const prefix = fresh('listed');
    const journal = createRedisJournal({ redis, prefix });
    const otherClient = connect();
    const other = createRedisJournal({ redis: otherClient, prefix, createClaimTtlMs: 80 });
    await other.create({ jobId: 'a', ...base, owner: 'them' });
    expect((await journal.listNonTerminal()).map((record) => record.jobId)).toEqual(['a']);
    expect(await journal.claim('a', 'me', 60_000)).toBe(false);
    for (let tries = 0; tries < 100 && (await other.claimOwner('a')) !== undefined; tries++) await wait(10);
    expect(await journal.claim('a', 'me', 60_000)).toBe(true);
    expect(await journal.claimOwner('a')).toBe('me');
    otherClient.disconnect();
  });

  it('does not confuse journals with different prefixes', async () => {
    const one = createRedisJournal({ redis, prefix: fresh('one') });
    const two = createRedisJournal({ redis, prefix: fresh('two') });
    await one.create({ jobId: 'a', ...base });
    expect(await two.get('a')).toBeUndefined();
    expect(await two.listNonTerminal()).toEqual([]);
  });

  it('forgets an active id whose record was deleted by hand', async () => {
    const prefix = fresh('vanished');
    const journal = createRedisJournal({ redis, prefix });
    await journal.create({ jobId: 'a', ...base });
    await journal.create({ jobId: 'b', ...base });
    await redis.del(`${prefix}:job:a`);
    expect((await journal.listNonTerminal()).map((record) => record.jobId)).toEqual(['b']);
    expect(await redis.smembers(`${prefix}:active`)).toEqual(['b']);
  });

  it('runs a script the server has not cached (after a restart or SCRIPT FLUSH)', async () => {
    // A source no server has seen: EVALSHA answers NOSCRIPT and the script falls back to EVAL.
    const script = new RedisScript(`-- ${randomUUID()}\nreturn ARGV[1] .. KEYS[1]`);
    expect(await script.run(redis, ['key'], ['value-'])).toBe('value-key');
    expect(await script.run(redis, ['again'], ['cached-'])).toBe('cached-again');
  });
});
