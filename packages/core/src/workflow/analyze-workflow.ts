import type { ApiWorkflow, ModelRef } from '../spec/job';
import { detectFamily, type WorkflowFamily } from './detect-family';
import { estimateVramGb } from './estimate-vram';
import {
  type CompiledLoader,
  compileLoader,
  findModelRule,
  isInputFile,
  type LoaderDefinition,
  type LoaderRegistry,
  resolveLoaderRegistry,
} from './loader-registry';
import { assertSafeModelName, looksLikeModelFile, normalizeModelName } from './model-name';
import { parseWorkflow } from './parse-workflow';
import { isLink, resolveInputValue } from './workflow-links';

/** One model a workflow loads: where it is named, and the folder and file. */
export interface AnalyzedModel extends ModelRef {
  nodeId: string;
  classType: string;
  input: string;
  /** ComfyUI's model folder, or null when it could not be told (see `guessed`). */
  folder: string | null;
  /** The file name relative to the folder, subfolders kept, `\` turned into `/`. */
  name: string;
  /** The input's value exactly as the workflow has it (what ComfyUI validates). */
  value: string;
  /**
   * True when the node type is not in the loader registry (or the input is not one of its
   * model inputs) and the value was reported because it ends with a model file extension.
   */
  guessed: boolean;
}

/** A file the workflow reads from ComfyUI's input folder (an image for `LoadImage`, ...). */
export interface InputFileRef {
  nodeId: string;
  classType: string;
  input: string;
  /** The file name, without ComfyUI's ` [input]` annotation. */
  name: string;
}

/** How big the job is. Each field is the largest value found, absent when no node sets it. */
export interface WorkflowSize {
  width?: number;
  height?: number;
  batch?: number;
  frames?: number;
  /** The largest step count of any sampler. */
  steps?: number;
}

/** What a workflow needs and makes; assignable to the spec's `WorkflowRequirements`. */
export interface WorkflowAnalysis {
  /** Every model input, in node order (the same file used twice is listed twice). */
  models: AnalyzedModel[];
  /** Every `class_type`, sorted, once each. */
  nodeTypes: string[];
  /**
   * Ids of the output nodes ComfyUI will run the prompt from (known output node types, and
   * unknown types named `Save...`/`Preview...`); when none is known, the nodes nothing
   * consumes.
   */
  outputNodes: string[];
  inputFiles: InputFileRef[];
  size: WorkflowSize;
  family: WorkflowFamily;
  /** Rough peak GPU memory in GB (see `estimateVramGb`). */
  vramGbEstimate: number;
}

/** Options of {@link analyzeWorkflow}. */
export interface AnalyzeWorkflowOptions {
  /**
   * More loader definitions (from `defineLoader`), added to the built-in ones and replacing
   * those with the same `classType`; or a complete registry from `createLoaderRegistry`.
   */
  loaders?: LoaderRegistry | readonly LoaderDefinition[];
}

const ALWAYS_NONE = new Set(['None', 'none', '']);
const FILE_ANNOTATION = / \[(?:input|output|temp)\]$/;
const WIDTH_HEIGHT_PAIRS: readonly (readonly [string, string])[] = [
  ['width', 'height'],
  ['empty_latent_width', 'empty_latent_height'],
];
const FRAME_INPUTS = ['length', 'num_frames', 'video_frames', 'frame_number'];
const CLIP_LOADERS_WITH_TYPE = /CLIPLoader/;
const TEXT_ENCODER_FOLDERS = new Set(['text_encoders', 'clip']);

/** What a class type's name says, worked out once per name. */
interface ClassTraits {
  saveLike: boolean;
  clipLoader: boolean;
  textEncoder: boolean;
}
const traitsCache = new Map<string, ClassTraits>();

function traitsOf(classType: string): ClassTraits {
  let traits = traitsCache.get(classType);
  if (traits === undefined) {
    traits = {
      saveLike: /^(?:Save|Preview)/.test(classType),
      clipLoader: CLIP_LOADERS_WITH_TYPE.test(classType),
      textEncoder: /TextEncode/.test(classType),
    };
    // Class names come from workflows; keep the cache bounded.
    if (traitsCache.size > 4096) traitsCache.clear();
    traitsCache.set(classType, traits);
  }
  return traits;
}

/** An input's literal value, following links from primitive nodes. */
function read(graph: ApiWorkflow, inputs: Record<string, unknown>, name: string): unknown {
  if (!Object.hasOwn(inputs, name)) return undefined;
  const raw = inputs[name];
  return isLink(raw) ? resolveInputValue(graph, raw) : raw;
}

function positiveNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined;
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Works out what a workflow needs from a worker and what it makes: the models it loads
 * (with ComfyUI folders, following values that come from primitive nodes, keeping
 * subfolders), its node types, output nodes, input files, size (width, height, batch,
 * frames, steps), model family and a rough GPU memory estimate.
 *
 * Models are found through the loader registry (ComfyUI's core loaders and the common
 * custom packs; extend it with `defineLoader`). An input of any other node whose value ends
 * with a model extension is reported too, with `folder: null` and `guessed: true`.
 * Throws `UnsafeModelPathError` for a model or input file name that would leave its folder.
 * A value that is not yet parsed is parsed first (and may throw the parse errors).
 *
 * @example
 * const { models, vramGbEstimate } = analyzeWorkflow(parseWorkflow(json));
 */
export function analyzeWorkflow(
  workflow: ApiWorkflow,
  options: AnalyzeWorkflowOptions = {},
): WorkflowAnalysis {
  const graph: ApiWorkflow = isPlainRecord(workflow) ? workflow : parseWorkflow(workflow);
  const registry = resolveLoaderRegistry(options.loaders);

  const models: AnalyzedModel[] = [];
  const inputFiles: InputFileRef[] = [];
  const outputNodes: string[] = [];
  const classTypes = new Set<string>();
  const clipTypes = new Set<string>();
  let width: number | undefined;
  let height: number | undefined;
  let batch: number | undefined;
  let frames: number | undefined;
  let steps: number | undefined;
  let hasCheckpoint = false;
  // Nodes whose literal a loader input took through a link (a PrimitiveString holding the
  // checkpoint name): their own value is that model, not another one to guess.
  const consumedSources = new Set<string>();
  const referenced = new Set<string>();

  for (const nodeId of Object.keys(graph)) {
    const node = graph[nodeId];
    if (!isPlainRecord(node) || typeof node.class_type !== 'string') continue;
    const classType = node.class_type;
    classTypes.add(classType);
    const inputs = isPlainRecord(node.inputs) ? node.inputs : {};
    const definition = registry.get(classType);
    const loader: CompiledLoader | undefined =
      definition === undefined ? undefined : compileLoader(definition);
    const traits = traitsOf(classType);
    if (loader?.definition.outputNode === true) outputNodes.push(nodeId);
    else if (loader === undefined && traits.saveLike) outputNodes.push(nodeId);

    for (const input of Object.keys(inputs)) {
      const raw = inputs[input];
      const linked = isLink(raw);
      if (linked) referenced.add(raw[0]);
      const through: string[] | undefined = linked ? [] : undefined;
      const value = linked ? resolveInputValue(graph, raw, through) : raw;
      if (typeof value !== 'string') continue;
      if (loader !== undefined && isInputFile(loader, input)) {
        const name = value.replace(FILE_ANNOTATION, '');
        if (ALWAYS_NONE.has(name)) continue;
        assertSafeModelName(name);
        if (through !== undefined) for (const sourceId of through) consumedSources.add(sourceId);
        inputFiles.push({ nodeId, classType, input, name });
        continue;
      }
      const rule = loader === undefined ? undefined : findModelRule(loader, input);
      if (rule !== undefined) {
        if (ALWAYS_NONE.has(value) || rule.none?.includes(value) === true) continue;
        assertSafeModelName(value);
        if (through !== undefined) for (const sourceId of through) consumedSources.add(sourceId);
        if (rule.folder === 'checkpoints') hasCheckpoint = true;
        models.push({
          nodeId,
          classType,
          input,
          folder: rule.folder,
          name: normalizeModelName(value),
          value,
          guessed: false,
        });
        continue;
      }
      // Only literals are guessed: a value that arrived through a link belongs to the node
      // that holds it, which is scanned on its own.
      if (!linked && looksLikeModelFile(value)) {
        assertSafeModelName(value);
        models.push({
          nodeId,
          classType,
          input,
          folder: null,
          name: normalizeModelName(value),
          value,
          guessed: true,
        });
      }
    }

    if (traits.clipLoader) {
      const type = read(graph, inputs, 'type');
      if (typeof type === 'string') clipTypes.add(type.toLowerCase());
    }
    if (!traits.textEncoder) {
      for (const [widthInput, heightInput] of WIDTH_HEIGHT_PAIRS) {
        const nodeWidth = positiveNumber(read(graph, inputs, widthInput));
        const nodeHeight = positiveNumber(read(graph, inputs, heightInput));
        if (nodeWidth === undefined || nodeHeight === undefined) continue;
        if (width === undefined || height === undefined || nodeWidth * nodeHeight > width * height) {
          width = nodeWidth;
          height = nodeHeight;
        }
      }
    }
    const nodeBatch = positiveNumber(read(graph, inputs, 'batch_size'));
    if (nodeBatch !== undefined) batch = Math.max(batch ?? 0, nodeBatch);
    for (const frameInput of FRAME_INPUTS) {
      const nodeFrames = positiveNumber(read(graph, inputs, frameInput));
      if (nodeFrames !== undefined && Number.isInteger(nodeFrames))
        frames = Math.max(frames ?? 0, nodeFrames);
    }
    const nodeSteps = positiveNumber(read(graph, inputs, 'steps'));
    if (nodeSteps !== undefined) steps = Math.max(steps ?? 0, nodeSteps);
  }

  const foundModels =
    consumedSources.size === 0
      ? models
      : models.filter((model) => !(model.guessed && consumedSources.has(model.nodeId)));
  if (outputNodes.length === 0) {
    // No known output node: ComfyUI runs from output nodes, and the nodes nothing consumes
    // are the best guess for them.
    for (const nodeId of Object.keys(graph)) {
      if (!referenced.has(nodeId) && isPlainRecord(graph[nodeId])) outputNodes.push(nodeId);
    }
  }

  const size: WorkflowSize = {};
  if (width !== undefined && height !== undefined) {
    size.width = width;
    size.height = height;
  }
  if (batch !== undefined) size.batch = batch;
  if (frames !== undefined) size.frames = frames;
  if (steps !== undefined) size.steps = steps;

  const lowerNames = foundModels.map((model) => model.name.toLowerCase());
  const family = detectFamily({
    classTypes,
    // Text encoder names (t5xxl, umt5) say nothing about the diffusion model's family.
    modelNames: lowerNames.filter((_, index) => !TEXT_ENCODER_FOLDERS.has(foundModels[index]!.folder ?? '')),
    clipTypes,
    hasCheckpoint,
    ...size,
  });
  const vramGbEstimate = estimateVramGb({
    family,
    models: foundModels.map((model, index) => ({ folder: model.folder, name: lowerNames[index]! })),
    ...size,
  });

  return {
    models: foundModels,
    nodeTypes: [...classTypes].sort(),
    outputNodes,
    inputFiles,
    size,
    family,
    vramGbEstimate,
  };
}
