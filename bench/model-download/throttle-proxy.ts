import { createServer, request, type Server } from 'node:http';
import type { Socket } from 'node:net';

/**
 * A byte budget for one client connection: a virtual clock of when the bytes sent so far
 * would have left at `bytesPerSecond`. Idle time earns at most `burstMs` of credit, so a
 * kept-alive connection cannot save up for a burst.
 */
class ConnectionBudget {
  private cursor = performance.now();
  constructor(
    private readonly bytesPerSecond: number,
    private readonly burstMs = 20,
  ) {}
  /** Milliseconds to wait before `bytes` more may go out. */
  delayFor(bytes: number): number {
    const now = performance.now();
    this.cursor = Math.max(this.cursor, now - this.burstMs) + (bytes / this.bytesPerSecond) * 1000;
    return Math.max(0, this.cursor - now);
  }
}

/**
 * A small HTTP proxy in front of an S3 server that caps each client connection at
 * `bytesPerSecond` (the per-connection ceiling S3 shows in practice), so that parallel
 * connections are what pays. Headers pass unchanged, so SigV4 signatures still match.
 * The upstream answer is paused whenever its connection is ahead of its budget.
 */
export async function startThrottleProxy(
  target: string,
  bytesPerSecond: number,
): Promise<{ url: string; close(): Promise<void> }> {
  const upstream = new URL(target);
  const budgets = new WeakMap<Socket, ConnectionBudget>();
  const server: Server = createServer((incoming, outgoing) => {
    const socket = incoming.socket;
    let budget = budgets.get(socket);
    if (budget === undefined) {
      budget = new ConnectionBudget(bytesPerSecond);
      budgets.set(socket, budget);
    }
    const connectionBudget = budget;
    const forwarded = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: incoming.method,
        path: incoming.url,
        headers: incoming.headers,
      },
      (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        let resumeTimer: ReturnType<typeof setTimeout> | undefined;
        let drained = true;
        const maybeResume = () => {
          if (resumeTimer === undefined && drained) answer.resume();
        };
        answer.on('data', (chunk: Buffer) => {
          if (!outgoing.write(chunk)) {
            drained = false;
            answer.pause();
          }
          const wait = connectionBudget.delayFor(chunk.length);
          if (wait > 1) {
            answer.pause();
            resumeTimer = setTimeout(() => {
              resumeTimer = undefined;
              maybeResume();
            }, wait);
          }
        });
        outgoing.on('drain', () => {
          drained = true;
          maybeResume();
        });
        answer.on('end', () => outgoing.end());
        answer.on('error', () => outgoing.destroy());
      },
    );
    forwarded.on('error', () => outgoing.destroy());
    incoming.pipe(forwarded);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
