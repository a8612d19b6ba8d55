import { UpdateServiceCommand } from '@aws-sdk/client-ecs';
import { ConfigurationError, InvalidArgumentError } from '@comfy-serverless/core';
import { createVirtualClock } from '@comfy-serverless/core/test';
import { describe, expect, it } from 'vitest';
import { createEcsServiceTarget } from './ecs-service-target';
import { mockEcsClient } from './ecs-test-harness';
import { createFakeEcs } from './test/fake-ecs';

function setup(desiredCount = 1) {
  const clock = createVirtualClock();
  const fake = createFakeEcs({ clock, provisioningMs: 1_000, pendingMs: 1_000 });
  fake.createService('comfyui', { desiredCount });
  const { client, mock } = mockEcsClient(fake);
  const target = createEcsServiceTarget({
    cluster: 'gpu',
    service: 'comfyui',
    client,
    clock,
    bounds: { minWorkers: 0, maxWorkers: 6 },
    usdPerSecond: 0.0003,
    providerId: 'ecs:gpu/comfyui',
  });
  return { clock, fake, mock, target };
}

describe('createEcsServiceTarget', () => {
  it('describes the service from DescribeServices', async () => {
    const { target, clock } = setup(2);
    const starting = await target.describe();
    expect(starting).toMatchObject({
      desiredWorkers: 2,
      runningWorkers: 0,
      pendingWorkers: 2,
      minWorkers: 0,
      maxWorkers: 6,
    });
    expect(starting.bounds).toEqual({ minWorkers: 0, maxWorkers: 6 });
    expect(starting.usdPerSecond).toBe(0.0003);
    await clock.advance(5_000);
    expect(await target.describe()).toMatchObject({ runningWorkers: 2, pendingWorkers: 0 });
    expect(target.platform).toBe('ecs');
    expect(target.providerId).toBe('ecs:gpu/comfyui');
  });

  it('sets desiredCount with UpdateService and reports the state after', async () => {
    const { target, mock } = setup(1);
    const state = await target.apply({ desiredWorkers: 4 });
    expect(state.desiredWorkers).toBe(4);
    // No time has passed: the first task is still starting too.
    expect(state.pendingWorkers).toBe(4);
    const updates = mock.commandCalls(UpdateServiceCommand);
    expect(updates).toHaveLength(1);
    expect(updates[0]!.args[0].input).toEqual({ cluster: 'gpu', service: 'comfyui', desiredCount: 4 });
    // The same count again needs no update.
    await target.apply({ desiredWorkers: 4 });
    expect(mock.commandCalls(UpdateServiceCommand)).toHaveLength(1);
  });

  it('keeps min and max itself and clamps the desired count into them', async () => {
    const { target, mock } = setup(1);
    const raised = await target.apply({ minWorkers: 2, maxWorkers: 5 });
    expect(raised).toMatchObject({ minWorkers: 2, maxWorkers: 5, desiredWorkers: 2 });
    const lowered = await target.apply({ maxWorkers: 3, desiredWorkers: 3 });
    expect(lowered.desiredWorkers).toBe(3);
    expect(mock.commandCalls(UpdateServiceCommand).map((call) => call.args[0].input.desiredCount)).toEqual([
      2, 3,
    ]);
  });

  it('refuses values outside its bounds, naming them, without calling ECS', async () => {
    const { target, mock } = setup(1);
    const error = await target.apply({ desiredWorkers: 7 }).catch((caught: unknown) => caught);
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect((error as InvalidArgumentError).argument).toBe('desiredWorkers');
    await expect(target.apply({ minWorkers: 5, maxWorkers: 2 })).rejects.toThrow(/minWorkers/);
    await expect(target.apply({ desiredWorkers: 1.5 })).rejects.toThrow(/integer/);
    expect(mock.commandCalls(UpdateServiceCommand)).toHaveLength(0);
  });

  it('reports drift when someone else changed the desired count', async () => {
    const { target, fake } = setup(1);
    await target.apply({ desiredWorkers: 2 });
    expect((await target.describe()).drifted).toBe(false);
    await fake.handle('UpdateService', { cluster: 'gpu', service: 'comfyui', desiredCount: 5 });
    expect((await target.describe()).drifted).toBe(true);
  });

  it('says what to fix when the service does not exist', async () => {
    const { fake } = setup(1);
    const { client } = mockEcsClient(fake);
    const missing = createEcsServiceTarget({ cluster: 'gpu', service: 'nope', client });
    const error = await missing.describe().catch((caught: unknown) => caught);
    expect(ConfigurationError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('MISSING');
    expect(() => createEcsServiceTarget({ cluster: 'gpu', service: 'x' })).toThrow(/"region"/);
    expect(() => createEcsServiceTarget({ cluster: '', service: 'x', region: 'us-east-1' })).toThrow(
      /"cluster"/,
    );
    expect(() =>
      createEcsServiceTarget({
        cluster: 'gpu',
        service: 'x',
        region: 'us-east-1',
        bounds: { minWorkers: 3, maxWorkers: 1 },
      }),
    ).toThrow(/bounds.maxWorkers/);
  });
});
