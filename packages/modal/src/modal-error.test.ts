import {
  ApiCallError,
  ConfigurationError,
  JobExpiredError,
  JobFailedError,
  JobTimeoutError,
  LoadApiKeyError,
  SubmissionUnknownError,
} from '@comfy-serverless/core';
import { describe, expect, it } from 'vitest';
import { isCancellation, isPollTimeout, mapModalError } from './modal-error';
import { grpcError, modalError } from './test';

const target = { app: 'comfyui', cls: 'ComfyWorker', method: 'run' };

describe('mapModalError', () => {
  it('maps each Modal error to a typed error with the right retry flag', () => {
    const submit = { phase: 'submit' as const, target };
    const cases: Array<[Error, (error: unknown) => boolean, boolean]> = [
      [
        modalError('NotFoundError', "Class 'comfyui/ComfyWorker' not found"),
        ConfigurationError.isInstance,
        false,
      ],
      [modalError('FunctionTimeoutError', 'Timeout: 300s'), JobTimeoutError.isInstance, false],
      [modalError('InternalFailure', 'Internal failure'), JobFailedError.isInstance, true],
      [modalError('RemoteError', 'Remote error: ValueError: bad'), JobFailedError.isInstance, false],
      [
        modalError('RemoteError', 'Remote error: container exited (out of memory)'),
        JobFailedError.isInstance,
        true,
      ],
      [
        modalError('InvalidError', 'Redeploy with Modal Python SDK >= 1.2'),
        ConfigurationError.isInstance,
        false,
      ],
      [grpcError(16, 'invalid token'), LoadApiKeyError.isInstance, false],
      [grpcError(7, 'denied'), ConfigurationError.isInstance, false],
      [grpcError(14, 'unavailable'), ApiCallError.isInstance, true],
      // A spawn whose answer may have been lost after Modal queued the call is never resent.
      [grpcError(4, 'deadline exceeded'), SubmissionUnknownError.isInstance, false],
      [grpcError(13, 'internal'), SubmissionUnknownError.isInstance, false],
      [grpcError(8, 'rate limited'), ApiCallError.isInstance, true],
      [grpcError(3, 'bad argument'), ApiCallError.isInstance, false],
    ];
    for (const [error, check, retryable] of cases) {
      const mapped = mapModalError(error, submit);
      expect(check(mapped), `${error.name} ${error.message}`).toBe(true);
      expect(mapped.isRetryable, `${error.name} ${error.message}`).toBe(retryable);
    }
  });

  it('reads a not-found while watching as an expired call, not a missing deployment', () => {
    const mapped = mapModalError(grpcError(5, 'not found'), { phase: 'watch', target, callId: 'fc-1' });
    expect(JobExpiredError.isInstance(mapped)).toBe(true);
    expect((mapped as JobExpiredError).remoteId).toBe('fc-1');
  });

  it('tells a poll round ending from a cancellation', () => {
    expect(isPollTimeout(modalError('TimeoutError', 'Timeout exceeded: 30000ms'))).toBe(true);
    expect(isPollTimeout(modalError('FunctionTimeoutError', 'Timeout: 300s'))).toBe(false);
    expect(isCancellation(modalError('RemoteError', 'Remote error: input was cancelled'))).toBe(true);
    expect(isCancellation(modalError('RemoteError', 'Remote error: ValueError'))).toBe(false);
  });
});
