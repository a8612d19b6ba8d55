import { describe, expect, it } from 'vitest';
import { WorkflowFormatError, type WorkflowIssue, WorkflowValidationError } from '../spec/errors';
import { parseWorkflow } from './parse-workflow';

function issuesOf(input: unknown): WorkflowIssue[] {
  try {
    parseWorkflow(input);
  } catch (error) {
    if (WorkflowValidationError.isInstance(error)) return error.issues;
    throw error;
  }
  throw new Error('expected a WorkflowValidationError');
}

function formatError(input: unknown): WorkflowFormatError {
  try {
    parseWorkflow(input);
  } catch (error) {
    if (WorkflowFormatError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected a WorkflowFormatError');
}

const valid = {
  '1': {
    class_type: 'CheckpointLoaderSimple',
    inputs: { ckpt_name: 'a.safetensors' },
    _meta: { title: 'Load' },
  },
  '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'x' } },
};

describe('parseWorkflow', () => {
  it('accepts an object or JSON text and returns an equal deep copy', () => {
    const fromObject = parseWorkflow(valid);
    expect(fromObject).toEqual(valid);
    expect(fromObject).not.toBe(valid);
    expect(fromObject['1']!.inputs).not.toBe(valid['1'].inputs);
    fromObject['2']!.inputs.filename_prefix = 'changed';
    expect(valid['2'].inputs.filename_prefix).toBe('x');
    expect(parseWorkflow(JSON.stringify(valid))).toEqual(valid);
  });

  it('refuses a UI-format export and says to use "Save (API format)"', () => {
    const ui = {
      last_node_id: 9,
      last_link_id: 9,
      nodes: [{ id: 3, type: 'KSampler' }],
      links: [[1, 4, 0, 3, 0, 'MODEL']],
      version: 0.4,
    };
    const error = formatError(ui);
    expect(error.message).toContain('Save (API format)');
    expect(formatError(JSON.stringify(ui)).message).toContain('UI-format');
  });

  it('refuses what is not a workflow object with WorkflowFormatError', () => {
    expect(formatError('{not json').message).toMatch(/not valid JSON/);
    expect(formatError([1, 2]).message).toMatch(/an array/);
    expect(formatError(null).message).toMatch(/null/);
    expect(formatError(42).message).toMatch(/a number/);
    expect(formatError({ prompt: valid, client_id: 'abc' }).message).toMatch(/"prompt" field/);
  });

  it('lists every structural problem with its node id and input', () => {
    const issues = issuesOf({
      '1': { inputs: {} },
      '2': {
        class_type: 'KSampler',
        inputs: { model: ['9', 0], positive: ['1', -1], negative: ['1', 1.5], latent: ['1'] },
      },
      '3': { class_type: 'X', inputs: { a: [1, 0], b: ['1', '0'] } },
      '4': 'not a node',
      '5': { class_type: 'Y' },
    });
    const where = issues.map((issue) => `${issue.nodeId}:${issue.input ?? ''}`);
    expect(where).toEqual(
      expect.arrayContaining([
        '1:',
        '2:model',
        '2:positive',
        '2:negative',
        '2:latent',
        '3:a',
        '3:b',
        '4:',
        '5:',
      ]),
    );
    expect(issues.find((issue) => issue.nodeId === '1')!.message).toMatch(/class_type/);
    expect(issues.find((issue) => issue.input === 'model')!.message).toMatch(
      /node "9", which is not in the workflow/,
    );
    expect(issues.find((issue) => issue.input === 'positive')!.message).toMatch(/non-negative integer/);
    expect(issues.find((issue) => issue.input === 'negative')!.message).toMatch(/non-negative integer/);
  });

  it('refuses an empty workflow', () => {
    expect(issuesOf({})).toEqual([{ message: 'the workflow has no nodes' }]);
  });

  it('finds cycles, self-links included, and names the nodes', () => {
    const issues = issuesOf({
      '1': { class_type: 'A', inputs: { x: ['3', 0] } },
      '2': { class_type: 'B', inputs: { x: ['1', 0] } },
      '3': { class_type: 'C', inputs: { x: ['2', 0] } },
      '4': { class_type: 'D', inputs: { x: ['4', 0] } },
      '5': { class_type: 'E', inputs: { x: ['1', 0] } },
    });
    expect(issues).toHaveLength(2);
    expect(issues[0]!.message).toMatch(/cycle .*"1".*"2".*"3"|cycle .*"3".*"2".*"1"/);
    expect(issues[1]).toMatchObject({ nodeId: '4' });
  });

  it('reports a cycle beside broken nodes in JSON text (found by the 100,000-run fuzz)', () => {
    const text = JSON.stringify({
      '0': { class_type: 'A', inputs: { self: ['0', -1] } },
      '1': [4362931, 'garbage'],
      '2': { class_type: 'B' },
    });
    const issues = issuesOf(text);
    expect(issues.map((issue) => issue.nodeId)).toEqual(['0', '1', '2', '0']);
    expect(issues[3]!.message).toMatch(/cycle/);
  });

  it('handles a long chain without recursion limits', () => {
    const chain: Record<string, unknown> = { '0': { class_type: 'Start', inputs: {} } };
    for (let index = 1; index < 20_000; index++) {
      chain[String(index)] = { class_type: 'Step', inputs: { previous: [String(index - 1), 0] } };
    }
    expect(Object.keys(parseWorkflow(chain))).toHaveLength(20_000);
  });

  it('refuses values JSON cannot carry', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const issues = issuesOf({
      '1': {
        class_type: 'A',
        inputs: { nan: Number.NaN, fn: () => 1, big: 1n, nested: cyclic, date: new Date(0) },
      },
    });
    expect(issues.map((issue) => issue.input).sort()).toEqual(['big', 'date', 'fn', 'nan', 'nested']);
  });

  it('keeps "__proto__" and "toString" as plain keys', () => {
    const text =
      '{"__proto__":{"class_type":"A","inputs":{"__proto__":1}},"toString":{"class_type":"B","inputs":{"x":["__proto__",0]}}}';
    const workflow = parseWorkflow(text);
    expect(Object.getPrototypeOf(workflow)).toBe(Object.prototype);
    expect(Object.keys(workflow)).toEqual(['__proto__', 'toString']);
    const protoKey = ['__', 'proto', '__'].join('');
    expect(Object.hasOwn(Object.getOwnPropertyDescriptor(workflow, protoKey)!.value.inputs, protoKey)).toBe(
      true,
    );
    expect(({} as Record<string, unknown>).class_type).toBeUndefined();
  });
});
