import { retryDelayMs } from '../http/retry';
import type { Clock } from '../spec/clock';
import { systemClock } from '../util/clock';
import { type ComfySocketMessage, parseSocketBinary, parseSocketText } from './socket-message';

/** What this SDK needs of a WebSocket: the WHATWG shape, as undici's and `ws`'s both provide. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  addEventListener(
    type: 'open' | 'message' | 'close' | 'error',
    listener: (event: { data?: unknown }) => void,
  ): void;
  close(code?: number, reason?: string): void;
}

/**
 * A WebSocket class: undici's `WebSocket` (the default), `ws`'s, or the global one. It is
 * called as `new WebSocket(url, { headers })` and used through the `WebSocketLike` shape
 * (typed loosely here because each library types its listeners its own way).
 */
export type WebSocketConstructor = new (url: string, ...rest: never[]) => object;

/** How a `WebSocketConstructor` is called: undici's and `ws`'s both take `{ headers }` second. */
type WebSocketWithOptions = new (
  url: string,
  options?: { headers?: Record<string, string> },
) => WebSocketLike;

/** The states of a socket connection. */
export type ComfySocketState = 'connecting' | 'open' | 'reconnecting' | 'failed' | 'closed';

/** Reconnection settings. */
export interface ReconnectOptions {
  /** Reconnections allowed over the socket's whole life; after that it gives up. @default 5 */
  attempts?: number;
  /** @default 500 */
  minDelayMs?: number;
  /** @default 10000 */
  maxDelayMs?: number;
}

/** Options of `connectComfySocket`. */
export interface ComfySocketOptions {
  /** `ws://host/ws?clientId=...`. */
  url: string;
  headers?: Record<string, string>;
  /** @default undici's WebSocket */
  webSocket?: WebSocketConstructor;
  clock?: Clock;
  reconnect?: ReconnectOptions;
  /**
   * A socket silent for this long is treated as dead and reconnected. ComfyUI says nothing
   * while a slow node runs without progress, so this is generous; history polling covers
   * the gap. @default 30000
   */
  stallTimeoutMs?: number;
  onMessage(message: ComfySocketMessage): void;
  onStateChange?(state: ComfySocketState): void;
  /** Random numbers for backoff jitter. @default Math.random */
  random?: () => number;
}

/** A live connection to ComfyUI's `/ws`, reconnecting on its own a bounded number of times. */
export interface ComfySocket {
  readonly state: ComfySocketState;
  /** Reconnections made so far. */
  readonly reconnects: number;
  close(): void;
}

let undiciWebSocket: Promise<WebSocketConstructor> | undefined;

/** Loads undici's WebSocket on first use, so importing core never loads it. */
function loadDefaultWebSocket(): Promise<WebSocketConstructor> {
  undiciWebSocket ??= import('undici').then((module) => module.WebSocket as unknown as WebSocketConstructor);
  return undiciWebSocket;
}

/**
 * Connects to ComfyUI's websocket and keeps the connection up: a dropped or silent socket
 * is reconnected with backoff, at most `reconnect.attempts` times, then the socket reports
 * `failed` and stays down (callers fall back to polling).
 */
export function connectComfySocket(options: ComfySocketOptions): ComfySocket {
  const clock = options.clock ?? systemClock;
  const maxAttempts = options.reconnect?.attempts ?? 5;
  const stallTimeoutMs = options.stallTimeoutMs ?? 30_000;
  let state: ComfySocketState = 'connecting';
  let reconnects = 0;
  let current: WebSocketLike | undefined;
  let stallTimer: unknown;
  let reconnectTimer: unknown;
  let generation = 0;

  const setState = (next: ComfySocketState) => {
    if (state === next) return;
    state = next;
    options.onStateChange?.(next);
  };

  const clearStall = () => {
    if (stallTimer !== undefined) clock.clearTimeout(stallTimer);
    stallTimer = undefined;
  };
  const armStall = (socketGeneration: number) => {
    clearStall();
    stallTimer = clock.setTimeout(() => {
      if (socketGeneration === generation) lost(socketGeneration);
    }, stallTimeoutMs);
  };

  const lost = (socketGeneration: number) => {
    if (socketGeneration !== generation || state === 'closed' || state === 'failed') return;
    generation += 1;
    clearStall();
    const dead = current;
    current = undefined;
    try {
      dead?.close();
    } catch {
      // Closing a socket that never opened may throw in some implementations.
    }
    if (reconnects >= maxAttempts) {
      setState('failed');
      return;
    }
    reconnects += 1;
    setState('reconnecting');
    const delay = retryDelayMs(undefined, reconnects, {
      minDelayMs: options.reconnect?.minDelayMs ?? 500,
      maxDelayMs: options.reconnect?.maxDelayMs ?? 10_000,
      ...(options.random ? { random: options.random } : {}),
    });
    reconnectTimer = clock.setTimeout(() => {
      reconnectTimer = undefined;
      void open();
    }, delay);
  };

  // Parsed synchronously where possible so that messages keep their order.
  const parseData = (data: unknown): ComfySocketMessage | Promise<ComfySocketMessage> | undefined => {
    if (typeof data === 'string') return parseSocketText(data);
    if (data instanceof ArrayBuffer) return parseSocketBinary(new Uint8Array(data));
    if (ArrayBuffer.isView(data))
      return parseSocketBinary(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    if (Array.isArray(data)) return parseSocketBinary(new Uint8Array(Buffer.concat(data as Buffer[])));
    if (typeof Blob !== 'undefined' && data instanceof Blob)
      return data.arrayBuffer().then((buffer) => parseSocketBinary(new Uint8Array(buffer)));
    return undefined;
  };

  const open = async () => {
    if (state === 'closed') return;
    const socketGeneration = ++generation;
    let Constructor: WebSocketConstructor;
    try {
      Constructor = options.webSocket ?? (await loadDefaultWebSocket());
    } catch {
      setState('failed');
      return;
    }
    // `close()` may have run while the class loaded.
    if (socketGeneration !== generation || (state as ComfySocketState) === 'closed') return;
    let socket: WebSocketLike;
    try {
      const WithOptions = Constructor as unknown as WebSocketWithOptions;
      socket = new WithOptions(options.url, options.headers ? { headers: options.headers } : undefined);
    } catch {
      lost(socketGeneration);
      return;
    }
    current = socket;
    try {
      socket.binaryType = 'arraybuffer';
    } catch {
      // Blob frames are handled too.
    }
    armStall(socketGeneration);
    socket.addEventListener('open', () => {
      if (socketGeneration !== generation) return;
      armStall(socketGeneration);
      setState('open');
    });
    socket.addEventListener('message', (event) => {
      if (socketGeneration !== generation) return;
      armStall(socketGeneration);
      const message = parseData(event.data);
      if (message === undefined) return;
      if (message instanceof Promise)
        void message.then((parsed) => {
          if (socketGeneration === generation) options.onMessage(parsed);
        });
      else options.onMessage(message);
    });
    socket.addEventListener('close', () => lost(socketGeneration));
    socket.addEventListener('error', () => lost(socketGeneration));
  };

  void open();

  return {
    get state() {
      return state;
    },
    get reconnects() {
      return reconnects;
    },
    close() {
      if (state === 'closed') return;
      setState('closed');
      generation += 1;
      clearStall();
      if (reconnectTimer !== undefined) clock.clearTimeout(reconnectTimer);
      const socket = current;
      current = undefined;
      try {
        socket?.close();
      } catch {
        // Already closing.
      }
    },
  };
}
