import { afterEach, describe, expect, it } from 'vitest';
import { ComfyExecutionError, ComfyValidationError } from '../spec/errors';
import type { ProviderJobEvent, RemoteJobRef } from '../spec/job';
import type { ProviderV1 } from '../spec/provider-v1';
import { type ConformanceScenario, testProvider } from '../test/conformance';
import { type FakeComfyServer, sampleWorkflow, startFakeComfyServer, TINY_PNG } from '../test/fake-comfy';
import { createSelfHosted } from './self-hosted';

const txt2img = (checkpoint = 'sd_xl_base_1.0.safetensors', sampler = 'KSampler') =>
  sampleWorkflow({ checkpoint, sampler, size: 512 });

const fastWatch = { pollIntervalMs: 20, socketPollIntervalMs: 100, missingChecks: 3 };

testProvider('self-hosted', async () => {
  const fake = await startFakeComfyServer({ stepMs: 2 });
  const provider = createSelfHosted({ servers: [fake.url], gpu: 'RTX4090-24GB', watch: fastWatch });
  return {
    provider,
    arrange(scenario: ConformanceScenario) {
      switch (scenario) {
        case 'success':
          fake.arrange({ type: 'succeed' });
          break;
        case 'execution-failure':
          fake.arrange({ type: 'fail', nodeId: '3', message: 'CUDA out of memory' });
          break;
        case 'long-running':
          fake.arrange({ type: 'run-until-cancelled' });
          break;
        case 'submit-retryable-error':
          fake.arrange({ type: 'http-error', status: 503 });
          break;
        case 'submit-fatal-error':
          // A node type no server has: preflight refuses it before a GPU is used.
          return { workflow: txt2img('sd_xl_base_1.0.safetensors', 'KSamplerFromAnotherPack') };
      }
      return { workflow: txt2img() };
    },
    close: () => fake.close(),
  };
});

describe('createSelfHosted', () => {
  it('refuses bad settings naming the option', () => {
    expect(() => createSelfHosted({ servers: [], gpu: 'RTX4090-24GB' })).toThrow(/"servers"/);
    expect(() => createSelfHosted({ servers: ['ftp://x'], gpu: 'RTX4090-24GB' })).toThrow(/servers\[0\]/);
    expect(() => createSelfHosted({ servers: ['http://user:pw@x:8188'], gpu: 'L4-24GB' })).toThrow(/headers/);
    expect(() => createSelfHosted({ servers: ['http://x:8188'], gpu: 'NoSuchGPU' })).toThrow(/gpu/);
    const provider = createSelfHosted({
      servers: ['http://10.0.0.5:8188/', 'http://10.0.0.6:8188'],
      gpu: 'L4-24GB',
    });
    expect(provider.id).toBe('self-hosted:10.0.0.5:8188+1');
    expect(provider.gpu).toEqual({ type: 'L4-24GB', vramGb: 24 });
    expect(provider.pricing.usdPerSecond).toBeGreaterThan(0);
    expect(provider.limits).toEqual({ maxConcurrency: 4, maxPayloadBytes: 100 * 1024 * 1024 });
    expect(
      createSelfHosted({ servers: ['http://x:1'], gpu: 'L4-24GB', pricing: { usdPerSecond: 0 } }).pricing,
    ).toEqual({
      usdPerSecond: 0,
    });
    expect(() =>
      createSelfHosted({ servers: ['http://x:1'], gpu: 'L4-24GB', pricing: { usdPerSecond: -1 } }),
    ).toThrow(/pricing.usdPerSecond/);
  });
});

let servers: FakeComfyServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((server) => server.close()));
  servers = [];
});

async function start(...options: Array<Parameters<typeof startFakeComfyServer>[0]>) {
  const started = await Promise.all(options.map((option) => startFakeComfyServer({ stepMs: 1, ...option })));
  servers.push(...started);
  return started;
}

async function watchAll(provider: ProviderV1, ref: RemoteJobRef): Promise<ProviderJobEvent[]> {
  const events: ProviderJobEvent[] = [];
  for await (const event of provider.doWatch(JSON.parse(JSON.stringify(ref)))) events.push(event);
  return events;
}

async function until(condition: () => boolean): Promise<void> {
  for (let index = 0; index < 2_000 && !condition(); index++)
    await new Promise((resolve) => setTimeout(resolve, 2));
  if (!condition()) throw new Error('condition never held');
}

let jobs = 0;
const request = (
  workflow = sampleWorkflow(),
  images: Array<{ name: string; data: string | Uint8Array }> = [],
) => ({
  jobId: `job-${++jobs}`,
  workflow,
  images,
  attempt: 1,
});

describe('self-hosted provider over a pool', () => {
  it('sends a job to the least-loaded server', async () => {
    const [busy, idle] = await start({}, {});
    busy!.arrange({ type: 'run-until-cancelled' });
    const provider = createSelfHosted({
      servers: [busy!.url, idle!.url],
      gpu: 'RTX4090-24GB',
      watch: fastWatch,
    });
    await provider.doSubmit(request());
    await until(() => busy!.queue().running.length === 1);
    const ref = await provider.doSubmit(request());
    expect(ref.data).toMatchObject({ server: idle!.url });
    expect(typeof ref.data?.['clientId']).toBe('string');
    expect(idle!.clientIdOf(ref.remoteId)).toBe(ref.data?.['clientId']);
    const events = await watchAll(provider, ref);
    expect(events.at(-1)?.type).toBe('completed');
    busy!.release();
  });

  it('preflights: a server that lacks the model is passed over for one that has it', async () => {
    const [without, withModel] = await start({}, { models: { checkpoints: ['flux1-dev.safetensors'] } });
    const provider = createSelfHosted({
      servers: [without!.url, withModel!.url],
      gpu: 'H100-80GB',
      watch: fastWatch,
    });
    const ref = await provider.doSubmit(request(sampleWorkflow({ checkpoint: 'flux1-dev.safetensors' })));
    expect(ref.data?.['server']).toBe(withModel!.url);
    expect(without!.stats.prompts).toBe(0);
  });

  it('preflights: no server has the model, so nothing is submitted and the error is not retryable', async () => {
    const [server] = await start({});
    const provider = createSelfHosted({ servers: [server!.url], gpu: 'H100-80GB' });
    const error = await provider
      .doSubmit(request(sampleWorkflow({ checkpoint: 'missing.safetensors' })))
      .catch((caught: unknown) => caught);
    expect(ComfyValidationError.isInstance(error)).toBe(true);
    expect((error as ComfyValidationError).isRetryable).toBe(false);
    expect((error as ComfyValidationError).nodeErrors[0]).toMatchObject({
      nodeId: '4',
      type: 'value_not_in_list',
    });
    expect((error as ComfyValidationError).providerId).toBe(provider.id);
    expect(server!.stats.prompts + server!.stats.rejectedPrompts).toBe(0);
  });

  it('reads /object_info again when the cached copy lacks a model', async () => {
    const [server] = await start({});
    const provider = createSelfHosted({ servers: [server!.url], gpu: 'H100-80GB', watch: fastWatch });
    await provider.doSubmit(request());
    const reads = server!.stats.objectInfoRequests;
    await provider.doSubmit(request());
    expect(server!.stats.objectInfoRequests).toBe(reads);
    server!.setModels('checkpoints', ['sd_xl_base_1.0.safetensors', 'new-model.safetensors']);
    const ref = await provider.doSubmit(request(sampleWorkflow({ checkpoint: 'new-model.safetensors' })));
    expect(server!.stats.objectInfoRequests).toBe(reads + 1);
    expect((await watchAll(provider, ref)).at(-1)?.type).toBe('completed');
  });

  it('uploads input images under a per-job name and points the workflow at it', async () => {
    const [server] = await start({});
    const provider = createSelfHosted({ servers: [server!.url], gpu: 'L4-24GB', watch: fastWatch });
    const workflow = sampleWorkflow();
    workflow['10'] = { class_type: 'LoadImage', inputs: { image: 'photo.png' } };
    workflow['11'] = { class_type: 'PreviewImage', inputs: { images: ['10', 0] } };
    const job = request(workflow, [{ name: 'photo.png', data: Buffer.from(TINY_PNG).toString('base64') }]);
    const ref = await provider.doSubmit(job);
    const uploadedName = `${job.jobId}-photo.png`;
    expect([...(server!.uploads().get(uploadedName) ?? [])]).toEqual([...TINY_PNG]);
    expect(workflow['10']?.inputs['image']).toBe('photo.png');
    const queued = await (await fetch(`${server!.url}/queue`)).json();
    const prompt = [...queued.queue_running, ...queued.queue_pending].find(
      (item: unknown[]) => item[1] === ref.remoteId,
    )?.[2];
    expect(prompt?.['10']?.inputs?.image).toBe(uploadedName);
  });

  it('returns every output kind with its bytes, and leaves temp outputs out', async () => {
    const [server] = await start({});
    server!.arrange({
      type: 'succeed',
      outputs: {
        '9': {
          gifs: [{ filename: 'clip.mp4', format: 'video/h264-mp4', data: 'mp4' }],
          audio: [{ filename: 'voice.wav', data: 'RIFF' }],
          text: ['a caption'],
          images: [{ filename: 'preview.png', type: 'temp' }],
        },
      },
    });
    const provider = createSelfHosted({ servers: [server!.url], gpu: 'L4-24GB', watch: fastWatch });
    const events = await watchAll(provider, await provider.doSubmit(request()));
    const last = events.at(-1);
    if (last?.type !== 'completed') throw new Error(`expected completed, got ${last?.type}`);
    const outputs = last.outputs ?? [];
    expect(outputs.map((output) => [output.kind, output.filename, output.mime])).toEqual([
      ['video', 'clip.mp4', 'video/mp4'],
      ['audio', 'voice.wav', 'audio/wav'],
      ['text', '9-text-0.txt', 'text/plain'],
    ]);
    expect(new TextDecoder().decode(outputs[0]?.data)).toBe('mp4');
    expect(outputs[2]?.text).toBe('a caption');
    expect(events.filter((event) => event.type === 'output')).toHaveLength(3);
    expect(last.timing?.executionMs).toBeGreaterThanOrEqual(0);
    expect(last.gpuSeconds).toBeGreaterThanOrEqual(0);
  });

  it('reports started with the server, progress, and a typed execution failure', async () => {
    const [server] = await start({});
    server!.arrange({ type: 'fail', nodeId: '8', exceptionType: 'ValueError', message: 'bad' });
    const provider = createSelfHosted({ servers: [server!.url], gpu: 'L4-24GB', watch: fastWatch });
    const events = await watchAll(provider, await provider.doSubmit(request()));
    expect(events.find((event) => event.type === 'started')).toMatchObject({ workerId: server!.url });
    const last = events.at(-1);
    expect(last?.type).toBe('failed');
    if (last?.type === 'failed') {
      expect(ComfyExecutionError.isInstance(last.error)).toBe(true);
      expect(last.error).toMatchObject({ nodeId: '8', nodeType: 'VAEDecode', providerId: provider.id });
      expect(last.executionStarted).toBe(true);
    }
  });

  it('watches and cancels from a journalled reference in a new provider instance', async () => {
    const [server] = await start({});
    const settings = { servers: [server!.url], gpu: 'L4-24GB', watch: fastWatch };
    const first = createSelfHosted(settings);
    const done = await first.doSubmit(request());
    server!.arrange({ type: 'run-until-cancelled' });
    const long = await first.doSubmit(request());
    const restarted = createSelfHosted(settings);
    expect((await watchAll(restarted, done)).at(-1)?.type).toBe('completed');
    await until(() => server!.queue().running.includes(long.remoteId));
    const watching = watchAll(first, long);
    await restarted.doCancel(JSON.parse(JSON.stringify(long)));
    expect((await watching).at(-1)?.type).toBe('cancelled');
    expect(server!.stats.cancelCalls).toBe(1);
  });

  it('reports pool health from /queue and /system_stats', async () => {
    const [up, down] = await start({}, {});
    const provider = createSelfHosted({
      servers: [up!.url, down!.url],
      gpu: 'L4-24GB',
      checkTimeoutMs: 1_000,
    });
    up!.arrange({ type: 'run-until-cancelled' });
    await provider.doSubmit(request());
    await until(() => up!.queue().running.length === 1);
    await down!.close();
    const health = await provider.doHealth();
    expect(health).toMatchObject({
      status: 'degraded',
      running: 1,
      queued: 0,
      busyWorkers: 1,
      idleWorkers: 0,
      maxWorkers: 2,
    });
    expect(health.message).toContain(down!.url);
    expect(up!.stats.systemStatsRequests).toBe(1);
    await up!.close();
    expect((await provider.doHealth()).status).toBe('unhealthy');
    await expect(provider.doSubmit(request())).rejects.toSatisfy(
      (error: unknown) => (error as { isRetryable?: boolean }).isRetryable === true,
    );
  });

  it('preflights requirements against the pool', async () => {
    const [server] = await start({ models: { loras: ['style.safetensors'] } });
    const provider = createSelfHosted({ servers: [server!.url], gpu: 'L4-24GB' });
    const result = await provider.doPreflight?.({
      models: [
        { folder: 'loras', name: 'style.safetensors' },
        { folder: 'checkpoints', name: 'absent.safetensors' },
      ],
      nodeTypes: ['KSampler', 'IPAdapterApply'],
    });
    expect(result).toEqual({
      ok: false,
      missingModels: ['checkpoints/absent.safetensors'],
      missingNodeTypes: ['IPAdapterApply'],
    });
  });
});

describe('self-hosted submission is idempotent per job and attempt', () => {
  it('finds a job already queued instead of submitting it twice', async () => {
    const [server] = await start({});
    server!.arrange({ type: 'run-until-cancelled' });
    const provider = createSelfHosted({ servers: [server!.url], gpu: 'L4-24GB' });
    const job = request();
    const first = await provider.doSubmit(job);
    const again = await provider.doSubmit(job);
    expect(again.remoteId).toBe(first.remoteId);
    expect(again.data?.['clientId']).toBe(first.data?.['clientId']);
    expect(server!.stats.prompts).toBe(1);
    const next = await provider.doSubmit({ ...job, attempt: 2 });
    expect(next.remoteId).not.toBe(first.remoteId);
    server!.release();
  });

  it('keeps a submission whose answer was lost', async () => {
    const [server] = await start({});
    const losingFetch: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      if (String(input).endsWith('/prompt')) throw new TypeError('fetch failed: socket hang up');
      return response;
    };
    const provider = createSelfHosted({
      servers: [server!.url],
      gpu: 'L4-24GB',
      fetch: losingFetch,
      watch: fastWatch,
    });
    const ref = await provider.doSubmit(request());
    expect(server!.stats.prompts).toBe(1);
    expect((await watchAll(provider, ref)).at(-1)?.type).toBe('completed');
  });

  it('still submits to a server whose /object_info cannot be read, and lets ComfyUI validate', async () => {
    const [server] = await start({});
    const brokenObjectInfo: typeof fetch = async (input, init) =>
      String(input).includes('/object_info')
        ? new Response('<html>proxy error</html>', { status: 200 })
        : fetch(input, init);
    const provider = createSelfHosted({ servers: [server!.url], gpu: 'L4-24GB', fetch: brokenObjectInfo });
    await provider.doSubmit(request());
    expect(server!.stats.prompts).toBe(1);
    const error = await provider
      .doSubmit(request(sampleWorkflow({ checkpoint: 'missing.safetensors' })))
      .catch((caught: unknown) => caught);
    expect(ComfyValidationError.isInstance(error)).toBe(true);
    expect(server!.stats.rejectedPrompts).toBe(1);
  });
});

describe('self-hosted: a job id submitted again after it finished', () => {
  it('with the same workflow, returns the finished run instead of running it again', async () => {
    const [server] = await start({});
    const provider = createSelfHosted({ servers: [server!.url], gpu: 'L4-24GB', watch: fastWatch });
    const job = request();
    server!.arrange({ type: 'succeed', outputs: { '9': { images: [{ filename: 'first.png' }] } } });
    const first = await provider.doSubmit(job);
    await server!.idle();
    const again = await provider.doSubmit(job);
    expect(again).toMatchObject({ remoteId: first.remoteId, data: { clientId: first.data?.['clientId'] } });
    const last = (await watchAll(provider, again)).at(-1);
    if (last?.type !== 'completed') throw new Error(`expected completed, got ${last?.type}`);
    expect(last.outputs?.map((output) => output.filename)).toEqual(['first.png']);
    expect(server!.stats.executions).toBe(1);
  });

  it('with another workflow, runs again and never returns the earlier run from history', async () => {
    const [server] = await start({});
    const provider = createSelfHosted({ servers: [server!.url], gpu: 'L4-24GB', watch: fastWatch });
    const job = request();
    server!.arrange({ type: 'succeed', outputs: { '9': { images: [{ filename: 'first.png' }] } } });
    const first = await provider.doSubmit(job);
    await server!.idle();
    server!.arrange({ type: 'run-until-cancelled' });
    const second = await provider.doSubmit({
      ...job,
      workflow: sampleWorkflow({ prompt: 'a different picture' }),
    });
    expect(second.remoteId).toBe(first.remoteId);
    await until(() => server!.queue().running.length === 1);
    const watching = watchAll(provider, second);
    await new Promise((resolve) => setTimeout(resolve, 60));
    server!.release();
    const last = (await watching).at(-1);
    if (last?.type !== 'completed') throw new Error(`expected completed, got ${last?.type}`);
    expect(last.outputs?.map((output) => output.filename)).not.toContain('first.png');
    expect(server!.stats.executions).toBe(2);
  });
});
