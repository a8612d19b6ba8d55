import type { Clock } from '../spec/clock';
import { InvalidArgumentError } from '../spec/errors';
import type { JobResult } from '../spec/job';
import { systemClock } from '../util/clock';
import type { ModelCacheRecorder } from './model-cache-hook';
import { isObservedDispatcher, type ObservedDispatcher, subscribe } from './observed-dispatcher';
import { redactSecrets } from './redact';
import { BoundedMap, quantileOfSorted, RingBuffer } from './ring-buffer';

/** Options of `createPerformanceReport`. */
export interface PerformanceReportOptions {
  /** @default the system clock (pass the dispatcher's clock) */
  clock?: Clock;
  /** The period a report covers when it is not told, ms. @default 900000 (15 minutes) */
  windowMs?: number;
  /** Most recent jobs (and as many provider attempts and model lookups) kept for reports. @default 10000 */
  capacity?: number;
  /** Values removed from the bottleneck's message (API keys). */
  secrets?: readonly string[];
}

/** What `report()` covers. */
export interface PerformanceReportQuery {
  /** Epoch ms: jobs that ended at or after it count. @default now minus `windowMs` */
  sinceMs?: number;
  /** The last this many ms (used when `sinceMs` is not given). @default the collector's `windowMs` */
  windowMs?: number;
}

/** Three latency quantiles, ms. */
export interface LatencyQuantiles {
  p50: number;
  p95: number;
  p99: number;
}

/** One provider's attempts and how many of them failed. */
export interface ProviderErrorRate {
  attempts: number;
  errors: number;
  /** errors / attempts, 0..1. */
  errorRate: number;
}

/** The kinds of bottleneck a report can name. */
export type BottleneckKind = 'queue_wait' | 'cold_start' | 'execution' | 'provider_errors' | 'model_cache';

/** The largest bottleneck of a period, and why. */
export interface Bottleneck {
  kind: BottleneckKind;
  /** The provider concerned, for `provider_errors`. */
  providerId?: string;
  /** How large it is, 0..1: a share of job latency, or a weighted error or miss rate (see docs/operations.md). */
  score: number;
  /** A sentence saying what dominates and what to do. */
  message: string;
}

/** Key performance indicators of a period. */
export interface PerformanceKpis {
  /** Epoch ms the period starts (not before the collector was attached). */
  since: number;
  /** Epoch ms the period ends (now). */
  until: number;
  jobs: { ended: number; completed: number; failed: number; cancelled: number; timedOut: number };
  /** Completed jobs per minute over the period. */
  throughputPerMinute: number;
  /** End-to-end latency of completed jobs (acceptance to result), ms. */
  latencyMs: LatencyQuantiles | undefined;
  /** Acceptance until execution started, ms (completed jobs). */
  queueWaitMs: LatencyQuantiles | undefined;
  /** Execution time, ms (completed jobs). */
  executionMs: LatencyQuantiles | undefined;
  totalCostUsd: number;
  /** Mean cost of a completed job, USD. */
  costPerJobUsd: number | undefined;
  /** Share of completed jobs that waited for a worker to start (0..1). */
  coldStartShare: number | undefined;
  /** Model-cache hits / lookups (0..1), when the model loader reports them. */
  cacheHitRate: number | undefined;
  /** Failed and timed-out jobs / jobs that ended other than by cancellation (0..1). */
  errorRate: number | undefined;
  /** Per provider: attempts sent to it and how many failed there (moved elsewhere or ended the job). */
  errorRateByProvider: Record<string, ProviderErrorRate>;
  /** The largest bottleneck, or undefined when no job ended in the period. */
  bottleneck: Bottleneck | undefined;
}

/** Collects KPIs from a dispatcher's events in constant memory. */
export interface PerformanceReport extends ModelCacheRecorder {
  /** KPIs over a period (the last `windowMs` by default). */
  report(query?: PerformanceReportQuery): PerformanceKpis;
  /** Counts one model lookup as a cache hit or miss (see `instrumentModelLoader`). */
  recordModelCache(hit: boolean, folder?: string): void;
  /** Stops collecting. */
  detach(): void;
}

interface JobSample {
  at: number;
  outcome: 'completed' | 'failed' | 'cancelled' | 'timed_out';
  totalMs: number;
  queuedMs: number;
  coldStartMs: number;
  executionMs: number;
  usd: number;
}

interface AttemptSample {
  at: number;
  providerId: string;
  ok: boolean;
}

interface CacheSample {
  at: number;
  hit: boolean;
}

/** What the report is told of each job as it ends (by events, or by the dispatcher itself). */
export interface JobLedger {
  completed(at: number, result: JobResult): void;
  /** An attempt on `providerId` that failed (the job moved on or ended). */
  attemptFailed(at: number, providerId: string): void;
  ended(at: number, outcome: 'failed' | 'timed_out' | 'cancelled', queuedAt: number | undefined): void;
}

interface OpenJob {
  queuedAt: number | undefined;
  /** The provider of the attempt in progress. */
  providerId: string | undefined;
}

/** An error rate of r weighs like a share of latency of min(1, r * ERROR_WEIGHT) when naming the bottleneck. */
const ERROR_WEIGHT = 4;
/** A miss rate of m weighs like a share of latency of m * MISS_WEIGHT. */
const MISS_WEIGHT = 0.6;
/** Execution is the work itself, not overhead: it is named only when it weighs twice what any other does. */
const EXECUTION_WEIGHT = 0.5;
/** Fewest attempts on a provider before its error rate is judged. */
const MIN_ATTEMPTS = 3;
/** Fewest model lookups before the cache hit rate is judged. */
const MIN_LOOKUPS = 5;

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!(Number.isInteger(value) && value > 0)) {
    throw new InvalidArgumentError({
      argument: name,
      message: `"${name}" must be a positive whole number; got ${String(value)}.`,
    });
  }
  return value;
}

const percent = (share: number) => `${Math.round(share * 100)} %`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

function quantiles(values: number[]): LatencyQuantiles | undefined {
  if (values.length === 0) return undefined;
  const sorted = values.sort((a, b) => a - b);
  return {
    p50: quantileOfSorted(sorted, 0.5)!,
    p95: quantileOfSorted(sorted, 0.95)!,
    p99: quantileOfSorted(sorted, 0.99)!,
  };
}

/**
 * Collects a dispatcher's job events into a bounded ring and reports KPIs on demand:
 * throughput, latency quantiles, cost per job, cold-start share, cache hit rate, error
 * rate by provider, and the largest bottleneck with a sentence on what to do. Each job
 * costs a few numbers; memory stays fixed at `capacity` jobs.
 *
 * @example
 * const performance = createPerformanceReport(dispatcher);
 * // ... later
 * const kpis = performance.report({ sinceMs: Date.now() - 60 * 60_000 });
 * console.log(kpis.bottleneck?.message);
 */
export function createPerformanceReport(
  dispatcher: ObservedDispatcher,
  options: PerformanceReportOptions = {},
): PerformanceReport {
  const { ledger: _ledger, ...report } = collectPerformance(dispatcher, options, false);
  return report;
}

/**
 * `createPerformanceReport` with its ledger: the dispatcher's own report is fed by the
 * dispatcher directly (`fedDirectly`), which keeps no per-job state in the report.
 * Internal to the package.
 */
export function collectPerformance(
  dispatcher: ObservedDispatcher,
  options: PerformanceReportOptions,
  fedDirectly: boolean,
): PerformanceReport & { ledger: JobLedger } {
  if (!isObservedDispatcher(dispatcher)) {
    throw new InvalidArgumentError({
      argument: 'dispatcher',
      message: 'createPerformanceReport takes a dispatcher (an object with "events" from createDispatcher).',
    });
  }
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError({
      argument: 'options',
      message: `createPerformanceReport takes an options object; got ${String(options)}.`,
    });
  }
  if (options.clock !== undefined && typeof options.clock?.now !== 'function') {
    throw new InvalidArgumentError({ argument: 'clock', message: '"clock" must have a now() method.' });
  }
  const clock = options.clock ?? systemClock;
  const windowMs = positiveInteger('windowMs', options.windowMs, 15 * 60_000);
  const capacity = positiveInteger('capacity', options.capacity, 10_000);
  const secrets = (options.secrets ?? []).filter((secret): secret is string => typeof secret === 'string');
  const attachedAt = clock.now();
  const jobs = new RingBuffer<JobSample>(capacity);
  const attempts = new RingBuffer<AttemptSample>(capacity);
  const lookups = new RingBuffer<CacheSample>(capacity);
  const open = new BoundedMap<string, OpenJob>(capacity * 10);

  const ledger: JobLedger = {
    completed(at, result) {
      const { timing, cost, providerId } = result;
      attempts.push({ at, providerId, ok: true });
      jobs.push({
        at,
        outcome: 'completed',
        totalMs: timing.totalMs,
        queuedMs: timing.queuedMs,
        coldStartMs: timing.coldStartMs ?? 0,
        executionMs: timing.executionMs,
        usd: cost.usd,
      });
    },
    attemptFailed(at, providerId) {
      attempts.push({ at, providerId, ok: false });
    },
    ended(at, outcome, queuedAt) {
      jobs.push(endSample(at, outcome, queuedAt));
    },
  };

  const openJob = (jobId: string): OpenJob => {
    let job = open.get(jobId);
    if (job === undefined) {
      job = { queuedAt: undefined, providerId: undefined };
      open.set(jobId, job);
    }
    return job;
  };
  const endAttempt = (job: OpenJob, at: number, providerId = job.providerId) => {
    if (providerId !== undefined) ledger.attemptFailed(at, providerId);
    job.providerId = undefined;
  };

  const detach = fedDirectly
    ? () => {}
    : subscribe(dispatcher, {
        'job:queued': (event) => {
          openJob(event.jobId).queuedAt = event.at;
        },
        'job:routed': (event) => {
          openJob(event.jobId).providerId = event.providerId;
        },
        'job:retrying': (event) => {
          endAttempt(openJob(event.jobId), event.at, event.providerId);
        },
        'job:completed': (event) => {
          open.delete(event.jobId);
          ledger.completed(event.at, event.result);
        },
        'job:failed': (event) => {
          const job = open.get(event.jobId) ?? { queuedAt: undefined, providerId: undefined };
          open.delete(event.jobId);
          endAttempt(job, event.at, job.providerId ?? event.error.providerId);
          ledger.ended(event.at, 'failed', job.queuedAt);
        },
        'job:timed_out': (event) => {
          const job = open.get(event.jobId) ?? { queuedAt: undefined, providerId: undefined };
          open.delete(event.jobId);
          endAttempt(job, event.at);
          ledger.ended(event.at, 'timed_out', job.queuedAt);
        },
        'job:cancelled': (event) => {
          const job = open.get(event.jobId) ?? { queuedAt: undefined, providerId: undefined };
          open.delete(event.jobId);
          ledger.ended(event.at, 'cancelled', job.queuedAt);
        },
      });

  function report(query: PerformanceReportQuery = {}): PerformanceKpis {
    if (query === null || typeof query !== 'object') {
      throw new InvalidArgumentError({
        argument: 'query',
        message: `report takes { sinceMs?, windowMs? }; got ${String(query)}.`,
      });
    }
    if (query.sinceMs !== undefined && !Number.isFinite(query.sinceMs)) {
      throw new InvalidArgumentError({
        argument: 'sinceMs',
        message: `"sinceMs" must be an epoch time in ms; got ${String(query.sinceMs)}.`,
      });
    }
    if (query.windowMs !== undefined && !(Number.isFinite(query.windowMs) && query.windowMs > 0)) {
      throw new InvalidArgumentError({
        argument: 'windowMs',
        message: `"windowMs" must be a positive number of ms; got ${String(query.windowMs)}.`,
      });
    }
    const until = clock.now();
    const since = Math.max(attachedAt, query.sinceMs ?? until - (query.windowMs ?? windowMs));
    const counts = { ended: 0, completed: 0, failed: 0, cancelled: 0, timedOut: 0 };
    const latency: number[] = [];
    const waits: number[] = [];
    const executions: number[] = [];
    let totalCostUsd = 0;
    let coldStarts = 0;
    let sumTotal = 0;
    let sumCold = 0;
    let sumQueue = 0;
    let sumExecution = 0;
    for (const job of jobs) {
      if (job.at < since || job.at > until) continue;
      counts.ended += 1;
      if (job.outcome === 'failed') counts.failed += 1;
      else if (job.outcome === 'cancelled') counts.cancelled += 1;
      else if (job.outcome === 'timed_out') counts.timedOut += 1;
      if (job.outcome !== 'completed') continue;
      counts.completed += 1;
      latency.push(job.totalMs);
      waits.push(job.queuedMs);
      executions.push(job.executionMs);
      totalCostUsd += job.usd;
      if (job.coldStartMs > 0) coldStarts += 1;
      sumTotal += job.totalMs;
      sumCold += Math.min(job.coldStartMs, job.queuedMs);
      sumQueue += Math.max(0, job.queuedMs - job.coldStartMs);
      sumExecution += job.executionMs;
    }
    const errorRateByProvider: Record<string, ProviderErrorRate> = {};
    for (const attempt of attempts) {
      if (attempt.at < since || attempt.at > until) continue;
      const entry = (errorRateByProvider[attempt.providerId] ??= { attempts: 0, errors: 0, errorRate: 0 });
      entry.attempts += 1;
      if (!attempt.ok) entry.errors += 1;
    }
    for (const entry of Object.values(errorRateByProvider)) entry.errorRate = entry.errors / entry.attempts;
    let hits = 0;
    let lookupCount = 0;
    for (const lookup of lookups) {
      if (lookup.at < since || lookup.at > until) continue;
      lookupCount += 1;
      if (lookup.hit) hits += 1;
    }
    const judged = counts.ended - counts.cancelled;
    const minutes = Math.max(until - since, 1) / 60_000;
    const kpis: PerformanceKpis = {
      since,
      until,
      jobs: counts,
      throughputPerMinute: counts.completed / minutes,
      latencyMs: quantiles(latency),
      queueWaitMs: quantiles(waits),
      executionMs: quantiles(executions),
      totalCostUsd,
      costPerJobUsd: counts.completed === 0 ? undefined : totalCostUsd / counts.completed,
      coldStartShare: counts.completed === 0 ? undefined : coldStarts / counts.completed,
      cacheHitRate: lookupCount === 0 ? undefined : hits / lookupCount,
      errorRate: judged === 0 ? undefined : (counts.failed + counts.timedOut) / judged,
      errorRateByProvider,
      bottleneck: undefined,
    };
    const bottleneck = findBottleneck(kpis, {
      total: sumTotal,
      cold: sumCold,
      queue: sumQueue,
      execution: sumExecution,
      lookups: lookupCount,
    });
    kpis.bottleneck =
      bottleneck === undefined
        ? undefined
        : { ...bottleneck, message: redactSecrets(bottleneck.message, secrets) };
    return kpis;
  }

  return {
    report,
    ledger,
    recordModelCache(hit) {
      lookups.push({ at: clock.now(), hit: Boolean(hit) });
    },
    detach() {
      detach();
      open.clear();
    },
  };
}

function endSample(at: number, outcome: JobSample['outcome'], queuedAt: number | undefined): JobSample {
  const totalMs = queuedAt === undefined ? 0 : Math.max(0, at - queuedAt);
  return { at, outcome, totalMs, queuedMs: totalMs, coldStartMs: 0, executionMs: 0, usd: 0 };
}

function findBottleneck(
  kpis: PerformanceKpis,
  sums: { total: number; cold: number; queue: number; execution: number; lookups: number },
): Bottleneck | undefined {
  if (kpis.jobs.ended === 0) return undefined;
  const candidates: Bottleneck[] = [];
  if (sums.total > 0) {
    const queueShare = sums.queue / sums.total;
    const coldShare = sums.cold / sums.total;
    const executionShare = sums.execution / sums.total;
    candidates.push({
      kind: 'queue_wait',
      score: queueShare,
      message: `Queue wait is ${percent(queueShare)} of job latency (p95 wait ${seconds(kpis.queueWaitMs?.p95 ?? 0)}): jobs wait for a free worker or a concurrency slot. Raise the providers' maximum workers or the dispatcher's concurrency, or add a provider.`,
    });
    candidates.push({
      kind: 'cold_start',
      score: coldShare,
      message: `Cold starts are ${percent(coldShare)} of job latency and ${percent(kpis.coldStartShare ?? 0)} of jobs waited for a worker to start. Keep workers warm (a minimum above zero, a longer idle timeout), or shrink the image or load models from a warm cache.`,
    });
    candidates.push({
      kind: 'execution',
      score: executionShare * EXECUTION_WEIGHT,
      message: `Execution is ${percent(executionShare)} of job latency (p95 ${seconds(kpis.executionMs?.p95 ?? 0)}): the GPU work itself dominates, not the overhead around it. A faster GPU, fewer steps or a lighter workflow is what shortens jobs.`,
    });
  }
  let worst: [string, ProviderErrorRate] | undefined;
  for (const entry of Object.entries(kpis.errorRateByProvider)) {
    if (entry[1].attempts < MIN_ATTEMPTS || entry[1].errors === 0) continue;
    if (worst === undefined || entry[1].errorRate > worst[1].errorRate) worst = entry;
  }
  if (worst !== undefined) {
    const [providerId, rate] = worst;
    candidates.push({
      kind: 'provider_errors',
      providerId,
      score: Math.min(1, rate.errorRate * ERROR_WEIGHT),
      message: `Provider ${providerId} failed ${rate.errors} of ${rate.attempts} attempts (${percent(rate.errorRate)}): jobs sent there are retried elsewhere or fail. Check its health and logs, fix or remove it, or lower its share of traffic.`,
    });
  } else if (sums.total === 0 && kpis.errorRate !== undefined && kpis.errorRate > 0) {
    candidates.push({
      kind: 'provider_errors',
      score: Math.min(1, kpis.errorRate * ERROR_WEIGHT),
      message: `${percent(kpis.errorRate)} of jobs failed before any completed: look at the errors in the logs (a missing model, bad credentials, no provider that fits).`,
    });
  }
  if (kpis.cacheHitRate !== undefined && sums.lookups >= MIN_LOOKUPS && kpis.cacheHitRate < 1) {
    const missRate = 1 - kpis.cacheHitRate;
    candidates.push({
      kind: 'model_cache',
      score: missRate * MISS_WEIGHT,
      message: `Only ${percent(kpis.cacheHitRate)} of model loads hit the cache: workers download models before running. Bake the common models into the image, enlarge the cache, or route jobs to workers that have their models.`,
    });
  }
  let best: Bottleneck | undefined;
  for (const candidate of candidates)
    if (best === undefined || candidate.score > best.score) best = candidate;
  return best;
}

/**
 * The report as a few lines of text, for a console or a log.
 *
 * @example
 * console.log(formatPerformanceReport(performance.report()));
 */
export function formatPerformanceReport(kpis: PerformanceKpis): string {
  const quantileText = (value: LatencyQuantiles | undefined) =>
    value === undefined
      ? 'n/a'
      : `p50 ${seconds(value.p50)}, p95 ${seconds(value.p95)}, p99 ${seconds(value.p99)}`;
  const share = (value: number | undefined) => (value === undefined ? 'n/a' : percent(value));
  const lines = [
    `jobs: ${kpis.jobs.completed} completed, ${kpis.jobs.failed} failed, ${kpis.jobs.timedOut} timed out, ${kpis.jobs.cancelled} cancelled (${kpis.throughputPerMinute.toFixed(2)} per minute)`,
    `latency: ${quantileText(kpis.latencyMs)}`,
    `queue wait: ${quantileText(kpis.queueWaitMs)}; execution: ${quantileText(kpis.executionMs)}`,
    `cost per job: ${kpis.costPerJobUsd === undefined ? 'n/a' : `$${kpis.costPerJobUsd.toFixed(4)}`}; cold-start share: ${share(kpis.coldStartShare)}; cache hit rate: ${share(kpis.cacheHitRate)}; error rate: ${share(kpis.errorRate)}`,
  ];
  for (const [providerId, rate] of Object.entries(kpis.errorRateByProvider)) {
    lines.push(
      `  ${providerId}: ${rate.errors}/${rate.attempts} attempts failed (${percent(rate.errorRate)})`,
    );
  }
  lines.push(
    `bottleneck: ${kpis.bottleneck === undefined ? 'none (no job ended)' : kpis.bottleneck.message}`,
  );
  return lines.join('\n');
}
