// Tests that each fail when the behaviour they name is removed (see docs/scaling.md: the
// review found that mutations of these rules passed every earlier test).
import type { ScalingSnapshot } from '@comfy-serverless/core';
import { describe, expect, it } from 'vitest';
import { resolveObjective } from '../objective';
import { createRandom } from '../sim/random';
import { CapacityPlanner } from './capacity-planner';
import { DemandTracker } from './demand-tracker';
import { createPredictivePolicy } from './predictive-policy';
import { createReactivePolicy } from './reactive-policy';

interface SnapshotOptions {
  now: number;
  arriving?: number;
  /** Arrivals in the bucket before (defaults to `arriving`: a steady stream). */
  arrivedBefore?: number;
  inFlight?: number;
  queueDepth?: number;
  waits?: number[];
  idle?: number;
  coldStartMs?: number;
  intervalMs?: number;
  executions?: number[];
}

/** One decision's snapshot: one pool, arrivals in 10 s buckets ending at `now`. */
function snapshot(options: SnapshotOptions): ScalingSnapshot {
  const idle = options.idle ?? 0;
  const inFlight = options.inFlight ?? 0;
  return {
    now: options.now,
    intervalMs: options.intervalMs ?? 10_000,
    demand: {
      arrivals: [0, options.arrivedBefore ?? options.arriving ?? 0, options.arriving ?? 0],
      bucketMs: 10_000,
      queueDepth: options.queueDepth ?? 0,
      inFlight,
      recentWaitsMs: options.waits ?? [],
      recentExecutionMs: options.executions ?? [],
    },
    targets: [
      {
        id: 't0',
        platform: 'test',
        state: {
          minWorkers: 0,
          maxWorkers: 40,
          runningWorkers: inFlight + idle,
          idleWorkers: idle,
          bounds: { minWorkers: 0, maxWorkers: 40 },
          describedAt: options.now,
        },
        queueDepth: options.queueDepth ?? 0,
        inFlight,
        usdPerSecond: 0.0002,
        coldStartMs: options.coldStartMs ?? 20_000,
      },
    ],
  };
}

const p99 = () => new CapacityPlanner(resolveObjective({ waitMs: 10_000, quantile: 0.99 }));

describe('the price of a late job', () => {
  it('rises at every late job and falls at every on-time one (a scripted wait stream)', () => {
    const planner = p99();
    let now = 1_000_000;
    const prices: number[] = [];
    // One job per decision (its wait is the newest sample): 10 late, then 40 on time.
    const waits = [...Array.from({ length: 10 }, () => 60_000), ...Array.from({ length: 40 }, () => 1_000)];
    for (const wait of waits) {
      planner.observe(snapshot({ now, arriving: 1, waits: [wait] }));
      prices.push(planner.lateJobPriceSeconds!);
      now += 10_000;
    }
    for (let index = 1; index < 10; index++) expect(prices[index]!).toBeGreaterThan(prices[index - 1]!);
    for (let index = 11; index < 50; index++) expect(prices[index]!).toBeLessThan(prices[index - 1]!);
    // And by a material amount: ten late jobs move the price by more than e^1.
    expect(prices[9]! / prices[0]!).toBeGreaterThan(Math.E);
  });

  it('keeps its first steps large while the late share is over budget (Kesten)', () => {
    // Twenty late jobs in a row: after the first, the late share so far is 100 %, far over
    // the margin, so no further late job is "within budget" and the step stays where the
    // first late job left it, 0.3/sqrt(2) (times 1 - a'/10 ~ 1). Without Kesten's rule it
    // would keep shrinking as 0.3/sqrt(1 + k): the last ten steps would sum to about 0.77.
    const planner = p99();
    let now = 1_000_000;
    const logPrices: number[] = [];
    for (let job = 0; job < 20; job++) {
      planner.observe(snapshot({ now, arriving: 1, waits: [60_000] }));
      logPrices.push(Math.log(planner.lateJobPriceSeconds!));
      now += 10_000;
    }
    const steps = logPrices.slice(1).map((logPrice, index) => logPrice - logPrices[index]!);
    for (const step of steps.slice(1)) expect(step).toBeCloseTo(steps[0]!, 9);
    expect(logPrices[19]! - logPrices[9]!).toBeGreaterThan(10 * 0.2);
  });
});

describe('the spare model', () => {
  it('holds different spare counts in two contexts with different rise rates, within one policy', () => {
    // Demand cycles 1 -> 4 -> 4 -> 1 jobs running, with one arrival every interval (so the
    // time since the last arrival and the recent arrivals are the same throughout): after one
    // running job, demand always rises by 3; after four it never rises.
    const planner = p99();
    const cycle = [1, 4, 4];
    let now = 1_000_000;
    for (let step = 0; step < 600; step++) {
      planner.observe(snapshot({ now, arriving: 1, inFlight: cycle[step % 3]!, waits: [0], idle: 3 }));
      now += 10_000;
    }
    const sparesAt = (inFlight: number) => {
      const state = snapshot({ now, arriving: 1, inFlight, waits: [0], idle: 3 });
      planner.observe(state);
      now += 10_000;
      return planner.workersFor(state) - inFlight;
    };
    const beforeRise = sparesAt(1);
    const afterRise = sparesAt(4);
    expect(beforeRise).toBeGreaterThanOrEqual(3);
    expect(afterRise).toBe(0);
  });
});

describe('cost mode', () => {
  it('lowers its idle timeout below one cold start when idle spells are always shorter than C/4', () => {
    // C = 100 s; a worker goes idle and is reused within 15 s, again and again.
    const policy = createReactivePolicy({ objective: { mode: 'cost' } });
    let now = 1_000_000;
    let timeout = Number.NaN;
    const first = policy.decide(snapshot({ now, coldStartMs: 100_000 })).targets.t0!.idleTimeoutSeconds;
    for (let step = 0; step < 100; step++) {
      now += 10_000;
      const idle = step % 2;
      timeout = policy.decide(
        snapshot({
          now,
          coldStartMs: 100_000,
          idle,
          inFlight: 1 - idle,
          arriving: idle,
          arrivedBefore: 1 - idle,
        }),
      ).targets.t0!.idleTimeoutSeconds!;
    }
    expect(first).toBe(100);
    expect(timeout).toBe(25);
  });
});

describe('the demand tracker', () => {
  it('counts each job wait once across successive calls', () => {
    const tracker = new DemandTracker();
    const seen: number[] = [];
    // Call 1: one job arrived and started (wait 5). Call 2: one more (wait 7); the snapshot's
    // sample of recent waits still holds the first one. Call 3: nothing new.
    tracker.update(snapshot({ now: 1_000_000, arriving: 1, waits: [5] }));
    seen.push(...tracker.newWaits);
    tracker.update(snapshot({ now: 1_010_000, arriving: 1, waits: [5, 7] }));
    seen.push(...tracker.newWaits);
    tracker.update(snapshot({ now: 1_020_000, arrivedBefore: 1, waits: [5, 7] }));
    seen.push(...tracker.newWaits);
    expect(seen).toEqual([5, 7]);
  });
});

describe('the predictive policy', () => {
  it("puts the forecast's floor above the reactive count when the forecast calls for more, using the interval's lower end", () => {
    // 48 hours of steady, noisy traffic: each hour 4, 5 or 6 arrivals per 10 s bucket (1,440
    // to 2,160 an hour, mean 1,800, that is 0.5 jobs/s), no job ever seen running, no wait
    // late. The reactive policy sees no rise in demand and holds nothing; the forecast, at
    // 30 s per job (the default service time), keeps 15 workers busy at the mean rate. The
    // lower end of the 85 % interval gives fewer than that, the upper end more.
    const random = createRandom(5);
    const predictive = createPredictivePolicy({ objective: { waitMs: 10_000, quantile: 0.99 } });
    const reactive = createReactivePolicy({ objective: { waitMs: 10_000, quantile: 0.99 } });
    let now = 3_600_000 * 1_000;
    let perBucket = 5;
    let predicted = 0;
    let reacted = 0;
    for (let step = 0; step < 48 * 360; step++) {
      if (step % 360 === 0) perBucket = 4 + Math.floor(random() * 3);
      const state = snapshot({ now, arriving: perBucket, waits: Array.from({ length: perBucket }, () => 0) });
      predicted = predictive.decide(state).targets.t0!.minWorkers!;
      reacted = reactive.decide(state).targets.t0!.minWorkers!;
      now += 10_000;
    }
    expect(reacted).toBe(0);
    expect(predicted).toBeGreaterThanOrEqual(5);
    expect(predicted).toBeLessThan(15);
  });
});
