import type { WorkflowRequirements } from '../spec/job';
import type { ImageDescriptor } from '../spec/provider-v1';
import { type CacheScoreOptions, imageFit } from './cache-score-selector';

/** Options of `estimateModelLoadMs`. */
export interface ModelLoadEstimateOptions extends CacheScoreOptions {
  /** Download throughput of a worker. Pass `loader.bandwidth().networkBytesPerSecond` to use measured figures. @default 100 MB/s */
  bytesPerSecond?: number;
  /** Fixed cost per missing model (request round trips, file creation), in ms. @default 200 */
  perModelMs?: number;
}

/**
 * Estimates how long a worker of this image would spend loading the job's models before
 * it can run: the bytes it lacks over the throughput, plus a fixed cost per missing model.
 * 0 when every model is baked in; `Infinity` when models are missing and the image cannot
 * load them (`canLoadModels: false`). A provider with no image descriptor is treated as
 * holding nothing and able to load everything. Pure.
 *
 * The router adds this to a provider's expected wait, so an image holding the models wins
 * over one that must download them in proportion to the download time.
 *
 * @example estimateModelLoadMs(requirements, provider.image, { bytesPerSecond: 250e6 })
 */
export function estimateModelLoadMs(
  requirements: WorkflowRequirements,
  image: ImageDescriptor | undefined,
  options: ModelLoadEstimateOptions = {},
): number {
  const fit = imageFit(requirements, image ?? { id: '(none)', canLoadModels: true }, options);
  if (fit.missingModels.length === 0) return 0;
  if (image?.canLoadModels === false) return Number.POSITIVE_INFINITY;
  const bytesPerSecond = options.bytesPerSecond ?? 100e6;
  const perModelMs = options.perModelMs ?? 200;
  return Math.ceil((fit.missingBytes / bytesPerSecond) * 1000 + perModelMs * fit.missingModels.length);
}
