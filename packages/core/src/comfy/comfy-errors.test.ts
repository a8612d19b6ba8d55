import { describe, expect, it } from 'vitest';
import { ComfyExecutionError, ComfyValidationError } from '../spec/errors';
import { toComfyExecutionError, toComfyValidationError } from './comfy-errors';

describe('toComfyValidationError', () => {
  it('keeps node_errors, normalised and raw, and says what to do', () => {
    const body = {
      error: {
        type: 'prompt_outputs_failed_validation',
        message: 'Prompt outputs failed validation',
        details: '',
        extra_info: {},
      },
      node_errors: {
        '4': {
          errors: [
            {
              type: 'value_not_in_list',
              message: 'Value not in list',
              details: "ckpt_name: 'x.safetensors' not in []",
              extra_info: { input_name: 'ckpt_name', input_config: null, received_value: 'x.safetensors' },
            },
          ],
          dependent_outputs: ['9'],
          class_type: 'CheckpointLoaderSimple',
        },
      },
    };
    const error = toComfyValidationError(body, { providerId: 'p' });
    expect(ComfyValidationError.isInstance(error)).toBe(true);
    expect(error?.type).toBe('prompt_outputs_failed_validation');
    expect(error?.nodeErrors).toEqual([
      {
        nodeId: '4',
        classType: 'CheckpointLoaderSimple',
        type: 'value_not_in_list',
        message: 'Value not in list',
        details: "ckpt_name: 'x.safetensors' not in []",
        input: 'ckpt_name',
      },
    ]);
    expect(error?.rawNodeErrors).toEqual(body.node_errors);
    expect(error?.isRetryable).toBe(false);
    expect(error?.message).toMatch(/install the model/);
    expect(error?.providerId).toBe('p');
  });

  it('handles an unknown node type with empty node_errors, and ignores other bodies', () => {
    const error = toComfyValidationError({
      error: {
        type: 'invalid_prompt',
        message: 'Cannot execute because node Foo does not exist.',
        details: "Node ID '#3'",
      },
      node_errors: {},
    });
    expect(error?.type).toBe('invalid_prompt');
    expect(error?.message).toMatch(/custom node/);
    expect(toComfyValidationError({ detail: 'nope' })).toBeUndefined();
    expect(toComfyValidationError('text')).toBeUndefined();
  });
});

describe('toComfyExecutionError', () => {
  it('carries node id, node type and exception type; out of memory is retryable elsewhere', () => {
    const error = toComfyExecutionError({
      prompt_id: 'p',
      node_id: '3',
      node_type: 'KSampler',
      exception_type: 'torch.OutOfMemoryError',
      exception_message: 'CUDA out of memory',
    });
    expect(ComfyExecutionError.isInstance(error)).toBe(true);
    expect([error.nodeId, error.nodeType, error.exceptionType]).toEqual([
      '3',
      'KSampler',
      'torch.OutOfMemoryError',
    ]);
    expect(error.isRetryable).toBe(true);
    expect(error.message).toMatch(/node 3 \(KSampler\).*CUDA out of memory.*more memory/);
    const plain = toComfyExecutionError({
      node_id: 7,
      exception_type: 'ValueError',
      exception_message: 'bad',
    });
    expect(plain.nodeId).toBe('7');
    expect(plain.isRetryable).toBe(false);
  });
});
