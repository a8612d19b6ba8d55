import * as client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createDispatcher } from '../dispatch/dispatcher';
import type { BlueGreenState } from '../rollout/blue-green';
import { createBlueGreen } from '../rollout/blue-green';
import type { RolloutStore } from '../rollout/rollout-store';
import { ApiCallError, ComfyExecutionError } from '../spec/errors';
import type { ProviderJobEvent } from '../spec/job';
import { createMockProvider, placeholderOutput } from '../test/mock-provider';
import { createVirtualClock, settle } from '../test/virtual-clock';
import { createMemoryTracer } from './__fixtures__/memory-tracer';
import { attachLogger } from './attach-logger';
import { attachTracing } from './attach-tracing';
import { createJsonLogger, type LoggerLike } from './json-logger';
import { createPerformanceReport, formatPerformanceReport } from './performance-report';
import { createPrometheusMetrics } from './prometheus-metrics';
import { redactSecrets, redactValue } from './redact';

const API_KEY = 'sk-live-9f8e7d6c5b4a3210';
const SIGNATURE = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
const workflow = {
  '9': { class_type: 'SaveImage', inputs: { images: ['8', 0] } },
  '8': { class_type: 'VAEDecode', inputs: {} },
};

describe('redactValue', () => {
  it('redacts strings deeply, credential-named keys, binary data and errors, without touching the input', () => {
    const input = {
      url: `https://b.s3.amazonaws.com/o.png?X-Amz-Credential=AKIA/x&X-Amz-Signature=${SIGNATURE}`,
      headers: { authorization: 'Bearer abcdefghijk', 'x-api-key': 'k1234567' },
      nested: [{ apiKey: 'whatever', note: `key is ${API_KEY}` }],
      bytes: new Uint8Array(10),
      error: new ApiCallError({ message: `bad ${API_KEY}`, url: 'https://x', statusCode: 401 }),
    };
    const copy = JSON.parse(JSON.stringify(input.nested));
    const redacted = JSON.stringify(redactValue(input, [API_KEY]));
    expect(redacted).not.toContain(API_KEY);
    expect(redacted).not.toContain(SIGNATURE);
    expect(redacted).not.toContain('AKIA/x');
    expect(redacted).not.toContain('abcdefghijk');
    expect(redacted).not.toContain('k1234567');
    expect(redacted).toContain('[10 bytes]');
    expect(redacted).toContain('"name":"ApiCallError"');
    expect(input.nested).toEqual(copy);
    const circular: Record<string, unknown> = { a: 1 };
    circular.self = circular;
    expect(redactValue(circular)).toEqual({ a: 1, self: '[Circular]' });
    expect(redactSecrets(`https://x/y?token=${API_KEY}`, [])).toBe('https://x/y?token=[REDACTED]');
  });
});

describe('secrets in every telemetry path', () => {
  it('never show in logs, errors, events, metric labels, spans or reports', async () => {
    const clock = createVirtualClock({ start: 0 });
    const leaking = new ApiCallError({
      message: `RunPod refused key ${API_KEY} (Authorization: Bearer ${API_KEY})`,
      url: `https://api.runpod.ai/v2/abc/run?api_key=${API_KEY}`,
      statusCode: 503,
      responseBody: `{"error":"bad key ${API_KEY}"}`,
    });
    const presigned = `https://bucket.s3.amazonaws.com/out.png?X-Amz-Credential=AKIA/20260101&X-Amz-Signature=${SIGNATURE}`;
    const failing = createMockProvider({
      id: 'runpod:a',
      pricing: { usdPerSecond: 0.00001 },
      doSubmit: leaking,
      doHealth: { status: 'healthy', message: `last check answered 401 with key ${API_KEY}`, checkedAt: 0 },
    });
    let job = 0;
    const working = createMockProvider({
      id: 'modal:b',
      pricing: { usdPerSecond: 0.001 },
      doWatch: (): ProviderJobEvent[] => {
        job += 1;
        if (job === 2) {
          return [
            { type: 'started', coldStartMs: 1_000 },
            {
              type: 'failed',
              error: new ComfyExecutionError({
                message: `node 8 failed reading ${presigned} with ${API_KEY}`,
              }),
              executionStarted: true,
            },
          ];
        }
        return [
          { type: 'started', coldStartMs: 1_000 },
          { type: 'output', output: { ...placeholderOutput(), data: undefined, url: presigned } },
          { type: 'completed', outputs: [{ ...placeholderOutput(), data: undefined, url: presigned }] },
        ];
      },
    });
    const dispatcher = createDispatcher({
      providers: [failing, working],
      clock,
      retry: { submitRetries: 0, minDelayMs: 0, maxDelayMs: 0 },
      router: { healthTtlMs: 0 },
    });

    const lines: string[] = [];
    attachLogger(dispatcher, createJsonLogger({ level: 'debug', write: (line) => lines.push(line) }), {
      service: 'render-api',
      secrets: [API_KEY],
    });
    const raw: unknown[] = [];
    const pinoLike: LoggerLike = {
      debug: (fields, message) => raw.push(fields, message),
      info: (fields, message) => raw.push(fields, message),
      warn: (fields, message) => raw.push(fields, message),
      error: (fields, message) => raw.push(fields, message),
    };
    attachLogger(dispatcher, pinoLike, { service: 'render-api', secrets: [API_KEY] });
    const metrics = createPrometheusMetrics({ client, secrets: [API_KEY] });
    metrics.attach(dispatcher);
    metrics.recordModelCache(false, `loras-${API_KEY}`);
    const { tracer, spans } = createMemoryTracer();
    attachTracing(dispatcher, { tracer, secrets: [API_KEY] });
    const performance = createPerformanceReport(dispatcher, { clock, secrets: [API_KEY] });

    const errors: unknown[] = [];
    for (const [index, metadata] of [{ userId: 'u-1' }, { userId: 'u-2' }, { userId: 'u-3' }].entries()) {
      await dispatcher.runWorkflow(workflow, { jobId: `job-${index}`, metadata }).catch((error: unknown) => {
        errors.push(error);
      });
      await clock.advance(10);
    }
    expect(errors).toHaveLength(1);
    await settle();

    // Blue-green: a gate whose reasons quote the key and a store whose errors do.
    const rolloutEvents: unknown[] = [];
    const store: RolloutStore<BlueGreenState> = {
      load: async () => undefined,
      save: async () => {
        throw new Error(`S3 PutObject denied for ${API_KEY}`);
      },
    };
    const rollout = createBlueGreen({
      blue: createMockProvider({ id: 'v1' }),
      green: createMockProvider({
        id: 'v2',
        doHealth: new ApiCallError({ message: `401 for ${API_KEY}`, url: 'https://x', statusCode: 401 }),
      }),
      stepMs: 1_000,
      clock,
      store,
      secrets: [API_KEY],
      gate: () => ({ outcome: 'fail', reasons: [`green answered 401 for ${API_KEY}`] }),
    });
    for (const name of ['store:error', 'rollout:rolled-back', 'step:started'] as const) {
      rollout.events.on(name, (event: unknown) => rolloutEvents.push(event));
    }
    await rollout.ready();
    rolloutEvents.push(await rollout.doHealth());
    await clock.advance(1_000);
    await settle();
    rollout.close();

    const captured = {
      lines: lines.join(''),
      raw: JSON.stringify(raw),
      metrics: await metrics.metrics(),
      spans: JSON.stringify(spans),
      report: `${JSON.stringify(performance.report())}\n${formatPerformanceReport(performance.report())}`,
      rollout: JSON.stringify(rolloutEvents),
    };
    // The paths were exercised: each capture holds what the key rode in on.
    expect(captured.lines).toContain('RunPod refused key [REDACTED]');
    expect(captured.lines).toContain('X-Amz-Signature=[REDACTED]');
    expect(captured.lines).toContain('"user_id":"u-2"');
    expect(captured.lines).toContain('last check answered 401 with key [REDACTED]');
    expect(captured.metrics).toContain('folder="redacted"');
    expect(captured.spans).toContain('comfy.job.execution');
    expect(captured.rollout).toContain('green answered 401 for [REDACTED]');
    expect(captured.rollout).toContain('S3 PutObject denied for [REDACTED]');
    expect(rolloutEvents.length).toBeGreaterThanOrEqual(4);
    for (const [path, text] of Object.entries(captured)) {
      expect(text, path).not.toContain(API_KEY);
      expect(text, path).not.toContain(SIGNATURE);
    }
    dispatcher.close();
  });
});
