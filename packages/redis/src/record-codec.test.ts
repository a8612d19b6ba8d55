import type { JobRecord } from '@comfy-serverless/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeRecord, encodeRecord } from './record-codec';

// JSON values as a journal record holds them (no undefined, no NaN: JSON has neither).
const json = fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.parse(JSON.stringify(value)) as unknown);
const bytes = fc.uint8Array({ maxLength: 64 });

describe('record codec', () => {
  it('round-trips any record, byte arrays included', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.dictionary(fc.string({ maxLength: 8 }), json, { maxKeys: 5 }),
        fc.array(
          fc.record({ name: fc.string({ maxLength: 12 }), data: fc.oneof(bytes, fc.base64String()) }),
          {
            maxLength: 3,
          },
        ),
        fc.option(bytes, { nil: undefined }),
        (jobId, workflow, images, outputBytes) => {
          const record: JobRecord = {
            jobId,
            status: 'completed',
            version: 3,
            createdAt: 1_700_000_000_000,
            updatedAt: 1_700_000_000_500,
            requestHash: 'h',
            request: { workflow: workflow as JobRecord['request']['workflow'], images },
            attempts: [
              { providerId: 'p', submittedAt: 1, remote: { remoteId: 'r', data: { nested: workflow } } },
            ],
            ...(outputBytes === undefined
              ? {}
              : {
                  result: {
                    jobId,
                    status: 'completed',
                    outputs: [
                      { nodeId: '9', kind: 'image', filename: 'a.png', mime: 'image/png', data: outputBytes },
                    ],
                    timing: { queuedMs: 1, executionMs: 2, totalMs: 3 },
                    cost: { usd: 0.1234567890123, gpuSeconds: 2, providerId: 'p' },
                    providerId: 'p',
                    attempts: 1,
                  },
                }),
          };
          const decoded = decodeRecord(encodeRecord(record));
          expect(decoded).toEqual(record);
          for (const [index, image] of images.entries()) {
            expect(decoded.request.images[index]?.data instanceof Uint8Array).toBe(
              image.data instanceof Uint8Array,
            );
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keeps a Buffer as bytes and leaves look-alike objects with other keys alone', () => {
    const record = {
      jobId: 'a',
      request: { workflow: {}, images: [{ name: 'x', data: Buffer.from([1, 2, 3]) }] },
      metadata: { __comfyServerlessBytes: 'AQID', other: 1 },
    } as unknown as JobRecord;
    const decoded = decodeRecord(encodeRecord(record)) as unknown as typeof record & {
      metadata: Record<string, unknown>;
    };
    expect([...(decoded.request.images[0]!.data as Uint8Array)]).toEqual([1, 2, 3]);
    expect(decoded.metadata).toEqual({ __comfyServerlessBytes: 'AQID', other: 1 });
  });
});
