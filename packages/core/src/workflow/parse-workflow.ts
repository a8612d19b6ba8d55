import { WorkflowFormatError, type WorkflowIssue, WorkflowValidationError } from '../spec/errors';
import type { ApiWorkflow, WorkflowNode } from '../spec/job';

const MAX_VALUE_DEPTH = 64;
const SAVE_API_FORMAT_HINT =
  'Export the workflow with "Save (API format)" (enable the dev mode options in ComfyUI\'s settings ' +
  'if the menu entry is missing) and send that file instead.';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function looksLikeUiExport(value: Record<string, unknown>): boolean {
  if (!Array.isArray(value.nodes)) return false;
  return (
    Array.isArray(value.links) ||
    Object.hasOwn(value, 'last_node_id') ||
    Object.hasOwn(value, 'last_link_id') ||
    Object.hasOwn(value, 'version') ||
    Object.hasOwn(value, 'groups')
  );
}

function looksLikeNode(value: unknown): boolean {
  return isPlainObject(value) && typeof value.class_type === 'string';
}

/** A JSON-safe deep copy; problems are recorded, never thrown, so every issue is reported. */
function cloneJson(
  value: unknown,
  depth: number,
  seen: Set<object>,
  report: (message: string) => void,
): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (!Number.isFinite(value)) report(`${value} is not a finite number (JSON cannot carry it)`);
      // JSON has no negative zero: what ComfyUI receives is 0.
      return Object.is(value, -0) ? 0 : value;
    case 'object':
      break;
    default:
      report(`a ${typeof value} value cannot be sent as JSON`);
      return undefined;
  }
  if (value === null) return null;
  if (depth >= MAX_VALUE_DEPTH) {
    report(`the value is nested more than ${MAX_VALUE_DEPTH} levels deep`);
    return undefined;
  }
  if (seen.has(value)) {
    report('the value refers to itself (a cycle), so it cannot be sent as JSON');
    return undefined;
  }
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      const copy: unknown[] = new Array(value.length);
      for (let index = 0; index < value.length; index++) {
        const item = value[index];
        copy[index] = item === undefined ? null : cloneJson(item, depth + 1, seen, report);
      }
      return copy;
    }
    if (!isPlainObject(value)) {
      report('only plain objects, arrays, strings, numbers, booleans and null can be sent as JSON');
      return undefined;
    }
    const entries: [string, unknown][] = [];
    for (const key of Object.keys(value)) {
      const item = value[key];
      if (item === undefined) continue;
      entries.push([key, cloneJson(item, depth + 1, seen, report)]);
    }
    // fromEntries defines own properties, so a "__proto__" key stays data, not a prototype.
    return Object.fromEntries(entries);
  } finally {
    seen.delete(value);
  }
}

function checkLink(
  value: unknown[],
  nodeId: string,
  input: string,
  nodeIds: ReadonlyMap<string, number>,
  issues: WorkflowIssue[],
): void {
  if (value.length !== 2) {
    issues.push({
      nodeId,
      input,
      message: `a link must be [sourceNodeId, outputIndex]; this list has ${value.length} element(s)`,
    });
    return;
  }
  const [source, index] = value;
  if (typeof source !== 'string') {
    issues.push({
      nodeId,
      input,
      message: `a link's source node id must be a string such as "4", not ${JSON.stringify(source) ?? String(source)}`,
    });
  } else if (!nodeIds.has(source)) {
    issues.push({ nodeId, input, message: `links to node "${source}", which is not in the workflow` });
  }
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0) {
    issues.push({
      nodeId,
      input,
      message: `a link's output index must be a non-negative integer, not ${JSON.stringify(index) ?? String(index)}`,
    });
  }
}

/**
 * Whether the graph (each node's link sources, by index) has a cycle: Kahn's algorithm, linear
 * in nodes and links. Only when it has one does {@link findCycles} work out which.
 */
function hasCycle(sources: readonly number[][]): boolean {
  const count = sources.length;
  const remaining = new Int32Array(count);
  const consumers: number[][] = Array.from({ length: count }, () => []);
  for (let node = 0; node < count; node++) {
    const list = sources[node] ?? [];
    remaining[node] = list.length;
    for (const source of list) consumers[source]!.push(node);
  }
  const queue: number[] = [];
  for (let node = 0; node < count; node++) if (remaining[node] === 0) queue.push(node);
  let done = 0;
  while (done < queue.length) {
    const node = queue[done++]!;
    for (const consumer of consumers[node]!) {
      remaining[consumer]! -= 1;
      if (remaining[consumer] === 0) queue.push(consumer);
    }
  }
  return done < count;
}

/** Finds every cycle through valid links with an iterative depth-first search (no recursion limit). */
function findCycles(workflow: ApiWorkflow, issues: WorkflowIssue[]): void {
  const WHITE = 0;
  const GREY = 1;
  const BLACK = 2;
  const color = new Map<string, number>();
  const reported = new Set<string>();
  const sourcesOf = (nodeId: string): string[] => {
    const node: unknown = workflow[nodeId];
    const sources: string[] = [];
    // Checked in place, the workflow may still hold broken nodes (they are reported already).
    if (!isPlainObject(node) || !isPlainObject(node.inputs)) return sources;
    const inputs = node.inputs;
    for (const key of Object.keys(inputs)) {
      const value = inputs[key];
      if (Array.isArray(value) && typeof value[0] === 'string' && Object.hasOwn(workflow, value[0])) {
        sources.push(value[0]);
      }
    }
    return sources;
  };
  for (const start of Object.keys(workflow)) {
    if ((color.get(start) ?? WHITE) !== WHITE) continue;
    const stack: { id: string; sources: string[]; next: number }[] = [
      { id: start, sources: sourcesOf(start), next: 0 },
    ];
    const path: string[] = [start];
    color.set(start, GREY);
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      if (frame.next >= frame.sources.length) {
        color.set(frame.id, BLACK);
        stack.pop();
        path.pop();
        continue;
      }
      const source = frame.sources[frame.next++]!;
      const state = color.get(source) ?? WHITE;
      if (state === WHITE) {
        color.set(source, GREY);
        stack.push({ id: source, sources: sourcesOf(source), next: 0 });
        path.push(source);
      } else if (state === GREY) {
        const cycle = path.slice(path.indexOf(source));
        const key = [...cycle].sort().join('\u0000');
        if (reported.has(key)) continue;
        reported.add(key);
        const shown = [...cycle, source].map((id) => `"${id}"`).join(' <- ');
        issues.push({
          nodeId: source,
          message: `nodes form a cycle (${shown}); ComfyUI can only run acyclic graphs`,
        });
      }
    }
  }
}

function summarize(issues: WorkflowIssue[]): string {
  const shown = issues.slice(0, 3).map((issue) => {
    const where =
      issue.nodeId === undefined
        ? ''
        : issue.input === undefined
          ? `node "${issue.nodeId}": `
          : `node "${issue.nodeId}" input "${issue.input}": `;
    return where + issue.message;
  });
  const more = issues.length > 3 ? ` (and ${issues.length - 3} more, see issues)` : '';
  return `The workflow is not a valid ComfyUI API-format graph: ${shown.join('; ')}${more}. Fix these nodes and submit again.`;
}

/**
 * Reads an API-format ComfyUI workflow (`{ "3": { class_type, inputs } }`), as an object or
 * as JSON text, and returns a checked deep copy the caller may change freely.
 *
 * Throws `WorkflowFormatError` for anything that is not the API format (invalid JSON, a
 * UI-format export with `nodes`/`links`, a `/prompt` request body) and
 * `WorkflowValidationError` listing every structural problem with its node id and input:
 * no nodes, a node without `class_type`, an input that cannot be JSON, a link to a missing
 * node, a link whose output index is not a non-negative integer, a cycle.
 *
 * @example
 * const workflow = parseWorkflow(await readFile('workflow_api.json', 'utf8'));
 */
export function parseWorkflow(input: unknown): ApiWorkflow {
  let value: unknown = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (error) {
      throw new WorkflowFormatError({
        message: `The workflow is not valid JSON (${error instanceof Error ? error.message : String(error)}). ${SAVE_API_FORMAT_HINT}`,
        cause: error,
      });
    }
  }
  if (!isPlainObject(value)) {
    const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
    throw new WorkflowFormatError({
      message: `A workflow must be an object of node id to node, but got ${kind}. ${SAVE_API_FORMAT_HINT}`,
    });
  }
  if (looksLikeUiExport(value)) {
    throw new WorkflowFormatError({
      message: `This is a UI-format workflow (it has "nodes" and "links"), which ComfyUI's /prompt does not accept. ${SAVE_API_FORMAT_HINT}`,
    });
  }
  if (!looksLikeNode(value.prompt) && isPlainObject(value.prompt)) {
    const inner = Object.values(value.prompt);
    if (inner.length > 0 && inner.every(looksLikeNode)) {
      throw new WorkflowFormatError({
        message:
          'This is a /prompt request body, not a workflow: pass its "prompt" field (the API-format workflow) instead.',
      });
    }
  }

  // Text we parsed ourselves is already a fresh, JSON-safe tree: it is checked in place. An
  // object from the caller is copied (and its values checked) so the caller's stays untouched.
  const owned = typeof input === 'string';
  const issues: WorkflowIssue[] = [];
  const nodeIds = Object.keys(value);
  if (nodeIds.length === 0) {
    issues.push({ message: 'the workflow has no nodes' });
  }
  const indexOf = new Map<string, number>();
  for (let index = 0; index < nodeIds.length; index++) indexOf.set(nodeIds[index]!, index);
  const sources: number[][] = new Array(nodeIds.length);
  const entries: [string, WorkflowNode][] = [];
  const seen = new Set<object>();
  for (let nodeIndex = 0; nodeIndex < nodeIds.length; nodeIndex++) {
    const nodeId = nodeIds[nodeIndex]!;
    const nodeSources: number[] = [];
    sources[nodeIndex] = nodeSources;
    const raw = value[nodeId];
    if (!isPlainObject(raw)) {
      issues.push({ nodeId, message: 'a node must be an object with "class_type" and "inputs"' });
      continue;
    }
    const classType = raw.class_type;
    if (typeof classType !== 'string' || classType.trim().length === 0) {
      issues.push({
        nodeId,
        message:
          classType === undefined
            ? 'the node has no "class_type" (ComfyUI answers invalid_prompt)'
            : '"class_type" must be a non-empty string',
      });
    }
    const rawInputs = raw.inputs;
    if (!isPlainObject(rawInputs)) {
      issues.push({
        nodeId,
        message: rawInputs === undefined ? 'the node has no "inputs" object' : '"inputs" must be an object',
      });
    }
    if (owned && raw._meta !== undefined && !isPlainObject(raw._meta)) {
      issues.push({ nodeId, message: '"_meta" must be an object such as { "title": "..." }' });
    }
    const inputEntries: [string, unknown][] | undefined = owned ? undefined : [];
    if (isPlainObject(rawInputs)) {
      for (const inputName of Object.keys(rawInputs)) {
        let inputValue = rawInputs[inputName];
        if (owned) {
          if (Object.is(inputValue, -0)) rawInputs[inputName] = inputValue = 0;
        } else {
          if (inputValue === undefined) continue;
          inputValue = cloneJson(inputValue, 1, seen, (message) =>
            issues.push({ nodeId, input: inputName, message }),
          );
          inputEntries!.push([inputName, inputValue]);
        }
        if (Array.isArray(inputValue)) {
          checkLink(inputValue, nodeId, inputName, indexOf, issues);
          const source = typeof inputValue[0] === 'string' ? indexOf.get(inputValue[0]) : undefined;
          if (source !== undefined) nodeSources.push(source);
        }
      }
    }
    if (owned) continue;
    const nodeEntries: [string, unknown][] = [];
    for (const key of Object.keys(raw)) {
      if (key === 'class_type' || key === 'inputs' || raw[key] === undefined) continue;
      if (key === '_meta' && !isPlainObject(raw[key])) {
        issues.push({ nodeId, message: '"_meta" must be an object such as { "title": "..." }' });
        continue;
      }
      const copy = cloneJson(raw[key], 1, seen, (message) =>
        issues.push({ nodeId, message: `"${key}": ${message}` }),
      );
      nodeEntries.push([key, copy]);
    }
    const node = Object.fromEntries(nodeEntries) as WorkflowNode;
    node.class_type = typeof classType === 'string' ? classType : '';
    node.inputs = Object.fromEntries(inputEntries!);
    entries.push([nodeId, node]);
  }
  const workflow = (owned ? value : Object.fromEntries(entries)) as ApiWorkflow;
  if (hasCycle(sources)) findCycles(workflow, issues);
  if (issues.length > 0) {
    throw new WorkflowValidationError({ message: summarize(issues), issues });
  }
  return workflow;
}
