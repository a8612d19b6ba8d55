import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, WorkflowPatchError, WorkflowValidationError } from '../spec/errors';
import type { ApiWorkflow } from '../spec/job';
import { patchWorkflow } from './patch-workflow';

const workflow: ApiWorkflow = {
  '3': {
    class_type: 'KSampler',
    inputs: { seed: 1, steps: 20, cfg: 7, model: ['4', 0], positive: ['6', 0], negative: ['7', 0] },
    _meta: { title: 'KSampler' },
  },
  '4': {
    class_type: 'CheckpointLoaderSimple',
    inputs: { ckpt_name: 'a.safetensors' },
    _meta: { title: 'SDXL v1.0 Base' },
  },
  '6': {
    class_type: 'CLIPTextEncode',
    inputs: { text: 'a cat', clip: ['4', 1] },
    _meta: { title: 'Positive Prompt' },
  },
  '7': {
    class_type: 'CLIPTextEncode',
    inputs: { text: 'blurry', clip: ['4', 1] },
    _meta: { title: 'Negative Prompt' },
  },
  '8': { class_type: 'PreviewImage', inputs: { images: ['3', 0] }, _meta: { title: 'Negative Prompt' } },
};

function patchError(patches: Record<string, unknown>): WorkflowPatchError {
  try {
    patchWorkflow(workflow, patches);
  } catch (error) {
    if (WorkflowPatchError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected a WorkflowPatchError');
}

describe('patchWorkflow', () => {
  it('sets inputs by "id.inputs.name", "id.name" and title, titles with dots included', () => {
    const result = patchWorkflow(workflow, {
      '3.inputs.seed': 42,
      '3.steps': 30,
      'Positive Prompt.text': 'a lighthouse at dusk',
      'SDXL v1.0 Base.ckpt_name': 'sdxl/base.safetensors',
    });
    expect(result['3']!.inputs).toMatchObject({ seed: 42, steps: 30 });
    expect(result['6']!.inputs.text).toBe('a lighthouse at dusk');
    expect(result['4']!.inputs.ckpt_name).toBe('sdxl/base.safetensors');
  });

  it('never changes the caller’s workflow or values', () => {
    const before = structuredClone(workflow);
    const value = { nested: [1, 2] };
    const result = patchWorkflow(workflow, { '6.text': 'changed', '3.cfg': value });
    expect(workflow).toEqual(before);
    expect(result['3']!.inputs.cfg).toEqual(value);
    expect(result['3']!.inputs.cfg).not.toBe(value);
  });

  it('accepts [path, value] pairs and Maps', () => {
    expect(patchWorkflow(workflow, [['3.seed', 5]])['3']!.inputs.seed).toBe(5);
    expect(patchWorkflow(workflow, new Map([['3.seed', 6]]))['3']!.inputs.seed).toBe(6);
  });

  it('refuses an unknown input and names the closest ones', () => {
    const error = patchError({ 'Positive Prompt.txt': 'x' });
    expect(error.path).toBe('Positive Prompt.txt');
    expect(error.suggestions).toEqual(['Positive Prompt.text']);
    expect(error.message).toMatch(/has no input "txt".*Did you mean "Positive Prompt.text"/);
    expect(patchError({ '3.sed': 1 }).suggestions).toContain('3.seed');
  });

  it('refuses an unknown node and names the closest ids and titles', () => {
    const error = patchError({ 'Positive Promt.text': 'x' });
    expect(error.suggestions[0]).toBe('Positive Prompt.text');
    expect(error.message).toMatch(/no node has the id or title "Positive Promt"/);
    expect(patchError({ '33.seed': 1 }).suggestions).toContain('3.seed');
  });

  it('refuses a title shared by several nodes and offers the ids', () => {
    const error = patchError({ 'Negative Prompt.text': 'x' });
    expect(error.suggestions).toEqual(['7.text', '8.text']);
    expect(error.message).toMatch(/belongs to 2 nodes/);
  });

  it('refuses paths without an input, undefined and non-JSON values', () => {
    expect(patchError({ '3': 1 }).message).toMatch(/names no input/);
    expect(patchError({ '3.seed': undefined }).message).toMatch(/no value/);
    expect(patchError({ '3.seed': Number.POSITIVE_INFINITY }).message).toMatch(/finite number/);
    expect(patchError({ '3.seed': 10n }).message).toMatch(/bigint/);
  });

  it('checks the graph again when a patch sets a link', () => {
    expect(patchWorkflow(workflow, { '6.clip': ['4', 1] })['6']!.inputs.clip).toEqual(['4', 1]);
    expect(() => patchWorkflow(workflow, { '4.ckpt_name': ['3', 0] })).toThrow(WorkflowValidationError);
    expect(() => patchWorkflow(workflow, { '6.clip': ['99', 0] })).toThrow(/not in the workflow/);
  });

  it('refuses patches that are not an object of path to value', () => {
    expect(() => patchWorkflow(workflow, null as unknown as Record<string, unknown>)).toThrow(
      InvalidArgumentError,
    );
    expect(() => patchWorkflow(workflow, [['3.seed']] as unknown as [string, unknown][])).toThrow(
      InvalidArgumentError,
    );
  });
});
