/** The model family a workflow runs, as far as its nodes and model names tell. */
export type WorkflowFamily = 'sd15' | 'sdxl' | 'sd3' | 'flux' | 'video' | 'unknown';

/** What family detection looks at. */
export interface FamilySignals {
  classTypes: ReadonlySet<string>;
  /** Lower-cased model file names (folder and name). */
  modelNames: readonly string[];
  /** `type` inputs of CLIP loaders (`flux`, `sd3`, `wan`, ...), lower-cased. */
  clipTypes: ReadonlySet<string>;
  width?: number;
  height?: number;
  frames?: number;
  /** Whether a full checkpoint loader is present (SD 1.5 and SDXL ship as checkpoints). */
  hasCheckpoint: boolean;
}

const VIDEO_CLASS_PREFIXES = ['WanVideo', 'HyVideo', 'ADE_', 'AnimateDiff', 'LTXV', 'Mochi'];
const VIDEO_CLASSES = new Set([
  'SVD_img2vid_Conditioning',
  'ImageOnlyCheckpointLoader',
  'VideoLinearCFGGuidance',
  'EmptyHunyuanLatentVideo',
  'EmptyLTXVLatentVideo',
  'EmptyMochiLatentVideo',
  'EmptyCosmosLatentVideo',
  'WanImageToVideo',
  'WanFunControlToVideo',
  'WanFunInpaintToVideo',
  'WanVaceToVideo',
  'HunyuanImageToVideo',
  'CosmosImageToVideoLatent',
  'SaveWEBM',
  'SaveVideo',
  'CreateVideo',
]);
const FLUX_CLASSES = new Set([
  'FluxGuidance',
  'ModelSamplingFlux',
  'XlabsSampler',
  'FluxLoraLoader',
  'LoadFluxControlNet',
  'LoadFluxIPAdapter',
  'ApplyPulidFlux',
  'PulidFluxModelLoader',
  'CLIPTextEncodeFlux',
]);
const SD3_CLASSES = new Set(['TripleCLIPLoader', 'TripleCLIPLoaderGGUF', 'CLIPTextEncodeSD3']);
const SDXL_CLASSES = new Set(['CLIPTextEncodeSDXL', 'CLIPTextEncodeSDXLRefiner', 'Eff. Loader SDXL']);

const VIDEO_NAME =
  /wan2|wan_2|wan-2|hunyuan_?video|hunyuan-video|ltx-?video|ltxv|mochi|cosmos|\bsvd|svd_|animatediff|mm_sd|mm-sd|motion_?module|animatelcm/;
const FLUX_NAME = /flux/;
const SD3_NAME = /sd3|sd_3|stable[-_]?diffusion[-_]?3/;
const SDXL_NAME = /sd_?xl|xl(?=[_\-.v0-9]|$)|pony|illustrious|playground-v2/;
const SD15_NAME =
  /sd15|sd_15|sd-?1[._-]5|v1-5|v1_5|sd1\.5|1\.5|dreamshaper_8|realisticvision|deliberate|revanimated|anything-?v[345]/;

/**
 * The family of a workflow: `video` when any video node or model is there (or more than one
 * frame is made), then `flux`, `sd3`, `sdxl`, `sd15` by node types and model names, then by
 * resolution for plain checkpoint workflows; `unknown` when nothing tells.
 */
export function detectFamily(signals: FamilySignals): WorkflowFamily {
  const { classTypes, modelNames, clipTypes } = signals;
  let video =
    (signals.frames ?? 0) > 1 ||
    clipTypes.has('wan') ||
    clipTypes.has('hunyuan_video') ||
    clipTypes.has('ltxv');
  let flux = clipTypes.has('flux');
  let sd3 = clipTypes.has('sd3');
  let sdxl = false;
  for (const classType of classTypes) {
    if (VIDEO_CLASSES.has(classType)) video = true;
    else if (FLUX_CLASSES.has(classType)) flux = true;
    else if (SD3_CLASSES.has(classType)) sd3 = true;
    else if (SDXL_CLASSES.has(classType)) sdxl = true;
    else {
      for (const prefix of VIDEO_CLASS_PREFIXES) {
        if (classType.startsWith(prefix)) {
          video = true;
          break;
        }
      }
    }
  }
  let sd15 = false;
  for (const name of modelNames) {
    if (VIDEO_NAME.test(name)) video = true;
    else if (FLUX_NAME.test(name)) flux = true;
    else if (SD3_NAME.test(name)) sd3 = true;
    else if (SDXL_NAME.test(name)) sdxl = true;
    else if (SD15_NAME.test(name)) sd15 = true;
  }
  if (video) return 'video';
  if (flux) return 'flux';
  if (sd3) return 'sd3';
  if (sdxl) return 'sdxl';
  if (sd15) return 'sd15';
  if (signals.hasCheckpoint && signals.width !== undefined && signals.height !== undefined) {
    return signals.width * signals.height >= 1024 * 1024 * 0.75 ? 'sdxl' : 'sd15';
  }
  return 'unknown';
}
