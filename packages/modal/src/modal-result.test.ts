import { ComfyServerlessError, InvalidResponseError, JobCancelledError } from '@comfy-serverless/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildRunRequest, decodeRunResult, runResultEvents } from './modal-result';
import { TINY_PNG } from './test';

const context = { providerId: 'modal:test', jobId: 'j', source: 'test' };

describe('decodeRunResult', () => {
  it('decodes the same outputs from bytes (SDK) and base64 (HTTP)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.constantFrom('image', 'video', 'audio', 'gif', 'file'),
        (bytes, kind) => {
          const output = { nodeId: '9', kind, filename: 'out.bin', mime: 'application/octet-stream' };
          const fromBytes = decodeRunResult(
            { outputs: [{ ...output, data: bytes }], timing: { executionMs: 1 } },
            context,
          );
          const fromBase64 = decodeRunResult(
            {
              outputs: [{ ...output, data: Buffer.from(bytes).toString('base64') }],
              timing: { executionMs: 1 },
            },
            context,
          );
          expect(Buffer.from(fromBytes.outputs[0]!.data!).equals(Buffer.from(bytes))).toBe(true);
          expect(Buffer.from(fromBase64.outputs[0]!.data!).equals(Buffer.from(bytes))).toBe(true);
          expect(fromBytes.outputs[0]!.kind).toBe(kind);
        },
      ),
    );
  });

  it('throws only typed errors, whatever the container returns', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        try {
          const result = decodeRunResult(value, context);
          expect(Array.isArray(result.outputs)).toBe(true);
        } catch (error) {
          expect(InvalidResponseError.isInstance(error)).toBe(true);
        }
      }),
    );
  });

  it('lists every problem of a malformed result', () => {
    const error = (() => {
      try {
        decodeRunResult(
          { outputs: [{ kind: 'image' }, { nodeId: '1', filename: 'a.png', data: '@@not base64@@' }] },
          context,
        );
        return undefined;
      } catch (caught) {
        return caught as InvalidResponseError;
      }
    })();
    expect(error?.issues).toEqual([
      'outputs.0.nodeId: expected a string',
      'outputs.0.filename: expected a string',
      'outputs.1.data: not base64',
    ]);
  });

  it('guesses a MIME type from the file name when the container sent none, and maps unknown kinds to file', () => {
    const result = decodeRunResult(
      {
        outputs: [{ nodeId: 9, kind: 'hologram', filename: 'clip.webm', data: TINY_PNG }],
        timing: { executionMs: 3 },
      },
      context,
    );
    expect(result.outputs[0]).toMatchObject({ nodeId: '9', kind: 'file', mime: 'video/webm' });
  });

  it('treats a success without outputs as a failure that says to add an output node', () => {
    const result = decodeRunResult({ outputs: [], timing: { executionMs: 5 } }, context);
    expect(result.error?.message).toContain('SaveImage');
  });

  it('turns an interrupted job into a cancelled event', () => {
    const result = decodeRunResult(
      { outputs: [], timing: { executionMs: 5 }, error: { type: 'interrupted', message: 'stop' } },
      context,
    );
    expect(JobCancelledError.isInstance(result.error)).toBe(true);
    expect(runResultEvents(result, 0)).toEqual([{ type: 'cancelled' }]);
  });

  it('types an unknown failure as retryable, since another container may succeed', () => {
    const result = decodeRunResult({ error: { type: 'server', message: 'ComfyUI did not start' } }, context);
    expect(ComfyServerlessError.isInstance(result.error)).toBe(true);
    expect(result.error?.isRetryable).toBe(true);
  });
});

describe('buildRunRequest', () => {
  it('accepts bytes, base64 and data URIs, and sends bytes or base64 as asked', () => {
    const base64 = Buffer.from(TINY_PNG).toString('base64');
    const request = {
      jobId: 'j',
      workflow: {},
      attempt: 1,
      images: [
        { name: 'a.png', data: TINY_PNG },
        { name: 'b.png', data: base64 },
        { name: 'c.png', data: `data:image/png;base64,${base64}` },
      ],
    };
    const asBytes = buildRunRequest(request, { encoding: 'bytes', submittedAt: 1 });
    for (const image of asBytes.images)
      expect(Buffer.from(image.data as Uint8Array).equals(Buffer.from(TINY_PNG))).toBe(true);
    const asBase64 = buildRunRequest(request, { encoding: 'base64', submittedAt: 1 });
    expect(asBase64.images.map((image) => image.data)).toEqual([base64, base64, base64]);
    expect(asBase64.submittedAt).toBe(1);
    expect(request.images[2]!.data).toContain('data:');
  });
});
