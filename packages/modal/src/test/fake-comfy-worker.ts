import type { ApiWorkflow } from '@comfy-serverless/core';
import type { FakeModalCallContext, FakeModalMethod } from './fake-modal';

/** How the next `run` call of a fake worker behaves. */
export type FakeComfyBehaviour =
  /** Runs for `executionMs` and returns one output per output node. */
  | { type: 'success'; executionMs?: number }
  /** Runs, then a node raises (ComfyUI's `execution_error`). */
  | {
      type: 'execution-error';
      nodeId?: string;
      nodeType?: string;
      exceptionType?: string;
      message?: string;
      executionMs?: number;
    }
  /** ComfyUI refuses the prompt (`/prompt` answers 400 with `node_errors`). */
  | { type: 'validation-error'; comfyType?: string; nodeErrors?: Record<string, unknown>; message?: string }
  /** Runs until cancelled or until the class timeout. */
  | { type: 'hang' }
  /** The method raises (a bug, a crashed container): Modal reports a `RemoteError`. */
  | { type: 'raise'; message?: string };

/** Options of `createFakeComfyWorker`. */
export interface FakeComfyWorkerOptions {
  /** Default run time of a job, in ms. @default 8000 */
  executionMs?: number;
  /** Node types the worker has; a workflow using another is refused (`invalid_prompt`). When absent, any. */
  nodeTypes?: string[];
  /** Models by folder; a loader naming another file is refused (`value_not_in_list`). When absent, any. */
  models?: Record<string, string[]>;
  /** Time ComfyUI takes to start in a new container, reported as the first job's cold start. @default 0 */
  comfyStartMs?: number;
}

/** A fake `ComfyWorker` class: its methods for `FakeModal.deploy`, and control over the next jobs. */
export interface FakeComfyWorker {
  methods: Record<string, FakeModalMethod>;
  /** Queues the behaviour of the next `run` calls, in order; without one, a job succeeds. */
  next(...behaviours: FakeComfyBehaviour[]): void;
  /** The requests `run` received, in order. */
  readonly requests: unknown[];
}

/** A 1×1 transparent PNG. */
export const TINY_PNG = new Uint8Array(
  Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
    'base64',
  ),
);

const OUTPUT_NODES: Record<string, { kind: string; mime: string; extension: string }> = {
  SaveImage: { kind: 'image', mime: 'image/png', extension: 'png' },
  PreviewImage: { kind: 'image', mime: 'image/png', extension: 'png' },
  SaveAnimatedWEBP: { kind: 'image', mime: 'image/webp', extension: 'webp' },
  SaveAnimatedPNG: { kind: 'image', mime: 'image/png', extension: 'png' },
  VHS_VideoCombine: { kind: 'video', mime: 'video/mp4', extension: 'mp4' },
  SaveVideo: { kind: 'video', mime: 'video/mp4', extension: 'mp4' },
  SaveWEBM: { kind: 'video', mime: 'video/webm', extension: 'webm' },
  SaveAudio: { kind: 'audio', mime: 'audio/flac', extension: 'flac' },
  PreviewAny: { kind: 'text', mime: 'text/plain', extension: 'txt' },
};

const LOADERS: Record<string, { input: string; folder: string }> = {
  CheckpointLoaderSimple: { input: 'ckpt_name', folder: 'checkpoints' },
  LoraLoader: { input: 'lora_name', folder: 'loras' },
  VAELoader: { input: 'vae_name', folder: 'vae' },
  UNETLoader: { input: 'unet_name', folder: 'diffusion_models' },
  ControlNetLoader: { input: 'control_net_name', folder: 'controlnet' },
  UpscaleModelLoader: { input: 'model_name', folder: 'upscale_models' },
};

/** A workflow with one checkpoint, a sampler and a SaveImage: the usual text-to-image graph. */
export function sampleWorkflow(checkpoint = 'sd_xl_base_1.0.safetensors'): ApiWorkflow {
  return {
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: checkpoint } },
    '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a lighthouse at dusk', clip: ['4', 1] } },
    '7': { class_type: 'CLIPTextEncode', inputs: { text: 'blurry', clip: ['4', 1] } },
    '5': { class_type: 'EmptyLatentImage', inputs: { width: 1024, height: 1024, batch_size: 1 } },
    '3': {
      class_type: 'KSampler',
      inputs: {
        model: ['4', 0],
        positive: ['6', 0],
        negative: ['7', 0],
        latent_image: ['5', 0],
        seed: 1,
        steps: 20,
        cfg: 7,
        sampler_name: 'euler',
        scheduler: 'normal',
        denoise: 1,
      },
    },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    '9': { class_type: 'SaveImage', inputs: { images: ['8', 0], filename_prefix: 'ComfyUI' } },
  };
}

function validate(
  workflow: Record<string, { class_type?: unknown; inputs?: Record<string, unknown> }>,
  options: FakeComfyWorkerOptions,
) {
  for (const [nodeId, node] of Object.entries(workflow)) {
    const type = String(node.class_type);
    if (options.nodeTypes !== undefined && !options.nodeTypes.includes(type)) {
      return {
        type: 'validation',
        comfyType: 'invalid_prompt',
        message: `Cannot execute because node ${type} does not exist.`,
        nodeErrors: {},
        nodeId,
      };
    }
    const loader = LOADERS[type];
    const name = loader === undefined ? undefined : node.inputs?.[loader.input];
    if (
      loader !== undefined &&
      options.models !== undefined &&
      !(options.models[loader.folder] ?? []).includes(String(name))
    ) {
      return {
        type: 'validation',
        comfyType: 'prompt_outputs_failed_validation',
        message: 'Prompt outputs failed validation',
        nodeErrors: {
          [nodeId]: {
            errors: [
              {
                type: 'value_not_in_list',
                message: 'Value not in list',
                details: `${loader.input}: '${String(name)}' not in [${(options.models[loader.folder] ?? []).map((item) => `'${item}'`).join(', ')}]`,
                extra_info: { input_name: loader.input },
              },
            ],
            dependent_outputs: [],
            class_type: type,
          },
        },
      };
    }
  }
  return undefined;
}

/**
 * A fake of the reference app's `ComfyWorker` class (deploy/modal/comfyui_app.py):
 * `run(request)` returns `{ outputs, timing, error? }` as the real one does, with bytes
 * for every output kind; `object_info` and `list_models` answer for preflight.
 */
export function createFakeComfyWorker(options: FakeComfyWorkerOptions = {}): FakeComfyWorker {
  const queue: FakeComfyBehaviour[] = [];
  const requests: unknown[] = [];

  const run: FakeModalMethod = async (context: FakeModalCallContext) => {
    const request = context.args[0] as {
      jobId?: string;
      workflow?: Record<string, { class_type?: unknown; inputs?: Record<string, unknown> }>;
    };
    requests.push(request);
    const behaviour = queue.shift() ?? { type: 'success' };
    const startedAt = context.clock.now();
    const coldStartMs =
      context.coldStartMs === undefined ? undefined : context.coldStartMs + (options.comfyStartMs ?? 0);
    const timing = (executionMs: number) => ({
      startedAt,
      executionMs,
      totalMs: executionMs,
      ...(coldStartMs === undefined ? {} : { coldStartMs }),
    });
    const worker = { containerId: context.containerId };
    if (
      request === null ||
      typeof request !== 'object' ||
      request.workflow === null ||
      typeof request.workflow !== 'object'
    ) {
      return {
        outputs: [],
        timing: timing(0),
        worker,
        error: { type: 'request', message: 'The request has no workflow.' },
      };
    }
    if (behaviour.type === 'raise') throw new Error(behaviour.message ?? 'RuntimeError: worker crashed');
    if (behaviour.type === 'hang') {
      await context.sleep(365 * 24 * 3600 * 1000);
    }
    const refused =
      behaviour.type === 'validation-error'
        ? {
            type: 'validation',
            comfyType: behaviour.comfyType ?? 'prompt_outputs_failed_validation',
            message: behaviour.message ?? 'Prompt outputs failed validation',
            nodeErrors: behaviour.nodeErrors ?? {},
          }
        : validate(request.workflow, options);
    if (refused !== undefined) return { outputs: [], timing: timing(0), worker, error: refused };
    const executionMs =
      (behaviour.type === 'success' || behaviour.type === 'execution-error'
        ? behaviour.executionMs
        : undefined) ??
      options.executionMs ??
      8_000;
    await context.sleep(executionMs);
    if (behaviour.type === 'execution-error') {
      return {
        outputs: [],
        timing: timing(executionMs),
        worker,
        error: {
          type: 'execution',
          message: behaviour.message ?? 'Allocation on device: CUDA out of memory',
          nodeId: behaviour.nodeId ?? '3',
          nodeType: behaviour.nodeType ?? 'KSampler',
          exceptionType: behaviour.exceptionType ?? 'torch.OutOfMemoryError',
          traceback: ['Traceback (most recent call last):', '  ...'],
        },
      };
    }
    const outputs = [];
    for (const [nodeId, node] of Object.entries(request.workflow)) {
      const output = OUTPUT_NODES[String(node.class_type)];
      if (output === undefined) continue;
      const filename = `ComfyUI_${nodeId}_00001_.${output.extension}`;
      outputs.push(
        output.kind === 'text'
          ? { nodeId, kind: 'text', filename, mime: output.mime, text: `text of node ${nodeId}` }
          : { nodeId, kind: output.kind, filename, mime: output.mime, data: TINY_PNG.slice() },
      );
    }
    if (outputs.length === 0) {
      return {
        outputs: [],
        timing: timing(0),
        worker,
        error: {
          type: 'validation',
          comfyType: 'prompt_no_outputs',
          message: 'Prompt has no outputs',
          nodeErrors: {},
        },
      };
    }
    return { outputs, timing: timing(executionMs), worker };
  };

  return {
    methods: {
      run,
      object_info: () =>
        Object.fromEntries(
          (
            options.nodeTypes ?? [
              ...Object.keys(OUTPUT_NODES),
              ...Object.keys(LOADERS),
              'KSampler',
              'CLIPTextEncode',
              'EmptyLatentImage',
              'VAEDecode',
            ]
          ).map((type) => [
            type,
            { input: { required: {} }, output: [], output_node: type in OUTPUT_NODES, category: 'fake' },
          ]),
        ),
      list_models: () => ({ ...(options.models ?? {}) }),
    },
    next(...behaviours) {
      queue.push(...behaviours);
    },
    requests,
  };
}
