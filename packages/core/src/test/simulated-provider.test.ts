import { describe, expect, it } from 'vitest';
import type { ProviderJobEvent } from '../spec/job';
import { testProvider } from './conformance';
import { createSimulatedProvider } from './simulated-provider';
import { createVirtualClock } from './virtual-clock';

const workflow = { '9': { class_type: 'SaveImage', inputs: { images: ['8', 0] } } };

testProvider(
  'simulated',
  async () => {
    let executionMs = 50;
    let fail = false;
    const provider = createSimulatedProvider({
      gpu: 'L4-24GB',
      coldStartMs: 10,
      executionMs: () => executionMs,
      failureRate: 0.5,
      random: () => (fail ? 0 : 1),
    });
    return {
      provider,
      arrange(scenario) {
        executionMs = scenario === 'long-running' ? 3_600_000 : 20;
        fail = scenario === 'execution-failure';
        if (scenario === 'submit-fatal-error') return { workflow: null as unknown as typeof workflow };
        return { workflow };
      },
    };
  },
  { skip: { 'submit-retryable-error': 'the simulated platform has no transient faults' } },
);

async function drain(iterable: AsyncIterable<ProviderJobEvent>): Promise<ProviderJobEvent[]> {
  const events: ProviderJobEvent[] = [];
  for await (const event of iterable) events.push(event);
  return events;
}

describe('createSimulatedProvider', () => {
  it('cold-starts workers up to the maximum, queues the rest, and bills per worker-second', async () => {
    const clock = createVirtualClock({ start: 0 });
    const provider = createSimulatedProvider({
      gpu: 'L4-24GB',
      pricing: { usdPerSecond: 0.001 },
      workers: { min: 0, max: 2 },
      coldStartMs: 10_000,
      executionMs: 5_000,
      idleTimeoutMs: 5_000,
      clock,
    });
    const refs = await Promise.all(
      [1, 2, 3].map((index) => provider.doSubmit({ jobId: `j${index}`, workflow, images: [], attempt: 1 })),
    );
    const watches = refs.map((ref) => drain(provider.doWatch(ref)));
    expect((await provider.doHealth()).initializingWorkers).toBe(2);
    expect((await provider.doHealth()).queued).toBe(3);
    await clock.advance(10_000);
    expect((await provider.doHealth()).busyWorkers).toBe(2);
    await clock.advance(10_000);
    await clock.advance(10_000);
    const events = await Promise.all(watches);
    for (const jobEvents of events) expect(jobEvents.at(-1)?.type).toBe('completed');
    const third = events[2]!.find((event) => event.type === 'started');
    expect(third).toMatchObject({ type: 'started', queuedMs: 15_000 });
    const stats = provider.stats();
    expect(stats.coldStarts).toBe(2);
    expect(stats.jobsCompleted).toBe(3);
    // Worker 1: start 0, jobs 10-15 and 15-20 s, idle until 25 s. Worker 2: 0 to 15 s, idle until 20 s.
    expect(stats.gpuSecondsBilled).toBe(25 + 20);
    expect(stats.usdBilled).toBeCloseTo(0.045, 10);
  });

  it('keeps the minimum number of workers warm and applies new bounds through its scale target', async () => {
    const clock = createVirtualClock({ start: 0 });
    const provider = createSimulatedProvider({
      gpu: 'L4-24GB',
      workers: { min: 0, max: 1 },
      coldStartMs: 1_000,
      executionMs: 1_000,
      clock,
    });
    await provider.target.apply({ minWorkers: 2, maxWorkers: 3 });
    await clock.advance(1_000);
    const state = await provider.target.describe();
    expect(state).toMatchObject({ minWorkers: 2, maxWorkers: 3, runningWorkers: 2, idleWorkers: 2 });
    await clock.advance(60_000);
    expect((await provider.target.describe()).runningWorkers).toBe(2);
    await expect(provider.target.apply({ minWorkers: 5, maxWorkers: 3 })).rejects.toThrow(
      /minWorkers <= maxWorkers/,
    );
  });
});
