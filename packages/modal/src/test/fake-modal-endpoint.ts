import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ModalMethodTarget } from '../modal-backend';
import type { FakeModal } from './fake-modal';

/** Options of `startFakeModalEndpoint`. */
export interface FakeModalEndpointOptions {
  /** The fake control plane behind the endpoint (the class the web function calls). */
  modal: FakeModal;
  /** @default 'comfyui' */
  app?: string;
  /** @default 'ComfyWorker' */
  cls?: string;
  environment?: string;
  /** When set with `secret`, requests need `Modal-Key`/`Modal-Secret` (proxy auth). */
  key?: string;
  secret?: string;
  /** Modal answers a request still running after this long with a 303 to a result URL, in ms on the fake's clock. @default 150000 */
  redirectAfterMs?: number;
}

/** One request the fake endpoint received; credentials are recorded as present or not, never their values. */
export interface FakeModalEndpointRequest {
  method: string;
  path: string;
  hasKey: boolean;
  hasSecret: boolean;
  status?: number;
}

/** A running fake of the reference app's web endpoint. */
export interface FakeModalEndpoint {
  /** `http://127.0.0.1:<port>` */
  url: string;
  readonly requests: FakeModalEndpointRequest[];
  /** How many 303 redirects were sent. */
  readonly redirects: number;
  close(): Promise<void>;
}

interface Answer {
  status: number;
  body: unknown;
}

function toJson(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map(toJson);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, toJson(item)]));
  }
  return value;
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? undefined : JSON.parse(text);
}

function describeCallError(error: unknown): Answer {
  const name = error instanceof Error ? error.name : '';
  const message = error instanceof Error ? error.message : String(error);
  if (name === 'NotFoundError') return { status: 404, body: { error: { type: 'expired', message } } };
  if (name === 'RemoteError' && /cancel|terminated/i.test(message))
    return { status: 200, body: { status: 'cancelled' } };
  if (name === 'FunctionTimeoutError')
    return { status: 200, body: { status: 'failed', error: { type: 'timeout', message } } };
  if (name === 'InternalFailure')
    return { status: 200, body: { status: 'failed', error: { type: 'internal', message } } };
  return { status: 200, body: { status: 'failed', error: { type: 'remote', message } } };
}

/**
 * Starts a fake of the reference app's web endpoint on 127.0.0.1 (a free port): the
 * routes `POST /jobs`, `GET /jobs/{callId}?waitMs=`, `DELETE /jobs/{callId}`,
 * `GET /health` and the synchronous `POST /run`, in front of a `FakeModal`. Like Modal, it
 * requires proxy auth when `key`/`secret` are set (401 "modal-http: missing credentials
 * for proxy authorization") and answers a request longer than 150 s with a 303 to a
 * result URL that keeps waiting.
 */
export async function startFakeModalEndpoint(options: FakeModalEndpointOptions): Promise<FakeModalEndpoint> {
  const { modal } = options;
  const clock = modal.clock;
  const target: ModalMethodTarget = {
    app: options.app ?? 'comfyui',
    cls: options.cls ?? 'ComfyWorker',
    method: 'run',
    ...(options.environment === undefined ? {} : { environment: options.environment }),
  };
  const redirectAfterMs = options.redirectAfterMs ?? 150_000;
  const pending = new Map<string, Promise<Answer>>();
  const requests: FakeModalEndpointRequest[] = [];
  let redirects = 0;

  /** Waits for `work` up to Modal's limit; past it, parks the work behind a result URL and redirects there. */
  const withinLimit = (work: Promise<Answer>): Promise<Answer> =>
    new Promise((resolve) => {
      let settled = false;
      const handle = clock.setTimeout(() => {
        if (settled) return;
        settled = true;
        const token = randomUUID();
        pending.set(token, work);
        redirects += 1;
        resolve({ status: 303, body: `/__modal_result/${token}` });
      }, redirectAfterMs);
      work.then((answer) => {
        if (settled) return;
        settled = true;
        clock.clearTimeout(handle);
        resolve(answer);
      });
    });

  const pollAnswer = async (callId: string, waitMs: number): Promise<Answer> => {
    try {
      const result = await modal.poll(callId, { timeoutMs: waitMs });
      if (result.status === 'pending') return { status: 200, body: { status: 'pending' } };
      return { status: 200, body: { status: 'done', result: toJson(result.value) } };
    } catch (error) {
      return describeCallError(error);
    }
  };

  const route = async (request: IncomingMessage, url: URL): Promise<Answer> => {
    const method = request.method ?? 'GET';
    const path = url.pathname;
    if (method === 'POST' && path === '/jobs') {
      const body = await readJson(request);
      try {
        const callId = await modal.spawn(target, [body]);
        return { status: 200, body: { callId } };
      } catch (error) {
        return {
          status: 500,
          body: { error: { type: 'spawn', message: error instanceof Error ? error.message : String(error) } },
        };
      }
    }
    if (method === 'POST' && path === '/run') {
      const body = await readJson(request);
      const callId = await modal.spawn(target, [body]);
      const work = (async () => {
        for (;;) {
          const answer = await pollAnswer(callId, 55_000);
          const status = (answer.body as { status?: string }).status;
          if (status !== 'pending')
            return answer.status === 200 && status === 'done'
              ? { status: 200, body: (answer.body as { result: unknown }).result }
              : answer;
        }
      })();
      return withinLimit(work);
    }
    const result = /^\/__modal_result\/([\w-]+)$/.exec(path);
    if (method === 'GET' && result !== null) {
      const work = pending.get(result[1] ?? '');
      if (work === undefined) return { status: 404, body: { error: 'unknown result' } };
      return withinLimit(work);
    }
    const job = /^\/jobs\/([\w-]+)$/.exec(path);
    if (job !== null) {
      const callId = job[1] ?? '';
      if (method === 'GET') {
        const waitMs = Math.max(0, Math.min(Number(url.searchParams.get('waitMs') ?? '0') || 0, 3_600_000));
        return withinLimit(pollAnswer(callId, waitMs));
      }
      if (method === 'DELETE') {
        try {
          await modal.cancel(callId);
          return { status: 200, body: { cancelled: true } };
        } catch (error) {
          return describeCallError(error);
        }
      }
    }
    if (method === 'GET' && path === '/health') {
      const stats = await modal.currentStats(target);
      return { status: 200, body: { backlog: stats.backlog, runners: stats.runners } };
    }
    return { status: 404, body: { detail: 'Not Found' } };
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    const hasKey = typeof request.headers['modal-key'] === 'string';
    const hasSecret = typeof request.headers['modal-secret'] === 'string';
    const entry: FakeModalEndpointRequest = {
      method: request.method ?? 'GET',
      path: url.pathname,
      hasKey,
      hasSecret,
    };
    requests.push(entry);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      entry.status = status;
      if (response.destroyed || response.writableEnded) return;
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      response.writeHead(status, {
        'content-type': typeof body === 'string' ? 'text/plain' : 'application/json',
        ...headers,
      });
      response.end(text);
    };
    if (options.key !== undefined || options.secret !== undefined) {
      if (!hasKey || !hasSecret) {
        request.resume();
        send(401, 'modal-http: missing credentials for proxy authorization');
        return;
      }
      if (
        request.headers['modal-key'] !== options.key ||
        request.headers['modal-secret'] !== options.secret
      ) {
        request.resume();
        send(401, 'modal-http: invalid credentials for proxy authorization');
        return;
      }
    }
    try {
      const answer = await route(request, url);
      if (answer.status === 303) send(303, '', { location: String(answer.body) });
      else send(answer.status, answer.body);
    } catch (error) {
      send(500, {
        error: { type: 'internal', message: error instanceof Error ? error.message : String(error) },
      });
    }
  };

  const server = createServer((request, response) => {
    void handle(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get redirects() {
      return redirects;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
