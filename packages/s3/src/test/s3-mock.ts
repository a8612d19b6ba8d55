import { createHash } from 'node:crypto';

/** One request the mock served. */
export interface S3MockRequest {
  method: string;
  bucket: string;
  key: string;
  range?: string;
  ifMatch?: string;
  status: number;
}

/** A failure to inject into the next matching request(s). */
export interface S3MockFault {
  /** Only requests with this method. */
  method?: string;
  key?: string;
  /** Only ranged GETs whose range starts at this byte. */
  rangeStart?: number;
  /** How many matching requests fail. @default 1 */
  times?: number;
  /**
   * `status`: answer with an S3 error (`503` `SlowDown`, say); `cut`: send `afterBytes`
   * of the body, then break the connection.
   */
  kind: 'status' | 'cut';
  status?: number;
  code?: string;
  afterBytes?: number;
  /** Retry-After header in seconds, for `status` faults. */
  retryAfterSeconds?: number;
}

/** An S3 behaving as the real service does where s3rver does not (suffix ranges, If-Match, 416), as a fetch handler. */
export interface S3Mock {
  /** Answers a request for `<endpoint>/<bucket>/<key>` (path style); `undefined` for other paths. */
  handle(request: Request): Promise<Response | undefined>;
  /** Stores (or replaces) an object; its ETag changes with its content. */
  putObject(bucket: string, key: string, body: Uint8Array): string;
  getObject(bucket: string, key: string): Uint8Array | undefined;
  /** Makes the next matching request(s) fail. */
  inject(fault: S3MockFault): void;
  /** Requests served, oldest first. */
  readonly requests: S3MockRequest[];
}

interface StoredObject {
  body: Uint8Array;
  etag: string;
  contentType: string;
  storageClass: string | undefined;
  lastModified: Date;
}

function errorResponse(
  status: number,
  code: string,
  message: string,
  extraHeaders: Record<string, string> = {},
) {
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>mock</RequestId></Error>`;
  return new Response(xml, { status, headers: { 'content-type': 'application/xml', ...extraHeaders } });
}

/** Parses one `bytes=` range as S3 does: `a-b`, `a-` and the suffix form `-n`. */
function parseRange(header: string, size: number): { start: number; end: number } | 'invalid' | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null) return undefined; // S3 ignores a range it cannot parse
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0) return 'invalid';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (start >= size) return 'invalid';
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return undefined;
  return { start, end };
}

function cutStream(body: Uint8Array, afterBytes: number): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(body.subarray(0, afterBytes));
      setImmediate(() => controller.error(new Error('connection reset by the mock')));
    },
  });
}

/**
 * An in-memory S3 that answers HEAD, ranged GET (with If-Match and suffix ranges), PUT and
 * DELETE as Amazon S3 does, with injectable faults. Wire it into msw
 * (`http.all('http://s3.test/*', ({ request }) => mock.handle(request))`) or a node:http server.
 *
 * @example
 * const mock = createS3Mock();
 * mock.putObject('models', 'checkpoints/a.safetensors', bytes);
 * mock.inject({ kind: 'status', status: 503, code: 'SlowDown', rangeStart: 8 * 2 ** 20 });
 */
export function createS3Mock(): S3Mock {
  const objects = new Map<string, StoredObject>();
  const faults: Array<S3MockFault & { left: number }> = [];
  const requests: S3MockRequest[] = [];

  const putObject = (
    bucket: string,
    key: string,
    body: Uint8Array,
    contentType = 'application/octet-stream',
    storageClass?: string,
  ) => {
    const etag = `"${createHash('md5').update(body).digest('hex')}"`;
    objects.set(`${bucket}/${key}`, { body, etag, contentType, storageClass, lastModified: new Date() });
    return etag;
  };

  const takeFault = (method: string, key: string, rangeStart: number | undefined) => {
    const index = faults.findIndex(
      (fault) =>
        (fault.method === undefined || fault.method === method) &&
        (fault.key === undefined || fault.key === key) &&
        (fault.rangeStart === undefined || fault.rangeStart === rangeStart),
    );
    if (index < 0) return undefined;
    const fault = faults[index]!;
    fault.left--;
    if (fault.left <= 0) faults.splice(index, 1);
    return fault;
  };

  return {
    requests,
    putObject: (bucket, key, body) => putObject(bucket, key, body),
    getObject: (bucket, key) => objects.get(`${bucket}/${key}`)?.body,
    inject(fault) {
      faults.push({ ...fault, left: fault.times ?? 1 });
    },
    async handle(request) {
      const url = new URL(request.url);
      const [bucket = '', ...rest] = url.pathname.slice(1).split('/');
      const key = rest.map(decodeURIComponent).join('/');
      if (bucket === '' || key === '') return undefined;
      const method = request.method.toUpperCase();
      const rangeHeader = request.headers.get('range') ?? undefined;
      const ifMatch = request.headers.get('if-match') ?? undefined;
      const log = (status: number) => {
        requests.push({
          method,
          bucket,
          key,
          status,
          ...(rangeHeader === undefined ? {} : { range: rangeHeader }),
          ...(ifMatch === undefined ? {} : { ifMatch }),
        });
      };
      const rangeStart =
        rangeHeader === undefined ? undefined : Number(/bytes=(\d+)-/.exec(rangeHeader)?.[1]);

      if (method === 'PUT') {
        const body = new Uint8Array(await request.arrayBuffer());
        const etag = putObject(
          bucket,
          key,
          body,
          request.headers.get('content-type') ?? 'application/octet-stream',
          request.headers.get('x-amz-storage-class') ?? undefined,
        );
        log(200);
        return new Response(null, { status: 200, headers: { etag } });
      }
      if (method === 'DELETE') {
        objects.delete(`${bucket}/${key}`);
        log(204);
        return new Response(null, { status: 204 });
      }

      const fault = takeFault(method, key, rangeStart);
      if (fault?.kind === 'status') {
        const status = fault.status ?? 503;
        log(status);
        return errorResponse(
          status,
          fault.code ?? 'SlowDown',
          'Please reduce your request rate.',
          fault.retryAfterSeconds === undefined ? {} : { 'retry-after': String(fault.retryAfterSeconds) },
        );
      }
      const object = objects.get(`${bucket}/${key}`);
      if (object === undefined) {
        log(404);
        return method === 'HEAD'
          ? new Response(null, { status: 404 })
          : errorResponse(404, 'NoSuchKey', 'The specified key does not exist.');
      }
      if (ifMatch !== undefined && ifMatch !== object.etag && ifMatch !== '*') {
        log(412);
        return method === 'HEAD'
          ? new Response(null, { status: 412 })
          : errorResponse(
              412,
              'PreconditionFailed',
              'At least one of the pre-conditions you specified did not hold',
            );
      }
      const size = object.body.byteLength;
      const headers: Record<string, string> = {
        etag: object.etag,
        'last-modified': object.lastModified.toUTCString(),
        'content-type': object.contentType,
        'accept-ranges': 'bytes',
      };
      if (object.storageClass !== undefined) headers['x-amz-storage-class'] = object.storageClass;
      const range = rangeHeader === undefined ? undefined : parseRange(rangeHeader, size);
      if (range === 'invalid') {
        log(416);
        return errorResponse(416, 'InvalidRange', 'The requested range is not satisfiable', {
          'content-range': `bytes */${size}`,
        });
      }
      const start = range?.start ?? 0;
      const end = range?.end ?? size - 1;
      const body = object.body.subarray(start, end + 1);
      const status = range === undefined ? 200 : 206;
      headers['content-length'] = String(body.byteLength);
      if (range !== undefined) headers['content-range'] = `bytes ${start}-${end}/${size}`;
      log(status);
      if (method === 'HEAD') {
        headers['content-length'] = String(size);
        return new Response(null, { status: 200, headers });
      }
      if (fault?.kind === 'cut') {
        return new Response(cutStream(body, Math.min(fault.afterBytes ?? 0, body.byteLength)), {
          status,
          headers,
        });
      }
      return new Response(body as Uint8Array<ArrayBuffer>, { status, headers });
    },
  };
}
