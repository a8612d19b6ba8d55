import * as api from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { createDispatcher } from '../dispatch/dispatcher';
import { ApiCallError } from '../spec/errors';
import { createMockProvider, placeholderOutput } from '../test/mock-provider';
import { AsyncContextManager } from './__fixtures__/async-context-manager';
import { createFakeDispatcher, resultOf } from './__fixtures__/fake-dispatcher';
import { createMemoryTracer, type RecordedSpan } from './__fixtures__/memory-tracer';
import { attachTracing, SPAN_NAMES } from './attach-tracing';

const workflow = {
  '9': { class_type: 'SaveImage', inputs: { images: ['8', 0] } },
  '8': { class_type: 'VAEDecode', inputs: {} },
};

function byName(spans: RecordedSpan[], name: string): RecordedSpan[] {
  return spans.filter((span) => span.name === name);
}

describe('attachTracing', () => {
  it('makes a job span with routing, queueing, cold start, execution and output children at event times', () => {
    const fake = createFakeDispatcher();
    const { tracer, spans } = createMemoryTracer();
    attachTracing(fake, { tracer, api });
    fake.emit({ type: 'queued', jobId: 'job-1', at: 1_000 });
    fake.emit({
      type: 'routed',
      jobId: 'job-1',
      at: 1_020,
      providerId: 'runpod:a',
      candidates: ['runpod:a', 'modal:b'],
    });
    fake.emit({
      type: 'submitted',
      jobId: 'job-1',
      at: 1_300,
      providerId: 'runpod:a',
      remoteId: 'r-1',
      attempt: 1,
    });
    fake.emit({ type: 'started', jobId: 'job-1', at: 9_300, providerId: 'runpod:a', coldStartMs: 7_500 });
    fake.emit({
      type: 'output',
      jobId: 'job-1',
      at: 20_000,
      providerId: 'runpod:a',
      output: placeholderOutput(),
    });
    fake.emit({
      type: 'completed',
      jobId: 'job-1',
      at: 21_000,
      result: resultOf('job-1', 'runpod:a', {
        queuedMs: 8_300,
        coldStartMs: 7_500,
        executionMs: 11_700,
        totalMs: 20_000,
      }),
    });

    const [root] = byName(spans, SPAN_NAMES.job);
    expect(root).toBeDefined();
    expect(root!.parentSpanId).toBeUndefined();
    expect(root).toMatchObject({ startTime: 1_000, endTime: 21_000, ended: true });
    expect(root!.attributes).toMatchObject({
      execution_id: 'job-1',
      'comfy.provider_id': 'runpod:a',
      'comfy.outcome': 'completed',
      'comfy.cold_start_ms': 7_500,
    });
    const expected: Array<[string, number, number]> = [
      [SPAN_NAMES.routing, 1_000, 1_020],
      [SPAN_NAMES.queueing, 1_020, 1_300],
      [SPAN_NAMES.coldStart, 1_300, 9_300],
      [SPAN_NAMES.execution, 9_300, 21_000],
      [SPAN_NAMES.outputDownload, 20_000, 21_000],
    ];
    for (const [name, start, end] of expected) {
      const [span] = byName(spans, name);
      expect(span, name).toBeDefined();
      expect(span).toMatchObject({ startTime: start, endTime: end, ended: true, parentSpanId: root!.spanId });
      expect(span!.traceId).toBe(root!.traceId);
      expect(span!.attributes.execution_id).toBe('job-1');
    }
    expect(byName(spans, SPAN_NAMES.coldStart)[0]!.attributes['comfy.cold_start_ms']).toBe(7_500);
    expect(spans.every((span) => span.ended)).toBe(true);
  });

  it('marks the failed attempt, opens a new routing span on retry, and sets error status on failure', () => {
    const fake = createFakeDispatcher();
    const { tracer, spans } = createMemoryTracer();
    attachTracing(fake, { tracer, api, secrets: ['sk-live-123456'] });
    fake.emit({ type: 'queued', jobId: 'j', at: 0 });
    fake.emit({ type: 'routed', jobId: 'j', at: 5, providerId: 'runpod:a', candidates: ['runpod:a'] });
    fake.emit({
      type: 'retrying',
      jobId: 'j',
      at: 50,
      providerId: 'runpod:a',
      nextProviderId: 'modal:b',
      attempt: 2,
      delayMs: 0,
      error: { name: 'ApiCallError', message: 'HTTP 503 with key sk-live-123456', isRetryable: true },
    });
    fake.emit({ type: 'routed', jobId: 'j', at: 60, providerId: 'modal:b', candidates: ['modal:b'] });
    fake.emit({ type: 'submitted', jobId: 'j', at: 70, providerId: 'modal:b', remoteId: 'r', attempt: 2 });
    fake.emit({
      type: 'failed',
      jobId: 'j',
      at: 90,
      error: { name: 'JobFailedError', message: 'worker crashed', isRetryable: false },
    });
    const queueing = byName(spans, SPAN_NAMES.queueing);
    expect(queueing).toHaveLength(2);
    expect(queueing[0]!.status?.code).toBe(api.SpanStatusCode.ERROR);
    expect(queueing[0]).toMatchObject({ startTime: 5, endTime: 50 });
    expect(byName(spans, SPAN_NAMES.routing).map((span) => [span.startTime, span.endTime])).toEqual([
      [0, 5],
      [50, 60],
    ]);
    const [root] = byName(spans, SPAN_NAMES.job);
    expect(root!.status).toMatchObject({ code: api.SpanStatusCode.ERROR });
    expect(root!.attributes['comfy.outcome']).toBe('failed');
    expect(byName(spans, SPAN_NAMES.coldStart)[0]!.status?.code).toBe(api.SpanStatusCode.ERROR);
    expect(JSON.stringify(spans)).not.toContain('sk-live-123456');
    expect(spans.every((span) => span.ended)).toBe(true);
  });

  it("is a child of the caller's active span, loads the API by itself, and follows a real dispatcher", async () => {
    const { tracer, spans } = createMemoryTracer();
    const provider = createMockProvider({
      id: 'mock:a',
      doSubmit: [
        new ApiCallError({ message: 'busy', url: 'https://x', statusCode: 400 }),
        { remoteId: 'r-1' },
      ],
      doWatch: [
        { type: 'started', coldStartMs: 1_000 },
        { type: 'completed', outputs: [placeholderOutput()] },
      ],
    });
    const other = createMockProvider({
      id: 'mock:b',
      doWatch: [
        { type: 'started', coldStartMs: 1_000 },
        { type: 'completed', outputs: [placeholderOutput()] },
      ],
    });
    const dispatcher = createDispatcher({
      providers: [provider, other],
      retry: { minDelayMs: 0, maxDelayMs: 0 },
    });
    const detach = attachTracing(dispatcher, { tracer });
    const manager = new AsyncContextManager();
    api.context.setGlobalContextManager(manager);
    try {
      const parent = tracer.startSpan('http request');
      await api.context.with(api.trace.setSpan(api.context.active(), parent), async () => {
        const submitted = dispatcher.submit(workflow, { jobId: 'real-1' });
        await (await submitted).result();
      });
      parent.end();
      const [root] = byName(spans, SPAN_NAMES.job);
      expect(root!.parentSpanId).toBe(parent.spanContext().spanId);
      expect(root!.attributes).toMatchObject({ execution_id: 'real-1', 'comfy.outcome': 'completed' });
      expect(byName(spans, SPAN_NAMES.execution)).toHaveLength(1);
      expect(byName(spans, SPAN_NAMES.outputDownload)).toHaveLength(1);
      expect(spans.every((span) => span.ended)).toBe(true);
    } finally {
      api.context.disable();
      detach();
      dispatcher.close();
    }
    const before = spans.length;
    const again = createDispatcher({ providers: [other] });
    await again.runWorkflow(workflow, { jobId: 'untraced' });
    expect(spans).toHaveLength(before);
  });

  it('refuses something that is not a tracer', () => {
    const fake = createFakeDispatcher();
    expect(() => attachTracing(fake, { tracer: {} as never })).toThrow(/tracer/);
    expect(() => attachTracing(fake, { tracer: createMemoryTracer().tracer, api: {} as never })).toThrow(
      /api/,
    );
  });
});
