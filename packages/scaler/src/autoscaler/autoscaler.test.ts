import type { ScaleSettings, ScaleTargetState, ScaleTargetV1, ScalingPolicyV1 } from '@comfy-serverless/core';
import { createVirtualClock } from '@comfy-serverless/core/test';
import { describe, expect, it } from 'vitest';
import { createMemoryLease } from '../lease/memory-lease';
import { createAutoscaler } from './autoscaler';

function fakeTarget(id: string, providerId: string) {
  let state: ScaleTargetState = {
    minWorkers: 0,
    maxWorkers: 5,
    runningWorkers: 1,
    idleWorkers: 0,
    bounds: { minWorkers: 0, maxWorkers: 5 },
    usdPerSecond: 0.001,
    coldStartMs: 20_000,
    describedAt: 0,
  };
  const applied: ScaleSettings[] = [];
  const target: ScaleTargetV1 = {
    specificationVersion: 'v1',
    id,
    platform: 'fake',
    providerId,
    describe: async () => ({ ...state }),
    apply: async (settings) => {
      applied.push(settings);
      state = { ...state, ...settings };
      return { ...state };
    },
  };
  return { target, applied };
}

const dispatcher = {
  metrics: () => ({
    demand: {
      arrivals: [1],
      bucketMs: 10_000,
      queueDepth: 4,
      inFlight: 1,
      recentWaitsMs: [],
      recentExecutionMs: [],
    },
    providers: { p1: { queueDepth: 4, inFlight: 1 } },
  }),
};

const wantAll: ScalingPolicyV1 = {
  specificationVersion: 'v1',
  name: 'queue',
  decide: (snapshot) => ({
    targets: Object.fromEntries(
      snapshot.targets.map((target) => [target.id, { minWorkers: target.queueDepth + target.inFlight + 10 }]),
    ),
  }),
};

describe('createAutoscaler', () => {
  it('builds the snapshot from the dispatcher and targets, clamps, applies and emits', async () => {
    const clock = createVirtualClock({ start: 0 });
    const { target, applied } = fakeTarget('t1', 'p1');
    const autoscaler = createAutoscaler({ policy: wantAll, targets: [target], dispatcher, clock });
    const events: string[] = [];
    autoscaler.on('scale:decided', ({ snapshot }) => {
      events.push('decided');
      expect(snapshot.targets[0]?.queueDepth).toBe(4);
    });
    autoscaler.on('scale:applied', ({ settings }) => events.push(`applied ${settings.minWorkers}`));
    const result = await autoscaler.tick();
    expect(result.leader).toBe(true);
    // 4 + 1 + 10 = 15 is clamped to the bound of 5.
    expect(applied).toEqual([{ minWorkers: 5 }]);
    expect(events).toEqual(['decided', 'applied 5']);
  });

  it('holds a scale-down inside its cooldown', async () => {
    const clock = createVirtualClock({ start: 0 });
    const { target, applied } = fakeTarget('t1', 'p1');
    let wanted = 4;
    const policy: ScalingPolicyV1 = {
      specificationVersion: 'v1',
      name: 'scripted',
      decide: () => ({ targets: { t1: { minWorkers: wanted } } }),
    };
    const autoscaler = createAutoscaler({
      policy,
      targets: [target],
      dispatcher,
      clock,
      scaleDownCooldownMs: 60_000,
    });
    await autoscaler.tick();
    wanted = 1;
    clock.set(30_000);
    await autoscaler.tick();
    expect(applied).toEqual([{ minWorkers: 4 }]);
    clock.set(61_000);
    await autoscaler.tick();
    expect(applied).toEqual([{ minWorkers: 4 }, { minWorkers: 1 }]);
  });

  it('acts only while it holds the lease, and another host takes over when it lapses', async () => {
    const clock = createVirtualClock({ start: 0 });
    const lease = createMemoryLease({ clock });
    const first = fakeTarget('t1', 'p1');
    const second = fakeTarget('t1', 'p1');
    const leader = createAutoscaler({
      policy: wantAll,
      targets: [first.target],
      dispatcher,
      clock,
      lease,
      holderId: 'a',
    });
    const follower = createAutoscaler({
      policy: wantAll,
      targets: [second.target],
      dispatcher,
      clock,
      lease,
      holderId: 'b',
      leaseTtlMs: 30_000,
    });
    expect((await leader.tick()).leader).toBe(true);
    expect((await follower.tick()).leader).toBe(false);
    expect(second.applied).toEqual([]);
    clock.set(31_000);
    expect((await follower.tick()).leader).toBe(true);
    expect(second.applied.length).toBe(1);
    expect((await leader.tick()).leader).toBe(false);
  });

  it('runs on its interval until stopped, and reports a failing policy as an event', async () => {
    const clock = createVirtualClock({ start: 0 });
    const { target } = fakeTarget('t1', 'p1');
    let calls = 0;
    const policy: ScalingPolicyV1 = {
      specificationVersion: 'v1',
      name: 'broken',
      decide: () => {
        calls++;
        throw new Error('boom');
      },
    };
    const autoscaler = createAutoscaler({ policy, targets: [target], dispatcher, clock, intervalMs: 1_000 });
    const errors: string[] = [];
    autoscaler.on('scale:error', ({ error }) => errors.push(error.message));
    autoscaler.start();
    await clock.advance(3_500);
    await autoscaler.stop();
    await clock.advance(5_000);
    expect(calls).toBe(3);
    expect(errors[0]).toMatch(/boom/);
  });
});
