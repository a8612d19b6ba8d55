import type { ModelRef } from './job';

/** How one model will be made available. */
export interface ModelPlanItem {
  model: ModelRef;
  action: 'cache_hit' | 'warm_cache' | 'network_download';
  estimatedMs: number;
  /** Parallel streams to use for a download. */
  streams: number;
}

/** A plan for loading a job's models. */
export interface ModelLoadPlan {
  items: ModelPlanItem[];
  estimatedMs: number;
}

/** What loading did. */
export interface ModelLoadResult {
  loaded: ModelRef[];
  cacheHits: number;
  bytesDownloaded: number;
  totalMs: number;
}

/** Progress of a load. */
export interface ModelLoadProgress {
  model: ModelRef;
  bytesDone: number;
  bytesTotal?: number;
}

/** What a cache knows about models, by `folder/name`. */
export type ModelCacheStatus = Record<string, 'present' | 'warm' | 'absent'>;

/** Brings models to where a worker can read them. */
export interface ModelLoaderV1 {
  readonly specificationVersion: 'v1';
  plan(models: ModelRef[], cacheStatus?: ModelCacheStatus): Promise<ModelLoadPlan>;
  load(
    plan: ModelLoadPlan,
    options?: { signal?: AbortSignal; onProgress?: (progress: ModelLoadProgress) => void },
  ): Promise<ModelLoadResult>;
}
