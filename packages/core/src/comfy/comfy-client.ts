import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import { type FetchFunction, requestJson } from '../http/request-json';
import type { Clock } from '../spec/clock';
import {
  ApiCallError,
  InvalidArgumentError,
  InvalidResponseError,
  WorkflowFormatError,
} from '../spec/errors';
import type { ApiWorkflow, JobOutput } from '../spec/job';
import { systemClock } from '../util/clock';
import {
  type ComfyHistoryEntry,
  type ComfyHistoryOutputs,
  type ComfyObjectInfo,
  type ComfySystemStats,
  type ComfyUploadResult,
  historyResponseSchema,
  modelListSchema,
  objectInfoSchema,
  promptResponseSchema,
  queueResponseSchema,
  systemStatsSchema,
  uploadResponseSchema,
} from './comfy-api';
import { toComfyValidationError } from './comfy-errors';
import {
  type ComfySocket,
  connectComfySocket,
  type ReconnectOptions,
  type WebSocketConstructor,
} from './comfy-socket';
import { listOutputs } from './outputs';
import { requestBytes } from './request-bytes';
import {
  type ComfyWatchEvent,
  type WatchContext,
  type WatchPromptOptions,
  watchPrompt,
} from './watch-prompt';

/** Options of `createComfyClient`. */
export interface ComfyClientOptions {
  /** The server's address, `http://127.0.0.1:8188` (a path prefix is kept). */
  baseURL: string;
  /** Sent with every request and the websocket handshake (proxy auth and the like); treated as secrets. */
  headers?: Record<string, string>;
  fetch?: FetchFunction;
  /** @default undici's WebSocket */
  webSocket?: WebSocketConstructor;
  clock?: Clock;
  /** The websocket `clientId` this client submits with and listens as. @default a random UUID */
  clientId?: string;
  /** Abort any one JSON request after this many ms. @default 30000 */
  requestTimeoutMs?: number;
  /** Largest output file fetched through `/view`. @default 512 MiB */
  maxOutputBytes?: number;
  /** Put on errors, for the dispatcher's bookkeeping. */
  providerId?: string;
}

/** One entry of the server's queue. */
export interface ComfyQueueItem {
  promptId: string;
  number?: number;
  /** The workflow as queued. */
  prompt?: unknown;
  /** The prompt's `extra_data` (it holds the `client_id` it was submitted with). */
  extraData?: Record<string, unknown>;
}

/** The server's queue. */
export interface ComfyQueueState {
  running: ComfyQueueItem[];
  pending: ComfyQueueItem[];
}

/** Options of `queuePrompt`. */
export interface QueuePromptOptions {
  /** The websocket client that gets this prompt's events. @default the client's `clientId` */
  clientId?: string;
  /** A prompt id of our choosing (newer servers keep it; older ones choose their own). */
  promptId?: string;
  extraData?: Record<string, unknown>;
  /** Put the prompt at the front of the queue. */
  front?: boolean;
  signal?: AbortSignal;
  jobId?: string;
}

/** What `cancel` did. */
export type ComfyCancelOutcome =
  /** The prompt was waiting and was removed from the queue. */
  | 'dequeued'
  /** The prompt was running and the server's per-job cancel route stopped it. */
  | 'cancelled'
  /** The prompt was running and `/interrupt` stopped it (it was the one running). */
  | 'interrupted'
  /** The prompt was neither queued nor running: finished already, or unknown. */
  | 'not-active';

/** A file to upload as an input image. */
export interface ComfyUploadOptions {
  /** The file name ComfyUI stores it under (what `LoadImage` refers to). */
  name: string;
  data: Uint8Array;
  mime?: string;
  /** @default true */
  overwrite?: boolean;
  /** @default 'input' */
  type?: 'input' | 'temp' | 'output';
  subfolder?: string;
  signal?: AbortSignal;
}

/** A client of one ComfyUI server's own HTTP and websocket API. */
export interface ComfyClient {
  readonly baseURL: string;
  readonly clientId: string;
  /** `POST /prompt`; a 400 answer throws a `ComfyValidationError` carrying `node_errors`. */
  queuePrompt(
    workflow: ApiWorkflow,
    options?: QueuePromptOptions,
  ): Promise<{ promptId: string; number?: number }>;
  /** `GET /queue`. */
  getQueue(options?: { signal?: AbortSignal }): Promise<ComfyQueueState>;
  /** `POST /queue { delete }`: removes waiting prompts (running ones are not touched). */
  deleteFromQueue(promptIds: string[], options?: { signal?: AbortSignal }): Promise<void>;
  /** `POST /queue { clear: true }`: removes every waiting prompt. */
  clearQueue(options?: { signal?: AbortSignal }): Promise<void>;
  /** `GET /history/{id}`: the entry, or undefined while queued, running or unknown. */
  getHistory(promptId: string, options?: { signal?: AbortSignal }): Promise<ComfyHistoryEntry | undefined>;
  /** `GET /view`: a file's bytes and type. */
  view(
    file: { filename: string; subfolder?: string; type?: string },
    options?: { signal?: AbortSignal; maxBytes?: number },
  ): Promise<{ data: Uint8Array; mime: string | undefined }>;
  /** `POST /upload/image` (multipart). */
  uploadImage(options: ComfyUploadOptions): Promise<ComfyUploadResult>;
  /**
   * `POST /interrupt`. With `promptId`, newer servers stop only that prompt; older ones
   * stop whatever runs, so prefer `cancel`, which checks first.
   */
  interrupt(options?: { promptId?: string; signal?: AbortSignal }): Promise<void>;
  /** `POST /api/jobs/{id}/cancel`; false when the server has no such route. */
  cancelJob(promptId: string, options?: { signal?: AbortSignal }): Promise<boolean>;
  /**
   * Cancels one prompt and never another: a waiting prompt is deleted from the queue; a
   * running one is cancelled through the per-job route where the server has it, else
   * through `/interrupt` only while it is the one running.
   */
  cancel(promptId: string, options?: { signal?: AbortSignal }): Promise<ComfyCancelOutcome>;
  /** `GET /object_info` (or one node type's). */
  getObjectInfo(options?: { nodeType?: string; signal?: AbortSignal }): Promise<ComfyObjectInfo>;
  /** `GET /system_stats`. */
  getSystemStats(options?: { signal?: AbortSignal }): Promise<ComfySystemStats>;
  /** `GET /models/{folder}`: the model files in a folder. */
  listModels(folder: string, options?: { signal?: AbortSignal }): Promise<string[]>;
  /** Opens the websocket as `clientId` (for callers that want the raw events). */
  connect(
    options: Omit<Parameters<typeof connectComfySocket>[0], 'url' | 'headers' | 'webSocket'> & {
      clientId?: string;
    },
  ): ComfySocket;
  /** Follows a prompt until it completes, fails or is cancelled. */
  watch(promptId: string, options?: WatchPromptOptions): AsyncGenerator<ComfyWatchEvent, void, undefined>;
  /** Fetches a history entry's outputs through `/view` (text outputs need no fetch). */
  fetchOutputs(
    outputs: ComfyHistoryOutputs,
    options?: { includeTemp?: boolean; signal?: AbortSignal },
  ): Promise<JobOutput[]>;
}

function isUiFormat(workflow: unknown): boolean {
  return (
    workflow !== null &&
    typeof workflow === 'object' &&
    Array.isArray((workflow as Record<string, unknown>)['nodes']) &&
    'links' in (workflow as Record<string, unknown>)
  );
}

const DEFAULT_MAX_OUTPUT_BYTES = 512 * 1024 * 1024;
const CANCELLED_MEMORY = 1_000;

/**
 * Creates a client of one ComfyUI server. Nothing is contacted until a method is called.
 *
 * @example
 * const comfy = createComfyClient({ baseURL: 'http://127.0.0.1:8188' });
 * const { promptId } = await comfy.queuePrompt(workflow);
 * for await (const event of comfy.watch(promptId)) {
 *   if (event.type === 'completed') console.log(await comfy.fetchOutputs(event.outputs));
 * }
 */
export function createComfyClient(options: ComfyClientOptions): ComfyClient {
  if (typeof options?.baseURL !== 'string' || !/^https?:\/\//i.test(options.baseURL)) {
    throw new InvalidArgumentError({
      argument: 'baseURL',
      message: `"baseURL" must be an http(s) URL of a ComfyUI server, like http://127.0.0.1:8188; got ${options?.baseURL === undefined ? 'nothing' : JSON.stringify(String(options.baseURL).slice(0, 80))}.`,
    });
  }
  if (options.maxOutputBytes !== undefined && !(options.maxOutputBytes > 0)) {
    throw new InvalidArgumentError({
      argument: 'maxOutputBytes',
      message: `"maxOutputBytes" must be a positive number of bytes; got ${options.maxOutputBytes}.`,
    });
  }
  const baseURL = options.baseURL.replace(/\/+$/, '');
  const root = `${baseURL}/`;
  const headers = { ...(options.headers ?? {}) };
  const secrets = Object.values(headers);
  const clock = options.clock ?? systemClock;
  const clientId = options.clientId ?? randomUUID();
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  const maxOutputBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const context = options.providerId === undefined ? {} : { providerId: options.providerId };
  const cancelled = new Set<string>();
  const cancelListeners = new Map<string, Set<() => void>>();
  let jobsRoute: boolean | undefined;

  const url = (path: string, query?: Record<string, string>) => {
    const target = new URL(path, root);
    for (const [key, value] of Object.entries(query ?? {})) target.searchParams.set(key, value);
    return target.toString();
  };

  const json = async <T>(
    path: string,
    request: {
      method?: string;
      body?: unknown;
      schema?: z.ZodType<T>;
      signal?: AbortSignal | undefined;
      jobId?: string | undefined;
    } = {},
  ): Promise<T> => {
    const { value } = await requestJson<T>({
      url: url(path),
      headers,
      secrets,
      timeoutMs,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(request.method ? { method: request.method } : {}),
      ...(request.body === undefined ? {} : { body: request.body }),
      ...(request.schema ? { schema: request.schema } : {}),
      ...(request.signal ? { signal: request.signal } : {}),
      ...(request.jobId ? { jobId: request.jobId } : {}),
      ...context,
    });
    return value;
  };

  const getQueue = async (signal?: AbortSignal): Promise<ComfyQueueState> => {
    const value = await json('queue', { schema: queueResponseSchema, signal });
    const items = (list: unknown[][] | null | undefined) =>
      (list ?? []).map((item) => ({
        promptId: item[1] as string,
        ...(typeof item[0] === 'number' ? { number: item[0] } : {}),
        ...(item[2] === undefined ? {} : { prompt: item[2] }),
        ...(item[3] !== null && typeof item[3] === 'object'
          ? { extraData: item[3] as Record<string, unknown> }
          : {}),
      }));
    return { running: items(value.queue_running), pending: items(value.queue_pending) };
  };

  const getHistory = async (promptId: string, signal?: AbortSignal) => {
    const value = await json(`history/${encodeURIComponent(promptId)}`, {
      schema: historyResponseSchema,
      signal,
    });
    return value[promptId];
  };

  const interrupt = async (interruptOptions: { promptId?: string; signal?: AbortSignal } = {}) => {
    await json('interrupt', {
      method: 'POST',
      body: interruptOptions.promptId === undefined ? {} : { prompt_id: interruptOptions.promptId },
      signal: interruptOptions.signal,
    });
  };

  const cancelJob = async (promptId: string, signal?: AbortSignal): Promise<boolean> => {
    if (jobsRoute === false) return false;
    try {
      await json(`api/jobs/${encodeURIComponent(promptId)}/cancel`, { method: 'POST', body: {}, signal });
      jobsRoute = true;
      return true;
    } catch (error) {
      if (
        ApiCallError.isInstance(error) &&
        (error.statusCode === 404 || error.statusCode === 405 || error.statusCode === 501)
      ) {
        // A server that answered this route before has it; a 404 then means the job is gone.
        if (jobsRoute !== true) jobsRoute = false;
        return false;
      }
      throw error;
    }
  };

  const rememberCancelled = (promptId: string) => {
    cancelled.add(promptId);
    if (cancelled.size > CANCELLED_MEMORY) {
      const oldest = cancelled.values().next().value;
      if (oldest !== undefined) cancelled.delete(oldest);
    }
    for (const listener of cancelListeners.get(promptId) ?? []) listener();
  };

  const connect: ComfyClient['connect'] = (socketOptions) => {
    const socketURL = new URL(`ws`, root);
    socketURL.protocol = socketURL.protocol === 'https:' ? 'wss:' : 'ws:';
    socketURL.searchParams.set('clientId', socketOptions.clientId ?? clientId);
    return connectComfySocket({
      ...socketOptions,
      clock: socketOptions.clock ?? clock,
      url: socketURL.toString(),
      ...(Object.keys(headers).length ? { headers } : {}),
      ...(options.webSocket ? { webSocket: options.webSocket } : {}),
    });
  };

  const watchContext: WatchContext = {
    clock,
    baseURL,
    defaultClientId: clientId,
    getHistory,
    getQueue,
    connect: (socketClientId, handlers) =>
      connect({
        clientId: socketClientId,
        onMessage: handlers.onMessage,
        onStateChange: handlers.onStateChange,
        ...(handlers.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: handlers.stallTimeoutMs }),
        ...(handlers.reconnect === undefined ? {} : { reconnect: handlers.reconnect as ReconnectOptions }),
      }),
    isCancelled: (promptId) => cancelled.has(promptId),
    onCancel(promptId, listener) {
      let listeners = cancelListeners.get(promptId);
      if (!listeners) cancelListeners.set(promptId, (listeners = new Set()));
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0) cancelListeners.delete(promptId);
      };
    },
  };

  const view: ComfyClient['view'] = async (file, viewOptions = {}) => {
    const response = await requestBytes({
      url: url('view', {
        filename: file.filename,
        subfolder: file.subfolder ?? '',
        type: file.type ?? 'output',
      }),
      headers,
      secrets,
      maxResponseBytes: viewOptions.maxBytes ?? maxOutputBytes,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(viewOptions.signal ? { signal: viewOptions.signal } : {}),
      ...context,
    });
    const mime = response.headers.get('content-type')?.split(';')[0]?.trim();
    return { data: response.data, mime: mime || undefined };
  };

  return {
    baseURL,
    clientId,

    async queuePrompt(workflow, promptOptions = {}) {
      if (isUiFormat(workflow)) {
        throw new WorkflowFormatError({
          message:
            "This is a UI-format workflow (it has nodes and links); ComfyUI's API takes the API format. In ComfyUI, export with 'Save (API format)' and submit that file.",
        });
      }
      if (workflow === null || typeof workflow !== 'object' || Array.isArray(workflow)) {
        throw new InvalidArgumentError({
          argument: 'workflow',
          message: 'The workflow must be an API-format object of node id to { class_type, inputs }.',
        });
      }
      const body = {
        prompt: workflow,
        client_id: promptOptions.clientId ?? clientId,
        ...(promptOptions.promptId === undefined ? {} : { prompt_id: promptOptions.promptId }),
        ...(promptOptions.extraData === undefined ? {} : { extra_data: promptOptions.extraData }),
        ...(promptOptions.front ? { front: true } : {}),
      };
      try {
        const value = await json('prompt', {
          method: 'POST',
          body,
          schema: promptResponseSchema,
          signal: promptOptions.signal,
          jobId: promptOptions.jobId,
        });
        return { promptId: value.prompt_id, ...(value.number == null ? {} : { number: value.number }) };
      } catch (error) {
        if (ApiCallError.isInstance(error) && error.statusCode === 400 && error.responseBody) {
          let parsed: unknown;
          try {
            parsed = JSON.parse(error.responseBody);
          } catch {
            throw error;
          }
          const validation = toComfyValidationError(parsed, {
            ...context,
            ...(promptOptions.jobId ? { jobId: promptOptions.jobId } : {}),
          });
          if (validation) throw validation;
        }
        throw error;
      }
    },

    getQueue: (queueOptions = {}) => getQueue(queueOptions.signal),

    async deleteFromQueue(promptIds, deleteOptions = {}) {
      await json('queue', { method: 'POST', body: { delete: promptIds }, signal: deleteOptions.signal });
    },

    async clearQueue(clearOptions = {}) {
      await json('queue', { method: 'POST', body: { clear: true }, signal: clearOptions.signal });
    },

    getHistory: (promptId, historyOptions = {}) => getHistory(promptId, historyOptions.signal),

    view,

    async uploadImage(upload) {
      if (
        typeof upload?.name !== 'string' ||
        upload.name === '' ||
        upload.name === '.' ||
        upload.name === '..' ||
        /[\\/\0]/.test(upload.name)
      ) {
        throw new InvalidArgumentError({
          argument: 'name',
          message: `An uploaded image needs a plain file name without slashes, like input.png; got ${JSON.stringify(upload?.name)}.`,
        });
      }
      const form = new FormData();
      form.append(
        'image',
        new Blob([new Uint8Array(upload.data)], { type: upload.mime ?? 'application/octet-stream' }),
        upload.name,
      );
      form.append('overwrite', upload.overwrite === false ? 'false' : 'true');
      form.append('type', upload.type ?? 'input');
      if (upload.subfolder) form.append('subfolder', upload.subfolder);
      const target = url('upload/image');
      const response = await requestBytes({
        url: target,
        method: 'POST',
        body: form,
        headers,
        secrets,
        maxResponseBytes: 1024 * 1024,
        ...(options.fetch ? { fetch: options.fetch } : {}),
        ...(upload.signal ? { signal: upload.signal } : {}),
        ...context,
      });
      let parsed: unknown;
      try {
        parsed = JSON.parse(new TextDecoder().decode(response.data));
      } catch (error) {
        throw new InvalidResponseError({
          message: `${target} answered with a body that is not JSON; is this a ComfyUI server?`,
          url: target,
          cause: error,
          ...context,
        });
      }
      const result = uploadResponseSchema.safeParse(parsed);
      if (!result.success) {
        throw new InvalidResponseError({
          message: `${target} answered with an unexpected shape; is this a ComfyUI server?`,
          url: target,
          issues: result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`),
          ...context,
        });
      }
      return result.data;
    },

    interrupt,

    cancelJob: (promptId, cancelOptions = {}) => cancelJob(promptId, cancelOptions.signal),

    async cancel(promptId, cancelOptions = {}) {
      const { signal } = cancelOptions;
      rememberCancelled(promptId);
      let queue = await getQueue(signal);
      if (queue.pending.some((item) => item.promptId === promptId)) {
        await json('queue', { method: 'POST', body: { delete: [promptId] }, signal });
        queue = await getQueue(signal);
        // It may have started between the read and the delete.
        if (!queue.running.some((item) => item.promptId === promptId)) return 'dequeued';
      }
      if (!queue.running.some((item) => item.promptId === promptId)) return 'not-active';
      if (await cancelJob(promptId, signal)) return 'cancelled';
      // Read again right before interrupting: `/interrupt` on older servers stops whatever
      // runs, so it is sent only while this prompt is the one running.
      queue = await getQueue(signal);
      if (!queue.running.some((item) => item.promptId === promptId)) return 'not-active';
      await interrupt({ promptId, ...(signal ? { signal } : {}) });
      return 'interrupted';
    },

    async getObjectInfo(infoOptions = {}) {
      const path = infoOptions.nodeType
        ? `object_info/${encodeURIComponent(infoOptions.nodeType)}`
        : 'object_info';
      return json(path, { schema: objectInfoSchema, signal: infoOptions.signal });
    },

    getSystemStats: (statsOptions = {}) =>
      json('system_stats', { schema: systemStatsSchema, signal: statsOptions.signal }),

    async listModels(folder, modelOptions = {}) {
      if (!/^[\w.-]+$/.test(folder)) {
        throw new InvalidArgumentError({
          argument: 'folder',
          message: `A model folder is a plain name like checkpoints or loras; got ${JSON.stringify(folder)}.`,
        });
      }
      return json(`models/${folder}`, { schema: modelListSchema, signal: modelOptions.signal });
    },

    connect,

    watch: (promptId, watchOptions = {}) => watchPrompt(watchContext, promptId, watchOptions),

    async fetchOutputs(outputs, fetchOptions = {}) {
      const items = listOutputs(outputs, fetchOptions.includeTemp ? { includeTemp: true } : {});
      const results: JobOutput[] = [];
      for (const item of items) {
        if (item.file === undefined) {
          const text = item.text ?? '';
          results.push({
            nodeId: item.nodeId,
            kind: item.kind,
            filename: item.filename,
            mime: item.mime,
            text,
            data: new TextEncoder().encode(text),
          });
          continue;
        }
        const { data } = await view(item.file, fetchOptions.signal ? { signal: fetchOptions.signal } : {});
        results.push({
          nodeId: item.nodeId,
          kind: item.kind,
          filename: item.filename,
          mime: item.mime,
          data,
        });
      }
      return results;
    },
  };
}
