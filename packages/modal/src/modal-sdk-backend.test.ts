import { ConfigurationError, LoadApiKeyError } from '@comfy-serverless/core';
import { ModalClient } from 'modal';
import { describe, expect, it } from 'vitest';
import { createModal } from './modal-provider';
import type { ModalClientLike } from './modal-sdk-backend';
import { createModalSdkBackend, loadModalSdk } from './modal-sdk-backend';
import { sampleWorkflow, TINY_PNG } from './test';

/** A minimal CBOR encoder (maps, arrays, text, bytes, integers, null, booleans) for the fake gRPC answers. */
function cbor(value: unknown): Uint8Array {
  const parts: number[] = [];
  const head = (major: number, length: number) => {
    if (length < 24) parts.push((major << 5) | length);
    else if (length < 256) parts.push((major << 5) | 24, length);
    else if (length < 65_536) parts.push((major << 5) | 25, length >> 8, length & 255);
    else
      parts.push(
        (major << 5) | 26,
        (length >>> 24) & 255,
        (length >> 16) & 255,
        (length >> 8) & 255,
        length & 255,
      );
  };
  const write = (item: unknown) => {
    if (item === null || item === undefined) parts.push(0xf6);
    else if (item === true) parts.push(0xf5);
    else if (item === false) parts.push(0xf4);
    else if (typeof item === 'number' && Number.isInteger(item) && item >= 0) head(0, item);
    else if (typeof item === 'string') {
      const bytes = Buffer.from(item, 'utf8');
      head(3, bytes.length);
      parts.push(...bytes);
    } else if (item instanceof Uint8Array) {
      head(2, item.length);
      parts.push(...item);
    } else if (Array.isArray(item)) {
      head(4, item.length);
      item.forEach(write);
    } else if (typeof item === 'object') {
      const entries = Object.entries(item as Record<string, unknown>);
      head(5, entries.length);
      for (const [key, entry] of entries) {
        write(key);
        write(entry);
      }
    } else throw new Error(`cannot encode ${typeof item}`);
  };
  write(value);
  return new Uint8Array(parts);
}

/** A fake of Modal's gRPC control plane, enough for the calls the adapter makes through the real SDK. */
function fakeControlPlane(options: { notFound?: boolean } = {}) {
  const received: Array<{ method: string; request: Record<string, unknown> }> = [];
  const outputs = new Map<string, unknown>();
  const cancelled: string[] = [];
  const autoscaler: Record<string, number> = {
    minContainers: 0,
    maxContainers: 10,
    bufferContainers: 0,
    scaledownWindow: 60,
  };
  const record = (method: string, request: Record<string, unknown>) => received.push({ method, request });
  const cpClient = {
    async functionGet(request: Record<string, unknown>) {
      record('functionGet', request);
      if (options.notFound)
        throw Object.assign(new Error('/modal.client.ModalClient/FunctionGet NOT_FOUND: App not found'), {
          name: 'ClientError',
          code: 5,
        });
      const method = { supportedInputFormats: [4], functionName: 'ComfyWorker.run' };
      return {
        functionId: 'fu-comfyworker',
        handleMetadata: {
          methodHandleMetadata: { run: method, object_info: method },
          classParameterInfo: { schema: [] },
        },
      };
    },
    async functionMap(request: Record<string, unknown>) {
      record('functionMap', request);
      return {
        functionCallId: 'fc-sdk-1',
        functionCallJwt: 'jwt',
        pipelinedInputs: [{ inputJwt: 'input-jwt' }],
      };
    },
    async functionCallFromId(request: { functionCallId: string }) {
      record('functionCallFromId', request);
      if (!request.functionCallId.startsWith('fc-sdk')) {
        throw Object.assign(new Error('/modal.client.ModalClient/FunctionCallFromId NOT_FOUND: not found'), {
          name: 'ClientError',
          code: 5,
        });
      }
      return { metadata: { appId: 'ap-1', functionId: 'fu-comfyworker' } };
    },
    async functionGetOutputs(request: { functionCallId: string; timeout: number }) {
      record('functionGetOutputs', request);
      const value = outputs.get(request.functionCallId);
      if (value === undefined) {
        // Modal holds the request open up to `timeout` seconds; a short real wait keeps the SDK's loop from spinning.
        await new Promise((resolve) => setTimeout(resolve, Math.min(request.timeout * 1000, 20)));
        return { outputs: [] };
      }
      return { outputs: [{ result: { status: 1, data: cbor(value) }, dataFormat: 4 }] };
    },
    async functionCallCancel(request: { functionCallId: string }) {
      record('functionCallCancel', request);
      cancelled.push(request.functionCallId);
      return {};
    },
    async functionGetCurrentStats(request: Record<string, unknown>) {
      record('functionGetCurrentStats', request);
      return { backlog: 3, numTotalTasks: 2 };
    },
    async functionUpdateSchedulingParams(request: { settings: Record<string, number | undefined> }) {
      record('functionUpdateSchedulingParams', request);
      for (const [key, value] of Object.entries(request.settings))
        if (value !== undefined) autoscaler[key] = value;
      return { currentSettings: { ...autoscaler } };
    },
  };
  return { cpClient, received, outputs, cancelled };
}

function realClient(cpClient: unknown): ModalClientLike {
  return new ModalClient({
    tokenId: 'ak-test',
    tokenSecret: 'as-test',
    cpClient,
  } as never) as unknown as ModalClientLike;
}

describe('createModalSdkBackend over the real modal SDK', () => {
  it('spawns ComfyWorker.run, long-polls, decodes the CBOR result, cancels, reads stats and updates the autoscaler', async () => {
    const plane = fakeControlPlane();
    const provider = createModal({
      app: 'comfyui',
      environment: 'prod',
      gpu: 'L40S',
      modalClient: realClient(plane.cpClient),
      pollTimeoutMs: 100,
    });
    const ref = await provider.doSubmit({
      jobId: 'job-sdk',
      workflow: sampleWorkflow(),
      images: [{ name: 'in.png', data: TINY_PNG }],
      attempt: 1,
    });
    expect(ref.remoteId).toBe('fc-sdk-1');
    const lookup = plane.received.find((entry) => entry.method === 'functionGet');
    expect(lookup?.request).toMatchObject({
      appName: 'comfyui',
      objectTag: 'ComfyWorker.*',
      environmentName: 'prod',
    });
    const map = plane.received.find((entry) => entry.method === 'functionMap')?.request as {
      functionId: string;
      pipelinedInputs: Array<{ input: { args: Uint8Array; methodName: string; dataFormat: number } }>;
    };
    expect(map.functionId).toBe('fu-comfyworker');
    expect(map.pipelinedInputs[0]?.input.methodName).toBe('run');
    expect(map.pipelinedInputs[0]?.input.dataFormat).toBe(4);
    expect(Buffer.from(map.pipelinedInputs[0]!.input.args).includes('job-sdk')).toBe(true);

    const iterator = provider.doWatch(ref)[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toEqual({ type: 'queued' });
    // No output yet: the SDK's TimeoutError is a poll round ending, and the watch keeps going.
    const next = iterator.next();
    next.catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 150));
    plane.outputs.set('fc-sdk-1', {
      outputs: [
        { nodeId: '9', kind: 'image', filename: 'ComfyUI_00001_.png', mime: 'image/png', data: TINY_PNG },
      ],
      timing: { executionMs: 4200 },
    });
    const events = [(await next).value];
    for (;;) {
      const step = await iterator.next();
      if (step.done) break;
      events.push(step.value);
    }
    expect(events.map((event) => event?.type)).toEqual(['started', 'output', 'completed']);
    const completed = events.at(-1);
    if (completed?.type !== 'completed') throw new Error('expected completion');
    expect(Buffer.from(completed.outputs![0]!.data!).equals(Buffer.from(TINY_PNG))).toBe(true);
    expect(plane.received.filter((entry) => entry.method === 'functionGetOutputs').length).toBeGreaterThan(1);

    await provider.doCancel(ref);
    expect(plane.cancelled).toEqual(['fc-sdk-1']);
    // The call handle is looked up once and reused by every poll round and the cancel.
    expect(plane.received.filter((entry) => entry.method === 'functionCallFromId')).toHaveLength(1);
    const expired = await provider.doWatch({ remoteId: 'fc-gone' })[Symbol.asyncIterator]().next();
    const last = await provider.doWatch({ remoteId: 'fc-gone' })[Symbol.asyncIterator]();
    await last.next();
    const failed = (await last.next()).value;
    expect(expired.value).toEqual({ type: 'queued' });
    expect(failed).toMatchObject({ type: 'failed', error: { name: 'JobExpiredError' } });
    expect(await provider.doHealth()).toMatchObject({ status: 'healthy', queued: 3, busyWorkers: 2 });

    const backend = createModalSdkBackend({ modalClient: realClient(plane.cpClient) });
    const settings = await backend.updateAutoscaler(
      { app: 'comfyui', cls: 'ComfyWorker', method: 'run' },
      { minContainers: 1, scaledownWindowMs: 120_000 },
    );
    expect(settings).toMatchObject({ minContainers: 1, maxContainers: 10, scaledownWindowMs: 120_000 });
    const update = plane.received.find((entry) => entry.method === 'functionUpdateSchedulingParams')
      ?.request as {
      functionId: string;
      settings: Record<string, unknown>;
    };
    expect(update.functionId).toBe('fu-comfyworker');
    expect(update.settings).toMatchObject({ minContainers: 1, scaledownWindow: 120 });
  });

  it("maps the SDK's not-found for a class into a ConfigurationError", async () => {
    const plane = fakeControlPlane({ notFound: true });
    const provider = createModal({
      app: 'missing-app',
      gpu: 'L40S',
      modalClient: realClient(plane.cpClient),
    });
    const error = await provider
      .doSubmit({ jobId: 'x', workflow: sampleWorkflow(), images: [], attempt: 1 })
      .catch((caught: unknown) => caught);
    expect(ConfigurationError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('app "missing-app"');
    expect((error as Error).message).toContain('modal deploy');
  });
});

describe('loading the modal package', () => {
  it('says to install modal@^0.11 when the package is missing', async () => {
    const missing = Object.assign(new Error("Cannot find package 'modal' imported from /app/index.js"), {
      code: 'ERR_MODULE_NOT_FOUND',
    });
    const error = await loadModalSdk(() => Promise.reject(missing)).catch((caught: unknown) => caught);
    expect(ConfigurationError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('modal@^0.11');
  });

  it('refuses a package of the same name that is not Modal SDK', async () => {
    const error = await loadModalSdk(() => Promise.resolve({ default: { open() {} } })).catch(
      (caught: unknown) => caught,
    );
    expect(ConfigurationError.isInstance(error)).toBe(true);
  });

  it('loads the installed SDK', async () => {
    const sdk = await loadModalSdk();
    expect(typeof sdk.ModalClient).toBe('function');
  });

  it('reads tokens only when the first call is made, and refuses half a pair', async () => {
    const reads: string[] = [];
    const env = new Proxy({ MODAL_TOKEN_ID: 'ak-only-half' } as Record<string, string | undefined>, {
      get(target, property: string) {
        reads.push(property);
        return target[property];
      },
    });
    let imported = 0;
    const backend = createModalSdkBackend({
      env,
      importModal: async () => {
        imported += 1;
        return import('modal');
      },
    });
    expect(reads).toEqual([]);
    expect(imported).toBe(0);
    const error = await backend
      .currentStats({ app: 'a', cls: 'ComfyWorker', method: 'run' })
      .catch((caught: unknown) => caught);
    expect(LoadApiKeyError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('MODAL_TOKEN_SECRET');
    expect(reads).toContain('MODAL_TOKEN_ID');
  });
});
