import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpResponse, http } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../spec/clock';
import { InvalidArgumentError } from '../spec/errors';
import type { ModelRef } from '../spec/job';
import type { ModelLoadProgress } from '../spec/model-loader-v1';
import { createDiskModelCache } from './disk-cache';
import { createHttpModelSource } from './http-source';
import { createModelLoader } from './loader';
import type { ModelSource } from './model-source';
import { downloadInParts } from './part-download';
import { planModelLoad } from './plan';

const MIB = 1024 * 1024;

/** A source serving objects from memory through the real part downloader. */
function memorySource(objects: Record<string, Buffer>, options: { failOn?: string } = {}) {
  const stats: string[] = [];
  const source: ModelSource = {
    id: 'memory://',
    async stat(model) {
      const key = `${model.folder}/${model.name}`;
      stats.push(key);
      const data = objects[key];
      if (data === undefined) throw new Error(`no ${key}`);
      return { sizeBytes: data.length, etag: '"m"' };
    },
    async download(model, downloadOptions) {
      const key = `${model.folder}/${model.name}`;
      if (key === options.failOn) throw new Error(`broken ${key}`);
      const data = objects[key]!;
      return downloadInParts({
        filePath: downloadOptions.filePath,
        object: { sizeBytes: data.length, etag: '"m"' },
        partSizeBytes: MIB,
        readRange: async (range) =>
          (async function* () {
            yield data.subarray(range.start, range.end + 1);
          })(),
        ...(downloadOptions.signal === undefined ? {} : { signal: downloadOptions.signal }),
        ...(downloadOptions.onProgress === undefined ? {} : { onProgress: downloadOptions.onProgress }),
      });
    },
  };
  return { source, stats };
}

/** A clock that moves 1 s forward each time it is read. */
function steppingClock(): Clock {
  let now = 0;
  return {
    now: () => (now += 1000),
    setTimeout: (callback) => setImmediate(callback),
    clearTimeout: () => {},
  };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loader-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const checkpoint: ModelRef = { folder: 'checkpoints', name: 'base.safetensors' };
const lora: ModelRef = { folder: 'loras', name: 'style.safetensors' };
const vae: ModelRef = { folder: 'vae', name: 'ae.safetensors', sizeBytes: 2_000_000 };

describe('planModelLoad', () => {
  it('gives each model an action, a time from the throughput and a number of streams', () => {
    const plan = planModelLoad(
      [checkpoint, lora, vae, { ...checkpoint }],
      { 'checkpoints/base.safetensors': 'present', 'loras/style.safetensors': 'warm' },
      {
        sizes: { 'loras/style.safetensors': 500_000_000, 'checkpoints/base.safetensors': 7e9 },
        networkBytesPerSecond: 100e6,
        warmBytesPerSecond: 1e9,
        streams: 10,
        partSizeBytes: 8 * MIB,
      },
    );
    expect(plan.items).toEqual([
      { model: { ...checkpoint, sizeBytes: 7e9 }, action: 'cache_hit', estimatedMs: 0, streams: 0 },
      { model: { ...lora, sizeBytes: 500_000_000 }, action: 'warm_cache', estimatedMs: 500, streams: 10 },
      { model: vae, action: 'network_download', estimatedMs: 20, streams: 1 },
    ]);
    expect(plan.estimatedMs).toBe(520);
  });
});

describe('createModelLoader', () => {
  it('validates its options at once', () => {
    const cache = createDiskModelCache({ dir, maxBytes: 100 });
    expect(() => createModelLoader({ source: {} as ModelSource, cache })).toThrow(InvalidArgumentError);
    expect(() => createModelLoader({ source: memorySource({}).source, cache, concurrency: 0 })).toThrow(
      /concurrency/,
    );
  });

  it('plans from the cache and the source, then loads what is missing and reports it', async () => {
    const objects = {
      'checkpoints/base.safetensors': Buffer.alloc(5 * MIB + 3, 1),
      'loras/style.safetensors': Buffer.alloc(MIB, 2),
    };
    const { source, stats } = memorySource(objects);
    const cache = createDiskModelCache({ dir, maxBytes: 100 * MIB });
    const loader = createModelLoader({
      source,
      cache,
      clock: steppingClock(),
      networkBytesPerSecond: 1e6,
      partSizeBytes: MIB,
    });
    const plan = await loader.plan([checkpoint, lora]);
    expect(plan.items.map((item) => [item.action, item.streams])).toEqual([
      ['network_download', 6],
      ['network_download', 1],
    ]);
    expect(plan.items[0]!.estimatedMs).toBe(Math.ceil(((5 * MIB + 3) / 1e6) * 1000));
    expect(stats.sort()).toEqual(['checkpoints/base.safetensors', 'loras/style.safetensors']);

    const progress: ModelLoadProgress[] = [];
    const result = await loader.load(plan, { onProgress: (event) => progress.push(event) });
    expect(result).toMatchObject({ cacheHits: 0, bytesDownloaded: 6 * MIB + 3, totalMs: 1000 });
    expect(result.loaded).toHaveLength(2);
    expect(
      (await readFile(join(dir, 'checkpoints', 'base.safetensors'))).equals(
        objects['checkpoints/base.safetensors'],
      ),
    ).toBe(true);
    expect(
      progress.some((event) => event.model.name === 'base.safetensors' && event.bytesDone === 5 * MIB + 3),
    ).toBe(true);
    // The measured throughput (6 MiB in 1 s on the stepping clock) replaces the assumed 1 MB/s.
    expect(loader.bandwidth().networkBytesPerSecond).toBe(6 * MIB + 3);

    const second = await loader.plan([checkpoint, lora]);
    expect(second.items.map((item) => item.action)).toEqual(['cache_hit', 'cache_hit']);
    expect(second.estimatedMs).toBe(0);
    const again = await loader.load(second);
    expect(again).toMatchObject({ cacheHits: 2, bytesDownloaded: 0 });
    // Cache hits never ask the source anything.
    expect(stats).toHaveLength(2);
  });

  it('loads models a status marks warm from the warm source', async () => {
    const network = memorySource({}, { failOn: 'loras/style.safetensors' });
    const warm = memorySource({ 'loras/style.safetensors': Buffer.alloc(4096, 3) });
    const loader = createModelLoader({
      source: network.source,
      warmSource: warm.source,
      cache: createDiskModelCache({ dir, maxBytes: 1e6 }),
      warmBytesPerSecond: 4096_000,
    });
    const plan = await loader.plan([lora], { 'loras/style.safetensors': 'warm' });
    expect(plan.items[0]).toMatchObject({ action: 'warm_cache', estimatedMs: 1 });
    expect(warm.stats).toEqual(['loras/style.safetensors']);
    const result = await loader.load(plan);
    expect(result.bytesDownloaded).toBe(4096);
    expect(network.stats).toEqual([]);
  });

  it('stops the other models and rejects when one fails', async () => {
    const { source } = memorySource(
      { 'checkpoints/base.safetensors': Buffer.alloc(10), 'loras/style.safetensors': Buffer.alloc(10) },
      { failOn: 'loras/style.safetensors' },
    );
    const loader = createModelLoader({
      source,
      cache: createDiskModelCache({ dir, maxBytes: 1000 }),
      concurrency: 1,
    });
    const plan = await loader.plan([lora, checkpoint]);
    await expect(loader.load(plan)).rejects.toThrow('broken loras/style.safetensors');
  });

  it('rejects with the reason when the caller aborts', async () => {
    const { source } = memorySource({ 'checkpoints/base.safetensors': Buffer.alloc(10) });
    const loader = createModelLoader({ source, cache: createDiskModelCache({ dir, maxBytes: 1000 }) });
    const plan = await loader.plan([checkpoint]);
    const controller = new AbortController();
    controller.abort(new Error('no longer needed'));
    await expect(loader.load(plan, { signal: controller.signal })).rejects.toThrow('no longer needed');
  });
});

describe('createHttpModelSource', () => {
  const data = Buffer.alloc(300_000, 9);
  const seen: Array<{ range: string | null; ifMatch: string | null; auth: string | null }> = [];
  const server = setupServer(
    http.head(
      'http://models.test/comfy/loras/style.safetensors',
      () => new HttpResponse(null, { headers: { 'content-length': String(data.length), etag: '"h1"' } }),
    ),
    http.get('http://models.test/comfy/loras/style.safetensors', ({ request }) => {
      const range = request.headers.get('range');
      seen.push({
        range,
        ifMatch: request.headers.get('if-match'),
        auth: request.headers.get('authorization'),
      });
      const [start, end] = (/bytes=(\d+)-(\d+)/.exec(range ?? '') ?? []).slice(1).map(Number);
      return new HttpResponse(data.subarray(start!, end! + 1), {
        status: 206,
        headers: { 'content-range': `bytes ${start}-${end}/${data.length}` },
      });
    }),
    http.head(
      'http://models.test/comfy/loras/private.safetensors',
      () => new HttpResponse(null, { status: 401 }),
    ),
  );
  beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
  afterAll(() => server.close());

  it('downloads in ranged parts pinned by If-Match, sending the caller headers', async () => {
    const source = createHttpModelSource({
      baseURL: 'http://models.test/comfy',
      headers: { authorization: 'Bearer secret-token-123' },
      partSizeBytes: 100_000,
    });
    const filePath = join(dir, 'style.part');
    const result = await source.download(lora, { filePath });
    expect(result.sizeBytes).toBe(data.length);
    expect((await readFile(filePath)).equals(data)).toBe(true);
    expect(seen.map((entry) => entry.range).sort()).toEqual([
      'bytes=0-99999',
      'bytes=100000-199999',
      'bytes=200000-299999',
    ]);
    expect(seen.every((entry) => entry.ifMatch === '"h1"' && entry.auth === 'Bearer secret-token-123')).toBe(
      true,
    );
  });

  it('reports a refused HEAD as a non-retryable ApiCallError', async () => {
    const source = createHttpModelSource({ baseURL: 'http://models.test/comfy' });
    await expect(source.stat({ folder: 'loras', name: 'private.safetensors' })).rejects.toMatchObject({
      name: 'ApiCallError',
      statusCode: 401,
      isRetryable: false,
    });
  });
});
