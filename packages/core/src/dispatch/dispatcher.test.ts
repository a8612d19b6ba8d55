import { describe, expect, it } from 'vitest';
import {
  ApiCallError,
  ComfyExecutionError,
  InvalidArgumentError,
  JobCancelledError,
  JobConflictError,
  JobTimeoutError,
  NoProviderError,
  SubmissionUnknownError,
  UnsupportedSpecificationError,
  WorkflowFormatError,
} from '../spec/errors';
import type { JobEvent, ProviderJobEvent } from '../spec/job';
import { sampleWorkflow } from '../test/fake-comfy/sample-workflow';
import { createMockProvider, placeholderOutput } from '../test/mock-provider';
import { createVirtualClock } from '../test/virtual-clock';
import { createDispatcher } from './dispatcher';
import { createMemoryJournal } from './memory-journal';

const workflow = sampleWorkflow();

const fast = { minDelayMs: 0, maxDelayMs: 0 };

/** A watch that only ends when its signal aborts (a job that runs until cancelled). */
function hangingWatch(started = true) {
  return (_ref: unknown, options?: { signal?: AbortSignal }): AsyncIterable<ProviderJobEvent> => ({
    async *[Symbol.asyncIterator]() {
      if (started) yield { type: 'started' } as ProviderJobEvent;
      await new Promise<void>((resolve) => {
        if (options?.signal?.aborted) resolve();
        options?.signal?.addEventListener('abort', () => resolve(), { once: true });
      });
    },
  });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

describe('createDispatcher', () => {
  it('runs a workflow and reports outputs, timing, cost and provider', async () => {
    const provider = createMockProvider({
      id: 'a',
      pricing: { usdPerSecond: 0.001 },
      doWatch: [
        { type: 'queued' },
        { type: 'started', coldStartMs: 1500 },
        { type: 'completed', outputs: [placeholderOutput()], timing: { executionMs: 4200 } },
      ],
    });
    const dispatcher = createDispatcher({ providers: [provider] });
    const result = await dispatcher.runWorkflow(workflow, { jobId: 'job-1' });
    expect(result.jobId).toBe('job-1');
    expect(result.status).toBe('completed');
    expect(result.providerId).toBe('a');
    expect(result.attempts).toBe(1);
    expect(result.outputs).toHaveLength(1);
    expect(result.outputs[0]?.mime).toBe('image/png');
    expect(result.timing.executionMs).toBe(4200);
    expect(result.timing.coldStartMs).toBe(1500);
    // Billed: cold start plus execution, rounded up to the second.
    expect(result.cost.gpuSeconds).toBe(6);
    expect(result.cost.usd).toBeCloseTo(0.006, 10);
    expect((await dispatcher.get('job-1'))?.status).toBe('completed');
  });

  it('applies input patches to a copy and sends the patched workflow', async () => {
    const provider = createMockProvider();
    const dispatcher = createDispatcher({ providers: [provider] });
    const original = structuredClone(workflow);
    await dispatcher.runWorkflow(original, { inputs: { '6.text': 'a red fox' } });
    expect(provider.calls.doSubmit[0]?.workflow['6']?.inputs.text).toBe('a red fox');
    expect(original['6']?.inputs.text).toBe('a lighthouse at dusk');
  });

  it('refuses a UI-format export before anything is journalled or sent', async () => {
    const provider = createMockProvider();
    const journal = createMemoryJournal();
    const dispatcher = createDispatcher({ providers: [provider], journal });
    const error = await rejection(
      dispatcher.runWorkflow({ nodes: [], links: [], version: 0.4 }, { jobId: 'ui' }),
    );
    expect(WorkflowFormatError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(/API format/);
    expect(provider.calls.doSubmit).toHaveLength(0);
    expect(await journal.get('ui')).toBeUndefined();
  });

  it('fails with the typed error when execution fails, without trying another provider', async () => {
    const error = new ComfyExecutionError({
      message: 'CUDA out of memory',
      nodeId: '3',
      nodeType: 'KSampler',
    });
    const a = createMockProvider({
      id: 'a',
      pricing: { usdPerSecond: 0.0001 },
      doWatch: [{ type: 'started' }, { type: 'failed', error, executionStarted: true }],
    });
    const b = createMockProvider({ id: 'b', pricing: { usdPerSecond: 0.01 } });
    const dispatcher = createDispatcher({ providers: [a, b], retry: fast });
    const caught = await rejection(dispatcher.runWorkflow(workflow, { jobId: 'fail-1' }));
    expect(ComfyExecutionError.isInstance(caught)).toBe(true);
    expect((caught as ComfyExecutionError).nodeId).toBe('3');
    expect(b.calls.doSubmit).toHaveLength(0);
    const record = await dispatcher.get('fail-1');
    expect(record?.status).toBe('failed');
    expect(record?.error?.name).toBe('ComfyExecutionError');
  });

  it('retries a retryable submission error on the same provider', async () => {
    const provider = createMockProvider({
      doSubmit: [
        new ApiCallError({ message: 'rate limited', url: 'https://x/run', statusCode: 429 }),
        new ApiCallError({ message: 'unavailable', url: 'https://x/run', statusCode: 503 }),
        { remoteId: 'r-1' },
      ],
    });
    const dispatcher = createDispatcher({ providers: [provider], retry: fast });
    const result = await dispatcher.runWorkflow(workflow);
    expect(provider.calls.doSubmit).toHaveLength(3);
    expect(provider.calls.doWatch[0]?.remoteId).toBe('r-1');
    expect(result.attempts).toBe(1);
  });

  it('does not retry a non-retryable submission error on the same provider, and falls back', async () => {
    const a = createMockProvider({
      id: 'a',
      pricing: { usdPerSecond: 0.0001 },
      doSubmit: new ApiCallError({ message: 'bad request', url: 'https://a/run', statusCode: 400 }),
    });
    const b = createMockProvider({ id: 'b', pricing: { usdPerSecond: 0.01 } });
    const events: JobEvent[] = [];
    const dispatcher = createDispatcher({ providers: [a, b], retry: fast });
    const result = await dispatcher.runWorkflow(workflow, { onEvent: (event) => events.push(event) });
    expect(a.calls.doSubmit).toHaveLength(1);
    expect(b.calls.doSubmit).toHaveLength(1);
    expect(result.providerId).toBe('b');
    expect(result.attempts).toBe(2);
    const retrying = events.find((event) => event.type === 'retrying');
    expect(retrying).toMatchObject({ providerId: 'a', nextProviderId: 'b' });
  });

  it('falls back when a job fails before it starts executing', async () => {
    const a = createMockProvider({
      id: 'a',
      pricing: { usdPerSecond: 0.0001 },
      doWatch: [
        {
          type: 'failed',
          error: { name: 'JobFailedError', message: 'no capacity', isRetryable: true },
          executionStarted: false,
        },
      ],
    });
    const b = createMockProvider({ id: 'b', pricing: { usdPerSecond: 0.01 } });
    const dispatcher = createDispatcher({ providers: [a, b], retry: fast });
    const result = await dispatcher.runWorkflow(workflow);
    expect(result.providerId).toBe('b');
  });

  it('never runs a started job a second time unless the caller opts in', async () => {
    const failAfterStart: ProviderJobEvent[] = [
      { type: 'started' },
      {
        type: 'failed',
        error: new ApiCallError({ message: 'worker lost', url: 'https://a', statusCode: 502 }),
        executionStarted: true,
      },
    ];
    const a = createMockProvider({ id: 'a', pricing: { usdPerSecond: 0.0001 }, doWatch: failAfterStart });
    const b = createMockProvider({ id: 'b', pricing: { usdPerSecond: 0.01 } });
    const dispatcher = createDispatcher({ providers: [a, b], retry: fast });
    const caught = await rejection(dispatcher.runWorkflow(workflow));
    expect(ApiCallError.isInstance(caught)).toBe(true);
    expect(b.calls.doSubmit).toHaveLength(0);

    const a2 = createMockProvider({ id: 'a', pricing: { usdPerSecond: 0.0001 }, doWatch: failAfterStart });
    const b2 = createMockProvider({ id: 'b', pricing: { usdPerSecond: 0.01 } });
    const optedIn = createDispatcher({ providers: [a2, b2], retry: { ...fast, rerunAfterStart: true } });
    const result = await optedIn.runWorkflow(workflow);
    expect(result.providerId).toBe('b');
    expect(b2.calls.doSubmit).toHaveLength(1);
  });

  it('watches again after a retryable watch failure without submitting again', async () => {
    const provider = createMockProvider({
      doWatch: [
        new ApiCallError({ message: 'connection reset', url: 'https://x/status' }),
        [{ type: 'started' }, { type: 'completed', outputs: [placeholderOutput()] }],
      ],
    });
    const dispatcher = createDispatcher({ providers: [provider], retry: fast });
    await dispatcher.runWorkflow(workflow);
    expect(provider.calls.doSubmit).toHaveLength(1);
    expect(provider.calls.doWatch).toHaveLength(2);
  });

  it('cancels a job still waiting for admission without sending it', async () => {
    const provider = createMockProvider({ doWatch: hangingWatch() });
    const dispatcher = createDispatcher({ providers: [provider], concurrency: { global: 1 } });
    const first = await dispatcher.submit(workflow, { jobId: 'first' });
    const second = await dispatcher.submit(workflow, { jobId: 'second' });
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(second.status()).toBe('queued');
    await second.cancel('changed my mind');
    const error = await rejection(second.result());
    expect(JobCancelledError.isInstance(error)).toBe(true);
    expect(provider.calls.doSubmit.map((request) => request.jobId)).toEqual(['first']);
    expect((await dispatcher.get('second'))?.status).toBe('cancelled');
    await first.cancel();
  });

  it('cancels a running job on the platform', async () => {
    const provider = createMockProvider({ doSubmit: { remoteId: 'remote-7' }, doWatch: hangingWatch() });
    const dispatcher = createDispatcher({ providers: [provider] });
    const controller = new AbortController();
    const handle = await dispatcher.submit(workflow, { jobId: 'running', signal: controller.signal });
    for (let index = 0; index < 20 && handle.status() !== 'running'; index++) {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(handle.status()).toBe('running');
    controller.abort(new Error('user left'));
    const error = await rejection(handle.result());
    expect(JobCancelledError.isInstance(error)).toBe(true);
    expect(provider.calls.doCancel).toEqual([{ remoteId: 'remote-7' }]);
    expect((await dispatcher.get('running'))?.status).toBe('cancelled');
  });

  it('times out on the injected clock, cancels remotely and ends as timed_out', async () => {
    const clock = createVirtualClock();
    const provider = createMockProvider({ doWatch: hangingWatch() });
    const events: string[] = [];
    const dispatcher = createDispatcher({ providers: [provider], clock });
    const handle = await dispatcher.submit(workflow, {
      jobId: 'slow',
      timeoutMs: 60_000,
      onEvent: (event) => events.push(event.type),
    });
    await clock.advance(59_999);
    expect(handle.status()).toBe('running');
    await clock.advance(1);
    const error = await rejection(handle.result());
    expect(JobTimeoutError.isInstance(error)).toBe(true);
    expect((error as JobTimeoutError).timeoutMs).toBe(60_000);
    expect(provider.calls.doCancel).toHaveLength(1);
    expect((await dispatcher.get('slow'))?.status).toBe('timed_out');
    expect(events.at(-1)).toBe('timed_out');
  });

  it('gives the same job for the same id, before and after it finished', async () => {
    const provider = createMockProvider();
    const dispatcher = createDispatcher({ providers: [provider] });
    const [one, two] = await Promise.all([
      dispatcher.submit(workflow, { jobId: 'same' }),
      dispatcher.submit(workflow, { jobId: 'same' }),
    ]);
    expect(one).toBe(two);
    const first = await one.result();
    const again = await dispatcher.runWorkflow(workflow, { jobId: 'same' });
    expect(again).toEqual(first);
    expect(provider.calls.doSubmit).toHaveLength(1);
    const conflict = await rejection(
      dispatcher.runWorkflow(workflow, { jobId: 'same', inputs: { '6.text': 'other' } }),
    );
    expect(JobConflictError.isInstance(conflict)).toBe(true);
  });

  it('resumes a submitted job from the journal in a new dispatcher without submitting it again', async () => {
    let now = Date.now();
    const journal = createMemoryJournal({ now: () => now });
    const crashed = createMockProvider({
      id: 'p',
      doSubmit: { remoteId: 'remote-42' },
      doWatch: hangingWatch(),
    });
    const before = createDispatcher({ providers: [crashed], journal });
    const handle = await before.submit(workflow, { jobId: 'survivor' });
    for (let index = 0; index < 20 && handle.status() !== 'running'; index++) {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect((await journal.get('survivor'))?.attempts[0]?.remote).toEqual({ remoteId: 'remote-42' });
    // The first process "dies": its timers stop and its claim on the job runs out.
    before.close();
    const stillClaimed = createDispatcher({ providers: [createMockProvider({ id: 'p' })], journal });
    expect(await stillClaimed.resume()).toEqual([]);
    now += 30_001;

    const restarted = createMockProvider({ id: 'p' });
    const after = createDispatcher({ providers: [restarted], journal });
    const handles = await after.resume();
    expect(handles.map((resumed) => resumed.id)).toEqual(['survivor']);
    const result = await handles[0]!.result();
    expect(result.providerId).toBe('p');
    expect(restarted.calls.doSubmit).toHaveLength(0);
    expect(restarted.calls.doWatch).toEqual([{ remoteId: 'remote-42' }]);
    expect((await journal.get('survivor'))?.status).toBe('completed');
  });

  it('submits on resume a job that was journalled but never sent', async () => {
    const journal = createMemoryJournal();
    await journal.create({
      jobId: 'never-sent',
      requestHash: 'h',
      createdAt: Date.now(),
      request: { workflow, images: [] },
    });
    const provider = createMockProvider();
    const dispatcher = createDispatcher({ providers: [provider], journal });
    const [handle] = await dispatcher.resume();
    await handle!.result();
    expect(provider.calls.doSubmit.map((request) => request.jobId)).toEqual(['never-sent']);
  });

  it('bounds concurrency per provider', async () => {
    let active = 0;
    let peak = 0;
    const provider = createMockProvider({
      doWatch: () => ({
        async *[Symbol.asyncIterator]() {
          active += 1;
          peak = Math.max(peak, active);
          yield { type: 'started' } as ProviderJobEvent;
          await new Promise((resolve) => setTimeout(resolve, 2));
          active -= 1;
          yield { type: 'completed', outputs: [placeholderOutput()] } as ProviderJobEvent;
        },
      }),
    });
    const dispatcher = createDispatcher({ providers: [provider], concurrency: { perProvider: 2 } });
    await Promise.all(Array.from({ length: 7 }, () => dispatcher.runWorkflow(workflow)));
    expect(peak).toBe(2);
    expect(provider.calls.doSubmit).toHaveLength(7);
  });

  it('emits events in order, to onEvent, to the emitter and to events()', async () => {
    const provider = createMockProvider({
      doWatch: [
        { type: 'queued' },
        { type: 'started' },
        { type: 'progress', fraction: 0.5 },
        { type: 'output', output: placeholderOutput() },
        { type: 'completed' },
      ],
    });
    const dispatcher = createDispatcher({ providers: [provider] });
    const seen: string[] = [];
    const emitted: string[] = [];
    dispatcher.events.on('job:completed', (event) => emitted.push(`completed:${event.jobId}`));
    dispatcher.events.on('job:started', (event) => emitted.push(`started:${event.jobId}`));
    const handle = await dispatcher.submit(workflow, {
      jobId: 'ordered',
      onEvent: (event) => seen.push(event.type),
    });
    const replayed: string[] = [];
    for await (const event of handle.events()) replayed.push(event.type);
    const expected = ['queued', 'routed', 'submitted', 'started', 'progress', 'output', 'completed'];
    expect(seen).toEqual(expected);
    expect(replayed).toEqual(expected);
    expect(emitted).toEqual(['started:ordered', 'completed:ordered']);
    expect((await handle.result()).outputs).toHaveLength(1);
  });

  it('opens the circuit after repeated platform failures and routes elsewhere', async () => {
    const down = new ApiCallError({ message: 'unavailable', url: 'https://a/run', statusCode: 503 });
    const a = createMockProvider({ id: 'a', pricing: { usdPerSecond: 0.0001 }, doSubmit: down });
    const b = createMockProvider({ id: 'b', pricing: { usdPerSecond: 0.01 } });
    const dispatcher = createDispatcher({
      providers: [a, b],
      retry: { ...fast, submitRetries: 0 },
      router: { breaker: { failureThreshold: 3, cooldownMs: 60_000 } },
    });
    const opened: string[] = [];
    dispatcher.events.on('provider:circuit-open', (event) => opened.push(event.providerId));
    for (let index = 0; index < 5; index++) await dispatcher.runWorkflow(workflow);
    expect(opened).toEqual(['a']);
    expect(a.calls.doSubmit).toHaveLength(3);
    expect(b.calls.doSubmit).toHaveLength(5);
  });

  it('refuses with NoProviderError when no GPU is large enough', async () => {
    const small = createMockProvider({ id: 'small', gpu: { type: 'tiny', vramGb: 2 } });
    const dispatcher = createDispatcher({ providers: [small] });
    const error = await rejection(dispatcher.runWorkflow(workflow));
    expect(NoProviderError.isInstance(error)).toBe(true);
    expect((error as NoProviderError).rejected.small).toMatch(/GB/);
  });

  it('refuses a provider of an unknown spec version', () => {
    const provider = createMockProvider({ specificationVersion: 'v2' });
    expect(() => createDispatcher({ providers: [provider] })).toThrowError(UnsupportedSpecificationError);
  });

  it.each([
    [{ providers: [] }, 'providers'],
    [{ concurrency: { global: 0 } }, 'concurrency.global'],
    [{ concurrency: { perProvider: { nope: 2 } } }, 'concurrency.perProvider.nope'],
    [{ retry: { submitRetries: -1 } }, 'retry.submitRetries'],
    [{ defaultTimeoutMs: 1.5 }, 'defaultTimeoutMs'],
    [{ clock: { now: () => 0 } }, 'clock'],
  ])('refuses bad options with a message naming the option (%j)', (overrides, argument) => {
    const options = { providers: [createMockProvider()], ...overrides } as Parameters<
      typeof createDispatcher
    >[0];
    try {
      createDispatcher(options);
      expect.unreachable();
    } catch (error) {
      expect(InvalidArgumentError.isInstance(error)).toBe(true);
      expect((error as InvalidArgumentError).argument).toBe(argument);
      expect((error as Error).message).toContain(`"${argument}"`);
    }
  });

  it('refuses bad job options with a message naming the option', async () => {
    const dispatcher = createDispatcher({ providers: [createMockProvider()] });
    const error = await rejection(dispatcher.runWorkflow(workflow, { timeoutMs: -5 }));
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('"timeoutMs"');
  });

  it('reports demand and per-provider load for autoscalers', async () => {
    const provider = createMockProvider({ id: 'p', doWatch: hangingWatch() });
    const dispatcher = createDispatcher({ providers: [provider] });
    const handle = await dispatcher.submit(workflow);
    for (let index = 0; index < 20 && handle.status() !== 'running'; index++) {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const metrics = dispatcher.metrics();
    expect(metrics.providers.p).toEqual({ queueDepth: 0, inFlight: 1 });
    expect(metrics.demand.inFlight).toBe(1);
    expect(metrics.demand.arrivals.reduce((sum, count) => sum + count, 0)).toBe(1);
    await handle.cancel();
    expect(dispatcher.metrics().providers.p).toEqual({ queueDepth: 0, inFlight: 0 });
  });
});

describe('createDispatcher after a crash mid-submission', () => {
  async function journalWithIntent(providerId: string) {
    let now = Date.now();
    const journal = createMemoryJournal({ now: () => now });
    await journal.create({
      jobId: 'mid-send',
      requestHash: 'h',
      createdAt: now,
      request: { workflow, images: [] },
    });
    // What a process leaves when it dies after journalling the intent and before the reference.
    await journal.update('mid-send', { attempts: [{ providerId, submittedAt: now }] });
    now += 1;
    return journal;
  }

  it('does not send again, by default, a job whose submission is unknown', async () => {
    const journal = await journalWithIntent('p');
    const provider = createMockProvider({ id: 'p' });
    const dispatcher = createDispatcher({ providers: [provider], journal });
    const [handle] = await dispatcher.resume();
    const error = await rejection(handle!.result());
    expect(SubmissionUnknownError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(/onUnknownSubmission/);
    expect(provider.calls.doSubmit).toHaveLength(0);
    expect((await journal.get('mid-send'))?.status).toBe('failed');
  });

  it('finds the job through doLookup and watches it instead of sending it again', async () => {
    const journal = await journalWithIntent('p');
    const lookedUp: string[] = [];
    const provider = {
      ...createMockProvider({ id: 'p' }),
      doLookup: async (jobId: string) => {
        lookedUp.push(jobId);
        return { remoteId: 'found-1' };
      },
    };
    const dispatcher = createDispatcher({ providers: [provider], journal });
    const [handle] = await dispatcher.resume();
    await handle!.result();
    expect(lookedUp).toEqual(['mid-send']);
    expect(provider.calls.doSubmit).toHaveLength(0);
    expect(provider.calls.doWatch).toEqual([{ remoteId: 'found-1' }]);
  });

  it('sends it again when doLookup says the platform never accepted it', async () => {
    const journal = await journalWithIntent('p');
    const provider = { ...createMockProvider({ id: 'p' }), doLookup: async () => undefined };
    const dispatcher = createDispatcher({ providers: [provider], journal });
    const [handle] = await dispatcher.resume();
    await handle!.result();
    expect(provider.calls.doSubmit).toHaveLength(1);
  });

  it("sends it again when the caller chose onUnknownSubmission: 'resubmit'", async () => {
    const journal = await journalWithIntent('p');
    const provider = createMockProvider({ id: 'p' });
    const dispatcher = createDispatcher({ providers: [provider], journal, onUnknownSubmission: 'resubmit' });
    const [handle] = await dispatcher.resume();
    await handle!.result();
    expect(provider.calls.doSubmit).toHaveLength(1);
    const attempts = (await journal.get('mid-send'))?.attempts ?? [];
    expect(attempts[0]?.error?.name).toBe('SubmissionUnknownError');
    expect(attempts[1]?.remote).toBeDefined();
  });

  it('takes over jobs whose owner stopped renewing its claim, on its own schedule', async () => {
    const clock = createVirtualClock();
    const journal = createMemoryJournal({ now: () => clock.now() });
    const crashed = createMockProvider({ id: 'p', doSubmit: { remoteId: 'r-9' }, doWatch: hangingWatch() });
    const first = createDispatcher({ providers: [crashed], journal, clock, claimTtlMs: 3_000 });
    await first.submit(workflow, { jobId: 'orphan' });
    await clock.advance(0);
    first.close();
    const survivor = createMockProvider({ id: 'p' });
    const second = createDispatcher({
      providers: [survivor],
      journal,
      clock,
      claimTtlMs: 3_000,
      takeOverIntervalMs: 1_000,
    });
    await clock.advance(1_000);
    expect(survivor.calls.doWatch).toHaveLength(0);
    await clock.advance(3_000);
    expect(survivor.calls.doWatch).toEqual([{ remoteId: 'r-9' }]);
    expect(survivor.calls.doSubmit).toHaveLength(0);
    expect((await journal.get('orphan'))?.status).toBe('completed');
    second.close();
  });
});

describe('createDispatcher across regions', () => {
  function regional(id: string, region: string, zone: { down: boolean }) {
    let sequence = 0;
    return createMockProvider({
      id,
      region,
      doSubmit: () => {
        if (zone.down) throw new ApiCallError({ message: `${region} unreachable`, url: `https://${id}/run` });
        sequence += 1;
        return { remoteId: `${id}-${sequence}` };
      },
      doWatch: () => ({
        async *[Symbol.asyncIterator]() {
          if (zone.down)
            throw new ApiCallError({ message: `${region} unreachable`, url: `https://${id}/status` });
          yield { type: 'started' } as ProviderJobEvent;
          await new Promise((resolve) => setTimeout(resolve, 2));
          if (zone.down)
            throw new ApiCallError({ message: `${region} unreachable`, url: `https://${id}/status` });
          yield { type: 'completed', outputs: [placeholderOutput()] } as ProviderJobEvent;
        },
      }),
      doHealth: () => ({ status: zone.down ? 'unhealthy' : 'healthy', checkedAt: Date.now() }),
    });
  }

  it('fails over from a region that goes dark mid-run, then to disaster recovery, and loses no job', async () => {
    const eu = { down: false };
    const us = { down: false };
    const ap = { down: false };
    const providers = [
      regional('eu-a', 'eu-west-1', eu),
      regional('eu-b', 'eu-west-1', eu),
      regional('us-a', 'us-east-1', us),
      regional('ap-a', 'ap-south-1', ap),
    ];
    const dispatcher = createDispatcher({
      providers,
      retry: { minDelayMs: 0, maxDelayMs: 0, submitRetries: 1, watchRetries: 1, rerunAfterStart: true },
      router: {
        healthTtlMs: 0,
        breaker: { failureThreshold: 2, cooldownMs: 600_000 },
        regions: { primary: 'eu-west-1', secondary: ['us-east-1'], disasterRecovery: ['ap-south-1'] },
      },
    });
    const runBatch = (prefix: string, count: number) =>
      Promise.all(
        Array.from({ length: count }, (_, index) =>
          dispatcher.runWorkflow(workflow, { jobId: `${prefix}-${index}` }),
        ),
      );

    const before = await runBatch('before', 10);
    expect(new Set(before.map((result) => result.providerId.slice(0, 2)))).toEqual(new Set(['eu']));

    const during = runBatch('during', 20);
    await new Promise((resolve) => setTimeout(resolve, 1));
    eu.down = true;
    const moved = await during;
    expect(moved).toHaveLength(20);
    const after = await runBatch('after', 10);
    expect(after.every((result) => result.providerId === 'us-a')).toBe(true);

    us.down = true;
    const last = await runBatch('dr', 5);
    expect(last.every((result) => result.providerId === 'ap-a')).toBe(true);

    for (const prefix of ['before', 'during', 'after', 'dr']) {
      const count = { before: 10, during: 20, after: 10, dr: 5 }[prefix]!;
      for (let index = 0; index < count; index++) {
        expect((await dispatcher.get(`${prefix}-${index}`))?.status).toBe('completed');
      }
    }
  });
});

describe('createDispatcher when the answer to a submission is lost', () => {
  const lost = () =>
    new SubmissionUnknownError({ message: 'the answer to /run was lost (ECONNRESET)', providerId: 'a' });

  it('neither resends nor falls back by default, and ends the job with SubmissionUnknownError', async () => {
    const a = createMockProvider({ id: 'a', pricing: { usdPerSecond: 0.0001 }, doSubmit: lost() });
    const b = createMockProvider({ id: 'b', pricing: { usdPerSecond: 0.01 } });
    const dispatcher = createDispatcher({ providers: [a, b], retry: fast });
    const error = await rejection(dispatcher.runWorkflow(workflow, { jobId: 'lost' }));
    expect(SubmissionUnknownError.isInstance(error)).toBe(true);
    expect(a.calls.doSubmit).toHaveLength(1);
    expect(b.calls.doSubmit).toHaveLength(0);
    expect((await dispatcher.get('lost'))?.status).toBe('failed');
  });

  it('finds the job through doLookup and follows it', async () => {
    const a = {
      ...createMockProvider({ id: 'a', doSubmit: lost() }),
      doLookup: async () => ({ remoteId: 'was-accepted' }),
    };
    const dispatcher = createDispatcher({ providers: [a], retry: fast });
    const result = await dispatcher.runWorkflow(workflow);
    expect(result.providerId).toBe('a');
    expect(a.calls.doSubmit).toHaveLength(1);
    expect(a.calls.doWatch).toEqual([{ remoteId: 'was-accepted' }]);
  });

  it('moves on to another provider when doLookup says the job was never accepted', async () => {
    const a = {
      ...createMockProvider({ id: 'a', pricing: { usdPerSecond: 0.0001 }, doSubmit: lost() }),
      doLookup: async () => undefined,
    };
    const b = createMockProvider({ id: 'b', pricing: { usdPerSecond: 0.01 } });
    const dispatcher = createDispatcher({ providers: [a, b], retry: fast });
    const result = await dispatcher.runWorkflow(workflow);
    expect(result.providerId).toBe('b');
  });
});

describe('createDispatcher observability', () => {
  it('logs every job through the logger option, with the job id and without secrets', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const record = (level: string) => (object: Record<string, unknown>, message?: string) =>
      lines.push({ level, ...object, message });
    const logger = {
      debug: record('debug'),
      info: record('info'),
      warn: record('warn'),
      error: record('error'),
    };
    const secret = 'rp_SECRET_KEY_123456';
    const failing = createMockProvider({
      doWatch: [
        { type: 'started' },
        {
          type: 'failed',
          error: new ComfyExecutionError({ message: `node crashed near ${secret}`, nodeId: '3' }),
          executionStarted: true,
        },
      ],
    });
    const dispatcher = createDispatcher({
      providers: [failing],
      logger,
      service: 'renders',
      secrets: [secret],
    });
    await rejection(dispatcher.runWorkflow(workflow, { jobId: 'logged', metadata: { userId: 'u-1' } }));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((line) => line.service === 'renders')).toBe(true);
    expect(lines.some((line) => line.execution_id === 'logged')).toBe(true);
    expect(JSON.stringify(lines)).not.toContain(secret);
  });

  it('reports KPIs over the jobs it ran', async () => {
    const dispatcher = createDispatcher({ providers: [createMockProvider({ id: 'p' })] });
    await Promise.all([1, 2, 3].map(() => dispatcher.runWorkflow(workflow)));
    const report = dispatcher.report();
    expect(report.jobs.completed).toBe(3);
    expect(report.jobs.failed).toBe(0);
  });
});

describe('createDispatcher with image descriptions', () => {
  it('prefers a provider whose image holds the models over a cheaper one that must download them', async () => {
    const model = 'sd_xl_base_1.0.safetensors';
    const baked = createMockProvider({
      id: 'baked',
      pricing: { usdPerSecond: 0.0003 },
      image: { id: 'sdxl', models: { checkpoints: [model] }, canLoadModels: true },
    });
    const downloads = createMockProvider({
      id: 'downloads',
      pricing: { usdPerSecond: 0.00025 },
      // 6.9 GB at 100 MB/s: about 69 s more before the job can start.
      image: {
        id: 'base',
        models: { checkpoints: [] },
        modelSizes: { [`checkpoints/${model}`]: 6.9e9 },
        canLoadModels: true,
      },
    });
    const dispatcher = createDispatcher({ providers: [downloads, baked] });
    const events: JobEvent[] = [];
    const result = await dispatcher.runWorkflow(workflow, { onEvent: (event) => events.push(event) });
    expect(result.providerId).toBe('baked');
    expect(events.find((event) => event.type === 'routed')).toMatchObject({
      candidates: ['baked', 'downloads'],
    });
  });
});

describe('createDispatcher under a burst', () => {
  it('lets other work of the process run while a burst of submissions is prepared', async () => {
    const provider = createMockProvider();
    const dispatcher = createDispatcher({ providers: [provider] });
    let submittedWhenOtherWorkRan = -1;
    setImmediate(() => {
      submittedWhenOtherWorkRan = provider.calls.doSubmit.length;
    });
    await Promise.all(Array.from({ length: 200 }, () => dispatcher.runWorkflow(workflow)));
    expect(provider.calls.doSubmit).toHaveLength(200);
    expect(submittedWhenOtherWorkRan).toBeGreaterThanOrEqual(0);
    // 32 pass per turn; a release already scheduled before ours may let one more turn's worth in.
    expect(submittedWhenOtherWorkRan).toBeLessThanOrEqual(64);
  });

  it('keeps one job per id and typed refusals for submissions that wait for a later turn', async () => {
    const provider = createMockProvider();
    const dispatcher = createDispatcher({ providers: [provider] });
    // The first 32 of a burst are accepted in this turn; these come after them.
    const burst = Array.from({ length: 40 }, () => dispatcher.runWorkflow(workflow));
    const one = dispatcher.submit(workflow, { jobId: 'late-twin' });
    const two = dispatcher.submit(workflow, { jobId: 'late-twin' });
    const three = dispatcher.runWorkflow(workflow, { jobId: 'late-twin' });
    const broken = rejection(dispatcher.runWorkflow({ nodes: [], links: [] }));
    const [first, second] = await Promise.all([one, two]);
    expect(first).toBe(second);
    expect(await three).toEqual(await first.result());
    expect(WorkflowFormatError.isInstance(await broken)).toBe(true);
    await Promise.all(burst);
    expect(provider.calls.doSubmit).toHaveLength(41);
  });
});
