// The chaos run: 1,000 jobs through the dispatcher over the RunPod mock and fake ComfyUI
// servers, each behind a seeded fault proxy, with one outage and one host crash. Run it
// alone with `node --import tsx chaos/run-chaos.ts` (CHAOS_SEED=<n> replays a run).
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isTerminalStatus, type JobRecord } from '@comfy-serverless/core';
import {
  createAcceleratedClock,
  type FakeComfyServer,
  startFakeComfyServer,
} from '@comfy-serverless/core/test';
import { createRedisJournal } from '@comfy-serverless/redis';
import { type RunpodMock, startRunpodMock } from '@comfy-serverless/runpod/test';
import type { ChaosHostCommand, ChaosHostConfig, ChaosHostMessage } from './chaos-host';
import { chaosPlan, jobIdOfWorkflow, PRESENT_CHECKPOINT } from './chaos-plan';
import { type FaultCounts, type FaultProxy, type FaultRates, startFaultProxy } from './fault-proxy';
import { connectRedis } from './redis-client';

/** Options of `runChaos`. */
export interface ChaosOptions {
  /** @default CHAOS_SEED (`random` draws one, printed), else 42 so that CI is repeatable */
  seed?: number;
  /** @default 1000 */
  jobCount?: number;
  /** How much faster than real time the shared clock runs. @default 50 */
  speedup?: number;
  /** @default the issue's mix: 10 % 5xx, 5 % 429, 2 % resets, 2 % slow, 1 % truncated */
  rates?: FaultRates;
  /** Length of the outage, clock ms. @default 30000 */
  outageMs?: number;
  /** Kill a host mid-run and resume in a new one. @default true */
  crash?: boolean;
  /** @default 'redis://127.0.0.1:6379' */
  redisUrl?: string;
  /** Fake ComfyUI servers behind the self-hosted provider. @default 4 */
  comfyServers?: number;
  /** Real ms to wait for every job to end. @default 150000 */
  timeoutMs?: number;
  /** Progress lines. @default silent */
  log?: (line: string) => void;
}

/** One job that ran more than once, with where. */
export interface DoubleExecution {
  jobId: string;
  runpodExecutions: number;
  comfyExecutions: number;
  status: string;
  /** The journalled attempts: provider, remote id, and how each ended. */
  attempts: string[];
  /** The RunPod mock's jobs of this job: id, status, worker starts. */
  runpodJobs: string[];
}

/** What a chaos run found. */
export interface ChaosReport {
  seed: number;
  jobCount: number;
  realMs: number;
  /** Jobs by final status in the journal. */
  byStatus: Record<string, number>;
  /** Failed, cancelled and timed out jobs by error name. */
  byError: Record<string, number>;
  /** Jobs with no record or no terminal status at the end. */
  lost: string[];
  /** Jobs that ended with an error that is not one of ours. */
  untyped: Array<{ jobId: string; name: string }>;
  /** Completed jobs without any output. */
  emptyResults: string[];
  /** Jobs that planned to fail (missing model) but did not end failed, or did not plan to and did. */
  doubleExecutions: DoubleExecution[];
  executions: { runpod: number; comfy: number; comfyUnattributed: number };
  faults: Record<string, FaultCounts>;
  crash: { killedAfterAccepted: number; resumedJobs: number } | undefined;
  outage: { provider: string; clockMs: number; afterAccepted: number };
  submissionsUnknown: number;
  /** SubmissionUnknownError jobs by the provider they were being sent to. */
  unknownByProvider: Record<string, number>;
}

const TYPED_ERRORS = new Set([
  'ApiCallError',
  'InvalidResponseError',
  'ComfyValidationError',
  'ComfyExecutionError',
  'JobFailedError',
  'JobCancelledError',
  'JobTimeoutError',
  'JobExpiredError',
  'NoProviderError',
  'PayloadTooLargeError',
  'ConfigurationError',
  'SubmissionUnknownError',
  'WorkflowValidationError',
]);

const HOST = fileURLToPath(new URL('./chaos-host.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const TSCONFIG = fileURLToPath(new URL('./tsconfig.json', import.meta.url));

/** The issue's fault mix. */
export const DEFAULT_RATES: FaultRates = {
  serverError: 0.1,
  rateLimit: 0.05,
  resetBefore: 0.01,
  resetAfter: 0.01,
  slow: 0.02,
  truncate: 0.01,
};

function add(target: Record<string, number>, key: string, amount = 1): void {
  target[key] = (target[key] ?? 0) + amount;
}

/** Runs a chaos run and reports what happened; it throws only when the run itself breaks. */
export async function runChaos(options: ChaosOptions = {}): Promise<ChaosReport> {
  const seedSetting = process.env.CHAOS_SEED;
  const seed =
    options.seed ??
    (seedSetting === 'random' ? Math.floor(Math.random() * 2 ** 31) : Number(seedSetting ?? 42));
  const jobCount = options.jobCount ?? 1_000;
  const speedup = options.speedup ?? 50;
  const outageMs = options.outageMs ?? 30_000;
  const rates = options.rates ?? DEFAULT_RATES;
  const redisUrl = options.redisUrl ?? 'redis://127.0.0.1:6379';
  const log = options.log ?? (() => {});
  const plan = chaosPlan(seed, jobCount);
  const realStart = Date.now();
  const epoch = realStart;
  const clock = createAcceleratedClock(speedup, epoch);
  const prefix = `chaos:${seed}:${realStart}`;
  // Renewed every third of this on the clock; the restarted host keeps the owner's name, so a
  // long claim does not slow the take-over.
  const claimTtlMs = 300_000;
  log(`chaos seed ${seed} (replay with CHAOS_SEED=${seed}), ${jobCount} jobs, clock x${speedup}`);

  const redis = connectRedis(redisUrl);
  const journal = createRedisJournal({ redis, prefix });
  const closers: Array<() => Promise<unknown> | unknown> = [() => redis.quit()];
  const children = new Set<ChildProcess>();
  try {
    const failingIds = new Set(plan.jobs.filter((job) => job.failing).map((job) => job.jobId));
    const runpod: RunpodMock = await startRunpodMock({
      clock,
      workersMax: 80,
      workersMin: 4,
      coldStartMs: 5_000,
      idleTimeoutSeconds: 10,
      models: { checkpoints: [PRESENT_CHECKPOINT] },
      rateLimits: {
        run: { per10s: 1_000_000, concurrent: 100_000 },
        status: { per10s: 1_000_000, concurrent: 100_000 },
      },
      plan: (input) => {
        const jobId = jobIdOfWorkflow((input as { workflow?: unknown } | null)?.workflow);
        const job =
          jobId === undefined ? undefined : plan.jobs.find((candidate) => candidate.jobId === jobId);
        // Failing jobs go through the worker-comfyui emulation, which refuses the missing model.
        if (job === undefined || failingIds.has(job.jobId)) return undefined;
        return { executionMs: job.executionMs };
      },
    });
    closers.push(() => runpod.close());
    const comfyCount = options.comfyServers ?? 4;
    const comfies: FakeComfyServer[] = [];
    for (let index = 0; index < comfyCount; index++) {
      const server = await startFakeComfyServer({ clock, stepMs: 250, steps: 4 });
      comfies.push(server);
      closers.push(() => server.close());
    }
    const proxyOf = async (target: string, salt: number) => {
      const proxy = await startFaultProxy({ target, seed: seed * 31 + salt, rates, clock, slowMs: 3_000 });
      closers.push(() => proxy.close());
      return proxy;
    };
    const runpodProxy = await proxyOf(runpod.url, 0);
    const comfyProxies: FaultProxy[] = [];
    for (const [index, server] of comfies.entries()) comfyProxies.push(await proxyOf(server.url, index + 1));

    const accepted = new Set<string>();
    const finishedInHosts = new Map<string, string>();
    let outageStarted = false;
    let crashed: { killedAfterAccepted: number; resumedJobs: number } | undefined;
    let done: (() => void) | undefined;
    const allDone = new Promise<void>((resolve) => {
      done = resolve;
    });
    let crashRequested: (() => void) | undefined;
    const crashPoint = new Promise<void>((resolve) => {
      crashRequested = resolve;
    });

    const spawnHost = (owner: string, resume: boolean): { child: ChildProcess; loaded: Promise<void> } => {
      const config: ChaosHostConfig = {
        owner,
        resume,
        seed,
        jobCount,
        redisUrl,
        prefix,
        clock: { speedup, epoch, realStart },
        runpod: { url: runpodProxy.url, endpointId: runpod.endpointId, apiKey: runpod.apiKey },
        comfyServers: comfyProxies.map((proxy) => proxy.url),
        claimTtlMs,
      };
      const child = fork(HOST, [], {
        cwd: ROOT,
        execArgv: ['--import', 'tsx'],
        env: { ...process.env, CHAOS_HOST_CONFIG: JSON.stringify(config), TSX_TSCONFIG_PATH: TSCONFIG },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      children.add(child);
      child.on('exit', () => children.delete(child));
      let markLoaded: () => void = () => {};
      const loaded = new Promise<void>((resolve) => {
        markLoaded = resolve;
      });
      child.on('message', (message: ChaosHostMessage) => {
        if (message.type === 'loaded') markLoaded();
        if (message.type === 'ready' && resume && crashed) crashed.resumedJobs = message.resumed;
        if (message.type === 'accepted') {
          accepted.add(message.jobId);
          if (!outageStarted && accepted.size >= plan.outageAfterAccepted) {
            outageStarted = true;
            const proxies = plan.outageOf === 'runpod' ? [runpodProxy] : comfyProxies;
            for (const proxy of proxies) proxy.startOutage(outageMs);
            log(`outage of ${plan.outageOf} for ${outageMs} clock ms after ${accepted.size} jobs`);
          }
          if (options.crash !== false && !resume && accepted.size >= plan.crashAfterAccepted)
            crashRequested?.();
        }
        if (message.type === 'finished') finishedInHosts.set(message.jobId, message.status);
        if (message.type === 'done') done?.();
      });
      return { child, loaded };
    };
    const start = (child: ChildProcess) => child.send({ type: 'start' } satisfies ChaosHostCommand);

    const progress = setInterval(() => {
      log(
        `  ${((Date.now() - realStart) / 1000).toFixed(1)} s: ${accepted.size} accepted, ${finishedInHosts.size} ended`,
      );
    }, 10_000);
    closers.push(() => clearInterval(progress));
    const { child: first, loaded: firstLoaded } = spawnHost('chaos-host', false);
    // The replacement is loaded beside it and waits, as a standby replica would.
    const standby = options.crash === false ? undefined : spawnHost('chaos-host', true);
    await Promise.all([firstLoaded, standby?.loaded]);
    const firstExit = new Promise<number | null>((resolve) => first.once('exit', (code) => resolve(code)));
    start(first);
    if (options.crash !== false) {
      const outcome = await Promise.race([
        crashPoint.then(() => 'crash' as const),
        allDone.then(() => 'done' as const),
      ]);
      if (outcome === 'crash') {
        first.kill('SIGKILL');
        await firstExit;
        crashed = { killedAfterAccepted: accepted.size, resumedJobs: 0 };
        log(`host killed with SIGKILL after ${accepted.size} jobs were accepted; starting a new one`);
        // The new host takes the same name, as a restarted machine would: its claims are its own.
        if (standby !== undefined) start(standby.child);
      }
    }

    const timeoutMs = options.timeoutMs ?? 150_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await Promise.race([
      allDone.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) log(`not every job ended within ${timeoutMs} ms; reporting what is there`);
    for (const child of children) child.kill('SIGKILL');

    // ---- what happened --------------------------------------------------------------
    const byStatus: Record<string, number> = {};
    const byError: Record<string, number> = {};
    const lost: string[] = [];
    const untyped: ChaosReport['untyped'] = [];
    const emptyResults: string[] = [];
    const records = new Map<string, JobRecord>();
    let submissionsUnknown = 0;
    const unknownByProvider: Record<string, number> = {};
    for (const job of plan.jobs) {
      const record = await journal.get(job.jobId);
      if (record === undefined || !isTerminalStatus(record.status)) {
        lost.push(job.jobId);
        add(byStatus, record?.status ?? 'missing');
        continue;
      }
      records.set(job.jobId, record);
      add(byStatus, record.status);
      if (record.status === 'completed') {
        if ((record.result?.outputs.length ?? 0) === 0) emptyResults.push(job.jobId);
        continue;
      }
      const name = record.error?.name ?? 'none';
      add(byError, name);
      if (name === 'SubmissionUnknownError') {
        submissionsUnknown += 1;
        add(unknownByProvider, (record.error?.providerId ?? 'unknown').split(':')[0] ?? 'unknown');
      }
      if (!TYPED_ERRORS.has(name)) untyped.push({ jobId: job.jobId, name });
    }

    const runpodJobsOf = new Map<string, string[]>();
    const executions = new Map<string, { runpod: number; comfy: number }>();
    const countOf = (jobId: string) => {
      const entry = executions.get(jobId) ?? { runpod: 0, comfy: 0 };
      executions.set(jobId, entry);
      return entry;
    };
    let runpodTotal = 0;
    for (const mockJob of runpod.jobs()) {
      const jobId = jobIdOfWorkflow((mockJob.input as { workflow?: unknown } | null)?.workflow);
      runpodTotal += mockJob.executions;
      if (jobId !== undefined) {
        countOf(jobId).runpod += mockJob.executions;
        runpodJobsOf.set(jobId, [
          ...(runpodJobsOf.get(jobId) ?? []),
          `${mockJob.id} ${mockJob.status} x${mockJob.executions}`,
        ]);
      }
    }
    let comfyTotal = 0;
    let comfyUnattributed = 0;
    for (const server of comfies) {
      const history = (await (await fetch(`${server.url}/history`)).json()) as Record<
        string,
        { prompt?: unknown[] }
      >;
      const entries = Object.values(history);
      comfyTotal += server.stats.executions;
      // History keeps one entry per prompt id: runs beyond that re-ran a prompt id already run.
      comfyUnattributed += Math.max(0, server.stats.executions - entries.length);
      for (const entry of entries) {
        const jobId = jobIdOfWorkflow(entry.prompt?.[2]);
        if (jobId !== undefined) countOf(jobId).comfy += 1;
      }
    }
    const doubleExecutions: DoubleExecution[] = [];
    for (const [jobId, entry] of executions) {
      if (entry.runpod + entry.comfy > 1) {
        doubleExecutions.push({
          jobId,
          runpodExecutions: entry.runpod,
          comfyExecutions: entry.comfy,
          status: records.get(jobId)?.status ?? 'unfinished',
          runpodJobs: runpodJobsOf.get(jobId) ?? [],
          attempts: (records.get(jobId)?.attempts ?? []).map(
            (attempt) =>
              `${attempt.providerId} ${attempt.remote?.remoteId ?? '(no reference)'}${
                attempt.error ? ` ${attempt.error.name}: ${attempt.error.message.slice(0, 160)}` : ''
              }`,
          ),
        });
      }
    }

    const faults: Record<string, FaultCounts> = { runpod: runpodProxy.counts() };
    for (const [index, proxy] of comfyProxies.entries()) faults[`comfy-${index}`] = proxy.counts();
    return {
      seed,
      jobCount,
      realMs: Date.now() - realStart,
      byStatus,
      byError,
      lost,
      untyped,
      emptyResults,
      doubleExecutions,
      executions: { runpod: runpodTotal, comfy: comfyTotal, comfyUnattributed },
      faults,
      crash: crashed,
      outage: { provider: plan.outageOf, clockMs: outageMs, afterAccepted: plan.outageAfterAccepted },
      submissionsUnknown,
      unknownByProvider,
    };
  } finally {
    // Hosts are gone before their keys are deleted, so that none writes after the clean-up.
    await Promise.all(
      [...children].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGKILL');
          }),
      ),
    );
    const keys = await redis.keys(`${prefix}*`).catch(() => [] as string[]);
    if (keys.length > 0) await redis.del(...keys).catch(() => 0);
    for (const close of closers.reverse()) await Promise.resolve(close()).catch(() => {});
  }
}

/** The report as lines for people. */
export function formatReport(report: ChaosReport): string {
  const faultTotals: Record<string, number> = {};
  for (const counts of Object.values(report.faults))
    for (const [kind, value] of Object.entries(counts)) add(faultTotals, kind, value);
  const lines = [
    `chaos seed ${report.seed}: ${report.jobCount} jobs in ${(report.realMs / 1000).toFixed(1)} s`,
    `  ended: ${Object.entries(report.byStatus)
      .map(([status, count]) => `${status} ${count}`)
      .join(', ')}`,
    `  errors: ${
      Object.entries(report.byError)
        .map(([name, count]) => `${name} ${count}`)
        .join(', ') || 'none'
    }`,
    `  lost ${report.lost.length}, untyped errors ${report.untyped.length}, completed without outputs ${report.emptyResults.length}`,
    `  executions: runpod ${report.executions.runpod}, comfy ${report.executions.comfy} (${report.executions.comfyUnattributed} re-runs of a prompt id on one server); jobs run more than once: ${report.doubleExecutions.length}`,
    `  requests by fault: ${Object.entries(faultTotals)
      .map(([kind, count]) => `${kind} ${count}`)
      .join(', ')}`,
    `  outage: ${report.outage.provider} for ${report.outage.clockMs} clock ms after ${report.outage.afterAccepted} jobs`,
    `  SubmissionUnknownError (sent, then the answer or the host was lost): ${
      Object.entries(report.unknownByProvider)
        .map(([provider, count]) => `${provider} ${count}`)
        .join(', ') || 'none'
    }`,
    `  crash: ${report.crash ? `host killed after ${report.crash.killedAfterAccepted} accepted, ${report.crash.resumedJobs} resumed by the new host` : 'none'}`,
    `  replay: CHAOS_SEED=${report.seed}`,
  ];
  for (const double of report.doubleExecutions.slice(0, 10))
    lines.push(
      `  twice: ${double.jobId} runpod ${double.runpodExecutions} comfy ${double.comfyExecutions} (${double.status}); attempts: ${double.attempts.join(' | ')}${
        double.runpodJobs.length > 0 ? `; RunPod jobs: ${double.runpodJobs.join(', ')}` : ''
      }`,
    );
  return lines.join('\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  runChaos({ log: (line) => console.log(line) }).then(
    (report) => {
      console.log(formatReport(report));
      console.log(`RESULT ${JSON.stringify({ ...report, lost: report.lost.length })}`);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
