import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../spec/errors';
import type { WorkflowRequirements } from '../spec/job';
import type { ImageDescriptor } from '../spec/provider-v1';
import { createCacheScoreSelector, imageFit } from './cache-score-selector';
import { createImageCatalog } from './catalog';
import { gpuFit, gpuFits } from './gpu-fit';
import { estimateModelLoadMs } from './model-load-estimate';

const GB = 1e9;
const requirements: WorkflowRequirements = {
  models: [
    { folder: 'checkpoints', name: 'sdxl.safetensors' },
    { folder: 'loras', name: 'style.safetensors' },
  ],
  nodeTypes: ['CheckpointLoaderSimple', 'LoraLoader', 'KSampler'],
  vramGbEstimate: 14,
};
const sizes = { 'checkpoints/sdxl.safetensors': 6 * GB, 'loras/style.safetensors': 2 * GB };

const full: ImageDescriptor = {
  id: 'full',
  models: { checkpoints: ['sdxl.safetensors'], loras: ['style.safetensors'] },
  modelSizes: sizes,
  nodeTypes: ['CheckpointLoaderSimple', 'LoraLoader', 'KSampler'],
  sizeGb: 30,
  coldStartMs: 40_000,
};
const checkpointOnly: ImageDescriptor = {
  id: 'checkpoint-only',
  models: { checkpoints: ['sdxl.safetensors'] },
  modelSizes: { 'checkpoints/sdxl.safetensors': 6 * GB },
  canLoadModels: true,
  sizeGb: 20,
  coldStartMs: 20_000,
};
const slim: ImageDescriptor = { id: 'slim', canLoadModels: true, sizeGb: 8, coldStartMs: 9_000 };
const noLora: ImageDescriptor = {
  ...full,
  id: 'no-lora-node',
  nodeTypes: ['CheckpointLoaderSimple', 'KSampler'],
};

describe('createCacheScoreSelector', () => {
  it('scores the share of model bytes baked in and sorts best first, node-type misfits last', () => {
    const scores = createCacheScoreSelector().select(requirements, [slim, noLora, checkpointOnly, full]);
    expect(scores.map((score) => score.imageId)).toEqual(['full', 'checkpoint-only', 'slim', 'no-lora-node']);
    expect(scores[0]).toEqual({
      imageId: 'full',
      score: 1,
      missingModels: [],
      missingNodeTypes: [],
      missingBytes: 0,
    });
    expect(scores[1]).toMatchObject({
      score: 0.75,
      missingModels: ['loras/style.safetensors'],
      missingBytes: 2 * GB,
    });
    expect(scores[2]).toMatchObject({ score: 0, missingBytes: 8 * GB });
    expect(scores[3]).toMatchObject({ score: 0, missingNodeTypes: ['LoraLoader'] });
  });

  it('breaks ties by cold start, then by image size', () => {
    const a = { id: 'a', canLoadModels: true, coldStartMs: 5000, sizeGb: 10 };
    const b = { id: 'b', canLoadModels: true, coldStartMs: 3000, sizeGb: 50 };
    const c = { id: 'c', canLoadModels: true, coldStartMs: 3000, sizeGb: 5 };
    const order = createCacheScoreSelector()
      .select(requirements, [a, b, c])
      .map((score) => score.imageId);
    expect(order).toEqual(['c', 'b', 'a']);
  });

  it('matches models given without a folder, and Windows separators', () => {
    const fit = imageFit(
      {
        models: [
          { folder: null, name: 'sdxl.safetensors' },
          { folder: 'loras', name: 'sub\\x.safetensors' },
        ],
        nodeTypes: [],
      },
      { id: 'i', models: { checkpoints: ['sdxl.safetensors'], loras: ['sub/x.safetensors'] } },
    );
    expect(fit.missingModels).toEqual([]);
    expect(fit.score).toBe(1);
  });

  it('marks an image that lacks models it cannot load as not eligible', () => {
    const fit = imageFit(requirements, { ...checkpointOnly, canLoadModels: false });
    expect(fit.eligible).toBe(false);
    expect(fit.score).toBe(0);
    expect(fit.reason).toContain('cannot load models');
  });

  it('validates its options', () => {
    expect(() => createCacheScoreSelector({ unknownModelBytes: -1 })).toThrow(InvalidArgumentError);
  });

  it('always gives scores in [0, 1] that never rise when a baked model is removed', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'd', 'e'), { minLength: 1 }),
        fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e')),
        fc.dictionary(fc.constantFrom('m/a', 'm/b', 'm/c', 'm/d', 'm/e'), fc.integer({ min: 1, max: 1e9 })),
        (needed, baked, modelSizes) => {
          const job = { models: needed.map((name) => ({ folder: 'm', name })), nodeTypes: [] };
          const image = { id: 'x', models: { m: baked }, modelSizes };
          const score = imageFit(job, image).score;
          expect(score).toBeGreaterThanOrEqual(0);
          expect(score).toBeLessThanOrEqual(1);
          if (baked.length > 0) {
            const fewer = imageFit(
              job,
              { ...image, models: { m: baked.slice(1) } },
              { sizeImages: [image] },
            ).score;
            expect(fewer).toBeLessThanOrEqual(score);
          }
        },
      ),
    );
  });
});

describe('createImageCatalog', () => {
  it('copies descriptors, finds images by model and records sizes', () => {
    const input = { ...checkpointOnly };
    const catalog = createImageCatalog([input, full, slim]);
    input.models = {};
    expect(catalog.get('checkpoint-only')?.models).toEqual({ checkpoints: ['sdxl.safetensors'] });
    expect(catalog.imagesWithModel({ folder: 'loras', name: 'style.safetensors' })).toEqual(['full']);
    expect(catalog.modelSize('checkpoints/sdxl.safetensors')).toBe(6 * GB);
    catalog.set({ id: 'slim', sizeGb: 7 });
    expect(catalog.list().map((image) => image.id)).toEqual(['checkpoint-only', 'full', 'slim']);
    expect(catalog.get('slim')?.sizeGb).toBe(7);
    expect(() => createImageCatalog([{ id: '' }])).toThrow(/images\[0\]/);
    expect(() => createImageCatalog([{ id: 'x', coldStartMs: -1 }])).toThrow(/coldStartMs/);
  });
});

describe('gpuFit', () => {
  it('compares the memory estimate with one GPU, headroom included', () => {
    expect(gpuFits(requirements, { type: 'RTX4090-24GB', vramGb: 24 })).toBe(true);
    expect(gpuFits(requirements, { type: 'A4000-16GB', vramGb: 16 }, { headroomGb: 3 })).toBe(false);
    const result = gpuFit(
      { ...requirements, vramGbEstimate: 30 },
      { type: 'RTX4090-24GB', vramGb: 24, count: 2 },
    );
    expect(result).toEqual({
      fits: false,
      neededGb: 30,
      availableGb: 24,
      reason: 'needs about 30 GB of GPU memory; RTX4090-24GB has 24 GB',
    });
    expect(gpuFits({ models: [], nodeTypes: [] }, { type: 'tiny', vramGb: 1 })).toBe(true);
  });
});

describe('estimateModelLoadMs', () => {
  it('is the missing bytes over the throughput plus a cost per missing model', () => {
    expect(estimateModelLoadMs(requirements, full)).toBe(0);
    expect(
      estimateModelLoadMs(requirements, checkpointOnly, { bytesPerSecond: 1e9, perModelMs: 100, sizes }),
    ).toBe(Math.ceil(((2 * GB) / 1e9) * 1000 + 100));
    expect(estimateModelLoadMs(requirements, { ...checkpointOnly, canLoadModels: false })).toBe(
      Number.POSITIVE_INFINITY,
    );
    // No descriptor: nothing baked, sizes unknown: 2 GiB per model by default.
    expect(estimateModelLoadMs(requirements, undefined, { bytesPerSecond: 2 ** 30, perModelMs: 0 })).toBe(
      4000,
    );
    expect(estimateModelLoadMs(requirements, slim, { bytesPerSecond: 1e9, perModelMs: 0, sizes })).toBe(8000);
  });
});
