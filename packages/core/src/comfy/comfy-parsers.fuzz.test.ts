import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  historyResponseSchema,
  outputFileSchema,
  promptResponseSchema,
  queueResponseSchema,
} from './comfy-api';
import { listOutputs, mimeOfFilename } from './outputs';
import { parseSocketBinary, parseSocketText } from './socket-message';

// 10,000 cases per property in CI; FUZZ_RUNS=100000 for the nightly-size run (FUZZ_SEED replays).
const RUNS = Math.max(1, Number.parseInt(process.env.FUZZ_RUNS ?? '', 10) || 10_000);
// A fixed seed keeps CI deterministic; FUZZ_SEED=random explores, FUZZ_SEED=<n> replays.
const SEED = process.env.FUZZ_SEED === 'random' ? undefined : Number(process.env.FUZZ_SEED ?? 20261126);
const settings = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };
const TIMEOUT_MS = Math.max(20_000, RUNS * 2);

const MESSAGE_TYPES = [
  'status',
  'execution_start',
  'execution_cached',
  'executing',
  'progress',
  'progress_state',
  'executed',
  'execution_success',
  'execution_error',
  'execution_interrupted',
  'crystools.monitor',
  '__proto__',
  'constructor',
] as const;
const KNOWN = new Set([...MESSAGE_TYPES.slice(0, 10), 'preview', 'text', 'unknown']);

/** JSON-ish values with the keys ComfyUI uses, so that schemas are reached and half-matched. */
const hostileValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom(null, true, false, 0, -1, 1e308, Number.NaN, Number.POSITIVE_INFINITY, '', '0', '..'),
    fc.string(),
    fc.double(),
    fc.integer(),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(
      fc.constantFrom(
        'prompt_id',
        'node',
        'nodes',
        'value',
        'max',
        'output',
        'status',
        'exec_info',
        'queue_remaining',
        'sid',
        'timestamp',
        'node_id',
        'node_type',
        'state',
        'images',
        'filename',
        'subfolder',
        'type',
        '__proto__',
        'constructor',
      ),
      tie('value'),
      { maxKeys: 5 },
    ),
  ),
})).value;

describe(`ComfyUI parsers under fuzzing (${RUNS} cases each)`, () => {
  it(
    'parseSocketText never throws on any text and returns a known message type',
    () => {
      fc.assert(
        fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' })), (text) => {
          const message = parseSocketText(text);
          expect(KNOWN.has(message.type)).toBe(true);
        }),
        settings,
      );
    },
    TIMEOUT_MS,
  );

  it(
    'parseSocketText gives well-typed messages for half-right JSON of every event type',
    () => {
      fc.assert(
        fc.property(fc.constantFrom(...MESSAGE_TYPES), hostileValue, (type, data) => {
          const message = parseSocketText(JSON.stringify({ type, data }));
          expect(KNOWN.has(message.type)).toBe(true);
          switch (message.type) {
            case 'progress':
              expect(typeof message.value).toBe('number');
              expect(typeof message.max).toBe('number');
              break;
            case 'execution_start':
            case 'execution_success':
            case 'execution_error':
            case 'execution_interrupted':
            case 'progress_state':
              expect(typeof message.promptId).toBe('string');
              break;
            case 'execution_cached':
              expect(Array.isArray(message.nodeIds)).toBe(true);
              for (const nodeId of message.nodeIds) expect(typeof nodeId).toBe('string');
              break;
            case 'executed':
              expect(typeof message.nodeId).toBe('string');
              expect(message.output !== null && typeof message.output === 'object').toBe(true);
              break;
            case 'executing':
              expect(message.nodeId === null || typeof message.nodeId === 'string').toBe(true);
              break;
            default:
              break;
          }
        }),
        settings,
      );
    },
    TIMEOUT_MS,
  );

  it(
    'parseSocketBinary never throws and never reads past the frame, whatever the header says',
    () => {
      const frame = fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        // A header of a known event type with a length field that may lie.
        fc
          .tuple(
            fc.constantFrom(1, 2, 3, 4, 0, 5, 0xffffffff),
            fc.oneof(fc.constantFrom(0, 1, 2, 3, 0xffffffff, 0x7fffffff), fc.nat()),
            fc.uint8Array({ maxLength: 64 }),
          )
          .map(([eventType, second, rest]) => {
            const bytes = new Uint8Array(8 + rest.length);
            const view = new DataView(bytes.buffer);
            view.setUint32(0, eventType >>> 0);
            view.setUint32(4, second >>> 0);
            bytes.set(rest, 8);
            return bytes;
          }),
      );
      fc.assert(
        fc.property(frame, fc.nat({ max: 8 }), (bytes, offset) => {
          // Also a view into a larger buffer, as ws hands out.
          const backing = new Uint8Array(bytes.length + offset + 8).fill(0xee);
          backing.set(bytes, offset);
          const view = backing.subarray(offset, offset + bytes.length);
          const message = parseSocketBinary(view);
          expect(KNOWN.has(message.type)).toBe(true);
          if (message.type === 'preview') {
            expect(message.data.byteLength).toBeLessThanOrEqual(Math.max(0, bytes.length - 8));
            expect(typeof message.mime).toBe('string');
            // Bytes outside the frame (0xee filler) never leak into the image.
            expect([...message.data]).toEqual([...bytes.subarray(bytes.length - message.data.byteLength)]);
          }
          if (message.type === 'text') {
            expect(typeof message.nodeId).toBe('string');
            expect(typeof message.text).toBe('string');
          }
        }),
        settings,
      );
    },
    TIMEOUT_MS,
  );

  it(
    'the history, queue and prompt schemas only accept or reject: they never throw',
    () => {
      fc.assert(
        fc.property(hostileValue, (value) => {
          for (const schema of [
            historyResponseSchema,
            queueResponseSchema,
            promptResponseSchema,
            outputFileSchema,
          ]) {
            const parsed = schema.safeParse(value);
            expect(typeof parsed.success).toBe('boolean');
          }
        }),
        settings,
      );
    },
    TIMEOUT_MS,
  );

  it(
    'listOutputs reads any outputs object without throwing and lists only string file names',
    () => {
      const outputs = fc.dictionary(
        fc.oneof(fc.string({ maxLength: 4 }), fc.constantFrom('9', '__proto__', 'constructor')),
        fc.oneof(
          hostileValue,
          fc.dictionary(
            fc.constantFrom('images', 'gifs', 'video', 'audio', 'text', 'animated', 'meshes'),
            fc.oneof(
              hostileValue,
              fc.array(
                fc.record(
                  {
                    filename: fc.oneof(
                      fc.string(),
                      fc.constantFrom('../../etc/passwd', '/etc/passwd', 'a.png'),
                    ),
                    subfolder: fc.oneof(fc.string(), fc.constant('..')),
                    type: fc.constantFrom('output', 'temp', 'input', 'other'),
                  },
                  { requiredKeys: [] },
                ),
                { maxLength: 3 },
              ),
            ),
            { maxKeys: 3 },
          ),
        ),
        { maxKeys: 4 },
      );
      fc.assert(
        fc.property(outputs, fc.boolean(), (value, includeTemp) => {
          const items = listOutputs(value as Parameters<typeof listOutputs>[0], { includeTemp });
          for (const item of items) {
            expect(typeof item.filename).toBe('string');
            expect(typeof item.mime).toBe('string');
            if (item.file) expect(typeof item.file.subfolder).toBe('string');
            if (!includeTemp) expect(item.file?.type).not.toBe('temp');
          }
        }),
        settings,
      );
    },
    TIMEOUT_MS,
  );

  // Names whose extension is an Object.prototype key are left to the case below.
  const PROTOTYPE_KEYS = new Set(
    Object.getOwnPropertyNames(Object.prototype).map((key) => key.toLowerCase()),
  );
  it(
    'mimeOfFilename gives a string for any other name',
    () => {
      fc.assert(
        fc.property(
          fc.string().filter((name) => !PROTOTYPE_KEYS.has(name.split('.').pop()?.toLowerCase() ?? '')),
          (name) => {
            expect(typeof mimeOfFilename(name)).toBe('string');
          },
        ),
        settings,
      );
    },
    TIMEOUT_MS,
  );

  // Found by this suite: `__proto__` and `x.constructor` used to give Object.prototype and
  // Function; the extension lookup is now an own-property lookup.
  it('mimeOfFilename gives a string for names ending in an Object.prototype key', () => {
    for (const name of ['__proto__', 'render.constructor', 'a.toString', 'b.hasOwnProperty'])
      expect(typeof mimeOfFilename(name), name).toBe('string');
  });
});
