import { mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { Clock } from '../spec/clock';
import {
  ConfigurationError,
  InvalidArgumentError,
  InvalidResponseError,
  UnsafeModelPathError,
} from '../spec/errors';
import type { ModelRef } from '../spec/job';
import type { ModelCacheStatus } from '../spec/model-loader-v1';
import { systemClock } from '../util/clock';
import { assertSafeModelName } from '../workflow';
import { discardPartialDownload, partStatePath } from './part-download';
import { sha256File } from './sha256-file';

/** The hidden folder under the cache directory where downloads are written before they are renamed into sight. */
export const PARTIAL_DOWNLOADS_FOLDER = '.partial';

/** Options of `createDiskModelCache`. */
export interface DiskModelCacheOptions {
  /** ComfyUI's models directory: files live at `<dir>/<folder>/<name>`. */
  dir: string;
  /** Most bytes the cache may hold; least recently used files not in use are evicted to stay under it. */
  maxBytes: number;
  /** Used for last-use times. @default systemClock */
  clock?: Clock;
}

/** What to do when a model is not in the cache. */
export interface EnsureModelOptions {
  /**
   * Size of the model in bytes, or a function that finds it (called only when a download
   * is needed); room is made for it before the download starts.
   */
  sizeBytes: number | ((signal: AbortSignal | undefined) => Promise<number>);
  /** Writes the model to `filePath` (resuming what is there); returns bytes fetched. */
  fetch: (
    filePath: string,
    signal: AbortSignal | undefined,
  ) => Promise<{ bytesDownloaded: number; sha256?: string }>;
  /** Expected sha256 (hex); the model's own `sha256` is used when this is absent. */
  sha256?: string;
  signal?: AbortSignal;
}

/** What `ensure` did. */
export interface EnsureModelResult {
  path: string;
  /** Size of the file on disk. */
  sizeBytes: number;
  /** True when the file was already there. */
  hit: boolean;
  /** True when another caller's download of the same model was awaited. */
  shared: boolean;
  bytesDownloaded: number;
}

/** A hold on models: the cache never evicts them until `release` is called. */
export interface ModelLease {
  /** The files, by `folder/name`. */
  readonly paths: Record<string, string>;
  release(): void;
}

/** How full the cache is. */
export interface DiskCacheUsage {
  usedBytes: number;
  files: number;
  /** Bytes of files held by a lease or being written. */
  pinnedBytes: number;
  /** Bytes set aside for downloads in progress. */
  reservedBytes: number;
  maxBytes: number;
}

/** A models directory on local disk, in ComfyUI's layout, with LRU eviction by bytes. */
export interface DiskModelCache {
  readonly dir: string;
  readonly maxBytes: number;
  /** Where a model lives (`<dir>/<folder>/<name>`); throws `UnsafeModelPathError` for names that would escape. */
  pathOf(model: ModelRef): string;
  /** `present` or `absent` for each model, by `folder/name`; answers from memory after the first call. */
  status(models: ModelRef[]): Promise<ModelCacheStatus>;
  /**
   * Makes sure a model is on disk: returns at once when it is, awaits the download another
   * caller started, or downloads it to a hidden temporary file, checks its sha256 when
   * one is known, and renames it into place.
   */
  ensure(model: ModelRef, options: EnsureModelOptions): Promise<EnsureModelResult>;
  /** Holds models so that no eviction removes them while a job uses them. */
  acquire(models: ModelRef[]): Promise<ModelLease>;
  /** Removes a model unless it is in use; returns whether it was removed. */
  evict(model: ModelRef): Promise<boolean>;
  usage(): Promise<DiskCacheUsage>;
}

interface Entry {
  key: string;
  path: string;
  sizeBytes: number;
  lastUsedAt: number;
  /** The file's modification time (ms), kept when the access time is updated. */
  modifiedAt: number;
}

/** `folder/name` for a model, the key of `ModelCacheStatus`. */
export function modelKey(model: ModelRef): string {
  return `${model.folder ?? ''}/${model.name.replaceAll('\\', '/')}`;
}

function validateOptions(options: DiskModelCacheOptions): void {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError({
      argument: 'options',
      message: 'createDiskModelCache needs { dir, maxBytes }.',
    });
  }
  if (typeof options.dir !== 'string' || options.dir.trim() === '') {
    throw new InvalidArgumentError({
      argument: 'dir',
      message: `"dir" must be the path of ComfyUI's models directory; got ${typeof options.dir === 'string' ? 'an empty string' : typeof options.dir}.`,
    });
  }
  if (typeof options.maxBytes !== 'number' || !(options.maxBytes > 0)) {
    throw new InvalidArgumentError({
      argument: 'maxBytes',
      message: `"maxBytes" must be a positive number of bytes (Infinity for no limit); got ${String(options.maxBytes)}.`,
    });
  }
}

async function scan(root: string, folder: string, into: Map<string, Entry>): Promise<void> {
  let names: import('node:fs').Dirent[];
  try {
    names = await readdir(folder, { withFileTypes: true });
  } catch {
    return;
  }
  for (const dirent of names) {
    if (dirent.name.startsWith('.')) continue;
    const path = join(folder, dirent.name);
    if (dirent.isDirectory()) {
      await scan(root, path, into);
      continue;
    }
    if (!dirent.isFile()) continue;
    const parts = relative(root, path).split(sep);
    if (parts.length < 2) continue; // files at the top level are not models
    const info = await stat(path).catch(() => undefined);
    if (info === undefined) continue;
    const key = parts.join('/');
    into.set(key, {
      key,
      path,
      sizeBytes: info.size,
      lastUsedAt: Math.max(info.atimeMs, info.mtimeMs),
      modifiedAt: info.mtimeMs,
    });
  }
}

/**
 * A model cache on local disk in ComfyUI's folder layout (`<dir>/<folder>/<name>`).
 *
 * - Downloads go to `<dir>/.partial/...` and are renamed into place when complete and
 *   verified, so a crash never leaves a corrupt file where ComfyUI looks; a later call
 *   resumes the partial download.
 * - Two concurrent `ensure` calls for one model download it once.
 * - Least recently used files are evicted to stay under `maxBytes`; files held by a lease
 *   (`acquire`) or being written are never evicted.
 * - Unsafe names (`..`, absolute paths) are refused with `UnsafeModelPathError`.
 *
 * One process per directory: the coordination is in memory.
 *
 * @example
 * const cache = createDiskModelCache({ dir: '/runpod-volume/models', maxBytes: 200 * 2 ** 30 });
 */
export function createDiskModelCache(options: DiskModelCacheOptions): DiskModelCache {
  validateOptions(options);
  const dir = options.dir;
  const maxBytes = options.maxBytes;
  const clock = options.clock ?? systemClock;
  const entries = new Map<string, Entry>();
  const pins = new Map<string, number>();
  const inflight = new Map<string, Promise<EnsureModelResult>>();
  let reservedBytes = 0;
  let ready: Promise<void> | undefined;
  let loaded = false;

  const load = () => {
    ready ??= scan(dir, dir, entries).then(() => {
      loaded = true;
    });
    return ready;
  };

  const pathOf = (model: ModelRef): string => {
    if (model.folder === null || model.folder === undefined || model.folder === '') {
      throw new InvalidArgumentError({
        argument: 'model.folder',
        message: `The model "${model.name}" has no folder; say which ComfyUI folder it belongs in (checkpoints, loras, ...).`,
      });
    }
    assertSafeModelName(model.folder);
    assertSafeModelName(model.name);
    if (model.folder.includes('/') || model.folder.includes('\\') || model.folder.startsWith('.')) {
      throw new InvalidArgumentError({
        argument: 'model.folder',
        message: `The folder "${model.folder}" must be one plain folder name (checkpoints, loras, ...).`,
      });
    }
    const segments = model.name.replaceAll('\\', '/').split('/');
    // The workflow check lets `.` and empty segments through (harmless in a workflow), but as
    // a path `a/.` is the file `a` and `.` the folder itself: a file must have one spelling.
    if (segments.some((segment) => segment === '.' || segment === '')) {
      throw new UnsafeModelPathError({
        message: `Model name ${JSON.stringify(model.name)} is refused because it has an empty or '.' path segment. Use a name such as "sdxl/base.safetensors".`,
        modelName: model.name,
      });
    }
    return join(dir, model.folder, ...segments);
  };

  const partialPathOf = (model: ModelRef): string =>
    `${join(dir, PARTIAL_DOWNLOADS_FOLDER, model.folder ?? '', ...model.name.replaceAll('\\', '/').split('/'))}.part`;

  const usedBytes = () => {
    let total = 0;
    for (const entry of entries.values()) total += entry.sizeBytes;
    return total;
  };

  const isPinned = (key: string) => (pins.get(key) ?? 0) > 0 || inflight.has(key);

  const makeRoom = async (key: string, sizeBytes: number) => {
    if (sizeBytes > maxBytes) {
      throw new ConfigurationError({
        message: `The model ${key} is ${sizeBytes} bytes, more than the cache's maxBytes (${maxBytes}). Raise maxBytes or use a larger volume.`,
        isRetryable: false,
      });
    }
    const candidates = [...entries.values()].sort((a, b) => a.lastUsedAt - b.lastUsedAt);
    // `reservedBytes` already holds this download's share, and those of downloads running beside it.
    while (usedBytes() + reservedBytes > maxBytes) {
      let victim = candidates.shift();
      // Skip files that became pinned, or that another eviction took, while we awaited.
      while (victim !== undefined && (isPinned(victim.key) || entries.get(victim.key) !== victim))
        victim = candidates.shift();
      if (victim === undefined) {
        throw new ConfigurationError({
          message: `The model cache at ${dir} cannot make room for ${key} (${sizeBytes} bytes): the files it holds are in use. Try again when jobs finish, or raise maxBytes.`,
          isRetryable: true,
        });
      }
      entries.delete(victim.key);
      await rm(victim.path, { force: true });
    }
  };

  const download = async (model: ModelRef, key: string, ensureOptions: EnsureModelOptions) => {
    const finalPath = pathOf(model);
    const partialPath = partialPathOf(model);
    const expected = ensureOptions.sha256 ?? model.sha256;
    const sizeBytes =
      typeof ensureOptions.sizeBytes === 'function'
        ? await ensureOptions.sizeBytes(ensureOptions.signal)
        : ensureOptions.sizeBytes;
    if (!(typeof sizeBytes === 'number' && sizeBytes >= 0)) {
      throw new InvalidArgumentError({
        argument: 'sizeBytes',
        message: `The size of ${key} must be a number of bytes >= 0; got ${String(sizeBytes)}.`,
      });
    }
    // Reserve before making room, so that concurrent downloads of other models see the room as taken.
    reservedBytes += sizeBytes;
    try {
      await makeRoom(key, sizeBytes);
      await mkdir(dirname(partialPath), { recursive: true });
      let bytesDownloaded = 0;
      for (let attempt = 1; ; attempt++) {
        const resuming = await stat(partStatePath(partialPath)).then(
          () => true,
          () => false,
        );
        const fetched = await ensureOptions.fetch(partialPath, ensureOptions.signal);
        bytesDownloaded += fetched.bytesDownloaded;
        const wanted = expected ?? fetched.sha256;
        if (wanted === undefined) break;
        const actual = await sha256File(partialPath, {
          ...(ensureOptions.signal === undefined ? {} : { signal: ensureOptions.signal }),
        });
        if (actual === wanted.toLowerCase()) break;
        await discardPartialDownload(partialPath);
        // A resumed file may hold bytes of a torn write; one fresh download settles it.
        if (resuming && attempt === 1) continue;
        throw new InvalidResponseError({
          message: `The model ${key} downloaded with sha256 ${actual}, but ${wanted} was expected. The stored file is corrupt or the checksum is wrong; fix one of them.`,
        });
      }
      await mkdir(dirname(finalPath), { recursive: true });
      await rename(partialPath, finalPath);
      await rm(partStatePath(partialPath), { force: true });
      const info = await stat(finalPath);
      entries.set(key, {
        key,
        path: finalPath,
        sizeBytes: info.size,
        lastUsedAt: clock.now(),
        modifiedAt: info.mtimeMs,
      });
      return { path: finalPath, sizeBytes: info.size, hit: false, shared: false, bytesDownloaded };
    } finally {
      reservedBytes -= sizeBytes;
    }
  };

  const touch = (entry: Entry) => {
    entry.lastUsedAt = clock.now();
    // The access time carries recency across restarts; failing to set it only weakens LRU.
    utimes(entry.path, entry.lastUsedAt / 1000, entry.modifiedAt / 1000).catch(() => {});
  };

  return {
    dir,
    maxBytes,
    pathOf,

    async status(models) {
      if (!loaded) await load();
      const result: ModelCacheStatus = {};
      for (const model of models) {
        const key = modelKey(model);
        result[key] = entries.has(key) ? 'present' : 'absent';
      }
      return result;
    },

    async ensure(model, ensureOptions) {
      const key = modelKey(model);
      pathOf(model);
      if (
        ensureOptions === null ||
        typeof ensureOptions !== 'object' ||
        typeof ensureOptions.fetch !== 'function' ||
        !(typeof ensureOptions.sizeBytes === 'function' || ensureOptions.sizeBytes >= 0)
      ) {
        throw new InvalidArgumentError({
          argument: 'options',
          message: 'ensure(model, options) needs { sizeBytes: number >= 0 or a function, fetch: function }.',
        });
      }
      ensureOptions.signal?.throwIfAborted();
      await load();
      const existing = entries.get(key);
      if (existing !== undefined) {
        const present = await stat(existing.path).then(
          () => true,
          () => false,
        );
        if (present) {
          touch(existing);
          return {
            path: existing.path,
            sizeBytes: existing.sizeBytes,
            hit: true,
            shared: false,
            bytesDownloaded: 0,
          };
        }
        entries.delete(key);
      }
      const running = inflight.get(key);
      if (running !== undefined) {
        const result = await running;
        return { ...result, hit: false, shared: true, bytesDownloaded: 0 };
      }
      const started = download(model, key, ensureOptions).finally(() => inflight.delete(key));
      inflight.set(key, started);
      return started;
    },

    async acquire(models) {
      const paths: Record<string, string> = {};
      for (const model of models) paths[modelKey(model)] = pathOf(model);
      const keys = Object.keys(paths);
      for (const key of keys) pins.set(key, (pins.get(key) ?? 0) + 1);
      await load();
      for (const key of keys) {
        const entry = entries.get(key);
        if (entry !== undefined) touch(entry);
      }
      let released = false;
      return {
        paths,
        release() {
          if (released) return;
          released = true;
          for (const key of keys) {
            const count = (pins.get(key) ?? 1) - 1;
            if (count <= 0) pins.delete(key);
            else pins.set(key, count);
          }
        },
      };
    },

    async evict(model) {
      const key = modelKey(model);
      pathOf(model);
      await load();
      const entry = entries.get(key);
      if (entry === undefined || isPinned(key)) return false;
      entries.delete(key);
      await rm(entry.path, { force: true });
      return true;
    },

    async usage() {
      await load();
      let pinnedBytes = 0;
      for (const entry of entries.values()) if (isPinned(entry.key)) pinnedBytes += entry.sizeBytes;
      return { usedBytes: usedBytes(), files: entries.size, pinnedBytes, reservedBytes, maxBytes };
    },
  };
}
