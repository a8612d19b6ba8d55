import { describe, expect, it } from 'vitest';
import { createDispatcher } from '../dispatch/dispatcher';
import { InvalidArgumentError } from '../spec/errors';
import { createMockProvider, placeholderOutput } from '../test/mock-provider';
import { settle } from '../test/virtual-clock';
import { createFakeDispatcher, runJob } from './__fixtures__/fake-dispatcher';
import { attachLogger } from './attach-logger';
import { createJsonLogger, type LoggerLike } from './json-logger';

function captureLogger(level: 'debug' | 'info' = 'debug') {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createJsonLogger({ level, write: (line) => lines.push(JSON.parse(line)), now: () => 0 });
  return { lines, logger };
}

const workflow = {
  '9': { class_type: 'SaveImage', inputs: { images: ['8', 0] } },
  '8': { class_type: 'VAEDecode', inputs: {} },
};

describe('createJsonLogger', () => {
  it('writes one JSON line per call with timestamp, level, fields and msg, dropping lower levels', () => {
    const written: string[] = [];
    const logger = createJsonLogger({
      level: 'info',
      write: (line) => written.push(line),
      now: () => Date.UTC(2026, 0, 1),
    });
    logger.debug({ a: 1 }, 'hidden');
    logger.info({ service: 'api', execution_id: 'j1' }, 'shown');
    logger.error({ url: 'https://x/y?X-Amz-Signature=abc123&X-Amz-Date=1' }, 'bad');
    expect(written).toHaveLength(2);
    expect(written.every((line) => line.endsWith('\n'))).toBe(true);
    const first = JSON.parse(written[0]!);
    expect(first).toEqual({
      timestamp: '2026-01-01T00:00:00.000Z',
      level: 'info',
      service: 'api',
      execution_id: 'j1',
      msg: 'shown',
    });
    expect(JSON.parse(written[1]!).url).toBe('https://x/y?X-Amz-Signature=[REDACTED]&X-Amz-Date=1');
    expect(() => createJsonLogger({ level: 'loud' as never })).toThrow(/level/);
  });
});

describe('attachLogger', () => {
  it('logs a job with execution_id, service, provider, gpu, container and the user from its metadata', async () => {
    const fake = createFakeDispatcher();
    await fake.journal.create({
      jobId: 'job-1',
      createdAt: 0,
      requestHash: 'h',
      request: { workflow: {}, images: [], metadata: { userId: 'user-42' } },
    });
    const { lines, logger } = captureLogger();
    attachLogger(fake, logger, { service: 'render-api' });
    fake.emit({ type: 'queued', jobId: 'job-1', at: 1_000 });
    fake.emit({
      type: 'routed',
      jobId: 'job-1',
      at: 1_010,
      providerId: 'runpod:a',
      candidates: ['runpod:a'],
    });
    fake.emit({
      type: 'submitted',
      jobId: 'job-1',
      at: 1_100,
      providerId: 'runpod:a',
      remoteId: 'r-1',
      attempt: 1,
    });
    fake.emit({
      type: 'started',
      jobId: 'job-1',
      at: 5_000,
      providerId: 'runpod:a',
      coldStartMs: 3_000,
      workerId: 'worker-7',
    } as never);
    fake.emit({
      type: 'failed',
      jobId: 'job-1',
      at: 9_000,
      error: {
        name: 'ComfyExecutionError',
        message: 'out of memory',
        isRetryable: false,
        providerId: 'runpod:a',
      },
    });
    await settle();
    expect(lines.map((line) => line.event)).toEqual([
      'job:queued',
      'job:routed',
      'job:submitted',
      'job:started',
      'job:failed',
    ]);
    for (const line of lines) {
      expect(line).toMatchObject({ service: 'render-api', execution_id: 'job-1', user_id: 'user-42' });
      expect(typeof line.timestamp).toBe('string');
    }
    expect(lines[0]!.timestamp).toBe(new Date(1_000).toISOString());
    expect(lines[3]).toMatchObject({
      level: 'info',
      provider_id: 'runpod:a',
      gpu_type: 'L4-24GB',
      container_id: 'worker-7',
      cold_start_ms: 3_000,
    });
    expect(lines[4]).toMatchObject({
      level: 'error',
      container_id: 'worker-7',
      provider_id: 'runpod:a',
      error: { name: 'ComfyExecutionError', message: 'out of memory' },
    });
    expect(lines[4]!.msg).toContain('out of memory');
  });

  it('passes pino-style (fields, message) calls and never logs preview or output bytes', async () => {
    const fake = createFakeDispatcher();
    const calls: Array<{ level: string; fields: Record<string, unknown>; message: string | undefined }> = [];
    const record =
      (level: string) =>
      (fields: Record<string, unknown>, message?: string): void => {
        calls.push({ level, fields, message });
      };
    const pinoLike: LoggerLike = {
      debug: record('debug'),
      info: record('info'),
      warn: record('warn'),
      error: record('error'),
    };
    const detach = attachLogger({ events: fake.events }, pinoLike, { service: 's' });
    fake.emit({ type: 'queued', jobId: 'j', at: 0 });
    fake.emit({
      type: 'preview',
      jobId: 'j',
      at: 1,
      providerId: 'runpod:a',
      mime: 'image/jpeg',
      data: new Uint8Array(5000),
    });
    fake.emit({
      type: 'output',
      jobId: 'j',
      at: 2,
      providerId: 'runpod:a',
      output: { ...placeholderOutput(), url: 'https://b.s3.amazonaws.com/o.png?X-Amz-Signature=s3cr3tsig' },
    });
    fake.emit({
      type: 'retrying',
      jobId: 'j',
      at: 3,
      providerId: 'runpod:a',
      nextProviderId: 'modal:b',
      attempt: 2,
      delayMs: 0,
      error: { name: 'ApiCallError', message: '503', isRetryable: true },
    });
    fake.events.emit('provider:circuit-open', { providerId: 'runpod:a', at: 4 });
    expect(calls.map((call) => call.level)).toEqual(['info', 'debug', 'debug', 'warn', 'warn']);
    expect(calls[1]!.fields).toMatchObject({ bytes: 5000, mime: 'image/jpeg' });
    expect(JSON.stringify(calls)).not.toContain('s3cr3tsig');
    expect(JSON.stringify(calls[2]!.fields)).not.toMatch(/"data"/);
    expect(calls.every((call) => !('level' in call.fields))).toBe(true);
    detach();
    fake.emit({ type: 'queued', jobId: 'k', at: 5 });
    expect(calls).toHaveLength(5);
  });

  it('reports provider health changes and failed calls at higher levels than routine ones', () => {
    const fake = createFakeDispatcher();
    const { lines, logger } = captureLogger('info');
    attachLogger(fake, logger, { service: 's' });
    fake.events.emit('provider:health', {
      providerId: 'runpod:a',
      health: { status: 'healthy', checkedAt: 0 },
    });
    fake.events.emit('provider:health', {
      providerId: 'runpod:a',
      health: { status: 'unhealthy', checkedAt: 10 },
    });
    fake.events.emit('provider:call', {
      providerId: 'runpod:a',
      call: 'health',
      durationMs: 5,
      ok: true,
      at: 11,
    });
    fake.events.emit('provider:call', {
      providerId: 'runpod:a',
      call: 'submit',
      durationMs: 30,
      ok: false,
      statusCode: 429,
      at: 12,
    });
    expect(lines.map((line) => [line.level, line.event])).toEqual([
      ['warn', 'provider:health'],
      ['warn', 'provider:call'],
    ]);
    expect(lines[1]!.status_code).toBe(429);
  });

  it('follows a real dispatcher; a logger that throws never breaks the job', async () => {
    const provider = createMockProvider({
      id: 'mock:a',
      doWatch: [{ type: 'started' }, { type: 'completed', outputs: [placeholderOutput()] }],
    });
    const dispatcher = createDispatcher({ providers: [provider] });
    const { lines, logger } = captureLogger('info');
    attachLogger(dispatcher, logger, { service: 'svc' });
    const throwing: LoggerLike = {
      debug: () => {
        throw new Error('disk full');
      },
      info: () => {
        throw new Error('disk full');
      },
      warn: () => undefined,
      error: () => undefined,
    };
    attachLogger(dispatcher, throwing, { service: 'svc' });
    const result = await dispatcher.runWorkflow(workflow, { jobId: 'real-1', metadata: { userId: 'u-1' } });
    expect(result.status).toBe('completed');
    await settle();
    const completed = lines.find((line) => line.event === 'job:completed');
    expect(completed).toMatchObject({
      execution_id: 'real-1',
      user_id: 'u-1',
      provider_id: 'mock:a',
      level: 'info',
    });
    expect(lines[0]!.event).toBe('job:queued');
    dispatcher.close();
  });

  it('refuses a logger without the pino methods and a missing service', () => {
    const fake = createFakeDispatcher();
    const error = (() => {
      try {
        attachLogger(fake, { info() {} } as unknown as LoggerLike, { service: 's' });
      } catch (caught) {
        return caught;
      }
    })();
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect((error as InvalidArgumentError).argument).toBe('logger');
    expect(() => attachLogger(fake, captureLogger().logger, { service: '' })).toThrow(/service/);
  });

  it('takes the user id from a queued event that carries metadata, without reading the journal', () => {
    const fake = createFakeDispatcher();
    let reads = 0;
    const journal = {
      ...fake.journal,
      get: async () => {
        reads += 1;
        return undefined;
      },
    };
    const { lines, logger } = captureLogger();
    attachLogger({ events: fake.events, journal }, logger, { service: 's' });
    fake.emit({ type: 'queued', jobId: 'm', at: 0, metadata: { userId: 'from-event' } } as never);
    expect(reads).toBe(0);
    expect(lines[0]).toMatchObject({ execution_id: 'm', user_id: 'from-event' });
  });

  it("holds a job's lines in order until its metadata is read", async () => {
    const fake = createFakeDispatcher();
    let release: (() => void) | undefined;
    const journal = {
      ...fake.journal,
      get: (jobId: string) =>
        new Promise<Awaited<ReturnType<typeof fake.journal.get>>>((resolve) => {
          release = () =>
            resolve({
              jobId,
              request: { workflow: {}, images: [], metadata: { userId: 'late-user' } },
            } as never);
        }),
    };
    const { lines, logger } = captureLogger();
    attachLogger({ events: fake.events, journal }, logger, { service: 's' });
    runJob(fake, 'slow', 'runpod:a', 0, { executionMs: 100 });
    expect(lines).toHaveLength(0);
    release?.();
    await settle();
    expect(lines.map((line) => line.event)).toEqual([
      'job:queued',
      'job:routed',
      'job:submitted',
      'job:started',
      'job:completed',
    ]);
    expect(lines.every((line) => line.user_id === 'late-user')).toBe(true);
  });
});
