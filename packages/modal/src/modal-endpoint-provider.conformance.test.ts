import { createVirtualClock, testProvider } from '@comfy-serverless/core/test';
import { createModalEndpoint } from './modal-endpoint-provider';
import { createFakeComfyWorker, createFakeModal, sampleWorkflow, startFakeModalEndpoint } from './test';

testProvider('modal (HTTP endpoint, fake endpoint)', async () => {
  const clock = createVirtualClock();
  const modal = createFakeModal({ clock });
  const worker = createFakeComfyWorker({ executionMs: 6_000 });
  modal.deploy('comfyui', 'ComfyWorker', { methods: worker.methods, coldStartMs: 15_000 });
  const endpoint = await startFakeModalEndpoint({
    modal,
    key: 'wk-conformance',
    secret: 'ws-conformance-secret',
  });
  let failSpawnWith: 'retryable' | 'fatal' | undefined;
  const provider = createModalEndpoint({
    url: endpoint.url,
    key: 'wk-conformance',
    secret: 'ws-conformance-secret',
    gpu: 'L40S',
    clock,
    pollWaitMs: 20_000,
    // Transport faults are injected in front of the endpoint, as a proxy would produce them.
    fetch: async (input, init) => {
      if (failSpawnWith !== undefined && init?.method === 'POST') {
        const kind = failSpawnWith;
        failSpawnWith = undefined;
        return kind === 'retryable'
          ? new Response('upstream unavailable', { status: 503 })
          : new Response('modal-http: invalid credentials for proxy authorization', { status: 401 });
      }
      return fetch(input, init);
    },
  });
  return {
    provider,
    arrange(scenario) {
      if (scenario === 'execution-failure') worker.next({ type: 'execution-error' });
      if (scenario === 'long-running') worker.next({ type: 'hang' });
      if (scenario === 'submit-retryable-error') failSpawnWith = 'retryable';
      if (scenario === 'submit-fatal-error') failSpawnWith = 'fatal';
      return { workflow: sampleWorkflow() };
    },
    tick: () => clock.advance(1_000),
    close: () => endpoint.close(),
  };
});
