import type { Clock } from '../spec/clock';
import { type ComfyServerlessError, JobExpiredError, JobFailedError } from '../spec/errors';
import type { ComfyHistoryEntry, ComfyHistoryOutputs } from './comfy-api';
import { type ComfyExecutionErrorData, toComfyExecutionError } from './comfy-errors';
import type { ComfySocket, ComfySocketState, ReconnectOptions } from './comfy-socket';
import { createProgressTracker } from './progress-tracker';
import type { ComfySocketMessage } from './socket-message';

/** What watching a prompt reports, in order; it ends after one of `completed`, `failed` or `cancelled`. */
export type ComfyWatchEvent =
  /** Waiting in the server's queue; `position` 0 is next. */
  | { type: 'queued'; position: number }
  | { type: 'started'; timestamp?: number }
  | { type: 'cached'; nodeIds: string[] }
  | { type: 'executing'; nodeId: string }
  /** `fraction` is the whole prompt's progress (0..1); `value`/`max` the running node's steps. */
  | { type: 'progress'; fraction: number; value?: number; max?: number; nodeId?: string }
  | { type: 'preview'; mime: string; data: Uint8Array; nodeId?: string }
  | { type: 'text'; nodeId: string; text: string }
  | { type: 'executed'; nodeId: string; output: Record<string, unknown> }
  /** The websocket's state changed (`failed` means the watch now polls `/history` only). */
  | { type: 'connection'; state: ComfySocketState }
  | {
      type: 'completed';
      outputs: ComfyHistoryOutputs;
      /** The history entry, when completion was read from history. */
      entry?: ComfyHistoryEntry;
      /** Execution time from ComfyUI's own timestamps, when it sent them. */
      executionMs?: number;
      /** How completion was detected. */
      detectedBy: 'history' | 'socket';
    }
  | { type: 'failed'; error: ComfyServerlessError; executionStarted: boolean }
  | { type: 'cancelled' };

/** Options of watching a prompt. */
export interface WatchPromptOptions {
  /** The `client_id` the prompt was submitted with; events go only to it. @default the client's id */
  clientId?: string;
  signal?: AbortSignal;
  /** Use the websocket; with false, only `/history` and `/queue` are polled. @default true */
  socket?: boolean;
  /** Poll interval while the websocket is down or gone. @default 1000 */
  pollIntervalMs?: number;
  /** Poll interval while the websocket is up (a safety net for missed events). @default 5000 */
  socketPollIntervalMs?: number;
  /** See `ComfySocketOptions.stallTimeoutMs`. @default 30000 */
  stallTimeoutMs?: number;
  reconnect?: ReconnectOptions;
  /** Nodes in the prompt, for the overall progress fraction; learnt from `/queue` when absent. */
  totalNodes?: number;
  /** Consecutive checks that find the prompt in neither queue nor history before it is reported lost. @default 3 */
  missingChecks?: number;
  /** After the socket says the prompt finished, how long to wait for its history entry. @default 5000 */
  finishTimeoutMs?: number;
  /** Consecutive failed polls tolerated while the socket is down, before the watch throws. @default 5 */
  maxPollFailures?: number;
}

/** What `watchPrompt` needs from a client. */
export interface WatchContext {
  clock: Clock;
  defaultClientId: string;
  getHistory(promptId: string, signal?: AbortSignal): Promise<ComfyHistoryEntry | undefined>;
  getQueue(signal?: AbortSignal): Promise<{
    running: Array<{ promptId: string; prompt?: unknown }>;
    pending: Array<{ promptId: string; prompt?: unknown }>;
  }>;
  connect(
    clientId: string,
    handlers: {
      onMessage(message: ComfySocketMessage): void;
      onStateChange(state: ComfySocketState): void;
      stallTimeoutMs?: number;
      reconnect?: ReconnectOptions;
    },
  ): ComfySocket;
  /** Whether this client cancelled the prompt. */
  isCancelled(promptId: string): boolean;
  /** Calls `listener` when this client cancels the prompt; returns an unsubscribe function. */
  onCancel(promptId: string, listener: () => void): () => void;
  baseURL: string;
}

type Input =
  | { kind: 'message'; message: ComfySocketMessage }
  | { kind: 'state'; state: ComfySocketState }
  | { kind: 'poll' };

/**
 * How a queued socket message may merge with a later one: a key (the later replaces the
 * earlier), undefined (it never merges), or null (the watch ignores it: not kept at all).
 */
function coalescingKey(message: ComfySocketMessage): string | null | undefined {
  switch (message.type) {
    case 'status':
    case 'unknown':
      return null;
    case 'progress':
      return `progress:${message.promptId ?? ''}:${message.nodeId ?? ''}`;
    case 'progress_state':
      return `progress_state:${message.promptId}`;
    case 'preview':
      return `preview:${message.promptId ?? ''}:${message.nodeId ?? ''}`;
    case 'text':
      return `text:${message.nodeId}`;
    default:
      return undefined;
  }
}

function nodeCountOf(prompt: unknown): number | undefined {
  return prompt !== null && typeof prompt === 'object' ? Object.keys(prompt).length : undefined;
}

/** Reads `[name, data]` pairs from a history entry's `status.messages`. */
function historyMessages(entry: ComfyHistoryEntry): Array<[string, Record<string, unknown>]> {
  const pairs: Array<[string, Record<string, unknown>]> = [];
  for (const message of entry.status?.messages ?? []) {
    if (!Array.isArray(message) || typeof message[0] !== 'string') continue;
    const data = message[1];
    pairs.push([
      message[0],
      data !== null && typeof data === 'object' ? (data as Record<string, unknown>) : {},
    ]);
  }
  return pairs;
}

/**
 * Whether a history entry is of the submission being watched. A prompt id can be reused
 * (a client-chosen id submitted again); the entry's `extra_data.client_id` tells runs apart.
 */
function isSubmissionOf(entry: ComfyHistoryEntry, clientId: string): boolean {
  const prompt = entry.prompt;
  if (!Array.isArray(prompt)) return true;
  const extraData = prompt[3];
  if (extraData === null || typeof extraData !== 'object') return true;
  const submittedBy = (extraData as Record<string, unknown>)['client_id'];
  return typeof submittedBy !== 'string' || submittedBy === clientId;
}

/** Decides a prompt's end from its history entry. */
function terminalFromHistory(entry: ComfyHistoryEntry): ComfyWatchEvent {
  const messages = historyMessages(entry);
  const errorMessage = messages.find(([name]) => name === 'execution_error');
  if (errorMessage) {
    return {
      type: 'failed',
      error: toComfyExecutionError(errorMessage[1] as ComfyExecutionErrorData),
      executionStarted: true,
    };
  }
  if (messages.some(([name]) => name === 'execution_interrupted')) return { type: 'cancelled' };
  if (entry.status?.status_str === 'error') {
    return {
      type: 'failed',
      error: new JobFailedError({
        message:
          'ComfyUI reports the prompt as failed without an error message; check the server log for the reason.',
      }),
      executionStarted: true,
    };
  }
  const start = messages.find(([name]) => name === 'execution_start')?.[1]['timestamp'];
  const end = messages.find(([name]) => name === 'execution_success')?.[1]['timestamp'];
  const executionMs =
    typeof start === 'number' && typeof end === 'number' && end >= start ? end - start : undefined;
  return {
    type: 'completed',
    outputs: entry.outputs ?? {},
    entry,
    detectedBy: 'history',
    ...(executionMs === undefined ? {} : { executionMs }),
  };
}

/**
 * Follows one prompt on one ComfyUI server: websocket events (JSON and binary previews)
 * when the socket works, `/history` and `/queue` polling always (often when the socket is
 * down, seldom when it is up). Completion is whichever comes first of `execution_success`,
 * `executing` with a null node, or a history entry. Ends after exactly one terminal event;
 * throws the signal's reason when it aborts, and a retryable error when the server cannot
 * be reached at all.
 */
export async function* watchPrompt(
  context: WatchContext,
  promptId: string,
  options: WatchPromptOptions = {},
): AsyncGenerator<ComfyWatchEvent, void, undefined> {
  const { clock } = context;
  const { signal } = options;
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const socketPollIntervalMs = options.socketPollIntervalMs ?? 5_000;
  const missingChecks = options.missingChecks ?? 3;
  const finishTimeoutMs = options.finishTimeoutMs ?? 5_000;
  const maxPollFailures = options.maxPollFailures ?? 5;
  const tracker = createProgressTracker(options.totalNodes ? { totalNodes: options.totalNodes } : {});

  // Inputs wait here while the consumer is busy. To keep it bounded against a server that
  // floods (progress per step, previews, monitor extensions), messages the watch ignores are
  // not kept, a poll is queued at most once, and within a run of progress, preview and text
  // messages only the latest of each kind (per node) is kept.
  const inbox: Input[] = [];
  const coalescing = new Map<string, Input & { kind: 'message' }>();
  let pollQueued = false;
  let wake: (() => void) | undefined;
  const push = (input: Input) => {
    if (input.kind === 'poll') {
      if (pollQueued) return;
      pollQueued = true;
    } else if (input.kind === 'message') {
      const key = coalescingKey(input.message);
      if (key === null) return;
      if (key !== undefined) {
        const queued = coalescing.get(key);
        if (queued !== undefined) {
          queued.message = input.message;
          return;
        }
        coalescing.set(key, input);
      } else {
        // Anything else keeps its place in the order: nothing after it merges into what came before.
        coalescing.clear();
      }
    } else {
      coalescing.clear();
    }
    inbox.push(input);
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  const take = (): Input | undefined => {
    const input = inbox.shift();
    if (input?.kind === 'poll') pollQueued = false;
    if (input?.kind === 'message') {
      const key = coalescingKey(input.message);
      if (key !== undefined && key !== null && coalescing.get(key) === input) coalescing.delete(key);
    }
    return input;
  };

  let socketState: ComfySocketState = 'connecting';
  const socket =
    options.socket === false
      ? undefined
      : context.connect(options.clientId ?? context.defaultClientId, {
          onMessage: (message) => push({ kind: 'message', message }),
          onStateChange: (state) => push({ kind: 'state', state }),
          ...(options.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: options.stallTimeoutMs }),
          ...(options.reconnect === undefined ? {} : { reconnect: options.reconnect }),
        });
  if (!socket) socketState = 'failed';

  let pollTimer: unknown;
  const schedulePoll = (delayMs: number) => {
    if (pollTimer !== undefined) clock.clearTimeout(pollTimer);
    pollTimer = clock.setTimeout(() => {
      pollTimer = undefined;
      push({ kind: 'poll' });
    }, delayMs);
  };
  const unsubscribe = context.onCancel(promptId, () => push({ kind: 'poll' }));

  let started = false;
  let active = false;
  let finishingSince: number | undefined;
  let missing = 0;
  let pollFailures = 0;
  let lastPosition: number | undefined;
  const executedOutputs: ComfyHistoryOutputs = {};

  const nextInput = async (): Promise<Input> => {
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      const input = take();
      if (input) return input;
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
  };

  const clientId = options.clientId ?? context.defaultClientId;
  const readHistory = async () => {
    const entry = await context.getHistory(promptId, signal);
    return entry !== undefined && isSubmissionOf(entry, clientId) ? entry : undefined;
  };

  const ours = (message: { promptId?: string }) =>
    message.promptId === promptId || (message.promptId === undefined && active);

  push({ kind: 'poll' });
  try {
    for (;;) {
      const input = await nextInput();
      if (input.kind === 'state') {
        socketState = input.state;
        yield { type: 'connection', state: input.state };
        // After a reconnect, anything sent while the socket was down is only in history.
        if (input.state === 'open' || input.state === 'failed') schedulePoll(0);
        continue;
      }
      if (input.kind === 'message') {
        const message = input.message;
        switch (message.type) {
          case 'execution_start':
            if (message.promptId !== promptId) {
              active = false;
              break;
            }
            active = true;
            if (!started) {
              started = true;
              yield {
                type: 'started',
                ...(message.timestamp === undefined ? {} : { timestamp: message.timestamp }),
              };
            }
            break;
          case 'execution_cached':
            if (message.promptId !== promptId) break;
            tracker.cached(message.nodeIds);
            yield { type: 'cached', nodeIds: message.nodeIds };
            break;
          case 'executing':
            if (!ours(message)) {
              if (message.promptId !== undefined) active = false;
              break;
            }
            if (message.nodeId === null) {
              active = false;
              finishingSince ??= clock.now();
              schedulePoll(0);
              break;
            }
            active = true;
            if (!started) {
              started = true;
              yield { type: 'started' };
            }
            tracker.executing(message.nodeId);
            yield { type: 'executing', nodeId: message.nodeId };
            yield { type: 'progress', fraction: tracker.fraction(), nodeId: message.nodeId };
            break;
          case 'progress':
            if (!ours(message)) break;
            tracker.progress(message.nodeId, message.value, message.max);
            yield {
              type: 'progress',
              fraction: tracker.fraction(),
              value: message.value,
              max: message.max,
              ...(message.nodeId === undefined ? {} : { nodeId: message.nodeId }),
            };
            break;
          case 'progress_state':
            if (message.promptId !== promptId) break;
            tracker.progressState(message.nodes);
            yield { type: 'progress', fraction: tracker.fraction() };
            break;
          case 'executed':
            if (!ours(message)) break;
            executedOutputs[message.nodeId] = message.output;
            yield { type: 'executed', nodeId: message.nodeId, output: message.output };
            break;
          case 'execution_success':
            if (message.promptId !== promptId) break;
            finishingSince ??= clock.now();
            schedulePoll(0);
            break;
          case 'execution_error':
            if (message.promptId !== promptId) break;
            yield {
              type: 'failed',
              error: toComfyExecutionError(message.data as ComfyExecutionErrorData),
              executionStarted: true,
            };
            return;
          case 'execution_interrupted':
            if (message.promptId !== promptId) break;
            yield { type: 'cancelled' };
            return;
          case 'preview':
            if (message.promptId === undefined ? !active : message.promptId !== promptId) break;
            yield {
              type: 'preview',
              mime: message.mime,
              data: message.data,
              ...(message.nodeId === undefined ? {} : { nodeId: message.nodeId }),
            };
            break;
          case 'text':
            if (!active) break;
            yield { type: 'text', nodeId: message.nodeId, text: message.text };
            break;
          default:
            break;
        }
        continue;
      }

      // A poll: history first (it is the authority), then the queue.
      let entry: ComfyHistoryEntry | undefined;
      let queue: Awaited<ReturnType<WatchContext['getQueue']>> | undefined;
      try {
        entry = await readHistory();
        if (entry === undefined && finishingSince === undefined) {
          queue = await context.getQueue(signal);
          const inQueue =
            queue.pending.some((item) => item.promptId === promptId) ||
            queue.running.some((item) => item.promptId === promptId);
          // It may have finished between the two reads.
          if (!inQueue) entry = await readHistory();
        }
        pollFailures = 0;
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        pollFailures += 1;
        if (pollFailures >= maxPollFailures && socketState !== 'open') throw error;
        schedulePoll(pollIntervalMs);
        continue;
      }
      if (entry !== undefined) {
        yield terminalFromHistory(entry);
        return;
      }
      if (finishingSince !== undefined) {
        if (clock.now() - finishingSince >= finishTimeoutMs) {
          // The socket said it finished and history never came (a server that keeps none).
          yield { type: 'completed', outputs: executedOutputs, detectedBy: 'socket' };
          return;
        }
        schedulePoll(Math.min(100, finishTimeoutMs));
        continue;
      }
      if (queue !== undefined) {
        const pendingIndex = queue.pending.findIndex((item) => item.promptId === promptId);
        const running = queue.running.find((item) => item.promptId === promptId);
        if (pendingIndex >= 0) {
          missing = 0;
          const count = nodeCountOf(queue.pending[pendingIndex]?.prompt);
          if (count !== undefined && !options.totalNodes) tracker.setTotalNodes(count);
          if (lastPosition !== pendingIndex) {
            lastPosition = pendingIndex;
            yield { type: 'queued', position: pendingIndex };
          }
        } else if (running !== undefined) {
          missing = 0;
          const count = nodeCountOf(running.prompt);
          if (count !== undefined && !options.totalNodes) tracker.setTotalNodes(count);
          if (!started) {
            started = true;
            yield { type: 'started' };
          }
        } else if (context.isCancelled(promptId)) {
          yield { type: 'cancelled' };
          return;
        } else {
          missing += 1;
          if (missing >= missingChecks) {
            yield {
              type: 'failed',
              error: new JobExpiredError({
                message: `ComfyUI at ${context.baseURL} no longer knows prompt ${promptId}: it is in neither its queue nor its history (the server restarted, the prompt was deleted, or history was cleared). Submit the job again.`,
                remoteId: promptId,
              }),
              executionStarted: started,
            };
            return;
          }
          schedulePoll(Math.min(pollIntervalMs, 250));
          continue;
        }
      }
      schedulePoll(socketState === 'open' ? socketPollIntervalMs : pollIntervalMs);
    }
  } finally {
    if (pollTimer !== undefined) clock.clearTimeout(pollTimer);
    unsubscribe();
    socket?.close();
  }
}
