import { describe, expect, it } from 'vitest';
import { createDispatcher } from '../dispatch/dispatcher';
import { createMockProvider, placeholderOutput } from '../test/mock-provider';
import { createVirtualClock } from '../test/virtual-clock';
import { createFakeDispatcher, runJob } from './__fixtures__/fake-dispatcher';
import { createPerformanceReport, formatPerformanceReport } from './performance-report';

const MINUTE = 60_000;

describe('createPerformanceReport', () => {
  it('reports throughput, latency quantiles, cost per job, cold-start share and error rates', () => {
    const clock = createVirtualClock({ start: 0 });
    const fake = createFakeDispatcher();
    const performance = createPerformanceReport(fake, { clock, windowMs: 10 * MINUTE });
    // 100 jobs: latencies 1..100 s (execution only), 20 of them after a 5 s cold start.
    for (let index = 1; index <= 100; index++) {
      runJob(fake, `job-${index}`, 'runpod:a', index * 1_000, {
        executionMs: index * 1_000,
        ...(index <= 20 ? { coldStartMs: 5_000 } : {}),
        usd: 0.01,
      });
    }
    fake.emit({ type: 'queued', jobId: 'bad', at: 1_000 });
    fake.emit({ type: 'routed', jobId: 'bad', at: 1_000, providerId: 'modal:b', candidates: ['modal:b'] });
    fake.emit({
      type: 'failed',
      jobId: 'bad',
      at: 2_000,
      error: { name: 'JobFailedError', message: 'x', isRetryable: false },
    });
    fake.emit({ type: 'queued', jobId: 'gone', at: 1_000 });
    fake.emit({ type: 'cancelled', jobId: 'gone', at: 1_500 });
    clock.set(5 * MINUTE);
    const kpis = performance.report();
    expect(kpis.since).toBe(0);
    expect(kpis.until).toBe(5 * MINUTE);
    expect(kpis.jobs).toEqual({ ended: 102, completed: 100, failed: 1, cancelled: 1, timedOut: 0 });
    expect(kpis.throughputPerMinute).toBeCloseTo(20, 9);
    // The 20 cold-started jobs took 5 s longer: latencies 6..25 s and 21..100 s.
    expect(kpis.latencyMs!.p50).toBeCloseTo(50.5 * 1_000, 0);
    expect(kpis.latencyMs!.p99).toBeGreaterThan(kpis.latencyMs!.p95);
    expect(kpis.executionMs!.p50).toBeCloseTo(50.5 * 1_000, 6);
    expect(kpis.costPerJobUsd).toBeCloseTo(0.01, 12);
    expect(kpis.totalCostUsd).toBeCloseTo(1, 9);
    expect(kpis.coldStartShare).toBeCloseTo(0.2, 12);
    expect(kpis.cacheHitRate).toBeUndefined();
    expect(kpis.errorRate).toBeCloseTo(1 / 101, 12);
    expect(kpis.errorRateByProvider['runpod:a']).toEqual({ attempts: 100, errors: 0, errorRate: 0 });
    expect(kpis.errorRateByProvider['modal:b']).toEqual({ attempts: 1, errors: 1, errorRate: 1 });
    expect(kpis.bottleneck?.kind).toBe('execution');
    expect(formatPerformanceReport(kpis)).toContain('100 completed');
  });

  it('names queue wait when jobs mostly wait, and says what to do', () => {
    const clock = createVirtualClock({ start: 0 });
    const fake = createFakeDispatcher();
    const performance = createPerformanceReport(fake, { clock });
    for (let index = 0; index < 20; index++) {
      runJob(fake, `j${index}`, 'runpod:a', 0, {
        routeMs: 10,
        submitMs: 40_000,
        startMs: 5_000,
        executionMs: 5_000,
      });
    }
    clock.set(MINUTE);
    const { bottleneck } = performance.report();
    expect(bottleneck?.kind).toBe('queue_wait');
    expect(bottleneck?.score).toBeCloseTo(45_010 / 50_010, 9);
    expect(bottleneck?.message).toMatch(/Queue wait is 90 % of job latency/);
    expect(bottleneck?.message).toMatch(/workers|concurrency/);
  });

  it('names cold starts when workers starting dominate', () => {
    const clock = createVirtualClock({ start: 0 });
    const fake = createFakeDispatcher();
    const performance = createPerformanceReport(fake, { clock });
    for (let index = 0; index < 10; index++) {
      runJob(fake, `j${index}`, 'runpod:a', 0, { coldStartMs: 60_000, executionMs: 10_000 });
    }
    clock.set(2 * MINUTE);
    const { bottleneck } = performance.report();
    expect(bottleneck?.kind).toBe('cold_start');
    expect(bottleneck?.message).toMatch(/Cold starts are 86 %/);
  });

  it('names a provider whose error rate stands out, counting attempts that moved elsewhere', () => {
    const clock = createVirtualClock({ start: 0 });
    const fake = createFakeDispatcher();
    const performance = createPerformanceReport(fake, { clock });
    for (let index = 0; index < 10; index++) {
      const jobId = `j${index}`;
      fake.emit({ type: 'queued', jobId, at: 0 });
      fake.emit({ type: 'routed', jobId, at: 0, providerId: 'modal:b', candidates: ['modal:b', 'runpod:a'] });
      if (index < 3) {
        fake.emit({
          type: 'retrying',
          jobId,
          at: 100,
          providerId: 'modal:b',
          nextProviderId: 'runpod:a',
          attempt: 2,
          delayMs: 0,
          error: { name: 'ApiCallError', message: '503', isRetryable: true },
        });
      }
      runJob(fake, `${jobId}-tail`, index < 3 ? 'runpod:a' : 'modal:b', 0, { executionMs: 10_000 });
    }
    clock.set(MINUTE);
    const kpis = performance.report();
    expect(kpis.errorRateByProvider['modal:b']).toEqual({ attempts: 10, errors: 3, errorRate: 0.3 });
    expect(kpis.bottleneck).toMatchObject({ kind: 'provider_errors', providerId: 'modal:b' });
    expect(kpis.bottleneck?.message).toContain('modal:b failed 3 of 10 attempts');
  });

  it('reports the cache hit rate once model loads are recorded, and names a poor cache', () => {
    const clock = createVirtualClock({ start: 0 });
    const fake = createFakeDispatcher();
    const performance = createPerformanceReport(fake, { clock });
    runJob(fake, 'j', 'runpod:a', 0, { executionMs: 100 });
    for (let index = 0; index < 10; index++) performance.recordModelCache(index === 0, 'checkpoints');
    clock.set(1_000);
    const kpis = performance.report();
    expect(kpis.cacheHitRate).toBeCloseTo(0.1, 12);
    // Execution is all of latency here (1 x 0.5); a 90 % miss rate weighs 0.9 x 0.6 = 0.54.
    expect(kpis.bottleneck).toMatchObject({ kind: 'model_cache' });
    expect(kpis.bottleneck?.score).toBeCloseTo(0.54, 12);
    expect(kpis.bottleneck?.message).toContain('Only 10 % of model loads hit the cache');
    runJob(fake, 'k', 'runpod:a', 0, { startMs: 300, executionMs: 100 });
    expect(performance.report().bottleneck?.kind).toBe('queue_wait');
  });

  it('covers only the asked period and keeps memory fixed at its capacity', () => {
    const clock = createVirtualClock({ start: 0 });
    const fake = createFakeDispatcher();
    const performance = createPerformanceReport(fake, { clock, capacity: 50 });
    for (let index = 0; index < 200; index++) {
      runJob(fake, `j${index}`, 'runpod:a', index * 1_000, { executionMs: 1_000 });
    }
    clock.set(201_000);
    expect(performance.report({ sinceMs: 0 }).jobs.completed).toBe(50);
    expect(performance.report({ sinceMs: 191_000 }).jobs.completed).toBe(10);
    expect(performance.report({ windowMs: 5_000 }).jobs.completed).toBe(5);
    expect(performance.report({ sinceMs: 500_000 }).bottleneck).toBeUndefined();
    expect(() => performance.report({ sinceMs: Number.NaN })).toThrow(/sinceMs/);
    expect(() => createPerformanceReport(fake, { capacity: 0 })).toThrow(/capacity/);
    performance.detach();
    runJob(fake, 'late', 'runpod:a', 201_000, { executionMs: 0 });
    expect(performance.report({ sinceMs: 201_000 }).jobs.completed).toBe(0);
  });

  it('follows a real dispatcher on its clock', async () => {
    const clock = createVirtualClock({ start: 0 });
    const provider = createMockProvider({
      id: 'mock:a',
      pricing: { usdPerSecond: 0.001 },
      doWatch: [
        { type: 'started', coldStartMs: 2_000 },
        { type: 'completed', outputs: [placeholderOutput()], timing: { executionMs: 4_000 } },
      ],
    });
    const dispatcher = createDispatcher({ providers: [provider], clock });
    const performance = createPerformanceReport(dispatcher, { clock });
    const workflow = {
      '9': { class_type: 'SaveImage', inputs: { images: ['8', 0] } },
      '8': { class_type: 'VAEDecode', inputs: {} },
    };
    await dispatcher.runWorkflow(workflow, { jobId: 'a' });
    await dispatcher.runWorkflow(workflow, { jobId: 'b' });
    clock.set(MINUTE);
    const kpis = performance.report();
    expect(kpis.jobs.completed).toBe(2);
    expect(kpis.executionMs?.p50).toBe(4_000);
    expect(kpis.coldStartShare).toBe(1);
    expect(kpis.costPerJobUsd).toBeCloseTo(0.006, 12);
    dispatcher.close();
  });
});
