import type { ModelRef } from '../spec/job';
import type { ModelCacheStatus, ModelLoadPlan, ModelPlanItem } from '../spec/model-loader-v1';
import { modelKey } from './disk-cache';

/** What `planModelLoad` needs to know besides the models. */
export interface ModelPlanSettings {
  /** Sizes in bytes by `folder/name`, for models whose `sizeBytes` is not set. */
  sizes?: Record<string, number>;
  /** Expected throughput of a download from the network, all streams together. */
  networkBytesPerSecond: number;
  /** Expected throughput of a copy from a warm cache (a nearby volume or peer). */
  warmBytesPerSecond: number;
  /** Most parallel ranged requests for one download. */
  streams: number;
  /** Bytes per ranged request; a model smaller than `streams` parts uses fewer streams. */
  partSizeBytes: number;
}

/**
 * Decides, with no I/O, how each model will be made available: `cache_hit` when the cache
 * has it (no time), `warm_cache` when a nearby cache does, `network_download` otherwise,
 * each with an estimated time (its bytes over the throughput) and a number of streams.
 * Downloads share the link, so the plan's estimate is the sum of its items' estimates.
 */
export function planModelLoad(
  models: ModelRef[],
  status: ModelCacheStatus,
  settings: ModelPlanSettings,
): ModelLoadPlan {
  const items: ModelPlanItem[] = [];
  let estimatedMs = 0;
  const seen = new Set<string>();
  for (const model of models) {
    const key = modelKey(model);
    if (seen.has(key)) continue;
    seen.add(key);
    const state = status[key] ?? 'absent';
    const sizeBytes = model.sizeBytes ?? settings.sizes?.[key];
    const withSize =
      sizeBytes === undefined || model.sizeBytes !== undefined ? model : { ...model, sizeBytes };
    if (state === 'present') {
      items.push({ model: withSize, action: 'cache_hit', estimatedMs: 0, streams: 0 });
      continue;
    }
    const bytesPerSecond = state === 'warm' ? settings.warmBytesPerSecond : settings.networkBytesPerSecond;
    const itemMs = sizeBytes === undefined ? 0 : Math.ceil((sizeBytes / bytesPerSecond) * 1000);
    const parts = sizeBytes === undefined ? settings.streams : Math.ceil(sizeBytes / settings.partSizeBytes);
    items.push({
      model: withSize,
      action: state === 'warm' ? 'warm_cache' : 'network_download',
      estimatedMs: itemMs,
      streams: Math.max(1, Math.min(settings.streams, parts)),
    });
    estimatedMs += itemMs;
  }
  return { items, estimatedMs };
}
