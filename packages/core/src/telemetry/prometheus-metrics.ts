import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';
import { ConfigurationError, InvalidArgumentError } from '../spec/errors';
import type { JobEvent } from '../spec/job';
import { BoundedLabel } from './bounded-label';
import { METRIC_NAMES } from './metric-names';
import type { ModelCacheRecorder } from './model-cache-hook';
import {
  type DispatcherEventPayload,
  isObservedDispatcher,
  type ObservedDispatcher,
  subscribe,
} from './observed-dispatcher';
import { BoundedMap } from './ring-buffer';

/** The prom-client module, as `import * as client from 'prom-client'` gives it. */
export type PromClientModule = typeof PromClient;

/** Histogram bucket bounds, in seconds. */
export interface PrometheusBuckets {
  /** @default [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600] */
  executionSeconds?: number[];
  /** @default [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1200, 3600] */
  queueWaitSeconds?: number[];
  /** @default [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] */
  apiSeconds?: number[];
  /** @default [1, 2, 5, 10, 20, 30, 60, 120, 300, 600] */
  startupSeconds?: number[];
}

/** Options of `createPrometheusMetrics`. */
export interface PrometheusMetricsOptions {
  /** Where the metrics are registered. Pass prom-client's `register` to share the default one. @default a new Registry */
  registry?: PromClient.Registry;
  /** Put before every metric name (`comfy_`). The alert rules assume none. @default '' */
  prefix?: string;
  /** The prom-client module; loaded from `prom-client` when absent (an optional peer dependency). */
  client?: PromClientModule;
  buckets?: PrometheusBuckets;
  /** Most distinct values of one label (providers, model folders) before the rest become `other`. @default 100 */
  maxLabelValues?: number;
  /** Values that must never appear in a label (API keys): a label holding one reads `redacted`. */
  secrets?: readonly string[];
}

/** The dispatcher's metrics in Prometheus form. */
export interface PrometheusMetrics extends ModelCacheRecorder {
  /** The registry holding the metrics: serve `registry.metrics()` at `/metrics`. */
  readonly registry: PromClient.Registry;
  /** Follows a dispatcher's events (and reads its queue on each scrape); returns a function that stops. */
  attach(dispatcher: ObservedDispatcher): () => void;
  /** Counts one model lookup as a cache hit or miss (the model loader calls this; see `instrumentModelLoader`). */
  recordModelCache(hit: boolean, folder?: string): void;
  /** The metrics in Prometheus' text format. */
  metrics(): Promise<string>;
  /** The content type of `metrics()`, for the HTTP response. */
  readonly contentType: string;
}

const DEFAULT_BUCKETS: Required<PrometheusBuckets> = {
  executionSeconds: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600],
  queueWaitSeconds: [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1200, 3600],
  apiSeconds: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  startupSeconds: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
};

/** Jobs followed at once before the oldest are forgotten (they would then count under provider `none`). */
const TRACKED_JOBS = 100_000;

function loadPromClient(): PromClientModule {
  try {
    return createRequire(import.meta.url)('prom-client') as PromClientModule;
  } catch (cause) {
    throw new ConfigurationError({
      message:
        'createPrometheusMetrics needs the "prom-client" package: install it (npm install prom-client) or pass it as the "client" option.',
      cause,
    });
  }
}

function validate(options: PrometheusMetricsOptions): void {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError({
      argument: 'options',
      message: `createPrometheusMetrics takes an options object; got ${String(options)}.`,
    });
  }
  if (options.prefix !== undefined && !/^(?:[a-zA-Z_:][a-zA-Z0-9_:]*)?$/.test(options.prefix)) {
    throw new InvalidArgumentError({
      argument: 'prefix',
      message: `"prefix" must be a Prometheus name part (letters, digits, "_" and ":", not starting with a digit); got ${JSON.stringify(options.prefix)}.`,
    });
  }
  if (options.registry !== undefined && typeof options.registry?.registerMetric !== 'function') {
    throw new InvalidArgumentError({
      argument: 'registry',
      message: '"registry" must be a prom-client Registry (new Registry() or the default register).',
    });
  }
  if (
    options.client !== undefined &&
    (typeof options.client?.Histogram !== 'function' || typeof options.client?.Registry !== 'function')
  ) {
    throw new InvalidArgumentError({
      argument: 'client',
      message: '"client" must be the prom-client module (import * as client from "prom-client").',
    });
  }
  if (
    options.maxLabelValues !== undefined &&
    !(Number.isInteger(options.maxLabelValues) && options.maxLabelValues > 0)
  ) {
    throw new InvalidArgumentError({
      argument: 'maxLabelValues',
      message: `"maxLabelValues" must be a positive whole number; got ${String(options.maxLabelValues)}.`,
    });
  }
  for (const [key, buckets] of Object.entries(options.buckets ?? {})) {
    const valid =
      Array.isArray(buckets) &&
      buckets.length > 0 &&
      buckets.every(
        (bound, index) => Number.isFinite(bound) && bound > 0 && (index === 0 || bound > buckets[index - 1]!),
      );
    if (!valid) {
      throw new InvalidArgumentError({
        argument: `buckets.${key}`,
        message: `"buckets.${key}" must be increasing positive numbers of seconds; got ${JSON.stringify(buckets)}.`,
      });
    }
  }
}

interface TrackedJob {
  queuedAt: number | undefined;
  providerId: string | undefined;
  started: boolean;
}

/**
 * Creates the dispatcher's Prometheus metrics (names in `METRIC_NAMES`). Labels are kept
 * bounded: provider, outcome, call and model folder; never a job id.
 *
 * @example
 * import * as client from 'prom-client';
 * const metrics = createPrometheusMetrics({ client, registry: client.register });
 * metrics.attach(dispatcher);
 * app.get('/metrics', async (_req, res) => res.type(metrics.contentType).send(await metrics.metrics()));
 */
export function createPrometheusMetrics(options: PrometheusMetricsOptions = {}): PrometheusMetrics {
  validate(options);
  const client = options.client ?? loadPromClient();
  const registry = options.registry ?? new client.Registry();
  const prefix = options.prefix ?? '';
  const buckets = { ...DEFAULT_BUCKETS, ...options.buckets };
  const labelLimit = options.maxLabelValues ?? 100;
  const secrets = (options.secrets ?? []).filter((secret): secret is string => typeof secret === 'string');
  const providers = new BoundedLabel(labelLimit, secrets);
  const folders = new BoundedLabel(labelLimit, secrets);
  const attached = new Map<ObservedDispatcher, () => void>();
  const name = (base: string) => `${prefix}${base}`;

  const created: string[] = [];
  const register = <Metric>(metricName: string, make: () => Metric): Metric => {
    if (registry.getSingleMetric(metricName) !== undefined) {
      for (const done of created) registry.removeSingleMetric(done);
      throw new InvalidArgumentError({
        argument: 'registry',
        message: `The registry already has a metric named "${metricName}": use one createPrometheusMetrics per registry, or give a different "prefix".`,
      });
    }
    const metric = make();
    created.push(metricName);
    return metric;
  };
  const registers = [registry];

  const executionDuration = register(
    name(METRIC_NAMES.executionDuration),
    () =>
      new client.Histogram({
        name: name(METRIC_NAMES.executionDuration),
        help: 'Seconds a workflow executed on a GPU, by provider (completed jobs).',
        labelNames: ['provider'] as const,
        buckets: buckets.executionSeconds,
        registers,
      }),
  );
  const queueWait = register(
    name(METRIC_NAMES.queueWait),
    () =>
      new client.Histogram({
        name: name(METRIC_NAMES.queueWait),
        help: 'Seconds from acceptance until execution started, or until the job ended without starting.',
        labelNames: ['provider'] as const,
        buckets: buckets.queueWaitSeconds,
        registers,
      }),
  );
  const jobs = register(
    name(METRIC_NAMES.jobs),
    () =>
      new client.Counter({
        name: name(METRIC_NAMES.jobs),
        help: 'Jobs ended, by provider and outcome (completed, failed, cancelled, timed_out).',
        labelNames: ['provider', 'outcome'] as const,
        registers,
      }),
  );
  const retries = register(
    name(METRIC_NAMES.retries),
    () =>
      new client.Counter({
        name: name(METRIC_NAMES.retries),
        help: 'Failed attempts on a provider after which the job was sent elsewhere, by the failing provider.',
        labelNames: ['provider'] as const,
        registers,
      }),
  );
  const cost = register(
    name(METRIC_NAMES.cost),
    () =>
      new client.Counter({
        name: name(METRIC_NAMES.cost),
        help: 'USD spent on completed jobs, by provider.',
        labelNames: ['provider'] as const,
        registers,
      }),
  );
  const collectLoad = (set: (provider: string, value: { queueDepth: number; inFlight: number }) => void) => {
    for (const dispatcher of attached.keys()) {
      if (dispatcher.metrics === undefined) continue;
      const snapshot = dispatcher.metrics();
      let assigned = 0;
      for (const [providerId, load] of Object.entries(snapshot.providers)) {
        assigned += load.queueDepth;
        set(providers.of(providerId), load);
      }
      set('unassigned', { queueDepth: Math.max(0, snapshot.demand.queueDepth - assigned), inFlight: 0 });
    }
  };
  const queueDepth: PromClient.Gauge<'provider'> = register(
    name(METRIC_NAMES.queueDepth),
    () =>
      new client.Gauge({
        name: name(METRIC_NAMES.queueDepth),
        help: 'Jobs waiting, by provider ("unassigned": accepted, not yet routed). Read on each scrape.',
        labelNames: ['provider'] as const,
        registers,
        collect() {
          queueDepth.reset();
          collectLoad((provider, load) => queueDepth.inc({ provider }, load.queueDepth));
        },
      }),
  );
  const inFlight: PromClient.Gauge<'provider'> = register(
    name(METRIC_NAMES.inFlight),
    () =>
      new client.Gauge({
        name: name(METRIC_NAMES.inFlight),
        help: 'Jobs running, by provider. Read on each scrape.',
        labelNames: ['provider'] as const,
        registers,
        collect() {
          inFlight.reset();
          collectLoad((provider, load) => {
            if (provider !== 'unassigned') inFlight.inc({ provider }, load.inFlight);
          });
        },
      }),
  );
  const gpuUtilization = register(
    name(METRIC_NAMES.gpuUtilization),
    () =>
      new client.Gauge({
        name: name(METRIC_NAMES.gpuUtilization),
        help: 'Busy workers / (busy + idle workers), 0..1, by provider, from its last health reading; absent while it has no workers.',
        labelNames: ['provider'] as const,
        registers,
      }),
  );
  const cacheHits = register(
    name(METRIC_NAMES.modelCacheHits),
    () =>
      new client.Counter({
        name: name(METRIC_NAMES.modelCacheHits),
        help: 'Model loads served from the cache, by ComfyUI folder.',
        labelNames: ['folder'] as const,
        registers,
      }),
  );
  const cacheMisses = register(
    name(METRIC_NAMES.modelCacheMisses),
    () =>
      new client.Counter({
        name: name(METRIC_NAMES.modelCacheMisses),
        help: 'Model loads that had to fetch the model, by ComfyUI folder.',
        labelNames: ['folder'] as const,
        registers,
      }),
  );
  const apiDuration = register(
    name(METRIC_NAMES.apiRequestDuration),
    () =>
      new client.Histogram({
        name: name(METRIC_NAMES.apiRequestDuration),
        help: 'Seconds of each call to a provider, by provider, call (submit, cancel, health, lookup) and outcome.',
        labelNames: ['provider', 'call', 'outcome'] as const,
        buckets: buckets.apiSeconds,
        registers,
      }),
  );
  const startupDuration = register(
    name(METRIC_NAMES.containerStartupDuration),
    () =>
      new client.Histogram({
        name: name(METRIC_NAMES.containerStartupDuration),
        help: 'Seconds a platform spent starting a worker for a job (cold starts only), by provider.',
        labelNames: ['provider'] as const,
        buckets: buckets.startupSeconds,
        registers,
      }),
  );

  function attach(dispatcher: ObservedDispatcher): () => void {
    if (!isObservedDispatcher(dispatcher)) {
      throw new InvalidArgumentError({
        argument: 'dispatcher',
        message: 'attach takes a dispatcher (an object with "events" from createDispatcher).',
      });
    }
    const existing = attached.get(dispatcher);
    if (existing !== undefined) return existing;
    const tracked = new BoundedMap<string, TrackedJob>(TRACKED_JOBS);
    const track = (jobId: string): TrackedJob => {
      let job = tracked.get(jobId);
      if (job === undefined) {
        job = { queuedAt: undefined, providerId: undefined, started: false };
        tracked.set(jobId, job);
      }
      return job;
    };
    const observeWait = (job: TrackedJob, at: number, providerId: string | undefined) => {
      if (job.started || job.queuedAt === undefined) return;
      job.started = true;
      queueWait.observe({ provider: providers.of(providerId) }, Math.max(0, at - job.queuedAt) / 1000);
    };
    const end = (event: Extract<JobEvent, { type: 'completed' | 'failed' | 'cancelled' | 'timed_out' }>) => {
      const job = tracked.get(event.jobId) ?? { queuedAt: undefined, providerId: undefined, started: true };
      tracked.delete(event.jobId);
      let providerId = job.providerId;
      if (event.type === 'completed') providerId = event.result.providerId;
      else if (event.type === 'failed') providerId = event.error.providerId ?? providerId;
      observeWait(job, event.at, providerId);
      jobs.inc({ provider: providers.of(providerId), outcome: event.type });
      if (event.type === 'completed') {
        const provider = providers.of(event.result.providerId);
        executionDuration.observe({ provider }, Math.max(0, event.result.timing.executionMs) / 1000);
        if (event.result.cost.usd > 0) cost.inc({ provider }, event.result.cost.usd);
      }
    };
    const unsubscribe = subscribe(dispatcher, {
      'job:queued': (event: Extract<JobEvent, { type: 'queued' }>) => {
        track(event.jobId).queuedAt = event.at;
      },
      'job:routed': (event: Extract<JobEvent, { type: 'routed' }>) => {
        track(event.jobId).providerId = event.providerId;
      },
      'job:submitted': (event: Extract<JobEvent, { type: 'submitted' }>) => {
        track(event.jobId).providerId = event.providerId;
      },
      'job:started': (event: Extract<JobEvent, { type: 'started' }>) => {
        const job = track(event.jobId);
        job.providerId = event.providerId;
        observeWait(job, event.at, event.providerId);
        if (event.coldStartMs !== undefined && event.coldStartMs > 0) {
          startupDuration.observe({ provider: providers.of(event.providerId) }, event.coldStartMs / 1000);
        }
      },
      'job:retrying': (event: Extract<JobEvent, { type: 'retrying' }>) => {
        retries.inc({ provider: providers.of(event.providerId) });
        const job = track(event.jobId);
        job.providerId = event.nextProviderId;
        // A job re-run after it had started waits again; its first wait was already counted.
      },
      'job:completed': end,
      'job:failed': end,
      'job:cancelled': end,
      'job:timed_out': end,
      'provider:health': (event: DispatcherEventPayload<'provider:health'>) => {
        const busy = event.health.busyWorkers ?? 0;
        const idle = event.health.idleWorkers ?? 0;
        const provider = providers.of(event.providerId);
        if (busy + idle > 0) gpuUtilization.set({ provider }, busy / (busy + idle));
        else gpuUtilization.remove({ provider });
      },
      'provider:call': (event: DispatcherEventPayload<'provider:call'>) => {
        apiDuration.observe(
          {
            provider: providers.of(event.providerId),
            call: event.call,
            outcome: event.ok ? 'success' : 'error',
          },
          Math.max(0, event.durationMs) / 1000,
        );
      },
    });
    const detach = () => {
      if (!attached.has(dispatcher)) return;
      unsubscribe();
      attached.delete(dispatcher);
      tracked.clear();
    };
    attached.set(dispatcher, detach);
    return detach;
  }

  return {
    registry,
    attach,
    recordModelCache(hit, folder) {
      const label = { folder: folders.of(folder, 'unknown') };
      if (hit) cacheHits.inc(label);
      else cacheMisses.inc(label);
    },
    metrics: () => registry.metrics(),
    get contentType() {
      return registry.contentType;
    },
  };
}
