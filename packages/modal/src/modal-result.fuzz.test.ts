import { ComfyServerlessError } from '@comfy-serverless/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeRunResult, runResultEvents } from './modal-result';

// 10,000 cases per property in CI; FUZZ_RUNS=100000 for the nightly-size run (FUZZ_SEED replays).
const RUNS = Math.max(1, Number.parseInt(process.env.FUZZ_RUNS ?? '', 10) || 10_000);
// A fixed seed keeps CI deterministic; FUZZ_SEED=random explores, FUZZ_SEED=<n> replays.
const SEED = process.env.FUZZ_SEED === 'random' ? undefined : Number(process.env.FUZZ_SEED ?? 20261126);
const settings = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };
const TIMEOUT_MS = Math.max(20_000, RUNS * 2);

/** Values shaped like what ComfyWorker.run returns, half right and half wrong. */
const hostileValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom(null, undefined, true, 0, -1, Number.NaN, 1e308, '', 'image', 'image/png', 'text/html"'),
    fc.string(),
    fc.double(),
    fc.uint8Array({ maxLength: 16 }),
    fc.base64String({ maxLength: 24 }),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(
      fc.constantFrom(
        'outputs',
        'timing',
        'error',
        'worker',
        'containerId',
        'nodeId',
        'kind',
        'filename',
        'mime',
        'data',
        'text',
        'url',
        'executionMs',
        'startedAt',
        'queuedMs',
        'coldStartMs',
        'name',
        'message',
        'nodeErrors',
        'isRetryable',
        'executionStarted',
        '__proto__',
      ),
      tie('value'),
      // Objects without a prototype are left to the known-bug case below.
      { maxKeys: 6, noNullPrototype: true },
    ),
  ),
})).value;

const result = fc.oneof(
  hostileValue,
  fc.record(
    {
      outputs: fc.oneof(
        hostileValue,
        fc.array(
          fc.record(
            {
              nodeId: fc.oneof(fc.string(), fc.integer(), hostileValue),
              kind: fc.oneof(fc.constantFrom('image', 'video', 'text', 'file', 'bogus'), hostileValue),
              filename: fc.oneof(fc.string(), fc.constantFrom('../../x.png', '/etc/passwd'), hostileValue),
              mime: fc.oneof(fc.string(), hostileValue),
              data: fc.oneof(
                fc.base64String({ maxLength: 24 }),
                fc.uint8Array({ maxLength: 16 }),
                hostileValue,
              ),
              text: hostileValue,
              url: hostileValue,
            },
            { requiredKeys: [], noNullPrototype: true },
          ),
          { maxLength: 3 },
        ),
      ),
      timing: hostileValue,
      error: hostileValue,
      worker: hostileValue,
    },
    { requiredKeys: [], noNullPrototype: true },
  ),
);

describe(`Modal decodeRunResult under fuzzing (${RUNS} cases)`, () => {
  it(
    'decodes or throws a typed error, and its events end in exactly one terminal event',
    () => {
      fc.assert(
        fc.property(result, (value) => {
          let decoded: ReturnType<typeof decodeRunResult>;
          try {
            decoded = decodeRunResult(value, {
              providerId: 'modal:fuzz',
              jobId: 'job',
              source: 'ComfyWorker.run',
            });
          } catch (error) {
            expect(ComfyServerlessError.isInstance(error)).toBe(true);
            return;
          }
          for (const output of decoded.outputs) {
            expect(typeof output.filename).toBe('string');
            expect(typeof output.mime).toBe('string');
            expect(typeof output.nodeId).toBe('string');
          }
          if (decoded.error !== undefined) expect(ComfyServerlessError.isInstance(decoded.error)).toBe(true);
          const events = runResultEvents(decoded, undefined);
          const terminal = events.filter((event) =>
            ['completed', 'failed', 'cancelled'].includes(event.type),
          );
          expect(terminal).toHaveLength(1);
          expect(events.at(-1)).toBe(terminal[0]);
        }),
        settings,
      );
    },
    TIMEOUT_MS,
  );

  // Found by this suite (fixed): decodeRunResult used `String(value.error)`, which throws a
  // TypeError for an array holding an object without a prototype (as a CBOR or pickle
  // decoder may produce), instead of the typed error the function promises.
  it('decodes an error value that cannot be turned into a string without throwing an untyped error', () => {
    expect(() =>
      decodeRunResult({ error: [Object.create(null)] }, { source: 'ComfyWorker.run' }),
    ).not.toThrow();
  });
});
