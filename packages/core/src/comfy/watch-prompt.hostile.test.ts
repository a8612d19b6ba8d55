import { describe, expect, it } from 'vitest';
import { createComfyClient } from './comfy-client';
import type { WebSocketLike } from './comfy-socket';
import { listOutputs } from './outputs';

// Hostile ComfyUI servers and workers: a websocket that floods events, and history entries
// naming files that could trip the output listing.

/** Progress messages in the flood. */
const FLOOD = 20_000;

type Listener = (event: { data?: unknown }) => void;

/** A websocket the test drives by hand: `emit` delivers a frame at once. */
class HandSocket implements WebSocketLike {
  static last: HandSocket | undefined;
  binaryType = 'arraybuffer';
  readyState = 0;
  private readonly listeners = new Map<string, Listener[]>();
  constructor(readonly url: string) {
    HandSocket.last = this;
    setTimeout(() => {
      this.readyState = 1;
      this.dispatch('open', {});
    }, 0);
  }
  addEventListener(type: string, listener: Listener): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }
  close(): void {
    this.readyState = 3;
  }
  dispatch(type: string, event: { data?: unknown }): void {
    for (const listener of this.listeners.get(type) ?? []) listener(event);
  }
  emit(message: unknown): void {
    this.dispatch('message', { data: JSON.stringify(message) });
  }
}

/** /queue shows the prompt running; /history does not know it yet. */
const fetchRunning = async (input: string | URL) => {
  const path = new URL(String(input)).pathname;
  const body =
    path === '/queue'
      ? { queue_running: [[0, 'p-1', { '3': {} }, { client_id: 'c-1' }, ['3']]], queue_pending: [] }
      : {};
  return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
};

describe('watching a prompt on a hostile ComfyUI', () => {
  // Found by this suite: the watch used to buffer every websocket message until the consumer
  // read it. Progress, previews and text are now coalesced (the latest per node is kept).
  it('holds a bounded number of events while a flood of 20,000 progress messages arrives', async () => {
    const client = createComfyClient({
      baseURL: 'http://127.0.0.1:1',
      fetch: fetchRunning,
      webSocket: HandSocket as never,
      clientId: 'c-1',
    });
    const controller = new AbortController();
    const events = client.watch('p-1', {
      signal: controller.signal,
      clientId: 'c-1',
      socketPollIntervalMs: 600_000,
    });
    const first = await events.next();
    expect(first.done).toBe(false);
    while (HandSocket.last?.readyState !== 1) await new Promise((resolve) => setTimeout(resolve, 1));
    const socket = HandSocket.last;
    socket.emit({ type: 'execution_start', data: { prompt_id: 'p-1' } });
    // The flood arrives while the consumer is away.
    for (let value = 1; value <= FLOOD; value++)
      socket.emit({ type: 'progress', data: { prompt_id: 'p-1', node: '3', value, max: FLOOD } });
    // Then the next node starts: the consumer reads until it sees that.
    socket.emit({ type: 'executing', data: { prompt_id: 'p-1', node: '9' } });
    let progressEvents = 0;
    let lastValue = 0;
    for (;;) {
      const next = await events.next();
      if (next.done || (next.value.type === 'executing' && next.value.nodeId === '9')) break;
      if (next.value.type === 'progress' && next.value.value !== undefined) {
        progressEvents += 1;
        lastValue = next.value.value;
      }
    }
    controller.abort();
    // The latest progress is never lost, whatever is dropped on the way.
    expect(lastValue).toBe(FLOOD);
    expect(progressEvents).toBeLessThanOrEqual(1_000);
  }, 30_000);

  it('drops nothing while the consumer keeps up (the case above is about backlog only)', async () => {
    const client = createComfyClient({
      baseURL: 'http://127.0.0.1:1',
      fetch: fetchRunning,
      webSocket: HandSocket as never,
      clientId: 'c-1',
    });
    const controller = new AbortController();
    const events = client.watch('p-1', {
      signal: controller.signal,
      clientId: 'c-1',
      socketPollIntervalMs: 600_000,
    });
    await events.next();
    while (HandSocket.last?.readyState !== 1) await new Promise((resolve) => setTimeout(resolve, 1));
    const socket = HandSocket.last;
    socket.emit({ type: 'execution_start', data: { prompt_id: 'p-1' } });
    const seen: number[] = [];
    for (let value = 1; value <= 20; value++) {
      socket.emit({ type: 'progress', data: { prompt_id: 'p-1', node: '3', value, max: 20 } });
      for (;;) {
        const next = await events.next();
        if (next.done) break;
        if (next.value.type === 'progress' && next.value.value !== undefined) {
          seen.push(next.value.value);
          break;
        }
      }
    }
    controller.abort();
    expect(seen).toEqual(Array.from({ length: 20 }, (_, index) => index + 1));
  });

  // Found by the fuzz suite (comfy-parsers.fuzz.test.ts): a name ending in an Object.prototype
  // key used to make listOutputs throw; the extension lookup is now an own-property lookup.
  it('lists a file whose extension is an Object.prototype key instead of throwing', () => {
    const items = listOutputs({
      '9': { images: [{ filename: 'render.constructor', subfolder: '', type: 'output' }] },
    });
    expect(items.map((item) => item.filename)).toEqual(['render.constructor']);
  });

  it('lists files named with .. or absolute paths as names only, with their subfolder kept apart', () => {
    const items = listOutputs({
      '9': {
        images: [
          { filename: '../../../etc/passwd', subfolder: '..', type: 'output' },
          { filename: '/etc/shadow.png', subfolder: '', type: 'output' },
        ],
      },
    });
    // The name goes back to the same server's /view as a query value; nothing here writes files.
    expect(items.map((item) => [item.filename, item.file?.subfolder])).toEqual([
      ['../../../etc/passwd', '..'],
      ['/etc/shadow.png', ''],
    ]);
  });
});
