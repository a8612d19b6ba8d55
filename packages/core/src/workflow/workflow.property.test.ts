import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  InvalidArgumentError,
  UnsafeModelPathError,
  WorkflowFormatError,
  WorkflowPatchError,
  WorkflowValidationError,
} from '../spec/errors';
import type { ApiWorkflow } from '../spec/job';
import { analyzeWorkflow } from './analyze-workflow';
import { parseWorkflow } from './parse-workflow';
import { patchWorkflow } from './patch-workflow';
import { preflight } from './preflight';

// FUZZ_RUNS picks the number of generated workflows per property: the default keeps the CI
// run to a few seconds; FUZZ_RUNS=100000 is the nightly-size run the issue asks for.
const RUNS = Math.max(1, Number.parseInt(process.env.FUZZ_RUNS ?? '', 10) || 1_000);
// A fixed seed keeps CI deterministic; FUZZ_SEED=random explores, FUZZ_SEED=<n> replays.
const SEED = process.env.FUZZ_SEED === 'random' ? undefined : Number(process.env.FUZZ_SEED ?? 20261126);
const settings = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };
// A hang still fails the test; a large FUZZ_RUNS only gets the time it needs (~20 ms a run at most).
const TIMEOUT_MS = Math.max(20_000, RUNS * 20);

const TYPED = [
  WorkflowFormatError,
  WorkflowValidationError,
  UnsafeModelPathError,
  WorkflowPatchError,
] as const;

function isTypedError(error: unknown): boolean {
  return TYPED.some((type) => type.isInstance(error));
}

/** Runs `body`; a thrown error must be one of the workflow's typed errors. */
function valueOrTypedError<T>(body: () => T): { value?: T; error?: unknown } {
  try {
    return { value: body() };
  } catch (error) {
    if (!isTypedError(error)) throw error;
    return { error };
  }
}

const CLASS_TYPES = [
  'CheckpointLoaderSimple',
  'LoraLoader',
  'KSampler',
  'CLIPTextEncode',
  'EmptyLatentImage',
  'VAEDecode',
  'SaveImage',
  'LoadImage',
  'DualCLIPLoader',
  'UNETLoader',
  'PrimitiveString',
  'LoRA Stacker',
  'AcmeUnknownNode',
  'toString',
  '__proto__',
];
const INPUT_NAMES = [
  'ckpt_name',
  'lora_name',
  'text',
  'seed',
  'width',
  'height',
  'steps',
  'image',
  'value',
  'clip_name1',
  'lora_name_3',
  'weights',
  '__proto__',
];
const NAME_VALUES = [
  'a.safetensors',
  'sdxl/base.safetensors',
  'sdxl\\win.safetensors',
  'None',
  'Baked VAE',
  '../escape.safetensors',
  '/abs.ckpt',
  'C:\\x.pt',
  'nul\u0000.gguf',
  'photo.png',
  'model.onnx',
];

const literal = fc.oneof(
  fc.constantFrom(...NAME_VALUES),
  fc.string({ maxLength: 12 }),
  fc.integer({ min: -5, max: 5000 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
);

/** A structurally valid workflow: links only point to earlier nodes, so it is acyclic. */
const validWorkflow: fc.Arbitrary<ApiWorkflow> = fc
  .integer({ min: 1, max: 25 })
  .chain((count) =>
    fc.tuple(
      fc.uniqueArray(fc.oneof(fc.nat({ max: 999 }).map(String), fc.string({ minLength: 1, maxLength: 6 })), {
        minLength: count,
        maxLength: count,
      }),
      fc.array(
        fc.record({
          classType: fc.constantFrom(...CLASS_TYPES),
          title: fc.option(fc.constantFrom('Positive Prompt', 'Load', 'a.b', 'Seed'), { nil: undefined }),
          inputs: fc.array(
            fc.tuple(
              fc.constantFrom(...INPUT_NAMES),
              literal,
              fc.option(fc.nat({ max: 50 }), { nil: undefined }),
            ),
            { maxLength: 6 },
          ),
        }),
        { minLength: count, maxLength: count },
      ),
    ),
  )
  .map(([ids, nodes]) => {
    const entries = ids.map((id, index) => {
      const spec = nodes[index]!;
      const inputs: [string, unknown][] = spec.inputs.map(([name, value, link]) =>
        link !== undefined && index > 0 ? [name, [ids[link % index]!, link % 3]] : [name, value],
      );
      const node: Record<string, unknown> = {
        class_type: spec.classType,
        inputs: Object.fromEntries(inputs),
      };
      if (spec.title !== undefined) node._meta = { title: spec.title };
      return [id, node] as const;
    });
    return Object.fromEntries(entries) as ApiWorkflow;
  });

type Mutation = (workflow: Record<string, unknown>, pick: number) => unknown;
const MUTATIONS: Mutation[] = [
  (workflow, pick) => {
    const ids = Object.keys(workflow);
    const copy = { ...workflow };
    delete copy[ids[pick % ids.length]!];
    return copy;
  },
  (workflow, pick) => {
    const ids = Object.keys(workflow);
    const id = ids[pick % ids.length]!;
    const node = workflow[id] as Record<string, unknown>;
    return {
      ...workflow,
      [id]: { ...node, inputs: { ...(node.inputs as object), broken: ['missing-node', 0] } },
    };
  },
  (workflow, pick) => {
    const ids = Object.keys(workflow);
    const id = ids[pick % ids.length]!;
    const node = workflow[id] as Record<string, unknown>;
    const index = [-1, 1.5, '0', null, 2 ** 53][pick % 5];
    return { ...workflow, [id]: { ...node, inputs: { ...(node.inputs as object), bad: [ids[0], index] } } };
  },
  (workflow, pick) => {
    // A back link from the first node to the last closes a cycle when the last reaches the first.
    const ids = Object.keys(workflow);
    const first = ids[0]!;
    const last = ids[ids.length - 1]!;
    const node = workflow[first] as Record<string, unknown>;
    return {
      ...workflow,
      [first]: { ...node, inputs: { ...(node.inputs as object), loop: [last, pick % 2] } },
    };
  },
  (workflow, pick) => {
    const ids = Object.keys(workflow);
    const id = ids[pick % ids.length]!;
    const { class_type: _dropped, ...rest } = workflow[id] as Record<string, unknown>;
    return { ...workflow, [id]: rest };
  },
  (workflow, pick) => {
    const ids = Object.keys(workflow);
    return { ...workflow, [ids[pick % ids.length]!]: [pick, 'garbage'] };
  },
  (workflow, pick) => {
    const ids = Object.keys(workflow);
    const id = ids[pick % ids.length]!;
    const node = workflow[id] as Record<string, unknown>;
    return { ...workflow, [id]: { ...node, inputs: { x: Number.NaN, y: () => pick } } };
  },
  (workflow) => ({ nodes: Object.values(workflow), links: [], last_node_id: 3 }),
  (workflow) => ({ prompt: workflow, client_id: 'x' }),
  (workflow, pick) => {
    const text = JSON.stringify(workflow);
    return text.slice(0, pick % (text.length + 1));
  },
  (workflow, pick) => JSON.stringify(workflow).replaceAll('"', pick % 2 === 0 ? "'" : '"'),
];

const mutatedWorkflow = fc
  .tuple(
    validWorkflow,
    fc.array(fc.tuple(fc.nat({ max: MUTATIONS.length - 1 }), fc.nat()), { minLength: 1, maxLength: 3 }),
  )
  .map(([workflow, steps]) => {
    let current: unknown = workflow;
    for (const [mutation, pick] of steps) {
      if (
        current === null ||
        typeof current !== 'object' ||
        Array.isArray(current) ||
        Object.keys(current).length === 0
      )
        break;
      current = MUTATIONS[mutation]!(current as Record<string, unknown>, pick);
    }
    return current;
  });

const anyInput = fc.oneof(
  { weight: 4, arbitrary: validWorkflow as fc.Arbitrary<unknown> },
  { weight: 4, arbitrary: mutatedWorkflow },
  { weight: 1, arbitrary: fc.anything() },
  { weight: 1, arbitrary: fc.json() },
);

const capabilities = fc.oneof(
  fc.record({
    nodeTypes: fc.option(fc.subarray(CLASS_TYPES), { nil: undefined }),
    models: fc.option(
      fc.dictionary(fc.constantFrom('checkpoints', 'loras', 'clip', 'unet', 'x'), fc.subarray(NAME_VALUES)),
      {
        nil: undefined,
      },
    ),
  }),
  fc.constant({
    CheckpointLoaderSimple: { input: { required: { ckpt_name: [['a.safetensors']] } }, output: ['MODEL'] },
    SaveImage: { input: { required: {} }, output: [] },
  }),
);

describe(`workflow property tests (${RUNS} runs each; FUZZ_RUNS=100000 for the nightly size)`, () => {
  it(
    'random and mutated inputs give a value or a typed error, never another throw',
    () => {
      fc.assert(
        fc.property(anyInput, capabilities, (input, caps) => {
          const parsed = valueOrTypedError(() => parseWorkflow(input));
          if (parsed.value === undefined) {
            expect(isTypedError(parsed.error)).toBe(true);
            return;
          }
          // Parsing is idempotent: what it returns parses to the same thing.
          expect(parseWorkflow(JSON.stringify(parsed.value))).toEqual(parsed.value);
          const analysed = valueOrTypedError(() => analyzeWorkflow(parsed.value!));
          if (analysed.value !== undefined) {
            expect(analysed.value.nodeTypes.length).toBeLessThanOrEqual(Object.keys(parsed.value).length);
            for (const model of analysed.value.models) expect(model.name).not.toContain('\\');
            valueOrTypedError(() => preflight(analysed.value!, caps as never));
            valueOrTypedError(() => preflight(parsed.value!, caps as never));
          }
        }),
        settings,
      );
    },
    TIMEOUT_MS,
  );

  it(
    'patching any path gives a workflow or a typed error, and never changes the input',
    () => {
      fc.assert(
        fc.property(
          validWorkflow,
          fc.array(
            fc.tuple(
              fc.oneof(
                fc.string({ maxLength: 16 }),
                fc.constantFrom('0.text', 'Positive Prompt.text', 'a.b.seed', '1.inputs.seed'),
              ),
              literal,
            ),
            {
              maxLength: 4,
            },
          ),
          (workflow, patches) => {
            const before = JSON.stringify(workflow);
            const patched = valueOrTypedError(() => patchWorkflow(workflow, patches));
            expect(JSON.stringify(workflow)).toBe(before);
            if (patched.error !== undefined) expect(isTypedError(patched.error)).toBe(true);
          },
        ),
        settings,
      );
    },
    TIMEOUT_MS,
  );

  it(
    'patch then analyse round-trips: a patched model name is what the analysis reports',
    () => {
      const withLoader = fc
        .tuple(validWorkflow, fc.constantFrom('x/new.safetensors', 'y\\other.ckpt', 'z.gguf'))
        .map(([workflow, name]) => {
          const loaderId = '__loader__';
          const result: ApiWorkflow = {
            ...workflow,
            [loaderId]: { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'old.safetensors' } },
          };
          return { workflow: result, loaderId, name };
        });
      fc.assert(
        fc.property(withLoader, ({ workflow, loaderId, name }) => {
          const before = valueOrTypedError(() => analyzeWorkflow(parseWorkflow(workflow)));
          if (before.value === undefined) return; // unsafe names elsewhere: refused either way
          const after = analyzeWorkflow(patchWorkflow(workflow, { [`${loaderId}.ckpt_name`]: name }));
          const mine = after.models.filter((model) => model.nodeId === loaderId);
          expect(mine).toEqual([
            expect.objectContaining({ folder: 'checkpoints', value: name, name: name.replaceAll('\\', '/') }),
          ]);
          const others = (analysis: typeof after) =>
            analysis.models.filter((model) => model.nodeId !== loaderId);
          expect(others(after)).toEqual(others(before.value));
          expect(after.nodeTypes).toEqual(before.value.nodeTypes);
          expect(after.outputNodes).toEqual(before.value.outputNodes);
        }),
        settings,
      );
    },
    TIMEOUT_MS,
  );

  it(
    'refuses patches that are not path/value objects with InvalidArgumentError only',
    () => {
      fc.assert(
        fc.property(
          validWorkflow,
          fc.oneof(fc.constant(null), fc.integer(), fc.string()),
          (workflow, patches) => {
            expect(() => patchWorkflow(workflow, patches as never)).toThrow(InvalidArgumentError);
          },
        ),
        { ...settings, numRuns: Math.min(RUNS, 200) },
      );
    },
    TIMEOUT_MS,
  );
});
