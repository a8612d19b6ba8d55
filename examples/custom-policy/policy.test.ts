import type { ScaleTargetState, ScaleTargetV1 } from '@comfy-serverless/core';
import { createAutoscaler } from '@comfy-serverless/scaler';
import { buildTrace, simulate } from '@comfy-serverless/scaler/sim';
import { describe, expect, it } from 'vitest';
import { createOfficeHoursPolicy } from './policy';

describe('the custom policy of the example', () => {
  it('runs unchanged in the simulator and in the autoscaler', async () => {
    const start = Date.UTC(2026, 0, 5, 9);
    const trace = buildTrace([start, start + 60_000, start + 120_000], [10_000, 10_000, 10_000]);
    const result = simulate({
      trace,
      policy: createOfficeHoursPolicy(),
      targets: [{ id: 'pool', usdPerSecond: 0.001, coldStart: 20_000, maxWorkers: 5 }],
    });
    // A warm spare during working hours: the later jobs do not wait.
    expect(result.waitsMs[2]).toBe(0);

    let state: ScaleTargetState = {
      minWorkers: 0,
      maxWorkers: 5,
      runningWorkers: 0,
      bounds: { minWorkers: 0, maxWorkers: 5 },
      describedAt: 0,
    };
    const target: ScaleTargetV1 = {
      specificationVersion: 'v1',
      id: 'pool',
      platform: 'memory',
      describe: async () => state,
      apply: async (settings) => {
        state = { ...state, ...settings };
        return state;
      },
    };
    const autoscaler = createAutoscaler({
      policy: createOfficeHoursPolicy(),
      targets: [target],
      dispatcher: {
        metrics: () => ({
          demand: {
            arrivals: [1],
            bucketMs: 10_000,
            queueDepth: 2,
            inFlight: 1,
            recentWaitsMs: [],
            recentExecutionMs: [],
          },
          providers: {},
        }),
      },
      clock: { now: () => start, setTimeout: () => 0, clearTimeout: () => {} },
    });
    await autoscaler.tick();
    expect(state.minWorkers).toBe(4);
  });
});
