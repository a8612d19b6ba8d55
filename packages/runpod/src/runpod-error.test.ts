import { ComfyExecutionError, ComfyValidationError, JobFailedError } from '@comfy-serverless/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { failureMessage, mapJobFailure, parseNodeErrors } from './runpod-error';

const context = { providerId: 'runpod:e', remoteId: 'abc-u1', secrets: ['sk-SECRET-1234'] };

describe('mapJobFailure', () => {
  it("reads worker-comfyui's validation message with several nodes", () => {
    const error = mapJobFailure(
      {
        error: [
          'Workflow validation failed:',
          "• Node 4 (errors): [{'type': 'value_not_in_list', 'message': 'Value not in list', 'details': \"ckpt_name: 'flux1-dev.safetensors' not in ['sdxl.safetensors']\"}]",
          "• Node 4 (dependent_outputs): ['9']",
          '• Node 4 (class_type): CheckpointLoaderSimple',
          "• Node 7 (errors): [{'type': 'value_not_in_list', 'message': 'Value not in list', 'details': \"lora_name: 'detail.safetensors' not in []\"}]",
          '• Node 7 (class_type): LoraLoader',
        ].join('\n'),
      },
      context,
    );
    expect(ComfyValidationError.isInstance(error)).toBe(true);
    const validation = error as ComfyValidationError;
    expect(validation.nodeErrors.map((node) => [node.nodeId, node.classType, node.details])).toEqual([
      ['4', 'CheckpointLoaderSimple', 'flux1-dev.safetensors'],
      ['7', 'LoraLoader', 'detail.safetensors'],
    ]);
    expect(validation.message).toContain('/runpod-volume/models/loras/');
    expect(validation.message).toContain('node 7 (LoraLoader)');
  });

  it("unwraps the RunPod SDK's JSON error envelope", () => {
    expect(
      failureMessage(
        JSON.stringify({ error_type: "<class 'RuntimeError'>", error_message: 'CUDA out of memory' }),
      ),
    ).toBe('CUDA out of memory');
    const error = mapJobFailure(
      {
        error: JSON.stringify({
          error_message: 'Workflow execution error: Node Type: VAEDecode, Node ID: 8, Message: boom',
        }),
      },
      context,
    );
    expect(ComfyExecutionError.isInstance(error)).toBe(true);
    expect((error as ComfyExecutionError).nodeId).toBe('8');
  });

  it('redacts secrets from the message', () => {
    const error = mapJobFailure(
      { error: 'failed with token sk-SECRET-1234', details: ['sk-SECRET-1234'] },
      context,
    );
    expect(JobFailedError.isInstance(error)).toBe(true);
    expect(error.message).not.toContain('sk-SECRET-1234');
    expect(JSON.stringify(error)).not.toContain('sk-SECRET-1234');
  });

  it('always returns a typed error with a message, whatever the platform sent (property)', () => {
    fc.assert(
      fc.property(fc.anything(), fc.anything(), (errorValue, details) => {
        const error = mapJobFailure({ error: errorValue, details }, context);
        expect(error.message.length).toBeGreaterThan(0);
        expect(error.providerId).toBe('runpod:e');
      }),
    );
    fc.assert(
      fc.property(fc.array(fc.string()), (lines) => {
        for (const node of parseNodeErrors(lines)) expect(typeof node.nodeId).toBe('string');
      }),
    );
  });
});
