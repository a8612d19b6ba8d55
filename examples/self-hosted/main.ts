// ComfyUI servers you run yourself, as one provider: least-loaded server first,
// preflight against each server's /object_info, websocket progress, outputs fetched.
// With COMFYUI_URL set it uses your server(s) (comma-separated); otherwise two fake
// ComfyUI servers from @comfy-serverless/core/test stand in (no GPU needed).
// Run: node --import tsx examples/self-hosted/main.ts
import { ComfyValidationError, createDispatcher, createSelfHosted } from '@comfy-serverless/core';
import { type FakeComfyServer, sampleWorkflow, startFakeComfyServer } from '@comfy-serverless/core/test';

const fakes: FakeComfyServer[] = [];
let servers = process.env.COMFYUI_URL?.split(',').map((url) => url.trim());
if (servers === undefined) {
  fakes.push(await startFakeComfyServer({ stepMs: 5 }), await startFakeComfyServer({ stepMs: 5 }));
  servers = fakes.map((fake) => fake.url);
  console.log(`Using two FAKE ComfyUI servers: ${servers.join(', ')}`);
}

const provider = createSelfHosted({ servers, gpu: 'RTX4090-24GB' });
const dispatcher = createDispatcher({ providers: [provider] });

const results = await Promise.all(
  ['a lighthouse at dusk', 'a fox in the snow', 'a tram in Lisbon'].map((prompt, index) =>
    dispatcher.runWorkflow(sampleWorkflow(), {
      inputs: { '6.text': prompt },
      onEvent: (event) => {
        if (event.type === 'progress' && event.fraction >= 0.5 && event.fraction < 0.6) {
          console.log(`job ${index + 1}: ${Math.round(event.fraction * 100)} %`);
        }
      },
    }),
  ),
);
for (const result of results) {
  const output = result.outputs[0];
  console.log(
    `${result.jobId}: ${output?.filename} (${output?.mime}, ${output?.data?.byteLength ?? 0} bytes) in ${result.timing.totalMs} ms`,
  );
}

// A model no server has is refused before anything runs, in ComfyUI's own words.
try {
  await dispatcher.runWorkflow(sampleWorkflow({ checkpoint: 'missing/model.safetensors' }));
} catch (error) {
  if (ComfyValidationError.isInstance(error))
    console.log(`refused before running: ${error.type}: ${error.message}`);
  else throw error;
}
if (fakes.length > 0)
  console.log(`executions on the fake servers: ${fakes.map((fake) => fake.stats.executions).join(' + ')}`);
await Promise.all(fakes.map((fake) => fake.close()));
