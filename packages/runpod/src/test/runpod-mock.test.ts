import { createVirtualClock, type VirtualClock } from '@comfy-serverless/core/test';
import { afterEach, describe, expect, it } from 'vitest';
import { type RunpodMock, type RunpodMockOptions, startRunpodMock } from './runpod-mock';

const WORKFLOW = {
  '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sdxl.safetensors' } },
  '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'ComfyUI' } },
};

let mock: RunpodMock | undefined;
afterEach(async () => {
  await mock?.close();
  mock = undefined;
});

async function setup(options: RunpodMockOptions = {}): Promise<{ mock: RunpodMock; clock: VirtualClock }> {
  const clock = createVirtualClock();
  mock = await startRunpodMock({ clock, coldStartMs: 0, workersMin: 1, ...options });
  return { mock, clock };
}

async function api(
  target: RunpodMock,
  path: string,
  init: { method?: string; body?: unknown; key?: string } = {},
): Promise<{ status: number; body: Record<string, unknown>; retryAfter: string | null }> {
  const response = await fetch(`${target.url}/${target.endpointId}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: { authorization: `Bearer ${init.key ?? target.apiKey}`, 'content-type': 'application/json' },
    ...(init.body === undefined
      ? {}
      : { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) }),
  });
  return {
    status: response.status,
    body: (await response.json()) as Record<string, unknown>,
    retryAfter: response.headers.get('retry-after'),
  };
}

const run = async (target: RunpodMock, extra: Record<string, unknown> = {}) =>
  (await api(target, '/run', { body: { input: { workflow: WORKFLOW }, ...extra } })).body.id as string;

describe('startRunpodMock: job lifecycle', () => {
  it('queues, cold-starts workers up to workersMax, runs and completes on the virtual clock', async () => {
    const { mock, clock } = await setup({
      workersMin: 0,
      workersMax: 1,
      coldStartMs: 10_000,
      executionMs: 5_000,
    });
    const first = await run(mock);
    const second = await run(mock);
    expect((await api(mock, `/status/${first}`)).body.status).toBe('IN_QUEUE');
    let health = (await api(mock, '/health')).body;
    expect(health).toMatchObject({ jobs: { inQueue: 2 }, workers: { initializing: 1, idle: 0, running: 0 } });
    await clock.advance(10_000);
    expect((await api(mock, `/status/${first}`)).body).toMatchObject({
      status: 'IN_PROGRESS',
      delayTime: 10_000,
    });
    expect((await api(mock, `/status/${second}`)).body.status).toBe('IN_QUEUE');
    await clock.advance(5_000);
    const done = (await api(mock, `/status/${first}`)).body;
    expect(done).toMatchObject({ status: 'COMPLETED', delayTime: 10_000, executionTime: 5_000 });
    expect((done.output as { images: Array<{ type: string }> }).images[0]?.type).toBe('base64');
    await clock.advance(5_000);
    expect((await api(mock, `/status/${second}`)).body).toMatchObject({
      status: 'COMPLETED',
      delayTime: 15_000,
    });
    health = (await api(mock, '/health')).body;
    expect(health).toMatchObject({ jobs: { completed: 2, inQueue: 0 }, workers: { idle: 1 } });
    // The worker leaves after its idle timeout (5 s).
    await clock.advance(6_000);
    expect((await api(mock, '/health')).body).toMatchObject({ workers: { idle: 0, running: 0 } });
    expect(mock.stats().workersStarted).toBe(1);
  });

  it('holds /status-sync until the job ends or wait passes', async () => {
    const { mock, clock } = await setup({ executionMs: 30_000 });
    const id = await run(mock);
    const shortWait = api(mock, `/status-sync/${id}?wait=10000`);
    await mock.waitForHeld(1);
    await clock.advance(10_000);
    expect((await shortWait).body.status).toBe('IN_PROGRESS');
    const longWait = api(mock, `/status-sync/${id}?wait=90000`);
    await mock.waitForHeld(1);
    await clock.advance(19_999);
    expect(mock.heldRequests()).toBe(1);
    await clock.advance(1);
    expect((await longWait).body).toMatchObject({ status: 'COMPLETED', executionTime: 30_000 });
  });

  it('answers /runsync when done, or with the id and a non-terminal status when wait passes', async () => {
    const { mock, clock } = await setup({ executionMs: 4_000 });
    const quick = api(mock, '/runsync', { body: { input: { workflow: WORKFLOW } } });
    await mock.waitForHeld(1);
    await clock.advance(4_000);
    const answer = (await quick).body;
    expect(answer).toMatchObject({ status: 'COMPLETED', executionTime: 4_000 });
    expect(String(answer.id)).toMatch(/^sync-/);
    mock.enqueuePlan({ executionMs: 200_000 });
    const slow = api(mock, '/runsync?wait=5000', { body: { input: { workflow: WORKFLOW } } });
    await mock.waitForHeld(1);
    await clock.advance(5_000);
    expect((await slow).body.status).toBe('IN_PROGRESS');
  });

  it('keeps /run results 30 minutes and /runsync results 1 minute, then answers 404', async () => {
    const { mock, clock } = await setup({ executionMs: 1_000 });
    const asyncId = await run(mock);
    const sync = api(mock, '/runsync', { body: { input: { workflow: WORKFLOW } } });
    await mock.waitForHeld(1);
    await clock.advance(1_000);
    const syncId = (await sync).body.id as string;
    await clock.advance(1_000);
    await clock.advance(60_000);
    expect((await api(mock, `/status/${syncId}`)).status).toBe(404);
    expect((await api(mock, `/status/${asyncId}`)).status).toBe(200);
    await clock.advance(30 * 60_000);
    expect((await api(mock, `/status/${asyncId}`)).status).toBe(404);
    expect(mock.job(asyncId)?.deleted).toBe(true);
  });

  it('deletes a job when its TTL passes, even while running, and frees the worker', async () => {
    const { mock, clock } = await setup({ executionMs: 100_000 });
    const id = await run(mock, { policy: { ttl: 20_000 } });
    await clock.advance(10_000);
    expect((await api(mock, `/status/${id}`)).body.status).toBe('IN_PROGRESS');
    const held = api(mock, `/status-sync/${id}?wait=90000`);
    await mock.waitForHeld(1);
    await clock.advance(10_000);
    expect((await held).status).toBe(404);
    expect((await api(mock, '/health')).body).toMatchObject({ workers: { idle: 1, running: 0 } });
  });

  it('times a job out after policy.executionTimeout', async () => {
    const { mock, clock } = await setup({ executionMs: 100_000 });
    const id = await run(mock, { policy: { executionTimeout: 10_000 } });
    await clock.advance(10_000);
    expect((await api(mock, `/status/${id}`)).body.status).toBe('TIMED_OUT');
  });

  it('cancels queued and running jobs, purges the queue, and retries failed jobs under the same id', async () => {
    const { mock, clock } = await setup({ workersMax: 1, executionMs: 50_000 });
    const running = await run(mock);
    const queued = await run(mock);
    const alsoQueued = await run(mock);
    expect((await api(mock, `/cancel/${queued}`, { method: 'POST', body: {} })).body).toEqual({
      id: queued,
      status: 'CANCELLED',
    });
    expect((await api(mock, '/purge-queue', { method: 'POST', body: {} })).body).toEqual({
      removed: 1,
      status: 'completed',
    });
    expect((await api(mock, `/status/${alsoQueued}`)).body.status).toBe('CANCELLED');
    expect((await api(mock, `/cancel/${running}`, { method: 'POST', body: {} })).body.status).toBe(
      'CANCELLED',
    );
    mock.enqueuePlan({ outcome: 'failed', error: 'boom', executionMs: 1_000 });
    const failing = await run(mock);
    await clock.advance(1_000);
    expect((await api(mock, `/status/${failing}`)).body).toMatchObject({ status: 'FAILED', error: 'boom' });
    expect((await api(mock, `/retry/${running}`, { method: 'POST', body: {} })).status).toBe(400);
    expect((await api(mock, `/retry/${failing}`, { method: 'POST', body: {} })).body).toEqual({
      id: failing,
      status: 'IN_QUEUE',
    });
    await clock.advance(1_000);
    // Same input, same handler: it fails again, after a second execution.
    expect((await api(mock, `/status/${failing}`)).body.status).toBe('FAILED');
    expect(mock.stats().executions[failing]).toBe(2);
    expect((await api(mock, '/health')).body).toMatchObject({ jobs: { retried: 1 } });
  });

  it('fails workflows naming models the worker does not have, like worker-comfyui', async () => {
    const { mock, clock } = await setup({ models: { checkpoints: ['flux1-dev.safetensors'] } });
    const id = await run(mock);
    await clock.advance(1_000);
    const body = (await api(mock, `/status/${id}`)).body;
    expect(body.status).toBe('FAILED');
    expect(String(body.error)).toMatch(/^Workflow validation failed:\n• Node 4 \(errors\)/);
    expect(String(body.error)).toContain("ckpt_name: 'sdxl.safetensors' not in ['flux1-dev.safetensors']");
  });

  it('streams chunks as the handler yields them', async () => {
    const { mock, clock } = await setup();
    mock.enqueuePlan({ executionMs: 30_000, stream: ['1/2', '2/2'], output: { images: [] } });
    const id = await run(mock);
    const first = api(mock, `/stream/${id}`);
    await mock.waitForHeld(1);
    await clock.advance(10_000);
    expect((await first).body).toEqual({ status: 'IN_PROGRESS', stream: [{ output: '1/2' }] });
    const second = api(mock, `/stream/${id}`);
    await mock.waitForHeld(1);
    await clock.advance(10_000);
    expect((await second).body).toEqual({ status: 'IN_PROGRESS', stream: [{ output: '2/2' }] });
  });
});

describe('startRunpodMock: limits and errors', () => {
  it('answers 429 with Retry-After over the per-10-second limit, and admits again after the window', async () => {
    const { mock, clock } = await setup({ rateLimits: { run: { per10s: 3, concurrent: 200 } } });
    for (let index = 0; index < 3; index++) await run(mock);
    await clock.advance(4_000);
    const limited = await api(mock, '/run', { body: { input: { workflow: WORKFLOW } } });
    expect(limited.status).toBe(429);
    expect(limited.retryAfter).toBe('6');
    await clock.advance(6_000);
    expect((await api(mock, '/run', { body: { input: { workflow: WORKFLOW } } })).status).toBe(200);
    expect(mock.stats().rateLimited).toBe(1);
    expect(mock.stats().requests.run).toBe(5);
  });

  it('counts held long polls against the concurrency limit', async () => {
    const { mock } = await setup({
      executionMs: 100_000,
      rateLimits: { status: { per10s: 2_000, concurrent: 2 } },
    });
    const id = await run(mock);
    const holds = [api(mock, `/status-sync/${id}`), api(mock, `/status-sync/${id}`)];
    await mock.waitForHeld(2);
    const refused = await api(mock, `/status/${id}`);
    expect(refused.status).toBe(429);
    expect(refused.retryAfter).toBe('1');
    await api(mock, `/cancel/${id}`, { method: 'POST', body: {} });
    await Promise.all(holds);
    expect((await api(mock, `/status/${id}`)).status).toBe(200);
  });

  it('refuses a bad key (401), a /run body over 10 MB (413), a missing input (400), unknown ids and routes (404)', async () => {
    const { mock } = await setup({ statusSync: false });
    expect((await api(mock, '/health', { key: 'wrong' })).status).toBe(401);
    const big = JSON.stringify({ input: { workflow: WORKFLOW, pad: 'x'.repeat(10_000_001) } });
    expect((await api(mock, '/run', { body: big })).status).toBe(413);
    expect((await api(mock, '/run', { body: { policy: {} } })).status).toBe(400);
    expect(
      (await api(mock, '/run', { body: { input: {}, policy: { executionTimeout: 1_000 } } })).status,
    ).toBe(400);
    expect((await api(mock, '/status/unknown-u1')).status).toBe(404);
    const id = await run(mock);
    expect((await api(mock, `/status-sync/${id}`)).status).toBe(404);
    expect((await api(mock, `/status/${id}`)).status).toBe(200);
  });

  it('keeps running a job whose client connection was cut', async () => {
    const { mock, clock } = await setup({ executionMs: 20_000 });
    const pending = api(mock, '/runsync', { body: { input: { workflow: WORKFLOW } } }).catch(
      (error: unknown) => error,
    );
    await mock.waitForHeld(1);
    expect(mock.dropConnections()).toBe(1);
    expect(await pending).toBeInstanceOf(Error);
    await clock.advance(20_000);
    const [job] = mock.jobs();
    expect(job?.status).toBe('COMPLETED');
    expect(job?.executions).toBe(1);
  });

  it('throttles workers when no GPU is free', async () => {
    const { mock } = await setup({ workersMin: 0, gpusAvailable: 1, workersMax: 3, executionMs: 50_000 });
    await run(mock);
    await run(mock);
    expect((await api(mock, '/health')).body).toMatchObject({ workers: { running: 1, throttled: 1 } });
  });

  it('needs a virtual clock for autoAdvance', async () => {
    await expect(startRunpodMock({ autoAdvance: true })).rejects.toThrow(/virtual clock/);
  });
});
