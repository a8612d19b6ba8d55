import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDispatcher } from '../dispatch/dispatcher';
import { createMemoryJournal } from '../dispatch/memory-journal';
import { ApiCallError, ConfigurationError, InvalidArgumentError } from '../spec/errors';
import type { ProviderJobEvent, RemoteJobRef } from '../spec/job';
import type { ProviderV1 } from '../spec/provider-v1';
import { testProvider } from '../test/conformance';
import { createMockProvider, placeholderOutput } from '../test/mock-provider';
import { createSimulatedProvider } from '../test/simulated-provider';
import { createVirtualClock, type VirtualClock } from '../test/virtual-clock';
import { type BlueGreenState, createBlueGreen } from './blue-green';
import { createHealthGate } from './health-gate';
import { createJsonFileRolloutStore, createMemoryRolloutStore, type RolloutStore } from './rollout-store';

const workflow = { '9': { class_type: 'SaveImage', inputs: { images: ['8', 0] } } };
const STEP_MS = 60_000;

/** Simulated blue and green pools the conformance suite can steer. */
function conformanceHarness(steps: number[]) {
  return async () => {
    let executionMs = 20;
    let fail = false;
    let transient = false;
    const side = (id: string): ProviderV1 => {
      const simulated = createSimulatedProvider({
        id,
        gpu: 'L4-24GB',
        coldStartMs: 10,
        executionMs: () => executionMs,
        failureRate: 0.5,
        random: () => (fail ? 0 : 1),
      });
      return {
        ...simulated,
        async doSubmit(request, options) {
          if (transient) {
            throw new ApiCallError({
              message: 'Simulated platform is busy (503).',
              url: 'simulated://run',
              statusCode: 503,
            });
          }
          return simulated.doSubmit(request, options);
        },
      };
    };
    const provider = createBlueGreen({
      blue: side('sim:blue'),
      green: side('sim:green'),
      steps,
      stepMs: STEP_MS,
      clock: createVirtualClock(),
    });
    return {
      provider,
      arrange(scenario: string) {
        executionMs = scenario === 'long-running' ? 3_600_000 : 20;
        fail = scenario === 'execution-failure';
        transient = scenario === 'submit-retryable-error';
        if (scenario === 'submit-fatal-error') return { workflow: null as unknown as typeof workflow };
        return { workflow };
      },
      close: async () => provider.close(),
    };
  };
}

testProvider('blue-green (first step: mostly blue)', conformanceHarness([10, 25, 50, 75, 100]));
testProvider('blue-green (all green)', conformanceHarness([100]));

async function drain(events: AsyncIterable<ProviderJobEvent>): Promise<ProviderJobEvent[]> {
  const seen: ProviderJobEvent[] = [];
  for await (const event of events) seen.push(event);
  return seen;
}

/** Submits and watches `count` jobs named `prefix-N` to the end. */
async function runJobs(provider: ProviderV1, prefix: string, count: number): Promise<RemoteJobRef[]> {
  const refs: RemoteJobRef[] = [];
  for (let index = 0; index < count; index++) {
    const ref = await provider.doSubmit({ jobId: `${prefix}-${index}`, workflow, images: [], attempt: 1 });
    refs.push(ref);
    await drain(provider.doWatch(ref));
  }
  return refs;
}

const completes = (): ProviderJobEvent[] => [
  { type: 'started' },
  { type: 'completed', outputs: [placeholderOutput()] },
];
const fails = (): ProviderJobEvent[] => [
  { type: 'started' },
  {
    type: 'failed',
    error: { name: 'ComfyExecutionError', message: 'CUDA out of memory', isRetryable: false },
    executionStarted: true,
  },
];

function setup(
  options: {
    green?: ReturnType<typeof createMockProvider>;
    store?: RolloutStore<BlueGreenState>;
    clock?: VirtualClock;
    steps?: number[];
  } = {},
) {
  const clock = options.clock ?? createVirtualClock({ start: 0 });
  const blue = createMockProvider({ id: 'v1', doWatch: completes });
  const green = options.green ?? createMockProvider({ id: 'v2', doWatch: completes });
  const store = options.store ?? createMemoryRolloutStore<BlueGreenState>();
  const provider = createBlueGreen({
    blue,
    green,
    steps: options.steps ?? [10, 25, 50, 75, 100],
    gate: { minSamples: 5 },
    stepMs: STEP_MS,
    store,
    clock,
  });
  const seen: Array<{ name: string; weight?: number; stepIndex?: number; reason?: string }> = [];
  for (const name of [
    'step:started',
    'step:passed',
    'step:held',
    'rollout:completed',
    'rollout:rolled-back',
    'rollout:resumed',
    'store:error',
  ] as const) {
    (provider.events.on as (name: string, listener: (event: Record<string, unknown>) => void) => unknown)(
      name,
      (event) =>
        seen.push({
          name,
          weight: event.weight as number | undefined,
          stepIndex: event.stepIndex as number | undefined,
          reason: event.reason as string | undefined,
        }),
    );
  }
  return { clock, blue, green, store, provider, seen };
}

describe('createBlueGreen', () => {
  it('sends each job id to one side, about as often as the weight says, and keeps green jobs green as it grows', async () => {
    const { provider } = setup();
    await provider.ready();
    const ids = Array.from({ length: 10_000 }, (_, index) => `job-${index}`);
    const greenAtTen = ids.filter((id) => provider.sideFor(id) === 'green');
    expect(greenAtTen.length).toBeGreaterThan(850);
    expect(greenAtTen.length).toBeLessThan(1150);
    // Another instance (another process) puts every job on the same side.
    const other = setup().provider;
    await other.ready();
    expect(ids.filter((id) => other.sideFor(id) === 'green')).toEqual(greenAtTen);
    other.close();
    const ref = await provider.doSubmit({ jobId: greenAtTen[0]!, workflow, images: [], attempt: 1 });
    const again = await provider.doSubmit({ jobId: greenAtTen[0]!, workflow, images: [], attempt: 2 });
    expect(ref.data).toMatchObject({ blueGreenSide: 'green' });
    expect(again.data).toMatchObject({ blueGreenSide: 'green' });
    expect(JSON.parse(JSON.stringify(ref))).toEqual(ref);
    provider.close();
  });

  it('advances step by step while green is healthy, with an event for each, and completes at 100 %', async () => {
    const { provider, clock, seen, blue, green } = setup();
    await provider.ready();
    for (let step = 0; step < 5; step++) {
      await runJobs(provider, `s${step}`, 100);
      await clock.advance(STEP_MS);
    }
    expect(seen.map((event) => `${event.name}:${event.weight ?? ''}`)).toEqual([
      'step:started:10',
      'step:passed:10',
      'step:started:25',
      'step:passed:25',
      'step:started:50',
      'step:passed:50',
      'step:started:75',
      'step:passed:75',
      'step:started:100',
      'step:passed:100',
      'rollout:completed:',
    ]);
    expect(provider.state()).toMatchObject({ phase: 'completed', weight: 100 });
    const greenShare =
      green.calls.doSubmit.length / (green.calls.doSubmit.length + blue.calls.doSubmit.length);
    expect(greenShare).toBeGreaterThan(0.45);
    expect(greenShare).toBeLessThan(0.6);
    const before = blue.calls.doSubmit.length;
    await runJobs(provider, 'after', 20);
    expect(blue.calls.doSubmit.length).toBe(before);
    expect(clock.pending()).toBe(0);
  });

  it('rolls back to blue when green fails more than the gate allows', async () => {
    const green = createMockProvider({ id: 'v2', doWatch: [completes(), fails()] });
    const { provider, clock, seen, store, blue } = setup({ green });
    await provider.ready();
    await runJobs(provider, 'a', 200);
    await clock.advance(STEP_MS);
    const rolledBack = seen.find((event) => event.name === 'rollout:rolled-back');
    expect(rolledBack?.reason).toMatch(/error rate/);
    expect(provider.state()).toMatchObject({ phase: 'rolled_back', weight: 0 });
    expect(await store.load()).toMatchObject({ phase: 'rolled_back', weight: 0 });
    const before = green.calls.doSubmit.length;
    await runJobs(provider, 'b', 50);
    expect(green.calls.doSubmit.length).toBe(before);
    expect(blue.calls.doSubmit.length).toBeGreaterThan(200);
  });

  it('rolls back when green is slower at p95 than blue by more than the ratio', async () => {
    const { provider, clock, seen } = setup();
    await provider.ready();
    const refs: RemoteJobRef[] = [];
    for (let index = 0; index < 200; index++) {
      refs.push(await provider.doSubmit({ jobId: `slow-${index}`, workflow, images: [], attempt: 1 }));
    }
    const side = (ref: RemoteJobRef) => (ref.data as { blueGreenSide: string }).blueGreenSide;
    clock.set(1_000);
    for (const ref of refs.filter((candidate) => side(candidate) === 'blue'))
      await drain(provider.doWatch(ref));
    clock.set(5_000);
    for (const ref of refs.filter((candidate) => side(candidate) === 'green'))
      await drain(provider.doWatch(ref));
    await clock.advance(STEP_MS - 5_000);
    const rolledBack = seen.find((event) => event.name === 'rollout:rolled-back');
    expect(rolledBack?.reason).toMatch(/p95 latency 5000 ms is above 1.25 x blue's 1000 ms/);
  });

  it('holds a step that lacks green samples instead of advancing blind', async () => {
    const { provider, clock, seen } = setup();
    await provider.ready();
    await clock.advance(STEP_MS);
    expect(seen.map((event) => event.name)).toEqual(['step:started', 'step:held']);
    expect(provider.state()).toMatchObject({
      phase: 'rolling',
      weight: 10,
      stepIndex: 0,
      stepStartedAt: STEP_MS,
    });
    await runJobs(provider, 'late', 100);
    await clock.advance(STEP_MS);
    expect(provider.state()).toMatchObject({ weight: 25, stepIndex: 1 });
  });

  it('continues after a restart: same step, same deadline, and jobs watched and cancelled on their side', async () => {
    const store = createMemoryRolloutStore<BlueGreenState>();
    const clock = createVirtualClock({ start: 0 });
    const first = setup({ store, clock });
    await first.provider.ready();
    await runJobs(first.provider, 'one', 100);
    await clock.advance(STEP_MS);
    expect(first.provider.state()).toMatchObject({ stepIndex: 1, weight: 25 });
    const greenJob = Array.from({ length: 100 }, (_, index) => `two-${index}`).find(
      (id) => first.provider.sideFor(id) === 'green',
    )!;
    const ref = JSON.parse(
      JSON.stringify(await first.provider.doSubmit({ jobId: greenJob, workflow, images: [], attempt: 1 })),
    ) as RemoteJobRef;
    first.provider.close();
    await clock.advance(20_000);

    const second = setup({ store, clock });
    await second.provider.ready();
    expect(second.seen[0]).toMatchObject({ name: 'rollout:resumed' });
    expect(second.provider.state()).toMatchObject({ stepIndex: 1, weight: 25, stepStartedAt: STEP_MS });
    await drain(second.provider.doWatch(ref));
    await second.provider.doCancel(ref);
    expect(second.green.calls.doWatch).toHaveLength(1);
    expect(second.green.calls.doCancel[0]).toEqual({ remoteId: ref.remoteId });
    expect(second.blue.calls.doWatch).toHaveLength(0);
    // A reference journalled before the rollout (blue's own, no side) goes to blue.
    await drain(second.provider.doWatch({ remoteId: 'old-blue-job' }));
    expect(second.blue.calls.doWatch[0]).toEqual({ remoteId: 'old-blue-job' });
    await runJobs(second.provider, 'three', 100);
    // The step's gate comes STEP_MS after the step began, not after the restart.
    await clock.advance(STEP_MS - 20_000);
    expect(second.provider.state()).toMatchObject({ stepIndex: 2, weight: 50 });
    second.provider.close();
  });

  it('survives a dispatcher restart: the rollout goes on and a journalled green job resumes on green', async () => {
    let now = Date.UTC(2026, 0, 1);
    const clock = createVirtualClock({ start: now });
    const journal = createMemoryJournal({ now: () => now });
    const store = createJsonFileRolloutStore<BlueGreenState>({
      path: join(await mkdtemp(join(tmpdir(), 'blue-green-restart-')), 'rollout.json'),
    });
    const hanging = (
      _ref: RemoteJobRef,
      options?: { signal?: AbortSignal },
    ): AsyncIterable<ProviderJobEvent> => ({
      async *[Symbol.asyncIterator]() {
        yield { type: 'started' };
        await new Promise<void>((resolve) =>
          options?.signal?.addEventListener('abort', () => resolve(), { once: true }),
        );
      },
    });
    const makeRollout = (green: ReturnType<typeof createMockProvider>) =>
      createBlueGreen({
        blue: createMockProvider({ id: 'v1', doWatch: completes }),
        green,
        steps: [50, 100],
        gate: { minSamples: 1 },
        stepMs: STEP_MS,
        store,
        clock,
      });
    const firstGreen = createMockProvider({ id: 'v2', doSubmit: { remoteId: 'green-7' }, doWatch: hanging });
    const firstRollout = makeRollout(firstGreen);
    await firstRollout.ready();
    const jobId = Array.from({ length: 50 }, (_, index) => `render-${index}`).find(
      (id) => firstRollout.sideFor(id) === 'green',
    )!;
    const before = createDispatcher({ providers: [firstRollout], journal, clock });
    const graph = { ...workflow, '8': { class_type: 'VAEDecode', inputs: {} } };
    const handle = await before.submit(graph, { jobId });
    for (let index = 0; index < 50 && handle.status() !== 'running'; index++) await clock.advance(1);
    expect(handle.status()).toBe('running');
    // The process dies: timers stop, the claim runs out.
    before.close();
    firstRollout.close();
    now += 60_000;

    const secondGreen = createMockProvider({ id: 'v2', doWatch: completes });
    const secondRollout = makeRollout(secondGreen);
    const after = createDispatcher({ providers: [secondRollout], journal, clock });
    const handles = await after.resume();
    expect(handles.map((resumed) => resumed.id)).toEqual([jobId]);
    const result = await handles[0]!.result();
    expect(result.providerId).toBe('v1');
    expect(secondGreen.calls.doSubmit).toHaveLength(0);
    expect(secondGreen.calls.doWatch).toEqual([{ remoteId: 'green-7' }]);
    expect(secondRollout.state()).toMatchObject({ phase: 'rolling', stepIndex: 0, weight: 50 });
    after.close();
    secondRollout.close();
  });

  it('keeps its state in a JSON file written atomically, and starts afresh for a new green', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'blue-green-'));
    const path = join(directory, 'nested', 'rollout.json');
    const store = createJsonFileRolloutStore<BlueGreenState>({ path });
    expect(await store.load()).toBeUndefined();
    const clock = createVirtualClock({ start: 0 });
    const first = setup({ store, clock });
    await first.provider.ready();
    await runJobs(first.provider, 'f', 100);
    // Events follow the save: once the next step has started, the file holds it.
    const nextStep = new Promise((resolve) => first.provider.events.once('step:started', resolve));
    await clock.advance(STEP_MS);
    await nextStep;
    first.provider.close();
    const saved = JSON.parse(await readFile(path, 'utf8')) as BlueGreenState;
    expect(saved).toMatchObject({ version: 1, blueId: 'v1', greenId: 'v2', stepIndex: 1, weight: 25 });
    expect(await readdir(join(directory, 'nested'))).toEqual(['rollout.json']);

    const resumed = setup({ store: createJsonFileRolloutStore({ path }), clock });
    await resumed.provider.ready();
    expect(resumed.provider.state()).toMatchObject({ stepIndex: 1 });
    resumed.provider.close();

    const other = createBlueGreen({
      blue: createMockProvider({ id: 'v1' }),
      green: createMockProvider({ id: 'v3' }),
      stepMs: STEP_MS,
      store: createJsonFileRolloutStore({ path }),
      clock,
    });
    await other.ready();
    expect(other.state()).toMatchObject({ greenId: 'v3', stepIndex: 0, weight: 10 });
    other.close();

    await writeFile(path, '{ not json');
    const broken = createJsonFileRolloutStore<BlueGreenState>({ path });
    const error = await broken.load().catch((caught: unknown) => caught);
    expect(ConfigurationError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(/delete the file/);
  });

  it('sends everything to blue and says so when its store cannot be read; reports failed saves redacted', async () => {
    const clock = createVirtualClock({ start: 0 });
    const unreadable: RolloutStore<BlueGreenState> = {
      load: async () => {
        throw new Error('permission denied for token sk-secret-9876');
      },
      save: async () => undefined,
    };
    const blue = createMockProvider({ id: 'v1' });
    const green = createMockProvider({ id: 'v2' });
    const provider = createBlueGreen({
      blue,
      green,
      stepMs: STEP_MS,
      store: unreadable,
      clock,
      secrets: ['sk-secret-9876'],
    });
    const errors: string[] = [];
    provider.events.on('store:error', (event) => errors.push(event.message));
    await provider.ready();
    await runJobs(provider, 'x', 30);
    expect(green.calls.doSubmit).toHaveLength(0);
    expect(errors).toHaveLength(1);
    expect(errors[0]).not.toContain('sk-secret-9876');

    const failingSave: RolloutStore<BlueGreenState> = {
      load: async () => undefined,
      save: async () => {
        throw new Error('disk full');
      },
    };
    const second = createBlueGreen({ blue, green, stepMs: STEP_MS, store: failingSave, clock });
    const saveErrors: string[] = [];
    second.events.on('store:error', (event) => saveErrors.push(`${event.operation}: ${event.message}`));
    await second.ready();
    expect(saveErrors).toEqual(['save: disk full']);
    expect(second.state()).toMatchObject({ phase: 'rolling', weight: 10 });
    second.close();
  });

  it('rolls back by hand, and reports the health of the sides that take traffic', async () => {
    const clock = createVirtualClock({ start: 0 });
    const blue = createMockProvider({
      id: 'v1',
      doHealth: { status: 'healthy', idleWorkers: 2, busyWorkers: 1, checkedAt: 5 },
    });
    const green = createMockProvider({
      id: 'v2',
      doHealth: new ApiCallError({ message: 'unreachable', url: 'https://x', statusCode: 503 }),
    });
    const provider = createBlueGreen({ blue, green, steps: [50, 100], stepMs: STEP_MS, clock });
    const health = await provider.doHealth();
    expect(health).toMatchObject({ status: 'degraded', idleWorkers: 2, busyWorkers: 1 });
    expect(health.message).toContain('green: unreachable');
    await provider.rollback('bad release');
    expect(provider.state()).toMatchObject({ phase: 'rolled_back', reason: 'bad release' });
    expect((await provider.doHealth()).status).toBe('healthy');
    expect(clock.pending()).toBe(0);
  });

  it('rolls back when a custom gate says so, and when it throws', async () => {
    const clock = createVirtualClock({ start: 0 });
    const provider = createBlueGreen({
      blue: createMockProvider({ id: 'v1' }),
      green: createMockProvider({ id: 'v2' }),
      stepMs: STEP_MS,
      clock,
      gate: () => {
        throw new Error('gate broke');
      },
    });
    const reasons: string[] = [];
    provider.events.on('rollout:rolled-back', (event) => reasons.push(event.reason));
    await provider.ready();
    await clock.advance(STEP_MS);
    expect(reasons).toEqual(['step 1 (10 %): the gate threw: gate broke']);
  });

  it('validates its options, naming the one that is wrong', () => {
    const blue = createMockProvider({ id: 'v1' });
    const green = createMockProvider({ id: 'v2' });
    const argumentOf = (make: () => unknown) => {
      try {
        make();
      } catch (error) {
        return InvalidArgumentError.isInstance(error) ? error.argument : String(error);
      }
      return undefined;
    };
    expect(argumentOf(() => createBlueGreen({ blue, green, stepMs: 0 }))).toBe('stepMs');
    expect(argumentOf(() => createBlueGreen({ blue, green, stepMs: 1, steps: [10, 50] }))).toBe('steps');
    expect(argumentOf(() => createBlueGreen({ blue, green, stepMs: 1, steps: [50, 10, 100] }))).toBe('steps');
    expect(argumentOf(() => createBlueGreen({ blue, green: blue, stepMs: 1 }))).toBe('green');
    expect(argumentOf(() => createBlueGreen({ blue, green, stepMs: 1, gate: { maxErrorRate: 2 } }))).toBe(
      'gate.maxErrorRate',
    );
    expect(argumentOf(() => createHealthGate({ minSamples: 0 }))).toBe('gate.minSamples');
    expect(argumentOf(() => createJsonFileRolloutStore({ path: '' }))).toBe('path');
  });
});
