import { createServer } from 'node:http';
import type { S3Mock } from './s3-mock';

/** An `S3Mock` served on a loopback port. */
export interface RunningS3MockServer {
  /** `http://127.0.0.1:<port>`: the `endpoint` of an S3 client or source. */
  endpoint: string;
  close(): Promise<void>;
}

/**
 * Serves an `S3Mock` over real HTTP on 127.0.0.1, for clients that do not go through
 * `fetch` (and so past msw): the S3 source's socket transport, the AWS SDK. A `cut` fault
 * breaks the real connection mid-body.
 *
 * @example
 * const mock = createS3Mock();
 * const server = await startS3MockServer(mock);
 * const source = createS3ModelSource({ bucket: 'models', endpoint: server.endpoint, credentials });
 */
export async function startS3MockServer(mock: S3Mock): Promise<RunningS3MockServer> {
  const server = createServer(async (incoming, outgoing) => {
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of incoming) chunks.push(chunk as Buffer);
      const headers = new Headers();
      for (const [name, value] of Object.entries(incoming.headers)) {
        if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
      }
      const method = incoming.method ?? 'GET';
      const body =
        method === 'GET' || method === 'HEAD' || chunks.length === 0 ? undefined : Buffer.concat(chunks);
      const request = new Request(`http://${incoming.headers.host ?? '127.0.0.1'}${incoming.url ?? '/'}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
      });
      const response = await mock.handle(request);
      if (response === undefined) {
        outgoing.writeHead(404).end();
        return;
      }
      const responseHeaders: Record<string, string> = {};
      response.headers.forEach((value, name) => {
        responseHeaders[name] = value;
      });
      outgoing.writeHead(response.status, responseHeaders);
      if (response.body === null || method === 'HEAD') {
        outgoing.end();
        return;
      }
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        if (!outgoing.write(chunk)) await new Promise((resolve) => outgoing.once('drain', resolve));
      }
      outgoing.end();
    } catch {
      // A body that breaks (a `cut` fault) breaks the connection, as a real reset would.
      outgoing.socket?.destroy();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
