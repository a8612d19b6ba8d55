import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../spec/clock';
import { ApiCallError, InvalidResponseError } from '../spec/errors';
import { type ByteRange, downloadInParts, partStatePath, type RangeReader } from './part-download';

/** Timers fire on the next turn: retries back off without real waiting. */
const immediateClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback) => setImmediate(callback),
  clearTimeout: (handle) => clearImmediate(handle as ReturnType<typeof setImmediate>),
};

function bytes(size: number, seed = 7): Buffer {
  const buffer = Buffer.alloc(size);
  for (let index = 0; index < size; index++) buffer[index] = (index * 31 + seed) & 0xff;
  return buffer;
}

async function* chunked(data: Buffer, chunkSize = 5): AsyncIterable<Uint8Array> {
  for (let offset = 0; offset < data.length; offset += chunkSize)
    yield data.subarray(offset, offset + chunkSize);
}

function memoryReader(
  data: () => Buffer,
  etag: () => string,
  log: Array<ByteRange & { etag?: string }> = [],
): RangeReader {
  return async (range, options) => {
    log.push({ ...range, ...(options.etag === undefined ? {} : { etag: options.etag }) });
    if (options.etag !== undefined && options.etag !== etag()) {
      throw new ApiCallError({ message: 'precondition failed', url: 'memory', statusCode: 412 });
    }
    return chunked(data().subarray(range.start, range.end + 1));
  };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'part-download-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('downloadInParts', () => {
  it('writes every part at its place, pinned to the ETag, and reports progress to the end', async () => {
    const data = bytes(1000);
    const log: Array<ByteRange & { etag?: string }> = [];
    const filePath = join(dir, 'model.part');
    const progress: number[] = [];
    const result = await downloadInParts({
      filePath,
      object: { sizeBytes: data.length, etag: '"v1"' },
      readRange: memoryReader(
        () => data,
        () => '"v1"',
        log,
      ),
      partSizeBytes: 100,
      concurrency: 3,
      writeBufferBytes: 16,
      onProgress: (p) => progress.push(p.bytesDone),
    });
    expect(await readFile(filePath)).toEqual(data);
    expect(result).toMatchObject({ sizeBytes: 1000, bytesDownloaded: 1000, resumedBytes: 0, parts: 10 });
    expect(log).toHaveLength(10);
    expect(log.every((entry) => entry.etag === '"v1"' && entry.end - entry.start === 99)).toBe(true);
    expect(progress.at(-1)).toBe(1000);
  });

  it('resumes from the parts an interrupted download completed', async () => {
    const data = bytes(1000);
    const filePath = join(dir, 'model.part');
    let calls = 0;
    const failing: RangeReader = async (range, options) => {
      calls++;
      if (calls > 4) throw new InvalidResponseError({ message: 'crash' });
      return memoryReader(
        () => data,
        () => '"v1"',
      )(range, options);
    };
    await expect(
      downloadInParts({
        filePath,
        object: { sizeBytes: 1000, etag: '"v1"' },
        readRange: failing,
        partSizeBytes: 100,
        concurrency: 1,
      }),
    ).rejects.toThrow('crash');
    const state = JSON.parse(await readFile(partStatePath(filePath), 'utf8'));
    expect(state.completedParts).toEqual([0, 1, 2, 3]);

    const log: ByteRange[] = [];
    const result = await downloadInParts({
      filePath,
      object: { sizeBytes: 1000, etag: '"v1"' },
      readRange: memoryReader(
        () => data,
        () => '"v1"',
        log,
      ),
      partSizeBytes: 100,
      concurrency: 2,
    });
    expect(result.resumedBytes).toBe(400);
    expect(result.bytesDownloaded).toBe(600);
    expect(log.map((entry) => entry.start).sort((a, b) => a - b)).toEqual([400, 500, 600, 700, 800, 900]);
    expect(await readFile(filePath)).toEqual(data);
  });

  it('does not resume a partial file of another version', async () => {
    const oldData = bytes(500, 1);
    const newData = bytes(500, 2);
    const filePath = join(dir, 'model.part');
    let calls = 0;
    await expect(
      downloadInParts({
        filePath,
        object: { sizeBytes: 500, etag: '"old"' },
        readRange: async (range, options) => {
          if (++calls > 2) throw new InvalidResponseError({ message: 'stop' });
          return memoryReader(
            () => oldData,
            () => '"old"',
          )(range, options);
        },
        partSizeBytes: 100,
        concurrency: 1,
      }),
    ).rejects.toThrow('stop');
    const result = await downloadInParts({
      filePath,
      object: { sizeBytes: 500, etag: '"new"' },
      readRange: memoryReader(
        () => newData,
        () => '"new"',
      ),
      partSizeBytes: 100,
    });
    expect(result.resumedBytes).toBe(0);
    expect(await readFile(filePath)).toEqual(newData);
  });

  it('retries a part that broke mid-stream from the last byte it wrote', async () => {
    const data = bytes(300);
    const log: ByteRange[] = [];
    let broken = false;
    const reader: RangeReader = async (range) => {
      log.push(range);
      const slice = data.subarray(range.start, range.end + 1);
      if (range.start === 100 && !broken) {
        broken = true;
        return (async function* () {
          yield slice.subarray(0, 40);
          throw new Error('socket hang up');
        })();
      }
      return chunked(slice);
    };
    const filePath = join(dir, 'model.part');
    const result = await downloadInParts({
      filePath,
      object: { sizeBytes: 300, etag: '"v"' },
      readRange: reader,
      partSizeBytes: 100,
      concurrency: 1,
      writeBufferBytes: 10,
      clock: immediateClock,
    });
    expect(await readFile(filePath)).toEqual(data);
    expect(log.some((range) => range.start === 140 && range.end === 199)).toBe(true);
    expect(result.bytesDownloaded).toBe(300);
  });

  it('honours a 503 SlowDown on a part with a retry that succeeds', async () => {
    const data = bytes(200);
    let throttled = 0;
    const reader: RangeReader = async (range, options) => {
      if (range.start === 100 && throttled < 2) {
        throttled++;
        throw new ApiCallError({ message: 'SlowDown', url: 'memory', statusCode: 503, retryAfterMs: 1 });
      }
      return memoryReader(
        () => data,
        () => '"v"',
      )(range, options);
    };
    const filePath = join(dir, 'model.part');
    await downloadInParts({
      filePath,
      object: { sizeBytes: 200, etag: '"v"' },
      readRange: reader,
      partSizeBytes: 100,
      clock: immediateClock,
    });
    expect(throttled).toBe(2);
    expect(await readFile(filePath)).toEqual(data);
  });

  it('starts over once on the new version when the object changes mid-download (412)', async () => {
    let current = { data: bytes(400, 1), etag: '"v1"' };
    let calls = 0;
    const reader: RangeReader = async (range, options) => {
      calls++;
      if (calls === 2) current = { data: bytes(300, 9), etag: '"v2"' };
      return memoryReader(
        () => current.data,
        () => current.etag,
      )(range, options);
    };
    const filePath = join(dir, 'model.part');
    const result = await downloadInParts({
      filePath,
      object: { sizeBytes: 400, etag: '"v1"' },
      readRange: reader,
      restat: async () => ({ sizeBytes: current.data.length, etag: current.etag }),
      partSizeBytes: 100,
      concurrency: 1,
    });
    expect(result).toMatchObject({ sizeBytes: 300, etag: '"v2"' });
    expect(await readFile(filePath)).toEqual(current.data);
  });

  it('gives up with a retryable error and no partial file when the object keeps changing', async () => {
    let version = 0;
    const reader: RangeReader = async (_range, options) => {
      version++;
      return memoryReader(
        () => bytes(100),
        () => `"v${version}"`,
      )(_range, options);
    };
    const filePath = join(dir, 'model.part');
    const error = await downloadInParts({
      filePath,
      object: { sizeBytes: 100, etag: '"v0"' },
      readRange: reader,
      restat: async () => ({ sizeBytes: 100, etag: `"v${version}"` }),
      partSizeBytes: 50,
      concurrency: 1,
    }).catch((caught: unknown) => caught);
    expect(ApiCallError.isInstance(error) && error.statusCode === 412 && error.isRetryable).toBe(true);
    await expect(stat(filePath)).rejects.toThrow();
  });

  it('refuses a server that sends more than the range asked for', async () => {
    const data = bytes(300);
    const filePath = join(dir, 'model.part');
    await expect(
      downloadInParts({
        filePath,
        object: { sizeBytes: 300, etag: '"v"' },
        readRange: async () => chunked(data),
        partSizeBytes: 100,
      }),
    ).rejects.toSatisfy((error: unknown) => InvalidResponseError.isInstance(error));
  });

  it('stops when the signal aborts and keeps the partial file for later', async () => {
    const controller = new AbortController();
    const data = bytes(500);
    const filePath = join(dir, 'model.part');
    const reader: RangeReader = async (range, options) => {
      if (range.start === 200) controller.abort(new Error('caller gave up'));
      return memoryReader(
        () => data,
        () => '"v"',
      )(range, options);
    };
    await expect(
      downloadInParts({
        filePath,
        object: { sizeBytes: 500, etag: '"v"' },
        readRange: reader,
        partSizeBytes: 100,
        concurrency: 1,
        signal: controller.signal,
      }),
    ).rejects.toThrow('caller gave up');
    const state = JSON.parse(await readFile(partStatePath(filePath), 'utf8'));
    expect(state.completedParts).toEqual([0, 1]);
  });

  it('writes an empty object as an empty file', async () => {
    const filePath = join(dir, 'empty.part');
    const result = await downloadInParts({
      filePath,
      object: { sizeBytes: 0, etag: '"e"' },
      readRange: async () => {
        throw new Error('no range should be read');
      },
    });
    expect(result.parts).toBe(0);
    expect((await stat(filePath)).size).toBe(0);
  });

  it('reassembles any object exactly, whatever the part size and concurrency', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 2000 }),
        fc.integer({ min: 1, max: 700 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 64 }),
        async (size, partSizeBytes, concurrency, writeBufferBytes) => {
          const data = bytes(size, size);
          const filePath = join(dir, `p-${size}-${partSizeBytes}-${concurrency}.part`);
          await downloadInParts({
            filePath,
            object: { sizeBytes: size, etag: '"x"' },
            readRange: memoryReader(
              () => data,
              () => '"x"',
            ),
            partSizeBytes,
            concurrency,
            writeBufferBytes,
          });
          expect((await readFile(filePath)).equals(data)).toBe(true);
        },
      ),
      { numRuns: 25 },
    );
  });
});
