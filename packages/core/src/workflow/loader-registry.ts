import { InvalidArgumentError } from '../spec/errors';
import { DEFAULT_LOADERS } from './default-loaders';

/** One input of a node that names a model file, and the ComfyUI folder it is read from. */
export interface ModelInputRule {
  /** The input's name, or a pattern for numbered inputs (`/^lora_name_\d+$/`). */
  input: string | RegExp;
  /** ComfyUI's model folder (`checkpoints`, `loras`, `text_encoders`, ...). */
  folder: string;
  /**
   * Values that mean "no model" for this input (`Baked VAE`, `Default`). `None`, `none` and
   * the empty string always do.
   */
  none?: readonly string[];
}

/** What the analyser knows about one node type: its model inputs, input files and whether it is an output. */
export interface LoaderDefinition {
  /** The node's `class_type`. */
  classType: string;
  /** Inputs that name model files. */
  models?: readonly ModelInputRule[];
  /** Inputs that name files from ComfyUI's input folder (uploaded with the job). */
  inputFiles?: readonly (string | RegExp)[];
  /** Whether the node is an output node (ComfyUI runs a prompt from its output nodes). */
  outputNode?: boolean;
  /** Where the entry was confirmed (`owner/repo path`), for whoever maintains the registry. */
  source?: string;
}

/** Loader definitions by `class_type`; build one with {@link createLoaderRegistry}. */
export type LoaderRegistry = ReadonlyMap<string, LoaderDefinition>;

/** A rule ready to match: exact names in a map, patterns in a list. */
export interface CompiledLoader {
  definition: LoaderDefinition;
  exact: ReadonlyMap<string, ModelInputRule>;
  patterns: readonly ModelInputRule[];
  inputFilesExact: ReadonlySet<string>;
  inputFilePatterns: readonly RegExp[];
}

const compiled = new WeakMap<LoaderDefinition, CompiledLoader>();

function compile(definition: LoaderDefinition): CompiledLoader {
  const exact = new Map<string, ModelInputRule>();
  const patterns: ModelInputRule[] = [];
  for (const rule of definition.models ?? []) {
    if (typeof rule.input === 'string') exact.set(rule.input, rule);
    else patterns.push(rule);
  }
  const inputFilesExact = new Set<string>();
  const inputFilePatterns: RegExp[] = [];
  for (const input of definition.inputFiles ?? []) {
    if (typeof input === 'string') inputFilesExact.add(input);
    else inputFilePatterns.push(input);
  }
  return { definition, exact, patterns, inputFilesExact, inputFilePatterns };
}

/** The matching form of a definition (cached per definition object). */
export function compileLoader(definition: LoaderDefinition): CompiledLoader {
  let found = compiled.get(definition);
  if (found === undefined) {
    found = compile(definition);
    compiled.set(definition, found);
  }
  return found;
}

/** The rule for one input of a compiled loader, if that input names a model. */
export function findModelRule(loader: CompiledLoader, input: string): ModelInputRule | undefined {
  const rule = loader.exact.get(input);
  if (rule !== undefined) return rule;
  for (const pattern of loader.patterns) {
    const regex = pattern.input as RegExp;
    regex.lastIndex = 0;
    if (regex.test(input)) return pattern;
  }
  return undefined;
}

/** Whether an input of a compiled loader names an input file. */
export function isInputFile(loader: CompiledLoader, input: string): boolean {
  if (loader.inputFilesExact.has(input)) return true;
  for (const pattern of loader.inputFilePatterns) {
    pattern.lastIndex = 0;
    if (pattern.test(input)) return true;
  }
  return false;
}

function checkInput(value: unknown, argument: string): string | RegExp {
  if (value instanceof RegExp) return value;
  if (typeof value === 'string' && value.length > 0) return value;
  throw new InvalidArgumentError({
    argument,
    message: `${argument} must be an input name (a non-empty string) or a RegExp, but got ${JSON.stringify(value) ?? String(value)}.`,
  });
}

/**
 * Declares which inputs of a node type name model files (and in which ComfyUI folder),
 * which name input files, and whether it is an output node. Pass the result to
 * `analyzeWorkflow(workflow, { loaders: [...] })` or {@link createLoaderRegistry}; entries
 * given by the caller replace the built-in entry for the same `classType`.
 *
 * @example
 * const myLoader = defineLoader({
 *   classType: 'MyFancyLoader',
 *   models: [{ input: 'weights', folder: 'checkpoints' }],
 *   source: 'me/my-nodes nodes.py',
 * });
 */
export function defineLoader(definition: LoaderDefinition): LoaderDefinition {
  if (definition === null || typeof definition !== 'object') {
    throw new InvalidArgumentError({
      argument: 'definition',
      message: 'defineLoader needs an object such as { classType, models: [{ input, folder }] }.',
    });
  }
  if (typeof definition.classType !== 'string' || definition.classType.trim().length === 0) {
    throw new InvalidArgumentError({
      argument: 'classType',
      message: `classType must be the node's class_type (a non-empty string), but got ${JSON.stringify(definition.classType) ?? String(definition.classType)}.`,
    });
  }
  const models = (definition.models ?? []).map((rule, index) => {
    const argument = `models[${index}]`;
    if (rule === null || typeof rule !== 'object') {
      throw new InvalidArgumentError({ argument, message: `${argument} must be { input, folder }.` });
    }
    const input = checkInput(rule.input, `${argument}.input`);
    if (typeof rule.folder !== 'string' || rule.folder.trim().length === 0) {
      throw new InvalidArgumentError({
        argument: `${argument}.folder`,
        message: `${argument}.folder must be a ComfyUI model folder such as "checkpoints", but got ${JSON.stringify(rule.folder) ?? String(rule.folder)}.`,
      });
    }
    if (
      rule.none !== undefined &&
      !(Array.isArray(rule.none) && rule.none.every((v) => typeof v === 'string'))
    ) {
      throw new InvalidArgumentError({
        argument: `${argument}.none`,
        message: `${argument}.none must be a list of strings that mean "no model".`,
      });
    }
    return Object.freeze({
      input,
      folder: rule.folder,
      ...(rule.none === undefined ? {} : { none: Object.freeze([...rule.none]) }),
    });
  });
  const inputFiles = (definition.inputFiles ?? []).map((input, index) =>
    checkInput(input, `inputFiles[${index}]`),
  );
  if (definition.outputNode !== undefined && typeof definition.outputNode !== 'boolean') {
    throw new InvalidArgumentError({ argument: 'outputNode', message: 'outputNode must be true or false.' });
  }
  return Object.freeze({
    classType: definition.classType,
    ...(models.length > 0 ? { models: Object.freeze(models) } : {}),
    ...(inputFiles.length > 0 ? { inputFiles: Object.freeze(inputFiles) } : {}),
    ...(definition.outputNode === undefined ? {} : { outputNode: definition.outputNode }),
    ...(definition.source === undefined ? {} : { source: String(definition.source) }),
  });
}

/**
 * Builds a registry from definitions, on top of the built-in ones unless
 * `includeDefaults` is false. Later definitions replace earlier ones with the same
 * `classType`.
 *
 * @example
 * const loaders = createLoaderRegistry([myLoader]);
 * analyzeWorkflow(workflow, { loaders });
 */
export function createLoaderRegistry(
  definitions: Iterable<LoaderDefinition> = [],
  options: { includeDefaults?: boolean } = {},
): LoaderRegistry {
  const registry = new Map<string, LoaderDefinition>();
  if (options.includeDefaults !== false) {
    for (const definition of DEFAULT_LOADERS) registry.set(definition.classType, definition);
  }
  for (const definition of definitions) {
    const checked = defineLoader(definition);
    registry.set(checked.classType, checked);
  }
  return registry;
}

let defaultRegistry: LoaderRegistry | undefined;

/** The built-in registry (every entry of `DEFAULT_LOADERS`), built once on first use. */
export function getDefaultLoaderRegistry(): LoaderRegistry {
  defaultRegistry ??= createLoaderRegistry();
  return defaultRegistry;
}

const registryCache = new WeakMap<readonly LoaderDefinition[], LoaderRegistry>();

/**
 * The registry an `analyzeWorkflow`/`preflight` call uses: the built-in one, the caller's
 * definitions on top of it (built once per list), or the caller's registry as given.
 */
export function resolveLoaderRegistry(
  loaders?: LoaderRegistry | readonly LoaderDefinition[],
): LoaderRegistry {
  if (loaders === undefined) return getDefaultLoaderRegistry();
  if (Array.isArray(loaders)) {
    const list = loaders as readonly LoaderDefinition[];
    let registry = registryCache.get(list);
    if (registry === undefined) {
      registry = createLoaderRegistry(list);
      registryCache.set(list, registry);
    }
    return registry;
  }
  return loaders as LoaderRegistry;
}
