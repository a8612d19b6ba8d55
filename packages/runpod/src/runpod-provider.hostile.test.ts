import type { FetchFunction, ProviderJobEvent } from '@comfy-serverless/core';
import {
  ComfyServerlessError,
  createDispatcher,
  PayloadTooLargeError,
  SubmissionUnknownError,
} from '@comfy-serverless/core';
import { createVirtualClock, sampleWorkflow } from '@comfy-serverless/core/test';
import { afterEach, describe, expect, it } from 'vitest';
import { createRunpod } from './runpod-provider';
import { type RunpodMock, startRunpodMock } from './test/runpod-mock';

// Hostile platform answers: huge outputs, wrong shapes, lost answers. Each case says what a
// user of the SDK must see: a typed error with a clear message, bounded memory, no job run twice.

let mocks: RunpodMock[] = [];
afterEach(async () => {
  await Promise.all(mocks.map((mock) => mock.close()));
  mocks = [];
});

/** A provider whose every request gets `answer(path)` (a JSON value, or a Response). */
function providerAnswering(answer: (path: string, method: string) => unknown | Response) {
  return createRunpod({
    endpointId: 'hostile',
    apiKey: 'secret-key-123',
    baseURL: 'http://127.0.0.1:1/v2',
    gpu: 'L4-24GB',
    maxRetries: 0,
    fetch: async (input, init) => {
      const url = new URL(String(input));
      const value = answer(url.pathname, init?.method ?? 'GET');
      if (value instanceof Response) return value;
      return new Response(JSON.stringify(value), {
        status: 200,
        headers: { 'content-type': 'application/json' },
      });
    },
  });
}

async function watchAll(provider: ReturnType<typeof createRunpod>): Promise<ProviderJobEvent[]> {
  const events: ProviderJobEvent[] = [];
  for await (const event of provider.doWatch({ remoteId: 'r-1', data: { jobId: 'job-1' } }))
    events.push(event);
  return events;
}

const REQUEST = {
  jobId: 'job-1',
  workflow: sampleWorkflow(),
  images: [],
  requirements: { models: [], nodeTypes: [] },
  attempt: 1,
};

describe('RunPod provider against hostile answers', () => {
  it('refuses a base64 output far over the body limit with a typed error, reading only up to the limit', async () => {
    const chunk = new TextEncoder().encode('A'.repeat(1024 * 1024));
    let pulled = 0;
    let cancelled = false;
    const provider = providerAnswering(() => {
      const prefix = new TextEncoder().encode(
        '{"id":"r-1","status":"COMPLETED","output":{"images":[{"filename":"a.png","type":"base64","data":"',
      );
      let first = true;
      // 1 GiB of base64, made as it is read: only what the client pulls is ever in memory.
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (first) {
            first = false;
            controller.enqueue(prefix);
            return;
          }
          if (pulled >= 1024 * 1024 * 1024) {
            controller.close();
            return;
          }
          pulled += chunk.byteLength;
          controller.enqueue(chunk);
        },
        cancel() {
          cancelled = true;
        },
      });
      return new Response(body, { status: 200, headers: { 'content-type': 'application/json' } });
    });
    const error = await watchAll(provider).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(PayloadTooLargeError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(/limit/);
    expect((error as Error).message).not.toContain('secret-key-123');
    expect(cancelled).toBe(true);
    // The 64 MiB default limit plus what was in flight, not the whole gigabyte.
    expect(pulled).toBeLessThan(80 * 1024 * 1024);
  });

  it.each([
    ['/run answers without an id', '/run', {}],
    ['/run answers a numeric id', '/run', { id: 5, status: 'IN_QUEUE' }],
    ['/run answers an array', '/run', [1, 2, 3]],
    ['/run answers a string', '/run', 'OK'],
  ])('submission: %s gives a typed error', async (_name, route, answer) => {
    const provider = providerAnswering((path) => (path.endsWith(route) ? answer : {}));
    const error = await provider.doSubmit(REQUEST).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(ComfyServerlessError.isInstance(error)).toBe(true);
    expect((error as Error).message).not.toContain('secret-key-123');
  });

  it.each([
    ['an unknown status', { id: 'r-1', status: 'EXPLODED' }],
    ['a numeric status', { id: 'r-1', status: 42 }],
    ['no status', { id: 'r-1' }],
    ['null', null],
    ['output of the wrong type', { id: 'r-1', status: 'COMPLETED', output: 'not an object' }],
    ['images that are not a list', { id: 'r-1', status: 'COMPLETED', output: { images: { a: 1 } } }],
    [
      'an image whose data is not base64',
      {
        id: 'r-1',
        status: 'COMPLETED',
        output: { images: [{ filename: 'a.png', type: 'base64', data: '%%%' }] },
      },
    ],
    ['an error that is an object', { id: 'r-1', status: 'FAILED', error: { deep: { er: [1, 2] } } }],
    ['a delayTime that is a string', { id: 'r-1', status: 'COMPLETED', delayTime: 'soon', output: {} }],
  ])(
    'watch: /status-sync answering %s ends in events or a typed error, never a crash',
    async (_name, answer) => {
      let calls = 0;
      const provider = providerAnswering(() =>
        // Once the hostile answer, then a plain failure so that the watch ends.
        calls++ === 0 ? answer : { id: 'r-1', status: 'FAILED', error: 'end' },
      );
      let events: ProviderJobEvent[] = [];
      let error: unknown;
      try {
        events = await watchAll(provider);
      } catch (caught) {
        error = caught;
      }
      if (error !== undefined) expect(ComfyServerlessError.isInstance(error)).toBe(true);
      else expect(['completed', 'failed', 'cancelled']).toContain(events.at(-1)?.type);
    },
  );

  it.each([
    ['workers of the wrong type', { jobs: {}, workers: 'many' }],
    ['negative counts', { jobs: { inQueue: -5 }, workers: { idle: -1 } }],
    ['an array', []],
  ])('health: /health answering %s gives a reading or a typed error', async (_name, answer) => {
    const provider = providerAnswering(() => answer);
    try {
      const health = await provider.doHealth();
      expect(['healthy', 'degraded', 'unhealthy']).toContain(health.status);
    } catch (error) {
      expect(ComfyServerlessError.isInstance(error)).toBe(true);
    }
  });

  it('passes output filenames with .. or absolute paths through as names only (no helper writes them to disk)', async () => {
    const provider = providerAnswering(() => ({
      id: 'r-1',
      status: 'COMPLETED',
      output: {
        images: [
          { filename: '../../../etc/cron.d/evil.png', type: 'base64', data: 'iVBORw0KGgo=' },
          { filename: '/etc/passwd.png', type: 'base64', data: 'iVBORw0KGgo=' },
        ],
      },
    }));
    const events = await watchAll(provider);
    const completed = events.at(-1);
    expect(completed?.type).toBe('completed');
    // The names are kept as the worker gave them; writers (the S3 result store) make them safe.
    const names =
      completed?.type === 'completed' ? (completed.outputs ?? []).map((output) => output.filename) : [];
    expect(names).toEqual(['../../../etc/cron.d/evil.png', '/etc/passwd.png']);
  });
});

describe('RunPod submission when the answer to /run is lost', () => {
  /** A fetch that lets the first /run reach RunPod, then drops its answer as a reset would. */
  function dropFirstRunAnswer(): FetchFunction {
    let dropped = false;
    return async (input, init) => {
      const response = await fetch(input, init);
      if (!dropped && new URL(String(input)).pathname.endsWith('/run')) {
        dropped = true;
        await response.body?.cancel();
        throw new TypeError('fetch failed', {
          cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
        });
      }
      return response;
    };
  }

  async function runOnce(fetchFunction: FetchFunction) {
    const clock = createVirtualClock();
    const mock = await startRunpodMock({
      clock,
      autoAdvance: true,
      coldStartMs: 0,
      workersMin: 1,
      executionMs: 1_000,
    });
    mocks.push(mock);
    const runpod = createRunpod({
      endpointId: mock.endpointId,
      apiKey: mock.apiKey,
      baseURL: mock.url,
      gpu: 'L4-24GB',
      clock,
      fetch: fetchFunction,
      random: () => 0.5,
    });
    const dispatcher = createDispatcher({ providers: [runpod], clock, retry: { random: () => 0.5 } });
    const outcome = await dispatcher.runWorkflow(sampleWorkflow(), { jobId: 'render-1' }).then(
      (result) => ({ status: result.status as string, error: undefined as unknown }),
      (error: unknown) => ({ status: 'failed', error }),
    );
    dispatcher.close();
    return { ...outcome, runsAccepted: mock.stats().jobsAccepted };
  }

  it('runs the job once when nothing is lost (the setup the case below relies on)', async () => {
    const outcome = await runOnce((input, init) => fetch(input, init));
    expect(outcome.status).toBe('completed');
    expect(outcome.runsAccepted).toBe(1);
  });

  // Found by the chaos suite: the dispatcher used to retry such a /run and RunPod ran the job
  // twice (RunPod's /run has no idempotency key). Fixed in 6b60b5d: the job now ends with
  // SubmissionUnknownError, which says it may be running there and was not sent again.
  it('never sends the job again when the answer to /run is lost: it ends with SubmissionUnknownError', async () => {
    const outcome = await runOnce(dropFirstRunAnswer());
    expect(outcome.runsAccepted).toBe(1);
    expect(SubmissionUnknownError.isInstance(outcome.error)).toBe(true);
    expect((outcome.error as Error).message).toMatch(/not sent again/);
  });

  /** A fetch that lets the first /run reach RunPod, then cuts its 200 answer halfway through the body. */
  function truncateFirstRunAnswer(): FetchFunction {
    let cut = false;
    return async (input, init) => {
      const response = await fetch(input, init);
      if (cut || !new URL(String(input)).pathname.endsWith('/run')) return response;
      cut = true;
      const text = await response.text();
      const half = new TextEncoder().encode(text.slice(0, Math.floor(text.length / 2)));
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(half);
          controller.error(
            new TypeError('terminated', {
              cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }),
            }),
          );
        },
      });
      return new Response(body, { status: 200, headers: { 'content-type': 'application/json' } });
    };
  }

  // Found by the chaos suite (fixed): a /run answer whose status line (200) arrived but whose
  // body was cut off was not counted as received, so /run was sent again and the job ran twice.
  // mayHaveBeenReceived now counts any answer with a success status.
  it('never sends the job again when the answer to /run is cut off mid-body', async () => {
    const outcome = await runOnce(truncateFirstRunAnswer());
    expect(outcome.runsAccepted).toBe(1);
  });
});
