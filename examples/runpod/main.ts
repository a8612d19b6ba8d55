// RunPod Serverless with the official worker-comfyui image: jobs go in with /run (the id
// is journalled before any wait), then one long-poll per 90 s; the endpoint's workers are
// scaled through the management API. With RUNPOD_ENDPOINT_ID and RUNPOD_API_KEY set it
// talks to your endpoint; otherwise to the RunPod mock from @comfy-serverless/runpod/test
// (same routes, statuses, limits; job time is sped up).
// Run: node --import tsx examples/runpod/main.ts
import { createDispatcher } from '@comfy-serverless/core';
import { sampleWorkflow } from '@comfy-serverless/core/test';
import { createRunpod, createRunpodEndpointTarget } from '@comfy-serverless/runpod';
import { startRunpodMock } from '@comfy-serverless/runpod/test';

const real = process.env.RUNPOD_ENDPOINT_ID !== undefined;
const mock = real ? undefined : await startRunpodMock({ coldStartMs: 300, executionMs: 200, workersMax: 2 });
if (mock)
  console.log(
    `Using the RunPod MOCK at ${mock.url} (set RUNPOD_ENDPOINT_ID and RUNPOD_API_KEY for a real endpoint)`,
  );

const endpointId = process.env.RUNPOD_ENDPOINT_ID ?? mock!.endpointId;
const connection = mock ? { apiKey: mock.apiKey, baseURL: mock.url } : {};
const runpod = createRunpod({ endpointId, gpu: 'L4-24GB', ...connection });
const dispatcher = createDispatcher({ providers: [runpod] });

// Scale: keep one worker warm, allow up to three.
const target = createRunpodEndpointTarget({
  endpointId,
  ...(mock ? { apiKey: mock.apiKey, baseURL: mock.url, restBaseURL: mock.restUrl } : {}),
});
console.log(
  'before:',
  JSON.stringify(await target.describe(), ['minWorkers', 'maxWorkers', 'runningWorkers']),
);
console.log(
  'after: ',
  JSON.stringify(await target.apply({ minWorkers: 1, maxWorkers: 3 }), ['minWorkers', 'maxWorkers']),
);

const results = await Promise.all(
  [1, 2, 3, 4].map((seed) =>
    dispatcher.runWorkflow(sampleWorkflow(), { inputs: { '3.seed': seed }, timeoutMs: 120_000 }),
  ),
);
for (const result of results) {
  console.log(
    `${result.jobId}: ${result.outputs.length} output(s), waited ${result.timing.queuedMs} ms, $${result.cost.usd.toFixed(5)}`,
  );
}
console.log('health:', JSON.stringify(await runpod.doHealth()));
if (mock) {
  const stats = mock.stats();
  console.log(
    `mock: ${stats.totalRequests} requests for ${stats.jobsCompleted} jobs, ${stats.workersStarted} cold starts`,
  );
  await mock.close();
}
