import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  ApiCallError,
  type Clock,
  createDiskModelCache,
  createModelLoader,
  InvalidResponseError,
  partStatePath,
} from '@comfy-serverless/core';
import { http } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createS3ModelSource } from './s3-model-source';
import { createS3Mock, type S3Mock, startS3MockServer } from './test';
import { type RunningS3rver, startS3rver } from './testing/s3rver-server';

const KIB = 1024;
const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
/** Backoff waits end on the next turn: retries are tested without real waiting. */
const immediateClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback) => setImmediate(callback),
  clearTimeout: (handle) => clearImmediate(handle as ReturnType<typeof setImmediate>),
};

function bytes(size: number, seed = 3): Buffer {
  const buffer = Buffer.alloc(size);
  for (let index = 0; index < size; index++) buffer[index] = (index * 131 + seed * 7 + (index >> 9)) & 0xff;
  return buffer;
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 's3-source-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('createS3ModelSource against s3rver (a real S3 server on loopback)', () => {
  let server: RunningS3rver;
  let client: S3Client;
  const data = bytes(1300 * KIB + 17);

  beforeAll(async () => {
    server = await startS3rver(['models']);
    client = new S3Client({
      region: 'us-east-1',
      endpoint: server.endpoint,
      forcePathStyle: true,
      credentials,
    });
    await client.send(
      new PutObjectCommand({ Bucket: 'models', Key: 'comfy/checkpoints/base.safetensors', Body: data }),
    );
  });
  afterAll(async () => {
    client?.destroy();
    await server?.stop();
  });

  it('reads size and ETag, then fetches the object in parallel ranged parts', async () => {
    const source = createS3ModelSource({
      bucket: 'models',
      prefix: 'comfy',
      endpoint: server.endpoint,
      credentials,
      partSizeBytes: 128 * KIB,
      concurrency: 4,
    });
    const model = { folder: 'checkpoints', name: 'base.safetensors' };
    const info = await source.stat(model);
    expect(info.sizeBytes).toBe(data.length);
    expect(info.etag).toMatch(/^".+"$/);
    const filePath = join(dir, 'base.part');
    const result = await source.download(model, { filePath, info });
    expect(result).toMatchObject({ sizeBytes: data.length, bytesDownloaded: data.length, resumedBytes: 0 });
    expect((await readFile(filePath)).equals(data)).toBe(true);
    expect(source.id).toBe('s3://models/comfy/');
  });

  it('fetches the same object through the SDK transport', async () => {
    const source = createS3ModelSource({
      bucket: 'models',
      prefix: 'comfy',
      endpoint: server.endpoint,
      credentials,
      partSizeBytes: 256 * KIB,
      rangeTransport: 'sdk',
    });
    const filePath = join(dir, 'sdk.part');
    await source.download({ folder: 'checkpoints', name: 'base.safetensors' }, { filePath });
    expect((await readFile(filePath)).equals(data)).toBe(true);
  });

  it('sends the parts through a given client (its handler may carry a proxy, an agent or a CA)', async () => {
    const own = new S3Client({
      region: 'us-east-1',
      endpoint: server.endpoint,
      credentials,
      forcePathStyle: true,
      maxAttempts: 1,
    });
    const handler = own.config.requestHandler as unknown as {
      handle: (...args: unknown[]) => Promise<unknown>;
    };
    const handle = handler.handle.bind(handler);
    let handled = 0;
    handler.handle = (...args) => {
      handled++;
      return handle(...args);
    };
    try {
      const source = createS3ModelSource({
        bucket: 'models',
        prefix: 'comfy',
        client: own,
        partSizeBytes: 256 * KIB,
      });
      const filePath = join(dir, 'own-client.part');
      await source.download(
        { folder: 'checkpoints', name: 'base.safetensors' },
        { filePath, info: await source.stat({ folder: 'checkpoints', name: 'base.safetensors' }) },
      );
      expect((await readFile(filePath)).equals(data)).toBe(true);
      // The HeadObject and every ranged GetObject.
      expect(handled).toBe(1 + Math.ceil(data.length / (256 * KIB)));
    } finally {
      own.destroy();
    }
  });

  it('says what to check when the object does not exist', async () => {
    const source = createS3ModelSource({
      bucket: 'models',
      endpoint: server.endpoint,
      credentials,
      retries: 0,
    });
    const error = await source
      .stat({ folder: 'loras', name: 'missing.safetensors' })
      .catch((caught) => caught);
    expect(ApiCallError.isInstance(error)).toBe(true);
    expect((error as ApiCallError).statusCode).toBe(404);
    expect((error as ApiCallError).isRetryable).toBe(false);
    expect((error as Error).message).toContain('s3://models/loras/missing.safetensors');
    expect((error as Error).message).toContain('Check the bucket, the prefix');
  });
});

// The socket transport (the default) meets the mock over a loopback server; the fetch
// transport meets it through msw.
describe.each(['socket', 'fetch'] as const)(
  'createS3ModelSource against an S3 mock (what s3rver gets wrong), %s transport',
  (transport) => {
    const mock: { current: S3Mock } = { current: createS3Mock() };
    const msw = setupServer(http.all('http://s3.test/*', ({ request }) => mock.current.handle(request)));
    let closeServer: () => Promise<void> = async () => {};
    const sourceOptions = {
      bucket: 'models',
      endpoint: 'http://s3.test',
      credentials,
      partSizeBytes: 64 * KIB,
      concurrency: 3,
      clock: immediateClock,
      rangeTransport: transport,
    };
    beforeAll(async () => {
      if (transport === 'fetch') {
        msw.listen({ onUnhandledRequest: 'error' });
        closeServer = async () => msw.close();
        return;
      }
      const server = await startS3MockServer({
        handle: (request) => mock.current.handle(request),
        putObject: (...args) => mock.current.putObject(...args),
        getObject: (...args) => mock.current.getObject(...args),
        inject: (fault) => mock.current.inject(fault),
        get requests() {
          return mock.current.requests;
        },
      });
      sourceOptions.endpoint = server.endpoint;
      closeServer = server.close;
    });
    afterAll(() => closeServer());
    beforeEach(() => {
      mock.current = createS3Mock();
    });

    const model = { folder: 'loras', name: 'style.safetensors' };
    const key = 'loras/style.safetensors';
    const gets = () => mock.current.requests.filter((request) => request.method === 'GET');

    it('pins every part to the ETag with If-Match and asks for exact ranges', async () => {
      const data = bytes(200 * KIB);
      const etag = mock.current.putObject('models', key, data);
      const filePath = join(dir, 'style.part');
      await createS3ModelSource(sourceOptions).download(model, { filePath });
      expect((await readFile(filePath)).equals(data)).toBe(true);
      expect(gets().map((request) => request.range)).toEqual(
        expect.arrayContaining([
          'bytes=0-65535',
          'bytes=65536-131071',
          'bytes=131072-196607',
          `bytes=196608-${200 * KIB - 1}`,
        ]),
      );
      expect(gets().every((request) => request.ifMatch === etag && request.status === 206)).toBe(true);
    });

    it('retries a part that got 503 SlowDown while the other parts went on', async () => {
      const data = bytes(256 * KIB);
      mock.current.putObject('models', key, data);
      mock.current.inject({ kind: 'status', status: 503, code: 'SlowDown', rangeStart: 128 * KIB, times: 2 });
      const filePath = join(dir, 'style.part');
      await createS3ModelSource(sourceOptions).download(model, { filePath });
      expect((await readFile(filePath)).equals(data)).toBe(true);
      const forPart = gets().filter((request) => request.range?.startsWith(`bytes=${128 * KIB}-`));
      expect(forPart.map((request) => request.status)).toEqual([503, 503, 206]);
    });

    it('resumes a part cut off mid-body from the last byte it received', async () => {
      const data = bytes(128 * KIB);
      mock.current.putObject('models', key, data);
      mock.current.inject({ kind: 'cut', rangeStart: 64 * KIB, afterBytes: 10_000 });
      const filePath = join(dir, 'style.part');
      await createS3ModelSource(sourceOptions).download(model, { filePath });
      expect((await readFile(filePath)).equals(data)).toBe(true);
      expect(gets().some((request) => request.range === `bytes=${64 * KIB + 10_000}-${128 * KIB - 1}`)).toBe(
        true,
      );
    });

    it('never puts the presigned URL or the access key in an error', async () => {
      mock.current.putObject('models', key, bytes(64 * KIB));
      mock.current.inject({ kind: 'status', status: 403, code: 'AccessDenied' });
      const error = await createS3ModelSource({
        ...sourceOptions,
        credentials: { accessKeyId: 'AKIAEXAMPLEKEY123', secretAccessKey: 'very-secret-value' },
      })
        .download(model, { filePath: join(dir, 'style.part'), info: { sizeBytes: 64 * KIB, etag: '"x"' } })
        .catch((caught) => caught);
      expect(ApiCallError.isInstance(error) && error.statusCode === 403 && !error.isRetryable).toBe(true);
      const text = `${(error as Error).message} ${JSON.stringify(error)}`;
      expect(text).toContain('s3://models/loras/style.safetensors');
      expect(text).not.toMatch(/X-Amz-Signature|AKIAEXAMPLEKEY123|very-secret-value/);
    });

    it('gives up on a part after its retries with a retryable error', async () => {
      mock.current.putObject('models', key, bytes(64 * KIB));
      mock.current.inject({ kind: 'status', status: 503, code: 'SlowDown', times: 10 });
      const error = await createS3ModelSource({ ...sourceOptions, retries: 2 })
        .download(model, { filePath: join(dir, 'style.part'), info: { sizeBytes: 64 * KIB, etag: '"x"' } })
        .catch((caught) => caught);
      expect(ApiCallError.isInstance(error) && error.statusCode === 503 && error.isRetryable).toBe(true);
      expect(gets()).toHaveLength(3);
    });

    it('starts over on the new version when the object is replaced mid-download (412)', async () => {
      const oldData = bytes(192 * KIB, 1);
      const newData = bytes(160 * KIB, 2);
      mock.current.putObject('models', key, oldData);
      const source = createS3ModelSource({ ...sourceOptions, concurrency: 1 });
      const info = await source.stat(model);
      mock.current.putObject('models', key, newData);
      const filePath = join(dir, 'style.part');
      const result = await source.download(model, { filePath, info });
      expect(result.sizeBytes).toBe(newData.length);
      expect((await readFile(filePath)).equals(newData)).toBe(true);
      expect(mock.current.requests.some((request) => request.status === 412)).toBe(true);
    });

    it('reads the size again when a range lies past the end (416)', async () => {
      const data = bytes(100 * KIB);
      mock.current.putObject('models', key, data);
      const filePath = join(dir, 'style.part');
      // A stale size (no ETag to pin): the second part starts past the end of the object.
      const result = await createS3ModelSource(sourceOptions).download(model, {
        filePath,
        info: { sizeBytes: 300 * KIB },
      });
      expect(result.sizeBytes).toBe(data.length);
      expect((await readFile(filePath)).equals(data)).toBe(true);
      expect(mock.current.requests.some((request) => request.status === 416)).toBe(true);
    });

    it('answers suffix ranges as S3 does (s3rver reads bytes=-N as 0..N)', async () => {
      const data = bytes(1000);
      mock.current.putObject('models', key, data);
      const response = await mock.current.handle(
        new Request(`${sourceOptions.endpoint}/models/loras/style.safetensors`, {
          headers: { range: 'bytes=-100' },
        }),
      );
      expect(response?.status).toBe(206);
      expect(response?.headers.get('content-range')).toBe('bytes 900-999/1000');
      expect(Buffer.from(await response!.arrayBuffer()).equals(data.subarray(900))).toBe(true);
    });

    it('keeps a crashed download hidden and resumes it in a new process without fetching done parts again', async () => {
      const data = bytes(320 * KIB);
      mock.current.putObject('models', key, data);
      const modelsDir = join(dir, 'models');
      mock.current.inject({ kind: 'status', status: 403, code: 'AccessDenied', rangeStart: 192 * KIB });
      const first = createModelLoader({
        source: createS3ModelSource({ ...sourceOptions, concurrency: 1 }),
        cache: createDiskModelCache({ dir: modelsDir, maxBytes: 10 * 1024 * KIB }),
      });
      await expect(first.load(await first.plan([model]))).rejects.toThrow('AccessDenied');
      await expect(stat(join(modelsDir, 'loras', 'style.safetensors'))).rejects.toThrow();
      const partial = join(modelsDir, '.partial', 'loras', 'style.safetensors.part');
      expect(JSON.parse(await readFile(partStatePath(partial), 'utf8')).completedParts).toEqual([0, 1, 2]);

      // A fresh cache and loader stand for a restarted process.
      const second = createModelLoader({
        source: createS3ModelSource(sourceOptions),
        cache: createDiskModelCache({ dir: modelsDir, maxBytes: 10 * 1024 * KIB }),
      });
      const result = await second.load(await second.plan([model]));
      expect(result.bytesDownloaded).toBe(128 * KIB);
      expect((await readFile(join(modelsDir, 'loras', 'style.safetensors'))).equals(data)).toBe(true);
      await expect(stat(partial)).rejects.toThrow();
      await expect(stat(partStatePath(partial))).rejects.toThrow();
    });

    it('downloads a model once when two loads ask for it at the same time', async () => {
      const data = bytes(256 * KIB);
      mock.current.putObject('models', key, data);
      const loader = createModelLoader({
        source: createS3ModelSource(sourceOptions),
        cache: createDiskModelCache({ dir: join(dir, 'models'), maxBytes: 10 * 1024 * KIB }),
      });
      const [a, b] = await Promise.all([
        loader.plan([model]).then((plan) => loader.load(plan)),
        loader.plan([model]).then((plan) => loader.load(plan)),
      ]);
      expect(gets()).toHaveLength(4);
      expect(a.bytesDownloaded + b.bytesDownloaded).toBe(data.length);
      expect((await readFile(join(dir, 'models', 'loras', 'style.safetensors'))).equals(data)).toBe(true);
    });

    it('refuses a file whose sha256 does not match, leaving nothing behind', async () => {
      mock.current.putObject('models', key, bytes(100 * KIB));
      const modelsDir = join(dir, 'models');
      const loader = createModelLoader({
        source: createS3ModelSource(sourceOptions),
        cache: createDiskModelCache({ dir: modelsDir, maxBytes: 10 * 1024 * KIB }),
      });
      const wrong = { ...model, sha256: 'a'.repeat(64) };
      const error = await loader.load(await loader.plan([wrong])).catch((caught) => caught);
      expect(InvalidResponseError.isInstance(error)).toBe(true);
      expect((error as Error).message).toContain('sha256');
      await expect(stat(join(modelsDir, 'loras', 'style.safetensors'))).rejects.toThrow();
      await expect(stat(join(modelsDir, '.partial', 'loras', 'style.safetensors.part'))).rejects.toThrow();
    });

    it('accepts a file whose sha256 matches the one stored in the object metadata', async () => {
      const data = bytes(70 * KIB);
      mock.current.putObject('models', key, data);
      const { createHash } = await import('node:crypto');
      const digest = createHash('sha256').update(data).digest('hex');
      const loader = createModelLoader({
        source: createS3ModelSource(sourceOptions),
        cache: createDiskModelCache({ dir: join(dir, 'models'), maxBytes: 10 * 1024 * KIB }),
      });
      const result = await loader.load(await loader.plan([{ ...model, sha256: digest }]));
      expect(result.loaded).toHaveLength(1);
      expect(result.cacheHits).toBe(0);
    });
  },
);

describe('createS3ModelSource against servers S3 would never be', () => {
  const fixture = (name: string) =>
    readFileSync(new URL(`../../core/src/models/__fixtures__/${name}`, import.meta.url));
  const cert = fixture('test-tls-cert.pem');
  const servers: Array<{ close(): void; closeAllConnections(): void }> = [];
  afterEach(() => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      server.close();
    }
  });
  async function started<
    T extends ReturnType<typeof createHttpServer> | ReturnType<typeof createHttpsServer>,
  >(server: T): Promise<number> {
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }
  const dummyCredentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' };

  it.each(['socket', 'fetch'] as const)(
    'refuses a server that ignores Range without reading the whole object (%s transport)',
    async (transport) => {
      const server = createHttpServer((_request, response) => {
        // The whole object (1 GiB), of which only a little ever comes: reading it to the end never ends.
        response.writeHead(200, { 'content-length': 1024 * 1024 * 1024 });
        response.write(Buffer.alloc(256 * KIB));
      });
      const port = await started(server);
      const error = await createS3ModelSource({
        bucket: 'models',
        endpoint: `http://127.0.0.1:${port}`,
        credentials: dummyCredentials,
        concurrency: 4,
        retries: 0,
        rangeTransport: transport,
      })
        .download(
          { folder: 'checkpoints', name: 'x.safetensors' },
          { filePath: join(dir, 'x.part'), info: { sizeBytes: 64 * 1024 * 1024, etag: '"e"' } },
        )
        .catch((caught: unknown) => caught);
      expect(InvalidResponseError.isInstance(error)).toBe(true);
      expect((error as Error).message).toContain('does not honour ranges');
    },
  );

  it('does not retry an untrusted certificate, and says what to do', async () => {
    let connections = 0;
    const server = createHttpsServer({ key: fixture('test-tls-key.pem'), cert }, (_request, response) =>
      response.end(),
    );
    server.on('connection', () => connections++);
    const port = await started(server);
    const error = await createS3ModelSource({
      bucket: 'models',
      endpoint: `https://localhost:${port}`,
      credentials: dummyCredentials,
      retries: 3,
      clock: immediateClock,
    })
      .download(
        { folder: 'checkpoints', name: 'x.safetensors' },
        { filePath: join(dir, 'x.part'), info: { sizeBytes: 1000, etag: '"e"' } },
      )
      .catch((caught: unknown) => caught);
    expect(ApiCallError.isInstance(error) && !error.isRetryable).toBe(true);
    expect(connections).toBe(1);
    const message = (error as Error).message;
    expect(message).toContain('s3://models/checkpoints/x.safetensors');
    expect(message).toContain('NODE_EXTRA_CA_CERTS');
    expect(message).not.toMatch(/X-Amz-Signature|AKIDEXAMPLE/);
  });

  it('trusts the CA it is given (a private S3-compatible server)', async () => {
    const data = bytes(300 * KIB);
    const server = createHttpsServer({ key: fixture('test-tls-key.pem'), cert }, (request, response) => {
      const match = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? '');
      const start = Number(match?.[1] ?? 0);
      const end = Number(match?.[2] ?? data.length - 1);
      response
        .writeHead(206, {
          'content-length': end - start + 1,
          'content-range': `bytes ${start}-${end}/${data.length}`,
        })
        .end(data.subarray(start, end + 1));
    });
    const port = await started(server);
    const filePath = join(dir, 'x.part');
    await createS3ModelSource({
      bucket: 'models',
      endpoint: `https://localhost:${port}`,
      credentials: dummyCredentials,
      partSizeBytes: 64 * KIB,
      ca: cert,
    }).download(
      { folder: 'checkpoints', name: 'x.safetensors' },
      { filePath, info: { sizeBytes: data.length, etag: '"e"' } },
    );
    expect((await readFile(filePath)).equals(data)).toBe(true);
  });
});
