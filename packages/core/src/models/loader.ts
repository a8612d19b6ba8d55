import type { Clock } from '../spec/clock';
import { InvalidArgumentError } from '../spec/errors';
import type { ModelRef } from '../spec/job';
import type {
  ModelCacheStatus,
  ModelLoaderV1,
  ModelLoadPlan,
  ModelLoadResult,
} from '../spec/model-loader-v1';
import { systemClock } from '../util/clock';
import { type DiskModelCache, modelKey } from './disk-cache';
import type { ModelObjectInfo, ModelSource } from './model-source';
import { planModelLoad } from './plan';

/** The parts of a cache the loader uses; `createDiskModelCache` gives all of them. */
export type ModelCache = Pick<DiskModelCache, 'status' | 'ensure' | 'acquire'>;

/** Options of `createModelLoader`. */
export interface ModelLoaderOptions {
  /** Where missing models are downloaded from. */
  source: ModelSource;
  /** Where models are kept. */
  cache: ModelCache;
  /** A nearby, faster source for models a status marks `warm`. @default source */
  warmSource?: ModelSource;
  /** Models loaded at once. @default 4 */
  concurrency?: number;
  /** Parallel ranged requests per download, for plans (set the source's own to match). @default 10 */
  streams?: number;
  /** Bytes per ranged request, for plans. @default 8 MiB */
  partSizeBytes?: number;
  /** Network throughput assumed until a download has been measured. @default 100 MB/s */
  networkBytesPerSecond?: number;
  /** Warm-cache throughput assumed until measured. @default 1 GB/s */
  warmBytesPerSecond?: number;
  clock?: Clock;
}

/** Throughputs the loader plans with. */
export interface MeasuredBandwidth {
  networkBytesPerSecond: number;
  warmBytesPerSecond: number;
  /** Loads that contributed a measurement. */
  samples: number;
}

/** A model loader that also tells what throughput it has measured. */
export interface ModelLoader extends ModelLoaderV1 {
  bandwidth(): MeasuredBandwidth;
}

function positive(name: string, value: number | undefined, fallback: number, integer: boolean): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0) || (integer && !Number.isInteger(value))) {
    throw new InvalidArgumentError({
      argument: name,
      message: `"${name}" must be a positive ${integer ? 'whole number' : 'number'}; got ${String(value)}.`,
    });
  }
  return value;
}

/** Only downloads this large say anything about throughput; small ones are all latency. */
const MEASURABLE_BYTES = 4 * 1024 * 1024;

/**
 * Creates a `ModelLoaderV1` over a source and a cache. `plan` asks the cache what it has
 * (memory only once the cache has scanned its directory) and the source for the sizes it
 * lacks; `load` brings the models in parallel (`concurrency` models at once, each in
 * parallel parts), holds them against eviction while it runs, and measures throughput for
 * later plans.
 *
 * @example
 * const loader = createModelLoader({ source: createS3ModelSource({ bucket: 'models' }), cache });
 * const plan = await loader.plan(requirements.models);
 * await loader.load(plan, { onProgress: (p) => console.log(p.model.name, p.bytesDone) });
 */
export function createModelLoader(options: ModelLoaderOptions): ModelLoader {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError({
      argument: 'options',
      message: 'createModelLoader needs { source, cache }.',
    });
  }
  const { source, cache } = options;
  if (source === undefined || typeof source.download !== 'function' || typeof source.stat !== 'function') {
    throw new InvalidArgumentError({
      argument: 'source',
      message:
        '"source" must be a ModelSource (for example createS3ModelSource(...) or createHttpModelSource(...)).',
    });
  }
  if (cache === undefined || typeof cache.ensure !== 'function' || typeof cache.status !== 'function') {
    throw new InvalidArgumentError({
      argument: 'cache',
      message: '"cache" must be a model cache (for example createDiskModelCache({ dir, maxBytes })).',
    });
  }
  const warmSource = options.warmSource ?? source;
  const concurrency = positive('concurrency', options.concurrency, 4, true);
  const streams = positive('streams', options.streams, 10, true);
  const partSizeBytes = positive('partSizeBytes', options.partSizeBytes, 8 * 1024 * 1024, true);
  const clock = options.clock ?? systemClock;
  const measured: MeasuredBandwidth = {
    networkBytesPerSecond: positive('networkBytesPerSecond', options.networkBytesPerSecond, 100e6, false),
    warmBytesPerSecond: positive('warmBytesPerSecond', options.warmBytesPerSecond, 1e9, false),
    samples: 0,
  };
  const infos = new Map<string, ModelObjectInfo>();

  const infoOf = async (model: ModelRef, from: ModelSource, signal?: AbortSignal) => {
    const key = modelKey(model);
    const known = infos.get(key);
    if (known !== undefined) return known;
    const info = await from.stat(model, signal === undefined ? {} : { signal });
    infos.set(key, info);
    return info;
  };

  const record = (kind: 'network' | 'warm', bytes: number, ms: number) => {
    if (bytes < MEASURABLE_BYTES || ms <= 0) return;
    const sample = (bytes / ms) * 1000;
    // A moving average: recent loads count most, one odd load does not swing plans.
    if (kind === 'network') {
      measured.networkBytesPerSecond =
        measured.samples === 0 ? sample : 0.5 * measured.networkBytesPerSecond + 0.5 * sample;
    } else {
      measured.warmBytesPerSecond = 0.5 * measured.warmBytesPerSecond + 0.5 * sample;
    }
    measured.samples++;
  };

  return {
    specificationVersion: 'v1',

    bandwidth: () => ({ ...measured }),

    async plan(models, cacheStatus?: ModelCacheStatus): Promise<ModelLoadPlan> {
      if (!Array.isArray(models)) {
        throw new InvalidArgumentError({
          argument: 'models',
          message: '"models" must be an array of ModelRef.',
        });
      }
      const status = cacheStatus ?? (await cache.status(models));
      const sizes: Record<string, number> = {};
      const unknown = models.filter((model) => {
        const key = modelKey(model);
        return status[key] !== 'present' && model.sizeBytes === undefined;
      });
      if (unknown.length > 0) {
        await Promise.all(
          unknown.map(async (model) => {
            const from = status[modelKey(model)] === 'warm' ? warmSource : source;
            sizes[modelKey(model)] = (await infoOf(model, from)).sizeBytes;
          }),
        );
      }
      return planModelLoad(models, status, {
        sizes,
        networkBytesPerSecond: measured.networkBytesPerSecond,
        warmBytesPerSecond: measured.warmBytesPerSecond,
        streams,
        partSizeBytes,
      });
    },

    async load(plan, loadOptions = {}): Promise<ModelLoadResult> {
      if (plan === null || typeof plan !== 'object' || !Array.isArray(plan.items)) {
        throw new InvalidArgumentError({ argument: 'plan', message: '"plan" must be what plan() returned.' });
      }
      const startedAt = clock.now();
      const { signal, onProgress } = loadOptions;
      signal?.throwIfAborted();
      const controller = new AbortController();
      const onAbort = () => controller.abort(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      const lease = await cache.acquire(plan.items.map((item) => item.model));
      const loaded: ModelRef[] = [];
      let cacheHits = 0;
      const downloaded = { network: 0, warm: 0 };
      const queue = [...plan.items];
      let firstError: unknown;

      const loadOne = async (item: (typeof plan.items)[number]) => {
        const from = item.action === 'warm_cache' ? warmSource : source;
        const { model } = item;
        let info: ModelObjectInfo | undefined;
        const result = await cache.ensure(model, {
          // The source is asked for the size only when a download is needed.
          sizeBytes: model.sizeBytes ?? (async (signal) => (await infoOf(model, from, signal)).sizeBytes),
          signal: controller.signal,
          fetch: async (filePath, fetchSignal) => {
            info ??= infos.get(modelKey(model));
            const done = await from.download(model, {
              filePath,
              ...(info === undefined ? {} : { info }),
              ...(fetchSignal === undefined ? {} : { signal: fetchSignal }),
              onProgress: (progress) =>
                onProgress?.({ model, bytesDone: progress.bytesDone, bytesTotal: progress.bytesTotal }),
            });
            // The version just fetched may differ from the one stat saw: ask again next time.
            infos.delete(modelKey(model));
            return {
              bytesDownloaded: done.bytesDownloaded,
              ...(done.sha256 === undefined ? {} : { sha256: done.sha256 }),
            };
          },
        });
        if (result.hit) {
          cacheHits++;
          onProgress?.({ model, bytesDone: result.sizeBytes, bytesTotal: result.sizeBytes });
        }
        downloaded[item.action === 'warm_cache' ? 'warm' : 'network'] += result.bytesDownloaded;
        loaded.push(model);
      };

      const worker = async () => {
        for (;;) {
          if (controller.signal.aborted) return;
          const item = queue.shift();
          if (item === undefined) return;
          try {
            await loadOne(item);
          } catch (error) {
            firstError ??= error;
            controller.abort(error);
            return;
          }
        }
      };
      try {
        await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
      } finally {
        lease.release();
        signal?.removeEventListener('abort', onAbort);
      }
      if (signal?.aborted) throw signal.reason;
      if (firstError !== undefined) throw firstError;
      const totalMs = clock.now() - startedAt;
      record('network', downloaded.network, totalMs);
      record('warm', downloaded.warm, totalMs);
      return { loaded, cacheHits, bytesDownloaded: downloaded.network + downloaded.warm, totalMs };
    },
  };
}
