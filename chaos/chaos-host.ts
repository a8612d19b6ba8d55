// One host process of the chaos run: a dispatcher over the Redis journal, RunPod (through a
// fault proxy) and self-hosted ComfyUI servers (each through a fault proxy). The orchestrator
// (run-chaos.ts) starts it with CHAOS_HOST_CONFIG, kills one with SIGKILL mid-run, and starts
// another that resumes from the journal.
import {
  ComfyServerlessError,
  createDispatcher,
  createSelfHosted,
  isTerminalStatus,
  type JobHandle,
} from '@comfy-serverless/core';
import { createAcceleratedClock } from '@comfy-serverless/core/test';
import { createRedisJournal } from '@comfy-serverless/redis';
import { createRunpod } from '@comfy-serverless/runpod';
import { type ChaosJob, chaosPlan, workflowOf } from './chaos-plan';
import { connectRedis } from './redis-client';
import { createSeededRandom } from './seeded-random';

/** What the orchestrator passes in CHAOS_HOST_CONFIG. */
export interface ChaosHostConfig {
  owner: string;
  /** Resume the journal's unfinished jobs before submitting. */
  resume: boolean;
  seed: number;
  jobCount: number;
  redisUrl: string;
  prefix: string;
  /** The shared accelerated clock: `epoch` at real time `realStart`, `speedup` times faster. */
  clock: { speedup: number; epoch: number; realStart: number };
  runpod: { url: string; endpointId: string; apiKey: string };
  comfyServers: string[];
  claimTtlMs: number;
}

/** Messages from the orchestrator: a host waits, loaded, until it is told to start. */
export type ChaosHostCommand = { type: 'start' };

/** Messages to the orchestrator. */
export type ChaosHostMessage =
  | { type: 'loaded'; owner: string }
  | { type: 'ready'; owner: string; resumed: number }
  | { type: 'accepted'; owner: string; jobId: string }
  | { type: 'finished'; owner: string; jobId: string; status: string; errorName?: string; typed: boolean }
  | { type: 'done'; owner: string };

function send(message: ChaosHostMessage): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  // An orchestrator that goes away takes its hosts with it.
  process.on('disconnect', () => process.exit(0));
  const config = JSON.parse(process.env.CHAOS_HOST_CONFIG ?? '{}') as ChaosHostConfig;
  // A standby: its modules are loaded now, its work starts when the orchestrator says so (the
  // restarted host of the run is started ahead, so that its start-up is not part of the outage).
  await new Promise<void>((resolve) => {
    process.on('message', (command: ChaosHostCommand) => {
      if (command.type === 'start') resolve();
    });
    send({ type: 'loaded', owner: config.owner });
  });
  const { speedup, epoch, realStart } = config.clock;
  const clock = createAcceleratedClock(speedup, epoch + (Date.now() - realStart) * speedup);
  const plan = chaosPlan(config.seed, config.jobCount);
  const redis = connectRedis(config.redisUrl);
  const journal = createRedisJournal({ redis, prefix: config.prefix, createClaimTtlMs: config.claimTtlMs });
  // A per-host seed keeps jitter reproducible without two hosts drawing the same numbers.
  const random = createSeededRandom(config.seed ^ (config.resume ? 0x5eed : 0x1));
  const runpod = createRunpod({
    endpointId: config.runpod.endpointId,
    apiKey: config.runpod.apiKey,
    baseURL: `${config.runpod.url}/v2`,
    gpu: 'L4-24GB',
    pricing: { usdPerSecond: 0.0004, billingIncrementSeconds: 1 },
    clock,
    random,
    // Long polls that usually outlast a job: one request per job rather than many.
    statusWaitMs: 60_000,
    maxConcurrency: 400,
  });
  const selfHosted = createSelfHosted({
    servers: config.comfyServers,
    gpu: 'L4-24GB',
    pricing: { usdPerSecond: 0.0004, billingIncrementSeconds: 1 },
    clock,
    maxConcurrency: 400,
    // The websocket carries the events; history polls are the safety net, not the main road.
    watch: { socketPollIntervalMs: 30_000, pollIntervalMs: 2_000 },
  });
  const dispatcher = createDispatcher({
    providers: [runpod, selfHosted],
    journal,
    clock,
    owner: config.owner,
    claimTtlMs: config.claimTtlMs,
    concurrency: { global: 600 },
    retry: { random, minDelayMs: 500, maxDelayMs: 20_000 },
    router: { breaker: { failureThreshold: 20, cooldownMs: 10_000 } },
  });

  const followed = new Set<string>();
  let outstanding = 0;
  let submitting = true;
  const maybeDone = () => {
    if (!submitting && outstanding === 0) send({ type: 'done', owner: config.owner });
  };
  const follow = (handle: JobHandle, job: ChaosJob | undefined) => {
    if (followed.has(handle.id)) return;
    followed.add(handle.id);
    outstanding += 1;
    if (job?.cancelAfterMs !== undefined) {
      clock.setTimeout(() => {
        void handle.cancel('cancelled by the chaos plan').catch(() => {});
      }, job.cancelAfterMs);
    }
    handle
      .result()
      .then(
        () => {
          send({ type: 'finished', owner: config.owner, jobId: handle.id, status: 'completed', typed: true });
        },
        (error: unknown) => {
          send({
            type: 'finished',
            owner: config.owner,
            jobId: handle.id,
            status: handle.status(),
            errorName: error instanceof Error ? error.name : typeof error,
            typed: ComfyServerlessError.isInstance(error),
          });
        },
      )
      .finally(() => {
        outstanding -= 1;
        maybeDone();
      });
  };

  const byId = new Map(plan.jobs.map((job) => [job.jobId, job]));
  let resumed = 0;
  if (config.resume) {
    const handles = await dispatcher.resume();
    resumed = handles.length;
    for (const handle of handles) follow(handle, byId.get(handle.id));
  }
  send({ type: 'ready', owner: config.owner, resumed });

  // Jobs arrive at a steady pace whatever each submission takes, as requests to a backend do.
  const submissions: Array<Promise<void>> = [];
  const submitOne = async (job: ChaosJob) => {
    if (config.resume) {
      const record = await journal.get(job.jobId);
      if (record !== undefined && isTerminalStatus(record.status)) return;
    }
    const handle = await dispatcher.submit(workflowOf(job), { jobId: job.jobId });
    send({ type: 'accepted', owner: config.owner, jobId: job.jobId });
    follow(handle, job);
  };
  for (const job of plan.jobs) {
    if (followed.has(job.jobId)) continue;
    submissions.push(
      submitOne(job).catch((error: unknown) => {
        console.error(`chaos host could not submit ${job.jobId}:`, error);
        process.exit(1);
      }),
    );
    await new Promise<void>((resolve) => clock.setTimeout(() => resolve(), plan.arrivalEveryMs));
  }
  await Promise.all(submissions);
  submitting = false;
  maybeDone();
}

main().catch((error: unknown) => {
  console.error('chaos host failed:', error);
  process.exit(1);
});
