import type { ApiWorkflow, FetchFunction, ProviderJobEvent, RemoteJobRef } from '@comfy-serverless/core';
import {
  ApiCallError,
  ComfyExecutionError,
  ComfyValidationError,
  ConfigurationError,
  InvalidArgumentError,
  InvalidResponseError,
  JobExpiredError,
  JobFailedError,
  JobTimeoutError,
  LoadApiKeyError,
  PayloadTooLargeError,
} from '@comfy-serverless/core';
import { createVirtualClock, type VirtualClock } from '@comfy-serverless/core/test';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createRunpod, type RunpodSettings } from './runpod-provider';
import { type RunpodMock, type RunpodMockOptions, startRunpodMock } from './test/runpod-mock';

const WORKFLOW: ApiWorkflow = {
  '3': { class_type: 'KSampler', inputs: { seed: 1, steps: 20, model: ['4', 0] } },
  '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd_xl_base_1.0.safetensors' } },
  '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'hero/Render', images: ['3', 0] } },
};

interface Recorded {
  method: string;
  path: string;
  at: number;
  body?: unknown;
  authorization?: string;
}

interface Setup {
  clock: VirtualClock;
  mock: RunpodMock;
  requests: Recorded[];
  fetch: FetchFunction;
  provider: ReturnType<typeof createRunpod>;
  make: (overrides?: Partial<RunpodSettings>) => ReturnType<typeof createRunpod>;
}

let mocks: RunpodMock[] = [];
afterEach(async () => {
  await Promise.all(mocks.map((mock) => mock.close()));
  mocks = [];
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

async function setup(
  mockOptions: RunpodMockOptions = {},
  settings: Partial<RunpodSettings> = {},
): Promise<Setup> {
  const clock = createVirtualClock();
  const mock = await startRunpodMock({
    clock,
    autoAdvance: true,
    coldStartMs: 0,
    workersMin: 1,
    ...mockOptions,
  });
  mocks.push(mock);
  const requests: Recorded[] = [];
  const fetch: FetchFunction = async (input, init) => {
    const url = new URL(String(input));
    const headers = new Headers(init?.headers);
    requests.push({
      method: init?.method ?? 'GET',
      path: url.pathname + url.search,
      at: clock.now(),
      ...(typeof init?.body === 'string' && init.body.length < 100_000
        ? { body: JSON.parse(init.body) }
        : {}),
      ...(headers.get('authorization') ? { authorization: headers.get('authorization') ?? '' } : {}),
    });
    return globalThis.fetch(input, init);
  };
  const make = (overrides: Partial<RunpodSettings> = {}) =>
    createRunpod({
      endpointId: mock.endpointId,
      apiKey: mock.apiKey,
      baseURL: mock.url,
      gpu: 'RTX4090-24GB',
      clock,
      fetch,
      random: () => 0.5,
      ...settings,
      ...overrides,
    });
  return { clock, mock, requests, fetch, provider: make(), make };
}

async function watchAll(
  provider: ReturnType<typeof createRunpod>,
  ref: RemoteJobRef,
  signal?: AbortSignal,
): Promise<{ events: ProviderJobEvent[]; error?: unknown }> {
  const events: ProviderJobEvent[] = [];
  try {
    for await (const event of provider.doWatch(ref, signal ? { signal } : {})) events.push(event);
    return { events };
  } catch (error) {
    return { events, error };
  }
}

function submit(
  provider: ReturnType<typeof createRunpod>,
  workflow: ApiWorkflow = WORKFLOW,
  jobId = 'job-1',
) {
  return provider.doSubmit({ jobId, workflow, images: [], attempt: 1 });
}

function lastFailure(events: ProviderJobEvent[]) {
  const last = events.at(-1);
  if (last?.type !== 'failed') throw new Error(`expected a failed event, got ${last?.type}`);
  return last;
}

describe('createRunpod: settings', () => {
  it('refuses bad settings with an error naming the option', () => {
    const base = { endpointId: 'abc', gpu: 'L4-24GB' } as const;
    const cases: Array<[Partial<RunpodSettings>, string]> = [
      [{ endpointId: '' }, 'endpointId'],
      [{ endpointId: 'a/b' }, 'endpointId'],
      [{ statusWaitMs: 120_000 }, 'statusWaitMs'],
      [{ executionTimeoutMs: 1_000 }, 'executionTimeoutMs'],
      [{ baseURL: 'ftp://x' }, 'baseURL'],
      [{ gpu: 'TPU-9000' }, 'gpu'],
      [{ gpu: { type: 'custom', vramGb: 20 } }, 'pricing'],
      [{ waitMode: 'poll' as never }, 'waitMode'],
      [{ apiKey: '' }, 'apiKey'],
    ];
    for (const [override, argument] of cases) {
      const error = (() => {
        try {
          createRunpod({ ...base, ...override } as RunpodSettings);
        } catch (caught) {
          return caught;
        }
        return undefined;
      })();
      expect(InvalidArgumentError.isInstance(error), argument).toBe(true);
      expect((error as InvalidArgumentError).argument).toBe(argument);
    }
  });

  it('describes itself: id, platform, GPU, default price and limits', () => {
    const provider = createRunpod({ endpointId: 'abc', gpu: 'H100-80GB', region: 'us-east-1' });
    expect(provider.id).toBe('runpod:abc');
    expect(provider.platform).toBe('runpod');
    expect(provider.gpu).toEqual({ type: 'H100-80GB', vramGb: 80 });
    expect(provider.pricing.usdPerSecond).toBeCloseTo(0.00116);
    expect(provider.limits?.maxPayloadBytes).toBe(10_000_000);
    expect(provider.region).toBe('us-east-1');
  });

  it('reads RUNPOD_API_KEY when a request is made, and throws LoadApiKeyError without one', async () => {
    const { make, requests } = await setup();
    vi.stubEnv('RUNPOD_API_KEY', '');
    const provider = make({ apiKey: undefined });
    const error = await submit(provider).catch((caught: unknown) => caught);
    expect(LoadApiKeyError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('apiKey');
    expect((error as Error).message).toContain('RUNPOD_API_KEY');
    expect(requests).toHaveLength(0);
    vi.stubEnv('RUNPOD_API_KEY', 'mock-api-key');
    const ref = await submit(provider);
    expect(ref.remoteId).toMatch(/-u1$/);
    expect(requests[0]?.authorization).toBe('Bearer mock-api-key');
  });
});

describe('createRunpod: submission', () => {
  it("submits in worker-comfyui's format with policy and webhook, and journals the id at once", async () => {
    const { provider, requests, make } = await setup();
    const withHook = make({
      webhook: 'https://example.com/hook',
      executionTimeoutMs: 120_000,
      ttlMs: 3_600_000,
    });
    const ref = await withHook.doSubmit({
      jobId: 'job-a',
      workflow: WORKFLOW,
      images: [
        { name: 'input.png', data: new Uint8Array([1, 2, 3]) },
        { name: 'b.png', data: 'data:image/png;base64,AAAA' },
      ],
      attempt: 1,
    });
    expect(ref).toEqual({
      remoteId: expect.any(String),
      data: {
        endpointId: 'mock-endpoint',
        jobId: 'job-a',
        executionTimeoutMs: 120_000,
        outputPrefixes: { Render: '9' },
      },
    });
    expect(JSON.parse(JSON.stringify(ref))).toEqual(ref);
    const run = requests.find((request) => request.path.endsWith('/run'));
    expect(run?.method).toBe('POST');
    expect(run?.body).toEqual({
      input: {
        workflow: WORKFLOW,
        images: [
          { name: 'input.png', image: 'AQID' },
          { name: 'b.png', image: 'data:image/png;base64,AAAA' },
        ],
      },
      policy: { executionTimeout: 120_000, ttl: 3_600_000 },
      webhook: 'https://example.com/hook',
    });
    // Only /run: nothing waited on before the id came back.
    expect(requests).toHaveLength(1);
    expect(provider.limits?.maxExecutionMs).toBe(600_000);
  });

  it('shortens the TTL to the deadline so RunPod drops jobs nobody waits for', async () => {
    const { provider, requests, clock } = await setup();
    await provider.doSubmit({
      jobId: 'job-d',
      workflow: WORKFLOW,
      images: [],
      attempt: 1,
      deadlineAt: clock.now() + 120_000,
    });
    expect(requests[0]?.body).toMatchObject({ policy: { ttl: 120_000 } });
  });

  it('refuses a /run body over 10 MB before sending, suggesting S3 inputs', async () => {
    const { provider, requests } = await setup();
    const big = new Uint8Array(8_000_000);
    const error = await provider
      .doSubmit({ jobId: 'big', workflow: WORKFLOW, images: [{ name: 'big.png', data: big }], attempt: 1 })
      .catch((caught: unknown) => caught);
    expect(PayloadTooLargeError.isInstance(error)).toBe(true);
    expect((error as PayloadTooLargeError).limitBytes).toBe(10_000_000);
    expect((error as Error).message).toMatch(/S3/);
    expect(requests).toHaveLength(0);
  });

  it('retries a 429 on /run after Retry-After, but not a 503 (a retried /run could run twice)', async () => {
    const { provider, mock, requests } = await setup();
    mock.failNext('run', { status: 429, count: 2, retryAfterSeconds: 7 });
    const ref = await submit(provider);
    expect(typeof ref.remoteId).toBe('string');
    const runs = requests.filter((request) => request.path.endsWith('/run'));
    expect(runs).toHaveLength(3);
    expect((runs[1]?.at ?? 0) - (runs[0]?.at ?? 0)).toBeGreaterThanOrEqual(7_000);
    expect((runs[2]?.at ?? 0) - (runs[1]?.at ?? 0)).toBeGreaterThanOrEqual(7_000);

    mock.failNext('run', { status: 503 });
    const error = await submit(provider, WORKFLOW, 'job-2').catch((caught: unknown) => caught);
    expect(ApiCallError.isInstance(error) && error.isRetryable && error.statusCode === 503).toBe(true);
    expect(requests.filter((request) => request.path.endsWith('/run'))).toHaveLength(4);
    expect(mock.stats().jobsAccepted).toBe(1);
  });

  it('submits the same job and attempt once, even when asked twice at the same time', async () => {
    const { provider, mock } = await setup();
    const request = { jobId: 'same', workflow: WORKFLOW, images: [], attempt: 1 };
    const [first, second] = await Promise.all([provider.doSubmit(request), provider.doSubmit(request)]);
    expect(second).toEqual(first);
    const third = await provider.doSubmit({ ...request, attempt: 2 });
    expect(third.remoteId).not.toBe(first.remoteId);
    expect(mock.stats().requests.run).toBe(2);
    // A failed submission is not remembered: trying again sends again.
    mock.failNext('run', { status: 503 });
    await expect(provider.doSubmit({ ...request, attempt: 3 })).rejects.toThrow();
    await provider.doSubmit({ ...request, attempt: 3 });
    expect(mock.stats().requests.run).toBe(4);
  });

  it('maps 401 to a non-retryable error naming apiKey and RUNPOD_API_KEY, without the key', async () => {
    const { make } = await setup();
    const provider = make({ apiKey: 'sk-wrong-key-123456' });
    const error = await submit(provider).catch((caught: unknown) => caught);
    expect(ApiCallError.isInstance(error)).toBe(true);
    expect((error as ApiCallError).statusCode).toBe(401);
    expect((error as ApiCallError).isRetryable).toBe(false);
    expect((error as Error).message).toContain('`apiKey`');
    expect((error as Error).message).toContain('RUNPOD_API_KEY');
    expect(JSON.stringify(error)).not.toContain('sk-wrong-key-123456');
    expect((error as Error).message).not.toContain('sk-wrong-key-123456');
  });

  it('maps a 404 on /run to a ConfigurationError naming the endpoint', async () => {
    const { make } = await setup();
    const provider = make({ endpointId: 'no-such-endpoint' });
    const error = await submit(provider).catch((caught: unknown) => caught);
    expect(ConfigurationError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('no-such-endpoint');
  });

  it('maps a 400 to a non-retryable error', async () => {
    const { provider, mock } = await setup();
    mock.failNext('run', { status: 400, body: { error: 'input is required' } });
    const error = await submit(provider).catch((caught: unknown) => caught);
    expect(ApiCallError.isInstance(error) && !error.isRetryable && error.statusCode === 400).toBe(true);
  });
});

describe('createRunpod: waiting', () => {
  for (const seconds of [5, 30, 90, 300]) {
    it(`follows a ${seconds} s job with at most 1 + ceil(${seconds}/90) requests`, async () => {
      const { provider, mock } = await setup({ executionMs: seconds * 1000 });
      const ref = await submit(provider);
      const { events, error } = await watchAll(provider, ref);
      expect(error).toBeUndefined();
      expect(events.map((event) => event.type)).toEqual(['started', 'completed']);
      const stats = mock.stats();
      expect(stats.totalRequests).toBeLessThanOrEqual(1 + Math.ceil(seconds / 90));
      expect(stats.requests.run).toBe(1);
      expect(stats.executions[ref.remoteId]).toBe(1);
      const completed = events.at(-1);
      if (completed?.type !== 'completed') throw new Error('not completed');
      expect(completed.timing?.executionMs).toBe(seconds * 1000);
    });
  }

  it('reports the cold start wait as queuedMs and decodes the outputs', async () => {
    const { provider } = await setup({ workersMin: 0, coldStartMs: 12_000, executionMs: 4_000 });
    const ref = await submit(provider);
    const { events } = await watchAll(provider, ref);
    const started = events.find((event) => event.type === 'started');
    expect(started).toMatchObject({ type: 'started', queuedMs: 12_000, workerId: expect.any(String) });
    const completed = events.at(-1);
    if (completed?.type !== 'completed') throw new Error('not completed');
    expect(completed.timing).toEqual({ queuedMs: 12_000, executionMs: 4_000 });
    expect(completed.outputs).toHaveLength(1);
    const output = completed.outputs?.[0];
    expect(output).toMatchObject({
      nodeId: '9',
      kind: 'image',
      filename: 'Render_00001_.png',
      mime: 'image/png',
    });
    expect(
      Buffer.from(output?.data ?? [])
        .subarray(1, 4)
        .toString(),
    ).toBe('PNG');
  });

  it('returns s3_url outputs as URLs', async () => {
    const { provider } = await setup({ bucketUrl: 'https://bucket.example.com/out' });
    const { events } = await watchAll(provider, await submit(provider));
    const completed = events.at(-1);
    if (completed?.type !== 'completed') throw new Error('not completed');
    expect(completed.outputs?.[0]?.url).toMatch(
      /^https:\/\/bucket\.example\.com\/out\/.+\/Render_00001_\.png$/,
    );
    expect(completed.outputs?.[0]?.data).toBeUndefined();
  });

  it('honours Retry-After on a 429 while waiting', async () => {
    const { provider, mock, requests } = await setup({ executionMs: 60_000 });
    const ref = await submit(provider);
    mock.failNext('status-sync', { status: 429, count: 2, retryAfterSeconds: 20 });
    const { events, error } = await watchAll(provider, ref);
    expect(error).toBeUndefined();
    expect(events.at(-1)?.type).toBe('completed');
    const polls = requests.filter((request) => request.path.includes('/status-sync/'));
    expect(polls).toHaveLength(3);
    expect((polls[1]?.at ?? 0) - (polls[0]?.at ?? 0)).toBeGreaterThanOrEqual(20_000);
    expect(polls[0]?.path).toContain('wait=90000');
  });

  it('is rate limited by the mock like RunPod and still finishes', async () => {
    const { provider, mock } = await setup({
      executionMs: 30_000,
      rateLimits: { status: { per10s: 1, concurrent: 400 } },
    });
    const refs = await Promise.all([submit(provider, WORKFLOW, 'a'), submit(provider, WORKFLOW, 'b')]);
    const results = await Promise.all(refs.map((ref) => watchAll(provider, ref)));
    for (const result of results) expect(result.events.at(-1)?.type).toBe('completed');
    expect(mock.stats().rateLimited).toBeGreaterThan(0);
  });

  it('retries a 500 while waiting and keeps the watch alive', async () => {
    const { provider, mock } = await setup({ executionMs: 10_000 });
    const ref = await submit(provider);
    mock.failNext('status-sync', { status: 500, count: 1 });
    const { events } = await watchAll(provider, ref);
    expect(events.at(-1)?.type).toBe('completed');
  });

  it('throws a retryable error from the watch when the platform keeps failing', async () => {
    const { make, mock } = await setup({ executionMs: 10_000 });
    const provider = make({ maxRetries: 1 });
    const ref = await submit(provider);
    mock.failNext('status-sync', { status: 503, count: 5 });
    const { error } = await watchAll(provider, ref);
    expect(ApiCallError.isInstance(error) && error.isRetryable).toBe(true);
  });

  it('falls back to /status with backoff where /status-sync is absent', async () => {
    const { provider, mock, requests } = await setup({ statusSync: false, executionMs: 60_000 });
    const ref = await submit(provider);
    const { events, error } = await watchAll(provider, ref);
    expect(error).toBeUndefined();
    expect(events.at(-1)?.type).toBe('completed');
    const polls = requests.filter((request) => request.path.includes('/status/'));
    // 60 s at 1 s, 1.5 s, 2.25 s ... up to 15 s: about a dozen polls, not sixty.
    expect(polls.length).toBeLessThanOrEqual(14);
    const gaps = polls.slice(1).map((poll, index) => poll.at - (polls[index]?.at ?? 0));
    expect(gaps.at(-1) ?? 0).toBeGreaterThan(gaps[0] ?? 0);
    // The provider learnt that the route is absent: a second job does not ask again.
    const before = mock.stats().requests['status-sync'];
    await watchAll(provider, await submit(provider, WORKFLOW, 'again'));
    expect(mock.stats().requests['status-sync']).toBe(before);
  });

  it('follows /stream for progress and outputs when asked', async () => {
    const { make, mock } = await setup();
    const provider = make({ waitMode: 'stream' });
    mock.enqueuePlan({
      executionMs: 40_000,
      stream: [
        { progress: { value: 5, max: 20, node: '3' } },
        { value: 10, max: 20 },
        '20/20',
        { images: [{ filename: 'Render_00001_.png', type: 'base64', data: 'iVBORw0KGgo=' }] },
      ],
    });
    const ref = await submit(provider);
    const { events, error } = await watchAll(provider, ref);
    expect(error).toBeUndefined();
    const progress = events.filter((event) => event.type === 'progress');
    expect(progress.map((event) => (event.type === 'progress' ? event.fraction : 0))).toEqual([0.25, 0.5, 1]);
    expect(progress[0]).toMatchObject({ nodeId: '3', value: 5, max: 20 });
    expect(events.filter((event) => event.type === 'output')).toHaveLength(1);
    const completed = events.at(-1);
    if (completed?.type !== 'completed') throw new Error('not completed');
    expect(completed.outputs?.[0]?.filename).toBe('Render_00001_.png');
    expect(mock.stats().requests.status).toBe(0);
  });

  it('stream mode falls back to status-sync where /stream is absent', async () => {
    const { make, mock } = await setup({ executionMs: 5_000 });
    const provider = make({ waitMode: 'stream' });
    const ref = await submit(provider);
    mock.failNext('stream', { status: 404, body: { error: 'not found' } });
    const { events } = await watchAll(provider, ref);
    expect(events.at(-1)?.type).toBe('completed');
    expect(mock.stats().requests['status-sync']).toBeGreaterThan(0);
  });

  it('stops promptly when the signal aborts, and the held request is released', async () => {
    const { provider, mock } = await setup({ executionMs: 3_600_000 }, { executionTimeoutMs: 7_200_000 });
    const ref = await submit(provider);
    const controller = new AbortController();
    const watching = watchAll(provider, ref, controller.signal);
    await mock.waitForHeld(1);
    controller.abort(new Error('caller gave up'));
    const { events, error } = await watching;
    expect((error as Error).message).toBe('caller gave up');
    expect(events.some((event) => event.type === 'completed' || event.type === 'failed')).toBe(false);
    await vi.waitFor(() => expect(mock.heldRequests()).toBe(0));
    await provider.doCancel(ref);
  });

  it('resumes from a journalled reference in a new provider instance without running the job twice', async () => {
    const { provider, mock, make } = await setup({ executionMs: 200_000 });
    const ref = await submit(provider);
    const journalled = JSON.parse(JSON.stringify(ref)) as RemoteJobRef;
    const controller = new AbortController();
    const first = watchAll(provider, ref, controller.signal);
    await mock.waitForHeld(1);
    controller.abort(new Error('host restarting'));
    await first;
    const restarted = make();
    const { events, error } = await watchAll(restarted, journalled);
    expect(error).toBeUndefined();
    expect(events.at(-1)?.type).toBe('completed');
    expect(mock.stats().executions[ref.remoteId]).toBe(1);
    expect(mock.stats().requests.run).toBe(1);
  });
});

describe('createRunpod: failures', () => {
  it('maps a missing model to ComfyValidationError naming the node, the model and the volume path', async () => {
    const { provider } = await setup({ models: { checkpoints: ['flux1-dev.safetensors'] } });
    const ref = await submit(provider);
    const failure = lastFailure((await watchAll(provider, ref)).events);
    expect(ComfyValidationError.isInstance(failure.error)).toBe(true);
    const error = failure.error as ComfyValidationError;
    expect(error.type).toBe('value_not_in_list');
    expect(error.nodeErrors[0]).toMatchObject({
      nodeId: '4',
      classType: 'CheckpointLoaderSimple',
      input: 'ckpt_name',
      details: 'sd_xl_base_1.0.safetensors',
    });
    expect(error.message).toContain('node 4');
    expect(error.message).toContain('sd_xl_base_1.0.safetensors');
    expect(error.message).toContain('/runpod-volume/models/checkpoints/');
    expect(error.isRetryable).toBe(false);
  });

  it('maps an unknown node type to ComfyValidationError (invalid_prompt)', async () => {
    const { provider } = await setup({ nodeTypes: ['KSampler', 'SaveImage'] });
    const failure = lastFailure((await watchAll(provider, await submit(provider))).events);
    expect(ComfyValidationError.isInstance(failure.error)).toBe(true);
    expect((failure.error as ComfyValidationError).type).toBe('invalid_prompt');
    expect(failure.error.message).toContain('CheckpointLoaderSimple');
    expect((failure.error as ComfyValidationError).nodeErrors[0]?.nodeId).toBe('4');
  });

  it('maps an execution error in details to ComfyExecutionError naming the node', async () => {
    const { provider, mock } = await setup();
    mock.arrange('execution-failure');
    const failure = lastFailure((await watchAll(provider, await submit(provider))).events);
    expect(ComfyExecutionError.isInstance(failure.error)).toBe(true);
    expect((failure.error as ComfyExecutionError).nodeId).toBe('3');
    expect((failure.error as ComfyExecutionError).nodeType).toBe('KSampler');
    expect(failure.executionStarted).toBe(true);
  });

  it('maps any other failure to JobFailedError, retryable only when the worker lost ComfyUI', async () => {
    const { provider, mock } = await setup();
    mock.enqueuePlan({ outcome: 'failed', error: 'Something odd happened' });
    mock.enqueuePlan({
      outcome: 'failed',
      error: 'ComfyUI server (127.0.0.1:8188) not reachable after multiple retries.',
    });
    const first = lastFailure((await watchAll(provider, await submit(provider, WORKFLOW, 'x'))).events);
    const second = lastFailure((await watchAll(provider, await submit(provider, WORKFLOW, 'y'))).events);
    expect(JobFailedError.isInstance(first.error)).toBe(true);
    expect((first.error as JobFailedError).isRetryable).toBe(false);
    expect(first.error.message).toContain('Something odd happened');
    expect((second.error as JobFailedError).isRetryable).toBe(true);
  });

  it('maps TIMED_OUT to JobTimeoutError with the execution timeout', async () => {
    const { make } = await setup({ executionMs: 20_000 });
    const provider = make({ executionTimeoutMs: 5_000 });
    const failure = lastFailure((await watchAll(provider, await submit(provider))).events);
    expect(JobTimeoutError.isInstance(failure.error)).toBe(true);
    expect((failure.error as JobTimeoutError).timeoutMs).toBe(5_000);
    expect(failure.error.message).toContain('executionTimeoutMs');
  });

  it('reports an id past its 30-minute retention as expired, never unknown', async () => {
    const { provider, clock } = await setup({ executionMs: 5_000 });
    const ref = await submit(provider);
    await watchAll(provider, ref);
    await clock.advance(31 * 60_000);
    const failure = lastFailure((await watchAll(provider, ref)).events);
    expect(JobExpiredError.isInstance(failure.error)).toBe(true);
    expect((failure.error as JobExpiredError).remoteId).toBe(ref.remoteId);
    expect(failure.error.message).toMatch(/30 minutes/);
  });

  it('reports a job deleted by its TTL while running as expired', async () => {
    const { make } = await setup({ executionMs: 200_000 });
    const provider = make({ ttlMs: 60_000 });
    const ref = await submit(provider);
    const { events } = await watchAll(provider, ref);
    const failure = lastFailure(events);
    expect(JobExpiredError.isInstance(failure.error)).toBe(true);
  });

  it('cancels, and cancelling a finished or expired job is not an error', async () => {
    const { provider, mock, clock } = await setup(
      { executionMs: 600_000 },
      { executionTimeoutMs: 3_600_000 },
    );
    const ref = await submit(provider);
    const watching = watchAll(provider, ref);
    await mock.waitForHeld(1);
    await provider.doCancel(ref);
    expect((await watching).events.at(-1)?.type).toBe('cancelled');
    expect(mock.job(ref.remoteId)?.status).toBe('CANCELLED');
    await expect(provider.doCancel(ref)).resolves.toBeUndefined();
    await clock.advance(31 * 60_000);
    await expect(provider.doCancel(ref)).resolves.toBeUndefined();
  });

  it('never lets the API key into errors, events or logs', async () => {
    const key = 'rp_SECRETKEY_0123456789';
    const { make, mock } = await setup({ apiKey: key });
    const provider = make({ apiKey: key });
    const logged: string[] = [];
    for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const)
      vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
        logged.push(args.map(String).join(' '));
      });
    const seen: string[] = [];
    mock.failNext('run', { status: 401, body: { error: `key ${key} is not valid` } });
    const submitError = await submit(provider).catch((caught: unknown) => caught);
    seen.push(
      String(submitError),
      JSON.stringify(submitError),
      (submitError as ApiCallError).responseBody ?? '',
    );
    mock.failNext('run', { status: 500, body: { error: `upstream said Bearer ${key}` } });
    const serverError = await submit(provider).catch((caught: unknown) => caught);
    seen.push((serverError as Error).message, (serverError as ApiCallError).responseBody ?? '');
    mock.enqueuePlan({
      outcome: 'failed',
      error: `handler crashed with key ${key}`,
      details: [`auth ${key}`],
    });
    const ref = await submit(provider);
    const { events } = await watchAll(provider, ref);
    for (const event of events)
      seen.push(JSON.stringify(event), event.type === 'failed' ? (event.error as Error).message : '');
    const wrong = make({ apiKey: `${key}-wrong` });
    const wrongError = await submit(wrong).catch((caught: unknown) => caught);
    seen.push((wrongError as Error).message, JSON.stringify(wrongError));
    expect(seen.join('\n')).toContain('handler crashed');
    expect(seen.join('\n')).not.toContain(key);
    expect(logged.join('\n')).not.toContain(key);
  });
});

describe('createRunpod: health', () => {
  it('maps /health to the core health shape', async () => {
    const { provider } = await setup({ workersMin: 2, executionMs: 100_000, autoAdvance: false });
    const ref = await submit(provider);
    const health = await provider.doHealth();
    expect(health).toMatchObject({
      status: 'healthy',
      queued: 0,
      running: 1,
      idleWorkers: 1,
      busyWorkers: 1,
      initializingWorkers: 0,
      throttledWorkers: 0,
      checkedAt: expect.any(Number),
    });
    await provider.doCancel(ref);
  });

  it('is unhealthy when jobs queue and every worker is throttled', async () => {
    const { provider } = await setup({ workersMin: 0, gpusAvailable: 0 });
    await submit(provider);
    const health = await provider.doHealth();
    expect(health.status).toBe('unhealthy');
    expect(health.queued).toBe(1);
    expect(health.throttledWorkers).toBeGreaterThan(0);
    expect(health.message).toMatch(/throttled/);
  });
});

describe('createRunpod: preflight and odd answers', () => {
  it('checks models and node types against the image description', async () => {
    const provider = createRunpod({
      endpointId: 'abc',
      gpu: 'L4-24GB',
      image: {
        id: 'worker-comfyui:sdxl',
        models: { checkpoints: ['sdxl.safetensors'] },
        nodeTypes: ['KSampler'],
      },
    });
    const result = await provider.doPreflight?.({
      models: [
        { folder: 'checkpoints', name: 'sdxl.safetensors' },
        { folder: 'loras', name: 'detail.safetensors' },
        { folder: null, name: 'sdxl.safetensors' },
      ],
      nodeTypes: ['KSampler', 'FaceDetailer'],
    });
    expect(result).toEqual({
      ok: false,
      missingModels: ['loras/detail.safetensors'],
      missingNodeTypes: ['FaceDetailer'],
    });
    const unknown = createRunpod({ endpointId: 'abc', gpu: 'L4-24GB' });
    expect(
      (await unknown.doPreflight?.({ models: [{ folder: 'loras', name: 'x' }], nodeTypes: ['X'] }))?.ok,
    ).toBe(true);
  });

  it('throws InvalidResponseError when a status answer has the wrong shape', async () => {
    const fetch: FetchFunction = async (input) =>
      String(input).includes('/status-sync/')
        ? new Response(JSON.stringify({ id: 'x', state: 'weird' }), { status: 200 })
        : new Response(JSON.stringify({ id: 'job-u1', status: 'IN_QUEUE' }), { status: 200 });
    const provider = createRunpod({ endpointId: 'abc', apiKey: 'k-123456', gpu: 'L4-24GB', fetch });
    const ref = await submit(provider);
    const { error } = await watchAll(provider, ref);
    expect(InvalidResponseError.isInstance(error)).toBe(true);
  });

  it('stream mode reads the error of a FAILED job from /status', async () => {
    const { make, mock } = await setup({ models: { checkpoints: [] } });
    const provider = make({ waitMode: 'stream' });
    const failure = lastFailure((await watchAll(provider, await submit(provider))).events);
    expect(ComfyValidationError.isInstance(failure.error)).toBe(true);
    expect(mock.stats().requests.status).toBe(1);
  });
});
