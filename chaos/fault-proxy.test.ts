import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createVirtualClock } from '@comfy-serverless/core/test';
import { afterEach, describe, expect, it } from 'vitest';
import { type FaultProxy, routeOf, startFaultProxy } from './fault-proxy';

interface Upstream {
  url: string;
  /** Requests the upstream handled, by path. */
  handled: string[];
  server: Server;
}

async function startUpstream(): Promise<Upstream> {
  const handled: string[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      handled.push(request.url ?? '');
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({ path: request.url, body: Buffer.concat(chunks).toString(), pad: 'x'.repeat(200) }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, handled, server };
}

const open: Array<{ close(): Promise<void> | void }> = [];
afterEach(async () => {
  for (const item of open.splice(0)) await item.close();
});

async function setUp(options: Omit<Parameters<typeof startFaultProxy>[0], 'target'>) {
  const upstream = await startUpstream();
  open.push({ close: () => new Promise<void>((resolve) => upstream.server.close(() => resolve())) });
  upstream.server.closeAllConnections?.();
  const proxy = await startFaultProxy({ target: upstream.url, ...options });
  open.push(proxy);
  return { upstream, proxy };
}

/** Sends one request and says how it ended. */
async function probe(proxy: FaultProxy, path: string, body = ''): Promise<string> {
  try {
    const response = await fetch(`${proxy.url}${path}`, {
      method: 'POST',
      body,
      headers: { connection: 'close' },
    });
    const text = await response.text();
    if (response.status !== 200) return `${response.status}:${response.headers.get('retry-after') ?? ''}`;
    JSON.parse(text);
    return 'ok';
  } catch {
    return 'error';
  }
}

describe('startFaultProxy', () => {
  it('passes requests through unchanged when no fault is set', async () => {
    const { upstream, proxy } = await setUp({ seed: 1 });
    const response = await fetch(`${proxy.url}/echo?x=1`, { method: 'POST', body: 'hello' });
    expect(await response.json()).toMatchObject({ path: '/echo?x=1', body: 'hello' });
    expect(upstream.handled).toEqual(['/echo?x=1']);
    expect(proxy.counts().pass).toBe(1);
  });

  it('answers 429 with Retry-After and 5xx without reaching the upstream', async () => {
    const limited = await setUp({ seed: 1, rates: { rateLimit: 1 }, retryAfterSeconds: 7 });
    expect(await probe(limited.proxy, '/a')).toBe('429:7');
    expect(limited.upstream.handled).toEqual([]);
    const failing = await setUp({ seed: 1, rates: { serverError: 1 } });
    expect(await probe(failing.proxy, '/a')).toMatch(/^50[023]:$/);
    expect(failing.upstream.handled).toEqual([]);
  });

  it('cuts the connection before the upstream sees the request, or after it handled it', async () => {
    const before = await setUp({ seed: 1, rates: { resetBefore: 1 } });
    expect(await probe(before.proxy, '/a')).toBe('error');
    expect(before.upstream.handled).toEqual([]);
    const after = await setUp({ seed: 1, rates: { resetAfter: 1 } });
    expect(await probe(after.proxy, '/a')).toBe('error');
    expect(after.upstream.handled).toEqual(['/a']);
    expect(after.proxy.counts()['reset-after']).toBe(1);
  });

  it('truncates bodies so that the client cannot read them', async () => {
    const { upstream, proxy } = await setUp({ seed: 1, rates: { truncate: 1 } });
    expect(await probe(proxy, '/a')).toBe('error');
    expect(upstream.handled).toEqual(['/a']);
  });

  it('holds slow answers for slowMs on its clock', async () => {
    const clock = createVirtualClock();
    const { proxy } = await setUp({ seed: 1, rates: { slow: 1 }, slowMs: 5_000, clock });
    let settled = false;
    const pending = probe(proxy, '/a').then((outcome) => {
      settled = true;
      return outcome;
    });
    while (clock.pending() === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    expect(settled).toBe(false);
    await clock.advance(5_000);
    expect(await pending).toBe('ok');
  });

  it('refuses everything during an outage, then recovers', async () => {
    const clock = createVirtualClock();
    const { upstream, proxy } = await setUp({ seed: 1, clock });
    proxy.startOutage(30_000);
    expect(proxy.inOutage()).toBe(true);
    expect(await probe(proxy, '/a')).toBe('error');
    await clock.advance(30_000);
    expect(proxy.inOutage()).toBe(false);
    expect(await probe(proxy, '/a')).toBe('ok');
    expect(upstream.handled).toEqual(['/a']);
    expect(proxy.counts().outage).toBe(1);
  });

  it('makes the same decisions for the same seed, and others for another seed', async () => {
    const rates = { serverError: 0.3, rateLimit: 0.2, resetBefore: 0.2 };
    const run = async (seed: number) => {
      const { proxy } = await setUp({ seed, rates });
      const outcomes: string[] = [];
      for (let index = 0; index < 40; index++) outcomes.push(await probe(proxy, `/job/${index % 5}`));
      return outcomes.map((outcome) => outcome.replace(/^50[023]/, '5xx')).join(',');
    };
    const first = await run(7);
    expect(await run(7)).toBe(first);
    expect(await run(8)).not.toBe(first);
    expect(first).toMatch(/ok/);
    expect(first).toMatch(/error/);
  });

  it('refuses rates that are not shares or add up to more than 1', async () => {
    await expect(
      startFaultProxy({ target: 'http://127.0.0.1:1', seed: 1, rates: { slow: 2 } }),
    ).rejects.toThrow(/rates\.slow/);
    await expect(
      startFaultProxy({ target: 'http://127.0.0.1:1', seed: 1, rates: { slow: 0.6, truncate: 0.6 } }),
    ).rejects.toThrow(/add up/);
    await expect(startFaultProxy({ target: 'not a url', seed: 1 })).rejects.toThrow(/target/);
  });

  it('names routes without ids or queries', () => {
    expect(routeOf('GET', '/v2/mock-endpoint/status-sync/0000001a-mock-u1?wait=1000')).toBe(
      'GET /v2/mock-endpoint/status-sync',
    );
    expect(routeOf('GET', '/history/1b2c3d4e-aaaa-5bbb-accc-123456789abc')).toBe('GET /history');
  });
});
