import type { ModelLoaderV1, ModelLoadPlan, ModelLoadResult } from '../spec/model-loader-v1';

/** Something that counts model-cache hits and misses (the Prometheus metrics, the performance report). */
export interface ModelCacheRecorder {
  /** Records one model lookup: `hit` when the model was already in the cache. */
  recordModelCache(hit: boolean, folder?: string): void;
}

/**
 * Records what one `ModelLoaderV1.load` did: each model of the plan as a hit or a miss, by
 * folder. The loader's own count of hits (`result.cacheHits`) is the truth; when it differs
 * from the plan (the cache changed between plan and load), hits and misses are recorded
 * without a folder.
 *
 * @example
 * const result = await loader.load(plan);
 * recordModelLoad([metrics, report], result, plan);
 */
export function recordModelLoad(
  recorders: ModelCacheRecorder | readonly ModelCacheRecorder[],
  result: ModelLoadResult,
  plan?: ModelLoadPlan,
): void {
  const targets = Array.isArray(recorders) ? recorders : [recorders as ModelCacheRecorder];
  const total = result.loaded.length;
  const hits = Math.min(total, Math.max(0, result.cacheHits));
  const plannedHits = plan?.items.filter((item) => item.action === 'cache_hit') ?? [];
  const record = (hit: boolean, folder?: string) => {
    for (const target of targets) target.recordModelCache(hit, folder);
  };
  if (plan !== undefined && plan.items.length === total && plannedHits.length === hits) {
    for (const item of plan.items) record(item.action === 'cache_hit', item.model.folder ?? undefined);
    return;
  }
  for (let index = 0; index < hits; index++) record(true);
  for (let index = hits; index < total; index++) record(false);
}

/**
 * Wraps a model loader so that every `load` is recorded as model-cache hits and misses.
 * Every other method and property of the loader is passed through unchanged.
 *
 * @example
 * const loader = instrumentModelLoader(createModelLoader({ source, cache }), [metrics, report]);
 */
export function instrumentModelLoader<Loader extends ModelLoaderV1>(
  loader: Loader,
  recorders: ModelCacheRecorder | readonly ModelCacheRecorder[],
): Loader {
  const load: ModelLoaderV1['load'] = async (plan, options) => {
    const result = await loader.load(plan, options);
    recordModelLoad(recorders, result, plan);
    return result;
  };
  return new Proxy(loader, {
    get(target, property, receiver) {
      if (property === 'load') return load;
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
