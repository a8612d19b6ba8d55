import { ConfigurationError, InvalidArgumentError } from '@comfy-serverless/core';
import { createVirtualClock } from '@comfy-serverless/core/test';
import { describe, expect, it } from 'vitest';
import { createModalTarget } from './modal-target';
import { createFakeComfyWorker, createFakeModal } from './test';

function setup() {
  const clock = createVirtualClock();
  const modal = createFakeModal({ clock });
  const worker = createFakeComfyWorker();
  const declared = { minContainers: 0, maxContainers: 10, bufferContainers: 0, scaledownWindowMs: 60_000 };
  modal.deploy('comfyui', 'ComfyWorker', {
    methods: worker.methods,
    autoscaler: declared,
    coldStartMs: 10_000,
  });
  const target = createModalTarget({
    app: 'comfyui',
    client: modal,
    clock,
    deployed: declared,
    bounds: { minWorkers: 0, maxWorkers: 20 },
    usdPerSecond: 0.000542,
    providerId: 'modal:comfyui/ComfyWorker',
  });
  return { clock, modal, worker, target, declared };
}

describe('createModalTarget', () => {
  it('applies settings through updateAutoscaler and reports them', async () => {
    const { target, modal, clock } = setup();
    const state = await target.apply({
      minWorkers: 2,
      maxWorkers: 8,
      bufferWorkers: 1,
      idleTimeoutSeconds: 120,
    });
    expect(modal.autoscalerUpdates).toEqual([
      {
        app: 'comfyui',
        cls: 'ComfyWorker',
        settings: { minContainers: 2, maxContainers: 8, bufferContainers: 1, scaledownWindowMs: 120_000 },
      },
    ]);
    expect(modal.autoscaler('comfyui', 'ComfyWorker')).toEqual({
      minContainers: 2,
      maxContainers: 8,
      bufferContainers: 1,
      scaledownWindowMs: 120_000,
    });
    expect(state).toMatchObject({
      minWorkers: 2,
      maxWorkers: 8,
      idleTimeoutSeconds: 120,
      drifted: false,
      usdPerSecond: 0.000542,
      bounds: { minWorkers: 0, maxWorkers: 20 },
      lastApplied: {
        minContainers: 2,
        maxContainers: 8,
        bufferContainers: 1,
        scaledownWindowMs: 120_000,
        deploymentVersion: 1,
      },
    });
    expect(target.platform).toBe('modal');
    expect(target.providerId).toBe('modal:comfyui/ComfyWorker');
    // Modal starts the minimum at once; they count as runners.
    await clock.advance(10_000);
    expect((await target.describe()).runningWorkers).toBe(2);
  });

  it('keeps earlier settings when a later apply changes only some', async () => {
    const { target, modal } = setup();
    await target.apply({ minWorkers: 1, maxWorkers: 5 });
    const state = await target.apply({ maxWorkers: 6 });
    expect(modal.autoscalerUpdates.at(-1)?.settings).toEqual({ maxContainers: 6 });
    expect(state.minWorkers).toBe(1);
    expect(state.maxWorkers).toBe(6);
  });

  it('notices that a deploy reset the overrides, reports the last applied settings, and re-applies them', async () => {
    const { target, modal, worker, declared } = setup();
    await target.apply({ minWorkers: 3, maxWorkers: 12 });
    modal.deploy('comfyui', 'ComfyWorker', { methods: worker.methods, autoscaler: declared });
    expect(modal.autoscaler('comfyui', 'ComfyWorker').minContainers).toBe(0);
    const drifted = await target.describe();
    expect(drifted.drifted).toBe(true);
    expect(drifted.minWorkers).toBe(0);
    expect(drifted.maxWorkers).toBe(10);
    expect(drifted.lastApplied).toMatchObject({ minContainers: 3, maxContainers: 12, deploymentVersion: 1 });
    const restored = await target.reapply();
    expect(restored.drifted).toBe(false);
    expect(restored.minWorkers).toBe(3);
    expect(restored.lastApplied?.deploymentVersion).toBe(2);
    expect(modal.autoscaler('comfyui', 'ComfyWorker')).toMatchObject({ minContainers: 3, maxContainers: 12 });
  });

  it('after a reset, a partial apply does not claim the lost overrides still hold', async () => {
    const { target, modal, worker, declared } = setup();
    await target.apply({ minWorkers: 3, bufferWorkers: 2 });
    modal.deploy('comfyui', 'ComfyWorker', { methods: worker.methods, autoscaler: declared });
    const state = await target.apply({ maxWorkers: 7 });
    expect(state.drifted).toBe(false);
    expect(state.minWorkers).toBe(0);
    expect(state.lastApplied?.bufferContainers).toBe(0);
  });

  it('maps a desired count to minContainers, since Modal has none', async () => {
    const { target, modal } = setup();
    await target.apply({ desiredWorkers: 4 });
    expect(modal.autoscalerUpdates.at(-1)?.settings).toEqual({ minContainers: 4 });
  });

  it('refuses out-of-range settings, naming the setting, without calling Modal', async () => {
    const { target, modal } = setup();
    const refused = async (settings: Parameters<typeof target.apply>[0]) =>
      (await target.apply(settings).catch((error: unknown) => error)) as InvalidArgumentError;
    expect((await refused({ maxWorkers: 21 })).argument).toBe('maxWorkers');
    expect((await refused({ minWorkers: -1 })).argument).toBe('minWorkers');
    expect((await refused({ minWorkers: 1.5 })).argument).toBe('minWorkers');
    expect((await refused({ idleTimeoutSeconds: 1 })).argument).toBe('idleTimeoutSeconds');
    expect((await refused({ idleTimeoutSeconds: 3_600 })).argument).toBe('idleTimeoutSeconds');
    const inverted = await refused({ minWorkers: 9, maxWorkers: 3 });
    expect(InvalidArgumentError.isInstance(inverted)).toBe(true);
    expect(inverted.message).toContain('must not exceed');
    expect(modal.autoscalerUpdates).toHaveLength(0);
  });

  it('reads the backlog and runners from getCurrentStats', async () => {
    const { target, modal, clock } = setup();
    await target.apply({ maxWorkers: 1 });
    for (let index = 0; index < 3; index++) {
      await modal.spawn({ app: 'comfyui', cls: 'ComfyWorker', method: 'run' }, [
        { jobId: `j${index}`, workflow: {}, images: [] },
      ]);
    }
    await clock.advance(10_000);
    const state = await target.describe();
    expect(state.runningWorkers).toBe(1);
    expect(state.queueDepth).toBe(2);
    expect(state.idleWorkers).toBe(0);
    expect(state.describedAt).toBe(clock.now());
  });

  it('reports an app that is not deployed as a ConfigurationError', async () => {
    const { target, modal } = setup();
    modal.undeploy('comfyui');
    const error = await target.apply({ minWorkers: 1 }).catch((caught: unknown) => caught);
    expect(ConfigurationError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('modal deploy');
  });
});
