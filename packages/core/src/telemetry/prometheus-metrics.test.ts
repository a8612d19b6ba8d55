import * as client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createDispatcher } from '../dispatch/dispatcher';
import { ApiCallError, InvalidArgumentError } from '../spec/errors';
import type { ModelLoaderV1 } from '../spec/model-loader-v1';
import { createMockProvider, placeholderOutput } from '../test/mock-provider';
import { createFakeDispatcher, runJob } from './__fixtures__/fake-dispatcher';
import { METRIC_NAMES } from './metric-names';
import { instrumentModelLoader, recordModelLoad } from './model-cache-hook';
import { createPrometheusMetrics } from './prometheus-metrics';

async function sampleOf(
  registry: client.Registry,
  name: string,
  labels: Record<string, string>,
  suffix = '',
) {
  const metric = (await registry.getMetricsAsJSON()).find((entry) => entry.name === name);
  const matches = metric?.values.filter((value) => {
    const metricName = (value as { metricName?: string }).metricName;
    if (suffix !== '' && metricName !== `${name}${suffix}`) return false;
    if (suffix === '' && metricName !== undefined && metricName !== name) return false;
    return Object.entries(labels).every(([key, expected]) => value.labels[key] === expected);
  });
  return matches?.[0]?.value;
}

describe('createPrometheusMetrics', () => {
  it('registers every metric of METRIC_NAMES, with and without a prefix', async () => {
    const metrics = createPrometheusMetrics({ client });
    const names = (await metrics.registry.getMetricsAsJSON()).map((metric) => metric.name).sort();
    expect(names).toEqual(Object.values(METRIC_NAMES).sort());
    const prefixed = createPrometheusMetrics({ client, prefix: 'comfy_' });
    const prefixedNames = (await prefixed.registry.getMetricsAsJSON()).map((metric) => metric.name);
    expect(prefixedNames).toContain('comfy_queue_depth');
    expect(prefixedNames).toHaveLength(names.length);
  });

  it('loads prom-client by itself when no client is given', async () => {
    const metrics = createPrometheusMetrics();
    expect(await metrics.metrics()).toContain('# TYPE workflow_execution_duration_seconds histogram');
    expect(metrics.contentType).toContain('text/plain');
  });

  it('counts jobs by provider and outcome and times execution, queue wait and cold starts', async () => {
    const metrics = createPrometheusMetrics({ client });
    const fake = createFakeDispatcher();
    metrics.attach(fake);
    runJob(fake, 'job-1', 'runpod:a', 0, {
      routeMs: 100,
      submitMs: 400,
      coldStartMs: 8_000,
      executionMs: 30_000,
      usd: 0.02,
    });
    runJob(fake, 'job-2', 'runpod:a', 1_000, { executionMs: 10_000, startMs: 1_500, usd: 0.01 });
    fake.emit({ type: 'queued', jobId: 'job-3', at: 0 });
    fake.emit({ type: 'routed', jobId: 'job-3', at: 10, providerId: 'modal:b', candidates: ['modal:b'] });
    fake.emit({
      type: 'failed',
      jobId: 'job-3',
      at: 2_000,
      error: { name: 'ComfyExecutionError', message: 'boom', isRetryable: false },
    });
    fake.emit({ type: 'queued', jobId: 'job-4', at: 0 });
    fake.emit({ type: 'timed_out', jobId: 'job-4', at: 700_000, timeoutMs: 700_000 });

    const { registry } = metrics;
    expect(
      await sampleOf(registry, 'workflow_jobs_total', { provider: 'runpod:a', outcome: 'completed' }),
    ).toBe(2);
    expect(await sampleOf(registry, 'workflow_jobs_total', { provider: 'modal:b', outcome: 'failed' })).toBe(
      1,
    );
    expect(await sampleOf(registry, 'workflow_jobs_total', { provider: 'none', outcome: 'timed_out' })).toBe(
      1,
    );
    expect(
      await sampleOf(registry, 'workflow_execution_duration_seconds', { provider: 'runpod:a' }, '_sum'),
    ).toBeCloseTo(40, 9);
    expect(
      await sampleOf(registry, 'workflow_queue_wait_seconds', { provider: 'runpod:a' }, '_sum'),
    ).toBeCloseTo(8.5 + 1.5, 9);
    // The job that never started waited 700 s: the alert on queue wait sees it.
    expect(await sampleOf(registry, 'workflow_queue_wait_seconds', { provider: 'none' }, '_sum')).toBe(700);
    expect(
      await sampleOf(registry, 'container_startup_duration_seconds', { provider: 'runpod:a' }, '_count'),
    ).toBe(1);
    expect(await sampleOf(registry, 'workflow_cost_usd_total', { provider: 'runpod:a' })).toBeCloseTo(
      0.03,
      9,
    );
    const text = await metrics.metrics();
    expect(text).not.toContain('job-1');
    expect(text).not.toContain('remote-job');
  });

  it('times provider calls, sets GPU utilisation from health and reads queue depth on scrape', async () => {
    const metrics = createPrometheusMetrics({ client });
    const fake = createFakeDispatcher();
    metrics.attach(fake);
    fake.events.emit('provider:call', {
      providerId: 'runpod:a',
      call: 'submit',
      durationMs: 250,
      ok: true,
      at: 0,
    });
    fake.events.emit('provider:call', {
      providerId: 'runpod:a',
      call: 'submit',
      durationMs: 1_000,
      ok: false,
      statusCode: 503,
      at: 0,
    });
    fake.events.emit('provider:health', {
      providerId: 'runpod:a',
      health: { status: 'healthy', busyWorkers: 3, idleWorkers: 1, checkedAt: 0 },
    });
    const { registry } = metrics;
    expect(
      await sampleOf(
        registry,
        'api_request_duration_seconds',
        { provider: 'runpod:a', call: 'submit', outcome: 'success' },
        '_sum',
      ),
    ).toBe(0.25);
    expect(
      await sampleOf(
        registry,
        'api_request_duration_seconds',
        { provider: 'runpod:a', call: 'submit', outcome: 'error' },
        '_count',
      ),
    ).toBe(1);
    expect(await sampleOf(registry, 'gpu_utilization', { provider: 'runpod:a' })).toBe(0.75);
    fake.events.emit('provider:health', {
      providerId: 'runpod:a',
      health: { status: 'healthy', busyWorkers: 0, idleWorkers: 0, checkedAt: 1 },
    });
    // No workers: no utilisation (an endpoint scaled to zero wastes nothing).
    expect(await sampleOf(registry, 'gpu_utilization', { provider: 'runpod:a' })).toBeUndefined();

    fake.load = {
      demand: { ...fake.load.demand, queueDepth: 7, inFlight: 2 },
      providers: { 'runpod:a': { queueDepth: 4, inFlight: 2 }, 'modal:b': { queueDepth: 1, inFlight: 0 } },
    };
    expect(await sampleOf(registry, 'queue_depth', { provider: 'runpod:a' })).toBe(4);
    expect(await sampleOf(registry, 'queue_depth', { provider: 'unassigned' })).toBe(2);
    expect(await sampleOf(registry, 'jobs_in_flight', { provider: 'runpod:a' })).toBe(2);
    fake.load = {
      demand: { ...fake.load.demand, queueDepth: 0 },
      providers: { 'runpod:a': { queueDepth: 0, inFlight: 0 } },
    };
    expect(await sampleOf(registry, 'queue_depth', { provider: 'modal:b' })).toBeUndefined();
  });

  it('counts model-cache hits and misses by folder, from a loader hook', async () => {
    const metrics = createPrometheusMetrics({ client });
    metrics.recordModelCache(true, 'checkpoints');
    const plan = {
      estimatedMs: 0,
      items: [
        {
          model: { folder: 'checkpoints', name: 'a.safetensors' },
          action: 'cache_hit' as const,
          estimatedMs: 0,
          streams: 1,
        },
        {
          model: { folder: 'loras', name: 'b.safetensors' },
          action: 'network_download' as const,
          estimatedMs: 0,
          streams: 4,
        },
      ],
    };
    const loader: ModelLoaderV1 & { extra(): string } = {
      specificationVersion: 'v1',
      plan: async () => plan,
      load: async (given) => ({
        loaded: given.items.map((item) => item.model),
        cacheHits: 1,
        bytesDownloaded: 10,
        totalMs: 5,
      }),
      extra: () => 'kept',
    };
    const instrumented = instrumentModelLoader(loader, metrics);
    await instrumented.load(plan);
    expect(instrumented.extra()).toBe('kept');
    // A plan that disagrees with the result: counts without folders.
    recordModelLoad(
      metrics,
      { loaded: plan.items.map((item) => item.model), cacheHits: 0, bytesDownloaded: 1, totalMs: 1 },
      plan,
    );
    const { registry } = metrics;
    expect(await sampleOf(registry, 'model_cache_hits_total', { folder: 'checkpoints' })).toBe(2);
    expect(await sampleOf(registry, 'model_cache_misses_total', { folder: 'loras' })).toBe(1);
    expect(await sampleOf(registry, 'model_cache_misses_total', { folder: 'unknown' })).toBe(2);
  });

  it('keeps labels bounded: past the limit, new values become "other"', async () => {
    const metrics = createPrometheusMetrics({ client, maxLabelValues: 3 });
    for (let index = 0; index < 10; index++) metrics.recordModelCache(false, `folder-${index}`);
    metrics.recordModelCache(false, 'a file name with spaces and / ../');
    const series = (await metrics.registry.getMetricsAsJSON()).find(
      (metric) => metric.name === 'model_cache_misses_total',
    );
    const folders = series?.values.map((value) => value.labels.folder).sort();
    expect(folders).toEqual(['folder-0', 'folder-1', 'folder-2', 'other']);
    expect(await sampleOf(metrics.registry, 'model_cache_misses_total', { folder: 'other' })).toBe(8);
  });

  it('follows a real dispatcher and stops when detached', async () => {
    const metrics = createPrometheusMetrics({ client });
    const provider = createMockProvider({
      id: 'mock:a',
      doWatch: [
        { type: 'started', coldStartMs: 2_000 },
        { type: 'completed', outputs: [placeholderOutput()], timing: { executionMs: 3_000 } },
      ],
    });
    const failing = createMockProvider({
      id: 'mock:b',
      doSubmit: new ApiCallError({ message: 'refused', url: 'https://x', statusCode: 400 }),
    });
    const dispatcher = createDispatcher({
      providers: [failing, provider],
      retry: { minDelayMs: 0, maxDelayMs: 0 },
    });
    const detach = metrics.attach(dispatcher);
    expect(metrics.attach(dispatcher)).toBe(detach);
    const workflow = {
      '9': { class_type: 'SaveImage', inputs: { images: ['8', 0] } },
      '8': { class_type: 'VAEDecode', inputs: {} },
    };
    await dispatcher.runWorkflow(workflow, { jobId: 'real-1' });
    const { registry } = metrics;
    const completed = await sampleOf(registry, 'workflow_jobs_total', {
      provider: 'mock:a',
      outcome: 'completed',
    });
    expect(completed).toBe(1);
    expect(
      await sampleOf(registry, 'workflow_execution_duration_seconds', { provider: 'mock:a' }, '_sum'),
    ).toBe(3);
    expect(
      await sampleOf(registry, 'container_startup_duration_seconds', { provider: 'mock:a' }, '_sum'),
    ).toBe(2);
    const submitCalls = await sampleOf(
      registry,
      'api_request_duration_seconds',
      { provider: 'mock:a', call: 'submit', outcome: 'success' },
      '_count',
    );
    expect(submitCalls).toBe(1);
    detach();
    await dispatcher.runWorkflow(workflow, { jobId: 'real-2' });
    expect(
      await sampleOf(registry, 'workflow_jobs_total', { provider: 'mock:a', outcome: 'completed' }),
    ).toBe(1);
    dispatcher.close();
  });

  it('refuses bad options and a second set of metrics on one registry, naming the option', () => {
    const registry = new client.Registry();
    createPrometheusMetrics({ client, registry });
    const error = (() => {
      try {
        createPrometheusMetrics({ client, registry });
      } catch (caught) {
        return caught;
      }
    })();
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect((error as InvalidArgumentError).argument).toBe('registry');
    // The failed second attempt left the first set whole.
    expect(registry.getSingleMetric('queue_depth')).toBeDefined();
    expect(() => createPrometheusMetrics({ client, prefix: '9bad-' })).toThrow(/prefix/);
    expect(() => createPrometheusMetrics({ client, buckets: { apiSeconds: [1, 0.5] } })).toThrow(
      /buckets.apiSeconds/,
    );
    expect(() => createPrometheusMetrics({ client, maxLabelValues: 0 })).toThrow(/maxLabelValues/);
    expect(() => createPrometheusMetrics({ client: {} as typeof client })).toThrow(/client/);
    expect(() => createPrometheusMetrics({ client }).attach({} as never)).toThrow(/dispatcher/);
  });
});
