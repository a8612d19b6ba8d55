import type { ScalingPolicyV1 } from '@comfy-serverless/core';
import { describe, expect, it } from 'vitest';
import { createKeepAlivePolicy, createStaticPolicy } from './baselines';
import { computeClairvoyantBound } from './clairvoyant-bound';
import { createColdStartDistribution } from './cold-start';
import { EventHeap } from './event-heap';
import { simulate } from './simulator';
import { buildTrace, parseTraceCsv, sliceTrace } from './trace';

const pool = { id: 'pool', usdPerSecond: 0.001, coldStart: 10_000, maxWorkers: 10 };

describe('simulate', () => {
  it('shows a policy only the past: arrivals, queue, running jobs and waits up to its now, and a first now on the hour grid', () => {
    // Bursty arrivals (several in the same second) over a few hours, some arriving while
    // workers boot, so jobs queue and wait.
    const arrivals: number[] = [];
    let time = 5_400_000 + 7_321;
    for (let burst = 0; burst < 200; burst++) {
      for (let job = 0; job < 1 + (burst % 5); job++) arrivals.push(time + job * 300);
      time += 20_000 + ((burst * 7_919) % 90_000);
    }
    const trace = buildTrace(
      arrivals,
      arrivals.map((_, index) => 5_000 + (index % 7) * 4_000),
    );
    const problems: string[] = [];
    let firstNow: number | undefined;
    let decisions = 0;
    const probe: ScalingPolicyV1 = {
      specificationVersion: 'v1',
      name: 'probe',
      decide(snapshot) {
        decisions++;
        firstNow ??= snapshot.now;
        const { now, demand } = snapshot;
        let arrived = 0;
        while (arrived < trace.count && trace.arrivalMs[arrived]! <= now) arrived++;
        // Every arrival bucket holds exactly the trace's arrivals in it up to now.
        const bucket = Math.floor(now / demand.bucketMs);
        demand.arrivals.forEach((count, index) => {
          const start = (bucket - demand.arrivals.length + 1 + index) * demand.bucketMs;
          let expected = 0;
          for (let job = 0; job < trace.count; job++) {
            const at = trace.arrivalMs[job]!;
            if (at >= start && at < start + demand.bucketMs && at <= now) expected++;
          }
          if (count !== expected)
            problems.push(`now ${now}: bucket ${index} shows ${count}, expected ${expected}`);
        });
        if (demand.queueDepth + demand.inFlight > arrived)
          problems.push(
            `now ${now}: ${demand.queueDepth + demand.inFlight} jobs queued or running, ${arrived} arrived`,
          );
        if (demand.recentWaitsMs.length > arrived)
          problems.push(`now ${now}: ${demand.recentWaitsMs.length} waits, ${arrived} arrived`);
        // A wait w is of a job that started by now: one that arrived by now - w.
        for (const wait of demand.recentWaitsMs)
          if (!(wait >= 0) || trace.arrivalMs[0]! + wait > now)
            problems.push(`now ${now}: wait ${wait} from the future`);
        return { targets: { pool: { minWorkers: 1 } } };
      },
    };
    simulate({ trace, policy: probe, targets: [pool] });
    expect(decisions).toBeGreaterThan(100);
    expect(problems).toEqual([]);
    // The first decision does not hint at the first arrival: it is on the clock hour.
    expect(firstNow! % 3_600_000).toBe(0);
    expect(firstNow!).toBeLessThanOrEqual(arrivals[0]! - 10_000 - 10_000);
  });

  it('bills cold start, run and idle time of a keep-alive worker', () => {
    const trace = buildTrace([0, 100_000], [5_000, 5_000]);
    const result = simulate({ trace, policy: createKeepAlivePolicy(0), targets: [pool] });
    expect(Array.from(result.waitsMs)).toEqual([10_000, 10_000]);
    expect(result.gpuSeconds).toBeCloseTo(30, 6);
    expect(result.coldStarts).toBe(2);
    expect(result.costUsd).toBeCloseTo(0.03, 9);
    expect(result.shareWithin10s).toBe(1);
  });

  it('keeps a warm worker through a gap shorter than the idle timeout', () => {
    const trace = buildTrace([0, 20_000], [5_000, 5_000]);
    const result = simulate({ trace, policy: createKeepAlivePolicy(60), targets: [pool] });
    expect(Array.from(result.waitsMs)).toEqual([10_000, 0]);
    expect(result.coldStarts).toBe(1);
    // Boot 10 s, run 5 (to 15 s), idle 5 (to 20 s), run 5.
    expect(result.gpuSeconds).toBeCloseTo(10 + 5 + 5 + 5, 6);
  });

  it('serves every job at once when a static pool is warm', () => {
    const trace = buildTrace([60_000, 61_000, 62_000], [5_000, 5_000, 5_000]);
    const result = simulate({ trace, policy: createStaticPolicy(3), targets: [pool] });
    expect(result.waitP99Ms).toBe(0);
    expect(result.coldStarts).toBe(3);
  });

  it('calls the policy with the snapshot shape and applies its settings within bounds', () => {
    const seen: number[] = [];
    const policy: ScalingPolicyV1 = {
      specificationVersion: 'v1',
      name: 'probe',
      decide(snapshot) {
        seen.push(snapshot.demand.queueDepth + snapshot.demand.inFlight);
        expect(snapshot.targets[0]?.state.bounds.maxWorkers).toBe(10);
        return { targets: { pool: { minWorkers: 50 } } };
      },
    };
    const trace = buildTrace([30_000], [1_000]);
    const result = simulate({ trace, policy, targets: [pool], intervalMs: 1_000 });
    expect(seen.length).toBeGreaterThan(10);
    // minWorkers 50 was clamped to the pool's 10.
    expect(result.coldStarts).toBe(10);
  });

  it('draws cold starts from a distribution with a seed, the same every run', () => {
    const coldStart = createColdStartDistribution([5_000, 20_000, 40_000]);
    const trace = buildTrace([0, 100_000, 200_000, 300_000], [1_000, 1_000, 1_000, 1_000]);
    const run = () =>
      Array.from(
        simulate({ trace, policy: createKeepAlivePolicy(0), targets: [{ ...pool, coldStart }], seed: 7 })
          .waitsMs,
      );
    expect(run()).toEqual(run());
    for (const wait of run()) expect([5_000, 20_000, 40_000]).toContain(wait);
  });

  it('adds a model switch time when a worker changes model', () => {
    const trace = buildTrace([0, 20_000], [5_000, 5_000], [0, 1], ['a', 'b']);
    const result = simulate({
      trace,
      policy: createKeepAlivePolicy(60),
      targets: [{ ...pool, modelSwitchMs: 3_000 }],
    });
    expect(result.busySeconds).toBeCloseTo(13, 6);
  });
});

describe('computeClairvoyantBound', () => {
  it('keeps a worker through gaps up to a cold start and restarts after longer ones', () => {
    const short = computeClairvoyantBound(buildTrace([0, 10_000], [5_000, 5_000]), 10_000);
    expect(short.gpuSeconds).toBeCloseTo(10 + 5 + 5 + 5, 6);
    expect(short.workerStarts).toBe(1);
    const long = computeClairvoyantBound(buildTrace([0, 100_000], [5_000, 5_000]), 10_000);
    expect(long.gpuSeconds).toBeCloseTo(30, 6);
    expect(long.workerStarts).toBe(2);
    const overlap = computeClairvoyantBound(buildTrace([0, 1_000], [5_000, 5_000]), 10_000);
    expect(overlap.peakConcurrency).toBe(2);
  });
});

describe('EventHeap', () => {
  it('pops events in time order, ties in insertion order', () => {
    const heap = new EventHeap(2);
    const times = [5, 3, 9, 3, 1, 7, 7, 2];
    times.forEach((time, index) => {
      heap.push(time, index, 0);
    });
    const order: number[] = [];
    while (heap.length > 0) {
      order.push(heap.peekPayload());
      heap.pop();
    }
    expect(order).toEqual([4, 7, 1, 3, 0, 5, 6, 2]);
  });
});

describe('parseTraceCsv', () => {
  it('reads configured columns, quoted fields and skips unreadable rows', () => {
    const csv =
      'when,"name, quoted",secs,model\n2024-11-15 00:00:10,"a, b",2.5,m1\nnot a time,x,1,m1\n2024-11-15 00:00:05,c,1,m2\n';
    const trace = parseTraceCsv(csv, { time: 'when', execution: 'secs', model: 'model' });
    expect(trace.count).toBe(2);
    expect(trace.skippedRows).toBe(1);
    expect(trace.arrivalMs[0]).toBe(Date.UTC(2024, 10, 15, 0, 0, 5));
    expect(trace.executionMs[1]).toBe(2_500);
    expect(trace.models).toEqual(['m1', 'm2']);
    expect(Array.from(trace.modelIndex)).toEqual([1, 0]);
  });

  it('reads epoch seconds and milliseconds when the time column is a number', () => {
    const seconds = parseTraceCsv('t,e\n1700000000,1\n', { time: 't', execution: 'e' });
    const milliseconds = parseTraceCsv('t,e\n1700000000000,1\n', { time: 't', execution: 'e' });
    expect(seconds.arrivalMs[0]).toBe(1_700_000_000_000);
    expect(milliseconds.arrivalMs[0]).toBe(1_700_000_000_000);
  });

  it('names the missing column', () => {
    expect(() => parseTraceCsv('a,b\n1,2\n', { time: 'a', execution: 'exec' })).toThrow(/columns.execution/);
  });

  it('compresses arrivals with a speed-up and selects a window', () => {
    const trace = buildTrace([0, 10_000, 20_000, 30_000], [1, 1, 1, 1]);
    const sliced = sliceTrace(trace, { from: 10_000, to: 30_000, speedup: 10 });
    expect(Array.from(sliced.arrivalMs)).toEqual([10_000, 11_000]);
  });
});
