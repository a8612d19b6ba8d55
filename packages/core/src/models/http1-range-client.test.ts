import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiCallError, InvalidArgumentError, InvalidResponseError } from '../spec/errors';
import { createHttp1RangeClient, type Http1RangeClient, type LentChunkBody } from './http1-range-client';

function bytes(size: number): Buffer {
  const buffer = Buffer.alloc(size);
  for (let index = 0; index < size; index++) buffer[index] = (index * 31 + (index >> 8)) & 0xff;
  return buffer;
}

/** Reads a lent body whole, copying each chunk (they are only lent). */
async function collect(body: LentChunkBody): Promise<Buffer> {
  const parts: Buffer[] = [];
  await body.consume((chunk) => {
    parts.push(Buffer.from(chunk));
    return true;
  });
  return Buffer.concat(parts);
}

const closers: Array<() => void> = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function listen(server: Server | ReturnType<typeof createTcpServer>): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  closers.push(() => {
    (server as Server).closeAllConnections?.();
    server.close();
  });
  return `http://127.0.0.1:${port}`;
}

function client(options?: Parameters<typeof createHttp1RangeClient>[0]): Http1RangeClient {
  const created = createHttp1RangeClient(options);
  closers.push(() => created.close());
  return created;
}

describe('createHttp1RangeClient', () => {
  const data = bytes(3 * 1024 * 1024 + 123);

  async function rangeServer() {
    const connections = new Set<Socket>();
    const seen: Array<Record<string, string | string[] | undefined>> = [];
    const server = createHttpServer((request, response) => {
      seen.push(request.headers);
      const match = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? '');
      if (match === null) {
        response.writeHead(200, { 'content-length': data.length }).end(data);
        return;
      }
      const start = Number(match[1]);
      const end = Number(match[2]);
      response
        .writeHead(206, {
          'content-length': end - start + 1,
          'content-range': `bytes ${start}-${end}/${data.length}`,
        })
        .end(data.subarray(start, end + 1));
    });
    server.on('connection', (socket) => connections.add(socket));
    const url = await listen(server);
    return { url, connections, seen };
  }

  it('reads ranged bodies through lent chunks and reuses the kept-alive connection', async () => {
    const { url, connections, seen } = await rangeServer();
    const http = client({ readBufferBytes: 64 * 1024 });
    const first = await http.get(`${url}/object?X-Amz-Signature=abc`, {
      headers: { range: 'bytes=0-1999999', 'if-match': '"etag"' },
    });
    expect(first.status).toBe(206);
    expect(first.header('Content-Range')).toBe(`bytes 0-1999999/${data.length}`);
    expect((await collect(first.body)).equals(data.subarray(0, 2_000_000))).toBe(true);
    const second = await http.get(`${url}/object`, {
      headers: { range: `bytes=2000000-${data.length - 1}` },
    });
    expect((await collect(second.body)).equals(data.subarray(2_000_000))).toBe(true);
    expect(connections.size).toBe(1);
    expect(seen[0]).toMatchObject({
      range: 'bytes=0-1999999',
      'if-match': '"etag"',
      'accept-encoding': 'identity',
    });
  });

  it('pauses reading while the consumer says so, and gives no chunk until resume()', async () => {
    const { url } = await rangeServer();
    const http = client({ readBufferBytes: 16 * 1024 });
    const response = await http.get(`${url}/object`, { headers: { range: 'bytes=0-999999' } });
    let chunks = 0;
    let received = 0;
    const done = response.body.consume((chunk) => {
      chunks++;
      received += chunk.length;
      return chunks !== 1;
    });
    for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(chunks).toBe(1);
    response.body.resume();
    await done;
    expect(received).toBe(1_000_000);
  });

  it('decodes chunked and close-delimited bodies', async () => {
    const server = createTcpServer((socket) => {
      socket.on('data', (request) => {
        if (request.toString().startsWith('GET /chunked')) {
          socket.write(
            'HTTP/1.1 503 Slow Down\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n<Code\r\n10;ext=1\r\n>SlowDown</Code>\r\n0\r\nX-Trailer: 1\r\n\r\n',
          );
        } else {
          socket.end('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end');
        }
      });
    });
    const url = await listen(server);
    const http = client();
    const chunked = await http.get(`${url}/chunked`, {});
    expect(chunked.status).toBe(503);
    expect(await chunked.text()).toBe('<Code>SlowDown</Code>');
    const closing = await http.get(`${url}/close`, {});
    expect(await closing.text()).toBe('until the end');
  });

  it('retries on a fresh connection when the server has closed the kept-alive one', async () => {
    let connections = 0;
    const server = createTcpServer((socket) => {
      connections++;
      socket.on('data', () => {
        if (socket.writableEnded) return;
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        // Closed without a word, as a server whose keep-alive timeout passed.
        setImmediate(() => socket.end());
      });
    });
    const url = await listen(server);
    const http = client();
    expect(await (await http.get(`${url}/a`, {})).text()).toBe('ok');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await (await http.get(`${url}/b`, {})).text()).toBe('ok');
    expect(connections).toBe(2);
  });

  it('fails a body cut short with a retryable error that names the origin only', async () => {
    const server = createTcpServer((socket) => {
      socket.once('data', () => {
        socket.write('HTTP/1.1 206 Partial Content\r\nContent-Length: 100000\r\n\r\n');
        socket.write(Buffer.alloc(5000));
        setImmediate(() => socket.destroy());
      });
    });
    const url = await listen(server);
    const response = await client().get(`${url}/key?X-Amz-Signature=secret`, {});
    let received = 0;
    const error = await response.body
      .consume((chunk) => {
        received += chunk.length;
        return true;
      })
      .catch((caught: unknown) => caught);
    expect(received).toBe(5000);
    expect(ApiCallError.isInstance(error) && error.isRetryable).toBe(true);
    expect(String((error as Error).message)).not.toContain('secret');
  });

  it('stops when the signal aborts, with its reason', async () => {
    const server = createTcpServer((socket) => {
      socket.once('data', () =>
        socket.write('HTTP/1.1 206 Partial Content\r\nContent-Length: 100000\r\n\r\nabc'),
      );
    });
    const url = await listen(server);
    const controller = new AbortController();
    const response = await client().get(`${url}/key`, { signal: controller.signal });
    const reading = response.body.consume(() => true);
    controller.abort(new Error('caller gave up'));
    await expect(reading).rejects.toThrow('caller gave up');
  });

  it('refuses header values that would split the request, and other schemes', async () => {
    const http = client();
    await expect(
      http.get('http://127.0.0.1:9/x', { headers: { range: 'bytes=0-1\r\nX-Evil: 1' } }),
    ).rejects.toSatisfy((error: unknown) => InvalidArgumentError.isInstance(error));
    // Written as latin1, U+010D U+010A would become CR LF.
    await expect(
      http.get('http://127.0.0.1:9/x', { headers: { range: 'bytes=0-1\u010d\u010aX-Evil: 1' } }),
    ).rejects.toSatisfy((error: unknown) => InvalidArgumentError.isInstance(error));
    await expect(
      http.get('http://127.0.0.1:9/x', { headers: { 'if-match': '"e\u0007"' } }),
    ).rejects.toSatisfy((error: unknown) => InvalidArgumentError.isInstance(error));
    await expect(http.get('ftp://127.0.0.1/x', {})).rejects.toSatisfy((error: unknown) =>
      InvalidArgumentError.isInstance(error),
    );
  });

  it('text(maxBytes) stops reading at maxBytes and closes the connection, not waiting for the rest', async () => {
    let closed!: () => void;
    const serverSawClose = new Promise<void>((resolve) => {
      closed = resolve;
    });
    const server = createTcpServer((socket) => {
      socket.on('close', () => closed());
      // Closed by the client with bytes unread: a reset.
      socket.on('error', () => {});
      socket.once('data', () => {
        // A server that ignored Range: the whole (large) object, of which only a little comes.
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n');
        socket.write(Buffer.alloc(200 * 1024, 0x61));
      });
    });
    const url = await listen(server);
    const response = await client({ readBufferBytes: 16 * 1024 }).get(`${url}/object`, {});
    expect(await response.text(64 * 1024)).toBe('a'.repeat(64 * 1024));
    await serverSawClose;
  });

  it('reads an idle pooled connection, so a late answer is never taken for the next request', async () => {
    let connections = 0;
    let firstSocket: Socket | undefined;
    let firstClosed!: () => void;
    const closed = new Promise<void>((resolve) => {
      firstClosed = resolve;
    });
    const server = createTcpServer((socket) => {
      connections++;
      firstSocket ??= socket;
      if (socket === firstSocket) socket.on('close', () => firstClosed());
      socket.on('data', () => {
        socket.write(
          `HTTP/1.1 206 Partial Content\r\nContent-Length: 2\r\n\r\n${connections === 1 ? 'ok' : 'OK'}`,
        );
      });
    });
    const url = await listen(server);
    const http = client();
    expect(await (await http.get(`${url}/a`, {})).text()).toBe('ok');
    // Pooled now; a load balancer announces its idle close (or sends any stray bytes).
    firstSocket!.write('HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    // The client reads it while idle and closes that connection.
    await closed;
    const second = await http.get(`${url}/b`, {});
    expect(second.status).toBe(206);
    expect(await second.text()).toBe('OK');
    expect(connections).toBe(2);
  });

  it('gives no chunk of a chunked body after onChunk returned false, until resume()', async () => {
    const server = createTcpServer((socket) => {
      socket.once('data', () =>
        socket.write(
          'HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n\r\n3\r\naaa\r\n3\r\nbbb\r\n3\r\nccc\r\n0\r\n\r\n',
        ),
      );
    });
    const url = await listen(server);
    const response = await client().get(`${url}/chunked`, {});
    const chunks: string[] = [];
    const done = response.body.consume((chunk) => {
      chunks.push(Buffer.from(chunk).toString());
      return chunks.length !== 1;
    });
    for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(chunks).toEqual(['aaa']);
    response.body.resume();
    await done;
    expect(chunks.join('')).toBe('aaabbbccc');
  });

  it('does not count a wait of ours (paused, or before consume) as a stall of the server', async () => {
    const server = createTcpServer((socket) => {
      socket.once('data', () =>
        socket.write('HTTP/1.1 206 Partial Content\r\nContent-Length: 6\r\n\r\nabcdef'),
      );
    });
    const url = await listen(server);
    const response = await client({ stallTimeoutMs: 30 }).get(`${url}/object`, {});
    // Well past the stall timeout before anyone asks for the body (the server has sent it all).
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await response.text()).toBe('abcdef');
  });

  it('fails a stalled answer once, with the origin and ETIMEDOUT', async () => {
    const server = createTcpServer((socket) => {
      socket.once('data', () => socket.write('HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\r\nab'));
    });
    const url = await listen(server);
    const response = await client({ stallTimeoutMs: 30 }).get(`${url}/object`, {});
    const error = await response.body.consume(() => true).catch((caught: unknown) => caught);
    expect(ApiCallError.isInstance(error) && error.isRetryable).toBe(true);
    expect((error as ApiCallError).networkErrorCode).toBe('ETIMEDOUT');
    expect((error as Error).message.split(url).length).toBe(2);
  });

  describe('framing', () => {
    async function answer(text: string, reuse = false) {
      let connections = 0;
      const server = createTcpServer((socket) => {
        connections++;
        // The client closes on a refused answer, maybe with our write in flight.
        socket.on('error', () => {});
        socket.on('data', () => socket.write(text));
      });
      const url = await listen(server);
      const http = client({ stallTimeoutMs: 2000 });
      const first = await http.get(`${url}/object`, {}).then(async (response) => ({
        status: response.status,
        body: await response.text(),
      }));
      if (reuse) await (await http.get(`${url}/object`, {})).text();
      return { ...first, connections };
    }

    it.each([
      ['a chunk longer than its size', 'Transfer-Encoding: chunked\r\n\r\n5\r\nabcdefg\r\n0\r\n\r\n'],
      ['a chunk size with 0x', 'Transfer-Encoding: chunked\r\n\r\n0x5\r\nabcde\r\n0\r\n\r\n'],
      ['a chunk size with junk after it', 'Transfer-Encoding: chunked\r\n\r\n5zz\r\nabcde\r\n0\r\n\r\n'],
      ['Content-Length 1e1', 'Content-Length: 1e1\r\n\r\n0123456789'],
      ['Content-Length 0x4', 'Content-Length: 0x4\r\n\r\nabcd'],
      ['an empty Content-Length', 'Content-Length: \r\n\r\nabcd'],
      ['two different Content-Lengths', 'Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde'],
      [
        'a folded line carrying a header',
        'X-Note: hi\r\n Content-Length: 2\r\nContent-Length: 5\r\n\r\nabcde',
      ],
      ['space before the colon', 'Content-Length : 5\r\n\r\nabcde'],
      ['Transfer-Encoding gzip, chunked', 'Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ])('refuses %s', async (_label, rest) => {
      const error = await answer(`HTTP/1.1 200 OK\r\n${rest}`).catch((caught: unknown) => caught);
      expect(InvalidResponseError.isInstance(error)).toBe(true);
    });

    it('refuses a four-digit status', async () => {
      const error = await answer('HTTP/1.1 2060 Weird\r\nContent-Length: 2\r\n\r\nok').catch(
        (caught: unknown) => caught,
      );
      expect(InvalidResponseError.isInstance(error)).toBe(true);
    });

    it('takes no body after 204 or 304 whatever Content-Length says, and accepts a repeated equal length', async () => {
      expect(await answer('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n')).toMatchObject({
        status: 204,
        body: '',
      });
      expect(await answer('HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n')).toMatchObject({
        status: 304,
        body: '',
      });
      expect(
        await answer('HTTP/1.1 206 Partial Content\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd'),
      ).toMatchObject({ status: 206, body: 'abcd' });
    });

    it('does not reuse a connection whose answer had both Transfer-Encoding and Content-Length', async () => {
      const framed = await answer(
        'HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
        true,
      );
      expect(framed).toMatchObject({ body: 'abc', connections: 2 });
    });
  });

  it('closes, not pools, a connection whose answer was still being read at close()', async () => {
    let serverSawClose!: () => void;
    const sawClose = new Promise<void>((resolve) => {
      serverSawClose = resolve;
    });
    const server = createTcpServer((socket) => {
      socket.on('close', () => serverSawClose());
      socket.once('data', () => socket.write('HTTP/1.1 206 Partial Content\r\nContent-Length: 2\r\n\r\nok'));
    });
    const url = await listen(server);
    const http = client();
    const response = await http.get(`${url}/object`, {});
    http.close();
    expect(await response.text()).toBe('ok');
    await sawClose;
  });

  it('says which origin refused the connection, never the path', async () => {
    const server = createTcpServer();
    const url = await listen(server);
    server.close();
    await new Promise((resolve) => setTimeout(resolve, 10));
    const error = await client()
      .get(`${url}/bucket/key?X-Amz-Credential=AKIA123`, {})
      .catch((caught: unknown) => caught);
    expect(ApiCallError.isInstance(error) && error.isRetryable).toBe(true);
    expect((error as Error).message).toContain(url);
    expect((error as Error).message).not.toContain('AKIA123');
  });

  describe('over TLS', () => {
    const fixture = (name: string) => readFileSync(new URL(`./__fixtures__/${name}`, import.meta.url));
    const cert = fixture('test-tls-cert.pem');

    async function tlsServer() {
      const connections = new Set<unknown>();
      const server = createHttpsServer({ key: fixture('test-tls-key.pem'), cert }, (request, response) => {
        const match = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? '');
        const start = Number(match?.[1] ?? 0);
        const end = Number(match?.[2] ?? data.length - 1);
        response
          .writeHead(206, {
            'content-length': end - start + 1,
            'content-range': `bytes ${start}-${end}/${data.length}`,
          })
          .end(data.subarray(start, end + 1));
      });
      server.on('secureConnection', (socket) => connections.add(socket));
      const url = await listen(server as unknown as Server);
      return { port: new URL(url).port, connections };
    }

    it('reads ranges from a server whose certificate it trusts, by name and by address, kept alive', async () => {
      const { port, connections } = await tlsServer();
      const https = client({ ca: cert, readBufferBytes: 64 * 1024 });
      for (const host of ['localhost', '127.0.0.1']) {
        const answer = await https.get(`https://${host}:${port}/object`, {
          headers: { range: 'bytes=0-99999' },
        });
        expect(answer.status).toBe(206);
        expect((await collect(answer.body)).equals(data.subarray(0, 100_000))).toBe(true);
      }
      const again = await https.get(`https://localhost:${port}/object`, {
        headers: { range: `bytes=100000-${data.length - 1}` },
      });
      expect((await collect(again.body)).equals(data.subarray(100_000))).toBe(true);
      // One connection per origin (the name and the address are two origins).
      expect(connections.size).toBe(2);
    });

    it('refuses an untrusted certificate with an error that is not retried and says what to do', async () => {
      const { port } = await tlsServer();
      const error = await client()
        .get(`https://localhost:${port}/bucket/key?X-Amz-Signature=secret`, {})
        .catch((caught: unknown) => caught);
      expect(ApiCallError.isInstance(error)).toBe(true);
      expect((error as ApiCallError).isRetryable).toBe(false);
      expect((error as Error).message).toContain('NODE_EXTRA_CA_CERTS');
      expect((error as Error).message).not.toContain('secret');
    });
  });
});
