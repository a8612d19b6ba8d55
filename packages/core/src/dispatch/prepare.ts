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

/**
 * What a workflow object held when it was last prepared, kept beside it while the caller
 * holds it: its content laid out for comparison, and its canonical text.
 */
interface ObjectEntry {
  shape: JsonShape;
  text: string;
}
const byObject = new WeakMap<object, ObjectEntry>();

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

/**
 * A JSON value laid out for comparison: an object's keys in order beside their values, so
 * that comparing needs no `Object.keys` (whose arrays were most of what a job allocated).
 */
type JsonShape =
  | { kind: 'leaf'; value: string | number | boolean | null }
  | { kind: 'array'; items: JsonShape[] }
  | { kind: 'object'; keys: string[]; values: JsonShape[] };

/** Lays out a parse of JSON text (only JSON values occur in it). */
function shapeOf(value: unknown): JsonShape {
  if (Array.isArray(value)) return { kind: 'array', items: value.map(shapeOf) };
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    return {
      kind: 'object',
      keys,
      values: keys.map((key) => shapeOf((value as Record<string, unknown>)[key])),
    };
  }
  return { kind: 'leaf', value: value as string | number | boolean | null };
}

/**
 * Whether `value` is, as JSON, the data laid out in `shape`: the same keys in the same
 * order with the same values, so that both would be written out as the same text.
 * Anything JSON would drop or change (undefined, a function, NaN, a class instance, an
 * array hole, an inherited enumerable key) makes them differ, so that such a value goes
 * the slow way and meets the parser's refusal.
 */
function sameJson(value: unknown, shape: JsonShape): boolean {
  switch (shape.kind) {
    case 'leaf':
      return value === shape.value;
    case 'array': {
      const { items } = shape;
      if (!Array.isArray(value) || value.length !== items.length) return false;
      for (let index = 0; index < items.length; index++)
        if (!sameJson(value[index], items[index]!)) return false;
      return true;
    }
    case 'object': {
      if (value === null || typeof value !== 'object' || Array.isArray(value) || !isPlainObject(value))
        return false;
      const { keys, values } = shape;
      let index = 0;
      for (const key in value) {
        if (index >= keys.length || key !== keys[index] || !Object.hasOwn(value, key)) return false;
        if (!sameJson((value as Record<string, unknown>)[key], values[index]!)) return false;
        index += 1;
      }
      return index === keys.length;
    }
  }
}

/** `sameJson`, false when reading the value throws (a getter): the slow way deals with it. */
function unchanged(value: unknown, shape: JsonShape): boolean {
  try {
    return sameJson(value, shape);
  } catch {
    return false;
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
  const inputsText = patched ? canonicalText(inputs) : '';
  // A template object sent again is recognised by a walk over its content, which is much
  // cheaper than writing it out as text; its text from last time then keys the cache.
  const entry = typeof input === 'object' && input !== null ? byObject.get(input) : undefined;
  if (entry !== undefined && unchanged(input, entry.shape)) {
    return prepareFromText(input, patched ? inputs : undefined, entry.text, inputsText);
  }
  const text = canonicalText(input);
  const prepared = prepareFromText(input, patched ? inputs : undefined, text, inputsText);
  if (text !== undefined && typeof input === 'object' && input !== null) {
    byObject.set(input, { shape: shapeOf(JSON.parse(text)), text });
  }
  return prepared;
}

/**
 * Prepares from the workflow's canonical text (the cache key), or without caching when a
 * text is undefined. `inputs` is given only when there are patches to apply.
 */
function prepareFromText(
  input: unknown,
  inputs: Record<string, unknown> | undefined,
  text: string | undefined,
  inputsText: string | undefined,
): PreparedWorkflow {
  const patched = inputs !== undefined;
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
