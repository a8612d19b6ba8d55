// The same custom policy, unchanged, in the simulator and in the live autoscaler.
// Run: cd /work/main && node --import tsx examples/custom-policy/main.ts
import type { ScaleSettings, ScaleTargetState, ScaleTargetV1 } from '@comfy-serverless/core';
import { createAutoscaler } from '@comfy-serverless/scaler';
import { buildTrace, createKeepAlivePolicy, simulate } from '@comfy-serverless/scaler/sim';
import { createOfficeHoursPolicy } from './policy';

// 1. Simulate a day of synthetic traffic: a job every ~2 min by day, every ~20 min by night.
const arrivals: number[] = [];
const executions: number[] = [];
const start = Date.UTC(2026, 0, 5);
for (let time = start; time < start + 86_400_000; ) {
  const hour = new Date(time).getUTCHours();
  time += (hour >= 8 && hour < 20 ? 120_000 : 1_200_000) * (0.5 + ((time / 7919) % 1));
  arrivals.push(time);
  executions.push(20_000 + (time % 17) * 1_000);
}
const trace = buildTrace(arrivals, executions);
const pool = { id: 'pool', usdPerSecond: 0.00076, coldStart: 23_000, maxWorkers: 10 };
for (const policy of [createOfficeHoursPolicy(), createKeepAlivePolicy(60)]) {
  const result = simulate({ trace, policy, targets: [pool] });
  console.log(
    `${result.policy.padEnd(14)} ${result.jobs} jobs  ${result.gpuSeconds.toFixed(0)} GPU-s  $${result.costUsd.toFixed(2)}  wait p95 ${(result.waitP95Ms / 1000).toFixed(1)} s  cold starts ${result.coldStarts}`,
  );
}

// 2. Run it live against a scale target (here an in-memory one; use a RunPod, Modal or ECS
// target in production) and a dispatcher (anything with metrics()).
let state: ScaleTargetState = {
  minWorkers: 0,
  maxWorkers: 10,
  runningWorkers: 0,
  bounds: { minWorkers: 0, maxWorkers: 10 },
  usdPerSecond: 0.00076,
  coldStartMs: 23_000,
  describedAt: Date.now(),
};
const target: ScaleTargetV1 = {
  specificationVersion: 'v1',
  id: 'pool',
  platform: 'memory',
  providerId: 'memory',
  describe: async () => ({ ...state, describedAt: Date.now() }),
  apply: async (settings: ScaleSettings) => {
    state = { ...state, ...settings };
    return { ...state };
  },
};
const dispatcher = {
  metrics: () => ({
    demand: {
      arrivals: [2],
      bucketMs: 10_000,
      queueDepth: 1,
      inFlight: 2,
      recentWaitsMs: [],
      recentExecutionMs: [],
    },
    providers: { memory: { queueDepth: 1, inFlight: 2 } },
  }),
};
const autoscaler = createAutoscaler({
  policy: createOfficeHoursPolicy(),
  targets: [target],
  dispatcher,
  intervalMs: 10_000,
});
autoscaler.on('scale:applied', ({ targetId, settings }) => console.log(`live: ${targetId} ->`, settings));
await autoscaler.tick();
await autoscaler.stop();
