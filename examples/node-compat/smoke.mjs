// Loads every built package as a user's program would (plain Node, no TypeScript loader)
// and runs one job end to end: the check behind "works on Node 20 and 24".
// Run after a build: node examples/node-compat/smoke.mjs (or with npx -y node@24).
import { createDispatcher, createSelfHosted } from '@comfy-serverless/core';
import { createSimulatedProvider, sampleWorkflow, startFakeComfyServer } from '@comfy-serverless/core/test';
import { createEcs } from '@comfy-serverless/ecs';
import { createModal } from '@comfy-serverless/modal';
import { createRedisJournal } from '@comfy-serverless/redis';
import { createRunpod } from '@comfy-serverless/runpod';
import { startRunpodMock } from '@comfy-serverless/runpod/test';
import { createS3ModelSource } from '@comfy-serverless/s3';
import { createTargetTrackingPolicy } from '@comfy-serverless/scaler';
import { simulate } from '@comfy-serverless/scaler/sim';

const factories = {
  createEcs,
  createModal,
  createRedisJournal,
  createS3ModelSource,
  createTargetTrackingPolicy,
  simulate,
};
for (const [name, value] of Object.entries(factories)) {
  if (typeof value !== 'function') throw new Error(`${name} did not load`);
}

const workflow = {
  4: { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd_xl_base_1.0.safetensors' } },
  9: { class_type: 'SaveImage', inputs: { images: ['4', 0], filename_prefix: 'smoke' } },
};

const pool = createSimulatedProvider({ gpu: 'L4-24GB', coldStartMs: 10, executionMs: 10 });
const simulated = await createDispatcher({ providers: [pool] }).runWorkflow(workflow);

const runpodMock = await startRunpodMock({ coldStartMs: 10, executionMs: 10 });
const runpod = createRunpod({
  endpointId: runpodMock.endpointId,
  apiKey: runpodMock.apiKey,
  baseURL: runpodMock.url,
  gpu: 'L4-24GB',
});
const viaRunpod = await createDispatcher({ providers: [runpod] }).runWorkflow(workflow);
await runpodMock.close();

const comfy = await startFakeComfyServer();
const selfHosted = createSelfHosted({ servers: [comfy.url], gpu: 'RTX4090-24GB' });
const viaComfy = await createDispatcher({ providers: [selfHosted] }).runWorkflow(sampleWorkflow());
await comfy.close();

for (const result of [simulated, viaRunpod, viaComfy]) {
  if (result.status !== 'completed' || result.outputs.length === 0)
    throw new Error(`job ${result.jobId} did not complete`);
}
console.log(
  `node ${process.versions.node}: 7 packages loaded; simulated, RunPod mock and fake ComfyUI jobs completed`,
);
