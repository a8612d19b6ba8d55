import { createVirtualClock, testProvider } from '@comfy-serverless/core/test';
import { createRunpod } from './runpod-provider';
import { startRunpodMock } from './test/runpod-mock';

testProvider('runpod', async () => {
  const clock = createVirtualClock();
  const mock = await startRunpodMock({ clock, autoAdvance: true, coldStartMs: 4_000, workersMax: 2 });
  const provider = createRunpod({
    endpointId: mock.endpointId,
    apiKey: mock.apiKey,
    baseURL: mock.url,
    gpu: 'RTX4090-24GB',
    clock,
    executionTimeoutMs: 3_600_000,
    random: () => 0.5,
  });
  return { provider, arrange: (scenario) => mock.arrange(scenario), close: () => mock.close() };
});
