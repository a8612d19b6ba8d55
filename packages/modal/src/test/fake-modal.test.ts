import { createVirtualClock } from '@comfy-serverless/core/test';
import { describe, expect, it } from 'vitest';
import { createFakeComfyWorker, createFakeModal, sampleWorkflow } from '.';

const target = { app: 'comfyui', cls: 'ComfyWorker', method: 'run' };

function setup(autoscaler = {}) {
  const clock = createVirtualClock();
  const modal = createFakeModal({ clock });
  const worker = createFakeComfyWorker({ executionMs: 5_000 });
  modal.deploy('comfyui', 'ComfyWorker', {
    methods: worker.methods,
    coldStartMs: 10_000,
    timeoutMs: 60_000,
    autoscaler,
  });
  return { clock, modal, worker };
}

const request = () => ({ jobId: 'j', workflow: sampleWorkflow(), images: [] });

describe('createFakeModal', () => {
  it('starts a container for a call, reuses it while warm, and scales to zero after the scaledown window', async () => {
    const { clock, modal } = setup({ scaledownWindowMs: 60_000 });
    const first = await modal.spawn(target, [request()]);
    expect(modal.containers('comfyui', 'ComfyWorker')).toEqual({ starting: 1, idle: 0, busy: 0 });
    await clock.advance(15_000);
    expect(modal.getCall(first)).toMatchObject({ status: 'succeeded', startedAt: clock.now() - 5_000 });
    const second = await modal.spawn(target, [request()]);
    await clock.advance(5_000);
    // Warm: no second cold start.
    expect(modal.getCall(second)?.startedAt).toBe(modal.getCall(second)?.submittedAt);
    await clock.advance(59_000);
    expect(modal.containers('comfyui', 'ComfyWorker').idle).toBe(1);
    await clock.advance(2_000);
    expect(modal.containers('comfyui', 'ComfyWorker')).toEqual({ starting: 0, idle: 0, busy: 0 });
  });

  it('queues calls beyond maxContainers and reports them as backlog', async () => {
    const { clock, modal } = setup({ maxContainers: 2 });
    for (let index = 0; index < 5; index++) await modal.spawn(target, [request()]);
    await clock.advance(10_000);
    expect(await modal.currentStats(target)).toEqual({ backlog: 3, runners: 2 });
    // Two at a time, 5 s each: by 20 s four are done and the fifth runs.
    await clock.advance(10_000);
    expect(modal.calls().filter((call) => call.status === 'succeeded')).toHaveLength(4);
    expect(await modal.currentStats(target)).toEqual({ backlog: 0, runners: 2 });
  });

  it("fails a call past the class timeout with Modal's FunctionTimeoutError and replaces its container", async () => {
    const { clock, modal, worker } = setup();
    worker.next({ type: 'hang' });
    const callId = await modal.spawn(target, [request()]);
    await clock.advance(10_000 + 60_000);
    const error = await modal.poll(callId, { timeoutMs: 1 }).catch((caught: unknown) => caught);
    expect((error as Error).name).toBe('FunctionTimeoutError');
    expect(modal.containers('comfyui', 'ComfyWorker').busy).toBe(0);
  });

  it('keeps results for 7 days, then no longer knows the call', async () => {
    const { clock, modal } = setup();
    const callId = await modal.spawn(target, [request()]);
    await clock.advance(20_000);
    expect(await modal.poll(callId, { timeoutMs: 1 })).toMatchObject({ status: 'done' });
    await clock.advance(7 * 24 * 3600 * 1000 + 1);
    const error = await modal.poll(callId, { timeoutMs: 1 }).catch((caught: unknown) => caught);
    expect((error as Error).name).toBe('NotFoundError');
  });

  it('a poll round that ends without a result answers pending, as the SDK does after its TimeoutError', async () => {
    const { clock, modal } = setup();
    const callId = await modal.spawn(target, [request()]);
    const polling = modal.poll(callId, { timeoutMs: 3_000 });
    await clock.advance(3_000);
    expect(await polling).toEqual({ status: 'pending' });
  });
});
