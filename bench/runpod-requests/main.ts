// HTTP requests per completed RunPod job: our provider against runpod-sdk 1.1.2 used the two
// ways its users use it (`runSync`, and `run` then `status` every second), on a mock of
// hosted RunPod running on virtual time. Also: a burst of 429s, and a host restart mid-wait.
//
// Run: cd /work/main && node --import tsx bench/runpod-requests/main.ts
import type { ApiWorkflow, RemoteJobRef } from '@comfy-serverless/core';
import { sleep } from '@comfy-serverless/core';
import { createVirtualClock, type VirtualClock } from '@comfy-serverless/core/test';
import { createRunpod } from '@comfy-serverless/runpod';
import { type RunpodMock, startRunpodMock } from '@comfy-serverless/runpod/test';
import runpodSdk from 'runpod-sdk';

const DURATIONS_S = [5, 30, 90, 300];
const WORKFLOW: ApiWorkflow = {
  '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd_xl_base_1.0.safetensors' } },
  '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'ComfyUI', images: ['4', 0] } },
};

type Client = 'ours' | 'runSync' | 'runPoll1s';
const CLIENTS: Client[] = ['ours', 'runSync', 'runPoll1s'];

interface Outcome {
  client: Client;
  completed: boolean;
  /** The caller ended up with the job's result. */
  delivered: boolean;
  /** Whether the caller could still name the job after the trouble. */
  idKept: boolean;
  /** Worker executions of this work on the platform (2 = ran twice). */
  executions: number;
  requests: number;
  note: string;
}

interface Context {
  clock: VirtualClock;
  mock: RunpodMock;
}

async function withMock<T>(executionMs: number, body: (context: Context) => Promise<T>): Promise<T> {
  const clock = createVirtualClock();
  const mock = await startRunpodMock({
    clock,
    autoAdvance: { quietMs: 15 },
    coldStartMs: 0,
    workersMin: 1,
    workersMax: 3,
    executionMs,
  });
  try {
    return await body({ clock, mock });
  } finally {
    await mock.close();
  }
}

function ours(context: Context) {
  return createRunpod({
    endpointId: context.mock.endpointId,
    apiKey: context.mock.apiKey,
    baseURL: context.mock.url,
    gpu: 'RTX4090-24GB',
    clock: context.clock,
    executionTimeoutMs: 3_600_000,
  });
}

function sdkEndpoint(context: Context) {
  const endpoint = runpodSdk(context.mock.apiKey, { baseUrl: context.mock.url }).endpoint(
    context.mock.endpointId,
  );
  if (!endpoint) throw new Error('runpod-sdk gave no endpoint');
  return endpoint;
}

/** runpod-sdk prints every poll with its own saved console.log; keep the bench output readable. */
async function quietly<T>(task: () => Promise<T>): Promise<T> {
  const write = process.stdout.write;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    return await task();
  } finally {
    process.stdout.write = write;
  }
}

async function runOurs(
  context: Context,
  ref?: RemoteJobRef,
): Promise<{ completed: boolean; ref: RemoteJobRef }> {
  const provider = ours(context);
  const submitted =
    ref ?? (await provider.doSubmit({ jobId: 'bench', workflow: WORKFLOW, images: [], attempt: 1 }));
  let completed = false;
  for await (const event of provider.doWatch(submitted)) if (event.type === 'completed') completed = true;
  return { completed, ref: submitted };
}

async function runSdkSync(context: Context, timeoutMs: number): Promise<boolean> {
  const result = (await quietly(() =>
    sdkEndpoint(context).runSync({ input: { workflow: WORKFLOW, images: [] } }, timeoutMs),
  )) as { status?: string };
  return result.status === 'COMPLETED';
}

async function runSdkPoll(context: Context, stop?: { stopped: boolean }): Promise<boolean | 'stopped'> {
  const endpoint = sdkEndpoint(context);
  const { id } = await endpoint.run({ input: { workflow: WORKFLOW, images: [] } });
  for (;;) {
    if (stop?.stopped) return 'stopped';
    const status = (await endpoint.status(id)) as { status: string };
    if (['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(status.status))
      return status.status === 'COMPLETED';
    await sleep(1_000, { clock: context.clock });
  }
}

function executionsOf(mock: RunpodMock): number {
  return Object.values(mock.stats().executions).reduce((sum, value) => sum + value, 0);
}

// ---- 1. requests per completed job ------------------------------------------------------

async function requestsPerJob(client: Client, seconds: number): Promise<number> {
  return withMock(seconds * 1000, async (context) => {
    let completed = false;
    if (client === 'ours') completed = (await runOurs(context)).completed;
    if (client === 'runSync') completed = await runSdkSync(context, seconds * 1000 + 60_000);
    if (client === 'runPoll1s') completed = (await runSdkPoll(context)) === true;
    if (!completed) throw new Error(`${client} did not complete a ${seconds} s job`);
    return context.mock.stats().totalRequests;
  });
}

// ---- 2. a burst of 429s (the endpoint's shared limit spent by other pollers) -------------

async function burst(client: Client, when: 'submit' | 'waiting'): Promise<Outcome> {
  const seconds = 300;
  return withMock(seconds * 1000, async (context) => {
    const { mock } = context;
    const routes = when === 'submit' ? (['run', 'runsync'] as const) : (['status', 'status-sync'] as const);
    for (const route of routes)
      mock.failNext(route, {
        status: 429,
        count: 3,
        retryAfterSeconds: 5,
        body: { error: 'rate limit exceeded' },
      });
    let completed = false;
    let idKept = false;
    let note = '';
    try {
      if (client === 'ours') {
        completed = (await runOurs(context)).completed;
        idKept = true;
      }
      if (client === 'runSync') completed = await runSdkSync(context, seconds * 1000 + 60_000);
      if (client === 'runPoll1s') completed = (await runSdkPoll(context)) === true;
      note = completed ? 'completed after the burst' : 'did not complete';
    } catch (error) {
      note = `threw: ${(error as Error).message}`;
      // `run` had returned the id before the poll threw; runSync never returns it.
      idKept = client === 'runPoll1s' && mock.jobs().length > 0;
    }
    if (completed) idKept = true;
    const submitted = mock.jobs().length > 0;
    if (!completed && submitted) note += '; the job runs on with nobody to collect it';
    if (!submitted) note += '; never submitted';
    return {
      client,
      completed,
      delivered: completed,
      idKept,
      executions: executionsOf(mock),
      requests: mock.stats().totalRequests,
      note,
    };
  });
}

// ---- 3. the host restarts while the job is waited on ----------------------------------------

async function restart(client: Client): Promise<Outcome> {
  const seconds = 200;
  return withMock(seconds * 1000, async (context) => {
    const { mock } = context;
    if (client === 'ours') {
      const provider = ours(context);
      const ref = await provider.doSubmit({ jobId: 'bench', workflow: WORKFLOW, images: [], attempt: 1 });
      const journal = JSON.stringify(ref); // what the dispatcher's journal holds
      const host = new AbortController();
      const first = (async () => {
        for await (const _event of provider.doWatch(ref, { signal: host.signal })) {
          // the first host sees nothing terminal before it dies
        }
      })().catch(() => undefined);
      await mock.waitForHeld(1);
      host.abort(new Error('host restarted'));
      await first;
      // A new process, a new provider instance, the reference read back from the journal.
      const { completed } = await runOurs(context, JSON.parse(journal) as RemoteJobRef);
      return {
        client,
        completed,
        delivered: completed,
        idKept: true,
        executions: executionsOf(mock),
        requests: mock.stats().totalRequests,
        note: 'resumed from the journalled reference',
      };
    }
    if (client === 'runSync') {
      const first = runSdkSync(context, seconds * 1000 + 60_000).catch(() => false);
      await mock.waitForHeld(1);
      mock.dropConnections(); // the process holding the /runsync connection is gone
      await first;
      // The restarted host never saw an id: all it can do is submit again.
      const completed = await runSdkSync(context, seconds * 1000 + 60_000);
      return {
        client,
        completed,
        delivered: completed,
        idKept: false,
        executions: executionsOf(mock),
        requests: mock.stats().totalRequests,
        note: 'id lost with the connection; resubmitted, so the job ran twice',
      };
    }
    const stop = { stopped: false };
    const first = runSdkPoll(context, stop);
    while (mock.jobs().length === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    // Let it poll for a while, then the process dies between two polls.
    while (mock.stats().requests.status < 20) await new Promise((resolve) => setTimeout(resolve, 1));
    stop.stopped = true;
    await first;
    // runpod-sdk keeps no journal: the id was in the dead process's memory.
    const completed = (await runSdkPoll(context)) === true;
    return {
      client,
      completed,
      delivered: completed,
      idKept: false,
      executions: executionsOf(mock),
      requests: mock.stats().totalRequests,
      note: 'id only in memory; resubmitted, so the job ran twice',
    };
  });
}

// ---- report -----------------------------------------------------------------------------

const pad = (value: unknown, width: number) => String(value).padStart(width);

async function main(): Promise<void> {
  const perJob: Record<string, Record<Client, number>> = {};
  for (const seconds of DURATIONS_S) {
    perJob[seconds] = { ours: 0, runSync: 0, runPoll1s: 0 };
    for (const client of CLIENTS) {
      const row = perJob[seconds];
      if (row) row[client] = await requestsPerJob(client, seconds);
    }
  }

  console.log('HTTP requests per completed job (mock of hosted RunPod, virtual time, warm worker)');
  console.log(
    `${'job'.padStart(6)} ${'ours'.padStart(6)} ${'runSync'.padStart(8)} ${'poll 1s'.padStart(8)}   ${'target ours'.padStart(11)}  ours/runSync  ours/poll  checks`,
  );
  const checks: Array<{ name: string; ok: boolean }> = [];
  for (const seconds of DURATIONS_S) {
    const row = perJob[seconds];
    if (!row) continue;
    const budget = 1 + Math.ceil(seconds / 90);
    const withinBudget = row.ours <= budget;
    const nearSync = row.ours <= row.runSync + 1;
    const tenth = seconds < 30 || row.ours * 10 <= row.runPoll1s;
    checks.push(
      { name: `${seconds}s: ours <= 1 + ceil(d/90) = ${budget}`, ok: withinBudget },
      { name: `${seconds}s: ours <= runSync + 1`, ok: nearSync },
      ...(seconds >= 30 ? [{ name: `${seconds}s: ours <= poll/10`, ok: tenth }] : []),
    );
    console.log(
      `${pad(`${seconds}s`, 6)} ${pad(row.ours, 6)} ${pad(row.runSync, 8)} ${pad(row.runPoll1s, 8)}   ${pad(`<= ${budget}`, 11)}  ${pad(
        (row.ours / row.runSync).toFixed(2),
        12,
      )}  ${pad((row.ours / row.runPoll1s).toFixed(3), 9)}  ${[withinBudget, nearSync, tenth].every(Boolean) ? 'ok' : 'MISSED'}`,
    );
  }

  const outcomes: Record<string, Outcome[]> = {
    burst429AtSubmit: [],
    burst429WhileWaiting: [],
    restartMidWait: [],
  };
  for (const client of CLIENTS) outcomes.burst429AtSubmit?.push(await burst(client, 'submit'));
  for (const client of CLIENTS) outcomes.burst429WhileWaiting?.push(await burst(client, 'waiting'));
  for (const client of CLIENTS) outcomes.restartMidWait?.push(await restart(client));

  for (const [name, list] of Object.entries(outcomes)) {
    const titles: Record<string, string> = {
      burst429AtSubmit: '429 burst at submission (3 x 429, Retry-After 5 s; 300 s job)',
      burst429WhileWaiting:
        '429 burst while waiting (3 x 429 on /status and /status-sync, Retry-After 5 s; 300 s job)',
      restartMidWait: 'host restart in the middle of the wait (200 s job)',
    };
    console.log(`\n${titles[name] ?? name}`);
    for (const outcome of list)
      console.log(
        `  ${outcome.client.padEnd(10)} result delivered: ${outcome.delivered ? 'yes' : 'NO '}  id kept: ${outcome.idKept ? 'yes' : 'no '}  executions: ${outcome.executions}  requests: ${pad(outcome.requests, 3)}  ${outcome.note}`,
      );
    const mine = list.find((outcome) => outcome.client === 'ours');
    checks.push({
      name: `${name}: ours delivers the result, keeps the id, runs the job once`,
      ok: mine?.delivered === true && mine.idKept && mine.executions === 1,
    });
  }

  console.log('\ntargets');
  for (const check of checks) console.log(`  ${check.ok ? 'ok    ' : 'MISSED'} ${check.name}`);
  console.log(
    `RESULT ${JSON.stringify({
      requestsPerCompletedJob: perJob,
      ratios: Object.fromEntries(
        DURATIONS_S.map((seconds) => {
          const row = perJob[seconds];
          return [
            seconds,
            row ? { oursOverRunSync: row.ours / row.runSync, oursOverPoll1s: row.ours / row.runPoll1s } : {},
          ];
        }),
      ),
      outcomes,
      targetsMet: checks.every((check) => check.ok),
      missed: checks.filter((check) => !check.ok).map((check) => check.name),
    })}`,
  );
}

await main();
