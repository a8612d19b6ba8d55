export { assertContentRange } from './content-range';
export type {
  DiskCacheUsage,
  DiskModelCache,
  DiskModelCacheOptions,
  EnsureModelOptions,
  EnsureModelResult,
  ModelLease,
} from './disk-cache';
export { createDiskModelCache, modelKey, PARTIAL_DOWNLOADS_FOLDER } from './disk-cache';
export type { HttpModelSourceOptions } from './http-source';
export { createHttpModelSource } from './http-source';
export type {
  Http1RangeClient,
  Http1RangeClientOptions,
  Http1Response,
  LentChunkBody,
} from './http1-range-client';
export { createHttp1RangeClient } from './http1-range-client';
export type { MeasuredBandwidth, ModelCache, ModelLoader, ModelLoaderOptions } from './loader';
export { createModelLoader } from './loader';
export type {
  ModelDownloadOptions,
  ModelDownloadProgress,
  ModelDownloadResult,
  ModelObjectInfo,
  ModelSource,
} from './model-source';
export type { ByteRange, PartDownloadOptions, PartDownloadResult, RangeReader } from './part-download';
export {
  discardPartialDownload,
  downloadInParts,
  isObjectChangedError,
  partStatePath,
} from './part-download';
export type { ModelPlanSettings } from './plan';
export { planModelLoad } from './plan';
export { sha256File } from './sha256-file';
