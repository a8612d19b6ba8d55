import { type DemandSnapshot, InvalidArgumentError } from '@comfy-serverless/core';
import type { Redis } from 'ioredis';
import { checkCount, checkMilliseconds, checkName, checkRedis } from './options';
import { RedisScript } from './redis-script';

/** The load one process reports: what its dispatcher has queued and running. */
export interface ProcessLoad {
  queueDepth: number;
  inFlight: number;
  /** By provider id. */
  providers: Record<string, { queueDepth: number; inFlight: number }>;
}

/** Demand seen by every process that shares the windows, in the dispatcher's `metrics()` shape. */
export interface SharedMetrics {
  /** Arrivals, waits and executions of all processes; queue depth and in-flight summed over live ones. */
  demand: DemandSnapshot;
  /** Summed over the processes whose load is fresh. */
  providers: Record<string, { queueDepth: number; inFlight: number }>;
  /** Processes whose load counted (published within `loadTtlMs`). */
  processes: number;
}

/** Options of `createRedisMetricWindows`. */
export interface RedisMetricWindowsOptions {
  /** The ioredis client to use; never connected or quit by the windows. */
  redis: Redis;
  /** Start of every key; processes that scale together share it. @default 'comfy-serverless:metrics' */
  prefix?: string;
  /** Length of one arrivals bucket, ms (the dispatcher's own window uses 10000). @default 10000 */
  bucketMs?: number;
  /** Buckets kept. @default 360 (one hour of 10 s buckets) */
  bucketCount?: number;
  /** Most recent waits and execution times kept. @default 1000 */
  sampleLimit?: number;
  /** A process's load counts for this long after it published it, ms. @default 30000 */
  loadTtlMs?: number;
  /**
   * Epoch ms for bucketing. By default the Redis server's clock, so that every process
   * agrees on bucket edges however skewed the hosts' clocks are. Inject for tests.
   */
  now?: () => number;
}

/** Arrivals per interval, waits, execution times and per-process load, shared in Redis. */
export interface RedisMetricWindows {
  readonly bucketMs: number;
  /** Counts accepted jobs in the current bucket. @default count 1 */
  recordArrival(count?: number): Promise<void>;
  /** Records how long a job waited before it started, ms. */
  recordWait(ms: number): Promise<void>;
  /** Records how long a job ran, ms. */
  recordExecution(ms: number): Promise<void>;
  /** Publishes what one process has queued and running now (replaces its earlier report). */
  publishLoad(processId: string, load: ProcessLoad): Promise<void>;
  /** Withdraws a process's load (on shutdown), so that it stops counting at once. */
  withdrawLoad(processId: string): Promise<void>;
  /** Reads everything back, merged across processes. */
  snapshot(): Promise<SharedMetrics>;
}

// KEYS: arrivals hash. ARGV: now ('' for the server's time), bucket ms, count.
const RECORD_ARRIVAL = new RedisScript(`
local now = tonumber(ARGV[1])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local bucket = math.floor(now / tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[1], tostring(bucket), ARGV[3])
return bucket
`);

// KEYS: loads hash. ARGV: now ('' for the server's time), process id, load JSON.
const PUBLISH_LOAD = new RedisScript(`
local now = tonumber(ARGV[1])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
redis.call('HSET', KEYS[1], ARGV[2], string.format('%d', now) .. ' ' .. ARGV[3])
return 1
`);

// KEYS: loads hash. ARGV: pairs of process id and the value read. A process that published
// again since the read keeps its fresh load.
const DROP_STALE_LOADS = new RedisScript(`
for index = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[index]) == ARGV[index + 1] then
    redis.call('HDEL', KEYS[1], ARGV[index])
  end
end
return 1
`);

function checkSample(argument: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidArgumentError({
      argument,
      message: `"${argument}" must be a number of milliseconds >= 0; got ${String(value)}.`,
    });
  }
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
}

/**
 * Creates metric windows in Redis that every process of a host writes to, so that the one
 * autoscaler that holds the lease sees the demand of all of them, not only its own.
 * `shareDispatcherDemand` feeds them from a dispatcher and reads them back in the shape
 * the autoscaler takes.
 *
 * @example
 * const windows = createRedisMetricWindows({ redis, prefix: 'myapp:metrics', bucketMs: 10_000 });
 * await windows.recordArrival();
 * const { demand } = await windows.snapshot(); // arrivals of every process, oldest bucket first
 */
export function createRedisMetricWindows(options: RedisMetricWindowsOptions): RedisMetricWindows {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError({
      argument: 'options',
      message: 'createRedisMetricWindows needs an options object with "redis" (an ioredis client).',
    });
  }
  checkRedis(options.redis);
  const prefix = options.prefix ?? 'comfy-serverless:metrics';
  checkName('prefix', prefix);
  const bucketMs = options.bucketMs ?? 10_000;
  checkMilliseconds('bucketMs', bucketMs, 1);
  const bucketCount = options.bucketCount ?? 360;
  checkCount('bucketCount', bucketCount, 1);
  const sampleLimit = options.sampleLimit ?? 1_000;
  checkCount('sampleLimit', sampleLimit, 1);
  const loadTtlMs = options.loadTtlMs ?? 30_000;
  checkMilliseconds('loadTtlMs', loadTtlMs, 1);
  if (options.now !== undefined && typeof options.now !== 'function') {
    throw new InvalidArgumentError({
      argument: 'now',
      message: `Option "now" must be a function returning epoch milliseconds; got ${typeof options.now}.`,
    });
  }
  const { redis } = options;
  const injectedNow = options.now;
  const keys = {
    arrivals: `${prefix}:arrivals`,
    waits: `${prefix}:waits`,
    executions: `${prefix}:executions`,
    loads: `${prefix}:loads`,
  };
  const nowArgument = () => (injectedNow === undefined ? '' : String(Math.floor(injectedNow())));
  const currentTime = async (): Promise<number> => {
    if (injectedNow !== undefined) return injectedNow();
    const [seconds, microseconds] = await redis.time();
    return Number(seconds) * 1000 + Math.floor(Number(microseconds) / 1000);
  };
  const pushSample = async (key: string, ms: number) => {
    await redis
      .pipeline()
      .lpush(key, String(ms))
      .ltrim(key, 0, sampleLimit - 1)
      .exec();
  };
  const samples = (values: string[]) => values.map(Number).filter(Number.isFinite).reverse();

  return {
    bucketMs,
    async recordArrival(arrivals = 1) {
      if (!Number.isInteger(arrivals) || arrivals < 1) {
        throw new InvalidArgumentError({
          argument: 'count',
          message: `recordArrival's count must be a whole number >= 1; got ${String(arrivals)}.`,
        });
      }
      await RECORD_ARRIVAL.run(redis, [keys.arrivals], [nowArgument(), bucketMs, arrivals]);
    },
    async recordWait(ms) {
      checkSample('ms', ms);
      await pushSample(keys.waits, ms);
    },
    async recordExecution(ms) {
      checkSample('ms', ms);
      await pushSample(keys.executions, ms);
    },
    async publishLoad(processId, load) {
      checkName('processId', processId);
      const providers: ProcessLoad['providers'] = {};
      for (const [id, entry] of Object.entries(load.providers ?? {})) {
        providers[id] = { queueDepth: count(entry?.queueDepth), inFlight: count(entry?.inFlight) };
      }
      const body = JSON.stringify({
        queueDepth: count(load.queueDepth),
        inFlight: count(load.inFlight),
        providers,
      });
      await PUBLISH_LOAD.run(redis, [keys.loads], [nowArgument(), processId, body]);
    },
    async withdrawLoad(processId) {
      checkName('processId', processId);
      await redis.hdel(keys.loads, processId);
    },
    async snapshot() {
      const now = await currentTime();
      const replies =
        (await redis
          .pipeline()
          .hgetall(keys.arrivals)
          .lrange(keys.waits, 0, sampleLimit - 1)
          .lrange(keys.executions, 0, sampleLimit - 1)
          .hgetall(keys.loads)
          .exec()) ?? [];
      for (const [error] of replies) if (error) throw error;
      const arrivalFields = (replies[0]?.[1] ?? {}) as Record<string, string>;
      const waits = (replies[1]?.[1] ?? []) as string[];
      const executions = (replies[2]?.[1] ?? []) as string[];
      const loadFields = (replies[3]?.[1] ?? {}) as Record<string, string>;

      const current = Math.floor(now / bucketMs);
      const oldestKept = current - bucketCount + 1;
      const byBucket = new Map<number, number>();
      const staleBuckets: string[] = [];
      for (const [field, value] of Object.entries(arrivalFields)) {
        const bucket = Number(field);
        if (!Number.isInteger(bucket) || bucket < oldestKept) staleBuckets.push(field);
        else if (bucket <= current) byBucket.set(bucket, count(Number(value)));
      }
      const first = Math.min(current, ...byBucket.keys());
      const arrivals: number[] = [];
      for (let bucket = first; bucket <= current; bucket++) arrivals.push(byBucket.get(bucket) ?? 0);

      let queueDepth = 0;
      let inFlight = 0;
      let processes = 0;
      const providers: SharedMetrics['providers'] = {};
      const staleLoads: Array<[string, string]> = [];
      for (const [processId, value] of Object.entries(loadFields)) {
        const space = value.indexOf(' ');
        const at = Number(value.slice(0, space));
        if (!(space > 0 && at > now - loadTtlMs)) {
          staleLoads.push([processId, value]);
          continue;
        }
        let load: ProcessLoad;
        try {
          load = JSON.parse(value.slice(space + 1)) as ProcessLoad;
        } catch {
          staleLoads.push([processId, value]);
          continue;
        }
        processes += 1;
        queueDepth += count(load.queueDepth);
        inFlight += count(load.inFlight);
        for (const [id, entry] of Object.entries(load.providers ?? {})) {
          const sum = providers[id] ?? { queueDepth: 0, inFlight: 0 };
          sum.queueDepth += count(entry?.queueDepth);
          sum.inFlight += count(entry?.inFlight);
          providers[id] = sum;
        }
      }
      // Housekeeping: old buckets and the loads of processes that stopped reporting.
      if (staleBuckets.length > 0) await redis.hdel(keys.arrivals, ...staleBuckets);
      if (staleLoads.length > 0) await DROP_STALE_LOADS.run(redis, [keys.loads], staleLoads.flat());
      return {
        demand: {
          arrivals,
          bucketMs,
          queueDepth,
          inFlight,
          recentWaitsMs: samples(waits),
          recentExecutionMs: samples(executions),
        },
        providers,
        processes,
      };
    },
  };
}
