export type { CacheScoreOptions, ImageFit } from './cache-score-selector';
export { createCacheScoreSelector, imageFit, modelBytesFor, rankImages } from './cache-score-selector';
export type { ImageCatalog } from './catalog';
export { createImageCatalog, imageHasModel, imageModelSize } from './catalog';
export type { GpuFitOptions, GpuFitResult } from './gpu-fit';
export { gpuFit, gpuFits } from './gpu-fit';
export type { ModelLoadEstimateOptions } from './model-load-estimate';
export { estimateModelLoadMs } from './model-load-estimate';
