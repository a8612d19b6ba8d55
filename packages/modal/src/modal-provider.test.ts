import type { ProviderJobEvent, ProviderV1, RemoteJobRef } from '@comfy-serverless/core';
import {
  ApiCallError,
  ComfyExecutionError,
  ComfyValidationError,
  ConfigurationError,
  type InvalidArgumentError,
  JobFailedError,
  JobTimeoutError,
  LoadApiKeyError,
} from '@comfy-serverless/core';
import type { VirtualClock } from '@comfy-serverless/core/test';
import { createVirtualClock } from '@comfy-serverless/core/test';
import { describe, expect, it } from 'vitest';
import type { ModalBackend } from './modal-backend';
import { createModal } from './modal-provider';
import type { FakeComfyWorker, FakeModal } from './test';
import {
  createFakeComfyWorker,
  createFakeModal,
  grpcError,
  modalError,
  sampleWorkflow,
  TINY_PNG,
} from './test';

interface Setup {
  clock: VirtualClock;
  modal: FakeModal;
  worker: FakeComfyWorker;
  provider: ProviderV1;
}

function setup(
  options: {
    timeoutMs?: number;
    maxContainers?: number;
    models?: Record<string, string[]>;
    preflight?: boolean;
  } = {},
): Setup {
  const clock = createVirtualClock();
  const modal = createFakeModal({ clock });
  const worker = createFakeComfyWorker({
    executionMs: 6_000,
    ...(options.models === undefined ? {} : { models: options.models }),
  });
  modal.deploy('comfyui', 'ComfyWorker', {
    methods: worker.methods,
    coldStartMs: 15_000,
    timeoutMs: options.timeoutMs ?? 3_600_000,
    ...(options.maxContainers === undefined ? {} : { autoscaler: { maxContainers: options.maxContainers } }),
  });
  const provider = createModal({
    app: 'comfyui',
    gpu: 'H100',
    client: modal,
    clock,
    pollTimeoutMs: 20_000,
    ...(options.preflight === undefined ? {} : { preflight: options.preflight }),
  });
  return { clock, modal, worker, provider };
}

/** Watches a job while moving the virtual clock, as the platform's time passing. */
async function watchAll(
  clock: VirtualClock,
  provider: ProviderV1,
  ref: RemoteJobRef,
  options: { signal?: AbortSignal; stepMs?: number } = {},
): Promise<{ events: ProviderJobEvent[]; error?: unknown }> {
  const events: ProviderJobEvent[] = [];
  let done = false;
  const ticker = (async () => {
    while (!done) {
      await clock.advance(options.stepMs ?? 1_000);
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  })();
  try {
    for await (const event of provider.doWatch(ref, options.signal ? { signal: options.signal } : {}))
      events.push(event);
    return { events };
  } catch (error) {
    return { events, error };
  } finally {
    done = true;
    await ticker;
  }
}

const submit = (
  provider: ProviderV1,
  extra: { jobId?: string; deadlineAt?: number; workflow?: ReturnType<typeof sampleWorkflow> } = {},
) =>
  provider.doSubmit({
    jobId: extra.jobId ?? `job-${Math.random().toString(36).slice(2)}`,
    workflow: extra.workflow ?? sampleWorkflow(),
    images: [{ name: 'input.png', data: Buffer.from(TINY_PNG).toString('base64') }],
    attempt: 1,
    ...(extra.deadlineAt === undefined ? {} : { deadlineAt: extra.deadlineAt }),
  });

describe('createModal', () => {
  it('validates its options at once, naming the option', () => {
    const modal = createFakeModal();
    const attempt = (options: Record<string, unknown>) => {
      try {
        createModal({ app: 'comfyui', gpu: 'L40S', client: modal, ...options } as never);
        return undefined;
      } catch (error) {
        return error;
      }
    };
    expect((attempt({ app: '' }) as InvalidArgumentError).argument).toBe('app');
    expect((attempt({ gpu: 'GTX480' }) as InvalidArgumentError).argument).toBe('gpu');
    expect((attempt({ gpu: 'H200' }) as InvalidArgumentError).argument).toBe('pricing');
    expect((attempt({ pollTimeoutMs: 5 }) as InvalidArgumentError).argument).toBe('pollTimeoutMs');
    expect((attempt({ client: {} }) as InvalidArgumentError).argument).toBe('client');
    expect(attempt({ gpu: 'H200', pricing: { usdPerSecond: 0.0013 } })).toBeUndefined();
  });

  it('describes itself from Modal GPU names and list prices', () => {
    const { provider } = setup();
    expect(provider.platform).toBe('modal');
    expect(provider.id).toBe('modal:comfyui/ComfyWorker');
    expect(provider.gpu).toEqual({ type: 'H100', vramGb: 80 });
    expect(provider.pricing.usdPerSecond).toBeCloseTo(0.001097);
    const core = createModal({ app: 'a', gpu: 'A100-80GB', client: createFakeModal() });
    expect(core.pricing.usdPerSecond).toBeCloseTo(0.000694);
  });

  it('spawns ComfyWorker.run with the request as bytes and journals the call id with the app and class', async () => {
    const { provider, modal, worker } = setup();
    const ref = await submit(provider, { jobId: 'job-1' });
    expect(ref.remoteId).toMatch(/^fc-/);
    expect(ref.data).toMatchObject({ app: 'comfyui', cls: 'ComfyWorker', method: 'run', jobId: 'job-1' });
    expect(JSON.parse(JSON.stringify(ref))).toEqual(ref);
    const call = modal.getCall(ref.remoteId);
    expect(call?.method).toBe('run');
    const request = call?.args[0] as { jobId: string; images: Array<{ name: string; data: Uint8Array }> };
    expect(request.jobId).toBe('job-1');
    expect(request.images[0]?.data).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(request.images[0]!.data).equals(Buffer.from(TINY_PNG))).toBe(true);
    expect(worker.requests).toHaveLength(0);
  });

  it('does not spawn twice for a repeated submission of the same job and attempt', async () => {
    const { provider, modal } = setup();
    const request = { jobId: 'same', workflow: sampleWorkflow(), images: [], attempt: 1 };
    const [first, second] = await Promise.all([provider.doSubmit(request), provider.doSubmit(request)]);
    expect(second.remoteId).toBe(first.remoteId);
    expect(modal.calls()).toHaveLength(1);
  });

  it('turns a missing app or class into a ConfigurationError naming what to deploy', async () => {
    const { provider, modal } = setup();
    modal.undeploy('comfyui');
    const error = await submit(provider).catch((caught: unknown) => caught);
    expect(ConfigurationError.isInstance(error)).toBe(true);
    expect((error as ConfigurationError).isRetryable).toBe(false);
    expect((error as Error).message).toContain('class "ComfyWorker" of app "comfyui"');
    expect((error as Error).message).toContain('modal deploy deploy/modal/comfyui_app.py');
  });

  it('long-polls in rounds: a round that ends without a result is not an error', async () => {
    const { provider, clock, modal } = setup();
    let rounds = 0;
    const counting: ModalBackend = {
      ...modal,
      poll: (callId, options) => {
        rounds += 1;
        expect(options.timeoutMs).toBe(20_000);
        return modal.poll(callId, options);
      },
    };
    const watcher = createModal({
      app: 'comfyui',
      gpu: 'H100',
      client: counting,
      clock,
      pollTimeoutMs: 20_000,
    });
    const ref = await submit(provider);
    const { events, error } = await watchAll(clock, watcher, ref, { stepMs: 2_000 });
    expect(error).toBeUndefined();
    // 15 s cold start + 6 s execution: the result arrives in the second round.
    expect(rounds).toBe(2);
    expect(events.map((event) => event.type)).toEqual(['queued', 'started', 'output', 'completed']);
  });

  it('returns every output kind with bytes, text, timing and GPU-seconds', async () => {
    const { provider, clock } = setup();
    const workflow = {
      ...sampleWorkflow(),
      '20': { class_type: 'VHS_VideoCombine', inputs: { images: ['8', 0] } },
      '21': { class_type: 'SaveAudio', inputs: {} },
      '22': { class_type: 'PreviewAny', inputs: { source: ['6', 0] } },
      '23': { class_type: 'SaveAnimatedWEBP', inputs: { images: ['8', 0] } },
    };
    const ref = await submit(provider, { workflow });
    const { events } = await watchAll(clock, provider, ref);
    const completed = events.at(-1);
    expect(completed?.type).toBe('completed');
    if (completed?.type !== 'completed') return;
    const byNode = Object.fromEntries((completed.outputs ?? []).map((output) => [output.nodeId, output]));
    expect(byNode['9']).toMatchObject({ kind: 'image', mime: 'image/png' });
    expect(Buffer.from(byNode['9']!.data!).equals(Buffer.from(TINY_PNG))).toBe(true);
    expect(byNode['20']).toMatchObject({ kind: 'video', mime: 'video/mp4' });
    expect(byNode['21']).toMatchObject({ kind: 'audio', mime: 'audio/flac' });
    expect(byNode['22']).toMatchObject({ kind: 'text', text: 'text of node 22' });
    expect(byNode['23']).toMatchObject({ kind: 'image', mime: 'image/webp' });
    expect(events.filter((event) => event.type === 'output')).toHaveLength(5);
    // The first job waited for a cold container: 15 s of start, then 6 s of work.
    expect(completed.timing).toEqual({ queuedMs: 15_000, coldStartMs: 15_000, executionMs: 6_000 });
    expect(completed.gpuSeconds).toBe(21);
    const started = events.find((event) => event.type === 'started');
    expect(started).toMatchObject({
      type: 'started',
      coldStartMs: 15_000,
      workerId: expect.stringMatching(/^ta-/),
    });
  });

  it("reports ComfyUI's node error from an execution failure, retryable when it ran out of memory", async () => {
    const { provider, clock, worker } = setup();
    worker.next({ type: 'execution-error' });
    const { events } = await watchAll(clock, provider, await submit(provider));
    const failed = events.at(-1);
    expect(failed?.type).toBe('failed');
    if (failed?.type !== 'failed') return;
    expect(ComfyExecutionError.isInstance(failed.error)).toBe(true);
    const error = failed.error as ComfyExecutionError;
    expect(error.nodeId).toBe('3');
    expect(error.nodeType).toBe('KSampler');
    expect(error.exceptionType).toBe('torch.OutOfMemoryError');
    expect(error.isRetryable).toBe(true);
    expect(failed.executionStarted).toBe(true);
  });

  it('reports a missing model as a validation error with the node, input and choices, before execution', async () => {
    const { provider, clock } = setup({ models: { checkpoints: ['flux1-dev.safetensors'] } });
    const { events } = await watchAll(clock, provider, await submit(provider));
    expect(events.map((event) => event.type)).toEqual(['queued', 'failed']);
    const failed = events.at(-1);
    if (failed?.type !== 'failed') throw new Error('expected a failure');
    expect(failed.executionStarted).toBe(false);
    const error = failed.error as ComfyValidationError;
    expect(ComfyValidationError.isInstance(error)).toBe(true);
    expect(error.type).toBe('prompt_outputs_failed_validation');
    expect(error.nodeErrors[0]).toMatchObject({
      nodeId: '4',
      type: 'value_not_in_list',
      input: 'ckpt_name',
      classType: 'CheckpointLoaderSimple',
    });
    expect(error.message).toContain('sd_xl_base_1.0.safetensors');
  });

  it("tells Modal's own timeout apart from the caller's deadline", async () => {
    const modalTimeout = setup({ timeoutMs: 60_000 });
    modalTimeout.worker.next({ type: 'hang' });
    const first = await watchAll(
      modalTimeout.clock,
      modalTimeout.provider,
      await submit(modalTimeout.provider),
      { stepMs: 5_000 },
    );
    const modalFailure = first.events.at(-1);
    if (modalFailure?.type !== 'failed') throw new Error('expected a failure');
    expect(JobTimeoutError.isInstance(modalFailure.error)).toBe(true);
    expect(modalFailure.error.message).toContain("Modal's own limit");
    expect(modalFailure.error.message).toContain('timeout=');

    const deadline = setup();
    deadline.worker.next({ type: 'hang' });
    const ref = await submit(deadline.provider, { deadlineAt: deadline.clock.now() + 45_000 });
    const second = await watchAll(deadline.clock, deadline.provider, ref, { stepMs: 5_000 });
    const ourFailure = second.events.at(-1);
    if (ourFailure?.type !== 'failed') throw new Error('expected a failure');
    expect(JobTimeoutError.isInstance(ourFailure.error)).toBe(true);
    expect(ourFailure.error.message).toContain('passed its deadline');
    // The call is cancelled so that it stops costing money.
    expect(deadline.modal.getCall(ref.remoteId)?.status).toBe('cancelled');
    expect(deadline.clock.now() - (ref.data?.submittedAt as number)).toBeLessThan(60_000);
  });

  it('reports an exception raised in the class as a failed job, and an internal failure as retryable', async () => {
    const { provider, clock, worker, modal } = setup();
    worker.next({ type: 'raise', message: 'KeyError: prompt_id' });
    const raised = await watchAll(clock, provider, await submit(provider));
    const failed = raised.events.at(-1);
    if (failed?.type !== 'failed') throw new Error('expected a failure');
    expect(JobFailedError.isInstance(failed.error)).toBe(true);
    expect(failed.error.message).toContain('KeyError: prompt_id');
    expect((failed.error as JobFailedError).isRetryable).toBe(false);

    const ref = await submit(provider);
    modal.failNext('poll', modalError('InternalFailure', 'Internal failure: worker lost'));
    const internal = await watchAll(clock, provider, ref);
    const last = internal.events.at(-1);
    if (last?.type !== 'failed') throw new Error('expected a failure');
    expect((last.error as JobFailedError).isRetryable).toBe(true);
  });

  it('throws a retryable error from the watch when Modal cannot be reached, so that the dispatcher watches again', async () => {
    const { provider, clock, modal } = setup();
    const ref = await submit(provider);
    modal.failNext('poll', grpcError(14, 'connection reset'));
    const { events, error } = await watchAll(clock, provider, ref);
    expect(ApiCallError.isInstance(error)).toBe(true);
    expect((error as ApiCallError).isRetryable).toBe(true);
    expect(events.some((event) => event.type === 'failed')).toBe(false);
    const again = await watchAll(clock, provider, ref);
    expect(again.events.at(-1)?.type).toBe('completed');
  });

  it('cancels from another process with only the journalled reference', async () => {
    const { provider, clock, modal, worker } = setup();
    worker.next({ type: 'hang' });
    const ref = JSON.parse(JSON.stringify(await submit(provider))) as RemoteJobRef;
    const watching = watchAll(clock, provider, ref);
    await clock.advance(30_000);
    const otherProcess = createModal({ app: 'comfyui', gpu: 'H100', client: modal, clock });
    await otherProcess.doCancel(ref);
    const { events, error } = await watching;
    expect(error).toBeUndefined();
    expect(events.at(-1)?.type).toBe('cancelled');
    expect(modal.getCall(ref.remoteId)?.status).toBe('cancelled');
    await expect(otherProcess.doCancel(ref)).resolves.toBeUndefined();
    await expect(otherProcess.doCancel({ remoteId: 'fc-unknown' })).resolves.toBeUndefined();
  });

  it('watches a job to completion from a new provider instance (after a host restart)', async () => {
    const { provider, clock, modal } = setup();
    const ref = JSON.parse(JSON.stringify(await submit(provider))) as RemoteJobRef;
    const restarted = createModal({ app: 'comfyui', gpu: 'H100', client: modal, clock });
    const { events } = await watchAll(clock, restarted, ref);
    expect(events.at(-1)?.type).toBe('completed');
  });

  it('reports the backlog and containers from getCurrentStats', async () => {
    const { provider, clock } = setup({ maxContainers: 1 });
    for (let index = 0; index < 3; index++) await submit(provider);
    await clock.advance(16_000);
    const health = await provider.doHealth();
    expect(health).toMatchObject({ status: 'healthy', queued: 2, busyWorkers: 1, idleWorkers: 0 });
    expect(health.checkedAt).toBe(clock.now());
  });

  it('reports an undeployed class as unhealthy rather than throwing', async () => {
    const { provider, modal } = setup();
    modal.undeploy('comfyui');
    const health = await provider.doHealth();
    expect(health.status).toBe('unhealthy');
    expect(health.message).toContain('modal deploy');
  });

  it('never lets the token secret into errors, health or events', async () => {
    const secret = 'as-TOPSECRETtoken123';
    const clock = createVirtualClock();
    const modal = createFakeModal({ clock });
    modal.deploy('comfyui', 'ComfyWorker', { methods: createFakeComfyWorker().methods });
    const provider = createModal({
      app: 'comfyui',
      gpu: 'L4',
      client: modal,
      clock,
      tokenId: 'ak-1',
      tokenSecret: secret,
    });
    modal.failNext('spawn', grpcError(16, `invalid token secret ${secret}`));
    const error = await submit(provider).catch((caught: unknown) => caught);
    expect(LoadApiKeyError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('MODAL_TOKEN_ID');
    expect((error as Error).message).not.toContain(secret);
    expect(JSON.stringify(error)).not.toContain(secret);
    expect((error as Error).cause).toBeUndefined();
    modal.failNext('currentStats', grpcError(14, `unavailable for ${secret}`));
    const health = await provider.doHealth();
    expect(health.message).not.toContain(secret);
    const ref = await submit(provider);
    modal.failNext('poll', modalError('RemoteError', `Remote error: boom ${secret}`));
    const { events } = await watchAll(clock, provider, ref);
    expect(
      JSON.stringify(events.map((event) => (event.type === 'failed' ? event.error : event))),
    ).not.toContain(secret);
    expect(events.at(-1)?.type).toBe('failed');
  });

  it('stops watching at once when the signal aborts, without cancelling the call', async () => {
    const { provider, clock, modal, worker } = setup();
    worker.next({ type: 'hang' });
    const ref = await submit(provider);
    const controller = new AbortController();
    const watching = watchAll(clock, provider, ref, { signal: controller.signal, stepMs: 10 });
    await new Promise((resolve) => setTimeout(resolve, 5));
    controller.abort(new Error('caller gave up'));
    const { error } = await watching;
    expect((error as Error).message).toBe('caller gave up');
    expect(modal.getCall(ref.remoteId)?.status).not.toBe('cancelled');
  });

  it('preflights against the container object_info and model lists when enabled', async () => {
    const { provider, clock } = setup({
      preflight: true,
      models: { checkpoints: ['sd_xl_base_1.0.safetensors'] },
    });
    expect(provider.doPreflight).toBeDefined();
    const checking = provider.doPreflight!({
      models: [
        { folder: 'checkpoints', name: 'sd_xl_base_1.0.safetensors' },
        { folder: 'loras', name: 'detail.safetensors' },
      ],
      nodeTypes: ['KSampler', 'IPAdapterApply'],
    });
    await clock.advance(20_000);
    expect(await checking).toEqual({
      ok: false,
      missingModels: ['loras/detail.safetensors'],
      missingNodeTypes: ['IPAdapterApply'],
    });
    expect(setup().provider.doPreflight).toBeUndefined();
  });
});
