import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ComfyServerlessError } from '../spec/errors';
import { analyzeWorkflow } from './analyze-workflow';
import { parseWorkflow } from './parse-workflow';
import { patchWorkflow } from './patch-workflow';

// Raw, hostile input (any JSON, any text, half-right graphs) at 10,000 cases per property in
// CI; FUZZ_RUNS=100000 for the nightly-size run (FUZZ_SEED replays). The structured
// properties of well-formed graphs are in workflow.property.test.ts.
const RUNS = Math.max(1, Number.parseInt(process.env.FUZZ_RUNS ?? '', 10) || 10_000);
// A fixed seed keeps CI deterministic; FUZZ_SEED=random explores, FUZZ_SEED=<n> replays.
const SEED = process.env.FUZZ_SEED === 'random' ? undefined : Number(process.env.FUZZ_SEED ?? 20261126);
const settings = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };
const TIMEOUT_MS = Math.max(20_000, RUNS * 3);

const CLASS_TYPES = [
  'CheckpointLoaderSimple',
  'LoraLoader',
  'KSampler',
  'CLIPTextEncode',
  'SaveImage',
  'LoadImage',
  'UNETLoader',
  'EmptyLatentImage',
  '__proto__',
  'constructor',
];
const INPUT_NAMES = [
  'ckpt_name',
  'lora_name',
  'unet_name',
  'image',
  'text',
  'seed',
  'steps',
  'width',
  'model',
  'clip',
];

const jsonish = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom(null, true, 0, -1, 1e308, '', '..', '../../x.safetensors', '/abs.ckpt', 'C:\\x.ckpt'),
    fc.string(),
    fc.double(),
    fc.integer(),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom(...INPUT_NAMES)), tie('value'), {
      maxKeys: 4,
    }),
  ),
})).value;

/** Graphs that are nearly right: real class types, links that may dangle, inputs of any type. */
const nearGraph = fc.dictionary(
  fc.oneof(
    fc.integer({ min: 0, max: 12 }).map(String),
    fc.string({ maxLength: 3 }),
    fc.constant('__proto__'),
  ),
  fc.oneof(
    jsonish,
    fc.record(
      {
        class_type: fc.oneof(fc.constantFrom(...CLASS_TYPES), jsonish),
        inputs: fc.oneof(
          jsonish,
          fc.dictionary(
            fc.constantFrom(...INPUT_NAMES),
            fc.oneof(
              jsonish,
              fc.tuple(fc.integer({ min: -1, max: 14 }).map(String), fc.integer({ min: -1, max: 3 })),
            ),
            { maxKeys: 4 },
          ),
        ),
        _meta: fc.oneof(jsonish, fc.record({ title: fc.string({ maxLength: 8 }) })),
      },
      { requiredKeys: [] },
    ),
  ),
  { maxKeys: 6 },
);

function typedOnly(body: () => void): void {
  try {
    body();
  } catch (error) {
    if (!ComfyServerlessError.isInstance(error)) throw error;
  }
}

describe(`workflow parsing under fuzzing (${RUNS} cases each)`, () => {
  it(
    'parseWorkflow and analyzeWorkflow take any value or text, throwing only typed errors',
    () => {
      fc.assert(
        fc.property(
          fc.oneof(
            jsonish,
            nearGraph,
            fc.string(),
            nearGraph.map((graph) => JSON.stringify(graph)),
          ),
          (input) => {
            typedOnly(() => {
              const workflow = parseWorkflow(input);
              const analysis = analyzeWorkflow(workflow);
              for (const model of analysis.models) expect(typeof model.name).toBe('string');
            });
          },
        ),
        settings,
      );
    },
    TIMEOUT_MS,
  );

  it(
    'patchWorkflow takes any patches, throwing only typed errors and never touching the input',
    () => {
      const patches = fc.dictionary(
        fc.oneof(
          fc.string({ maxLength: 10 }),
          fc
            .tuple(fc.integer({ min: 0, max: 12 }), fc.constantFrom(...INPUT_NAMES))
            .map(([node, input]) => `${node}.${input}`),
          fc.constantFrom('__proto__.x', 'constructor.prototype', '3.inputs.__proto__', '.', '..'),
        ),
        jsonish,
        { maxKeys: 3 },
      );
      fc.assert(
        fc.property(nearGraph, patches, (graph, patch) => {
          const before = JSON.stringify(graph);
          typedOnly(() => {
            patchWorkflow(graph as never, patch as never);
          });
          expect(JSON.stringify(graph)).toBe(before);
          expect(({} as Record<string, unknown>).x).toBeUndefined();
        }),
        settings,
      );
    },
    TIMEOUT_MS,
  );
});
