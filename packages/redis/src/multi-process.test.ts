import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createVirtualClock } from '@comfy-serverless/core/test';
import { startRunpodMock } from '@comfy-serverless/runpod/test';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
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
  /** RunPod ids by job id, as reported once journalled. */
  submitted: Map<string, string>;
  finished: Map<string, { status: string; error?: string }>;
  reports: Array<Extract<FromWorker, { type: 'report' }>>;
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

function seedOf(input: unknown): number {
  const workflow = (input as { workflow?: Record<string, { inputs?: { seed?: number } }> }).workflow;
  return Number(workflow?.['3']?.inputs?.seed ?? -1);
}

const jobIdOf = (seed: number) => `job-${String(seed).padStart(3, '0')}`;

/**
 * Three host processes over one Redis journal and one RunPod mock whose clock the test
 * moves: in steps of at most 500 ms of virtual time, once every open request to the mock
 * is a held long poll, and only while some process is watching a job (so that nothing
 * finishes unobserved for long).
 */
async function startCluster(prefix: string, onRun: (seed: number) => void = () => {}) {
  const clock = createVirtualClock();
  const mock = await startRunpodMock({
    clock,
    workersMax: 30,
    coldStartMs: 2_000,
    // Jobs take 5 to 14 s of virtual time.
    plan: (input) => {
      onRun(seedOf(input));
      return { executionMs: 5_000 + (seedOf(input) % 10) * 1_000 };
    },
    // Rate limits are not under test here, and their windows run on the paused virtual clock.
    rateLimits: {
      run: { per10s: 100_000, concurrent: 1_000 },
      status: { per10s: 100_000, concurrent: 1_000 },
    },
  });
  const workers = new Map<string, Worker>();
  const finishedBy = new Map<string, string[]>();

  const spawn = (owner: string) =>
    new Promise<Worker>((resolve) => {
      const config: WorkerConfig = {
        owner,
        redisUrl: REDIS_URL,
        prefix,
        mockUrl: mock.url,
        endpointId: mock.endpointId,
        apiKey: mock.apiKey,
        // Long enough that a live process starved of CPU keeps its claims.
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
        reports: [],
        exited: new Promise((done) => child.once('exit', () => done())),
      };
      child.on('message', (message: FromWorker) => {
        if (message.type === 'ready') resolve(worker);
        if (message.type === 'accepted') for (const jobId of message.jobIds) worker.accepted.add(jobId);
        if (message.type === 'submitted') worker.submitted.set(message.jobId, message.remoteId);
        if (message.type === 'finished') {
          worker.finished.set(message.jobId, {
            status: message.status,
            ...(message.error === undefined ? {} : { error: message.error }),
          });
          finishedBy.set(message.jobId, [...(finishedBy.get(message.jobId) ?? []), owner]);
        }
        if (message.type === 'report') worker.reports.push(message);
      });
      workers.set(owner, worker);
    });
  const [hostA, hostB, hostC] = await Promise.all(OWNERS.map(spawn));

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

  const send = (worker: Worker, message: ToWorker) => worker.child.send(message);
  const allJobIds: string[] = [];
  const jobsOf = new Map<string, string[]>();

  return {
    clock,
    mock,
    hostA: hostA!,
    hostB: hostB!,
    hostC: hostC!,
    finishedBy,
    allJobIds,
    jobsOf,
    /** Sends 100 jobs to each process; resolves once every one is journalled. */
    async submitAll() {
      OWNERS.forEach((owner, index) => {
        const jobs = Array.from({ length: JOBS_PER_PROCESS }, (_, offset) => {
          const seed = index * JOBS_PER_PROCESS + offset;
          return { jobId: jobIdOf(seed), seed };
        });
        jobsOf.set(
          owner,
          jobs.map((job) => job.jobId),
        );
        for (const job of jobs) allJobIds.push(job.jobId);
        send(workers.get(owner)!, { type: 'submit', jobs });
      });
      await until('every job to be accepted', () =>
        [...workers.values()].every((worker) => worker.accepted.size === JOBS_PER_PROCESS),
      );
    },
    async pause() {
      paused = true;
      await stepping;
    },
    resume() {
      paused = false;
    },
    /** Waits until every job has a final outcome, then a little longer so that a job taken up twice would show. */
    async finish() {
      await until('every job to finish', () => finishedBy.size === allJobIds.length, 50_000);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      stopped = true;
      await driver;
    },
    /** The journal's records of `jobIds`, as one process reads them. */
    async report(worker: Worker, jobIds: string[]) {
      worker.reports = [];
      send(worker, { type: 'report', jobIds });
      await until(`${worker.owner} to report`, () => worker.reports.length === 1);
      return worker.reports[0]!.records;
    },
    /** How many RunPod jobs carry each of our job ids. */
    sentToRunpod() {
      const sent = new Map<string, number>();
      for (const job of mock.jobs()) {
        const jobId = jobIdOf(seedOf(job.input));
        sent.set(jobId, (sent.get(jobId) ?? 0) + 1);
      }
      return sent;
    },
    async close() {
      stopped = true;
      await driver;
      for (const worker of workers.values()) if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
      await Promise.all([...workers.values()].map((worker) => worker.exited));
      await mock.close();
    },
  };
}

describe('three processes share a Redis journal and a RunPod endpoint', () => {
  let redis: Redis;
  let cluster: Awaited<ReturnType<typeof startCluster>> | undefined;
  const prefixes: string[] = [];
  beforeAll(() => {
    redis = connect();
  });
  afterEach(async () => {
    await cluster?.close();
    cluster = undefined;
  });
  afterAll(async () => {
    for (const prefix of prefixes) await deleteKeys(redis, prefix);
    redis.disconnect();
  });

  it('runs 300 jobs exactly once each when one process is killed mid-run', { timeout: 90_000 }, async () => {
    const prefix = uniquePrefix('multi-process');
    prefixes.push(prefix);
    cluster = await startCluster(prefix);
    const { mock, hostA, hostB, hostC, finishedBy, allJobIds } = cluster;
    await cluster.submitAll();

    // Mid-run: let about 60 jobs finish, then stop the clock and wait until host-b is at
    // rest: every slot busy with a job whose RunPod id is journalled, no /run in flight
    // anywhere, and every job the mock finished for host-b seen finished by host-b. Killing
    // it then leaves no job between "sent" and "id journalled" (the next test kills it there).
    await until('60 jobs to finish', () => mock.stats().jobsCompleted >= 60);
    await cluster.pause();
    const atRest = () => {
      const submittedEverywhere = hostA.submitted.size + hostB.submitted.size + hostC.submitted.size;
      if (mock.stats().jobsAccepted !== submittedEverywhere) return false;
      for (const [jobId, remoteId] of hostB.submitted) {
        const status = mock.job(remoteId)?.status;
        if (status !== 'IN_QUEUE' && status !== 'IN_PROGRESS' && !hostB.finished.has(jobId)) return false;
      }
      const busy = hostB.submitted.size - hostB.finished.size;
      return busy === Math.min(CONCURRENCY, JOBS_PER_PROCESS - hostB.finished.size);
    };
    await until('host-b to be at rest', atRest);
    hostB.child.kill('SIGKILL');
    const killedWith = {
      finished: hostB.finished.size,
      running: hostB.submitted.size - hostB.finished.size,
      neverSent: JOBS_PER_PROCESS - hostB.submitted.size,
    };
    await hostB.exited;
    expect(killedWith.finished).toBeGreaterThan(0);
    expect(killedWith.running).toBeGreaterThan(0);
    expect(killedWith.neverSent).toBeGreaterThan(0);
    cluster.resume();
    await cluster.finish();

    // Every job ended completed, reported by exactly one process.
    const twiceReported = allJobIds
      .filter((jobId) => (finishedBy.get(jobId) ?? []).length !== 1)
      .map((jobId) => `${jobId}:${finishedBy.get(jobId)?.join('+')}`);
    expect(twiceReported).toEqual([]);
    const failures = [hostA, hostB, hostC].flatMap((worker) =>
      [...worker.finished]
        .filter(([, outcome]) => outcome.status !== 'completed')
        .map(([jobId, outcome]) => `${worker.owner} ${jobId} ${outcome.status} ${outcome.error}`),
    );
    expect(failures).toEqual([]);

    // The mock ran each job exactly once: 300 accepted, each executed once, all completed.
    const sentTwice = [...cluster.sentToRunpod()].filter(([, count]) => count !== 1).map(([jobId]) => jobId);
    expect(sentTwice).toEqual([]);
    const stats = mock.stats();
    expect(stats.jobsAccepted).toBe(allJobIds.length);
    expect(Object.values(stats.executions).every((executions) => executions === 1)).toBe(true);
    expect(stats.jobsCompleted).toBe(allJobIds.length);

    // Each survivor reads every result from the journal: one RunPod id per job, all
    // distinct, the very jobs the mock ran.
    for (const survivor of [hostA, hostC]) {
      const records = await cluster.report(survivor, allJobIds);
      expect(records).toHaveLength(allJobIds.length);
      expect(records.filter((record) => record.status !== 'completed')).toEqual([]);
      expect(records.filter((record) => record.remoteIds.length !== 1)).toEqual([]);
      expect(records.every((record) => record.outputs === 1)).toBe(true);
      expect(new Set(records.flatMap((record) => record.remoteIds))).toEqual(
        new Set(Object.keys(stats.executions)),
      );
    }

    // host-b's running jobs were re-attached, its unsent ones sent by a survivor.
    const hostBJobs = cluster.jobsOf.get('host-b')!;
    const reattached = hostBJobs.filter((jobId) => hostB.submitted.has(jobId) && !hostB.finished.has(jobId));
    const sentBySurvivors = hostBJobs.filter(
      (jobId) => hostA.submitted.has(jobId) || hostC.submitted.has(jobId),
    );
    expect(reattached).toHaveLength(killedWith.running);
    expect(sentBySurvivors).toHaveLength(killedWith.neverSent);
    console.info(
      `multi-process: host-b killed with ${killedWith.finished} finished, ${killedWith.running} running, ${killedWith.neverSent} not yet sent; survivors re-attached ${reattached.length} and sent ${sentBySurvivors.length}; SubmissionUnknownError: 0`,
    );
  });

  it('never runs a job twice when a process dies while sending jobs, and says which it cannot vouch for', {
    timeout: 90_000,
  }, async () => {
    const prefix = uniquePrefix('multi-process-burst');
    prefixes.push(prefix);
    // host-b sends its first 20 jobs at once. The mock kills it while it accepts the third
    // of them: RunPod has that job, host-b never learns its id. Other jobs of host-b are in
    // flight at that moment too, each somewhere between "intent journalled" and "id journalled".
    let hostB: Worker | undefined;
    let accepted = 0;
    let killedOn: string | undefined;
    cluster = await startCluster(prefix, (seed) => {
      if (seed < JOBS_PER_PROCESS || seed >= 2 * JOBS_PER_PROCESS || killedOn !== undefined) return;
      accepted += 1;
      if (accepted === 3) {
        killedOn = jobIdOf(seed);
        hostB?.child.kill('SIGKILL');
      }
    });
    hostB = cluster.hostB;
    const { mock, hostA, hostC, finishedBy, allJobIds } = cluster;
    await cluster.submitAll();
    await until('host-b to be killed', () => killedOn !== undefined);
    const journalledBeforeKill = new Set(hostB.submitted.keys());
    await hostB.exited;
    await cluster.finish();

    // Nothing is lost: every job has a final outcome.
    expect(allJobIds.filter((jobId) => !finishedBy.has(jobId))).toEqual([]);
    // Nothing runs twice: RunPod saw each job at most once.
    const sent = cluster.sentToRunpod();
    expect([...sent].filter(([, count]) => count > 1)).toEqual([]);
    expect(Object.values(mock.stats().executions).every((executions) => executions <= 1)).toBe(true);

    const outcomes = [hostA, hostC].flatMap((worker) => [...worker.finished]);
    const unknown = outcomes.filter(([, outcome]) => outcome.error?.startsWith('SubmissionUnknownError'));
    const otherFailures = outcomes.filter(
      ([, outcome]) => outcome.status !== 'completed' && !outcome.error?.startsWith('SubmissionUnknownError'),
    );
    expect(otherFailures).toEqual([]);
    // The job RunPod accepted as host-b died is one of them; only jobs host-b was sending
    // when it died can be unknown, and every other job completed.
    expect(unknown.map(([jobId]) => jobId)).toContain(killedOn);
    const hostBJobs = cluster.jobsOf.get('host-b')!;
    for (const [jobId] of unknown) {
      expect(hostBJobs).toContain(jobId);
      expect(journalledBeforeKill.has(jobId)).toBe(false);
    }
    const records = await cluster.report(hostA, allJobIds);
    expect(records.filter((record) => record.status === 'completed')).toHaveLength(
      allJobIds.length - unknown.length,
    );
    // Of the unknown ones, those RunPod had accepted ran with nobody following them.
    const ranUnfollowed = unknown.filter(([jobId]) => (sent.get(jobId) ?? 0) === 1).length;
    console.info(
      `multi-process (killed while sending): ${unknown.length} of host-b's ${CONCURRENCY} jobs in flight ended SubmissionUnknownError (${ranUnfollowed} of them had reached RunPod and ran unobserved, ${unknown.length - ranUnfollowed} never reached it); ${allJobIds.length - unknown.length} completed exactly once`,
    );
  });
});
