import { type FileHandle, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { type RetryOptions, withRetry } from '../http/retry';
import type { Clock } from '../spec/clock';
import {
  ApiCallError,
  ComfyServerlessError,
  InvalidArgumentError,
  InvalidResponseError,
} from '../spec/errors';
import type { LentChunkBody } from './http1-range-client';
import type { ModelDownloadProgress, ModelObjectInfo } from './model-source';

/** An inclusive byte range, as HTTP's `Range: bytes=start-end` names it. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Reads one byte range of a remote object: as a stream of chunks, or as a `LentChunkBody`
 * (chunks lent by a connection that reads into one reused buffer; the cheapest). It should throw an
 * `ApiCallError` with status 412 when the object no longer has `etag`, 416 when the range
 * lies past its end, and errors flagged `isRetryable` for what a second try may fix.
 */
export type RangeReader = (
  range: ByteRange,
  options: {
    signal: AbortSignal;
    etag?: string /** The object's size as the download knows it. */;
    sizeBytes: number;
  },
) => Promise<AsyncIterable<Uint8Array> | LentChunkBody>;

/** Options of `downloadInParts`. */
export interface PartDownloadOptions {
  /** The file to write; a partial earlier download of the same object there is resumed. */
  filePath: string;
  /** Size and version of the object, from a HEAD request. */
  object: ModelObjectInfo;
  readRange: RangeReader;
  /**
   * Reads size and version again; called when the object changed mid-download (412) or
   * shrank (416), to start over once on the new version.
   */
  restat?: (options: { signal: AbortSignal }) => Promise<ModelObjectInfo>;
  /** Bytes per ranged request. @default 8 MiB (as the AWS CLI) */
  partSizeBytes?: number;
  /** Ranged requests in flight at once. @default 10 (as the AWS CLI) */
  concurrency?: number;
  /** Retries of each part (a part resumes from its last written byte). @default { retries: 4, minDelayMs: 200, maxDelayMs: 10000 } */
  retry?: Omit<RetryOptions, 'signal' | 'shouldRetry' | 'clock'>;
  clock?: Clock;
  signal?: AbortSignal;
  onProgress?: (progress: ModelDownloadProgress) => void;
  /** Bytes gathered from the stream before each write to disk. @default 1 MiB */
  writeBufferBytes?: number;
  /**
   * Flush the file to disk before resolving (and as parts complete), so that a power loss
   * after the caller's rename cannot show a file with missing data. @default true
   */
  durable?: boolean;
  /** A label for error messages (`s3://bucket/key`). */
  label?: string;
}

/** What `downloadInParts` did. */
export interface PartDownloadResult {
  sizeBytes: number;
  etag?: string;
  bytesDownloaded: number;
  resumedBytes: number;
  parts: number;
}

interface PartState {
  version: 1;
  sizeBytes: number;
  etag: string;
  partSizeBytes: number;
  completedParts: number[];
}

const MEBIBYTE = 1024 * 1024;

/** The file where `downloadInParts` records which parts of `filePath` are complete. */
export function partStatePath(filePath: string): string {
  return `${filePath}.state.json`;
}

/** Deletes a partial download and its progress record. */
export async function discardPartialDownload(filePath: string): Promise<void> {
  await rm(filePath, { force: true });
  await rm(partStatePath(filePath), { force: true });
}

/** Whether an error says the remote object changed or shrank under a download (412, 416). */
export function isObjectChangedError(error: unknown): boolean {
  return ApiCallError.isInstance(error) && (error.statusCode === 412 || error.statusCode === 416);
}

function validateOptions(options: PartDownloadOptions): { partSizeBytes: number; concurrency: number } {
  const partSizeBytes = options.partSizeBytes ?? 8 * MEBIBYTE;
  const concurrency = options.concurrency ?? 10;
  if (!Number.isInteger(partSizeBytes) || partSizeBytes < 1) {
    throw new InvalidArgumentError({
      argument: 'partSizeBytes',
      message: `"partSizeBytes" must be a positive whole number of bytes; got ${String(partSizeBytes)}.`,
    });
  }
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new InvalidArgumentError({
      argument: 'concurrency',
      message: `"concurrency" must be a whole number of at least 1; got ${String(concurrency)}.`,
    });
  }
  const { sizeBytes } = options.object;
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) {
    throw new InvalidResponseError({
      message: `The size of ${options.label ?? 'the object'} is not a whole number of bytes (${String(sizeBytes)}); the source answered wrongly.`,
    });
  }
  return { partSizeBytes, concurrency };
}

async function readState(filePath: string): Promise<PartState | undefined> {
  try {
    const parsed = JSON.parse(await readFile(partStatePath(filePath), 'utf8')) as Partial<PartState>;
    if (
      parsed.version === 1 &&
      typeof parsed.sizeBytes === 'number' &&
      typeof parsed.etag === 'string' &&
      typeof parsed.partSizeBytes === 'number' &&
      Array.isArray(parsed.completedParts)
    ) {
      return parsed as PartState;
    }
  } catch {
    // No state, or a state torn by a crash: start over.
  }
  return undefined;
}

async function fileSize(filePath: string): Promise<number | undefined> {
  try {
    return (await stat(filePath)).size;
  } catch {
    return undefined;
  }
}

/**
 * Downloads an object in parallel ranged requests straight into a file: each part is
 * streamed to its place in the file (never a whole file in memory), retried with backoff
 * from the last byte it wrote, pinned to the object's ETag, and recorded as done in a small
 * state file so that a later call resumes after a crash or an abort.
 *
 * The file is complete when this resolves; the caller moves it into place.
 */
export async function downloadInParts(options: PartDownloadOptions): Promise<PartDownloadResult> {
  const { partSizeBytes, concurrency } = validateOptions(options);
  let object = options.object;
  for (let restarts = 0; ; restarts++) {
    try {
      return await downloadVersion(options, object, partSizeBytes, concurrency);
    } catch (error) {
      if (!isObjectChangedError(error) || options.restat === undefined || restarts >= 1) {
        if (isObjectChangedError(error)) {
          await discardPartialDownload(options.filePath);
          throw new ApiCallError({
            message: `${options.label ?? 'The object'} changed or shrank while it was being downloaded (HTTP ${(error as ApiCallError).statusCode}). Try again once it is no longer being replaced.`,
            url: (error as ApiCallError).url,
            statusCode: (error as ApiCallError).statusCode,
            isRetryable: true,
            cause: error,
          });
        }
        throw error;
      }
      options.signal?.throwIfAborted();
      await discardPartialDownload(options.filePath);
      object = await options.restat({ signal: options.signal ?? new AbortController().signal });
      validateOptions({ ...options, object });
    }
  }
}

async function downloadVersion(
  options: PartDownloadOptions,
  object: ModelObjectInfo,
  partSizeBytes: number,
  concurrency: number,
): Promise<PartDownloadResult> {
  const { filePath } = options;
  const { sizeBytes, etag } = object;
  const partCount = Math.ceil(sizeBytes / partSizeBytes);

  // Resume only what was written for the very same version and part layout.
  const completed = new Set<number>();
  const previous = await readState(filePath);
  const existingSize = await fileSize(filePath);
  const resumable =
    previous !== undefined &&
    etag !== undefined &&
    previous.etag === etag &&
    previous.sizeBytes === sizeBytes &&
    previous.partSizeBytes === partSizeBytes &&
    existingSize === sizeBytes;
  if (resumable) {
    for (const index of previous.completedParts) {
      if (Number.isInteger(index) && index >= 0 && index < partCount) completed.add(index);
    }
  } else {
    await discardPartialDownload(filePath);
  }

  const partLength = (index: number) => Math.min(partSizeBytes, sizeBytes - index * partSizeBytes);
  let resumedBytes = 0;
  for (const index of completed) resumedBytes += partLength(index);
  let bytesDone = resumedBytes;
  let bytesDownloaded = 0;

  const handle = await open(filePath, resumable ? 'r+' : 'w+');
  // One writer at a time, always writing the latest record; workers never wait for it.
  let stateWriter: Promise<void> | undefined;
  let stateDirty = false;
  // Flushing to disk as parts complete overlaps the write-back with the download, so the
  // final sync before the rename has little left to do.
  let flushing: Promise<void> | undefined;
  const flushInBackground = () => {
    if (flushing !== undefined || options.durable === false) return;
    flushing = handle
      .datasync()
      .catch(() => {})
      .finally(() => {
        flushing = undefined;
      });
  };
  const saveState = () => {
    if (etag === undefined) return;
    stateDirty = true;
    stateWriter ??= (async () => {
      try {
        while (stateDirty) {
          stateDirty = false;
          const state: PartState = {
            version: 1,
            sizeBytes,
            etag,
            partSizeBytes,
            completedParts: [...completed].sort((x, y) => x - y),
          };
          // Written beside, then renamed: a crash leaves the old or the new record, never half of one.
          const temporary = `${partStatePath(filePath)}.tmp`;
          await writeFile(temporary, JSON.stringify(state));
          await rename(temporary, partStatePath(filePath));
        }
      } catch {
        // A lost record only costs resumability: the parts are downloaded again next time.
      } finally {
        stateWriter = undefined;
      }
    })();
  };

  const controller = new AbortController();
  const onOuterAbort = () => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) controller.abort(options.signal.reason);
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });

  const report = (bytes: number, fresh: boolean) => {
    bytesDone += bytes;
    if (fresh) bytesDownloaded += bytes;
    options.onProgress?.({ bytesDone, bytesTotal: sizeBytes });
  };

  try {
    if (!resumable) await handle.truncate(sizeBytes);
    if (sizeBytes > 0) options.onProgress?.({ bytesDone, bytesTotal: sizeBytes });
    const queue: number[] = [];
    for (let index = 0; index < partCount; index++) if (!completed.has(index)) queue.push(index);

    let firstError: unknown;
    const writeBufferBytes = options.writeBufferBytes ?? MEBIBYTE;
    const worker = async () => {
      // Two buffers per worker, reused for every part: incoming chunks are copied into one
      // while the other is being written, so the socket keeps flowing during disk writes,
      // and chunks die young, so the garbage collector never sees megabytes of them promoted.
      const slabs = new Slabs(writeBufferBytes);
      for (;;) {
        if (controller.signal.aborted) return;
        const index = queue.shift();
        if (index === undefined) return;
        try {
          await downloadPart(
            options,
            handle,
            { start: index * partSizeBytes, length: partLength(index), sizeBytes, etag },
            controller.signal,
            report,
            slabs,
          );
          completed.add(index);
          flushInBackground();
          saveState();
        } catch (error) {
          if (firstError === undefined) firstError = error;
          controller.abort(error);
          return;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
    await stateWriter;
    if (firstError !== undefined) {
      if (options.signal?.aborted) throw options.signal.reason;
      throw firstError;
    }
    options.signal?.throwIfAborted();
    // The file is complete: make it durable before anyone renames it into sight.
    await flushing;
    if (options.durable !== false) await handle.sync();
    return {
      sizeBytes,
      ...(etag === undefined ? {} : { etag }),
      bytesDownloaded,
      resumedBytes,
      parts: partCount,
    };
  } finally {
    options.signal?.removeEventListener('abort', onOuterAbort);
    await stateWriter;
    await flushing;
    await handle.close();
  }
}

async function downloadPart(
  options: PartDownloadOptions,
  handle: FileHandle,
  part: { start: number; length: number; sizeBytes: number; etag: string | undefined },
  signal: AbortSignal,
  report: (bytes: number, fresh: boolean) => void,
  slabs: Slabs,
): Promise<void> {
  const { start, length, sizeBytes, etag } = part;
  let written = 0;
  const retry = options.retry ?? {};
  await withRetry(
    async () => {
      const range = { start: start + written, end: start + length - 1 };
      const stream = await options.readRange(range, {
        signal,
        sizeBytes,
        ...(etag === undefined ? {} : { etag }),
      });
      const tooLong = () =>
        new InvalidResponseError({
          message: `${options.label ?? 'The source'} sent more bytes than the range ${range.start}-${range.end} asks for; it does not honour Range requests. Use a server that does.`,
        });
      const endedShort = () =>
        new ApiCallError({
          message: `${options.label ?? 'The source'} ended the range ${range.start}-${range.end} after ${written} of ${length} bytes; retrying from there.`,
          url: options.label ?? 'range',
          isRetryable: true,
        });
      if (!(Symbol.asyncIterator in stream)) {
        await writeLentBody(stream, handle, {
          position: start + written,
          length: length - written,
          slabs,
          signal,
          tooLong,
          onWritten: (bytes) => {
            written += bytes;
            report(bytes, true);
          },
        });
        if (written < length) throw endedShort();
        return;
      }
      let [current, spare] = slabs.pair(0);
      let used = 0;
      // Bytes taken from the stream: written, being written, or waiting in `current`.
      let accepted = written;
      let writing: Promise<void> | undefined;
      // Starts writing `current` once the previous write is done (one write in flight per
      // part, in order, so `written` always counts a contiguous prefix of the part).
      const startWrite = async () => {
        if (writing !== undefined) await writing;
        if (used === 0) return;
        const buffer = current;
        const bytes = used;
        const position = start + written;
        used = 0;
        current = spare;
        spare = buffer;
        writing = handle.write(buffer, 0, bytes, position).then(() => {
          written += bytes;
          writing = undefined;
          report(bytes, true);
        });
      };
      try {
        for await (const chunk of stream) {
          if (accepted + chunk.byteLength > length) {
            used = 0;
            throw tooLong();
          }
          accepted += chunk.byteLength;
          let offset = 0;
          while (offset < chunk.byteLength) {
            const take = Math.min(chunk.byteLength - offset, current.length - used);
            current.set(chunk.subarray(offset, offset + take), used);
            used += take;
            offset += take;
            if (used === current.length) await startWrite();
          }
          signal.throwIfAborted();
        }
      } finally {
        // Bytes that arrived before a broken stream are good: keep them, so the retry asks only for the rest.
        await startWrite();
        await writing;
      }
      if (written < length) {
        throw endedShort();
      }
    },
    {
      retries: 4,
      minDelayMs: 200,
      maxDelayMs: 10_000,
      ...retry,
      signal,
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      shouldRetry: (error) => {
        if (signal.aborted || isObjectChangedError(error)) return false;
        // Errors of ours carry the verdict; anything else is a broken socket or stream.
        return ComfyServerlessError.isInstance(error) ? error.isRetryable : true;
      },
    },
  );
}

/**
 * A worker's two write buffers, reused for every part it downloads. Lent chunks must be
 * copied whole as they come, so for them each buffer has room for one more chunk past the
 * point where it is written out.
 */
class Slabs {
  private buffers: [Buffer, Buffer] | undefined;
  constructor(readonly writeBytes: number) {}
  /** Two buffers of at least `writeBytes + extraBytes`. */
  pair(extraBytes: number): [Buffer, Buffer] {
    const size = this.writeBytes + extraBytes;
    if (this.buffers === undefined || this.buffers[0].length < size) {
      this.buffers = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
    }
    return this.buffers;
  }
}

/**
 * Copies a lent body into the worker's buffers and writes each at its place once
 * `writeBytes` have gathered, one write in flight: while it runs the next buffer fills,
 * and when that one is full too, the connection pauses until the write is done. Whatever
 * arrived before an error is still written, so that a retry asks only for the rest.
 */
async function writeLentBody(
  body: LentChunkBody,
  handle: FileHandle,
  target: {
    position: number;
    length: number;
    slabs: Slabs;
    signal: AbortSignal;
    tooLong: () => Error;
    onWritten: (bytes: number) => void;
  },
): Promise<void> {
  let [current, spare] = target.slabs.pair(body.maxChunkBytes);
  const threshold = target.slabs.writeBytes;
  let used = 0;
  let accepted = 0;
  let position = target.position;
  let writing: Promise<void> | undefined;
  let writeError: unknown;
  let waiting = false;
  const flush = () => {
    const buffer = current;
    const bytes = used;
    const at = position;
    used = 0;
    position += bytes;
    current = spare;
    spare = buffer;
    writing = handle.write(buffer, 0, bytes, at).then(
      () => {
        writing = undefined;
        target.onWritten(bytes);
        if (waiting) {
          waiting = false;
          if (used >= threshold) flush();
          body.resume();
        }
      },
      (error: unknown) => {
        writing = undefined;
        writeError ??= error;
        body.cancel();
      },
    );
  };
  try {
    await body.consume((chunk) => {
      if (accepted + chunk.byteLength > target.length) throw target.tooLong();
      accepted += chunk.byteLength;
      current.set(chunk, used);
      used += chunk.byteLength;
      if (used < threshold) return true;
      if (writing === undefined) {
        flush();
        return true;
      }
      waiting = true;
      return false;
    });
  } catch (error) {
    throw writeError ?? error;
  } finally {
    waiting = false;
    while (writing !== undefined) await writing;
    if (used > 0 && writeError === undefined) {
      flush();
      while (writing !== undefined) await writing;
    }
  }
  if (writeError !== undefined) throw writeError;
  target.signal.throwIfAborted();
}
