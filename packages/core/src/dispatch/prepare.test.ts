import { describe, expect, it } from 'vitest';
import { WorkflowValidationError } from '../spec/errors';
import { prepareWorkflow } from './prepare';

function template() {
  return {
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd15/base.safetensors' } },
    '9': { class_type: 'SaveImage', inputs: { images: ['4', 0], filename_prefix: 'x' } },
  };
}

describe('prepareWorkflow', () => {
  it('serves a repeated template from its cache, frozen so that no job can change it for another', () => {
    const first = prepareWorkflow(template());
    const second = prepareWorkflow(template());
    expect(second).toBe(first);
    expect(Object.isFrozen(first.workflow['4']?.inputs)).toBe(true);
  });

  it('never serves a stale analysis for an object edited in place and sent again', () => {
    const workflow = template();
    const before = prepareWorkflow(workflow);
    workflow['4'].inputs.ckpt_name = 'sdxl/other.safetensors';
    const after = prepareWorkflow(workflow);
    expect(before.requirements.models[0]?.name).toBe('sd15/base.safetensors');
    expect(after.requirements.models[0]?.name).toBe('sdxl/other.safetensors');
    expect(after.fingerprint).not.toBe(before.fingerprint);
  });

  it('refuses a value JSON would change (NaN) even after the same template without it was cached', () => {
    const clean = template();
    prepareWorkflow(clean);
    const withNaN = { ...template(), '5': { class_type: 'EmptyLatentImage', inputs: { width: Number.NaN } } };
    expect(() => prepareWorkflow(withNaN)).toThrowError(WorkflowValidationError);
  });

  it('lists each model once however many nodes load it', () => {
    const workflow = {
      ...template(),
      '10': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd15/base.safetensors' } },
    };
    expect(prepareWorkflow(workflow).requirements.models).toEqual([
      { folder: 'checkpoints', name: 'sd15/base.safetensors' },
    ]);
  });

  it('knows an object sent again only by its content: an edit, an added undefined or a NaN is seen', () => {
    const workflow = template();
    const first = prepareWorkflow(workflow);
    expect(prepareWorkflow(workflow)).toBe(first);
    (workflow['9'].inputs as Record<string, unknown>).filename_prefix = 'y';
    const edited = prepareWorkflow(workflow);
    expect(edited.fingerprint).not.toBe(first.fingerprint);
    expect(edited.workflow['9']?.inputs.filename_prefix).toBe('y');
    (workflow['9'].inputs as Record<string, unknown>).filename_prefix = 'x';
    expect(prepareWorkflow(workflow).fingerprint).toBe(first.fingerprint);
    (workflow['4'].inputs as Record<string, unknown>).seed = Number.NaN;
    expect(() => prepareWorkflow(workflow)).toThrowError(WorkflowValidationError);
  });

  it('keeps the result of each set of inputs apart for one template object', () => {
    const workflow = template();
    const a = prepareWorkflow(workflow, { '9.filename_prefix': 'a' });
    const b = prepareWorkflow(workflow, { '9.filename_prefix': 'b' });
    expect(a.workflow['9']?.inputs.filename_prefix).toBe('a');
    expect(b.workflow['9']?.inputs.filename_prefix).toBe('b');
    expect(prepareWorkflow(workflow, { '9.filename_prefix': 'a' })).toBe(a);
    expect(prepareWorkflow(workflow).workflow['9']?.inputs.filename_prefix).toBe('x');
  });
});
