import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { ApiCallError, InvalidArgumentError, InvalidResponseError } from '../spec/errors';

/**
 * A body read by callback: each chunk is lent for the duration of the call only (the
 * connection reads into one reused buffer), so whoever keeps bytes copies them. Reading
 * this way allocates nothing per read, which is most of what a download costs in CPU.
 */
export interface LentChunkBody {
  /** Largest chunk `onChunk` can be given. */
  readonly maxChunkBytes: number;
  /**
   * Passes every chunk of the body to `onChunk`. When `onChunk` returns false, reading
   * pauses until `resume()`; no chunk comes while paused. An exception thrown by
   * `onChunk` ends the body with it. Resolves at the end of the body.
   */
  consume(onChunk: (chunk: Uint8Array) => boolean): Promise<void>;
  resume(): void;
  /** Stops reading; the connection is closed, not reused. */
  cancel(): void;
}

/** An answer of `Http1RangeClient.get`: status and head at once, the body when asked. */
export interface Http1Response {
  readonly status: number;
  /** Header value by lower-case name (repeated headers joined with `, `). */
  header(name: string): string | undefined;
  readonly body: LentChunkBody;
  /** The whole body as text (for error answers, which are small). */
  text(maxBytes?: number): Promise<string>;
}

/** Options of `createHttp1RangeClient`. */
export interface Http1RangeClientOptions {
  /** Bytes each connection reads at once into its reused buffer. @default 256 KiB */
  readBufferBytes?: number;
  /** An idle kept-alive connection is closed after this long. @default 4000 */
  idleTimeoutMs?: number;
  /** A request fails (retryably) when its connection sends nothing for this long while being read. @default 60000 */
  stallTimeoutMs?: number;
  /**
   * Certificate authorities trusted for https, in place of Node's defaults (a private
   * S3-compatible server). `NODE_EXTRA_CA_CERTS` works too. @default Node's root certificates
   */
  ca?: string | Buffer | Array<string | Buffer>;
}

/**
 * A small HTTP/1.1 client for the GETs of a download: kept-alive connections per origin
 * (plain or TLS), each reading into one reused buffer (`onread`), and bodies handed over as
 * lent chunks. It does what ranged model downloads need and no more: no redirects, no
 * compression, no proxies. Errors name the origin, never the path (a presigned URL's
 * query is a credential).
 */
export interface Http1RangeClient {
  get(
    url: string,
    options: { headers?: Record<string, string>; signal?: AbortSignal },
  ): Promise<Http1Response>;
  /** Closes idle connections. */
  close(): void;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const HEAD_LIMIT = 64 * 1024;

interface Connection {
  socket: Socket;
  /** Receives what the socket reads; returns false to pause reading. */
  onBytes: (bytes: Uint8Array) => boolean;
  onEnd: (error: Error | undefined) => void;
  reused: boolean;
  /** In the idle pool: reading goes on, so whatever the server sends meanwhile is seen at once. */
  pooled: boolean;
}

/** TLS failures that trying again cannot cure: the certificate or the name is wrong. */
const CERTIFICATE_ERROR =
  /^(ERR_TLS_CERT_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|UNABLE_TO_)/;

function networkError(origin: string, message: string, code?: string): ApiCallError {
  const certificate = code !== undefined && CERTIFICATE_ERROR.test(code);
  return new ApiCallError({
    message: certificate
      ? `${origin}: ${message} (${code}). The server's certificate is not trusted here: pass its CA as "ca" or set NODE_EXTRA_CA_CERTS.`
      : `${origin}: ${message}`,
    url: origin,
    isRetryable: !certificate,
    ...(code === undefined ? {} : { networkErrorCode: code }),
  });
}

function indexOfHeadEnd(buffer: Buffer, from: number): number {
  return buffer.indexOf('\r\n\r\n', Math.max(0, from - 3), 'latin1');
}

/** Creates an `Http1RangeClient`. */
export function createHttp1RangeClient(options: Http1RangeClientOptions = {}): Http1RangeClient {
  const readBufferBytes = options.readBufferBytes ?? 256 * 1024;
  const idleTimeoutMs = options.idleTimeoutMs ?? 4000;
  const stallTimeoutMs = options.stallTimeoutMs ?? 60_000;
  const idle = new Map<string, Connection[]>();
  // After close(), a connection whose answer is still being read is closed at its end, not pooled.
  let closed = false;

  const open = (url: URL, origin: string): Connection => {
    const buffer = Buffer.allocUnsafe(readBufferBytes);
    const connection: Connection = {
      socket: undefined as unknown as Socket,
      onBytes: () => true,
      onEnd: () => {},
      reused: false,
      pooled: false,
    };
    const onread = {
      buffer,
      // A connection released to the pool while reading keeps reading: bytes or a close
      // the server sends while it is idle must be seen then, not taken as the next answer.
      callback: (bytes: number, into: Uint8Array) =>
        connection.onBytes(into.subarray(0, bytes)) || connection.pooled,
    };
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const socket =
      url.protocol === 'https:'
        ? connectTls({
            host,
            port,
            // SNI carries host names only (RFC 6066); an address is checked against the certificate without it.
            ...(isIP(host) === 0 ? { servername: host } : {}),
            ALPNProtocols: ['http/1.1'],
            ...(options.ca === undefined ? {} : { ca: options.ca }),
            onread,
          } as never)
        : connectTcp({ host, port, onread, noDelay: true });
    connection.socket = socket;
    let ended = false;
    const end = (error: Error | undefined) => {
      if (ended) return;
      ended = true;
      removeIdle(origin, connection);
      connection.onEnd(error);
    };
    socket.on('error', (error: NodeJS.ErrnoException) =>
      // Our own errors (a stall) are destroyed with as they are: wrapping again would repeat the origin and lose the code.
      end(ApiCallError.isInstance(error) ? error : networkError(origin, error.message, error.code)),
    );
    socket.on('end', () => end(undefined));
    socket.on('close', () => end(undefined));
    socket.on('timeout', () => {
      socket.destroy(networkError(origin, `no data for ${stallTimeoutMs} ms`, 'ETIMEDOUT'));
    });
    return connection;
  };

  const removeIdle = (origin: string, connection: Connection) => {
    const list = idle.get(origin);
    if (list === undefined) return;
    const index = list.indexOf(connection);
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) idle.delete(origin);
  };

  const release = (origin: string, connection: Connection) => {
    connection.onBytes = () => {
      // Bytes on an idle connection are a server's mistake (or a late 408): never reuse it.
      connection.pooled = false;
      removeIdle(origin, connection);
      connection.socket.destroy();
      return false;
    };
    connection.onEnd = () => {};
    connection.reused = true;
    connection.socket.setTimeout(idleTimeoutMs);
    connection.socket.removeAllListeners('timeout');
    connection.socket.on('timeout', () => connection.socket.destroy());
    connection.socket.unref();
    let list = idle.get(origin);
    if (list === undefined) {
      list = [];
      idle.set(origin, list);
    }
    list.push(connection);
    connection.pooled = true;
    // Reading was stopped while the body waited for its consumer; an idle connection reads.
    connection.socket.resume();
  };

  const exchange = (
    origin: string,
    request: string,
    signal: AbortSignal | undefined,
    connection: Connection,
  ): Promise<Http1Response> =>
    new Promise<Http1Response>((resolve, reject) => {
      const { socket } = connection;
      connection.pooled = false;
      socket.ref();
      socket.removeAllListeners('timeout');
      socket.setTimeout(stallTimeoutMs);
      socket.on('timeout', () =>
        socket.destroy(networkError(origin, `no data for ${stallTimeoutMs} ms`, 'ETIMEDOUT')),
      );
      let head: Buffer | undefined = Buffer.alloc(0);
      let headSettled = false;
      // Body framing.
      let remaining = 0; // bytes of the body (fixed length) or of the current chunk (chunked)
      let framing: 'length' | 'chunked' | 'close' = 'length';
      let chunkState: 'size' | 'data' | 'data-cr' | 'data-lf' | 'trailer' = 'size';
      let sizeLine = '';
      let keepAlive = true;
      let status = 0;
      const headers = new Map<string, string>();
      let early: Buffer | undefined; // body bytes read with the head, before consume
      let consumer: ((chunk: Uint8Array) => boolean) | undefined;
      let bodyDone = false;
      let bodyResolve: (() => void) | undefined;
      let bodyReject: ((error: unknown) => void) | undefined;
      let bodyError: unknown;
      let paused = false;
      let anyByte = false;
      // The server closed a body framed by the close before anyone asked for it.
      let closedBeforeConsume = false;

      const fail = (error: unknown) => {
        cleanup();
        if (!headSettled) {
          headSettled = true;
          reject(error);
        } else if (!bodyDone) {
          bodyDone = true;
          bodyError = error;
          bodyReject?.(error);
        }
        socket.destroy();
      };
      const onAbort = () => fail(signal?.reason);
      const cleanup = () => signal?.removeEventListener('abort', onAbort);
      signal?.addEventListener('abort', onAbort, { once: true });

      const finishBody = (extra: number) => {
        bodyDone = true;
        cleanup();
        bodyResolve?.();
        if (keepAlive && extra === 0 && framing !== 'close' && !closed) release(origin, connection);
        else socket.destroy();
      };

      /** Feeds body bytes through the framing; returns false to pause. */
      const deliverBody = (bytes: Uint8Array): boolean => {
        if (consumer === undefined) {
          early = early === undefined ? Buffer.from(bytes) : Buffer.concat([early, bytes]);
          return false;
        }
        let offset = 0;
        let keepReading = true;
        while (offset < bytes.length && !bodyDone && keepReading) {
          if (framing === 'close') {
            keepReading = consumer(bytes.subarray(offset));
            offset = bytes.length;
            break;
          }
          if (framing === 'length' || chunkState === 'data') {
            const take = Math.min(remaining, bytes.length - offset);
            remaining -= take;
            const piece = bytes.subarray(offset, offset + take);
            offset += take;
            if (framing === 'length' && remaining === 0) {
              consumer(piece);
              // The consumer may have cancelled the body.
              if (!bodyDone) finishBody(bytes.length - offset);
              return false;
            }
            if (framing === 'chunked' && remaining === 0) chunkState = 'data-cr';
            if (piece.length > 0 && !consumer(piece)) keepReading = false;
            continue;
          }
          // Chunked framing: size lines, CRLF after data, trailers.
          const byte = bytes[offset++]!;
          if (chunkState === 'data-cr' || chunkState === 'data-lf') {
            // Chunk data ends with exactly CRLF: anything else means the sizes and the data disagree.
            if (byte !== (chunkState === 'data-cr' ? 13 : 10)) {
              throw new InvalidResponseError({
                message: `${origin} sent a chunk longer than its size.`,
                url: origin,
              });
            }
            chunkState = chunkState === 'data-cr' ? 'data-lf' : 'size';
            continue;
          }
          if (byte !== 10) {
            if (sizeLine.length > 1024)
              throw new InvalidResponseError({
                message: `${origin} sent a malformed chunked body.`,
                url: origin,
              });
            sizeLine += String.fromCharCode(byte);
            continue;
          }
          const line = sizeLine.replace(/\r$/, '');
          sizeLine = '';
          if (chunkState === 'trailer') {
            if (line === '') finishBody(bytes.length - offset);
            continue;
          }
          const digits = line.split(';')[0]!.replace(/[\t ]+$/, '');
          const size = /^[0-9a-fA-F]+$/.test(digits) ? Number.parseInt(digits, 16) : Number.NaN;
          if (!Number.isSafeInteger(size)) {
            throw new InvalidResponseError({
              message: `${origin} sent a malformed chunk size.`,
              url: origin,
            });
          }
          if (size === 0) chunkState = 'trailer';
          else {
            remaining = size;
            chunkState = 'data';
          }
        }
        if (bodyDone) return false;
        if (!keepReading) {
          // What is left of these (lent) bytes waits for resume(); no chunk comes while paused.
          if (offset < bytes.length) early = Buffer.from(bytes.subarray(offset));
          pause();
        }
        return keepReading;
      };
      /** Stops reading; the stall timer stops too (the wait is ours, not the server's). */
      const pause = () => {
        paused = true;
        socket.setTimeout(0);
      };
      const resumeReading = () => {
        socket.setTimeout(stallTimeoutMs);
        socket.resume();
      };

      const parseHead = (text: string) => {
        const lines = text.split('\r\n');
        const match = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0] ?? '');
        if (match === null) {
          throw new InvalidResponseError({ message: `${origin} did not answer in HTTP/1.x.`, url: origin });
        }
        status = Number(match[2]);
        headers.clear();
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          // No folded lines (a fold could smuggle a header in), no space before the colon, no nameless lines.
          if (colon <= 0 || !TOKEN.test(line.slice(0, colon))) {
            throw new InvalidResponseError({
              message: `${origin} sent a malformed header line.`,
              url: origin,
            });
          }
          const name = line.slice(0, colon).toLowerCase();
          const value = line.slice(colon + 1).trim();
          const known = headers.get(name);
          headers.set(name, known === undefined ? value : `${known}, ${value}`);
        }
        const connectionHeader = (headers.get('connection') ?? '').toLowerCase();
        keepAlive =
          match[1] === '1' ? !connectionHeader.includes('close') : connectionHeader.includes('keep-alive');
        const transferEncoding = headers.get('transfer-encoding');
        const contentLength = headers.get('content-length');
        if (status === 204 || status === 304) {
          // Never a body, whatever the head says.
          framing = 'length';
          remaining = 0;
        } else if (transferEncoding !== undefined) {
          // Only plain chunked: anything else (gzip, chunked) would be handed over still encoded.
          if (transferEncoding.trim().toLowerCase() !== 'chunked') {
            throw new InvalidResponseError({
              message: `${origin} sent Transfer-Encoding "${transferEncoding}", which this client does not decode.`,
              url: origin,
            });
          }
          framing = 'chunked';
          // Both framings at once is how requests are smuggled: the connection is not reused.
          if (contentLength !== undefined) keepAlive = false;
        } else if (contentLength !== undefined) {
          // Digits only; a repeated header must repeat the same value.
          const values = contentLength.split(',').map((value) => value.trim());
          remaining = /^\d+$/.test(values[0]!) ? Number(values[0]) : Number.NaN;
          if (!Number.isSafeInteger(remaining) || values.some((value) => value !== values[0])) {
            throw new InvalidResponseError({
              message: `${origin} sent Content-Length "${contentLength}".`,
              url: origin,
            });
          }
          framing = 'length';
        } else framing = 'close';
      };

      const body: LentChunkBody = {
        maxChunkBytes: readBufferBytes + HEAD_LIMIT,
        consume(onChunk) {
          if (consumer !== undefined) return Promise.reject(new Error('The body is already being read.'));
          return new Promise<void>((resolveBody, rejectBody) => {
            if (bodyError !== undefined) return rejectBody(bodyError);
            bodyResolve = resolveBody;
            bodyReject = rejectBody;
            consumer = onChunk;
            const pending = early;
            early = undefined;
            paused = false;
            try {
              if (pending !== undefined) deliverBody(pending);
            } catch (error) {
              fail(error);
              return;
            }
            if (bodyDone) return resolveBody();
            if (paused) return;
            if (closedBeforeConsume) return finishBody(1);
            resumeReading();
          });
        },
        resume() {
          // Before consume() there is no one to give bytes to: reading waits for it.
          if (!paused || bodyDone || consumer === undefined) return;
          paused = false;
          const pending = early;
          early = undefined;
          if (pending !== undefined) {
            try {
              if (!deliverBody(pending) || bodyDone) return;
            } catch (error) {
              fail(error);
              return;
            }
          }
          if (closedBeforeConsume) return finishBody(1);
          resumeReading();
        },
        cancel() {
          if (bodyDone) return;
          fail(new Error('The body was cancelled.'));
        },
      };

      connection.onBytes = (bytes) => {
        anyByte = true;
        try {
          if (head !== undefined) {
            const previous = head.length;
            head = Buffer.concat([head, bytes]);
            const end = indexOfHeadEnd(head, previous);
            if (end < 0) {
              if (head.length > HEAD_LIMIT) {
                throw new InvalidResponseError({
                  message: `${origin} sent a response head over 64 KiB.`,
                  url: origin,
                });
              }
              return true;
            }
            const text = head.subarray(0, end).toString('latin1');
            const rest = head.subarray(end + 4);
            parseHead(text);
            if (status >= 100 && status < 200) {
              // An interim answer (100 Continue): the real one follows.
              head = Buffer.alloc(0);
              return rest.length === 0 ? true : connection.onBytes(Buffer.from(rest));
            }
            head = undefined;
            headSettled = true;
            if (framing === 'length' && remaining === 0) {
              finishBody(rest.length);
            } else if (rest.length > 0) {
              early = Buffer.from(rest);
            }
            resolve(response);
            // Wait for consume() before reading more of the body.
            if (!bodyDone) {
              pause();
              return false;
            }
            return connection.pooled;
          }
          return deliverBody(bytes);
        } catch (error) {
          fail(error);
          return false;
        }
      };
      connection.onEnd = (error) => {
        if (bodyDone) return;
        if (!headSettled && !anyByte && connection.reused && error === undefined) {
          fail(
            Object.assign(networkError(origin, 'a kept-alive connection was closed'), {
              staleConnection: true,
            }),
          );
          return;
        }
        if (headSettled && framing === 'close' && error === undefined) {
          if (consumer === undefined) {
            // Hand over what is left when consume() comes.
            closedBeforeConsume = true;
            return;
          }
          finishBody(1);
          return;
        }
        if (!headSettled && !anyByte && connection.reused && error !== undefined) {
          fail(Object.assign(error, { staleConnection: true }));
          return;
        }
        fail(
          error ?? networkError(origin, 'the connection closed before the answer was complete', 'ECONNRESET'),
        );
      };

      const response: Http1Response = {
        get status() {
          return status;
        },
        header: (name) => headers.get(name.toLowerCase()),
        body,
        async text(maxBytes = 1024 * 1024) {
          const parts: Buffer[] = [];
          let total = 0;
          let full = false;
          try {
            await body.consume((chunk) => {
              const kept = chunk.subarray(0, maxBytes - total);
              parts.push(Buffer.from(kept));
              total += kept.length;
              if (total < maxBytes) return true;
              // Enough: the rest is not read (it may be a whole object), the connection is closed.
              full = true;
              body.cancel();
              return false;
            });
          } catch (error) {
            if (!full) throw error;
          }
          return Buffer.concat(parts).toString('utf8');
        },
      };

      if (signal?.aborted) {
        fail(signal.reason);
        return;
      }
      socket.resume();
      socket.write(request, 'latin1', (error) => {
        if (error !== undefined && error !== null) fail(networkError(origin, error.message));
      });
    });

  return {
    async get(input, requestOptions) {
      let url: URL;
      try {
        url = new URL(input);
      } catch (error) {
        throw new InvalidArgumentError({
          argument: 'url',
          message: 'The URL to download is not valid.',
          cause: error,
        });
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new InvalidArgumentError({
          argument: 'url',
          message: `Only http: and https: URLs can be downloaded; got ${url.protocol}`,
        });
      }
      const origin = `${url.protocol}//${url.host}`;
      let request = `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n`;
      let hasAcceptEncoding = false;
      for (const [name, value] of Object.entries(requestOptions.headers ?? {})) {
        // The request is written as latin1, which keeps only the low byte of a character:
        // anything past U+00FF (U+010D U+010A become CR LF) or a control would split it.
        if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) {
          throw new InvalidArgumentError({
            argument: 'headers',
            message: `The header ${JSON.stringify(name)} has a name or value HTTP does not allow.`,
          });
        }
        if (name.toLowerCase() === 'host') continue;
        if (name.toLowerCase() === 'accept-encoding') hasAcceptEncoding = true;
        request += `${name}: ${value}\r\n`;
      }
      if (!hasAcceptEncoding) request += 'Accept-Encoding: identity\r\n';
      request += '\r\n';
      for (;;) {
        let pooled = idle.get(origin)?.pop();
        while (pooled?.socket.destroyed === true) pooled = idle.get(origin)?.pop();
        const connection = pooled ?? open(url, origin);
        try {
          return await exchange(origin, request, requestOptions.signal, connection);
        } catch (error) {
          // A kept-alive connection the server closed meanwhile: try a fresh one at once.
          if (pooled !== undefined && (error as { staleConnection?: boolean }).staleConnection === true)
            continue;
          throw error;
        }
      }
    },
    close() {
      closed = true;
      for (const list of idle.values()) for (const connection of list) connection.socket.destroy();
      idle.clear();
    },
  };
}
