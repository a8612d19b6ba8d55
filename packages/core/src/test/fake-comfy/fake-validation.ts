import type { FakeNodeDefinition } from './default-object-info';

type ErrorItem = { type: string; message: string; details: string; extra_info: Record<string, unknown> };

function isLink(value: unknown): value is [string, number] {
  return Array.isArray(value) && value.length === 2 && typeof value[1] === 'number';
}

function topError(type: string, message: string, details = ''): ErrorItem {
  return { type, message, details, extra_info: {} };
}

/** The node ids of a prompt whose type is an output node. */
export function outputNodesOf(
  prompt: Record<string, { class_type?: unknown }>,
  nodeTypes: Record<string, FakeNodeDefinition>,
): string[] {
  return Object.entries(prompt)
    .filter(
      ([, node]) =>
        typeof node.class_type === 'string' &&
        Object.hasOwn(nodeTypes, node.class_type) &&
        nodeTypes[node.class_type]?.output_node === true,
    )
    .map(([id]) => id);
}

/**
 * Validates a prompt the way ComfyUI's `validate_prompt` does, for what this fake knows:
 * missing or unknown node types (`invalid_prompt`), no output node (`prompt_no_outputs`),
 * missing required inputs, links to missing nodes, list values not in the list (the
 * "model not found" case, `value_not_in_list`) and numbers out of range. Returns the 400
 * body, or undefined when the prompt is valid.
 */
export function validateFakePrompt(
  prompt: unknown,
  nodeTypes: Record<string, FakeNodeDefinition>,
): Record<string, unknown> | undefined {
  if (prompt === null || typeof prompt !== 'object' || Array.isArray(prompt)) {
    return { error: topError('no_prompt', 'No prompt provided', 'No prompt provided'), node_errors: {} };
  }
  const nodes = prompt as Record<string, { class_type?: unknown; inputs?: Record<string, unknown> }>;
  for (const [id, node] of Object.entries(nodes)) {
    if (node === null || typeof node !== 'object' || typeof node.class_type !== 'string') {
      return {
        error: topError(
          'invalid_prompt',
          'Cannot execute because a node is missing the class_type property.',
          `Node ID '#${id}'`,
        ),
        node_errors: {},
      };
    }
    if (!Object.hasOwn(nodeTypes, node.class_type)) {
      return {
        error: topError(
          'invalid_prompt',
          `Cannot execute because node ${node.class_type} does not exist.`,
          `Node ID '#${id}'`,
        ),
        node_errors: {},
      };
    }
  }
  const outputs = outputNodesOf(nodes as Record<string, { class_type?: unknown }>, nodeTypes);
  if (outputs.length === 0) {
    return { error: topError('prompt_no_outputs', 'Prompt has no outputs', ''), node_errors: {} };
  }
  const nodeErrors: Record<string, unknown> = {};
  for (const [id, node] of Object.entries(nodes)) {
    const definition = nodeTypes[node.class_type as string]!;
    const inputs = node.inputs ?? {};
    const errors: ErrorItem[] = [];
    for (const name of Object.keys(definition.input.required ?? {})) {
      if (!(name in inputs)) {
        errors.push({
          type: 'required_input_missing',
          message: 'Required input is missing',
          details: name,
          extra_info: { input_name: name },
        });
      }
    }
    const specs = { ...(definition.input.optional ?? {}), ...(definition.input.required ?? {}) };
    for (const [name, value] of Object.entries(inputs)) {
      const spec = specs[name];
      if (!Array.isArray(spec)) continue;
      if (isLink(value)) {
        if (nodes[value[0]] === undefined) {
          errors.push({
            type: 'bad_linked_input',
            message: 'Bad linked input, must be a length-2 list of [string, int]',
            details: `${name}, ${JSON.stringify(value)}`,
            extra_info: { input_name: name, received_value: value },
          });
        }
        continue;
      }
      const [kind, config] = spec as [unknown, Record<string, unknown> | undefined];
      if (Array.isArray(kind)) {
        if (!kind.includes(value)) {
          const shown =
            kind.length > 20
              ? `${JSON.stringify(kind.slice(0, 20)).slice(0, -1)}, ...]`
              : JSON.stringify(kind);
          errors.push({
            type: 'value_not_in_list',
            message: 'Value not in list',
            details: `${name}: '${String(value)}' not in ${shown}`,
            extra_info: {
              input_name: name,
              input_config: kind.length > 20 ? null : spec,
              received_value: value,
            },
          });
        }
        continue;
      }
      if ((kind === 'INT' || kind === 'FLOAT') && typeof value === 'number' && config) {
        if (typeof config['min'] === 'number' && value < config['min']) {
          errors.push({
            type: 'value_smaller_than_min',
            message: `Value ${value} smaller than min of ${config['min']}`,
            details: name,
            extra_info: { input_name: name, received_value: value },
          });
        }
        if (typeof config['max'] === 'number' && value > config['max']) {
          errors.push({
            type: 'value_bigger_than_max',
            message: `Value ${value} bigger than max of ${config['max']}`,
            details: name,
            extra_info: { input_name: name, received_value: value },
          });
        }
      }
    }
    if (errors.length > 0) {
      nodeErrors[id] = { errors, dependent_outputs: outputs, class_type: node.class_type };
    }
  }
  if (Object.keys(nodeErrors).length === 0) return undefined;
  return {
    error: topError('prompt_outputs_failed_validation', 'Prompt outputs failed validation', ''),
    node_errors: nodeErrors,
  };
}
