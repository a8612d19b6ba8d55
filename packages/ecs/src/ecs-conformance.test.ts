import { type ConformanceScenario, testProvider } from '@comfy-serverless/core/test';
import { createEcs } from './ecs-provider';
import { mockEcsClient } from './ecs-test-harness';
import { fastWatch, txt2img } from './ecs-test-helpers';
import { createFakeEcs } from './test/fake-ecs';
import { createFakeTaskFleet } from './test/fake-task-fleet';

testProvider('ecs (service mode)', async () => {
  const fake = createFakeEcs({ provisioningMs: 0, pendingMs: 0 });
  fake.createService('comfyui', { desiredCount: 2 });
  const fleet = createFakeTaskFleet({ stepMs: 2 });
  const { client } = mockEcsClient(fake);
  const provider = createEcs({
    mode: 'service',
    cluster: 'gpu',
    service: 'comfyui',
    client,
    gpu: 'L4-24GB',
    resolveTaskUrl: fleet.resolveTaskUrl,
    watch: fastWatch,
  });
  // Start both tasks' servers up front, so that arranging reaches whichever gets the job.
  await provider.tasks();
  return {
    provider,
    arrange(scenario: ConformanceScenario) {
      switch (scenario) {
        case 'success':
          fleet.arrangeAll({ type: 'succeed' });
          break;
        case 'execution-failure':
          fleet.arrangeAll({ type: 'fail', nodeId: '3', message: 'CUDA out of memory' });
          break;
        case 'long-running':
          fleet.arrangeAll({ type: 'run-until-cancelled' });
          break;
        case 'submit-retryable-error':
          fleet.arrangeAll({ type: 'http-error', status: 503 });
          break;
        case 'submit-fatal-error':
          return { workflow: txt2img('KSamplerFromAnotherPack') };
      }
      return { workflow: txt2img() };
    },
    close: () => fleet.close(),
  };
});

testProvider('ecs (task mode)', async () => {
  const fake = createFakeEcs({ provisioningMs: 5, pendingMs: 5 });
  const fleet = createFakeTaskFleet({ stepMs: 2 });
  const { client } = mockEcsClient(fake);
  const provider = createEcs({
    mode: 'task',
    cluster: 'gpu',
    taskDefinition: 'comfyui-gpu',
    capacityProviderStrategy: [{ capacityProvider: 'gpu-asg', weight: 1 }],
    client,
    gpu: 'L4-24GB',
    resolveTaskUrl: fleet.resolveTaskUrl,
    watch: fastWatch,
    pollIntervalMs: 5,
    idleTimeoutMs: 60_000,
  });
  return {
    provider,
    arrange(scenario: ConformanceScenario) {
      switch (scenario) {
        case 'success':
          fleet.arrangeAll({ type: 'succeed' });
          break;
        case 'execution-failure':
          fleet.arrangeAll({ type: 'fail', nodeId: '3', message: 'CUDA out of memory' });
          break;
        case 'long-running':
          fleet.arrangeAll({ type: 'run-until-cancelled' });
          break;
        case 'submit-retryable-error':
          // No GPU free: RunTask answers 200 with RESOURCE:GPU in failures[].
          fake.failNextRunTask([{ reason: 'RESOURCE:GPU' }]);
          break;
        case 'submit-fatal-error':
          // A capacity provider the cluster does not have: InvalidParameterException.
          fake.failNext('RunTask', {
            name: 'InvalidParameterException',
            message:
              'The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster.',
          });
          break;
      }
      return { workflow: txt2img() };
    },
    async close() {
      await provider.close();
      await fleet.close();
    },
  };
});
