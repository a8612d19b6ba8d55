// The public face of workflow analysis: parse, patch, analyse and preflight API-format workflows.
export type {
  AnalyzedModel,
  AnalyzeWorkflowOptions,
  InputFileRef,
  WorkflowAnalysis,
  WorkflowSize,
} from './analyze-workflow';
export { analyzeWorkflow } from './analyze-workflow';
export { closestMatches } from './closest-matches';
export { DEFAULT_LOADERS } from './default-loaders';
export type { FamilySignals, WorkflowFamily } from './detect-family';
export { detectFamily } from './detect-family';
export type { VramSignals } from './estimate-vram';
export { estimateVramGb } from './estimate-vram';
export type { LoaderDefinition, LoaderRegistry, ModelInputRule } from './loader-registry';
export { createLoaderRegistry, defineLoader, getDefaultLoaderRegistry } from './loader-registry';
export {
  assertSafeModelName,
  isSafeModelName,
  looksLikeModelFile,
  MODEL_FILE_EXTENSIONS,
  normalizeModelName,
} from './model-name';
export { parseWorkflow } from './parse-workflow';
export type { WorkflowPatches } from './patch-workflow';
export { patchWorkflow } from './patch-workflow';
export type {
  MissingModel,
  ObjectInfo,
  ObjectInfoNode,
  PreflightCapabilities,
  PreflightOptions,
  PreflightResult,
} from './preflight';
export { capabilitiesFromObjectInfo, comboChoices, preflight } from './preflight';
export type { WorkflowLink } from './workflow-links';
export { isLink, resolveInputValue } from './workflow-links';
