import { type ComfyNodeError, InvalidArgumentError } from '../spec/errors';
import type { ApiWorkflow, ModelRef, WorkflowRequirements } from '../spec/job';
import {
  type AnalyzedModel,
  type AnalyzeWorkflowOptions,
  analyzeWorkflow,
  type WorkflowAnalysis,
} from './analyze-workflow';
import {
  compileLoader,
  getDefaultLoaderRegistry,
  type LoaderRegistry,
  resolveLoaderRegistry,
} from './loader-registry';
import { normalizeModelName } from './model-name';
import { parseWorkflow } from './parse-workflow';

/**
 * What a worker image has: its node types and its model files by ComfyUI folder. The same
 * fields as the spec's `ImageDescriptor`, so an image descriptor can be passed as is. A field
 * left out is not checked.
 */
export interface PreflightCapabilities {
  nodeTypes?: Iterable<string>;
  models?: Readonly<Record<string, Iterable<string>>>;
}

/** One node type of a ComfyUI `GET /object_info` response (only the fields preflight reads). */
export interface ObjectInfoNode {
  input?: { required?: Record<string, unknown>; optional?: Record<string, unknown> };
  output?: unknown;
  output_node?: boolean;
  [key: string]: unknown;
}

/** A ComfyUI `GET /object_info` response: every node type by `class_type`. */
export type ObjectInfo = Readonly<Record<string, ObjectInfoNode>>;

/** A model preflight could not find, as `analyzeWorkflow` reports it (or a bare `ModelRef`). */
export type MissingModel = Partial<
  Pick<AnalyzedModel, 'nodeId' | 'classType' | 'input' | 'value' | 'guessed'>
> &
  ModelRef;

/** What {@link preflight} found. */
export interface PreflightResult {
  /** True when nothing is missing (of what could be checked). */
  ok: boolean;
  /** Node types the workflow uses that the worker lacks, once each, sorted. */
  missingNodeTypes: string[];
  /** Models the worker lacks, one entry per input that names one. */
  missingModels: MissingModel[];
  /**
   * ComfyUI's top-level error type the job would get: `invalid_prompt` when a node type is
   * missing, `prompt_outputs_failed_validation` when only models are. Absent when ok.
   */
  type?: 'invalid_prompt' | 'prompt_outputs_failed_validation';
  /** A message in ComfyUI's words, with what to do. Absent when ok. */
  message?: string;
  /** Per-node errors in ComfyUI's vocabulary (`invalid_prompt`, `value_not_in_list`). */
  nodeErrors: ComfyNodeError[];
}

/** Options of {@link preflight}. */
export interface PreflightOptions extends AnalyzeWorkflowOptions {}

const FOLDER_ALIASES: Readonly<Record<string, string>> = {
  clip: 'text_encoders',
  clip_gguf: 'text_encoders',
  unet: 'diffusion_models',
  unet_gguf: 'diffusion_models',
};

function canonicalFolder(folder: string): string {
  return Object.hasOwn(FOLDER_ALIASES, folder) ? FOLDER_ALIASES[folder]! : folder;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function isIterableOfStrings(value: unknown): value is Iterable<string> {
  return value !== null && typeof value === 'object' && Symbol.iterator in value;
}

/** The choices of a list input in `/object_info`, in the old (`[[...]]`) or the v3 (`["COMBO", { options }]`) form. */
export function comboChoices(spec: unknown): string[] | undefined {
  if (!Array.isArray(spec)) return undefined;
  const [first, second] = spec;
  if (Array.isArray(first)) return first.filter((item): item is string => typeof item === 'string');
  if (first === 'COMBO' && isRecord(second) && Array.isArray(second.options)) {
    return second.options.filter((item): item is string => typeof item === 'string');
  }
  return undefined;
}

function inputSpec(node: ObjectInfoNode | undefined, input: string): unknown {
  if (!isRecord(node) || !isRecord(node.input)) return undefined;
  const { required, optional } = node.input;
  if (isRecord(required) && Object.hasOwn(required, input)) return required[input];
  if (isRecord(optional) && Object.hasOwn(optional, input)) return optional[input];
  return undefined;
}

function isObjectInfo(value: Record<string, unknown>): boolean {
  const nodeTypes = value.nodeTypes;
  const models = value.models;
  const capabilityShaped =
    (nodeTypes === undefined || isIterableOfStrings(nodeTypes)) &&
    (models === undefined || (isRecord(models) && Object.values(models).every(isIterableOfStrings)));
  if (capabilityShaped && (nodeTypes !== undefined || models !== undefined)) return false;
  return Object.values(value).some(
    (node) => isRecord(node) && (isRecord(node.input) || Array.isArray(node.output)),
  );
}

/**
 * The node types and model folders an `/object_info` response shows, read through the
 * loader registry (the choices of `CheckpointLoaderSimple.ckpt_name` are the checkpoints).
 */
export function capabilitiesFromObjectInfo(
  objectInfo: ObjectInfo,
  registry: LoaderRegistry = getDefaultLoaderRegistry(),
): { nodeTypes: string[]; models: Record<string, string[]> } {
  const models = new Map<string, Set<string>>();
  for (const classType of Object.keys(objectInfo)) {
    const definition = registry.get(classType);
    if (definition?.models === undefined) continue;
    const node = objectInfo[classType];
    const inputNames = [
      ...(isRecord(node?.input?.required) ? Object.keys(node.input.required) : []),
      ...(isRecord(node?.input?.optional) ? Object.keys(node.input.optional) : []),
    ];
    const compiled = compileLoader(definition);
    for (const input of inputNames) {
      const rule =
        compiled.exact.get(input) ??
        compiled.patterns.find((pattern) => {
          const regex = pattern.input as RegExp;
          regex.lastIndex = 0;
          return regex.test(input);
        });
      if (rule === undefined) continue;
      const choices = comboChoices(inputSpec(node, input));
      if (choices === undefined) continue;
      const folder = canonicalFolder(rule.folder);
      let names = models.get(folder);
      if (names === undefined) {
        names = new Set();
        models.set(folder, names);
      }
      for (const choice of choices) names.add(choice);
    }
  }
  return {
    nodeTypes: Object.keys(objectInfo),
    models: Object.fromEntries([...models].map(([folder, names]) => [folder, [...names]])),
  };
}

function isRequirements(value: unknown): value is WorkflowRequirements | WorkflowAnalysis {
  return isRecord(value) && Array.isArray(value.models) && Array.isArray(value.nodeTypes);
}

/**
 * Checks, before a GPU is paid for, that a worker has every node type and model a workflow
 * needs, and says what is missing in ComfyUI's own vocabulary: `invalid_prompt` for a node
 * type the worker does not have, `value_not_in_list` for a model file it does not have.
 *
 * `workflow` is an API-format workflow (object or JSON; it is parsed and analysed), or the
 * result of `analyzeWorkflow` (or any `WorkflowRequirements`). `capabilities` is either an
 * image's `{ nodeTypes, models: { [folder]: names } }` (an `ImageDescriptor` fits) or a raw
 * ComfyUI `GET /object_info` response; with `/object_info`, a model is checked against the
 * exact list the node's input offers, as ComfyUI would. Names compare with `\` and `/` as
 * the same separator, and the old folder names `clip`/`unet` as `text_encoders`/
 * `diffusion_models`. Whatever the capabilities leave out is not checked.
 *
 * This signature is stable: providers call it.
 *
 * @example
 * const result = preflight(workflow, await client.objectInfo());
 * if (!result.ok) throw new ComfyValidationError({ message: result.message!, type: result.type!, nodeErrors: result.nodeErrors });
 */
export function preflight(
  workflow: ApiWorkflow | string | WorkflowAnalysis | WorkflowRequirements,
  capabilities: PreflightCapabilities | ObjectInfo,
  options: PreflightOptions = {},
): PreflightResult {
  if (!isRecord(capabilities)) {
    throw new InvalidArgumentError({
      argument: 'capabilities',
      message:
        'capabilities must be { nodeTypes, models: { [folder]: names } } or a ComfyUI /object_info response, ' +
        `but got ${capabilities === null ? 'null' : Array.isArray(capabilities) ? 'an array' : typeof capabilities}.`,
    });
  }
  let graph: ApiWorkflow | undefined;
  let requirements: WorkflowRequirements | WorkflowAnalysis;
  if (isRequirements(workflow)) {
    requirements = workflow;
  } else {
    graph = isRecord(workflow) ? (workflow as ApiWorkflow) : parseWorkflow(workflow);
    requirements = analyzeWorkflow(graph, options);
  }

  const objectInfo = isObjectInfo(capabilities) ? (capabilities as ObjectInfo) : undefined;
  let nodeTypes: ReadonlySet<string> | undefined;
  let folderModels: Map<string, Set<string>> | undefined;
  if (objectInfo !== undefined) {
    const derived = capabilitiesFromObjectInfo(objectInfo, resolveLoaderRegistry(options.loaders));
    nodeTypes = new Set(derived.nodeTypes);
    folderModels = new Map(
      Object.entries(derived.models).map(([folder, names]) => [
        folder,
        new Set(names.map(normalizeModelName)),
      ]),
    );
  } else {
    const caps = capabilities as PreflightCapabilities;
    if (caps.nodeTypes !== undefined) {
      if (!isIterableOfStrings(caps.nodeTypes)) {
        throw new InvalidArgumentError({
          argument: 'capabilities.nodeTypes',
          message: 'capabilities.nodeTypes must be a list of class_type names.',
        });
      }
      nodeTypes = new Set(caps.nodeTypes);
    }
    if (caps.models !== undefined) {
      if (!isRecord(caps.models)) {
        throw new InvalidArgumentError({
          argument: 'capabilities.models',
          message:
            'capabilities.models must be an object of ComfyUI folder to file names, such as { checkpoints: ["x.safetensors"] }.',
        });
      }
      folderModels = new Map();
      for (const folder of Object.keys(caps.models)) {
        const names = caps.models[folder];
        if (!isIterableOfStrings(names)) {
          throw new InvalidArgumentError({
            argument: `capabilities.models.${folder}`,
            message: `capabilities.models.${folder} must be a list of file names.`,
          });
        }
        const key = canonicalFolder(folder);
        let set = folderModels.get(key);
        if (set === undefined) {
          set = new Set();
          folderModels.set(key, set);
        }
        for (const name of names) if (typeof name === 'string') set.add(normalizeModelName(name));
      }
    }
  }

  const nodeErrors: ComfyNodeError[] = [];
  const missingNodeTypes: string[] = [];
  if (nodeTypes !== undefined) {
    for (const classType of requirements.nodeTypes) {
      if (!nodeTypes.has(classType)) missingNodeTypes.push(classType);
    }
    missingNodeTypes.sort();
  }

  const missingModels: MissingModel[] = [];
  for (const model of requirements.models as MissingModel[]) {
    const name = normalizeModelName(model.name);
    let present: boolean | undefined;
    if (objectInfo !== undefined && model.classType !== undefined && model.input !== undefined) {
      const choices = comboChoices(inputSpec(objectInfo[model.classType], model.input));
      if (choices !== undefined) present = choices.some((choice) => normalizeModelName(choice) === name);
    }
    if (present === undefined && folderModels !== undefined) {
      if (model.folder !== null) {
        present = folderModels.get(canonicalFolder(model.folder))?.has(name) ?? false;
      } else {
        present = [...folderModels.values()].some((names) => names.has(name));
      }
    }
    if (present === false) missingModels.push(model);
  }

  for (const classType of missingNodeTypes) {
    // With the workflow at hand each node of the missing type is named; a bare requirements
    // list only knows the type.
    const nodeIds =
      graph === undefined
        ? ['']
        : Object.keys(graph).filter(
            (nodeId) => isRecord(graph[nodeId]) && graph[nodeId].class_type === classType,
          );
    for (const nodeId of nodeIds) {
      nodeErrors.push({
        nodeId,
        classType,
        type: 'invalid_prompt',
        message: `Cannot execute because node ${classType} does not exist.`,
        details: `Install the custom node pack that provides ${classType} in the worker image, or send the job to an image that has it.`,
      });
    }
  }
  for (const model of missingModels) {
    const input = model.input ?? model.folder ?? 'model';
    const value = model.value ?? model.name;
    nodeErrors.push({
      nodeId: model.nodeId ?? '',
      ...(model.classType === undefined ? {} : { classType: model.classType }),
      type: 'value_not_in_list',
      message: 'Value not in list',
      details: `${input}: '${value}' not in list${model.folder === null ? '' : ` (folder ${model.folder})`}`,
      input,
    });
  }

  const ok = missingNodeTypes.length === 0 && missingModels.length === 0;
  if (ok) return { ok, missingNodeTypes, missingModels, nodeErrors };
  const parts: string[] = [];
  if (missingNodeTypes.length > 0) parts.push(`node type(s) ${missingNodeTypes.join(', ')}`);
  if (missingModels.length > 0) {
    const names = [
      ...new Set(missingModels.map((model) => `${model.folder ?? '?'}/${normalizeModelName(model.name)}`)),
    ];
    parts.push(
      `model(s) ${names.slice(0, 5).join(', ')}${names.length > 5 ? ` and ${names.length - 5} more` : ''}`,
    );
  }
  return {
    ok,
    missingNodeTypes,
    missingModels,
    type: missingNodeTypes.length > 0 ? 'invalid_prompt' : 'prompt_outputs_failed_validation',
    message: `The worker lacks ${parts.join(' and ')}; ComfyUI would refuse the prompt. Install them in the image, let the provider load the models, or send the job to another provider.`,
    nodeErrors,
  };
}
