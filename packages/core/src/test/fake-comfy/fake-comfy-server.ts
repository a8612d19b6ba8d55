import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Clock } from '../../spec/clock';
import { systemClock } from '../../util/clock';
import {
  DEFAULT_FAKE_MODELS,
  defaultObjectInfo,
  type FakeNodeDefinition,
  TINY_JPEG,
  TINY_PNG,
} from './default-object-info';
import { outputNodesOf, validateFakePrompt } from './fake-validation';

/** A file a fake job produces: listed in history, served by `/view`. */
export interface FakeComfyFile {
  filename: string;
  subfolder?: string;
  /** @default 'output' */
  type?: 'output' | 'temp' | 'input';
  /** The bytes `/view` serves. @default a 1x1 PNG */
  data?: Uint8Array | string;
  /** Stored beside the file in history, as video helper nodes do (`video/h264-mp4`). */
  format?: string;
}

/**
 * A node's UI dict as the job should report it: `images`, `gifs`, `video`, `audio` hold
 * files; `text` holds strings; any other key passes through as given.
 */
export type FakeNodeOutput = Record<string, unknown>;

/** How the next submitted job behaves. */
export type FakeJobBehaviour =
  | {
      type: 'succeed';
      /** Outputs by node id; default: one PNG per output node (temp for PreviewImage). */
      outputs?: Record<string, FakeNodeOutput>;
      /** Node ids ComfyUI reports as cached. */
      cachedNodes?: string[];
      /** Sampler steps, one `progress` event each. @default the server's `steps` */
      steps?: number;
      /** Binary preview frames during sampling. @default false */
      previews?: 'png' | 'jpeg' | 'metadata' | false;
      /** Send `progress_state` too (newer builds). @default false */
      progressState?: boolean;
    }
  | {
      type: 'fail';
      /** @default the first sampler node, else the first node run */
      nodeId?: string;
      exceptionType?: string;
      message?: string;
    }
  /** Runs (with progress) until interrupted or cancelled; `release()` lets it succeed. */
  | { type: 'run-until-cancelled'; steps?: number }
  /** `/prompt` answers 400 with this body, or with a `value_not_in_list` error on the first node. */
  | { type: 'validation-error'; body?: Record<string, unknown> }
  /** `/prompt` answers with this status (a 503, a 429 with Retry-After). */
  | { type: 'http-error'; status: number; body?: string; retryAfterSeconds?: number };

/** Options of `startFakeComfyServer`. */
export interface FakeComfyServerOptions {
  /** Node types of `/object_info`; replaces the defaults. */
  nodeTypes?: Record<string, FakeNodeDefinition>;
  /** Node types added to the defaults (custom nodes). */
  extraNodeTypes?: Record<string, FakeNodeDefinition>;
  /** Model files by folder, shown in `/models/{folder}` and in loader inputs. */
  models?: Record<string, string[]>;
  /** Time between execution steps. @default 2 */
  stepMs?: number;
  /** Sampler steps per job. @default 3 */
  steps?: number;
  /** Drives execution timing; a virtual clock makes it fully deterministic. @default the real clock */
  clock?: Clock;
  /** Whether `POST /api/jobs/{id}/cancel` exists (newer builds). @default true */
  cancelRoute?: boolean;
  /** Whether `/interrupt` honours `prompt_id` (newer builds) or always stops what runs. @default true */
  targetedInterrupt?: boolean;
  /** Validate prompts against `/object_info` like ComfyUI. @default true */
  validate?: boolean;
  /** How jobs behave when nothing was arranged. @default { type: 'succeed' } */
  defaultBehaviour?: FakeJobBehaviour;
  /** Reported by `/system_stats`. @default 24 */
  vramGb?: number;
  /** History entries kept. @default 10000 */
  maxHistory?: number;
  /** Headers every request and websocket handshake must carry (a proxy's auth); 401 otherwise. */
  requireHeaders?: Record<string, string>;
}

/** Counters of what the fake server was asked to do. */
export interface FakeComfyStats {
  prompts: number;
  rejectedPrompts: number;
  executions: number;
  completed: number;
  failed: number;
  interrupted: number;
  /** `/interrupt` calls. */
  interruptCalls: number;
  /** `/interrupt` calls without a prompt id (stop whatever runs). */
  globalInterrupts: number;
  /** `/api/jobs/{id}/cancel` calls that reached the route. */
  cancelCalls: number;
  queueDeletes: number;
  historyRequests: number;
  queueRequests: number;
  objectInfoRequests: number;
  systemStatsRequests: number;
  uploads: number;
  views: number;
  socketConnections: number;
}

/** A running fake ComfyUI server and its controls. */
export interface FakeComfyServer {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly stats: FakeComfyStats;
  /** Sets how the next submitted job behaves (queued: one per submission, in order). */
  arrange(behaviour: FakeJobBehaviour): void;
  /** Closes every websocket at once; with `refuse`, new ones are refused until `acceptSockets()`. */
  dropSockets(options?: { refuse?: boolean }): void;
  acceptSockets(): void;
  /** Keeps sockets open but sends nothing on them (messages are lost, as on a stalled link). */
  stallSockets(stalled: boolean): void;
  /** Switches the per-job cancel route on or off. */
  setCancelRoute(enabled: boolean): void;
  setModels(folder: string, files: string[]): void;
  /** Lets a `run-until-cancelled` job finish successfully. */
  release(promptId?: string): void;
  /** Prompt ids in the queue. */
  queue(): { running: string[]; pending: string[] };
  /** The client ids prompts were submitted with, by prompt id. */
  clientIdOf(promptId: string): string | undefined;
  /** Files uploaded to `input`, by name. */
  uploads(): Map<string, Uint8Array>;
  /** Connected websocket client ids. */
  connectedClients(): string[];
  /** Resolves when nothing is queued or running. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

interface QueuedPrompt {
  number: number;
  promptId: string;
  prompt: Record<string, { class_type: string; inputs?: Record<string, unknown>; _meta?: unknown }>;
  extraData: Record<string, unknown>;
  outputsToExecute: string[];
  clientId: string | undefined;
  behaviour: FakeJobBehaviour;
  interrupted: boolean;
  released: boolean;
  wake?: () => void;
}

const MIME: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  gif: 'image/gif',
  mp4: 'video/mp4',
  webm: 'video/webm',
  wav: 'audio/wav',
  mp3: 'audio/mpeg',
  flac: 'audio/flac',
  txt: 'text/plain',
};

function toBytes(data: Uint8Array | string | undefined): Uint8Array {
  if (data === undefined) return TINY_PNG;
  return typeof data === 'string' ? new TextEncoder().encode(data) : data;
}

function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', ...headers });
  response.end(text);
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function isLink(value: unknown): value is [string, number] {
  return Array.isArray(value) && value.length === 2 && typeof value[1] === 'number';
}

/** The nodes an output needs, dependencies first (ComfyUI runs only those). */
function executionOrder(prompt: QueuedPrompt['prompt'], outputs: string[]): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (id: string) => {
    if (seen.has(id) || prompt[id] === undefined) return;
    seen.add(id);
    for (const value of Object.values(prompt[id]?.inputs ?? {})) if (isLink(value)) visit(String(value[0]));
    order.push(id);
  };
  for (const id of outputs) visit(id);
  return order;
}

/**
 * Starts a fake ComfyUI server on 127.0.0.1 (a free port) that speaks ComfyUI's HTTP and
 * websocket protocol: the event sequences of a real server (status on connect,
 * execution_start, execution_cached, executing, progress, executed, execution_success;
 * execution_error only to the submitting client), 400 validation bodies, `{}` from history
 * until a job is done, the queue, `/view`, uploads, interrupts and the per-job cancel route.
 * Jobs run one at a time in submission order, one step per `stepMs` on `clock`.
 *
 * @example
 * const comfy = await startFakeComfyServer({ models: { checkpoints: ['sdxl.safetensors'] } });
 * comfy.arrange({ type: 'fail', nodeId: '3', message: 'CUDA out of memory' });
 * // ... point your code at comfy.url ...
 * await comfy.close();
 */
export async function startFakeComfyServer(options: FakeComfyServerOptions = {}): Promise<FakeComfyServer> {
  const clock = options.clock ?? systemClock;
  const stepMs = options.stepMs ?? 2;
  const defaultSteps = options.steps ?? 3;
  const maxHistory = options.maxHistory ?? 10_000;
  const validate = options.validate ?? true;
  const targetedInterrupt = options.targetedInterrupt ?? true;
  let cancelRoute = options.cancelRoute ?? true;
  const models: Record<string, string[]> = {};
  for (const [folder, files] of Object.entries({ ...DEFAULT_FAKE_MODELS, ...(options.models ?? {}) }))
    models[folder] = [...files];
  const inputFiles = new Map<string, Uint8Array>([['example.png', TINY_PNG]]);
  const files = new Map<string, { data: Uint8Array; mime: string }>();
  const history = new Map<string, Record<string, unknown>>();
  const pending: QueuedPrompt[] = [];
  let running: QueuedPrompt | undefined;
  let lastNodeId: string | null = null;
  const behaviours: FakeJobBehaviour[] = [];
  const clientOfPrompt = new Map<string, string | undefined>();
  const sockets = new Map<string, WebSocket>();
  let refuseSockets = false;
  let stalled = false;
  let closed = false;
  let counter = 0;
  let fileCounter = 0;
  const timers = new Set<unknown>();
  const idleWaiters: Array<() => void> = [];
  const stats: FakeComfyStats = {
    prompts: 0,
    rejectedPrompts: 0,
    executions: 0,
    completed: 0,
    failed: 0,
    interrupted: 0,
    interruptCalls: 0,
    globalInterrupts: 0,
    cancelCalls: 0,
    queueDeletes: 0,
    historyRequests: 0,
    queueRequests: 0,
    objectInfoRequests: 0,
    systemStatsRequests: 0,
    uploads: 0,
    views: 0,
    socketConnections: 0,
  };

  const nodeTypes = (): Record<string, FakeNodeDefinition> =>
    options.nodeTypes ?? {
      ...defaultObjectInfo(models, [...inputFiles.keys()]),
      ...(options.extraNodeTypes ?? {}),
    };

  const fileKey = (type: string, subfolder: string, filename: string) => `${type}/${subfolder}/${filename}`;

  // Messages to one client, or to every client when `sid` is undefined.
  const send = (type: string, data: Record<string, unknown>, sid?: string) => {
    if (stalled) return;
    const text = JSON.stringify({ type, data });
    if (sid === undefined) {
      for (const socket of sockets.values()) if (socket.readyState === socket.OPEN) socket.send(text);
      return;
    }
    const socket = sockets.get(sid);
    if (socket && socket.readyState === socket.OPEN) socket.send(text);
  };
  const sendBinary = (frame: Uint8Array, sid?: string) => {
    if (stalled) return;
    const targets =
      sid === undefined ? [...sockets.values()] : [sockets.get(sid)].filter((s) => s !== undefined);
    for (const socket of targets) if (socket.readyState === socket.OPEN) socket.send(frame);
  };
  const queueRemaining = () => pending.length + (running ? 1 : 0);
  const sendStatus = (sid?: string) =>
    send(
      'status',
      { status: { exec_info: { queue_remaining: queueRemaining() } }, ...(sid ? { sid } : {}) },
      sid,
    );

  const delay = (ms: number) =>
    new Promise<void>((resolve) => {
      const handle = clock.setTimeout(() => {
        timers.delete(handle);
        resolve();
      }, ms);
      timers.add(handle);
    });

  const previewFrame = (format: 'png' | 'jpeg' | 'metadata', promptId: string, nodeId: string) => {
    const image = format === 'jpeg' ? TINY_JPEG : TINY_PNG;
    if (format === 'metadata') {
      const metadata = new TextEncoder().encode(
        JSON.stringify({
          node_id: nodeId,
          prompt_id: promptId,
          display_node_id: nodeId,
          image_type: 'image/png',
        }),
      );
      const frame = new Uint8Array(8 + metadata.byteLength + image.byteLength);
      const view = new DataView(frame.buffer);
      view.setUint32(0, 4);
      view.setUint32(4, metadata.byteLength);
      frame.set(metadata, 8);
      frame.set(image, 8 + metadata.byteLength);
      return frame;
    }
    const frame = new Uint8Array(8 + image.byteLength);
    const view = new DataView(frame.buffer);
    view.setUint32(0, 1);
    view.setUint32(4, format === 'jpeg' ? 1 : 2);
    frame.set(image, 8);
    return frame;
  };

  /** Stores files of a UI dict for `/view` and returns the dict as history shows it. */
  const materialise = (output: FakeNodeOutput): Record<string, unknown> => {
    const ui: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(output)) {
      if (key === 'text' || !Array.isArray(value)) {
        ui[key] = value;
        continue;
      }
      ui[key] = value.map((item) => {
        if (item === null || typeof item !== 'object' || typeof (item as FakeComfyFile).filename !== 'string')
          return item;
        const file = item as FakeComfyFile;
        const type = file.type ?? 'output';
        const subfolder = file.subfolder ?? '';
        const extension = file.filename.split('.').pop()?.toLowerCase() ?? '';
        files.set(fileKey(type, subfolder, file.filename), {
          data: toBytes(file.data),
          mime: Object.hasOwn(MIME, extension) ? MIME[extension]! : 'application/octet-stream',
        });
        return { filename: file.filename, subfolder, type, ...(file.format ? { format: file.format } : {}) };
      });
    }
    return ui;
  };

  const defaultOutputs = (job: QueuedPrompt): Record<string, FakeNodeOutput> => {
    const outputs: Record<string, FakeNodeOutput> = {};
    for (const id of job.outputsToExecute) {
      const classType = job.prompt[id]?.class_type;
      fileCounter += 1;
      const number = String(fileCounter).padStart(5, '0');
      if (classType === 'PreviewImage') {
        outputs[id] = { images: [{ filename: `ComfyUI_temp_${number}_.png`, type: 'temp' }] };
      } else if (classType === 'SaveAnimatedWEBP') {
        outputs[id] = { images: [{ filename: `ComfyUI_${number}_.webp` }], animated: [true] };
      } else if (classType === 'SaveAudio') {
        outputs[id] = { audio: [{ filename: `ComfyUI_${number}_.flac`, subfolder: 'audio', data: 'fLaC' }] };
      } else if (classType === 'SaveVideo') {
        outputs[id] = {
          images: [{ filename: `ComfyUI_${number}_.mp4`, subfolder: 'video', data: 'mp4' }],
          animated: [true],
        };
      } else {
        outputs[id] = { images: [{ filename: `ComfyUI_${number}_.png` }] };
      }
    }
    return outputs;
  };

  const finish = (
    job: QueuedPrompt,
    outcome: 'success' | 'error' | 'interrupted',
    messages: Array<[string, Record<string, unknown>]>,
    outputs: Record<string, Record<string, unknown>>,
  ) => {
    const meta: Record<string, unknown> = {};
    for (const id of Object.keys(outputs))
      meta[id] = { node_id: id, display_node: id, parent_node: null, real_node_id: id };
    history.set(job.promptId, {
      prompt: [job.number, job.promptId, job.prompt, job.extraData, job.outputsToExecute],
      outputs,
      status: {
        status_str: outcome === 'success' ? 'success' : 'error',
        completed: outcome === 'success',
        messages,
      },
      meta,
    });
    while (history.size > maxHistory) {
      const oldest = history.keys().next().value;
      if (oldest === undefined) break;
      history.delete(oldest);
    }
    if (outcome === 'success') stats.completed += 1;
    else if (outcome === 'error') stats.failed += 1;
    else stats.interrupted += 1;
    running = undefined;
    lastNodeId = null;
    // As in ComfyUI's prompt worker: history first, then `executing` with a null node.
    const target = job.clientId;
    if (target !== undefined) send('executing', { node: null, prompt_id: job.promptId }, target);
    sendStatus();
  };

  const interruptMessage = (job: QueuedPrompt, nodeId: string | null, executed: string[]) => {
    const data = {
      prompt_id: job.promptId,
      node_id: nodeId,
      node_type: nodeId ? (job.prompt[nodeId]?.class_type ?? null) : null,
      executed,
      timestamp: clock.now(),
    };
    send('execution_interrupted', data);
    return data;
  };

  const execute = async (job: QueuedPrompt) => {
    stats.executions += 1;
    const sid = job.clientId;
    // Events that ComfyUI sends with `add_message(broadcast=False)` reach only a client that asked.
    const toClient = (type: string, data: Record<string, unknown>) => {
      if (sid !== undefined) send(type, data, sid);
    };
    // Events sent with `send_sync(..., client_id)`: to that client, or to all without one.
    const toClientOrAll = (type: string, data: Record<string, unknown>) => send(type, data, sid);
    const messages: Array<[string, Record<string, unknown>]> = [];
    const behaviour = job.behaviour;
    const startData = { prompt_id: job.promptId, timestamp: clock.now() };
    messages.push(['execution_start', startData]);
    toClient('execution_start', startData);
    const cachedNodes = behaviour.type === 'succeed' ? (behaviour.cachedNodes ?? []) : [];
    const cachedData = { nodes: cachedNodes, prompt_id: job.promptId, timestamp: clock.now() };
    messages.push(['execution_cached', cachedData]);
    toClient('execution_cached', cachedData);
    await delay(stepMs);

    const order = executionOrder(job.prompt, job.outputsToExecute).filter((id) => !cachedNodes.includes(id));
    const samplerOf = (id: string) => /sampler/i.test(job.prompt[id]?.class_type ?? '');
    const failAt =
      behaviour.type === 'fail'
        ? (behaviour.nodeId ?? order.find(samplerOf) ?? order[0] ?? Object.keys(job.prompt)[0])
        : undefined;
    const outputs =
      behaviour.type === 'succeed' && behaviour.outputs ? behaviour.outputs : defaultOutputs(job);
    const materialised: Record<string, Record<string, unknown>> = {};
    const executed: string[] = [];
    const steps = 'steps' in behaviour && behaviour.steps !== undefined ? behaviour.steps : defaultSteps;
    const previews = behaviour.type === 'succeed' ? (behaviour.previews ?? false) : false;
    const progressState = behaviour.type === 'succeed' && behaviour.progressState === true;
    const states: Record<
      string,
      { state: string; value: number; max: number; node_id: string; prompt_id: string }
    > = {};
    for (const id of order)
      states[id] = { state: 'pending', value: 0, max: 1, node_id: id, prompt_id: job.promptId };

    const interrupted = () => {
      if (!job.interrupted) return false;
      messages.push(['execution_interrupted', interruptMessage(job, lastNodeId, executed)]);
      finish(job, 'interrupted', messages, materialised);
      return true;
    };

    const hold = behaviour.type === 'run-until-cancelled';
    const holdAt = hold ? (order.find(samplerOf) ?? order[0]) : undefined;
    for (const id of order) {
      if (closed) return;
      lastNodeId = id;
      toClientOrAll('executing', { node: id, display_node: id, prompt_id: job.promptId });
      if (id === failAt && behaviour.type === 'fail') {
        await delay(stepMs);
        if (closed || interrupted()) return;
        const errorData = {
          prompt_id: job.promptId,
          node_id: id,
          node_type: job.prompt[id]?.class_type ?? 'Unknown',
          executed: [...executed],
          exception_message: behaviour.message ?? 'Allocation on device 0 would exceed allowed memory.',
          exception_type: behaviour.exceptionType ?? 'torch.OutOfMemoryError',
          traceback: ['Traceback (most recent call last):', '  File "execution.py", line 1, in execute'],
          current_inputs: {},
          current_outputs: {},
          timestamp: clock.now(),
        };
        messages.push(['execution_error', errorData]);
        // Only the submitting client hears of an execution error.
        toClient('execution_error', errorData);
        finish(job, 'error', messages, materialised);
        return;
      }
      if (samplerOf(id) || id === holdAt) {
        const state = states[id];
        if (state) state.state = 'running';
        for (let step = 1; step <= steps || (hold && id === holdAt && !job.released); step++) {
          await delay(stepMs);
          if (closed || interrupted()) return;
          if (hold && id === holdAt && step > steps) {
            // Holds here, silent like a long node, until interrupted, cancelled or released.
            await new Promise<void>((resolve) => {
              job.wake = resolve;
              if (job.interrupted || job.released || closed) resolve();
            });
            if (closed || interrupted()) return;
            break;
          }
          toClientOrAll('progress', { value: step, max: steps, prompt_id: job.promptId, node: id });
          if (state) {
            state.value = step;
            state.max = steps;
          }
          if (progressState) toClientOrAll('progress_state', { prompt_id: job.promptId, nodes: states });
          if (previews) sendBinary(previewFrame(previews, job.promptId, id), sid);
        }
      } else {
        await delay(stepMs);
        if (closed || interrupted()) return;
      }
      const state = states[id];
      if (state) state.state = 'finished';
      executed.push(id);
      const output = outputs[id];
      if (output !== undefined) {
        const ui = materialise(output);
        materialised[id] = ui;
        toClientOrAll('executed', { node: id, display_node: id, output: ui, prompt_id: job.promptId });
      }
    }
    // Outputs arranged for nodes outside the run order (a test's shortcut) still count.
    for (const [id, output] of Object.entries(outputs)) {
      if (materialised[id] !== undefined) continue;
      const ui = materialise(output);
      materialised[id] = ui;
      toClientOrAll('executed', { node: id, display_node: id, output: ui, prompt_id: job.promptId });
    }
    if (progressState) toClientOrAll('progress_state', { prompt_id: job.promptId, nodes: states });
    const successData = { prompt_id: job.promptId, timestamp: clock.now() };
    messages.push(['execution_success', successData]);
    toClient('execution_success', successData);
    finish(job, 'success', messages, materialised);
  };

  const pump = () => {
    if (running !== undefined || closed) return;
    const next = pending.shift();
    if (next === undefined) {
      for (const resolve of idleWaiters.splice(0)) resolve();
      return;
    }
    running = next;
    sendStatus();
    void execute(next).then(() => {
      if (running === next) running = undefined;
      // The next prompt starts on a fresh tick, as the worker thread picks it up.
      const handle = clock.setTimeout(() => {
        timers.delete(handle);
        pump();
      }, 0);
      timers.add(handle);
    });
  };

  const interruptRunning = () => {
    const job = running;
    if (!job) return;
    job.interrupted = true;
    job.wake?.();
  };

  const queueItem = (job: QueuedPrompt) => [
    job.number,
    job.promptId,
    job.prompt,
    job.extraData,
    job.outputsToExecute,
  ];

  const authorised = (request: IncomingMessage) =>
    Object.entries(options.requireHeaders ?? {}).every(
      ([name, value]) => request.headers[name.toLowerCase()] === value,
    );

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    if (!authorised(request)) {
      response.writeHead(401, { 'content-type': 'text/plain' }).end('401: Unauthorized');
      return;
    }
    const url = new URL(request.url ?? '/', 'http://fake');
    let path = url.pathname;
    if (path.startsWith('/api/')) path = path.slice(4);
    const method = request.method ?? 'GET';
    const body = method === 'POST' ? await readBody(request) : Buffer.alloc(0);
    const parseJson = (): Record<string, unknown> => {
      if (body.byteLength === 0) return {};
      try {
        const value: unknown = JSON.parse(body.toString('utf8'));
        return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {};
      } catch {
        return {};
      }
    };

    if (path === '/prompt' && method === 'POST') {
      const payload = parseJson();
      const behaviour = behaviours.shift() ?? options.defaultBehaviour ?? { type: 'succeed' };
      if (behaviour.type === 'http-error') {
        stats.rejectedPrompts += 1;
        response.writeHead(behaviour.status, {
          'content-type': 'text/plain',
          ...(behaviour.retryAfterSeconds === undefined
            ? {}
            : { 'retry-after': String(behaviour.retryAfterSeconds) }),
        });
        response.end(behaviour.body ?? `${behaviour.status}: fake server error`);
        return;
      }
      const types = nodeTypes();
      if (behaviour.type === 'validation-error') {
        stats.rejectedPrompts += 1;
        const firstNode = Object.keys((payload['prompt'] as object | undefined) ?? {})[0] ?? '1';
        sendJson(
          response,
          400,
          behaviour.body ?? {
            error: {
              type: 'prompt_outputs_failed_validation',
              message: 'Prompt outputs failed validation',
              details: '',
              extra_info: {},
            },
            node_errors: {
              [firstNode]: {
                errors: [
                  {
                    type: 'value_not_in_list',
                    message: 'Value not in list',
                    details: "ckpt_name: 'missing.safetensors' not in []",
                    extra_info: {
                      input_name: 'ckpt_name',
                      input_config: null,
                      received_value: 'missing.safetensors',
                    },
                  },
                ],
                dependent_outputs: [],
                class_type: 'CheckpointLoaderSimple',
              },
            },
          },
        );
        return;
      }
      if (validate) {
        const invalid = validateFakePrompt(payload['prompt'], types);
        if (invalid) {
          stats.rejectedPrompts += 1;
          sendJson(response, 400, invalid);
          return;
        }
      }
      const prompt = payload['prompt'] as QueuedPrompt['prompt'];
      const promptId = typeof payload['prompt_id'] === 'string' ? payload['prompt_id'] : randomUUID();
      const clientId = typeof payload['client_id'] === 'string' ? payload['client_id'] : undefined;
      const extraData = {
        ...((payload['extra_data'] as Record<string, unknown> | undefined) ?? {}),
        ...(clientId ? { client_id: clientId } : {}),
      };
      counter += 1;
      const number = payload['front'] === true ? -counter : counter;
      const job: QueuedPrompt = {
        number,
        promptId,
        prompt,
        extraData,
        outputsToExecute: outputNodesOf(prompt, types),
        clientId,
        behaviour,
        interrupted: false,
        released: false,
      };
      stats.prompts += 1;
      clientOfPrompt.set(promptId, clientId);
      pending.push(job);
      pending.sort((a, b) => a.number - b.number);
      sendJson(response, 200, { prompt_id: promptId, number, node_errors: {} });
      sendStatus();
      // The prompt worker picks it up on a later tick, as ComfyUI's worker thread does.
      const handle = clock.setTimeout(() => {
        timers.delete(handle);
        pump();
      }, 0);
      timers.add(handle);
      return;
    }
    if (path === '/prompt' && method === 'GET') {
      sendJson(response, 200, { exec_info: { queue_remaining: queueRemaining() } });
      return;
    }
    if (path === '/queue' && method === 'GET') {
      stats.queueRequests += 1;
      sendJson(response, 200, {
        queue_running: running ? [queueItem(running)] : [],
        queue_pending: pending.map(queueItem),
      });
      return;
    }
    if (path === '/queue' && method === 'POST') {
      const payload = parseJson();
      if (payload['clear'] === true) pending.splice(0);
      if (Array.isArray(payload['delete'])) {
        for (const id of payload['delete']) {
          const index = pending.findIndex((job) => job.promptId === id);
          if (index >= 0) {
            pending.splice(index, 1);
            stats.queueDeletes += 1;
          }
        }
      }
      response.writeHead(200).end();
      sendStatus();
      return;
    }
    const historyMatch = /^\/history(?:\/([^/]+))?$/.exec(path);
    if (historyMatch && method === 'GET') {
      stats.historyRequests += 1;
      const id = historyMatch[1] ? decodeURIComponent(historyMatch[1]) : undefined;
      if (id !== undefined) {
        const entry = history.get(id);
        sendJson(response, 200, entry ? { [id]: entry } : {});
      } else {
        const maxItems = Number(url.searchParams.get('max_items') ?? history.size);
        sendJson(response, 200, Object.fromEntries([...history.entries()].slice(-maxItems)));
      }
      return;
    }
    if (path === '/view' && method === 'GET') {
      stats.views += 1;
      const filename = url.searchParams.get('filename') ?? '';
      const type = url.searchParams.get('type') || 'output';
      const subfolder = url.searchParams.get('subfolder') ?? '';
      if (filename.includes('..') || subfolder.includes('..') || filename.startsWith('/')) {
        response.writeHead(400).end();
        return;
      }
      const file =
        type === 'input' && !subfolder && inputFiles.has(filename)
          ? { data: inputFiles.get(filename)!, mime: 'image/png' }
          : files.get(fileKey(type, subfolder, filename));
      if (!file) {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('404: Not Found');
        return;
      }
      response.writeHead(200, { 'content-type': file.mime, 'content-length': String(file.data.byteLength) });
      response.end(Buffer.from(file.data));
      return;
    }
    if (path === '/upload/image' && method === 'POST') {
      stats.uploads += 1;
      const headers = new Headers();
      for (const [key, value] of Object.entries(request.headers))
        if (typeof value === 'string') headers.set(key, value);
      let form: FormData;
      try {
        form = await new Request('http://fake/upload', {
          method: 'POST',
          headers,
          body: new Uint8Array(body),
        }).formData();
      } catch {
        response.writeHead(400).end();
        return;
      }
      const image = form.get('image');
      if (image === null || typeof image === 'string') {
        response.writeHead(400).end();
        return;
      }
      let name = (image as File).name;
      if (form.get('overwrite') !== 'true') {
        const [stem, extension] = name.includes('.')
          ? [name.slice(0, name.lastIndexOf('.')), name.slice(name.lastIndexOf('.'))]
          : [name, ''];
        for (let index = 1; inputFiles.has(name); index++) name = `${stem} (${index})${extension}`;
      }
      inputFiles.set(name, new Uint8Array(await (image as File).arrayBuffer()));
      sendJson(response, 200, {
        name,
        subfolder: String(form.get('subfolder') ?? ''),
        type: String(form.get('type') ?? 'input'),
      });
      return;
    }
    if (path === '/interrupt' && method === 'POST') {
      stats.interruptCalls += 1;
      const promptId = parseJson()['prompt_id'];
      if (typeof promptId === 'string' && targetedInterrupt) {
        if (running?.promptId === promptId) interruptRunning();
      } else {
        stats.globalInterrupts += 1;
        interruptRunning();
      }
      response.writeHead(200).end();
      return;
    }
    const cancelMatch = /^\/jobs\/([^/]+)\/cancel$/.exec(path);
    if (cancelMatch && method === 'POST' && cancelRoute) {
      stats.cancelCalls += 1;
      const id = decodeURIComponent(cancelMatch[1] ?? '');
      const index = pending.findIndex((job) => job.promptId === id);
      if (index >= 0) {
        pending.splice(index, 1);
        sendJson(response, 200, { id, status: 'cancelled' });
        return;
      }
      if (running?.promptId === id) {
        interruptRunning();
        sendJson(response, 200, { id, status: 'cancelling' });
        return;
      }
      sendJson(response, 404, { error: `job ${id} not found` });
      return;
    }
    const objectInfoMatch = /^\/object_info(?:\/([^/]+))?$/.exec(path);
    if (objectInfoMatch && method === 'GET') {
      stats.objectInfoRequests += 1;
      const types = nodeTypes();
      const name = objectInfoMatch[1] ? decodeURIComponent(objectInfoMatch[1]) : undefined;
      if (name === undefined) sendJson(response, 200, types);
      else sendJson(response, 200, Object.hasOwn(types, name) ? { [name]: types[name] } : {});
      return;
    }
    if (path === '/system_stats' && method === 'GET') {
      stats.systemStatsRequests += 1;
      const vram = (options.vramGb ?? 24) * 1024 ** 3;
      sendJson(response, 200, {
        system: {
          os: 'posix',
          ram_total: 64 * 1024 ** 3,
          ram_free: 48 * 1024 ** 3,
          comfyui_version: '0.3.60',
          python_version: '3.12.3',
          pytorch_version: '2.7.1+cu128',
          embedded_python: false,
          argv: ['main.py', '--listen'],
        },
        devices: [
          {
            name: 'cuda:0 NVIDIA Fake GPU : cudaMallocAsync',
            type: 'cuda',
            index: 0,
            vram_total: vram,
            vram_free: running ? vram / 2 : vram,
            torch_vram_total: running ? vram / 2 : 0,
            torch_vram_free: 0,
          },
        ],
      });
      return;
    }
    if (path === '/models' && method === 'GET') {
      sendJson(response, 200, Object.keys(models));
      return;
    }
    const modelsMatch = /^\/models\/([^/]+)$/.exec(path);
    if (modelsMatch && method === 'GET') {
      const folder = decodeURIComponent(modelsMatch[1] ?? '');
      const list = Object.hasOwn(models, folder) ? models[folder] : undefined;
      if (list === undefined) response.writeHead(404, { 'content-type': 'text/plain' }).end('404: Not Found');
      else sendJson(response, 200, list);
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end('404: Not Found');
  };

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain' });
      response.end(String(error));
    });
  });
  const webSockets = new WebSocketServer({ noServer: true });
  server.on('upgrade', (request, socket, head) => {
    const url = new URL(request.url ?? '/', 'http://fake');
    if (!authorised(request)) {
      socket.end('HTTP/1.1 401 Unauthorized\r\n\r\n');
      return;
    }
    if ((url.pathname !== '/ws' && url.pathname !== '/api/ws') || refuseSockets) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\n\r\n');
      return;
    }
    webSockets.handleUpgrade(request, socket, head, (ws) => {
      const sid = url.searchParams.get('clientId') || randomUUID().replace(/-/g, '');
      stats.socketConnections += 1;
      // As in ComfyUI, one socket per client id: a reconnect replaces the old one.
      sockets.set(sid, ws);
      ws.on('close', () => {
        if (sockets.get(sid) === ws) sockets.delete(sid);
      });
      ws.on('error', () => {});
      sendStatus(sid);
      // A client that reconnects while its prompt runs is told the current node (no prompt id, as in ComfyUI).
      if (running?.clientId === sid && lastNodeId !== null) send('executing', { node: lastNodeId }, sid);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${address.port}`,
    stats,
    arrange(behaviour) {
      behaviours.push(behaviour);
    },
    dropSockets(dropOptions = {}) {
      if (dropOptions.refuse) refuseSockets = true;
      for (const socket of sockets.values()) socket.terminate();
      sockets.clear();
    },
    acceptSockets() {
      refuseSockets = false;
    },
    stallSockets(value) {
      stalled = value;
    },
    setCancelRoute(enabled) {
      cancelRoute = enabled;
    },
    setModels(folder, list) {
      models[folder] = [...list];
    },
    release(promptId) {
      const job = running;
      if (job && (promptId === undefined || job.promptId === promptId)) {
        job.released = true;
        job.wake?.();
      }
      for (const queued of pending)
        if (promptId === undefined || queued.promptId === promptId) queued.released = true;
    },
    queue: () => ({
      running: running ? [running.promptId] : [],
      pending: pending.map((job) => job.promptId),
    }),
    clientIdOf: (promptId) => clientOfPrompt.get(promptId),
    uploads: () => new Map(inputFiles),
    connectedClients: () => [...sockets.keys()],
    idle: () =>
      running === undefined && pending.length === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => idleWaiters.push(resolve)),
    async close() {
      if (closed) return;
      closed = true;
      for (const handle of timers) clock.clearTimeout(handle);
      timers.clear();
      running?.wake?.();
      for (const resolve of idleWaiters.splice(0)) resolve();
      for (const socket of sockets.values()) socket.terminate();
      webSockets.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
