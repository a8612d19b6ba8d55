// Journal cost: the Redis journal beside the memory journal in the same run. Operations per
// second (create, update, get, claim, listNonTerminal over 1,000 open jobs), and the latency
// the journal adds to one job when it does what the dispatcher does for it:
// create, claim, journal the submission intent, the RunPod id, "running", "completed" with
// a result, and a get. Needs Redis (REDIS_URL, default redis://127.0.0.1:6379).
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  createMemoryJournal,
  type JobJournalV1,
  type JobResult,
  type NewJobRecord,
} from '@comfy-serverless/core';
// tsconfig has no path for @comfy-serverless/redis yet, and bench/package.json does not
// list ioredis: the bench reads the package's source and loads ioredis from beside it.
import { createRedisJournal, type RedisJournalOptions } from '../../packages/redis/src/index';

type Redis = RedisJournalOptions['redis'];
const { Redis: RedisClient } = createRequire(new URL('../../packages/redis/package.json', import.meta.url))(
  'ioredis',
) as { Redis: new (url: string, options?: Record<string, unknown>) => Redis };

const OPERATIONS = Number(process.env.BENCH_OPERATIONS ?? 2_000);
const JOBS = Number(process.env.BENCH_JOBS ?? 1_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const workflow = {
  '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd_xl_base_1.0.safetensors' } },
  '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a lighthouse at dusk', clip: ['4', 1] } },
  '3': { class_type: 'KSampler', inputs: { model: ['4', 0], positive: ['6', 0], seed: 1, steps: 20 } },
  '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'ComfyUI', images: ['3', 0] } },
};

const result: JobResult = {
  jobId: 'x',
  status: 'completed',
  outputs: [
    {
      nodeId: '9',
      kind: 'image',
      filename: 'ComfyUI_00001_.png',
      mime: 'image/png',
      url: 'https://bucket.example/outputs/ComfyUI_00001_.png',
    },
  ],
  timing: { queuedMs: 1_200, coldStartMs: 0, executionMs: 8_000, totalMs: 9_200 },
  cost: { usd: 0.0025, gpuSeconds: 8, providerId: 'runpod:abc' },
  providerId: 'runpod:abc',
  attempts: 1,
};

function newRecord(jobId: string): NewJobRecord {
  return {
    jobId,
    requestHash: 'a'.repeat(64),
    createdAt: Date.now(),
    request: { workflow, images: [], metadata: { user: 'u1' } },
    owner: 'bench',
  };
}

/** One job's journal traffic, as the dispatcher does it. */
async function oneJob(journal: JobJournalV1, jobId: string): Promise<void> {
  await journal.create(newRecord(jobId));
  await journal.claim?.(jobId, 'bench', 30_000);
  const intent = { providerId: 'runpod:abc', submittedAt: Date.now() };
  await journal.update(jobId, { attempts: [intent] });
  const submitted = { ...intent, remote: { remoteId: `r-${jobId}`, data: { endpointId: 'abc' } } };
  await journal.update(jobId, { attempts: [submitted], providerId: 'runpod:abc' });
  const startedAt = Date.now();
  await journal.update(jobId, { status: 'running', startedAt, attempts: [{ ...submitted, startedAt }] });
  await journal.update(jobId, { status: 'completed', result: { ...result, jobId }, finishedAt: Date.now() });
  await journal.get(jobId);
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

/** Runs `count` calls of `operation`, `concurrency` at a time; operations per second. */
async function throughput(
  count: number,
  concurrency: number,
  operation: (index: number) => Promise<unknown>,
) {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await operation(next++);
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

interface Figures {
  createPerSecond: number;
  updatePerSecond: number;
  getPerSecond: number;
  claimPerSecond: number;
  listNonTerminalMs: number;
  jobsPerSecondConcurrent: number;
  perJobMs: { mean: number; p50: number; p99: number };
}

async function measure(journal: JobJournalV1, label: string): Promise<Figures> {
  const run = randomUUID().slice(0, 8);
  const ids = Array.from({ length: OPERATIONS }, (_, index) => `${label}-${run}-${index}`);
  const createPerSecond = await throughput(OPERATIONS, CONCURRENCY, (index) =>
    journal.create(newRecord(ids[index]!)),
  );
  const updatePerSecond = await throughput(OPERATIONS, CONCURRENCY, (index) =>
    journal.update(ids[index]!, { providerId: 'runpod:abc', owner: 'bench' }),
  );
  const getPerSecond = await throughput(OPERATIONS, CONCURRENCY, (index) => journal.get(ids[index]!));
  const claimPerSecond = await throughput(
    OPERATIONS,
    CONCURRENCY,
    (index) => journal.claim?.(ids[index]!, 'bench', 30_000) ?? Promise.resolve(true),
  );
  // listNonTerminal with OPERATIONS open jobs (what every resume() pass reads).
  const listStarted = performance.now();
  const open = await journal.listNonTerminal();
  const listNonTerminalMs = performance.now() - listStarted;
  if (open.length < OPERATIONS) throw new Error(`${label}: listed ${open.length} of ${OPERATIONS} open jobs`);
  for (const jobId of ids) await journal.update(jobId, { status: 'cancelled' });

  // One job at a time: the latency the journal adds to each job.
  const latencies: number[] = [];
  for (let index = 0; index < JOBS; index++) {
    const started = performance.now();
    await oneJob(journal, `${label}-${run}-job-${index}`);
    latencies.push(performance.now() - started);
  }
  latencies.sort((a, b) => a - b);
  // Many jobs at once, as a busy host has them.
  const jobsPerSecondConcurrent = await throughput(JOBS, CONCURRENCY, (index) =>
    oneJob(journal, `${label}-${run}-concurrent-${index}`),
  );
  return {
    createPerSecond,
    updatePerSecond,
    getPerSecond,
    claimPerSecond,
    listNonTerminalMs,
    jobsPerSecondConcurrent,
    perJobMs: {
      mean: latencies.reduce((sum, value) => sum + value, 0) / latencies.length,
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
    },
  };
}

function rounded(figures: Figures): Record<string, unknown> {
  const round = (value: number) => Math.round(value * 1000) / 1000;
  return {
    createPerSecond: round(figures.createPerSecond),
    updatePerSecond: round(figures.updatePerSecond),
    getPerSecond: round(figures.getPerSecond),
    claimPerSecond: round(figures.claimPerSecond),
    listNonTerminalMs: round(figures.listNonTerminalMs),
    jobsPerSecondConcurrent: round(figures.jobsPerSecondConcurrent),
    perJobMs: {
      mean: round(figures.perJobMs.mean),
      p50: round(figures.perJobMs.p50),
      p99: round(figures.perJobMs.p99),
    },
  };
}

async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

async function main(): Promise<void> {
  const redis = new RedisClient(REDIS_URL, { maxRetriesPerRequest: 1 });
  const prefix = `bench:redis-journal:${randomUUID()}`;
  try {
    // Warm both paths (JIT, script cache) before measuring.
    const warmMemory = createMemoryJournal();
    const warmRedis = createRedisJournal({ redis, prefix: `${prefix}:warm` });
    for (let index = 0; index < 50; index++) {
      await oneJob(warmMemory, `warm-${index}`);
      await oneJob(warmRedis, `warm-${index}`);
    }
    const memory = await measure(createMemoryJournal({ maxFinishedJobs: 100_000 }), 'memory');
    const redisFigures = await measure(
      createRedisJournal({ redis, prefix, finishedTtlMs: 600_000 }),
      'redis',
    );
    const round = (value: number) => Math.round(value * 1000) / 1000;
    const rows: Array<[string, number, number]> = [
      ['create / s', memory.createPerSecond, redisFigures.createPerSecond],
      ['update / s', memory.updatePerSecond, redisFigures.updatePerSecond],
      ['get / s', memory.getPerSecond, redisFigures.getPerSecond],
      ['claim / s', memory.claimPerSecond, redisFigures.claimPerSecond],
      [
        `jobs / s (${CONCURRENCY} at once)`,
        memory.jobsPerSecondConcurrent,
        redisFigures.jobsPerSecondConcurrent,
      ],
      [`listNonTerminal (${OPERATIONS} open) ms`, memory.listNonTerminalMs, redisFigures.listNonTerminalMs],
      ['per job, mean ms', memory.perJobMs.mean, redisFigures.perJobMs.mean],
      ['per job, p50 ms', memory.perJobMs.p50, redisFigures.perJobMs.p50],
      ['per job, p99 ms', memory.perJobMs.p99, redisFigures.perJobMs.p99],
    ];
    console.log(
      `journal operations, ${OPERATIONS} each, ${CONCURRENCY} in flight; ${JOBS} jobs one at a time`,
    );
    console.log(
      `${'figure'.padEnd(36)}${'memory'.padStart(14)}${'redis'.padStart(14)}${'redis/memory'.padStart(14)}`,
    );
    for (const [name, memoryValue, redisValue] of rows) {
      console.log(
        `${name.padEnd(36)}${memoryValue.toFixed(3).padStart(14)}${redisValue.toFixed(3).padStart(14)}${(redisValue / memoryValue).toFixed(4).padStart(14)}`,
      );
    }
    const addedPerJobMs = redisFigures.perJobMs.mean - memory.perJobMs.mean;
    console.log(`added latency per job (7 journal calls): ${addedPerJobMs.toFixed(3)} ms mean`);
    console.log(
      `RESULT ${JSON.stringify({
        operations: OPERATIONS,
        jobs: JOBS,
        concurrency: CONCURRENCY,
        memory: rounded(memory),
        redis: rounded(redisFigures),
        ratios: {
          createPerSecond: round(redisFigures.createPerSecond / memory.createPerSecond),
          updatePerSecond: round(redisFigures.updatePerSecond / memory.updatePerSecond),
          getPerSecond: round(redisFigures.getPerSecond / memory.getPerSecond),
          claimPerSecond: round(redisFigures.claimPerSecond / memory.claimPerSecond),
          jobsPerSecondConcurrent: round(
            redisFigures.jobsPerSecondConcurrent / memory.jobsPerSecondConcurrent,
          ),
          perJobMeanMs: round(redisFigures.perJobMs.mean / memory.perJobMs.mean),
        },
        addedPerJobMs: round(addedPerJobMs),
      })}`,
    );
  } finally {
    await deleteKeys(redis, prefix);
    redis.disconnect();
  }
}

await main();
