import { InvalidArgumentError } from '../spec/errors';
import type { ImageScore, ImageSelectorV1 } from '../spec/image-selector-v1';
import type { ModelRef, WorkflowRequirements } from '../spec/job';
import type { ImageDescriptor } from '../spec/provider-v1';
import { imageHasModel, imageModelSize } from './catalog';

/** Options of `createCacheScoreSelector` and `scoreImage`. */
export interface CacheScoreOptions {
  /** Sizes of models by `folder/name`, when neither the job nor any image records them. */
  sizes?: Record<string, number>;
  /** Size assumed for a model nobody records. @default 2 GiB */
  unknownModelBytes?: number;
}

/** A score with the verdict on whether the image can run the job at all. */
export interface ImageFit extends ImageScore {
  /** False when a node type is missing, or models are missing and the image cannot load them. */
  eligible: boolean;
  /** Why it is not eligible. */
  reason?: string;
}

const DEFAULT_UNKNOWN_MODEL_BYTES = 2 * 1024 ** 3;

function uniqueModels(models: ModelRef[]): ModelRef[] {
  const seen = new Set<string>();
  return models.filter((model) => {
    const key = `${model.folder ?? ''}/${model.name.replaceAll('\\', '/')}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * The size of a model for scoring: the job's own figure, else what the given images record
 * (the largest), else `options.sizes`, else `unknownModelBytes`. The same model weighs the
 * same for every image compared.
 */
export function modelBytesFor(
  model: ModelRef,
  images: ImageDescriptor[],
  options: CacheScoreOptions = {},
): number {
  if (model.sizeBytes !== undefined) return model.sizeBytes;
  let largest: number | undefined;
  for (const image of images) {
    const size = imageModelSize(image, model);
    if (size !== undefined && (largest === undefined || size > largest)) largest = size;
  }
  return (
    largest ??
    options.sizes?.[`${model.folder ?? ''}/${model.name.replaceAll('\\', '/')}`] ??
    options.unknownModelBytes ??
    DEFAULT_UNKNOWN_MODEL_BYTES
  );
}

/**
 * How well one image fits a job: the share of the job's model bytes baked in (1 when the
 * job needs no models), the models and node types it lacks, the bytes still to load, and
 * whether it can run the job at all. Pure. `sizeImages` are the images whose recorded
 * sizes weigh the models (by default just this one).
 *
 * @example imageFit(requirements, provider.image ?? { id: provider.id, canLoadModels: true })
 */
export function imageFit(
  requirements: WorkflowRequirements,
  image: ImageDescriptor,
  options: CacheScoreOptions & { sizeImages?: ImageDescriptor[] } = {},
): ImageFit {
  const sizeImages = options.sizeImages ?? [image];
  let totalBytes = 0;
  let missingBytes = 0;
  const missingModels: string[] = [];
  for (const model of uniqueModels(requirements.models)) {
    const bytes = modelBytesFor(model, sizeImages, options);
    totalBytes += bytes;
    if (!imageHasModel(image, model)) {
      missingBytes += bytes;
      missingModels.push(`${model.folder ?? '?'}/${model.name}`);
    }
  }
  const known = image.nodeTypes === undefined ? undefined : new Set(image.nodeTypes);
  const missingNodeTypes =
    known === undefined ? [] : [...new Set(requirements.nodeTypes)].filter((type) => !known.has(type));
  let reason: string | undefined;
  if (missingNodeTypes.length > 0)
    reason = `image ${image.id} lacks node types ${missingNodeTypes.join(', ')}`;
  else if (missingModels.length > 0 && image.canLoadModels === false)
    reason = `image ${image.id} lacks models ${missingModels.join(', ')} and cannot load models`;
  const eligible = reason === undefined;
  const score = !eligible ? 0 : totalBytes === 0 ? 1 : (totalBytes - missingBytes) / totalBytes;
  return {
    imageId: image.id,
    score,
    missingModels,
    missingNodeTypes,
    missingBytes,
    eligible,
    ...(reason === undefined ? {} : { reason }),
  };
}

function compareOptional(a: number | undefined, b: number | undefined): number {
  if (a === b) return 0;
  if (a === undefined) return 1;
  if (b === undefined) return -1;
  return a - b;
}

/**
 * Scores every image for a job and sorts them best first: eligible images before the rest,
 * then by score (share of model bytes baked in), then shorter cold start, then smaller
 * image, then id. Pure.
 */
export function rankImages(
  requirements: WorkflowRequirements,
  images: ImageDescriptor[],
  options: CacheScoreOptions = {},
): ImageFit[] {
  const byId = new Map(images.map((image) => [image.id, image]));
  const fits = images.map((image) => imageFit(requirements, image, { ...options, sizeImages: images }));
  return fits.sort((a, b) => {
    if (a.eligible !== b.eligible) return a.eligible ? -1 : 1;
    if (a.score !== b.score) return b.score - a.score;
    const imageA = byId.get(a.imageId);
    const imageB = byId.get(b.imageId);
    return (
      compareOptional(imageA?.coldStartMs, imageB?.coldStartMs) ||
      compareOptional(imageA?.sizeGb, imageB?.sizeGb) ||
      (a.imageId < b.imageId ? -1 : a.imageId > b.imageId ? 1 : 0)
    );
  });
}

/**
 * An `ImageSelectorV1` that prefers images holding the job's models: score = share of the
 * job's model bytes already baked in; ties broken by cold start, then image size. Images
 * lacking a node type the job uses (or lacking models they cannot load) come last with
 * score 0. Pure: `select` does no I/O.
 *
 * @example
 * const [best] = createCacheScoreSelector().select(requirements, catalog.list());
 */
export function createCacheScoreSelector(options: CacheScoreOptions = {}): ImageSelectorV1 {
  if (options.unknownModelBytes !== undefined && !(options.unknownModelBytes >= 0)) {
    throw new InvalidArgumentError({
      argument: 'unknownModelBytes',
      message: `"unknownModelBytes" must be a number of bytes >= 0; got ${String(options.unknownModelBytes)}.`,
    });
  }
  return {
    specificationVersion: 'v1',
    select(requirements, images) {
      return rankImages(requirements, images, options).map(
        ({ eligible: _eligible, reason: _reason, ...score }) => score,
      );
    },
  };
}
