import type { WorkflowFamily } from './detect-family';

/** What the GPU memory estimate looks at. */
export interface VramSignals {
  family: WorkflowFamily;
  /** Models as `folder` (or null) and lower-cased name. */
  models: readonly { folder: string | null; name: string }[];
  width?: number;
  height?: number;
  batch?: number;
  frames?: number;
}

/** Billions of parameters of the main diffusion model when its name does not say. */
const DEFAULT_PARAMETERS_B: Record<WorkflowFamily, number> = {
  sd15: 0.86,
  sdxl: 2.57,
  sd3: 2.0,
  flux: 11.9,
  video: 14,
  unknown: 2.0,
};

/** GB of activations per megapixel of latent image (per frame for video), at batch 1. */
const ACTIVATION_GB_PER_MEGAPIXEL: Record<WorkflowFamily, number> = {
  sd15: 1.2,
  sdxl: 1.0,
  sd3: 1.2,
  flux: 1.6,
  video: 0.25,
  unknown: 1.2,
};

const CONTROLNET_GB: Record<WorkflowFamily, number> = {
  sd15: 0.7,
  sdxl: 2.5,
  sd3: 2.2,
  flux: 3.3,
  video: 1.4,
  unknown: 1.4,
};

/** CUDA context, ComfyUI's reserve and fragmentation. */
const OVERHEAD_GB = 0.8;

/** Bytes per parameter the file name says (fp8, bf16, GGUF quantisation), or undefined. */
export function bytesPerParameter(name: string): number | undefined {
  const quant = /(?:^|[^a-z0-9])(?:i?q)([2-8])(?:_[a-z0-9]+)*(?:[^a-z0-9]|$)/.exec(name);
  if (quant !== undefined && quant !== null && name.endsWith('.gguf')) {
    const bits = Number(quant[1]);
    return ({ 2: 0.35, 3: 0.45, 4: 0.57, 5: 0.69, 6: 0.83, 7: 0.95, 8: 1.07 } as Record<number, number>)[
      bits
    ];
  }
  if (name.endsWith('.gguf')) return 0.57;
  if (/nf4|int4/.test(name)) return 0.55;
  if (/fp8|e4m3|e5m2|int8/.test(name)) return 1;
  if (/fp32|f32/.test(name)) return 4;
  if (/fp16|bf16|f16/.test(name)) return 2;
  return undefined;
}

/** Billions of parameters the file name says (`14B`, `1.3b`), or undefined. */
export function parametersFromName(name: string): number | undefined {
  const match = /(?:^|[^a-z0-9.])(\d{1,3}(?:\.\d)?)b(?![a-z0-9])/.exec(name);
  if (match === null) return undefined;
  const value = Number(match[1]);
  return value > 0 && value <= 200 ? value : undefined;
}

const MAIN_FOLDERS = new Set(['diffusion_models', 'checkpoints', 'unet']);

/** Billions of parameters of a main model whose name gives no count: by what the name says, then the family. */
function defaultParameters(name: string, folder: string, family: WorkflowFamily): number {
  if (/flux/.test(name)) return 11.9;
  if (/sd3|stable[-_]?diffusion[-_]?3/.test(name)) return /large/.test(name) ? 8.1 : 2.0;
  if (/sd_?xl|xl(?=[_\-.v0-9]|$)|pony|illustrious/.test(name)) return 2.57;
  if (/hunyuan/.test(name)) return 13;
  if (/ltx/.test(name)) return 2;
  if (/mochi/.test(name)) return 10;
  if (/svd/.test(name)) return 1.5;
  if (/wan/.test(name)) return 14;
  // Video workflows that load a full checkpoint (AnimateDiff, SVD) run an SD 1.5-sized UNet.
  if (family === 'video' && folder === 'checkpoints') return 0.86;
  return DEFAULT_PARAMETERS_B[family];
}

function textEncoderGb(name: string): number {
  const bytes = bytesPerParameter(name) ?? 2;
  if (/umt5/.test(name)) return 5.7 * bytes;
  if (/t5/.test(name)) return 4.7 * bytes;
  if (/llama|llava|qwen|gemma|mistral/.test(name)) return (parametersFromName(name) ?? 8) * bytes;
  if (/clip_g|clip-g|clipg/.test(name)) return 0.7 * bytes;
  return 0.12 * bytes;
}

/**
 * A rough estimate of the GPU memory (GB) a workflow needs at its peak: the main diffusion
 * model's weights (parameter count and precision from its file name, or the family's usual
 * size), activations for the latent size, batch and frames, the VAE decode, and extra models
 * (ControlNets, adapters, upscalers), or the largest text encoder when that is bigger, plus
 * a fixed overhead. It is meant for routing (will it fit a 24 GB card?), not as a promise.
 */
export function estimateVramGb(signals: VramSignals): number {
  const { family } = signals;
  const megapixels =
    signals.width !== undefined && signals.height !== undefined
      ? (signals.width * signals.height) / (1024 * 1024)
      : family === 'sd15'
        ? 0.25
        : family === 'video'
          ? 0.4
          : 1;
  const batch = Math.max(1, signals.batch ?? 1);
  // A video workflow that says no frame count and makes one image per batch item
  // (AnimateDiff's frames are its batch) is taken as the usual 49 frames.
  const frames = Math.max(1, signals.frames ?? (family === 'video' && batch === 1 ? 49 : 1));

  let mainWeightsGb = 0;
  let extrasGb = 0;
  let largestTextEncoderGb = 0;
  for (const model of signals.models) {
    const name = model.name;
    if (model.folder !== null && MAIN_FOLDERS.has(model.folder)) {
      const parameters = parametersFromName(name) ?? defaultParameters(name, model.folder, family);
      const weights = parameters * (bytesPerParameter(name) ?? 2);
      mainWeightsGb = Math.max(mainWeightsGb, weights);
      continue;
    }
    switch (model.folder) {
      case 'text_encoders':
      case 'clip':
        largestTextEncoderGb = Math.max(largestTextEncoderGb, textEncoderGb(name));
        break;
      case 'controlnet':
      case 'xlabs_controlnets':
        extrasGb += CONTROLNET_GB[family];
        break;
      case 'ipadapter':
      case 'instantid':
      case 'pulid':
      case 'xlabs_ipadapters':
        extrasGb += family === 'flux' ? 1.6 : 1.0;
        break;
      case 'clip_vision':
        extrasGb += 1.2;
        break;
      case 'animatediff_models':
        extrasGb += 0.9;
        break;
      case 'upscale_models':
        extrasGb += 0.3 + 0.6 * megapixels * batch;
        break;
      case 'loras':
      case 'xlabs_loras':
        extrasGb += 0.1;
        break;
      default:
        break;
    }
  }
  if (mainWeightsGb === 0 && family === 'unknown') {
    // No diffusion model at all (an upscale or image-processing workflow): only the extras.
    return Math.round((Math.max(extrasGb, largestTextEncoderGb) + OVERHEAD_GB) * 10) / 10;
  }
  if (mainWeightsGb === 0) mainWeightsGb = DEFAULT_PARAMETERS_B[family] * 2;

  const activationsGb = ACTIVATION_GB_PER_MEGAPIXEL[family] * megapixels * batch * frames;
  const vaeDecodeGb = family === 'video' ? 0.05 * megapixels * frames * batch + 1 : 0.9 * megapixels * batch;
  // ComfyUI keeps the diffusion model loaded through the VAE decode when it fits, and swaps
  // text encoders out before sampling, so the peak is the larger of the two phases.
  const samplingPeak = mainWeightsGb + extrasGb + Math.max(activationsGb, vaeDecodeGb);
  const peak = Math.max(samplingPeak, largestTextEncoderGb) + OVERHEAD_GB;
  return Math.round(peak * 10) / 10;
}
