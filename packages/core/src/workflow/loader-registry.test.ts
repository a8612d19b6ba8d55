import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../spec/errors';
import { DEFAULT_LOADERS } from './default-loaders';
import {
  compileLoader,
  createLoaderRegistry,
  defineLoader,
  findModelRule,
  getDefaultLoaderRegistry,
} from './loader-registry';

describe('the built-in loader registry', () => {
  it('covers every core loader of contracts/comfyui.md with its folder', () => {
    const expected: [string, string, string][] = [
      ['CheckpointLoaderSimple', 'ckpt_name', 'checkpoints'],
      ['LoraLoader', 'lora_name', 'loras'],
      ['VAELoader', 'vae_name', 'vae'],
      ['CLIPLoader', 'clip_name', 'text_encoders'],
      ['DualCLIPLoader', 'clip_name1', 'text_encoders'],
      ['DualCLIPLoader', 'clip_name2', 'text_encoders'],
      ['UNETLoader', 'unet_name', 'diffusion_models'],
      ['ControlNetLoader', 'control_net_name', 'controlnet'],
      ['UpscaleModelLoader', 'model_name', 'upscale_models'],
      ['CLIPVisionLoader', 'clip_name', 'clip_vision'],
      ['StyleModelLoader', 'style_model_name', 'style_models'],
      ['GLIGENLoader', 'gligen_name', 'gligen'],
      ['HypernetworkLoader', 'hypernetwork_name', 'hypernetworks'],
      ['unCLIPCheckpointLoader', 'ckpt_name', 'checkpoints'],
      ['ImageOnlyCheckpointLoader', 'ckpt_name', 'checkpoints'],
      ['LoraLoaderModelOnly', 'lora_name', 'loras'],
      ['PhotoMakerLoader', 'photomaker_model_name', 'photomaker'],
    ];
    const registry = getDefaultLoaderRegistry();
    for (const [classType, input, folder] of expected) {
      const definition = registry.get(classType);
      expect(definition, classType).toBeDefined();
      expect(findModelRule(compileLoader(definition!), input)?.folder, `${classType}.${input}`).toBe(folder);
    }
  });

  it('covers the common custom packs', () => {
    const registry = getDefaultLoaderRegistry();
    for (const classType of [
      'UnetLoaderGGUF',
      'DualCLIPLoaderGGUF',
      'IPAdapterModelLoader',
      'ADE_LoadAnimateDiffModel',
      'ACN_ControlNetLoaderAdvanced',
      'InstantIDModelLoader',
      'PulidModelLoader',
      'PulidFluxModelLoader',
      'LoadFluxIPAdapter',
      'WanVideoModelLoader',
      'HyVideoModelLoader',
      'VHS_LoadVideo',
      'SAMLoader',
      'UltralyticsDetectorProvider',
      'Efficient Loader',
      'ttN pipeLoader_v2',
      'SUPIR_model_loader_v2',
      'BrushNetLoader',
      'ReActorFaceSwap',
      'DiffusionModelLoaderKJ',
    ]) {
      expect(registry.has(classType), classType).toBe(true);
    }
  });

  it('has only entries that defineLoader accepts, each naming where it was confirmed', () => {
    const seen = new Set<string>();
    for (const definition of DEFAULT_LOADERS) {
      expect(() => defineLoader(definition)).not.toThrow();
      expect(definition.source, definition.classType).toMatch(/\S+\/\S+ /);
      expect(seen.has(definition.classType), `duplicate ${definition.classType}`).toBe(false);
      seen.add(definition.classType);
    }
  });
});

describe('defineLoader', () => {
  it('returns a frozen, checked definition', () => {
    const definition = defineLoader({
      classType: 'MyLoader',
      models: [{ input: /^weights_\d$/, folder: 'mine', none: ['Off'] }],
      inputFiles: ['photo'],
      outputNode: false,
    });
    expect(Object.isFrozen(definition)).toBe(true);
    expect(findModelRule(compileLoader(definition), 'weights_3')).toMatchObject({
      folder: 'mine',
      none: ['Off'],
    });
    expect(findModelRule(compileLoader(definition), 'weights_x')).toBeUndefined();
  });

  it.each([
    [{ classType: '' }, 'classType'],
    [{ classType: 'X', models: [{ input: '', folder: 'f' }] }, 'models[0].input'],
    [{ classType: 'X', models: [{ input: 'a', folder: '' }] }, 'models[0].folder'],
    [{ classType: 'X', models: [{ input: 'a', folder: 'f', none: 'None' }] }, 'models[0].none'],
    [{ classType: 'X', inputFiles: [3] }, 'inputFiles[0]'],
    [{ classType: 'X', outputNode: 'yes' }, 'outputNode'],
  ])('refuses %j naming %s', (definition, argument) => {
    let error: unknown;
    try {
      defineLoader(definition as never);
    } catch (caught) {
      error = caught;
    }
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect((error as InvalidArgumentError).argument).toBe(argument);
  });

  it('lets later definitions replace earlier ones in a registry', () => {
    const registry = createLoaderRegistry([
      { classType: 'VAELoader', models: [{ input: 'vae_name', folder: 'first' }] },
      { classType: 'VAELoader', models: [{ input: 'vae_name', folder: 'second' }] },
    ]);
    expect(registry.get('VAELoader')?.models?.[0]?.folder).toBe('second');
    expect(registry.has('CheckpointLoaderSimple')).toBe(true);
  });
});
