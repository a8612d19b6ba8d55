// One host process of the multi-process test: a dispatcher over the shared Redis journal
// and the RunPod mock. The test drives it over IPC and kills it with SIGKILL.
import { createDispatcher, isTerminalStatus } from '@comfy-serverless/core';
import { createRunpod } from '@comfy-serverless/runpod';
import { Redis } from 'ioredis';
import { createRedisJournal } from '../redis-journal';

/** What the test passes in the `WORKER_CONFIG` environment variable. */
export interface WorkerConfig {
  owner: string;
  redisUrl: string;
  prefix: string;
  mockUrl: string;
  endpointId: string;
  apiKey: string;
  claimTtlMs: number;
  takeOverIntervalMs: number;
  concurrency: number;
}

/** Messages from the test. */
export type ToWorker =
  | { type: 'submit'; jobs: Array<{ jobId: string; seed: number }> }
  | { type: 'report'; jobIds: string[] }
  | { type: 'close' };

/** Messages to the test. */
export type FromWorker =
  | { type: 'ready'; owner: string }
  | { type: 'accepted'; owner: string; jobIds: string[] }
  | { type: 'submitted'; owner: string; jobId: string; remoteId: string }
  | { type: 'finished'; owner: string; jobId: string; status: string; error?: string }
  | {
      type: 'report';
      owner: string;
      records: Array<{ jobId: string; status: string; remoteIds: string[]; outputs: number }>;
    };

export function workflowFor(seed: number) {
  return {
    '3': { class_type: 'KSampler', inputs: { seed, steps: 20, model: ['4', 0] } },
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd_xl_base_1.0.safetensors' } },
    '9': { class_type: 'SaveImage', inputs: { filename_prefix: `job-${seed}`, images: ['3', 0] } },
  };
}

async function main(): Promise<void> {
  const config = JSON.parse(process.env.WORKER_CONFIG ?? '{}') as WorkerConfig;
  const send = (message: FromWorker) => process.send?.(message);
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 3 });
  const journal = createRedisJournal({
    redis,
    prefix: config.prefix,
    createClaimTtlMs: config.claimTtlMs,
  });
  const provider = createRunpod({
    endpointId: config.endpointId,
    apiKey: config.apiKey,
    baseURL: config.mockUrl,
    gpu: 'RTX4090-24GB',
  });
  const dispatcher = createDispatcher({
    providers: [provider],
    journal,
    owner: config.owner,
    claimTtlMs: config.claimTtlMs,
    concurrency: { perProvider: config.concurrency },
    retry: { random: () => 0.5, minDelayMs: 50, maxDelayMs: 500 },
  });
  dispatcher.events.on('job:submitted', (event) =>
    send({ type: 'submitted', owner: config.owner, jobId: event.jobId, remoteId: event.remoteId }),
  );
  dispatcher.events.on('job:completed', (event) =>
    send({ type: 'finished', owner: config.owner, jobId: event.jobId, status: 'completed' }),
  );
  dispatcher.events.on('job:failed', (event) =>
    send({
      type: 'finished',
      owner: config.owner,
      jobId: event.jobId,
      status: 'failed',
      error: `${event.error.name}: ${event.error.message}`,
    }),
  );
  dispatcher.events.on('job:cancelled', (event) =>
    send({ type: 'finished', owner: config.owner, jobId: event.jobId, status: 'cancelled' }),
  );
  dispatcher.events.on('job:timed_out', (event) =>
    send({ type: 'finished', owner: config.owner, jobId: event.jobId, status: 'timed_out' }),
  );

  // The take-over loop (what the dispatcher's takeOverIntervalMs does) starts once this
  // process's own jobs are accepted: a resume() pass running while submit() is between
  // journal.create and starting the job can start the same job a second time in this
  // process (a race in the dispatcher, reported), which this test is not about.
  let takingOver = false;
  const takeOver = () => {
    if (takingOver) return;
    takingOver = true;
    const pass = () => {
      setTimeout(() => {
        dispatcher
          .resume()
          .catch((error: unknown) => console.error(`[${config.owner}] resume`, error))
          .finally(pass);
      }, config.takeOverIntervalMs).unref();
    };
    pass();
  };

  process.on('message', (message: ToWorker) => {
    void (async () => {
      if (message.type === 'submit') {
        // submit() resolves once the job is journalled; the result comes as an event.
        const handles = await Promise.all(
          message.jobs.map(({ jobId, seed }) => dispatcher.submit(workflowFor(seed), { jobId })),
        );
        for (const handle of handles) handle.result().catch(() => {});
        send({ type: 'accepted', owner: config.owner, jobIds: message.jobs.map((job) => job.jobId) });
        takeOver();
      } else if (message.type === 'report') {
        const records = await Promise.all(message.jobIds.map((jobId) => dispatcher.get(jobId)));
        send({
          type: 'report',
          owner: config.owner,
          records: records.flatMap((record) =>
            record === undefined
              ? []
              : [
                  {
                    jobId: record.jobId,
                    status: record.status,
                    remoteIds: record.attempts.flatMap((attempt) =>
                      attempt.remote ? [attempt.remote.remoteId] : [],
                    ),
                    outputs: isTerminalStatus(record.status) ? (record.result?.outputs.length ?? 0) : 0,
                  },
                ],
          ),
        });
      } else if (message.type === 'close') {
        dispatcher.close();
        await redis.quit();
        process.exit(0);
      }
    })().catch((error: unknown) => {
      console.error(`[${config.owner}]`, error);
      process.exit(1);
    });
  });
  send({ type: 'ready', owner: config.owner });
}

void main();
