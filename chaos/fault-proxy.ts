import { createHash } from 'node:crypto';
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import type { Clock } from '@comfy-serverless/core';
import { InvalidArgumentError, systemClock } from '@comfy-serverless/core';
import { seededFraction } from './seeded-random';

/** What the proxy did with one request. */
export type FaultKind =
  | 'pass'
  | 'server-error'
  | 'rate-limit'
  | 'reset-before'
  | 'reset-after'
  | 'slow'
  | 'truncate'
  | 'outage';

/** Share of requests (0..1) that meet each fault; the rest pass. */
export interface FaultRates {
  /** Answered 500/502/503 by the proxy; the upstream never sees the request. */
  serverError?: number;
  /** Answered 429 with `Retry-After`; the upstream never sees the request. */
  rateLimit?: number;
  /** The connection is cut once the request arrived, before the upstream sees it. */
  resetBefore?: number;
  /** The upstream handles the request, then the connection is cut before any answer. */
  resetAfter?: number;
  /** The upstream's answer is held back for `slowMs` (on the proxy's clock). */
  slow?: number;
  /** The upstream's answer is cut off halfway through its body. */
  truncate?: number;
}

/** Options of `startFaultProxy`. */
export interface FaultProxyOptions {
  /** The server to forward to, `http://127.0.0.1:<port>` (any path is ignored). */
  target: string;
  /** Fixes every fault decision: the same seed and the same requests meet the same faults. */
  seed: number;
  /** @default no faults */
  rates?: FaultRates;
  /** `Retry-After` of injected 429s, seconds. @default 1 */
  retryAfterSeconds?: number;
  /** How long slow answers are held, ms on `clock`. @default 2000 */
  slowMs?: number;
  /** Runs outages and slow answers. @default the system clock */
  clock?: Clock;
  /** Which requests may meet a fault (outages apply to all). @default every request */
  applies?: (request: { method: string; path: string }) => boolean;
}

/** Counts of what the proxy did, by fault. */
export type FaultCounts = Record<FaultKind, number>;

/** A running fault-injecting proxy. */
export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: use it where the upstream's URL would go. */
  readonly url: string;
  /** Cuts every open connection and refuses all traffic for `durationMs` on the proxy's clock. */
  startOutage(durationMs: number): void;
  /** Whether an outage is on now. */
  inOutage(): boolean;
  /** What the proxy did so far, by fault. */
  counts(): FaultCounts;
  /** Counts of faults by route (method and path without query and ids). */
  countsByRoute(): Record<string, Partial<FaultCounts>>;
  close(): Promise<void>;
}

const SERVER_ERRORS = [500, 502, 503] as const;
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

function emptyCounts(): FaultCounts {
  return {
    pass: 0,
    'server-error': 0,
    'rate-limit': 0,
    'reset-before': 0,
    'reset-after': 0,
    slow: 0,
    truncate: 0,
    outage: 0,
  };
}

function checkRate(name: string, value: number | undefined): number {
  if (value === undefined) return 0;
  if (!(typeof value === 'number' && value >= 0 && value <= 1))
    throw new InvalidArgumentError({
      argument: `rates.${name}`,
      message: `"rates.${name}" must be a share from 0 to 1; got ${String(value)}.`,
    });
  return value;
}

/** The route a path belongs to, with ids and queries left out, for counting. */
export function routeOf(method: string, path: string): string {
  const bare = path.split('?')[0] ?? '';
  const parts = bare.split('/').filter((part) => part !== '');
  // Keep the words of a route, drop what looks like an id (digits, hex, uuids, long tokens).
  const words = parts.filter((part) => !(/\d/.test(part) && part.length >= 6) && part.length <= 32);
  return `${method} /${words.join('/')}`;
}

/**
 * Starts a seeded fault-injecting HTTP proxy on 127.0.0.1 in front of a mock server:
 * per-request 5xx, 429 with Retry-After, connection resets before and after the upstream
 * handled the request, slow and truncated answers, and full outages for a set time.
 * Websocket upgrades are tunnelled (cut by outages and by `resetBefore`).
 *
 * Each decision is a pure function of the seed, the request (method, path, body) and how
 * many identical requests came before it, so a failing run replays with its seed.
 *
 * @example
 * const proxy = await startFaultProxy({ target: mock.url, seed: 42, rates: { serverError: 0.1 } });
 * const runpod = createRunpod({ ..., baseURL: `${proxy.url}/v2` });
 */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  let target: URL;
  try {
    target = new URL(options.target);
  } catch {
    throw new InvalidArgumentError({
      argument: 'target',
      message: `"target" must be an http URL; got ${JSON.stringify(options.target)}.`,
    });
  }
  if (!Number.isInteger(options.seed))
    throw new InvalidArgumentError({
      argument: 'seed',
      message: `"seed" must be an integer; got ${String(options.seed)}.`,
    });
  const rates = options.rates ?? {};
  // The order is fixed so that one seed always maps to the same fault.
  const thresholds: Array<[FaultKind, number]> = [
    ['server-error', checkRate('serverError', rates.serverError)],
    ['rate-limit', checkRate('rateLimit', rates.rateLimit)],
    ['reset-before', checkRate('resetBefore', rates.resetBefore)],
    ['reset-after', checkRate('resetAfter', rates.resetAfter)],
    ['slow', checkRate('slow', rates.slow)],
    ['truncate', checkRate('truncate', rates.truncate)],
  ];
  const total = thresholds.reduce((sum, [, rate]) => sum + rate, 0);
  if (total > 1)
    throw new InvalidArgumentError({
      argument: 'rates',
      message: `The fault rates add up to ${total}; they must add up to at most 1.`,
    });
  const clock = options.clock ?? systemClock;
  const retryAfterSeconds = options.retryAfterSeconds ?? 1;
  const slowMs = options.slowMs ?? 2_000;
  const seed = options.seed;
  const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  const occurrences = new Map<string, number>();
  const counts = emptyCounts();
  const byRoute = new Map<string, Partial<FaultCounts>>();
  const sockets = new Set<Socket>();
  const tunnels = new Set<Socket>();
  let outageUntil = Number.NEGATIVE_INFINITY;
  let closed = false;

  const inOutage = () => clock.now() < outageUntil;
  const count = (kind: FaultKind, route: string) => {
    counts[kind] += 1;
    const entry = byRoute.get(route) ?? {};
    entry[kind] = (entry[kind] ?? 0) + 1;
    byRoute.set(route, entry);
  };

  const decide = (method: string, path: string, body: Buffer): { kind: FaultKind; draw: number } => {
    const digest = createHash('sha256').update(body).digest('hex').slice(0, 16);
    const key = `${method} ${path} ${digest}`;
    const occurrence = (occurrences.get(key) ?? 0) + 1;
    occurrences.set(key, occurrence);
    const draw = seededFraction(seed, `${key} #${occurrence}`);
    if (options.applies !== undefined && !options.applies({ method, path })) return { kind: 'pass', draw };
    let edge = 0;
    for (const [kind, rate] of thresholds) {
      edge += rate;
      if (draw < edge) return { kind, draw };
    }
    return { kind: 'pass', draw };
  };

  const readBody = (request: IncomingMessage): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => resolve(Buffer.concat(chunks)));
      request.on('error', reject);
    });

  const forward = (
    request: IncomingMessage,
    body: Buffer,
    response: ServerResponse,
  ): Promise<{ status: number; headers: OutgoingHttpHeaders; body: Buffer } | undefined> =>
    new Promise((resolve) => {
      const headers: OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(request.headers)) {
        if (!HOP_BY_HOP.has(name) && value !== undefined) headers[name] = value;
      }
      headers.host = target.host;
      headers['content-length'] = String(body.length);
      const upstream = httpRequest(
        {
          host: target.hostname,
          port: target.port,
          method: request.method,
          path: request.url,
          headers,
          agent,
        },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => chunks.push(chunk));
          answer.on('end', () => {
            const out: OutgoingHttpHeaders = {};
            for (const [name, value] of Object.entries(answer.headers)) {
              if (!HOP_BY_HOP.has(name) && name !== 'content-length' && value !== undefined)
                out[name] = value;
            }
            resolve({ status: answer.statusCode ?? 502, headers: out, body: Buffer.concat(chunks) });
          });
          answer.on('error', () => resolve(undefined));
        },
      );
      upstream.on('error', () => resolve(undefined));
      // A client that gives up on a long poll frees the upstream request too.
      response.on('close', () => {
        if (!response.writableFinished) upstream.destroy();
      });
      upstream.end(body);
    });

  const cut = (response: ServerResponse) => {
    response.socket?.destroy();
  };

  const wait = (ms: number) => new Promise<void>((resolve) => clock.setTimeout(resolve, ms));

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const method = request.method ?? 'GET';
    const path = request.url ?? '/';
    const route = routeOf(method, path);
    if (inOutage()) {
      count('outage', route);
      cut(response);
      return;
    }
    const body = await readBody(request);
    const { kind, draw } = decide(method, path, body);
    if (inOutage()) {
      count('outage', route);
      cut(response);
      return;
    }
    switch (kind) {
      case 'server-error': {
        count(kind, route);
        const status = SERVER_ERRORS[Math.floor(draw * 1_000) % SERVER_ERRORS.length] ?? 502;
        response.writeHead(status, { 'content-type': 'text/html' });
        response.end(`<html><body><h1>${status}</h1>injected by the fault proxy</body></html>`);
        return;
      }
      case 'rate-limit':
        count(kind, route);
        response.writeHead(429, {
          'content-type': 'application/json',
          'retry-after': String(retryAfterSeconds),
        });
        response.end(JSON.stringify({ error: 'Too Many Requests (injected by the fault proxy)' }));
        return;
      case 'reset-before':
        count(kind, route);
        cut(response);
        return;
      default:
        break;
    }
    const answer = await forward(request, body, response);
    if (answer === undefined || response.destroyed) {
      // The upstream went away (closed, or the client gave up): pass the cut on.
      cut(response);
      return;
    }
    if (inOutage()) {
      count('outage', route);
      cut(response);
      return;
    }
    count(kind, route);
    if (kind === 'reset-after') {
      cut(response);
      return;
    }
    if (kind === 'slow') await wait(slowMs);
    if (response.destroyed) return;
    if (kind === 'truncate' && answer.body.length > 1) {
      response.writeHead(answer.status, { ...answer.headers, 'content-length': String(answer.body.length) });
      response.write(answer.body.subarray(0, Math.floor(answer.body.length / 2)), () => cut(response));
      return;
    }
    if (kind === 'truncate') {
      cut(response);
      return;
    }
    response.writeHead(answer.status, { ...answer.headers, 'content-length': String(answer.body.length) });
    response.end(answer.body);
  };

  const server = createServer((request, response) => {
    handle(request, response).catch(() => cut(response));
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
    const method = request.method ?? 'GET';
    const path = request.url ?? '/';
    const route = routeOf(method, path);
    if (inOutage()) {
      count('outage', route);
      socket.destroy();
      return;
    }
    const { kind } = decide(method, path, Buffer.alloc(0));
    if (kind === 'reset-before' || kind === 'reset-after') {
      count(kind, route);
      socket.destroy();
      return;
    }
    count('pass', route);
    const upstream = connect(Number(target.port), target.hostname, () => {
      const lines = [`${method} ${path} HTTP/1.1`];
      for (let index = 0; index < request.rawHeaders.length; index += 2) {
        const name = request.rawHeaders[index] ?? '';
        const value = request.rawHeaders[index + 1] ?? '';
        lines.push(`${name}: ${name.toLowerCase() === 'host' ? target.host : value}`);
      }
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    tunnels.add(socket);
    const end = () => {
      tunnels.delete(socket);
      socket.destroy();
      upstream.destroy();
    };
    socket.on('error', end);
    socket.on('close', end);
    upstream.on('error', end);
    upstream.on('close', end);
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    startOutage(durationMs: number) {
      if (!(durationMs > 0))
        throw new InvalidArgumentError({
          argument: 'durationMs',
          message: `"durationMs" must be > 0; got ${String(durationMs)}.`,
        });
      outageUntil = clock.now() + durationMs;
      // Connections open when the platform goes down are cut too, long polls and websockets alike.
      for (const socket of [...sockets, ...tunnels]) {
        if (!socket.destroyed) count('outage', 'open connection');
        socket.destroy();
      }
    },
    inOutage,
    counts: () => ({ ...counts }),
    countsByRoute: () => Object.fromEntries([...byRoute].map(([route, entry]) => [route, { ...entry }])),
    async close() {
      if (closed) return;
      closed = true;
      for (const socket of [...sockets, ...tunnels]) socket.destroy();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
