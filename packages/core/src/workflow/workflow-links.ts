import type { ApiWorkflow, WorkflowNode } from '../spec/job';

/** A link in an API-format workflow: `[sourceNodeId, outputIndex]`. */
export type WorkflowLink = readonly [string, number];

/**
 * Whether an input value is a link. ComfyUI treats every list-valued input as a link, so a
 * well-formed link is a two-element array of a node id string and a non-negative integer.
 */
export function isLink(value: unknown): value is WorkflowLink {
  return (
    Array.isArray(value) &&
    value.length === 2 &&
    typeof value[0] === 'string' &&
    typeof value[1] === 'number' &&
    Number.isInteger(value[1]) &&
    value[1] >= 0
  );
}

/** The node with this id, without ever reading an inherited property (`toString`, `__proto__`). */
export function getNode(workflow: ApiWorkflow, nodeId: string): WorkflowNode | undefined {
  return Object.hasOwn(workflow, nodeId) ? workflow[nodeId] : undefined;
}

/** Class types whose single `value` input is what they output (ComfyUI's primitive nodes). */
const PRIMITIVE_VALUE_INPUT: Readonly<Record<string, string>> = {
  PrimitiveString: 'value',
  PrimitiveStringMultiline: 'value',
  PrimitiveInt: 'value',
  PrimitiveFloat: 'value',
  PrimitiveBoolean: 'value',
};

/** Input names of single-input constant nodes whose output is that input. */
const CONSTANT_INPUT_NAMES = new Set(['value', 'string', 'text', 'int', 'float', 'number', 'boolean']);

const MAX_LINK_HOPS = 16;

function isScalar(value: unknown): value is string | number | boolean {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
}

/**
 * The literal value an input ends up with: the value itself, or, when it is a link from a
 * primitive node (`PrimitiveString`, `PrimitiveInt`, ...) or a single-input constant node
 * (its input named `value`, `string`, `text`, `int`, `float`, `number` or `boolean`), that
 * node's literal, followed through chains of such nodes. Returns undefined when the value
 * comes from a node that computes it. The ids of the nodes passed through are pushed to
 * `visited` when given.
 */
export function resolveInputValue(workflow: ApiWorkflow, value: unknown, visited?: string[]): unknown {
  let current = value;
  for (let hop = 0; hop < MAX_LINK_HOPS && isLink(current); hop++) {
    visited?.push(current[0]);
    const source = getNode(workflow, current[0]);
    if (source === undefined || source.inputs == null || typeof source.inputs !== 'object') return undefined;
    const known = Object.hasOwn(PRIMITIVE_VALUE_INPUT, source.class_type)
      ? PRIMITIVE_VALUE_INPUT[source.class_type]
      : undefined;
    if (known !== undefined) {
      current = Object.hasOwn(source.inputs, known) ? source.inputs[known] : undefined;
      continue;
    }
    // A custom constant node (KJNodes StringConstant, Comfyroll CR Text, ...): exactly one
    // input, named like a constant. A loader with one input (CheckpointLoaderSimple) does not
    // output its input, so other input names are not followed.
    let onlyName: string | undefined;
    let count = 0;
    for (const key in source.inputs) {
      if (!Object.hasOwn(source.inputs, key)) continue;
      count++;
      onlyName = key;
      if (count > 1) break;
    }
    if (count !== 1 || onlyName === undefined || !CONSTANT_INPUT_NAMES.has(onlyName)) return undefined;
    const only = source.inputs[onlyName];
    if (!(isScalar(only) || isLink(only))) return undefined;
    current = only;
  }
  return isLink(current) ? undefined : current;
}
