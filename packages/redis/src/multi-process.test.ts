import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createVirtualClock } from '@comfy-serverless/core/test';
import { type RunpodMock, startRunpodMock } from '@comfy-serverless/runpod/test';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FromWorker, ToWorker, WorkerConfig } from './__fixtures__/journal-worker';
import { connect, deleteKeys, REDIS_URL, uniquePrefix } from './__fixtures__/redis-connection';

const WORKER = fileURLToPath(new URL('./__fixtures__/journal-worker.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const JOBS_PER_PROCESS = 100;
const CONCURRENCY = 20;
const OWNERS = ['host-a', 'host-b', 'host-c'] as const;

interface Worker {
  owner: string;
  child: ChildProcess;
  accepted: Set<string>;
  submitted: Map<string, string>;
  finished: Map<string, { status: string; error?: string }>;
  exited: Promise<void>;
}

/** Waits until `check` holds, polling the event loop; fails with `what` after `timeoutMs`. */
async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

describe('three processes share a Redis journal and a RunPod endpoint', () => {
  let redis: Redis;
  let mock: RunpodMock;
  const prefix = uniquePrefix('multi-process');
  const workers = new Map<string, Worker>();
  const finishedBy = new Map<string, string[]>();
  let reports: Array<Extract<FromWorker, { type: 'report' }>> = [];

  beforeAll(async () => {
    redis = connect();
  });
  afterAll(async () => {
    for (const worker of workers.values()) if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
    await mock?.close();
    await deleteKeys(redis, prefix);
    redis.disconnect();
  });

  it('runs 300 jobs exactly once each when one process is killed mid-run', { timeout: 90_000 }, async () => {
    const clock = createVirtualClock();
    mock = await startRunpodMock({
      clock,
      workersMax: 30,
      coldStartMs: 2_000,
      // Jobs take 5 to 14 s of virtual time; the test moves the clock.
      plan: (input) => {
        const seed = Number(
          (input as { workflow?: Record<string, { inputs?: { seed?: number } }> }).workflow?.['3']?.inputs
            ?.seed ?? 0,
        );
        return { executionMs: 5_000 + (seed % 10) * 1_000 };
      },
      // Rate limits are not under test here, and their windows run on the frozen virtual clock.
      rateLimits: {
        run: { per10s: 100_000, concurrent: 1_000 },
        status: { per10s: 100_000, concurrent: 1_000 },
      },
    });

    const spawn = (owner: string): Worker => {
      const config: WorkerConfig = {
        owner,
        redisUrl: REDIS_URL,
        prefix,
        mockUrl: mock.url,
        endpointId: mock.endpointId,
        apiKey: mock.apiKey,
        claimTtlMs: 10_000,
        takeOverIntervalMs: 1_000,
        concurrency: CONCURRENCY,
      };
      const child = fork(WORKER, [], {
        cwd: ROOT,
        execArgv: ['--import', 'tsx'],
        env: { ...process.env, WORKER_CONFIG: JSON.stringify(config) },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      const worker: Worker = {
        owner,
        child,
        accepted: new Set(),
        submitted: new Map(),
        finished: new Map(),
        exited: new Promise((resolve) => child.once('exit', () => resolve())),
      };
      child.on('message', (message: FromWorker) => {
        if (message.type === 'accepted') for (const jobId of message.jobIds) worker.accepted.add(jobId);
        if (message.type === 'submitted') worker.submitted.set(message.jobId, message.remoteId);
        if (message.type === 'finished') {
          worker.finished.set(message.jobId, {
            status: message.status,
            ...(message.error === undefined ? {} : { error: message.error }),
          });
          finishedBy.set(message.jobId, [...(finishedBy.get(message.jobId) ?? []), owner]);
        }
        if (message.type === 'report') reports.push(message);
      });
      workers.set(owner, worker);
      return worker;
    };
    const send = (worker: Worker, message: ToWorker) => worker.child.send(message);
    const ready = OWNERS.map(
      (owner) =>
        new Promise<void>((resolve) => {
          const worker = spawn(owner);
          worker.child.on('message', (message: FromWorker) => {
            if (message.type === 'ready') resolve();
          });
        }),
    );
    await Promise.all(ready);
    const [hostA, hostB, hostC] = OWNERS.map((owner) => workers.get(owner)!) as [Worker, Worker, Worker];

    // The clock moves only while the test lets it: in steps of at most 500 ms of virtual
    // time, once every open request to the mock is a held long poll, and only while some
    // process is watching a job (so that nothing finishes unobserved for long).
    let paused = false;
    let stopped = false;
    let stepping: Promise<unknown> = Promise.resolve();
    const driver = (async () => {
      while (!stopped) {
        if (paused || mock.heldRequests() === 0) {
          await new Promise((resolve) => setTimeout(resolve, 2));
          continue;
        }
        stepping = mock.step().then(() => clock.advance(500));
        await stepping;
      }
    })();
    const pause = async () => {
      paused = true;
      await stepping;
    };

    // 300 jobs, 100 per process; each is journalled before submit() resolves.
    const allJobIds: string[] = [];
    OWNERS.forEach((owner, index) => {
      const jobs = Array.from({ length: JOBS_PER_PROCESS }, (_, offset) => {
        const seed = index * JOBS_PER_PROCESS + offset;
        return { jobId: `job-${String(seed).padStart(3, '0')}`, seed };
      });
      for (const job of jobs) allJobIds.push(job.jobId);
      send(workers.get(owner)!, { type: 'submit', jobs });
    });
    await until('every job to be accepted', () =>
      [hostA, hostB, hostC].every((worker) => worker.accepted.size === JOBS_PER_PROCESS),
    );

    // Mid-run: let about 60 jobs finish, then stop the clock and wait until host-b is at
    // rest: every slot busy with a job whose RunPod id is journalled, no /run in flight
    // anywhere, and every job the mock finished for host-b seen finished by host-b. Killing
    // it then leaves no job between "sent" and "id journalled" (see the second test).
    await until('60 jobs to finish', () => mock.stats().jobsCompleted >= 60);
    await pause();
    const atRest = () => {
      const stats = mock.stats();
      const submittedEverywhere = [hostA, hostB, hostC].reduce(
        (sum, worker) => sum + worker.submitted.size,
        0,
      );
      if (stats.jobsAccepted !== submittedEverywhere) return false;
      for (const [jobId, remoteId] of hostB.submitted) {
        const status = mock.job(remoteId)?.status;
        if (status !== 'IN_QUEUE' && status !== 'IN_PROGRESS' && !hostB.finished.has(jobId)) return false;
      }
      const busy = hostB.submitted.size - hostB.finished.size;
      return busy === Math.min(CONCURRENCY, JOBS_PER_PROCESS - hostB.finished.size);
    };
    await until('host-b to be at rest', atRest);
    hostB.child.kill('SIGKILL');
    const killedAt = clock.now();
    const runningAtKill = [...hostB.submitted.keys()].filter((jobId) => !hostB.finished.has(jobId));
    const killedWith = {
      at: killedAt,
      runningAtKill,
      finished: hostB.finished.size,
      running: hostB.submitted.size - hostB.finished.size,
      neverSent: JOBS_PER_PROCESS - hostB.submitted.size,
    };
    await hostB.exited;
    expect(killedWith.finished).toBeGreaterThan(0);
    expect(killedWith.running).toBeGreaterThan(0);
    expect(killedWith.neverSent).toBeGreaterThan(0);
    paused = false;

    const finishedCount = () => finishedBy.size;
    await until('every job to finish', () => finishedCount() === allJobIds.length, 50_000);
    // Keep the clock and the take-over passes going a little longer, so that a job taken up
    // twice would show (a second /run, a second result).
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    stopped = true;
    await driver;

    // Every job ended completed, reported by exactly one process.
    const outcomes = allJobIds.map((jobId) => ({
      jobId,
      by: finishedBy.get(jobId) ?? [],
      status: [hostA, hostB, hostC].map((worker) => worker.finished.get(jobId)?.status).find(Boolean),
    }));
    const summary = (list: typeof outcomes) =>
      list.map((outcome) => `${outcome.jobId}:${outcome.by.join('+')}:${outcome.status}`).join(' ');
    expect(summary(outcomes.filter((outcome) => outcome.by.length !== 1))).toBe('');
    const failures = [hostA, hostB, hostC].flatMap((worker) =>
      [...worker.finished]
        .filter(([, outcome]) => outcome.status !== 'completed')
        .map(([jobId, outcome]) => `${worker.owner} ${jobId} ${outcome.status} ${outcome.error}`),
    );
    expect(failures).toEqual([]);

    // The mock ran each job exactly once: 300 accepted, each executed once, all completed.
    const stats = mock.stats();
    const sentBy = new Map<string, string[]>();
    for (const worker of [hostA, hostB, hostC]) {
      for (const jobId of worker.submitted.keys())
        sentBy.set(jobId, [...(sentBy.get(jobId) ?? []), worker.owner]);
    }
    const seeds = new Map<number, number>();
    for (const job of mock.jobs()) {
      const seed = Number(
        (job.input as { workflow: Record<string, { inputs: { seed: number } }> }).workflow['3']!.inputs.seed,
      );
      seeds.set(seed, (seeds.get(seed) ?? 0) + 1);
    }
    const twice = [...seeds]
      .filter(([, sent]) => sent > 1)
      .map(([seed]) => `job-${String(seed).padStart(3, '0')}`);
    if (twice.length > 0) {
      const report = await (async () => {
        reports = [];
        send(hostA, { type: 'report', jobIds: twice });
        await until('a report', () => reports.length === 1);
        return reports[0]!;
      })();
      console.info(
        JSON.stringify({
          killedWith,
          twice: twice.map((jobId) => ({
            jobId,
            sentBy: sentBy.get(jobId),
            b: hostB.submitted.get(jobId),
            c: hostC.submitted.get(jobId),
            bFinished: hostB.finished.has(jobId),
            record: report.records.find((record) => record.jobId === jobId),
            mock: mock
              .jobs()
              .filter((job) => job.id === hostB.submitted.get(jobId) || job.id === hostC.submitted.get(jobId))
              .map((job) => [job.id, job.status, job.submittedAt]),
          })),
        }),
      );
    }
    expect(twice.map((jobId) => `${jobId} sent by ${sentBy.get(jobId)?.join('+')}`).join('; ')).toBe('');
    expect(stats.jobsAccepted).toBe(allJobIds.length);
    expect(Object.values(stats.executions).every((executions) => executions === 1)).toBe(true);
    expect(stats.jobsCompleted).toBe(allJobIds.length);

    // A survivor reads every result from the journal: one RunPod id per job, all distinct,
    // the same ids the mock ran.
    reports = [];
    send(hostA, { type: 'report', jobIds: allJobIds });
    send(hostC, { type: 'report', jobIds: allJobIds });
    await until('the survivors to report', () => reports.length === 2);
    for (const report of reports) {
      expect(report.records).toHaveLength(allJobIds.length);
      expect(report.records.filter((record) => record.status !== 'completed')).toEqual([]);
      expect(report.records.filter((record) => record.remoteIds.length !== 1)).toEqual([]);
      expect(report.records.every((record) => record.outputs === 1)).toBe(true);
      const remoteIds = new Set(report.records.flatMap((record) => record.remoteIds));
      expect(remoteIds).toEqual(new Set(Object.keys(stats.executions)));
    }

    // What happened to host-b's jobs.
    const hostBJobs = allJobIds.slice(JOBS_PER_PROCESS, 2 * JOBS_PER_PROCESS);
    const reattached = hostBJobs.filter(
      (jobId) => hostB.submitted.has(jobId) && !hostB.finished.has(jobId),
    ).length;
    const sentBySurvivors = hostBJobs.filter(
      (jobId) => hostA.submitted.has(jobId) || hostC.submitted.has(jobId),
    ).length;
    expect(reattached).toBe(killedWith.running);
    expect(sentBySurvivors).toBe(killedWith.neverSent);
    expect([...hostBJobs].every((jobId) => !(hostA.submitted.has(jobId) && hostB.submitted.has(jobId)))).toBe(
      true,
    );
    console.info(
      `multi-process: host-b killed with ${killedWith.finished} finished, ${killedWith.running} running, ${killedWith.neverSent} not yet sent; survivors re-attached ${reattached} and sent ${sentBySurvivors}; SubmissionUnknownError: 0`,
    );

    for (const worker of [hostA, hostC]) send(worker, { type: 'close' });
    await Promise.all([hostA.exited, hostC.exited]);
  });
});
