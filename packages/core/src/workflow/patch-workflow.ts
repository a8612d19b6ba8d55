import { InvalidArgumentError, WorkflowPatchError } from '../spec/errors';
import type { ApiWorkflow, WorkflowNode } from '../spec/job';
import { closestMatches } from './closest-matches';
import { parseWorkflow } from './parse-workflow';
import { getNode } from './workflow-links';

/**
 * Input values by path: `"6.inputs.text"`, `"6.text"` or `"Positive Prompt.text"` (a node
 * title from `_meta.title`), as an object or as `[path, value]` pairs.
 */
export type WorkflowPatches = Readonly<Record<string, unknown>> | Iterable<readonly [string, unknown]>;

interface Target {
  nodeId: string;
  input: string;
}

function titleOf(node: WorkflowNode): string | undefined {
  const title = node._meta?.title;
  return typeof title === 'string' && title.length > 0 ? title : undefined;
}

function indexTitles(workflow: ApiWorkflow): Map<string, string[]> {
  const titles = new Map<string, string[]>();
  for (const nodeId of Object.keys(workflow)) {
    const title = titleOf(workflow[nodeId]!);
    if (title === undefined) continue;
    const ids = titles.get(title);
    if (ids === undefined) titles.set(title, [nodeId]);
    else ids.push(nodeId);
  }
  return titles;
}

function resolveNode(
  workflow: ApiWorkflow,
  titles: Map<string, string[]>,
  reference: string,
  path: string,
): string | undefined {
  if (getNode(workflow, reference) !== undefined) return reference;
  const ids = titles.get(reference);
  if (ids === undefined) return undefined;
  if (ids.length > 1) {
    throw new WorkflowPatchError({
      message: `Patch "${path}": the title "${reference}" belongs to ${ids.length} nodes (${ids.join(', ')}); use a node id instead, such as "${ids[0]}.${path.slice(reference.length + 1)}".`,
      path,
      suggestions: ids.map((id) => `${id}.${path.slice(reference.length + 1)}`),
    });
  }
  return ids[0];
}

function resolveTarget(workflow: ApiWorkflow, titles: Map<string, string[]>, path: string): Target {
  if (typeof path !== 'string' || path.length === 0) {
    throw new WorkflowPatchError({
      message: 'A patch path must be a non-empty string such as "6.text" or "Positive Prompt.text".',
      path: String(path),
    });
  }
  const candidates: { reference: string; input: string }[] = [];
  for (let index = path.indexOf('.'); index !== -1; index = path.indexOf('.', index + 1)) {
    const reference = path.slice(0, index);
    const rest = path.slice(index + 1);
    if (rest.startsWith('inputs.') && rest.length > 'inputs.'.length) {
      candidates.push({ reference, input: rest.slice('inputs.'.length) });
    }
    if (rest.length > 0) candidates.push({ reference, input: rest });
  }
  if (candidates.length === 0) {
    throw new WorkflowPatchError({
      message: `Patch "${path}" names no input: write "<node id or title>.<input>", such as "${path}.text".`,
      path,
    });
  }
  let firstResolved: { nodeId: string; reference: string; input: string } | undefined;
  for (const candidate of candidates) {
    const nodeId = resolveNode(workflow, titles, candidate.reference, path);
    if (nodeId === undefined) continue;
    const inputs = workflow[nodeId]!.inputs;
    if (Object.hasOwn(inputs, candidate.input)) return { nodeId, input: candidate.input };
    firstResolved ??= { nodeId, ...candidate };
  }
  if (firstResolved !== undefined) {
    const node = workflow[firstResolved.nodeId]!;
    const names = Object.keys(node.inputs);
    const suggestions = closestMatches(firstResolved.input, names).map(
      (name) => `${firstResolved.reference}.${name}`,
    );
    const hint =
      suggestions.length > 0
        ? ` Did you mean ${suggestions.map((s) => `"${s}"`).join(' or ')}?`
        : names.length > 0
          ? ` Its inputs are: ${names.slice(0, 12).join(', ')}.`
          : ' It has no inputs.';
    throw new WorkflowPatchError({
      message: `Patch "${path}": node "${firstResolved.nodeId}" (${node.class_type}) has no input "${firstResolved.input}".${hint}`,
      path,
      suggestions,
    });
  }
  const wanted = candidates[candidates.length - 1]!.reference;
  const references = [...Object.keys(workflow), ...titles.keys()];
  const suggestions = closestMatches(wanted, references).map((reference) => {
    const nodeId = getNode(workflow, reference) !== undefined ? reference : titles.get(reference)![0]!;
    const input = candidates[candidates.length - 1]!.input;
    return Object.hasOwn(workflow[nodeId]!.inputs, input) ? `${reference}.${input}` : reference;
  });
  const hint =
    suggestions.length > 0 ? ` Did you mean ${suggestions.map((s) => `"${s}"`).join(' or ')}?` : '';
  throw new WorkflowPatchError({
    message: `Patch "${path}": no node has the id or title "${wanted}".${hint}`,
    path,
    suggestions,
  });
}

function copyValue(value: unknown, path: string): unknown {
  if (value === undefined) {
    throw new WorkflowPatchError({
      message: `Patch "${path}" has no value (undefined); give the value to set, or leave the patch out.`,
      path,
    });
  }
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) {
      throw new WorkflowPatchError({
        message: `Patch "${path}": ${value} cannot be sent as JSON; give a finite number.`,
        path,
      });
    }
    if (typeof value === 'bigint' || typeof value === 'function' || typeof value === 'symbol') {
      throw new WorkflowPatchError({
        message: `Patch "${path}": a ${typeof value} cannot be sent as JSON; give a string, number, boolean or link.`,
        path,
      });
    }
    return value;
  }
  try {
    return JSON.parse(JSON.stringify(value));
  } catch (error) {
    throw new WorkflowPatchError({
      message: `Patch "${path}": the value cannot be sent as JSON (${error instanceof Error ? error.message : String(error)}).`,
      path,
    });
  }
}

function entriesOf(patches: WorkflowPatches): Iterable<readonly [string, unknown]> {
  if (patches === null || typeof patches !== 'object') {
    throw new InvalidArgumentError({
      argument: 'patches',
      message: `patches must be an object of path to value, such as { "6.text": "a cat" }, but got ${patches === null ? 'null' : typeof patches}.`,
    });
  }
  if (Symbol.iterator in patches && !Array.isArray(patches)) {
    return patches as Iterable<readonly [string, unknown]>;
  }
  if (Array.isArray(patches)) return patches as readonly (readonly [string, unknown])[];
  return Object.entries(patches);
}

/**
 * Returns a copy of the workflow with inputs set by path: `"6.inputs.text"` or `"6.text"`
 * (node id, input) or `"Positive Prompt.text"` (node title from `_meta.title`; titles may
 * contain dots). The caller's workflow and values are never changed.
 *
 * Throws `WorkflowPatchError` naming the closest node ids, titles or inputs when a path
 * does not match (a title shared by several nodes is refused too: use the id), and the
 * parse errors when the workflow or a patched link breaks the graph.
 *
 * @example
 * const next = patchWorkflow(workflow, { 'Positive Prompt.text': 'a lighthouse at dusk', '3.seed': 42 });
 */
export function patchWorkflow(workflow: ApiWorkflow | string, patches: WorkflowPatches): ApiWorkflow {
  const result = parseWorkflow(workflow);
  const titles = indexTitles(result);
  let linked = false;
  for (const entry of entriesOf(patches)) {
    if (!Array.isArray(entry) || entry.length !== 2) {
      throw new InvalidArgumentError({
        argument: 'patches',
        message: 'Each patch must be a [path, value] pair, such as ["6.text", "a cat"].',
      });
    }
    const [path, value] = entry as readonly [string, unknown];
    const target = resolveTarget(result, titles, path);
    const copy = copyValue(value, path);
    if (Array.isArray(copy)) linked = true;
    result[target.nodeId]!.inputs[target.input] = copy;
  }
  // A patched list is a link: check the graph again (missing source, cycle).
  return linked ? parseWorkflow(result) : result;
}
