import type { LoaderDefinition, ModelInputRule } from './loader-registry';

// Every entry names the file it was confirmed from. Core entries follow ComfyUI's own
// nodes (../shared/contracts/comfyui.md lists them); custom-pack entries were read from the
// pack's source (the `NODE_CLASS_MAPPINGS` name and the `INPUT_TYPES` input name and
// `folder_paths` folder). Folder names are ComfyUI's current ones: `text_encoders`
// (formerly `clip`) and `diffusion_models` (formerly `unet`); preflight treats the old
// names as the same folders.

function model(input: string | RegExp, folder: string, none?: readonly string[]): ModelInputRule {
  return none === undefined ? { input, folder } : { input, folder, none };
}

function loader(
  classType: string,
  source: string,
  parts: Omit<LoaderDefinition, 'classType' | 'source'>,
): LoaderDefinition {
  return Object.freeze({ classType, source, ...parts });
}

const CORE = 'comfyanonymous/ComfyUI nodes.py (contracts/comfyui.md)';
const CORE_EXTRAS = 'comfyanonymous/ComfyUI comfy_extras';

// VAELoader lists these decoder names beside the files of the vae folder; they are not files there.
const VIRTUAL_VAES = ['taesd', 'taesdxl', 'taesd3', 'taef1', 'pixel_space'] as const;

/** The built-in loader registry entries: ComfyUI's core loaders and the most used custom packs. */
export const DEFAULT_LOADERS: readonly LoaderDefinition[] = Object.freeze([
  // --- ComfyUI core -------------------------------------------------------------------
  loader('CheckpointLoaderSimple', CORE, { models: [model('ckpt_name', 'checkpoints')] }),
  loader('CheckpointLoader', CORE, {
    models: [model('config_name', 'configs'), model('ckpt_name', 'checkpoints')],
  }),
  loader('unCLIPCheckpointLoader', CORE, { models: [model('ckpt_name', 'checkpoints')] }),
  loader('ImageOnlyCheckpointLoader', CORE, { models: [model('ckpt_name', 'checkpoints')] }),
  loader('LoraLoader', CORE, { models: [model('lora_name', 'loras')] }),
  loader('LoraLoaderModelOnly', CORE, { models: [model('lora_name', 'loras')] }),
  loader('VAELoader', CORE, { models: [model('vae_name', 'vae', VIRTUAL_VAES)] }),
  loader('CLIPLoader', CORE, { models: [model('clip_name', 'text_encoders')] }),
  loader('DualCLIPLoader', CORE, { models: [model(/^clip_name[12]$/, 'text_encoders')] }),
  loader('TripleCLIPLoader', `${CORE_EXTRAS}/nodes_sd3.py`, {
    models: [model(/^clip_name[123]$/, 'text_encoders')],
  }),
  loader('QuadrupleCLIPLoader', `${CORE_EXTRAS}/nodes_hidream.py`, {
    models: [model(/^clip_name[1-4]$/, 'text_encoders')],
  }),
  loader('UNETLoader', CORE, { models: [model('unet_name', 'diffusion_models')] }),
  loader('ControlNetLoader', CORE, { models: [model('control_net_name', 'controlnet')] }),
  loader('DiffControlNetLoader', CORE, { models: [model('control_net_name', 'controlnet')] }),
  loader('UpscaleModelLoader', `${CORE_EXTRAS}/nodes_upscale_model.py (contracts/comfyui.md)`, {
    models: [model('model_name', 'upscale_models')],
  }),
  loader('CLIPVisionLoader', CORE, { models: [model('clip_name', 'clip_vision')] }),
  loader('StyleModelLoader', CORE, { models: [model('style_model_name', 'style_models')] }),
  loader('GLIGENLoader', CORE, { models: [model('gligen_name', 'gligen')] }),
  loader('HypernetworkLoader', `${CORE_EXTRAS}/nodes_hypernetwork.py (contracts/comfyui.md)`, {
    models: [model('hypernetwork_name', 'hypernetworks')],
  }),
  loader('PhotoMakerLoader', `${CORE_EXTRAS}/nodes_photomaker.py (contracts/comfyui.md)`, {
    models: [model('photomaker_model_name', 'photomaker')],
  }),
  loader('DiffusersLoader', CORE, { models: [model('model_path', 'diffusers')] }),
  loader('LoadImage', CORE, { inputFiles: ['image'] }),
  loader('LoadImageMask', CORE, { inputFiles: ['image'] }),
  loader('LoadAudio', `${CORE_EXTRAS}/nodes_audio.py`, { inputFiles: ['audio'] }),
  loader('SaveImage', CORE, { outputNode: true }),
  loader('PreviewImage', CORE, { outputNode: true }),
  loader('SaveLatent', CORE, { outputNode: true }),
  loader('SaveAnimatedWEBP', `${CORE_EXTRAS}/nodes_images.py`, { outputNode: true }),
  loader('SaveAnimatedPNG', `${CORE_EXTRAS}/nodes_images.py`, { outputNode: true }),
  loader('SaveWEBM', `${CORE_EXTRAS}/nodes_video.py`, { outputNode: true }),
  loader('SaveVideo', `${CORE_EXTRAS}/nodes_video.py`, { outputNode: true }),
  loader('SaveAudio', `${CORE_EXTRAS}/nodes_audio.py`, { outputNode: true }),
  loader('PreviewAudio', `${CORE_EXTRAS}/nodes_audio.py`, { outputNode: true }),

  // --- city96/ComfyUI-GGUF: nodes.py (unet_gguf = diffusion_models/unet, clip_gguf = text_encoders/clip)
  loader('UnetLoaderGGUF', 'city96/ComfyUI-GGUF nodes.py', {
    models: [model('unet_name', 'diffusion_models')],
  }),
  loader('UnetLoaderGGUFAdvanced', 'city96/ComfyUI-GGUF nodes.py', {
    models: [model('unet_name', 'diffusion_models')],
  }),
  loader('CLIPLoaderGGUF', 'city96/ComfyUI-GGUF nodes.py', { models: [model('clip_name', 'text_encoders')] }),
  loader('DualCLIPLoaderGGUF', 'city96/ComfyUI-GGUF nodes.py', {
    models: [model(/^clip_name[12]$/, 'text_encoders')],
  }),
  loader('TripleCLIPLoaderGGUF', 'city96/ComfyUI-GGUF nodes.py', {
    models: [model(/^clip_name[123]$/, 'text_encoders')],
  }),
  loader('QuadrupleCLIPLoaderGGUF', 'city96/ComfyUI-GGUF nodes.py', {
    models: [model(/^clip_name[1-4]$/, 'text_encoders')],
  }),

  // --- cubiq/ComfyUI_IPAdapter_plus: IPAdapterPlus.py. The IPAdapterUnifiedLoader* nodes pick
  // their files from a preset at run time, so no file name appears in the workflow.
  loader('IPAdapterModelLoader', 'cubiq/ComfyUI_IPAdapter_plus IPAdapterPlus.py', {
    models: [model('ipadapter_file', 'ipadapter')],
  }),

  // --- Kosinkadink/ComfyUI-AnimateDiff-Evolved: animatediff/utils_model.py (Folders),
  // nodes_gen1.py, nodes_gen2.py, nodes_extras.py, nodes.py (NODE_CLASS_MAPPINGS)
  loader('ADE_LoadAnimateDiffModel', 'Kosinkadink/ComfyUI-AnimateDiff-Evolved animatediff/nodes_gen2.py', {
    models: [model('model_name', 'animatediff_models')],
  }),
  loader('ADE_AnimateDiffLoaderGen1', 'Kosinkadink/ComfyUI-AnimateDiff-Evolved animatediff/nodes_gen1.py', {
    models: [model('model_name', 'animatediff_models')],
  }),
  loader('ADE_LoadAnimateLCMI2VModel', 'Kosinkadink/ComfyUI-AnimateDiff-Evolved animatediff/nodes_gen2.py', {
    models: [model('model_name', 'animatediff_models')],
  }),
  loader(
    'ADE_InjectI2VIntoAnimateDiffModel',
    'Kosinkadink/ComfyUI-AnimateDiff-Evolved animatediff/nodes_gen2.py',
    { models: [model('model_name', 'animatediff_models')] },
  ),
  loader('ADE_AnimateDiffLoRALoader', 'Kosinkadink/ComfyUI-AnimateDiff-Evolved animatediff/nodes.py', {
    models: [model('lora_name', 'animatediff_motion_lora')],
  }),
  loader(
    'CheckpointLoaderSimpleWithNoiseSelect',
    'Kosinkadink/ComfyUI-AnimateDiff-Evolved animatediff/nodes_extras.py',
    { models: [model('ckpt_name', 'checkpoints')] },
  ),

  // --- Kosinkadink/ComfyUI-Advanced-ControlNet: adv_control/nodes_main.py (v3 schema ids),
  // nodes_deprecated.py (the older ids), nodes_sparsectrl.py
  loader(
    'ACN_ControlNetLoaderAdvanced',
    'Kosinkadink/ComfyUI-Advanced-ControlNet adv_control/nodes_main.py',
    {
      models: [model('cnet', 'controlnet')],
    },
  ),
  loader(
    'ACN_DiffControlNetLoaderAdvanced',
    'Kosinkadink/ComfyUI-Advanced-ControlNet adv_control/nodes_main.py',
    { models: [model('cnet', 'controlnet')] },
  ),
  loader(
    'ACN_AnimaLLLiteLoaderAdvanced',
    'Kosinkadink/ComfyUI-Advanced-ControlNet adv_control/nodes_main.py',
    {
      models: [model('model_patch', 'model_patches')],
    },
  ),
  loader(
    'ControlNetLoaderAdvanced',
    'Kosinkadink/ComfyUI-Advanced-ControlNet adv_control/nodes_deprecated.py',
    {
      models: [model('control_net_name', 'controlnet')],
    },
  ),
  loader(
    'DiffControlNetLoaderAdvanced',
    'Kosinkadink/ComfyUI-Advanced-ControlNet adv_control/nodes_deprecated.py',
    { models: [model('control_net_name', 'controlnet')] },
  ),
  loader(
    'ACN_SparseCtrlLoaderAdvanced',
    'Kosinkadink/ComfyUI-Advanced-ControlNet adv_control/nodes_sparsectrl.py',
    {
      models: [model('sparsectrl_name', 'controlnet')],
    },
  ),

  // --- cubiq/ComfyUI_InstantID: InstantID.py
  loader('InstantIDModelLoader', 'cubiq/ComfyUI_InstantID InstantID.py', {
    models: [model('instantid_file', 'instantid')],
  }),

  // --- PuLID: cubiq/PuLID_ComfyUI pulid.py and balazik/ComfyUI-PuLID-Flux pulidflux.py
  loader('PulidModelLoader', 'cubiq/PuLID_ComfyUI pulid.py', { models: [model('pulid_file', 'pulid')] }),
  loader('PulidFluxModelLoader', 'balazik/ComfyUI-PuLID-Flux pulidflux.py', {
    models: [model('pulid_file', 'pulid')],
  }),

  // --- XLabs-AI/x-flux-comfyui: nodes.py (the IP-Adapter input really is spelled "ipadatper")
  loader('FluxLoraLoader', 'XLabs-AI/x-flux-comfyui nodes.py', {
    models: [model('lora_name', 'xlabs_loras')],
  }),
  loader('LoadFluxControlNet', 'XLabs-AI/x-flux-comfyui nodes.py', {
    models: [model('controlnet_path', 'xlabs_controlnets')],
  }),
  loader('LoadFluxIPAdapter', 'XLabs-AI/x-flux-comfyui nodes.py', {
    models: [model('ipadatper', 'xlabs_ipadapters'), model('clip_vision', 'clip_vision')],
  }),

  // --- kijai/ComfyUI-WanVideoWrapper: nodes_model_loading.py
  loader('WanVideoModelLoader', 'kijai/ComfyUI-WanVideoWrapper nodes_model_loading.py', {
    models: [model('model', 'diffusion_models')],
  }),
  loader('WanVideoVAELoader', 'kijai/ComfyUI-WanVideoWrapper nodes_model_loading.py', {
    models: [model('model_name', 'vae')],
  }),
  loader('WanVideoTinyVAELoader', 'kijai/ComfyUI-WanVideoWrapper nodes_model_loading.py', {
    models: [model('model_name', 'vae_approx')],
  }),
  loader('LoadWanVideoT5TextEncoder', 'kijai/ComfyUI-WanVideoWrapper nodes_model_loading.py', {
    models: [model('model_name', 'text_encoders')],
  }),
  loader('LoadWanVideoClipTextEncoder', 'kijai/ComfyUI-WanVideoWrapper nodes_model_loading.py', {
    models: [model('model_name', 'clip_vision')],
  }),
  loader('WanVideoLoraSelect', 'kijai/ComfyUI-WanVideoWrapper nodes_model_loading.py', {
    models: [model('lora', 'loras')],
  }),
  loader('WanVideoLoraSelectMulti', 'kijai/ComfyUI-WanVideoWrapper nodes_model_loading.py', {
    models: [model(/^lora_[0-4]$/, 'loras')],
  }),
  loader('WanVideoVACEModelSelect', 'kijai/ComfyUI-WanVideoWrapper nodes_model_loading.py', {
    models: [model('vace_model', 'diffusion_models')],
  }),
  loader('WanVideoExtraModelSelect', 'kijai/ComfyUI-WanVideoWrapper nodes_model_loading.py', {
    models: [model('extra_model', 'diffusion_models')],
  }),

  // --- kijai/ComfyUI-HunyuanVideoWrapper: nodes.py (DownloadAndLoadHyVideoTextEncoder takes
  // Hugging Face repo ids, not files, so it has no entry)
  loader('HyVideoModelLoader', 'kijai/ComfyUI-HunyuanVideoWrapper nodes.py', {
    models: [model('model', 'diffusion_models')],
  }),
  loader('HyVideoVAELoader', 'kijai/ComfyUI-HunyuanVideoWrapper nodes.py', {
    models: [model('model_name', 'vae')],
  }),
  loader('HyVideoLoraSelect', 'kijai/ComfyUI-HunyuanVideoWrapper nodes.py', {
    models: [model('lora', 'loras')],
  }),

  // --- Kosinkadink/ComfyUI-VideoHelperSuite: videohelpersuite/nodes.py (NODE_CLASS_MAPPINGS,
  // VideoCombine.OUTPUT_NODE) and load_video_nodes.py (LoadVideoUpload "video")
  loader('VHS_LoadVideo', 'Kosinkadink/ComfyUI-VideoHelperSuite videohelpersuite/load_video_nodes.py', {
    inputFiles: ['video'],
  }),
  loader('VHS_VideoCombine', 'Kosinkadink/ComfyUI-VideoHelperSuite videohelpersuite/nodes.py', {
    outputNode: true,
  }),

  // --- ltdrdata/ComfyUI-Impact-Pack: modules/impact/impact_pack.py (SAMLoader); the detector
  // provider lives in ltdrdata/ComfyUI-Impact-Subpack modules/subpack_nodes.py and names
  // files as "bbox/..." or "segm/..." inside the ultralytics folder
  loader('SAMLoader', 'ltdrdata/ComfyUI-Impact-Pack modules/impact/impact_pack.py', {
    models: [model('model_name', 'sams', ['ESAM'])],
  }),
  loader('UltralyticsDetectorProvider', 'ltdrdata/ComfyUI-Impact-Subpack modules/subpack_nodes.py', {
    models: [model('model_name', 'ultralytics')],
  }),

  // --- jags111/efficiency-nodes-comfyui: efficiency_nodes.py (TSC_EfficientLoader,
  // TSC_EfficientLoaderSDXL, TSC_LoRA_Stacker) and __init__.py (NODE_CLASS_MAPPINGS)
  loader('Efficient Loader', 'jags111/efficiency-nodes-comfyui efficiency_nodes.py', {
    models: [
      model('ckpt_name', 'checkpoints'),
      model('vae_name', 'vae', ['Baked VAE']),
      model('lora_name', 'loras'),
    ],
  }),
  loader('Eff. Loader SDXL', 'jags111/efficiency-nodes-comfyui efficiency_nodes.py', {
    models: [
      model('base_ckpt_name', 'checkpoints'),
      model('refiner_ckpt_name', 'checkpoints'),
      model('vae_name', 'vae', ['Baked VAE']),
    ],
  }),
  loader('LoRA Stacker', 'jags111/efficiency-nodes-comfyui efficiency_nodes.py', {
    models: [model(/^lora_name_\d+$/, 'loras')],
  }),

  // --- TinyTerra/ComfyUI_tinyterraNodes: ttNpy/tinyterraNodes.py (ttN_pipeLoader_v2 inputs,
  // ttN_pipeKSampler_v2 inputs and OUTPUT_NODE). The mapping itself was not in the stored
  // copy read; the class_type spellings "ttN pipeLoader_v2" and "ttN pipeKSampler_v2" follow
  // the pack's naming and appear as such in a third-party metadata table of the pack's nodes.
  loader('ttN pipeLoader_v2', 'TinyTerra/ComfyUI_tinyterraNodes ttNpy/tinyterraNodes.py', {
    models: [
      model('ckpt_name', 'checkpoints'),
      model('config_name', 'configs', ['Default']),
      model('vae_name', 'vae', ['Baked VAE']),
    ],
  }),
  loader('ttN pipeKSampler_v2', 'TinyTerra/ComfyUI_tinyterraNodes ttNpy/tinyterraNodes.py', {
    models: [model('lora_name', 'loras'), model('upscale_model_name', 'upscale_models')],
    outputNode: true,
  }),

  // --- kijai/ComfyUI-SUPIR: nodes_v2.py (SUPIR_model_loader_v2) and __init__.py
  loader('SUPIR_model_loader_v2', 'kijai/ComfyUI-SUPIR nodes_v2.py', {
    models: [model('supir_model', 'checkpoints')],
  }),

  // --- nullquant/ComfyUI-BrushNet: brushnet_nodes.py (files under models/inpaint)
  loader('BrushNetLoader', 'nullquant/ComfyUI-BrushNet brushnet_nodes.py', {
    models: [model('brushnet', 'inpaint')],
  }),

  // --- Gourieff/comfyui-reactor-node: nodes.py and scripts/reactor_faceswap.py (swap models
  // under models/insightface, face models under models/reactor/faces)
  loader('ReActorFaceSwap', 'Gourieff/comfyui-reactor-node nodes.py', {
    models: [model('swap_model', 'insightface'), model('face_restore_model', 'facerestore_models')],
  }),
  loader('ReActorRestoreFace', 'Gourieff/comfyui-reactor-node nodes.py', {
    models: [model('model', 'facerestore_models')],
  }),
  loader('ReActorLoadFaceModel', 'Gourieff/comfyui-reactor-node nodes.py', {
    models: [model('face_model', 'reactor/faces')],
  }),
  loader('ReActorSaveFaceModel', 'Gourieff/comfyui-reactor-node nodes.py', { outputNode: true }),

  // --- kijai/ComfyUI-KJNodes: nodes/model_optimization_nodes.py
  loader('DiffusionModelLoaderKJ', 'kijai/ComfyUI-KJNodes nodes/model_optimization_nodes.py', {
    models: [model('model_name', 'diffusion_models')],
  }),
  loader('DiffusionModelSelector', 'kijai/ComfyUI-KJNodes nodes/model_optimization_nodes.py', {
    models: [model('model_name', 'diffusion_models')],
  }),
]);
