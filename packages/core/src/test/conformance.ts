import { afterEach, describe, expect, it } from 'vitest';
import { ComfyServerlessError } from '../spec/errors';
import type { ApiWorkflow, InputImage, JobOutput, ProviderJobEvent, RemoteJobRef } from '../spec/job';
import type { ProviderV1 } from '../spec/provider-v1';

/** The situations the conformance suite asks a harness to arrange. */
export type ConformanceScenario =
  /** The job runs and completes with at least one output. */
  | 'success'
  /** The job is accepted, starts, and fails during execution. */
  | 'execution-failure'
  /** The job is accepted and keeps running (or queued) until cancelled; at least 30 s of platform time. */
  | 'long-running'
  /** `doSubmit` fails with a retryable error (a 429, a 503, a dropped connection). */
  | 'submit-retryable-error'
  /** `doSubmit` fails with an error that is not retryable (bad credentials, a refused workflow). */
  | 'submit-fatal-error';

/** A job as a harness wants it submitted for a scenario. */
export interface ConformanceJob {
  workflow: ApiWorkflow;
  images?: InputImage[];
}

/** What an adapter's test gives the suite: its provider over a mock, and control of the mock. */
export interface ConformanceHarness {
  provider: ProviderV1;
  /** Arranges the platform mock so the next submission behaves as the scenario says. */
  arrange(scenario: ConformanceScenario): Promise<ConformanceJob> | ConformanceJob;
  /**
   * Lets platform time pass while the suite waits (advance a virtual clock); called
   * repeatedly while a watch is pending. Omit when the mock runs on real time.
   */
  tick?(): Promise<void>;
  close?(): Promise<void>;
}

/** Options of the conformance suite. */
export interface TestProviderOptions {
  /** Scenarios the platform cannot produce, with the reason (printed as the test name). */
  skip?: Partial<Record<ConformanceScenario | 'health' | 'resume', string>>;
  /** Wall-clock limit per test in ms. @default 15000 */
  timeoutMs?: number;
}

let jobCounter = 0;
function nextJobId(): string {
  jobCounter += 1;
  return `conformance-${process.pid}-${jobCounter}`;
}

async function collect(
  harness: ConformanceHarness,
  ref: RemoteJobRef,
  signal?: AbortSignal,
): Promise<{ events: ProviderJobEvent[]; error?: unknown }> {
  const events: ProviderJobEvent[] = [];
  const iterator = harness.provider.doWatch(ref, signal ? { signal } : {})[Symbol.asyncIterator]();
  let ticking = true;
  const ticker = (async () => {
    while (ticking && harness.tick) {
      await harness.tick();
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  })();
  try {
    for (;;) {
      const step = await iterator.next();
      if (step.done) break;
      events.push(step.value);
    }
    return { events };
  } catch (error) {
    return { events, error };
  } finally {
    ticking = false;
    await ticker;
  }
}

function outputsOf(events: ProviderJobEvent[]): JobOutput[] {
  const last = events.at(-1);
  if (last?.type === 'completed' && last.outputs !== undefined) return last.outputs;
  return events.flatMap((event) => (event.type === 'output' ? [event.output] : []));
}

/**
 * The conformance suite every provider runs: submit, watch to completion, failure,
 * cancel, abort, retryable and fatal submission errors, health, and watching again from
 * a journalled reference. Call it inside a vitest file.
 *
 * @example
 * testProvider('runpod', async () => {
 *   const mock = await startRunpodMock();
 *   return { provider: createRunpod({ endpointId: 'e', baseURL: mock.url, apiKey: 'k', gpu: 'L4-24GB' }), arrange: (s) => mock.arrange(s), close: () => mock.close() };
 * });
 */
export function testProvider(
  name: string,
  createHarness: () => Promise<ConformanceHarness>,
  options: TestProviderOptions = {},
): void {
  const timeout = options.timeoutMs ?? 15_000;
  const skip = options.skip ?? {};
  let harness: ConformanceHarness | undefined;
  const setup = async () => {
    harness = await createHarness();
    return harness;
  };
  const maybe = (
    scenario: keyof NonNullable<TestProviderOptions['skip']>,
    title: string,
    body: () => Promise<void>,
  ) => {
    const reason = skip[scenario];
    if (reason !== undefined) it.skip(`${title} (skipped: ${reason})`, body);
    else it(title, body, timeout);
  };

  describe(`provider conformance: ${name}`, () => {
    afterEach(async () => {
      await harness?.close?.();
      harness = undefined;
    });

    it('declares spec v1 and a complete description', async () => {
      const { provider } = await setup();
      expect(provider.specificationVersion).toBe('v1');
      expect(typeof provider.id).toBe('string');
      expect(provider.id.length).toBeGreaterThan(0);
      expect(typeof provider.platform).toBe('string');
      expect(provider.gpu.vramGb).toBeGreaterThan(0);
      expect(typeof provider.gpu.type).toBe('string');
      expect(provider.pricing.usdPerSecond).toBeGreaterThanOrEqual(0);
    });

    maybe('success', 'submits, watches to completion and returns outputs', async () => {
      const h = await setup();
      const job = await h.arrange('success');
      const ref = await h.provider.doSubmit({
        jobId: nextJobId(),
        workflow: job.workflow,
        images: job.images ?? [],
        attempt: 1,
      });
      expect(typeof ref.remoteId).toBe('string');
      expect(JSON.parse(JSON.stringify(ref))).toEqual(ref);
      const { events, error } = await collect(h, ref);
      expect(error).toBeUndefined();
      const terminal = events.filter((event) => ['completed', 'failed', 'cancelled'].includes(event.type));
      expect(terminal).toHaveLength(1);
      expect(events.at(-1)?.type).toBe('completed');
      const outputs = outputsOf(events);
      expect(outputs.length).toBeGreaterThan(0);
      for (const output of outputs) {
        expect(typeof output.nodeId).toBe('string');
        expect(['image', 'video', 'gif', 'audio', 'text', 'file']).toContain(output.kind);
        expect(output.filename.length).toBeGreaterThan(0);
        expect(output.mime).toMatch(/^[a-z]+\/[\w.+-]+$/);
        expect(output.data !== undefined || output.url !== undefined || output.text !== undefined).toBe(true);
      }
    });

    maybe(
      'execution-failure',
      'reports an execution failure as one failed event with a typed error',
      async () => {
        const h = await setup();
        const job = await h.arrange('execution-failure');
        const ref = await h.provider.doSubmit({
          jobId: nextJobId(),
          workflow: job.workflow,
          images: job.images ?? [],
          attempt: 1,
        });
        const { events, error } = await collect(h, ref);
        expect(error).toBeUndefined();
        const last = events.at(-1);
        expect(last?.type).toBe('failed');
        if (last?.type === 'failed') {
          expect(typeof last.error.name).toBe('string');
          expect(last.error.message.length).toBeGreaterThan(0);
          expect(typeof last.executionStarted).toBe('boolean');
        }
        expect(events.filter((event) => event.type === 'completed')).toHaveLength(0);
      },
    );

    maybe('long-running', 'cancels a running job, and cancelling twice is not an error', async () => {
      const h = await setup();
      const job = await h.arrange('long-running');
      const ref = await h.provider.doSubmit({
        jobId: nextJobId(),
        workflow: job.workflow,
        images: job.images ?? [],
        attempt: 1,
      });
      const watching = collect(h, ref);
      await h.tick?.();
      await h.provider.doCancel(ref);
      const { events, error } = await watching;
      expect(error).toBeUndefined();
      expect(events.at(-1)?.type).toBe('cancelled');
      await expect(h.provider.doCancel(ref)).resolves.toBeUndefined();
    });

    maybe('long-running', 'stops watching promptly when the signal aborts', async () => {
      const h = await setup();
      const job = await h.arrange('long-running');
      const ref = await h.provider.doSubmit({
        jobId: nextJobId(),
        workflow: job.workflow,
        images: job.images ?? [],
        attempt: 1,
      });
      const controller = new AbortController();
      const watching = collect(h, ref, controller.signal);
      setTimeout(() => controller.abort(new Error('caller gave up')), 50);
      const started = Date.now();
      const { events } = await watching;
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(events.some((event) => event.type === 'completed')).toBe(false);
      await h.provider.doCancel(ref);
    });

    maybe('submit-retryable-error', 'marks a transient submission failure as retryable', async () => {
      const h = await setup();
      const job = await h.arrange('submit-retryable-error');
      const error = await h.provider
        .doSubmit({ jobId: nextJobId(), workflow: job.workflow, images: job.images ?? [], attempt: 1 })
        .then(
          () => undefined,
          (caught: unknown) => caught,
        );
      expect(ComfyServerlessError.isInstance(error)).toBe(true);
      expect((error as ComfyServerlessError).isRetryable).toBe(true);
    });

    maybe('submit-fatal-error', 'marks a permanent submission failure as not retryable', async () => {
      const h = await setup();
      const job = await h.arrange('submit-fatal-error');
      const error = await h.provider
        .doSubmit({ jobId: nextJobId(), workflow: job.workflow, images: job.images ?? [], attempt: 1 })
        .then(
          () => undefined,
          (caught: unknown) => caught,
        );
      expect(ComfyServerlessError.isInstance(error)).toBe(true);
      expect((error as ComfyServerlessError).isRetryable).toBe(false);
      expect((error as Error).message.length).toBeGreaterThan(10);
    });

    maybe('health', 'reports health in the normalised shape', async () => {
      const { provider } = await setup();
      const health = await provider.doHealth();
      expect(['healthy', 'degraded', 'unhealthy']).toContain(health.status);
      expect(typeof health.checkedAt).toBe('number');
      for (const key of ['queued', 'running', 'idleWorkers', 'busyWorkers'] as const) {
        if (health[key] !== undefined) expect(health[key]).toBeGreaterThanOrEqual(0);
      }
    });

    maybe('resume', 'watches a job again from its journalled reference', async () => {
      const h = await setup();
      const job = await h.arrange('success');
      const ref = await h.provider.doSubmit({
        jobId: nextJobId(),
        workflow: job.workflow,
        images: job.images ?? [],
        attempt: 1,
      });
      const journalled = JSON.parse(JSON.stringify(ref)) as RemoteJobRef;
      const { events, error } = await collect(h, journalled);
      expect(error).toBeUndefined();
      expect(events.at(-1)?.type).toBe('completed');
    });
  });
}
