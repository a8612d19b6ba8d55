import { connect, createServer, type Server, type Socket } from 'node:net';

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
 * A TCP proxy in front of an S3 server that caps what each client connection receives at
 * `bytesPerSecond` (the per-connection ceiling S3 shows in practice), so that parallel
 * connections are what pays. It forwards bytes unchanged (SigV4 signatures still match) and
 * parses no HTTP: answers are read into a small ring of reused buffers and written on, so
 * that the proxy, which shares the machine with the clients it measures, costs little CPU
 * per byte (a real S3 throttles on its own machines). A connection whose budget is spent,
 * or whose client has not taken the bytes yet, stops being read until it may go on.
 */
export async function startThrottleProxy(
  target: string,
  bytesPerSecond: number,
): Promise<{ url: string; close(): Promise<void> }> {
  const upstreamUrl = new URL(target);
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const budget = new ConnectionBudget(bytesPerSecond);
    const ring = Array.from({ length: 4 }, () => Buffer.allocUnsafe(64 * 1024));
    const busy = ring.map(() => false);
    let next = 0; // the buffer the next read goes into
    let paused = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const resumeIfAllowed = () => {
      if (!paused || timer !== undefined || busy[next] || upstream.destroyed) return;
      paused = false;
      upstream.resume();
    };
    const upstream = connect({
      host: upstreamUrl.hostname,
      port: Number(upstreamUrl.port),
      noDelay: true,
      onread: {
        buffer: () => ring[next]!,
        callback: (bytes: number, buffer: Uint8Array) => {
          const index = next;
          busy[index] = true;
          client.write(buffer.subarray(0, bytes), () => {
            busy[index] = false;
            resumeIfAllowed();
          });
          next = (next + 1) % ring.length;
          const wait = budget.delayFor(bytes);
          if (wait > 1) {
            timer = setTimeout(() => {
              timer = undefined;
              resumeIfAllowed();
            }, wait);
          }
          if (timer !== undefined || busy[next]) {
            paused = true;
            return false;
          }
          return true;
        },
      },
    });
    sockets.add(client);
    sockets.add(upstream);
    client.setNoDelay(true);
    client.pipe(upstream);
    upstream.on('end', () => client.end());
    const closeBoth = () => {
      if (timer !== undefined) clearTimeout(timer);
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', closeBoth);
    upstream.on('close', closeBoth);
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
