import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket as NodeWebSocket } from 'ws';
import {
  ApiCallError,
  ComfyExecutionError,
  ComfyValidationError,
  InvalidArgumentError,
  JobExpiredError,
  WorkflowFormatError,
} from '../spec/errors';
import type { ApiWorkflow } from '../spec/job';
import { type FakeComfyServer, sampleWorkflow, startFakeComfyServer, TINY_PNG } from '../test/fake-comfy';
import { createVirtualClock, type VirtualClock } from '../test/virtual-clock';
import { type ComfyClient, createComfyClient } from './comfy-client';
import type { ComfyWatchEvent } from './watch-prompt';

let fake: FakeComfyServer | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

const fast = { pollIntervalMs: 10, socketPollIntervalMs: 50 };

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let index = 0; index < 2_000; index++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Collects a watch while moving the fake server's virtual clock, one step at a time. */
async function collect(
  iterable: AsyncIterable<ComfyWatchEvent>,
  clock?: VirtualClock,
): Promise<{ events: ComfyWatchEvent[]; error?: unknown }> {
  const events: ComfyWatchEvent[] = [];
  let done = false;
  let error: unknown;
  const consuming = (async () => {
    try {
      for await (const event of iterable) events.push(event);
    } catch (caught) {
      error = caught;
    } finally {
      done = true;
    }
  })();
  while (!done && clock) {
    await clock.advance(1);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  await consuming;
  return { events, ...(error === undefined ? {} : { error }) };
}

/** A fake on a virtual clock and a client whose socket is connected before anything runs. */
async function virtualSetup(options: Parameters<typeof startFakeComfyServer>[0] = {}) {
  const clock = createVirtualClock();
  fake = await startFakeComfyServer({ clock, stepMs: 1, ...options });
  const client = createComfyClient({ baseURL: fake.url });
  return { clock, fake, client };
}

async function submitAndWatch(
  client: ComfyClient,
  server: FakeComfyServer,
  clock: VirtualClock,
  workflow: ApiWorkflow = sampleWorkflow(),
) {
  const { promptId } = await client.queuePrompt(workflow);
  // With the socket up, poll only at the start: the events then arrive in one ordered stream.
  const watching = client.watch(promptId, { ...fast, socketPollIntervalMs: 60_000 });
  // Start the generator, then let the socket connect before the fake's clock moves.
  const first = watching.next();
  await waitFor(() => server.connectedClients().includes(client.clientId), 'the socket');
  const rest = await collect(
    {
      [Symbol.asyncIterator]: () => ({
        next: (() => {
          let pendingFirst: typeof first | undefined = first;
          return () => {
            const step = pendingFirst ?? watching.next();
            pendingFirst = undefined;
            return step;
          };
        })(),
      }),
    },
    clock,
  );
  return { promptId, ...rest };
}

describe('createComfyClient: HTTP routes', () => {
  it('validates its options', () => {
    expect(() => createComfyClient({ baseURL: 'localhost:8188' })).toThrow(InvalidArgumentError);
    expect(() => createComfyClient({ baseURL: 'http://x', maxOutputBytes: 0 })).toThrow(/maxOutputBytes/);
  });

  it('submits with client_id and a chosen prompt id, and reads queue and history', async () => {
    fake = await startFakeComfyServer({ stepMs: 1 });
    fake.arrange({ type: 'run-until-cancelled' });
    const client = createComfyClient({ baseURL: fake.url, clientId: 'me' });
    const first = await client.queuePrompt(sampleWorkflow(), { promptId: 'job-1' });
    expect(first.promptId).toBe('job-1');
    expect(fake.clientIdOf('job-1')).toBe('me');
    const second = await client.queuePrompt(sampleWorkflow());
    await waitFor(() => fake!.queue().running.includes('job-1'), 'job-1 to run');
    const queue = await client.getQueue();
    expect(queue.running.map((item) => item.promptId)).toEqual(['job-1']);
    expect(queue.pending.map((item) => item.promptId)).toEqual([second.promptId]);
    expect(Object.keys(queue.pending[0]?.prompt as object)).toHaveLength(7);
    expect(await client.getHistory(second.promptId)).toBeUndefined();
    await client.deleteFromQueue([second.promptId]);
    expect((await client.getQueue()).pending).toEqual([]);
    fake.release('job-1');
    await fake.idle();
    const entry = await client.getHistory('job-1');
    expect(entry?.status?.status_str).toBe('success');
    expect(Object.keys(entry?.outputs ?? {})).toEqual(['9']);
  });

  it('turns a 400 into a ComfyValidationError carrying node_errors', async () => {
    fake = await startFakeComfyServer({ stepMs: 1 });
    const client = createComfyClient({ baseURL: fake.url });
    const error = await client
      .queuePrompt(sampleWorkflow({ checkpoint: 'missing.safetensors' }))
      .catch((caught: unknown) => caught);
    expect(ComfyValidationError.isInstance(error)).toBe(true);
    const validation = error as ComfyValidationError;
    expect(validation.type).toBe('prompt_outputs_failed_validation');
    expect(validation.nodeErrors[0]).toMatchObject({
      nodeId: '4',
      type: 'value_not_in_list',
      input: 'ckpt_name',
    });
    expect(validation.rawNodeErrors).toHaveProperty('4');
    expect(validation.isRetryable).toBe(false);
  });

  it('refuses a UI-format workflow before sending it', async () => {
    fake = await startFakeComfyServer();
    const client = createComfyClient({ baseURL: fake.url });
    const ui = { nodes: [], links: [], version: 0.4 } as unknown as ApiWorkflow;
    await expect(client.queuePrompt(ui)).rejects.toSatisfy(
      (error: unknown) =>
        WorkflowFormatError.isInstance(error) && /Save \(API format\)/.test((error as Error).message),
    );
    expect(fake.stats.prompts + fake.stats.rejectedPrompts).toBe(0);
  });

  it('marks 503 retryable and keeps header secrets out of errors', async () => {
    fake = await startFakeComfyServer();
    fake.arrange({ type: 'http-error', status: 503, body: 'upstream said Bearer sk-secret-token-123' });
    const client = createComfyClient({
      baseURL: fake.url,
      headers: { authorization: 'Bearer sk-secret-token-123' },
    });
    const error = await client.queuePrompt(sampleWorkflow()).catch((caught: unknown) => caught);
    expect(ApiCallError.isInstance(error)).toBe(true);
    expect((error as ApiCallError).isRetryable).toBe(true);
    expect(
      JSON.stringify({ message: (error as Error).message, body: (error as ApiCallError).responseBody }),
    ).not.toContain('sk-secret-token-123');
  });

  it('reads object_info, system_stats and models, uploads and views files', async () => {
    fake = await startFakeComfyServer({ models: { checkpoints: ['flux1-dev.safetensors'] }, vramGb: 80 });
    const client = createComfyClient({ baseURL: fake.url });
    const info = await client.getObjectInfo();
    expect(info['KSampler']?.input?.required).toHaveProperty('steps');
    expect(Object.keys(await client.getObjectInfo({ nodeType: 'SaveImage' }))).toEqual(['SaveImage']);
    const stats = await client.getSystemStats();
    expect(stats.devices?.[0]?.vram_total).toBe(80 * 1024 ** 3);
    expect(await client.listModels('checkpoints')).toEqual(['flux1-dev.safetensors']);
    await expect(client.listModels('../etc')).rejects.toThrow(InvalidArgumentError);
    const bytes = Uint8Array.from([1, 2, 3, 4]);
    const uploaded = await client.uploadImage({ name: 'in.png', data: bytes, mime: 'image/png' });
    expect(uploaded).toMatchObject({ name: 'in.png', type: 'input' });
    expect([...(fake.uploads().get('in.png') ?? [])]).toEqual([1, 2, 3, 4]);
    const viewed = await client.view({ filename: 'in.png', type: 'input' });
    expect([...viewed.data]).toEqual([1, 2, 3, 4]);
    await expect(client.uploadImage({ name: '../x.png', data: bytes })).rejects.toThrow(/plain file name/);
  });

  it('sends its headers on every request and on the websocket handshake', async () => {
    fake = await startFakeComfyServer({ stepMs: 1, requireHeaders: { 'Modal-Key': 'key-1234' } });
    const anonymous = createComfyClient({ baseURL: fake.url });
    await expect(anonymous.getQueue()).rejects.toMatchObject({ statusCode: 401 });
    const client = createComfyClient({ baseURL: fake.url, headers: { 'Modal-Key': 'key-1234' } });
    fake.arrange({ type: 'run-until-cancelled' });
    const { promptId } = await client.queuePrompt(sampleWorkflow());
    const events: ComfyWatchEvent[] = [];
    for await (const event of client.watch(promptId, fast)) {
      events.push(event);
      // Without the header the handshake would be refused with a 401 and never open.
      if (event.type === 'connection' && event.state === 'open') fake.release(promptId);
    }
    expect(fake.stats.socketConnections).toBe(1);
    expect(events.at(-1)?.type).toBe('completed');
  });

  it('refuses a /view answer over the size limit', async () => {
    fake = await startFakeComfyServer({ stepMs: 1 });
    const client = createComfyClient({ baseURL: fake.url, maxOutputBytes: 10 });
    await client.uploadImage({ name: 'big.png', data: new Uint8Array(100) });
    await expect(client.view({ filename: 'big.png', type: 'input' })).rejects.toSatisfy(
      (error: unknown) => (error as Error).name === 'PayloadTooLargeError',
    );
  });
});

describe('createComfyClient: watching a prompt', () => {
  it('follows the full event sequence to completion and fetches the outputs', async () => {
    const { clock, fake: server, client } = await virtualSetup({ steps: 4 });
    server.arrange({ type: 'succeed', cachedNodes: ['4'] });
    const { events, error } = await submitAndWatch(client, server, clock);
    expect(error).toBeUndefined();
    const types = events.map((event) => event.type);
    expect(types).toContain('connection');
    expect(types).toContain('started');
    expect(types).toContain('cached');
    expect(types).toContain('executing');
    expect(types).toContain('executed');
    expect(types.at(-1)).toBe('completed');
    const steps = events.filter((event) => event.type === 'progress' && event.value !== undefined);
    expect(steps.map((event) => (event.type === 'progress' ? event.value : 0))).toEqual([1, 2, 3, 4]);
    const fractions = events.flatMap((event) => (event.type === 'progress' ? [event.fraction] : []));
    expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
    expect(fractions.at(-1)).toBeGreaterThan(0.5);
    const completed = events.at(-1);
    if (completed?.type !== 'completed') throw new Error('not completed');
    const outputs = await client.fetchOutputs(completed.outputs);
    expect(outputs).toHaveLength(1);
    expect(outputs[0]).toMatchObject({ nodeId: '9', kind: 'image', mime: 'image/png' });
    expect([...(outputs[0]?.data ?? [])]).toEqual([...TINY_PNG]);
  });

  it.each([
    ['png', 'image/png'],
    ['jpeg', 'image/jpeg'],
    ['metadata', 'image/png'],
  ] as const)('passes %s preview frames on with the right type', async (format, mime) => {
    const { clock, fake: server, client } = await virtualSetup({ steps: 2 });
    server.arrange({ type: 'succeed', previews: format });
    const { events } = await submitAndWatch(client, server, clock);
    const previews = events.filter((event) => event.type === 'preview');
    expect(previews).toHaveLength(2);
    for (const preview of previews) expect(preview).toMatchObject({ mime });
  });

  it('aggregates progress_state from newer servers', async () => {
    const { clock, fake: server, client } = await virtualSetup({ steps: 2 });
    server.arrange({ type: 'succeed', progressState: true });
    const { events } = await submitAndWatch(client, server, clock);
    const fractions = events.flatMap((event) => (event.type === 'progress' ? [event.fraction] : []));
    expect(fractions.at(-1)).toBe(1);
  });

  it('turns execution_error into a typed failure, heard only by the submitting client', async () => {
    const { clock, fake: server, client } = await virtualSetup();
    const bystander: string[] = [];
    const other = createComfyClient({ baseURL: server.url, clientId: 'bystander' });
    const socket = other.connect({ onMessage: (message) => bystander.push(message.type) });
    await waitFor(() => server.connectedClients().includes('bystander'), 'the bystander');
    server.arrange({
      type: 'fail',
      nodeId: '3',
      exceptionType: 'RuntimeError',
      message: 'mat1 and mat2 shapes',
    });
    const { events } = await submitAndWatch(client, server, clock);
    socket.close();
    const last = events.at(-1);
    expect(last?.type).toBe('failed');
    if (last?.type !== 'failed') return;
    expect(ComfyExecutionError.isInstance(last.error)).toBe(true);
    expect(last.error).toMatchObject({ nodeId: '3', nodeType: 'KSampler', exceptionType: 'RuntimeError' });
    expect(last.error.message).toContain('mat1 and mat2 shapes');
    expect(last.executionStarted).toBe(true);
    expect(bystander).toContain('status');
    expect(bystander).not.toContain('execution_error');
  });

  it('completes from history alone when the socket is not used', async () => {
    fake = await startFakeComfyServer({ stepMs: 1 });
    const client = createComfyClient({ baseURL: fake.url });
    const { promptId } = await client.queuePrompt(sampleWorkflow());
    const { events } = await collect(client.watch(promptId, { ...fast, socket: false }));
    const last = events.at(-1);
    expect(last).toMatchObject({ type: 'completed', detectedBy: 'history' });
    expect(fake.stats.socketConnections).toBe(0);
  });

  it('reports a failure from history when the error event was missed', async () => {
    fake = await startFakeComfyServer({ stepMs: 1 });
    fake.arrange({ type: 'fail', nodeId: '8', exceptionType: 'ValueError', message: 'bad latent' });
    const client = createComfyClient({ baseURL: fake.url });
    const { promptId } = await client.queuePrompt(sampleWorkflow());
    await fake.idle();
    const { events } = await collect(client.watch(promptId, { ...fast, socket: false }));
    expect(events.at(-1)).toMatchObject({ type: 'failed', error: { nodeId: '8', nodeType: 'VAEDecode' } });
  });

  it('reconnects after the socket drops and still completes', async () => {
    const { clock, fake: server, client } = await virtualSetup({ steps: 6 });
    server.arrange({ type: 'succeed' });
    const { promptId } = await client.queuePrompt(sampleWorkflow());
    const watching = collect(
      client.watch(promptId, { ...fast, reconnect: { minDelayMs: 1, maxDelayMs: 2 } }),
    );
    await waitFor(() => server.connectedClients().includes(client.clientId), 'the socket');
    await clock.advance(3);
    server.dropSockets();
    await waitFor(() => server.stats.socketConnections >= 2, 'the reconnect');
    for (
      let index = 0;
      index < 200 && server.queue().running.length + server.queue().pending.length > 0;
      index++
    ) {
      await clock.advance(1);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const { events } = await watching;
    const states = events.flatMap((event) => (event.type === 'connection' ? [event.state] : []));
    expect(states).toEqual(['open', 'reconnecting', 'open']);
    expect(events.at(-1)?.type).toBe('completed');
  });

  it('reconnects a bounded number of times, then polls history', async () => {
    fake = await startFakeComfyServer({ stepMs: 1 });
    fake.dropSockets({ refuse: true });
    let constructed = 0;
    const CountingWebSocket = class extends NodeWebSocket {
      constructor(url: string, options?: { headers?: Record<string, string> }) {
        super(url, options);
        constructed += 1;
      }
    };
    const client = createComfyClient({ baseURL: fake.url, webSocket: CountingWebSocket });
    const { promptId } = await client.queuePrompt(sampleWorkflow());
    const { events } = await collect(
      client.watch(promptId, { ...fast, reconnect: { attempts: 2, minDelayMs: 1, maxDelayMs: 2 } }),
    );
    expect(events.at(-1)).toMatchObject({ type: 'completed', detectedBy: 'history' });
    // Wait for a last reconnect timer, if any, to show there is none.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(constructed).toBeLessThanOrEqual(3);
  });

  it('gives up on a stalled socket after its attempts and completes from history', async () => {
    fake = await startFakeComfyServer({ stepMs: 1 });
    fake.arrange({ type: 'run-until-cancelled' });
    fake.stallSockets(true);
    const client = createComfyClient({ baseURL: fake.url });
    const { promptId } = await client.queuePrompt(sampleWorkflow());
    const watching = client.watch(promptId, {
      ...fast,
      stallTimeoutMs: 40,
      reconnect: { attempts: 1, minDelayMs: 1, maxDelayMs: 1 },
    });
    const events: ComfyWatchEvent[] = [];
    for (;;) {
      const step = await watching.next();
      if (step.done) break;
      events.push(step.value);
      // Only once the socket is given up does the job finish.
      if (step.value.type === 'connection' && step.value.state === 'failed') fake.release(promptId);
    }
    const states = events.flatMap((event) => (event.type === 'connection' ? [event.state] : []));
    expect(states.slice(0, 2)).toEqual(['open', 'reconnecting']);
    expect(states.filter((state) => state === 'reconnecting')).toHaveLength(1);
    expect(states.at(-1)).toBe('failed');
    expect(fake.stats.socketConnections).toBeLessThanOrEqual(2);
    expect(events.at(-1)).toMatchObject({ type: 'completed', detectedBy: 'history' });
  });

  it('completes from the socket when the server keeps no history', async () => {
    const clock = createVirtualClock();
    fake = await startFakeComfyServer({ clock, stepMs: 1 });
    const noHistory: typeof fetch = async (input, init) => {
      if (String(input).includes('/history/'))
        return new Response('{}', { headers: { 'content-type': 'application/json' } });
      return fetch(input, init);
    };
    const client = createComfyClient({ baseURL: fake.url, fetch: noHistory });
    const { promptId } = await client.queuePrompt(sampleWorkflow());
    const watching = collect(client.watch(promptId, { ...fast, finishTimeoutMs: 30 }));
    await waitFor(() => fake!.connectedClients().includes(client.clientId), 'the socket');
    for (let index = 0; index < 40; index++) await clock.advance(1);
    const { events } = await watching;
    const last = events.at(-1);
    expect(last).toMatchObject({ type: 'completed', detectedBy: 'socket' });
    if (last?.type === 'completed') expect(Object.keys(last.outputs)).toEqual(['9']);
  });

  it('reports a prompt the server does not know as lost', async () => {
    fake = await startFakeComfyServer();
    const client = createComfyClient({ baseURL: fake.url });
    const { events } = await collect(
      client.watch('no-such-prompt', { ...fast, socket: false, missingChecks: 2 }),
    );
    expect(events).toHaveLength(1);
    const last = events[0];
    expect(last?.type).toBe('failed');
    if (last?.type === 'failed') {
      expect(JobExpiredError.isInstance(last.error)).toBe(true);
      expect(last.executionStarted).toBe(false);
    }
  });

  it('stops promptly when the signal aborts', async () => {
    fake = await startFakeComfyServer({ stepMs: 1 });
    fake.arrange({ type: 'run-until-cancelled' });
    const client = createComfyClient({ baseURL: fake.url });
    const { promptId } = await client.queuePrompt(sampleWorkflow());
    const controller = new AbortController();
    const watching = collect(client.watch(promptId, { signal: controller.signal }));
    await waitFor(() => fake!.connectedClients().length > 0, 'the socket');
    controller.abort(new Error('caller gave up'));
    const { error } = await watching;
    expect((error as Error).message).toBe('caller gave up');
    await waitFor(() => fake!.connectedClients().length === 0, 'the socket to close');
  });
});

describe('createComfyClient: cancel', () => {
  it('deletes a queued prompt without touching the running one', async () => {
    fake = await startFakeComfyServer({ stepMs: 1 });
    fake.arrange({ type: 'run-until-cancelled' });
    const client = createComfyClient({ baseURL: fake.url });
    const blocker = await client.queuePrompt(sampleWorkflow());
    const queued = await client.queuePrompt(sampleWorkflow());
    await waitFor(() => fake!.queue().running.includes(blocker.promptId), 'the blocker to run');
    const watching = collect(client.watch(queued.promptId, fast));
    await waitFor(() => fake!.stats.queueRequests >= 1, 'the first poll');
    expect(await client.cancel(queued.promptId)).toBe('dequeued');
    const { events } = await watching;
    expect(events).toContainEqual({ type: 'queued', position: 0 });
    expect(events.at(-1)?.type).toBe('cancelled');
    expect(fake.queue().running).toEqual([blocker.promptId]);
    expect(fake.stats.interruptCalls + fake.stats.cancelCalls).toBe(0);
    expect(await client.cancel(queued.promptId)).toBe('not-active');
  });

  it('cancels a running prompt through the per-job route when the server has it', async () => {
    fake = await startFakeComfyServer({ stepMs: 1 });
    fake.arrange({ type: 'run-until-cancelled' });
    const client = createComfyClient({ baseURL: fake.url });
    const { promptId } = await client.queuePrompt(sampleWorkflow());
    await waitFor(() => fake!.queue().running.includes(promptId), 'the prompt to run');
    const watching = collect(client.watch(promptId, fast));
    expect(await client.cancel(promptId)).toBe('cancelled');
    expect((await watching).events.at(-1)?.type).toBe('cancelled');
    expect(fake.stats.cancelCalls).toBe(1);
    expect(fake.stats.interruptCalls).toBe(0);
  });

  it('falls back to a targeted /interrupt when there is no per-job route', async () => {
    fake = await startFakeComfyServer({ stepMs: 1, cancelRoute: false });
    fake.arrange({ type: 'run-until-cancelled' });
    const client = createComfyClient({ baseURL: fake.url });
    const { promptId } = await client.queuePrompt(sampleWorkflow());
    await waitFor(() => fake!.queue().running.includes(promptId), 'the prompt to run');
    const watching = collect(client.watch(promptId, fast));
    expect(await client.cancel(promptId)).toBe('interrupted');
    expect((await watching).events.at(-1)?.type).toBe('cancelled');
    expect(fake.stats.interruptCalls).toBe(1);
    expect(fake.stats.globalInterrupts).toBe(0);
    expect(
      (await client.getHistory(promptId))?.status?.messages?.some(
        (m) => Array.isArray(m) && m[0] === 'execution_interrupted',
      ),
    ).toBe(true);
  });

  it('never interrupts another job on an old server whose /interrupt is global', async () => {
    fake = await startFakeComfyServer({ stepMs: 1, cancelRoute: false, targetedInterrupt: false });
    const client = createComfyClient({ baseURL: fake.url });
    const finished = await client.queuePrompt(sampleWorkflow());
    await fake.idle();
    fake.arrange({ type: 'run-until-cancelled' });
    const other = await client.queuePrompt(sampleWorkflow());
    await waitFor(() => fake!.queue().running.includes(other.promptId), 'the other job to run');
    expect(await client.cancel(finished.promptId)).toBe('not-active');
    expect(fake.stats.interruptCalls).toBe(0);
    expect(fake.queue().running).toEqual([other.promptId]);
    expect(await client.cancelJob(other.promptId)).toBe(false);
  });
});
