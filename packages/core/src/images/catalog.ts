import { InvalidArgumentError } from '../spec/errors';
import type { ModelRef } from '../spec/job';
import type { ImageDescriptor } from '../spec/provider-v1';

/** The worker images a host knows about: which models and node types each holds, its size and cold start. */
export interface ImageCatalog {
  get(id: string): ImageDescriptor | undefined;
  /** Every image, in the order they were added. */
  list(): ImageDescriptor[];
  /** Adds an image, or replaces the one with the same id (the descriptor is copied). */
  set(image: ImageDescriptor): void;
  delete(id: string): boolean;
  /** The size of a model (`folder/name`) as any image records it; the largest when they differ. */
  modelSize(key: string): number | undefined;
  /** Ids of the images that hold a model baked in. */
  imagesWithModel(model: ModelRef): string[];
}

/** `folder/name` with Windows separators turned into `/`. */
function normalizeKey(folder: string | null, name: string): string {
  return `${folder ?? ''}/${name.replaceAll('\\', '/')}`;
}

/** Whether an image holds a model; a model with no folder matches its name in any folder. */
export function imageHasModel(image: ImageDescriptor, model: ModelRef): boolean {
  const name = model.name.replaceAll('\\', '/');
  const models = image.models ?? {};
  if (model.folder !== null) {
    return (models[model.folder] ?? []).some((candidate) => candidate.replaceAll('\\', '/') === name);
  }
  return Object.values(models).some((names) =>
    names.some((candidate) => candidate.replaceAll('\\', '/') === name),
  );
}

/** The size an image records for a model, by `folder/name` (or by name in any folder when the folder is unknown). */
export function imageModelSize(image: ImageDescriptor, model: ModelRef): number | undefined {
  const sizes = image.modelSizes;
  if (sizes === undefined) return undefined;
  if (model.folder !== null)
    return sizes[normalizeKey(model.folder, model.name)] ?? sizes[`${model.folder}/${model.name}`];
  const suffix = `/${model.name.replaceAll('\\', '/')}`;
  for (const [key, size] of Object.entries(sizes))
    if (key.replaceAll('\\', '/').endsWith(suffix)) return size;
  return undefined;
}

function validateImage(image: ImageDescriptor, index: number): void {
  if (image === null || typeof image !== 'object' || typeof image.id !== 'string' || image.id === '') {
    throw new InvalidArgumentError({
      argument: `images[${index}].id`,
      message: `Every image needs a non-empty string id; images[${index}] has none.`,
    });
  }
  for (const field of ['sizeGb', 'coldStartMs'] as const) {
    const value = image[field];
    if (value !== undefined && !(typeof value === 'number' && value >= 0)) {
      throw new InvalidArgumentError({
        argument: `images[${index}].${field}`,
        message: `"${field}" of image ${image.id} must be a number >= 0; got ${String(value)}.`,
      });
    }
  }
}

function copyImage(image: ImageDescriptor): ImageDescriptor {
  return {
    ...image,
    ...(image.models === undefined
      ? {}
      : {
          models: Object.fromEntries(
            Object.entries(image.models).map(([folder, names]) => [folder, [...names]]),
          ),
        }),
    ...(image.modelSizes === undefined ? {} : { modelSizes: { ...image.modelSizes } }),
    ...(image.nodeTypes === undefined ? {} : { nodeTypes: [...image.nodeTypes] }),
  };
}

/**
 * A catalog of worker images, for image selection and routing.
 *
 * @example
 * const catalog = createImageCatalog([
 *   { id: 'sdxl-baked', models: { checkpoints: ['sd_xl_base_1.0.safetensors'] },
 *     modelSizes: { 'checkpoints/sd_xl_base_1.0.safetensors': 6_938_078_334 }, sizeGb: 18, coldStartMs: 25_000 },
 *   { id: 'slim', canLoadModels: true, sizeGb: 9, coldStartMs: 12_000 },
 * ]);
 */
export function createImageCatalog(images: ImageDescriptor[] = []): ImageCatalog {
  if (!Array.isArray(images)) {
    throw new InvalidArgumentError({
      argument: 'images',
      message: '"images" must be an array of ImageDescriptor.',
    });
  }
  const byId = new Map<string, ImageDescriptor>();
  images.forEach((image, index) => {
    validateImage(image, index);
    byId.set(image.id, copyImage(image));
  });
  return {
    get: (id) => byId.get(id),
    list: () => [...byId.values()],
    set(image) {
      validateImage(image, byId.size);
      byId.set(image.id, copyImage(image));
    },
    delete: (id) => byId.delete(id),
    modelSize(key) {
      let largest: number | undefined;
      for (const image of byId.values()) {
        const size = image.modelSizes?.[key];
        if (size !== undefined && (largest === undefined || size > largest)) largest = size;
      }
      return largest;
    },
    imagesWithModel: (model) =>
      [...byId.values()].filter((image) => imageHasModel(image, model)).map((image) => image.id),
  };
}
