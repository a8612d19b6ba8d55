import type { ProviderJobEvent, ProviderV1, RemoteJobRef } from '@comfy-serverless/core';
import {
  ComfyExecutionError,
  ConfigurationError,
  InvalidArgumentError,
  JobExpiredError,
  JobTimeoutError,
  LoadApiKeyError,
  SubmissionUnknownError,
} from '@comfy-serverless/core';
import type { VirtualClock } from '@comfy-serverless/core/test';
import { createVirtualClock } from '@comfy-serverless/core/test';
import { afterEach, describe, expect, it } from 'vitest';
import { createModalEndpoint } from './modal-endpoint-provider';
import type { FakeComfyWorker, FakeModal, FakeModalEndpoint } from './test';
import {
  createFakeComfyWorker,
  createFakeModal,
  sampleWorkflow,
  startFakeModalEndpoint,
  TINY_PNG,
} from './test';

const KEY = 'wk-endpointkey';
const SECRET = 'ws-VERYSECRETvalue42';

let endpoint: FakeModalEndpoint | undefined;
afterEach(async () => {
  await endpoint?.close();
  endpoint = undefined;
});

async function setup(options: { executionMs?: number; timeoutMs?: number; auth?: boolean } = {}): Promise<{
  clock: VirtualClock;
  modal: FakeModal;
  worker: FakeComfyWorker;
  endpoint: FakeModalEndpoint;
}> {
  const clock = createVirtualClock();
  const modal = createFakeModal({ clock });
  const worker = createFakeComfyWorker({ executionMs: options.executionMs ?? 6_000 });
  modal.deploy('comfyui', 'ComfyWorker', {
    methods: worker.methods,
    coldStartMs: 15_000,
    timeoutMs: options.timeoutMs ?? 3_600_000,
  });
  endpoint = await startFakeModalEndpoint({
    modal,
    ...(options.auth === false ? {} : { key: KEY, secret: SECRET }),
  });
  return { clock, modal, worker, endpoint };
}

async function watchAll(
  clock: VirtualClock,
  provider: ProviderV1,
  ref: RemoteJobRef,
  stepMs = 1_000,
): Promise<{ events: ProviderJobEvent[]; error?: unknown }> {
  const events: ProviderJobEvent[] = [];
  let done = false;
  const ticker = (async () => {
    while (!done) {
      await clock.advance(stepMs);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  })();
  try {
    for await (const event of provider.doWatch(ref)) events.push(event);
    return { events };
  } catch (error) {
    return { events, error };
  } finally {
    done = true;
    await ticker;
  }
}

const job = (jobId = `job-${Math.random().toString(36).slice(2)}`) => ({
  jobId,
  workflow: sampleWorkflow(),
  images: [{ name: 'input.png', data: TINY_PNG }],
  attempt: 1,
});

describe('createModalEndpoint', () => {
  it('validates its options at once', () => {
    expect(() => createModalEndpoint({ url: 'not a url', gpu: 'L4' })).toThrow(InvalidArgumentError);
    expect(() => createModalEndpoint({ url: 'ftp://x', gpu: 'L4' })).toThrow(/http/);
    expect(() =>
      createModalEndpoint({ url: 'https://a--comfyui-api.modal.run', gpu: 'L4', pollWaitMs: -1 }),
    ).toThrow(/pollWaitMs/);
  });

  it('does not read credentials from the environment until the first request', async () => {
    const { clock, endpoint } = await setup();
    const reads: string[] = [];
    const env = new Proxy(
      { MODAL_PROXY_TOKEN_ID: KEY, MODAL_PROXY_TOKEN_SECRET: SECRET } as Record<string, string>,
      {
        get(target, property: string) {
          reads.push(property);
          return target[property];
        },
      },
    );
    const provider = createModalEndpoint({ url: endpoint.url, gpu: 'L40S', clock, env });
    expect(reads).toEqual([]);
    const ref = await provider.doSubmit(job());
    expect(reads).toContain('MODAL_PROXY_TOKEN_ID');
    const { events } = await watchAll(clock, provider, ref);
    expect(events.at(-1)?.type).toBe('completed');
    expect(endpoint.requests.every((request) => request.hasKey && request.hasSecret)).toBe(true);
  });

  it('follows the 303 Modal sends after 150 s, with the proxy auth headers, to the result', async () => {
    const { clock, endpoint } = await setup({ executionMs: 200_000 });
    const provider = createModalEndpoint({
      url: endpoint.url,
      key: KEY,
      secret: SECRET,
      gpu: 'L40S',
      clock,
      pollWaitMs: 400_000,
    });
    const ref = await provider.doSubmit(job());
    const { events, error } = await watchAll(clock, provider, ref, 5_000);
    expect(error).toBeUndefined();
    expect(endpoint.redirects).toBeGreaterThanOrEqual(1);
    const followed = endpoint.requests.filter((request) => request.path.startsWith('/__modal_result/'));
    expect(followed.length).toBeGreaterThanOrEqual(1);
    expect(followed.every((request) => request.method === 'GET' && request.hasKey && request.hasSecret)).toBe(
      true,
    );
    const completed = events.at(-1);
    expect(completed?.type).toBe('completed');
    if (completed?.type === 'completed') {
      expect(Buffer.from(completed.outputs![0]!.data!).equals(Buffer.from(TINY_PNG))).toBe(true);
      expect(completed.timing?.executionMs).toBe(200_000);
    }
  });

  it('turns a 401 without credentials into an error naming the options and variables', async () => {
    const { clock, endpoint } = await setup();
    const provider = createModalEndpoint({ url: endpoint.url, gpu: 'L40S', clock, env: {} });
    const error = await provider.doSubmit(job()).catch((caught: unknown) => caught);
    expect(LoadApiKeyError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('key and secret');
    expect((error as Error).message).toContain('MODAL_PROXY_TOKEN_ID');
    expect((error as Error).message).toContain('missing credentials for proxy authorization');
    expect((error as LoadApiKeyError).isRetryable).toBe(false);
  });

  it('turns a 401 with wrong credentials into an error that never shows the secret', async () => {
    const { clock, endpoint } = await setup();
    const wrongSecret = 'ws-WRONGsecretABC';
    const provider = createModalEndpoint({
      url: endpoint.url,
      key: KEY,
      secret: wrongSecret,
      gpu: 'L40S',
      clock,
    });
    const error = await provider.doSubmit(job()).catch((caught: unknown) => caught);
    expect(LoadApiKeyError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('refused the proxy auth token');
    expect(`${(error as Error).message} ${JSON.stringify(error)}`).not.toContain(wrongSecret);
    const health = await provider.doHealth();
    expect(health.status).toBe('unhealthy');
    expect(health.message).not.toContain(wrongSecret);
  });

  it('refuses half a token pair, naming the missing half', async () => {
    const { clock, endpoint } = await setup();
    const provider = createModalEndpoint({ url: endpoint.url, key: KEY, gpu: 'L40S', clock, env: {} });
    const error = await provider.doSubmit(job()).catch((caught: unknown) => caught);
    expect(LoadApiKeyError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('MODAL_PROXY_TOKEN_SECRET');
  });

  it('works without proxy auth when the endpoint does not require it', async () => {
    const { clock, endpoint } = await setup({ auth: false });
    const provider = createModalEndpoint({ url: endpoint.url, gpu: 'L40S', clock, env: {} });
    const { events } = await watchAll(clock, provider, await provider.doSubmit(job()));
    expect(events.at(-1)?.type).toBe('completed');
    expect(endpoint.requests.some((request) => request.hasKey)).toBe(false);
  });

  it("carries ComfyUI's node error, Modal's timeout and an expired call as typed failures", async () => {
    const { clock, endpoint, worker } = await setup({ timeoutMs: 60_000 });
    const provider = createModalEndpoint({
      url: endpoint.url,
      key: KEY,
      secret: SECRET,
      gpu: 'L40S',
      clock,
      pollWaitMs: 30_000,
    });
    worker.next({
      type: 'execution-error',
      nodeId: '8',
      nodeType: 'VAEDecode',
      exceptionType: 'RuntimeError',
      message: 'bad tensor',
    });
    const execution = await watchAll(clock, provider, await provider.doSubmit(job()));
    const failed = execution.events.at(-1);
    if (failed?.type !== 'failed') throw new Error('expected a failure');
    expect(ComfyExecutionError.isInstance(failed.error)).toBe(true);
    expect((failed.error as ComfyExecutionError).nodeId).toBe('8');
    expect(failed.error.message).toContain('bad tensor');

    worker.next({ type: 'hang' });
    const timedOut = await watchAll(clock, provider, await provider.doSubmit(job()), 5_000);
    const timeout = timedOut.events.at(-1);
    if (timeout?.type !== 'failed') throw new Error('expected a failure');
    expect(JobTimeoutError.isInstance(timeout.error)).toBe(true);
    expect(timeout.error.message).toContain("Modal's own limit");

    const expired = await watchAll(clock, provider, { remoteId: 'fc-00000000000000000000000999' });
    const gone = expired.events.at(-1);
    if (gone?.type !== 'failed') throw new Error('expected a failure');
    expect(JobExpiredError.isInstance(gone.error)).toBe(true);
  });

  it('cancels through DELETE /jobs/{callId}, also from another process', async () => {
    const { clock, endpoint, worker, modal } = await setup();
    worker.next({ type: 'hang' });
    const provider = createModalEndpoint({ url: endpoint.url, key: KEY, secret: SECRET, gpu: 'L40S', clock });
    const ref = JSON.parse(JSON.stringify(await provider.doSubmit(job()))) as RemoteJobRef;
    const watching = watchAll(clock, provider, ref);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const other = createModalEndpoint({ url: endpoint.url, key: KEY, secret: SECRET, gpu: 'L40S', clock });
    await other.doCancel(ref);
    expect(modal.getCall(ref.remoteId)?.status).toBe('cancelled');
    const { events } = await watching;
    expect(events.at(-1)?.type).toBe('cancelled');
    expect(endpoint.requests.some((request) => request.method === 'DELETE')).toBe(true);
  });

  it('says what to deploy when the URL is not the reference endpoint', async () => {
    const { clock, endpoint } = await setup({ auth: false });
    const provider = createModalEndpoint({
      url: `${endpoint.url}/nothing-here/`,
      gpu: 'L40S',
      clock,
      env: {},
    });
    const error = await provider.doSubmit(job()).catch((caught: unknown) => caught);
    expect(ConfigurationError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('comfyui_app.py');
  });

  it('reports backlog and containers from GET /health', async () => {
    const { clock, endpoint } = await setup();
    const provider = createModalEndpoint({ url: endpoint.url, key: KEY, secret: SECRET, gpu: 'L40S', clock });
    await provider.doSubmit(job());
    const health = await provider.doHealth();
    expect(health).toMatchObject({ status: 'healthy', queued: 1 });
  });
});

describe('createModalEndpoint when the answer to POST /jobs is lost', () => {
  it('reports the submission as unknown instead of a retryable error, so it is never spawned twice', async () => {
    const { clock, modal, endpoint } = await setup();
    const dropFirstJobsAnswer = async (input: string | URL, init?: RequestInit) => {
      const response = await fetch(input, init);
      if (new URL(String(input)).pathname.endsWith('/jobs') && init?.method === 'POST') {
        await response.body?.cancel();
        throw new TypeError('fetch failed', {
          cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
        });
      }
      return response;
    };
    const provider = createModalEndpoint({
      url: endpoint.url,
      gpu: 'L40S',
      clock,
      key: KEY,
      secret: SECRET,
      fetch: dropFirstJobsAnswer,
    });
    const error = await provider.doSubmit(job('lost-answer')).catch((caught: unknown) => caught);
    expect(SubmissionUnknownError.isInstance(error)).toBe(true);
    expect((error as SubmissionUnknownError).isRetryable).toBe(false);
    expect(modal.calls()).toHaveLength(1);
    expect(JSON.stringify((error as SubmissionUnknownError).toJSON())).not.toContain(SECRET);
  });
});
