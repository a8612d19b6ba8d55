import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ComfyValidationError, InvalidArgumentError } from '../spec/errors';
import type { ApiWorkflow, ImageDescriptor } from '../spec/index';
import { analyzeWorkflow } from './analyze-workflow';
import { defineLoader } from './loader-registry';
import { capabilitiesFromObjectInfo, comboChoices, type ObjectInfo, preflight } from './preflight';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '__fixtures__');
const fluxDev = readFileSync(join(fixtures, 'flux-dev.json'), 'utf8');
const sd15 = readFileSync(join(fixtures, 'sd15-txt2img.json'), 'utf8');

const fluxImage: ImageDescriptor = {
  id: 'flux-image',
  nodeTypes: [
    'BasicGuider',
    'BasicScheduler',
    'CLIPTextEncode',
    'DualCLIPLoader',
    'EmptySD3LatentImage',
    'FluxGuidance',
    'KSamplerSelect',
    'RandomNoise',
    'SamplerCustomAdvanced',
    'SaveImage',
    'UNETLoader',
    'VAEDecode',
    'VAELoader',
  ],
  models: {
    unet: ['flux1-dev.safetensors'],
    clip: ['t5xxl_fp16.safetensors', 'clip_l.safetensors'],
    vae: ['ae.safetensors'],
  },
};

describe('preflight with image capabilities', () => {
  it('is ok when the image has every node type and model (old folder names count)', () => {
    const result = preflight(fluxDev, fluxImage);
    expect(result).toEqual({ ok: true, missingNodeTypes: [], missingModels: [], nodeErrors: [] });
  });

  it('names missing node types as invalid_prompt, with the node ids', () => {
    const image = { ...fluxImage, nodeTypes: fluxImage.nodeTypes!.filter((type) => type !== 'FluxGuidance') };
    const result = preflight(fluxDev, image);
    expect(result.ok).toBe(false);
    expect(result.type).toBe('invalid_prompt');
    expect(result.missingNodeTypes).toEqual(['FluxGuidance']);
    expect(result.nodeErrors).toEqual([
      expect.objectContaining({
        nodeId: '26',
        classType: 'FluxGuidance',
        type: 'invalid_prompt',
        message: 'Cannot execute because node FluxGuidance does not exist.',
      }),
    ]);
    expect(result.message).toMatch(/lacks node type\(s\) FluxGuidance/);
  });

  it('names missing models as value_not_in_list in ComfyUI words', () => {
    const image = { ...fluxImage, models: { ...fluxImage.models, vae: [] } };
    const result = preflight(fluxDev, image);
    expect(result.type).toBe('prompt_outputs_failed_validation');
    expect(result.missingModels).toEqual([
      expect.objectContaining({ nodeId: '10', folder: 'vae', name: 'ae.safetensors' }),
    ]);
    expect(result.nodeErrors).toEqual([
      {
        nodeId: '10',
        classType: 'VAELoader',
        type: 'value_not_in_list',
        message: 'Value not in list',
        details: "vae_name: 'ae.safetensors' not in list (folder vae)",
        input: 'vae_name',
      },
    ]);
    // The result feeds ComfyUI's own error type directly.
    const error = new ComfyValidationError({
      message: result.message!,
      type: result.type!,
      nodeErrors: result.nodeErrors,
    });
    expect(error.nodeErrors[0]!.type).toBe('value_not_in_list');
  });

  it('compares names with either separator and checks guessed models in every folder', () => {
    const workflow: ApiWorkflow = {
      '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sdxl/base.safetensors' } },
      '2': { class_type: 'AcmeLoader', inputs: { weights: 'acme/w.bin' } },
    };
    const present = preflight(workflow, {
      models: { checkpoints: ['sdxl\\base.safetensors'], acme: ['acme/w.bin'] },
    });
    expect(present.ok).toBe(true);
    const absent = preflight(workflow, { models: { checkpoints: ['sdxl\\base.safetensors'] } });
    expect(absent.missingModels).toEqual([
      expect.objectContaining({ nodeId: '2', folder: null, guessed: true }),
    ]);
  });

  it('does not check what the capabilities leave out', () => {
    expect(preflight(fluxDev, {}).ok).toBe(true);
    expect(preflight(fluxDev, { nodeTypes: [] }).missingModels).toEqual([]);
    expect(preflight(fluxDev, { models: {} }).missingNodeTypes).toEqual([]);
    expect(preflight(fluxDev, { models: {} }).missingModels).toHaveLength(4);
  });

  it('accepts an analysis or bare requirements instead of a workflow', () => {
    const analysis = analyzeWorkflow(JSON.parse(fluxDev));
    expect(preflight(analysis, { models: { ...fluxImage.models, vae: [] } }).missingModels).toHaveLength(1);
    const bare = preflight(
      { models: [{ folder: 'loras', name: 'x.safetensors' }], nodeTypes: ['Missing'] },
      { nodeTypes: [], models: {} },
    );
    expect(bare.missingNodeTypes).toEqual(['Missing']);
    expect(bare.nodeErrors.map((error) => error.type)).toEqual(['invalid_prompt', 'value_not_in_list']);
  });

  it('refuses capabilities of the wrong shape with InvalidArgumentError', () => {
    expect(() => preflight(fluxDev, null as never)).toThrow(InvalidArgumentError);
    expect(() => preflight(fluxDev, { models: { vae: 'ae.safetensors' } } as never)).toThrow(
      /capabilities.models.vae/,
    );
  });
});

function objectInfoFor(ckptChoices: unknown, extra: ObjectInfo = {}): ObjectInfo {
  return {
    CheckpointLoaderSimple: {
      input: { required: { ckpt_name: ckptChoices } },
      output: ['MODEL', 'CLIP', 'VAE'],
      output_node: false,
      category: 'loaders',
    },
    KSampler: { input: { required: { seed: ['INT', { default: 0 }] } }, output: ['LATENT'] },
    CLIPTextEncode: { input: { required: { text: ['STRING', {}] } }, output: ['CONDITIONING'] },
    EmptyLatentImage: { input: { required: { width: ['INT', {}] } }, output: ['LATENT'] },
    VAEDecode: { input: { required: {} }, output: ['IMAGE'] },
    SaveImage: { input: { required: {} }, output: [], output_node: true },
    ...extra,
  };
}

describe('preflight with a ComfyUI /object_info response', () => {
  it('checks the model against the list the node input offers (old form)', () => {
    expect(preflight(sd15, objectInfoFor([['v1-5-pruned-emaonly.safetensors', 'other.ckpt']])).ok).toBe(true);
    const missing = preflight(sd15, objectInfoFor([['other.ckpt']]));
    expect(missing.nodeErrors).toEqual([
      expect.objectContaining({ nodeId: '4', type: 'value_not_in_list', input: 'ckpt_name' }),
    ]);
  });

  it('reads the v3 COMBO form too', () => {
    const info = objectInfoFor([
      'COMBO',
      { options: ['v1-5-pruned-emaonly.safetensors'], multiselect: false },
    ]);
    expect(preflight(sd15, info).ok).toBe(true);
  });

  it('finds node types the server does not have', () => {
    const info = objectInfoFor([['v1-5-pruned-emaonly.safetensors']]);
    const { SaveImage: _removed, ...withoutSave } = info;
    const result = preflight(sd15, withoutSave);
    expect(result.missingNodeTypes).toEqual(['SaveImage']);
    expect(result.type).toBe('invalid_prompt');
  });

  it('turns /object_info into folders through the loader registry', () => {
    const info = objectInfoFor([['a.safetensors', 'b.safetensors']], {
      DualCLIPLoader: {
        input: {
          required: {
            clip_name1: [['t5.safetensors']],
            clip_name2: [['clip_l.safetensors']],
            type: [['flux']],
          },
        },
        output: ['CLIP'],
      },
    });
    const capabilities = capabilitiesFromObjectInfo(info);
    expect(capabilities.models).toEqual({
      checkpoints: ['a.safetensors', 'b.safetensors'],
      text_encoders: ['t5.safetensors', 'clip_l.safetensors'],
    });
    expect(capabilities.nodeTypes).toContain('DualCLIPLoader');
  });

  it('reads folders of custom loaders given in options', () => {
    const info = objectInfoFor([['a.safetensors']], {
      AcmeLoader: { input: { required: { weights: [['acme/w.bin']] } }, output: ['MODEL'] },
    });
    const requirements = { models: [{ folder: 'acme', name: 'acme/w.bin' }], nodeTypes: ['AcmeLoader'] };
    expect(preflight(requirements, info).missingModels).toHaveLength(1);
    const loaders = [
      defineLoader({ classType: 'AcmeLoader', models: [{ input: 'weights', folder: 'acme' }] }),
    ];
    expect(preflight(requirements, info, { loaders }).ok).toBe(true);
  });

  it('reads list choices only from list inputs', () => {
    expect(comboChoices(['INT', { default: 1 }])).toBeUndefined();
    expect(comboChoices([['a', 1, 'b']])).toEqual(['a', 'b']);
    expect(comboChoices('nope')).toBeUndefined();
  });
});
