import { RunTaskCommand, StopTaskCommand } from '@aws-sdk/client-ecs';
import { createDispatcher } from '@comfy-serverless/core';
import { createMockProvider } from '@comfy-serverless/core/test';
import { afterEach, describe, expect, it } from 'vitest';
import { createEcs } from './ecs-provider';
import { STOP_REASONS } from './ecs-task-mode';
import { mockEcsClient } from './ecs-test-harness';
import { fastWatch, txt2img } from './ecs-test-helpers';
import { createFakeEcs } from './test/fake-ecs';
import { createFakeTaskFleet } from './test/fake-task-fleet';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

function setup() {
  const fake = createFakeEcs({ provisioningMs: 5, pendingMs: 5 });
  const fleet = createFakeTaskFleet({ stepMs: 2 });
  const { client, mock } = mockEcsClient(fake);
  const ecs = createEcs({
    mode: 'task',
    cluster: 'gpu',
    taskDefinition: 'comfyui-gpu',
    capacityProviderStrategy: [{ capacityProvider: 'gpu-asg', weight: 1 }],
    client,
    gpu: 'L4-24GB',
    pricing: { usdPerSecond: 0.0001 },
    coldStartMs: 0,
    resolveTaskUrl: fleet.resolveTaskUrl,
    watch: fastWatch,
    pollIntervalMs: 5,
    provisioningTimeoutMs: 150,
    idleTimeoutMs: 60_000,
  });
  // Dearer than ECS, so that the router tries ECS first.
  const fallback = createMockProvider({ id: 'fallback', pricing: { usdPerSecond: 0.01 } });
  const dispatcher = createDispatcher({
    providers: [ecs, fallback],
    retry: { submitRetries: 1, minDelayMs: 0, maxDelayMs: 0 },
  });
  cleanups.push(async () => {
    await ecs.close();
    await fleet.close();
  });
  return { fake, mock, ecs, fallback, dispatcher };
}

describe('the ECS provider under the dispatcher', () => {
  it('runs a job on an ECS task', async () => {
    const { dispatcher, mock } = setup();
    const result = await dispatcher.runWorkflow(txt2img());
    expect(result.providerId).toBe('ecs:gpu/comfyui-gpu');
    expect(result.outputs.length).toBeGreaterThan(0);
    expect(mock.commandCalls(RunTaskCommand)).toHaveLength(1);
  });

  it('moves a job elsewhere when ECS has no GPU (RESOURCE:GPU)', async () => {
    const { dispatcher, fake, fallback, mock } = setup();
    fake.failNextRunTask([{ reason: 'RESOURCE:GPU' }]);
    fake.failNextRunTask([{ reason: 'RESOURCE:GPU' }]);
    const result = await dispatcher.runWorkflow(txt2img());
    expect(result.providerId).toBe('fallback');
    expect(result.attempts).toBe(2);
    expect(mock.commandCalls(RunTaskCommand)).toHaveLength(2);
    expect(fallback.calls.doSubmit).toHaveLength(1);
  });

  it('moves a job elsewhere when its task stays in PROVISIONING past the deadline', async () => {
    const { dispatcher, fake, fallback, mock } = setup();
    fake.holdProvisioning(true);
    const result = await dispatcher.runWorkflow(txt2img());
    expect(result.providerId).toBe('fallback');
    expect(fallback.calls.doSubmit).toHaveLength(1);
    const stops = mock.commandCalls(StopTaskCommand).map((call) => call.args[0].input.reason);
    expect(stops).toContain(STOP_REASONS.provisioning);
  });
});
