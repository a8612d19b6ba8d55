// Workflow analysis before any GPU is paid for: parse an API-format workflow, patch its
// inputs, see what it needs, and check it against what a worker image has.
// Run: node --import tsx examples/workflow-analysis/main.ts
import {
  analyzeWorkflow,
  parseWorkflow,
  patchWorkflow,
  preflight,
  WorkflowFormatError,
} from '@comfy-serverless/core';
import { sampleWorkflow } from '@comfy-serverless/core/test';

// 1. A UI-format export is refused with a message that says what to do.
try {
  parseWorkflow({ nodes: [], links: [], version: 0.4 });
} catch (error) {
  if (WorkflowFormatError.isInstance(error)) console.log(`UI export refused: ${error.message}\n`);
}

// 2. Patch by "node.input", never touching the caller's object.
const workflow = patchWorkflow(parseWorkflow(sampleWorkflow()), {
  '6.text': 'a red fox in fresh snow',
  '4.ckpt_name': 'sdxl/juggernautXL_v9.safetensors',
});

// 3. What it needs from a worker.
const analysis = analyzeWorkflow(workflow);
console.log(
  `family ${analysis.family ?? 'unknown'}, about ${analysis.vramGbEstimate.toFixed(1)} GB of GPU memory`,
);
console.log(`size ${JSON.stringify(analysis.size)}`);
for (const model of analysis.models)
  console.log(`needs ${model.folder}/${model.name} (node ${model.nodeId})`);

// 4. Preflight against an image that has the base checkpoint only.
const result = preflight(workflow, {
  nodeTypes: analysis.nodeTypes,
  models: { checkpoints: ['sd_xl_base_1.0.safetensors'] },
});
console.log(`\npreflight ok: ${result.ok}`);
for (const missing of result.missingModels)
  console.log(`missing: ${missing.folder}/${missing.name} (${result.type})`);
