import type { ApiWorkflow } from '../../spec/job';

/**
 * A text-to-image workflow in API format that a fresh fake ComfyUI server accepts (and
 * a stock ComfyUI with `sd_xl_base_1.0.safetensors` too): checkpoint, two prompts, an
 * empty latent, KSampler (node 3), VAE decode and SaveImage (node 9). A new copy each call.
 */
export function sampleWorkflow(
  options: {
    checkpoint?: string;
    prompt?: string;
    steps?: number;
    output?: 'SaveImage' | 'PreviewImage';
    /** The sampler node's `class_type` (a name the server lacks tests `invalid_prompt`). @default 'KSampler' */
    sampler?: string;
    /** Width and height of the latent. @default 1024 */
    size?: number;
  } = {},
): ApiWorkflow {
  return {
    '3': {
      class_type: options.sampler ?? 'KSampler',
      inputs: {
        model: ['4', 0],
        seed: 42,
        steps: options.steps ?? 20,
        cfg: 7,
        sampler_name: 'euler',
        scheduler: 'normal',
        positive: ['6', 0],
        negative: ['7', 0],
        latent_image: ['5', 0],
        denoise: 1,
      },
    },
    '4': {
      class_type: 'CheckpointLoaderSimple',
      inputs: { ckpt_name: options.checkpoint ?? 'sd_xl_base_1.0.safetensors' },
    },
    '5': {
      class_type: 'EmptyLatentImage',
      inputs: { width: options.size ?? 1024, height: options.size ?? 1024, batch_size: 1 },
    },
    '6': {
      class_type: 'CLIPTextEncode',
      inputs: { text: options.prompt ?? 'a lighthouse at dusk', clip: ['4', 1] },
    },
    '7': { class_type: 'CLIPTextEncode', inputs: { text: 'blurry, low quality', clip: ['4', 1] } },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    '9': {
      class_type: options.output ?? 'SaveImage',
      inputs:
        options.output === 'PreviewImage'
          ? { images: ['8', 0] }
          : { images: ['8', 0], filename_prefix: 'ComfyUI' },
    },
  };
}
