/** One node type as `/object_info` describes it. */
export interface FakeNodeDefinition {
  input: {
    required?: Record<string, unknown>;
    optional?: Record<string, unknown>;
    hidden?: Record<string, unknown>;
  };
  output?: string[];
  output_name?: string[];
  output_is_list?: boolean[];
  output_node?: boolean;
  category?: string;
  name?: string;
  display_name?: string;
  description?: string;
  python_module?: string;
  [key: string]: unknown;
}

/** The models a fresh fake server has, by folder. */
export const DEFAULT_FAKE_MODELS: Readonly<Record<string, readonly string[]>> = {
  checkpoints: ['sd_xl_base_1.0.safetensors', 'v1-5-pruned-emaonly.safetensors'],
  loras: ['detail-tweaker.safetensors'],
  vae: ['sdxl_vae.safetensors'],
  text_encoders: [],
  diffusion_models: [],
  controlnet: [],
  upscale_models: [],
  clip_vision: [],
};

const SAMPLERS = ['euler', 'euler_ancestral', 'dpmpp_2m', 'dpmpp_2m_sde', 'ddim'];
const SCHEDULERS = ['normal', 'karras', 'exponential', 'sgm_uniform', 'simple'];

function node(
  category: string,
  input: FakeNodeDefinition['input'],
  output: string[],
  extra: Partial<FakeNodeDefinition> = {},
): FakeNodeDefinition {
  return {
    input,
    output,
    output_name: output,
    output_is_list: output.map(() => false),
    output_node: false,
    category,
    description: '',
    python_module: 'nodes',
    ...extra,
  };
}

/**
 * The node types a fresh fake server offers, in the shape of ComfyUI's `/object_info`,
 * with model choices filled in from `models` and image choices from `inputFiles`.
 */
export function defaultObjectInfo(
  models: Record<string, readonly string[]>,
  inputFiles: readonly string[],
): Record<string, FakeNodeDefinition> {
  const list = (folder: string) => [[...(models[folder] ?? [])]];
  const definitions: Record<string, FakeNodeDefinition> = {
    CheckpointLoaderSimple: node('loaders', { required: { ckpt_name: list('checkpoints') } }, [
      'MODEL',
      'CLIP',
      'VAE',
    ]),
    LoraLoader: node(
      'loaders',
      {
        required: {
          model: ['MODEL'],
          clip: ['CLIP'],
          lora_name: list('loras'),
          strength_model: ['FLOAT', { default: 1, min: -100, max: 100 }],
          strength_clip: ['FLOAT', { default: 1, min: -100, max: 100 }],
        },
      },
      ['MODEL', 'CLIP'],
    ),
    VAELoader: node('loaders', { required: { vae_name: list('vae') } }, ['VAE']),
    CLIPTextEncode: node(
      'conditioning',
      { required: { text: ['STRING', { multiline: true }], clip: ['CLIP'] } },
      ['CONDITIONING'],
    ),
    EmptyLatentImage: node(
      'latent',
      {
        required: {
          width: ['INT', { default: 512, min: 16, max: 16384 }],
          height: ['INT', { default: 512, min: 16, max: 16384 }],
          batch_size: ['INT', { default: 1, min: 1, max: 4096 }],
        },
      },
      ['LATENT'],
    ),
    KSampler: node(
      'sampling',
      {
        required: {
          model: ['MODEL'],
          seed: ['INT', { default: 0, min: 0, max: Number.MAX_SAFE_INTEGER }],
          steps: ['INT', { default: 20, min: 1, max: 10000 }],
          cfg: ['FLOAT', { default: 8, min: 0, max: 100 }],
          sampler_name: [SAMPLERS],
          scheduler: [SCHEDULERS],
          positive: ['CONDITIONING'],
          negative: ['CONDITIONING'],
          latent_image: ['LATENT'],
          denoise: ['FLOAT', { default: 1, min: 0, max: 1 }],
        },
      },
      ['LATENT'],
    ),
    VAEDecode: node('latent', { required: { samples: ['LATENT'], vae: ['VAE'] } }, ['IMAGE']),
    LoadImage: node('image', { required: { image: [[...inputFiles], { image_upload: true }] } }, [
      'IMAGE',
      'MASK',
    ]),
    SaveImage: node(
      'image',
      { required: { images: ['IMAGE'], filename_prefix: ['STRING', { default: 'ComfyUI' }] } },
      [],
      { output_node: true },
    ),
    PreviewImage: node('image', { required: { images: ['IMAGE'] } }, [], { output_node: true }),
    SaveAnimatedWEBP: node(
      'image/animation',
      {
        required: {
          images: ['IMAGE'],
          filename_prefix: ['STRING', { default: 'ComfyUI' }],
          fps: ['FLOAT', { default: 6, min: 0.01, max: 1000 }],
        },
      },
      [],
      { output_node: true },
    ),
    SaveAudio: node(
      'audio',
      { required: { audio: ['AUDIO'], filename_prefix: ['STRING', { default: 'audio/ComfyUI' }] } },
      [],
      { output_node: true },
    ),
    SaveVideo: node(
      'image/video',
      { required: { video: ['VIDEO'], filename_prefix: ['STRING', { default: 'video/ComfyUI' }] } },
      [],
      { output_node: true },
    ),
  };
  for (const [name, definition] of Object.entries(definitions)) {
    definition.name = name;
    definition.display_name = name;
  }
  return definitions;
}

/** A 1x1 PNG, the image the fake server produces when a job does not say otherwise. */
export const TINY_PNG: Uint8Array = Uint8Array.from(
  Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
    'base64',
  ),
);

/** The first bytes of a JPEG, enough for type sniffing in tests. */
export const TINY_JPEG: Uint8Array = Uint8Array.from([
  0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1,
]);
