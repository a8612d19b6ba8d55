import { createHash } from 'node:crypto';
import type { ApiWorkflow, InputImage, ModelRef, WorkflowRequirements } from '../spec/job';
import { analyzeWorkflow, parseWorkflow, patchWorkflow } from '../workflow';

/** A workflow checked, patched and analysed, ready to journal and route. */
export interface PreparedWorkflow {
  /** The workflow to send: deep-frozen, because prepared workflows are shared between jobs. */
  workflow: ApiWorkflow;
  requirements: WorkflowRequirements;
  /** A fingerprint of the workflow, for the request hash. */
  fingerprint: string;
  /** Size of the workflow as JSON, in bytes. */
  workflowBytes: number;
}

const CACHE_LIMIT = 256;
const cache = new Map<string, PreparedWorkflow>();
const notJson = Symbol('not-json');

function isPlainObject(value: object): boolean {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * The canonical text of a JSON-safe value, or undefined when the value holds anything JSON
 * would silently drop or change (functions, symbols, NaN, Maps and other class instances):
 * those are left to the parser, which refuses them with a typed error. Values with a
 * `toJSON` (a Date) are taken as JSON takes them.
 */
function canonicalText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value, checkJsonValue);
  } catch {
    return undefined;
  }
}

function checkJsonValue(_key: string, item: unknown): unknown {
  switch (typeof item) {
    case 'object':
      if (item !== null && !Array.isArray(item) && !isPlainObject(item)) throw notJson;
      return item;
    case 'number':
      if (!Number.isFinite(item)) throw notJson;
      return item;
    case 'function':
    case 'symbol':
    case 'bigint':
      throw notJson;
    default:
      return item;
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}

function analyse(workflow: ApiWorkflow, fingerprint: string, workflowBytes: number): PreparedWorkflow {
  const analysis = analyzeWorkflow(workflow);
  return {
    workflow: deepFreeze(workflow),
    requirements: deepFreeze({
      models: uniqueModels(analysis.models),
      nodeTypes: [...analysis.nodeTypes],
      vramGbEstimate: analysis.vramGbEstimate,
    }),
    fingerprint,
    workflowBytes,
  };
}

/** Each model once, however many nodes load it. */
function uniqueModels(models: ReadonlyArray<{ folder: string | null; name: string }>): ModelRef[] {
  const seen = new Set<string>();
  const unique: ModelRef[] = [];
  for (const model of models) {
    const key = `${model.folder ?? ''}\u0000${model.name}`;
    if (seen.has(key)) continue;
    seen.add(key);
    unique.push({ folder: model.folder, name: model.name });
  }
  return unique;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Parses the workflow (refusing UI-format exports and broken graphs with typed errors),
 * applies the caller's input patches without touching the caller's object, and works out
 * what the job needs from a worker.
 *
 * Results are cached by the workflow's content (not its identity, so a caller who edits
 * and resubmits one object is never served a stale analysis): a backend that sends the
 * same template many times parses and analyses it once.
 */
export function prepareWorkflow(input: unknown, inputs?: Record<string, unknown>): PreparedWorkflow {
  const patched = inputs !== undefined && Object.keys(inputs).length > 0;
  const text = canonicalText(input);
  const inputsText = patched ? canonicalText(inputs) : '';
  // No key (no caching) when either part holds something JSON would change.
  const key =
    text === undefined || inputsText === undefined
      ? undefined
      : patched
        ? `${text}\u0000${inputsText}`
        : text;
  if (key !== undefined) {
    const hit = cache.get(key);
    if (hit !== undefined) {
      cache.delete(key);
      cache.set(key, hit);
      return hit;
    }
  }
  const workflow = patched
    ? patchWorkflow(input as Parameters<typeof patchWorkflow>[0], inputs)
    : parseWorkflow(input as Parameters<typeof parseWorkflow>[0]);
  const json = JSON.stringify(workflow);
  const prepared = analyse(workflow, sha256(json), Buffer.byteLength(json));
  if (key !== undefined) {
    cache.set(key, prepared);
    if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value as string);
  }
  return prepared;
}

/** Bytes a request takes on the wire: the workflow's JSON and the images as base64. */
export function payloadBytes(workflowBytes: number, images: InputImage[]): number {
  let total = workflowBytes;
  for (const image of images) {
    const raw = typeof image.data === 'string' ? image.data.length : Math.ceil(image.data.byteLength / 3) * 4;
    total += raw + image.name.length + 32;
  }
  return total;
}

/**
 * A fingerprint of a job's request (the workflow's fingerprint and the input images): the
 * same id with a different request is a conflict, not a resubmission.
 */
export function hashRequest(fingerprint: string, images: InputImage[]): string {
  if (images.length === 0) return fingerprint;
  const hash = createHash('sha256');
  hash.update(fingerprint);
  for (const image of images) {
    hash.update('\0');
    hash.update(image.name);
    hash.update('\0');
    hash.update(typeof image.data === 'string' ? image.data : Buffer.from(image.data));
  }
  return hash.digest('hex');
}
