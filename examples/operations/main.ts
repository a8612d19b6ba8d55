// Operations: Prometheus metrics, JSON logs, a blue-green rollout of a new worker version
// and the dispatcher's own report, on simulated pools (no GPU, no account).
// Run: node --import tsx examples/operations/main.ts
import {
  createBlueGreen,
  createDispatcher,
  createJsonLogger,
  createPrometheusMetrics,
  formatPerformanceReport,
} from '@comfy-serverless/core';
import { createAcceleratedClock, createSimulatedProvider, sampleWorkflow } from '@comfy-serverless/core/test';

const clock = createAcceleratedClock(100); // simulated seconds pass 100x faster
const pool = (id: string, executionMs: number, failureRate = 0) =>
  createSimulatedProvider({
    id,
    gpu: 'L4-24GB',
    workers: { min: 2, max: 4 },
    coldStartMs: 5_000,
    executionMs,
    failureRate,
    clock,
  });

// Green is the new worker image: here every third of its jobs fails, so the gate rolls it back.
const rollout = createBlueGreen({
  blue: pool('worker-v1', 10_000),
  green: pool('worker-v2', 10_000, 3),
  steps: [10, 25, 50, 100],
  gate: { maxLatencyRatio: 1.25, minSamples: 3 },
  stepMs: 60_000,
  clock,
});
rollout.events.on('step:started', (event) =>
  console.log(`rollout step ${event.stepIndex + 1}: green takes ${event.weight} % of new jobs`),
);
rollout.events.on('step:passed', (event) =>
  console.log(`rollout step ${event.stepIndex + 1} passed its gate`),
);
rollout.events.on('step:held', (event) =>
  console.log(`rollout step ${event.stepIndex + 1} held: too few green jobs to judge`),
);
rollout.events.on('rollout:rolled-back', (event) => console.log(`rollout:rolled-back: ${event.reason}`));
rollout.events.on('rollout:completed', () => console.log('rollout:completed: green takes every job'));

const logLines: string[] = [];
const dispatcher = createDispatcher({
  providers: [rollout],
  clock,
  logger: createJsonLogger({ write: (line) => logLines.push(line), level: 'info' }),
  service: 'render-api',
});
const metrics = createPrometheusMetrics();
metrics.attach(dispatcher);

for (let wave = 0; wave < 12; wave++) {
  await Promise.all(
    Array.from({ length: 8 }, (_, index) =>
      dispatcher
        // Fixed job ids: the rollout sends each id to one side, so the split is the same every run.
        .runWorkflow(sampleWorkflow(), {
          jobId: `render-${wave}-${index}`,
          metadata: { userId: `user-${index}` },
        })
        .catch(() => undefined),
    ),
  );
}

console.log(`\n${logLines.length} log lines, for example:\n${logLines[0]}`);
const exposition = await metrics.metrics();
console.log(
  `\nmetrics (excerpt):\n${exposition
    .split('\n')
    .filter(
      (line) =>
        line.startsWith('workflow_execution_duration_seconds_count') ||
        line.startsWith('workflow_jobs_total'),
    )
    .slice(0, 4)
    .join('\n')}`,
);
console.log(`\n${formatPerformanceReport(dispatcher.report())}`);
