import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { UnsafeModelPathError } from '../spec/errors';
import type { ApiWorkflow, WorkflowRequirements } from '../spec/job';
import { analyzeWorkflow } from './analyze-workflow';
import { createLoaderRegistry, defineLoader } from './loader-registry';
import { parseWorkflow } from './parse-workflow';

const fixtureDirectory = join(dirname(fileURLToPath(import.meta.url)), '__fixtures__');
const fixtureNames = readdirSync(fixtureDirectory)
  .filter((file) => file.endsWith('.json') && !file.endsWith('.expected.json'))
  .map((file) => file.slice(0, -'.json'.length))
  .sort();

function loadFixture(name: string): ApiWorkflow {
  return parseWorkflow(readFileSync(join(fixtureDirectory, `${name}.json`), 'utf8'));
}

describe('analyzeWorkflow on the fixtures', () => {
  it('has at least 15 fixtures, each with an expected analysis', () => {
    expect(fixtureNames.length).toBeGreaterThanOrEqual(15);
    for (const name of fixtureNames) {
      expect(readdirSync(fixtureDirectory)).toContain(`${name}.expected.json`);
    }
  });

  it.each(fixtureNames)('%s matches its expected analysis', (name) => {
    const expected = JSON.parse(readFileSync(join(fixtureDirectory, `${name}.expected.json`), 'utf8'));
    const { vramGbEstimate, ...analysis } = analyzeWorkflow(loadFixture(name));
    const { vramGbEstimate: range, ...rest } = expected;
    expect(analysis).toEqual(rest);
    expect(vramGbEstimate).toBeGreaterThanOrEqual(range.min);
    expect(vramGbEstimate).toBeLessThanOrEqual(range.max);
  });

  it('is assignable to the spec WorkflowRequirements the dispatcher passes to providers', () => {
    const requirements: WorkflowRequirements = analyzeWorkflow(loadFixture('flux-dev'));
    expect(requirements.models.map((model) => `${model.folder}/${model.name}`)).toContain(
      'diffusion_models/flux1-dev.safetensors',
    );
  });

  it('orders VRAM estimates the way the hardware does', () => {
    const estimate = (name: string) => analyzeWorkflow(loadFixture(name)).vramGbEstimate;
    expect(estimate('sd15-txt2img')).toBeLessThan(estimate('sdxl-refiner'));
    expect(estimate('sdxl-refiner')).toBeLessThan(estimate('flux-dev'));
    expect(estimate('flux-gguf')).toBeLessThan(estimate('flux-dev'));
    expect(estimate('upscale-model')).toBeLessThan(estimate('sd15-txt2img'));
  });
});

function minimal(inputs: Record<string, unknown>, classType = 'CheckpointLoaderSimple'): ApiWorkflow {
  return {
    '1': { class_type: classType, inputs },
    '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'x' } },
  };
}

describe('analyzeWorkflow', () => {
  it('refuses unsafe model names with UnsafeModelPathError', () => {
    for (const name of [
      '../../etc/passwd.safetensors',
      '/abs/model.ckpt',
      'C:\\models\\x.safetensors',
      'a\u0000b.pt',
    ]) {
      const error = (() => {
        try {
          analyzeWorkflow(minimal({ ckpt_name: name }));
        } catch (caught) {
          return caught;
        }
        return undefined;
      })();
      expect(UnsafeModelPathError.isInstance(error)).toBe(true);
      expect((error as UnsafeModelPathError).modelName).toBe(name);
    }
  });

  it('refuses unsafe guessed names and unsafe input files too', () => {
    expect(() => analyzeWorkflow(minimal({ weights: '../x.safetensors' }, 'SomeCustomLoader'))).toThrow(
      /refused because it contains a '\.\.' path segment/,
    );
    expect(() => analyzeWorkflow(minimal({ image: '../../secret.png' }, 'LoadImage'))).toThrow(
      UnsafeModelPathError,
    );
  });

  it('keeps subfolders and understands Windows separators', () => {
    const { models } = analyzeWorkflow(minimal({ ckpt_name: 'sdxl\\base\\v1.safetensors' }));
    expect(models[0]).toMatchObject({
      name: 'sdxl/base/v1.safetensors',
      value: 'sdxl\\base\\v1.safetensors',
    });
  });

  it('follows a value through a chain of primitive and constant nodes', () => {
    const workflow: ApiWorkflow = {
      '1': { class_type: 'PrimitiveString', inputs: { value: 'chain/model.safetensors' } },
      '2': { class_type: 'StringConstant', inputs: { string: ['1', 0] } },
      '3': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: ['2', 0] } },
      '4': { class_type: 'SaveImage', inputs: { images: ['3', 0] } },
    };
    const { models } = analyzeWorkflow(workflow);
    expect(models).toEqual([
      {
        nodeId: '3',
        classType: 'CheckpointLoaderSimple',
        input: 'ckpt_name',
        folder: 'checkpoints',
        name: 'chain/model.safetensors',
        value: 'chain/model.safetensors',
        guessed: false,
      },
    ]);
  });

  it('does not take a loader output for a model name', () => {
    const workflow: ApiWorkflow = {
      '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'a.safetensors' } },
      '2': { class_type: 'MysteryNode', inputs: { model: ['1', 0] } },
    };
    expect(analyzeWorkflow(workflow).models.map((model) => model.nodeId)).toEqual(['1']);
  });

  it('skips the "no model" values of an input', () => {
    const workflow = minimal(
      { ckpt_name: 'x.safetensors', vae_name: 'Baked VAE', lora_name: 'None' },
      'Efficient Loader',
    );
    expect(analyzeWorkflow(workflow).models.map((model) => model.input)).toEqual(['ckpt_name']);
  });

  it('reports a model-looking value of an unknown node as guessed, for every model extension', () => {
    for (const extension of ['safetensors', 'ckpt', 'pt', 'pth', 'bin', 'gguf', 'sft', 'onnx']) {
      const { models } = analyzeWorkflow(minimal({ weights: `w.${extension}`, note: 'w.txt' }, 'Unknown'));
      expect(models).toEqual([
        expect.objectContaining({ input: 'weights', folder: null, guessed: true, name: `w.${extension}` }),
      ]);
    }
  });

  it('uses loaders added with defineLoader, and they replace built-in entries', () => {
    const custom = defineLoader({ classType: 'AcmeLoader', models: [{ input: 'weights', folder: 'acme' }] });
    const override = defineLoader({
      classType: 'CheckpointLoaderSimple',
      models: [{ input: 'ckpt_name', folder: 'my_checkpoints' }],
    });
    const workflow: ApiWorkflow = {
      '1': { class_type: 'AcmeLoader', inputs: { weights: 'a.bin' } },
      '2': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'b.safetensors' } },
    };
    const withList = analyzeWorkflow(workflow, { loaders: [custom, override] });
    expect(withList.models.map((model) => [model.folder, model.guessed])).toEqual([
      ['acme', false],
      ['my_checkpoints', false],
    ]);
    const withRegistry = analyzeWorkflow(workflow, { loaders: createLoaderRegistry([custom]) });
    expect(withRegistry.models.map((model) => model.folder)).toEqual(['acme', 'checkpoints']);
    const bare = analyzeWorkflow(workflow, {
      loaders: createLoaderRegistry([custom], { includeDefaults: false }),
    });
    expect(bare.models.map((model) => [model.folder, model.guessed])).toEqual([
      ['acme', false],
      [null, true],
    ]);
  });

  it('matches numbered inputs by pattern', () => {
    const inputs = Object.fromEntries(
      Array.from({ length: 12 }, (_, index) => [`lora_name_${index + 1}`, `l${index}.safetensors`]),
    );
    const { models } = analyzeWorkflow(minimal(inputs, 'LoRA Stacker'));
    expect(models).toHaveLength(12);
    expect(new Set(models.map((model) => model.folder))).toEqual(new Set(['loras']));
  });

  it('falls back to the nodes nothing consumes when no output node type is known', () => {
    const workflow: ApiWorkflow = {
      '1': { class_type: 'MakeThing', inputs: {} },
      '2': { class_type: 'UseThing', inputs: { thing: ['1', 0] } },
      '3': { class_type: 'AlsoUse', inputs: { thing: ['1', 0] } },
    };
    expect(analyzeWorkflow(workflow).outputNodes).toEqual(['2', '3']);
  });

  it('parses input that is not yet a workflow object', () => {
    const text = JSON.stringify(minimal({ ckpt_name: 'x.safetensors' }));
    expect(analyzeWorkflow(text as unknown as ApiWorkflow).models).toHaveLength(1);
  });

  it('does not change the workflow it reads', () => {
    const workflow = loadFixture('efficiency-nodes');
    const before = structuredClone(workflow);
    analyzeWorkflow(workflow);
    expect(workflow).toEqual(before);
  });
});
