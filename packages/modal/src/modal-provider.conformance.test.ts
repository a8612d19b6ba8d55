import { createVirtualClock, testProvider } from '@comfy-serverless/core/test';
import { createModal } from './modal-provider';
import { createFakeComfyWorker, createFakeModal, grpcError, modalError, sampleWorkflow } from './test';

testProvider('modal (SDK, fake control plane)', async () => {
  const clock = createVirtualClock();
  const modal = createFakeModal({ clock });
  const worker = createFakeComfyWorker({ executionMs: 6_000 });
  modal.deploy('comfyui', 'ComfyWorker', {
    methods: worker.methods,
    coldStartMs: 15_000,
    timeoutMs: 3_600_000,
  });
  const provider = createModal({ app: 'comfyui', gpu: 'L40S', client: modal, clock, pollTimeoutMs: 20_000 });
  return {
    provider,
    arrange(scenario) {
      switch (scenario) {
        case 'execution-failure':
          worker.next({ type: 'execution-error' });
          break;
        case 'long-running':
          worker.next({ type: 'hang' });
          break;
        case 'submit-retryable-error':
          modal.failNext('spawn', grpcError(14, 'upstream connect error'));
          break;
        case 'submit-fatal-error':
          modal.failNext('spawn', modalError('NotFoundError', "Class 'comfyui/ComfyWorker' not found"));
          break;
        default:
          break;
      }
      return { workflow: sampleWorkflow() };
    },
    tick: () => clock.advance(1_000),
  };
});
