import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createVirtualClock } from '../virtual-clock';
import { type FakeComfyServer, startFakeComfyServer } from './fake-comfy-server';
import { sampleWorkflow } from './sample-workflow';

let fake: FakeComfyServer | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

interface Listener {
  messages: Array<{ type: string; data: Record<string, unknown> }>;
  binary: Uint8Array[];
  socket: WebSocket;
}

async function listen(url: string, clientId: string): Promise<Listener> {
  const socket = new WebSocket(`${url.replace('http', 'ws')}/ws?clientId=${clientId}`);
  const listener: Listener = { messages: [], binary: [], socket };
  socket.on('message', (data, isBinary) => {
    if (isBinary) listener.binary.push(new Uint8Array(data as Buffer));
    else listener.messages.push(JSON.parse(String(data)));
  });
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  return listener;
}

async function post(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(url, { method: 'POST', body: JSON.stringify(body) });
  const text = await response.text();
  let json: Record<string, unknown> = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    // Plain-text answers (aiohttp's 404) carry no JSON.
  }
  return { status: response.status, json };
}

async function until(condition: () => boolean): Promise<void> {
  for (let index = 0; index < 2_000 && !condition(); index++)
    await new Promise((resolve) => setTimeout(resolve, 2));
  if (!condition()) throw new Error('condition never held');
}

describe('startFakeComfyServer', () => {
  it('sends status on connect and the event sequence of a real server, history before executing null', async () => {
    fake = await startFakeComfyServer({ stepMs: 1, steps: 2 });
    const me = await listen(fake.url, 'me');
    expect(me.messages[0]).toEqual({
      type: 'status',
      data: { status: { exec_info: { queue_remaining: 0 } }, sid: 'me' },
    });
    const { json } = await post(`${fake.url}/prompt`, { prompt: sampleWorkflow(), client_id: 'me' });
    const promptId = json['prompt_id'] as string;
    expect(await (await fetch(`${fake.url}/history/${promptId}`)).json()).toEqual({});
    let historyAtEnd: unknown;
    me.socket.on('message', async (data, isBinary) => {
      if (isBinary) return;
      const message = JSON.parse(String(data));
      if (message.type === 'executing' && message.data.node === null)
        historyAtEnd = await (await fetch(`${fake!.url}/api/history/${promptId}`)).json();
    });
    await until(() => historyAtEnd !== undefined);
    const sequence = me.messages
      .filter((message) => message.type !== 'status')
      .map(
        (message) => `${message.type}${message.data['node'] === undefined ? '' : `:${message.data['node']}`}`,
      );
    expect(sequence).toEqual([
      'execution_start',
      'execution_cached',
      'executing:4',
      'executing:6',
      'executing:7',
      'executing:5',
      'executing:3',
      'progress:3',
      'progress:3',
      'executing:8',
      'executing:9',
      'executed:9',
      'execution_success',
      'executing:null',
    ]);
    expect(
      me.messages.every((message) => message.type === 'status' || message.data['prompt_id'] === promptId),
    ).toBe(true);
    expect(
      (historyAtEnd as Record<string, { status: { status_str: string } }>)[promptId]?.status.status_str,
    ).toBe('success');
    me.socket.close();
  });

  it('sends execution_error only to the submitting client', async () => {
    fake = await startFakeComfyServer({ stepMs: 1 });
    const me = await listen(fake.url, 'me');
    const other = await listen(fake.url, 'other');
    fake.arrange({ type: 'fail', nodeId: '3' });
    await post(`${fake.url}/prompt`, { prompt: sampleWorkflow(), client_id: 'me' });
    await fake.idle();
    await until(() => me.messages.some((message) => message.type === 'execution_error'));
    const error = me.messages.find((message) => message.type === 'execution_error');
    expect(error?.data).toMatchObject({
      node_id: '3',
      node_type: 'KSampler',
      exception_type: 'torch.OutOfMemoryError',
    });
    expect(other.messages.map((message) => message.type)).not.toContain('execution_error');
    expect(fake.stats.failed).toBe(1);
    me.socket.close();
    other.socket.close();
  });

  it('answers invalid prompts with ComfyUI 400 bodies', async () => {
    fake = await startFakeComfyServer();
    const unknown = await post(`${fake.url}/prompt`, {
      prompt: { '1': { class_type: 'NoSuchNode', inputs: {} } },
    });
    expect(unknown.status).toBe(400);
    expect(unknown.json).toMatchObject({ error: { type: 'invalid_prompt' }, node_errors: {} });
    const noOutputs = await post(`${fake.url}/prompt`, {
      prompt: { '5': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } } },
    });
    expect(noOutputs.json).toMatchObject({ error: { type: 'prompt_no_outputs' } });
    const workflow = sampleWorkflow();
    (workflow['5']!.inputs as Record<string, unknown>)['width'] = 1;
    const tooSmall = await post(`${fake.url}/prompt`, { prompt: workflow });
    expect(tooSmall.json).toMatchObject({
      error: { type: 'prompt_outputs_failed_validation' },
      node_errors: { '5': { errors: [{ type: 'value_smaller_than_min' }], class_type: 'EmptyLatentImage' } },
    });
    expect(fake.stats.rejectedPrompts).toBe(3);
    expect(fake.stats.prompts).toBe(0);
  });

  it('serves every kind of output it was told to produce through /view', async () => {
    fake = await startFakeComfyServer({ stepMs: 1 });
    fake.arrange({
      type: 'succeed',
      outputs: {
        '9': {
          images: [{ filename: 'a.png' }],
          gifs: [{ filename: 'b.mp4', subfolder: 'video', format: 'video/h264-mp4', data: 'mp4-bytes' }],
          audio: [{ filename: 'c.flac', data: 'flac' }],
          text: ['caption'],
        },
      },
    });
    const { json } = await post(`${fake.url}/prompt`, { prompt: sampleWorkflow() });
    await fake.idle();
    const history = (await (await fetch(`${fake.url}/history/${json['prompt_id']}`)).json()) as Record<
      string,
      { outputs: Record<string, Record<string, unknown>> }
    >;
    const outputs = history[json['prompt_id'] as string]?.outputs['9'];
    expect(outputs?.['gifs']).toEqual([
      { filename: 'b.mp4', subfolder: 'video', type: 'output', format: 'video/h264-mp4' },
    ]);
    expect(outputs?.['text']).toEqual(['caption']);
    const video = await fetch(`${fake.url}/view?filename=b.mp4&subfolder=video&type=output`);
    expect(video.headers.get('content-type')).toBe('video/mp4');
    expect(await video.text()).toBe('mp4-bytes');
    expect((await fetch(`${fake.url}/view?filename=nope.png&type=output`)).status).toBe(404);
  });

  it('runs nothing until its clock moves', async () => {
    const clock = createVirtualClock();
    fake = await startFakeComfyServer({ clock, stepMs: 10 });
    await post(`${fake.url}/prompt`, { prompt: sampleWorkflow() });
    expect(fake.queue().pending).toHaveLength(1);
    await clock.advance(0);
    expect(fake.queue().running).toHaveLength(1);
    expect(fake.stats.completed).toBe(0);
    await clock.advance(1_000);
    expect(fake.stats.completed).toBe(1);
  });

  it('tells a client that reconnects mid-run the current node, and toggles the cancel route', async () => {
    fake = await startFakeComfyServer({ stepMs: 1 });
    fake.arrange({ type: 'run-until-cancelled' });
    const { json } = await post(`${fake.url}/prompt`, { prompt: sampleWorkflow(), client_id: 'me' });
    await until(() => fake!.queue().running.length === 1);
    // Connected before the first node ran, a client hears that node as it starts (with the
    // prompt id); reconnected after it, the client is told the current node.
    let told: Listener['messages'][number] | undefined;
    let me: Listener | undefined;
    for (let connection = 1; connection <= 2 && told === undefined; connection++) {
      me?.socket.close();
      const current = await listen(fake.url, 'me');
      me = current;
      await until(() => current.messages.some((message) => message.type === 'executing'));
      const first = current.messages.find((message) => message.type === 'executing');
      if (first !== undefined && !('prompt_id' in first.data)) told = first;
    }
    // As ComfyUI does: the node only, without a prompt id.
    expect(Object.keys(told?.data ?? {})).toEqual(['node']);
    expect(typeof told?.data['node']).toBe('string');
    fake.setCancelRoute(false);
    expect((await post(`${fake.url}/api/jobs/${json['prompt_id']}/cancel`, {})).status).toBe(404);
    fake.setCancelRoute(true);
    expect((await post(`${fake.url}/api/jobs/${json['prompt_id']}/cancel`, {})).status).toBe(200);
    await fake.idle();
    expect(fake.stats.interrupted).toBe(1);
    await until(() => me!.messages.some((message) => message.type === 'execution_interrupted'));
    me!.socket.close();
  });

  it('drops sockets and refuses new ones on demand', async () => {
    fake = await startFakeComfyServer();
    const me = await listen(fake.url, 'me');
    const closed = new Promise((resolve) => me.socket.once('close', resolve));
    fake.dropSockets({ refuse: true });
    await closed;
    await expect(listen(fake.url, 'again')).rejects.toThrow(/503/);
    fake.acceptSockets();
    const back = await listen(fake.url, 'again');
    expect(fake.connectedClients()).toEqual(['again']);
    back.socket.close();
  });

  it('keeps at most maxHistory entries', async () => {
    fake = await startFakeComfyServer({ stepMs: 0, maxHistory: 2 });
    const ids: string[] = [];
    for (let index = 0; index < 3; index++) {
      ids.push((await post(`${fake.url}/prompt`, { prompt: sampleWorkflow() })).json['prompt_id'] as string);
      await fake.idle();
    }
    const all = (await (await fetch(`${fake.url}/history`)).json()) as Record<string, unknown>;
    expect(Object.keys(all)).toEqual(ids.slice(1));
  });
});
