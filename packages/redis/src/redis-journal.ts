import {
  assertStatusTransition,
  ComfyServerlessError,
  InvalidArgumentError,
  isTerminalStatus,
  type JobJournalV1,
  type JobRecord,
  type JobRecordPatch,
  type NewJobRecord,
} from '@comfy-serverless/core';
import type { Redis } from 'ioredis';
import { checkMilliseconds, checkName, checkRedis } from './options';
import { decodeRecord, encodeRecord } from './record-codec';
import { RedisScript } from './redis-script';

/** Options of `createRedisJournal`. */
export interface RedisJournalOptions {
  /** The ioredis client to use; the journal never connects or quits it. */
  redis: Redis;
  /**
   * Start of every key the journal writes. Processes that share jobs use the same prefix.
   * On Redis Cluster make it a hash tag (`'{comfy}'`) so that all keys share a slot.
   * @default 'comfy-serverless:journal'
   */
  prefix?: string;
  /**
   * How long a finished job (completed, failed, cancelled, timed out) is kept for `get`
   * and idempotent resubmission, ms; `Infinity` keeps it until deleted. @default 86400000 (one day)
   */
  finishedTtlMs?: number;
  /**
   * A job created with an `owner` is claimed for that owner in the same atomic step, for
   * this long, ms, so that no other process's `resume()` can take it up between its
   * creation and its creator's first claim. Set it to the dispatcher's `claimTtlMs`.
   * @default 30000
   */
  createClaimTtlMs?: number;
  /** Milliseconds since the epoch, for `updatedAt`. @default Date.now */
  now?: () => number;
}

/** A `JobJournalV1` in Redis, shared by every process that uses the same prefix. */
export interface RedisJournal extends JobJournalV1 {
  claim(jobId: string, owner: string, ttlMs: number): Promise<boolean>;
  /** The process holding a job's claim now, if any. */
  claimOwner(jobId: string): Promise<string | undefined>;
  readonly prefix: string;
}

// KEYS: job hash, active set, claim. ARGV: record JSON, job id, owner ('' for none), claim ttl ms.
const CREATE = new RedisScript(`
local existing = redis.call('HGET', KEYS[1], 'record')
if existing then return {0, existing} end
redis.call('HSET', KEYS[1], 'status', 'queued', 'version', '1', 'record', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4]) end
return {1}
`);

// KEYS: job hash, active set, claim. ARGV: expected version, new version, status, record JSON,
// terminal ('1' or '0'), finished TTL ms (0 keeps it), job id.
// A compare-and-set on the version: the caller checked the transition against that version.
const UPDATE = new RedisScript(`
local version = redis.call('HGET', KEYS[1], 'version')
if not version then return {0} end
if version ~= ARGV[1] then return {1, redis.call('HGET', KEYS[1], 'record')} end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'status', ARGV[3], 'record', ARGV[4])
if ARGV[5] == '1' then
  redis.call('SREM', KEYS[2], ARGV[7])
  redis.call('DEL', KEYS[3])
  if tonumber(ARGV[6]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[6]) end
end
return {2}
`);

// KEYS: claim, job hash. ARGV: owner, ttl ms. A finished (or unknown) job cannot be claimed:
// a process working from a stale list of jobs must not take one up again.
const CLAIM = new RedisScript(`
local status = redis.call('HGET', KEYS[2], 'status')
if not status or status == 'completed' or status == 'failed' or status == 'cancelled' or status == 'timed_out' then
  return 0
end
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`);

const MAX_WRITE_CONFLICTS = 100;
const LIST_BATCH = 500;

function checkJobId(jobId: unknown): asserts jobId is string {
  if (typeof jobId !== 'string' || jobId.length === 0 || jobId.length > 256) {
    throw new InvalidArgumentError({
      argument: 'jobId',
      message: `A job id must be a non-empty string of at most 256 characters; got ${String(jobId).slice(0, 80)}.`,
    });
  }
}

/**
 * Creates a job journal in Redis, for hosts that run the SDK in many processes.
 *
 * Creation is atomic and idempotent (the same job id from two processes gives one job),
 * status only moves forward (checked and written in one compare-and-set), each in-flight
 * job carries a claim that expires unless its owner renews it (so that `resume()` in
 * another process takes over the jobs of one that died), and finished jobs expire after
 * `finishedTtlMs`.
 *
 * @example
 * import { Redis } from 'ioredis';
 * const redis = new Redis('redis://127.0.0.1:6379');
 * const dispatcher = createDispatcher({
 *   providers,
 *   journal: createRedisJournal({ redis, prefix: 'myapp:jobs' }),
 *   takeOverIntervalMs: 10_000,
 * });
 */
export function createRedisJournal(options: RedisJournalOptions): RedisJournal {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError({
      argument: 'options',
      message: 'createRedisJournal needs an options object with "redis" (an ioredis client).',
    });
  }
  checkRedis(options.redis);
  const prefix = options.prefix ?? 'comfy-serverless:journal';
  checkName('prefix', prefix);
  const finishedTtlMs = options.finishedTtlMs ?? 86_400_000;
  checkMilliseconds('finishedTtlMs', finishedTtlMs, 1, { allowInfinity: true });
  const createClaimTtlMs = options.createClaimTtlMs ?? 30_000;
  checkMilliseconds('createClaimTtlMs', createClaimTtlMs, 1);
  if (options.now !== undefined && typeof options.now !== 'function') {
    throw new InvalidArgumentError({
      argument: 'now',
      message: `Option "now" must be a function returning epoch milliseconds; got ${typeof options.now}.`,
    });
  }
  const redis = options.redis;
  const now = options.now ?? Date.now;
  const activeKey = `${prefix}:active`;
  const jobKey = (jobId: string) => `${prefix}:job:${jobId}`;
  const claimKey = (jobId: string) => `${prefix}:claim:${jobId}`;
  const ttlArgument = finishedTtlMs === Number.POSITIVE_INFINITY ? 0 : finishedTtlMs;

  const missing = (jobId: string) =>
    new InvalidArgumentError({
      argument: 'jobId',
      message: `Job ${jobId} is not in the journal; it may have expired after it finished (finishedTtlMs).`,
    });

  // Claims seen by the last listNonTerminal, with a local deadline before which they surely
  // still hold (measured from before the read). A resume() pass over many jobs that other
  // live processes own then costs no round trip per job, so it ends quickly and the records
  // it works from stay fresh.
  const listedClaims = new Map<string, { owner: string; until: number }>();
  // Jobs this process is writing a terminal status for, with the number of such writes.
  const finishingHere = new Map<string, number>();

  async function readRecord(jobId: string): Promise<JobRecord | undefined> {
    const text = await redis.hget(jobKey(jobId), 'record');
    return text === null ? undefined : decodeRecord(text);
  }

  async function applyUpdate(jobId: string, patch: JobRecordPatch): Promise<JobRecord> {
    let current = await readRecord(jobId);

    for (let conflicts = 0; conflicts < MAX_WRITE_CONFLICTS; conflicts++) {
      if (current === undefined) throw missing(jobId);
      if (patch.status !== undefined) assertStatusTransition(jobId, current.status, patch.status);
      const updated: JobRecord = {
        ...current,
        ...patch,
        jobId,
        version: current.version + 1,
        updatedAt: now(),
      };
      const terminal = isTerminalStatus(updated.status) && !isTerminalStatus(current.status);
      const reply = (await UPDATE.run(
        redis,
        [jobKey(jobId), activeKey, claimKey(jobId)],
        [
          String(current.version),
          String(updated.version),
          updated.status,
          encodeRecord(updated),
          terminal ? '1' : '0',
          ttlArgument,
          jobId,
        ],
      )) as [number, string?];
      if (reply[0] === 2) return updated;
      // Another process wrote first: check the patch again against what it wrote.
      current = reply[0] === 0 || reply[1] == null ? undefined : decodeRecord(reply[1]);
    }
    throw new ComfyServerlessError({
      message: `Job ${jobId} changed ${MAX_WRITE_CONFLICTS} times while this process tried to update it; try again.`,
      isRetryable: true,
      jobId,
    });
  }

  return {
    specificationVersion: 'v1',
    prefix,

    async create(record: NewJobRecord) {
      checkJobId(record.jobId);
      const stored: JobRecord = {
        ...record,
        status: 'queued',
        version: 1,
        updatedAt: record.createdAt,
        attempts: [],
      };
      const owner = typeof record.owner === 'string' && record.owner.length > 0 ? record.owner : '';
      const reply = (await CREATE.run(
        redis,
        [jobKey(record.jobId), activeKey, claimKey(record.jobId)],
        [encodeRecord(stored), record.jobId, owner, createClaimTtlMs],
      )) as [number, string?];
      if (reply[0] === 1) return { record: stored, created: true };
      return { record: decodeRecord(reply[1]!), created: false };
    },

    async update(jobId: string, patch: JobRecordPatch) {
      checkJobId(jobId);
      // Marked before the first await, so that a claim made after this call started (by
      // this process's resume() working from an older list) cannot take the job up again.
      const finishing = patch.status !== undefined && isTerminalStatus(patch.status);
      if (finishing) finishingHere.set(jobId, (finishingHere.get(jobId) ?? 0) + 1);
      try {
        return await applyUpdate(jobId, patch);
      } finally {
        if (finishing) {
          const left = (finishingHere.get(jobId) ?? 1) - 1;
          if (left > 0) finishingHere.set(jobId, left);
          else finishingHere.delete(jobId);
        }
      }
    },

    get(jobId: string) {
      checkJobId(jobId);
      return readRecord(jobId);
    },

    async listNonTerminal() {
      const ids = await redis.smembers(activeKey);
      listedClaims.clear();
      const records: JobRecord[] = [];
      const vanished: string[] = [];
      for (let start = 0; start < ids.length; start += LIST_BATCH) {
        const batch = ids.slice(start, start + LIST_BATCH);
        const pipeline = redis.pipeline();
        for (const jobId of batch)
          pipeline.hget(jobKey(jobId), 'record').get(claimKey(jobId)).pttl(claimKey(jobId));
        const sentAt = performance.now();
        const replies = (await pipeline.exec()) ?? [];
        batch.forEach((jobId, index) => {
          const [error, text] = replies[index * 3] ?? [null, null];
          if (error) throw error;
          const claimOwner = replies[index * 3 + 1]?.[1];
          const claimTtl = replies[index * 3 + 2]?.[1];
          if (typeof claimOwner === 'string' && typeof claimTtl === 'number' && claimTtl > 0) {
            listedClaims.set(jobId, { owner: claimOwner, until: sentAt + claimTtl });
          }
          if (typeof text !== 'string') {
            vanished.push(jobId);
            return;
          }
          const record = decodeRecord(text);
          // It may have finished between the two reads.
          if (!isTerminalStatus(record.status)) records.push(record);
        });
      }
      // An id whose record was deleted by hand would otherwise be listed forever.
      if (vanished.length > 0) await redis.srem(activeKey, ...vanished);
      records.sort((a, b) => a.createdAt - b.createdAt || (a.jobId < b.jobId ? -1 : 1));
      return records;
    },

    /** Takes or renews a job's claim; false when another live owner holds it, or the job is finished or unknown. */
    async claim(jobId: string, owner: string, ttlMs: number) {
      checkJobId(jobId);
      checkName('owner', owner);
      if (!(typeof ttlMs === 'number' && Number.isFinite(ttlMs) && ttlMs > 0)) {
        throw new InvalidArgumentError({
          argument: 'ttlMs',
          message: `A claim's "ttlMs" must be a number of milliseconds > 0; got ${String(ttlMs)}.`,
        });
      }
      if (finishingHere.has(jobId)) return false;
      // Held by another owner when last listed, and surely still: no round trip needed.
      const listed = listedClaims.get(jobId);
      if (listed !== undefined && listed.owner !== owner && performance.now() < listed.until) return false;
      listedClaims.delete(jobId);
      const reply = await CLAIM.run(redis, [claimKey(jobId), jobKey(jobId)], [owner, Math.ceil(ttlMs)]);
      return reply === 1;
    },

    async claimOwner(jobId: string) {
      checkJobId(jobId);
      return (await redis.get(claimKey(jobId))) ?? undefined;
    },
  };
}
