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
});
