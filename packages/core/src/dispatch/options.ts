import type { Clock } from '../spec/clock';
import { InvalidArgumentError, UnsupportedSpecificationError } from '../spec/errors';
import type { JobJournalV1 } from '../spec/job-journal-v1';
import type { ProviderV1 } from '../spec/provider-v1';
import type { LoggerLike } from '../telemetry/json-logger';
import { safeDescribe } from '../util/gpu';
import type { CircuitBreakerOptions } from './breaker';
import type { RegionPreference, RouteDecision, RouteRequest } from './router';

/** How the dispatcher retries. */
export interface DispatcherRetryOptions {
  /** Retries of a retryable submission error on the same provider before moving to the next. @default 3 */
  submitRetries?: number;
  /** Times a broken watch (network, outage) is resumed on the same job before giving up. @default 8 */
  watchRetries?: number;
  /** First backoff delay, ms. @default 500 */
  minDelayMs?: number;
  /** Largest backoff delay, ms. @default 30000 */
  maxDelayMs?: number;
  /**
   * Run a job again elsewhere after it had started executing, when its error is retryable.
   * Off by default: a started job may have done paid work or side effects. @default false
   */
  rerunAfterStart?: boolean;
  /** Most submissions of one job across all providers. @default 4 */
  maxAttempts?: number;
  /** Random numbers in [0, 1) for jitter; inject for reproducible runs. @default Math.random */
  random?: () => number;
}

/** How the dispatcher routes. */
export interface DispatcherRouterOptions {
  /** Default latency budget per job, ms (a job's own `latencyBudgetMs` wins). */
  latencyBudgetMs?: number;
  /** Default preferred region (a job's own `region` wins). */
  preferRegion?: string;
  /** Region tiers: primary, secondaries to spill to, disaster recovery last. */
  regions?: RegionPreference;
  /** Circuit breaker settings shared by every provider. */
  breaker?: CircuitBreakerOptions;
  /** How long a health reading is trusted before it is refreshed in the background, ms. @default 10000 */
  healthTtlMs?: number;
  /** Execution time assumed before any job has been measured, ms. @default 30000 */
  defaultExecutionMs?: number;
  /** Cold start assumed for providers that do not say, ms. @default 20000 */
  defaultColdStartMs?: number;
  /**
   * Download speed assumed for models a provider's image lacks, bytes per second: the
   * router adds the time to load them to that provider's expected wait. @default 100e6
   */
  modelBandwidthBytesPerSecond?: number;
  /** Replaces the ranking function (it must stay pure). @default routeJob */
  route?: (request: RouteRequest) => RouteDecision;
}

/** Options of `createDispatcher`. */
export interface DispatcherOptions {
  /** Where jobs can run, in no particular order: the router ranks them per job. */
  providers: ProviderV1[];
  /** Where jobs are recorded before anything leaves the process. @default createMemoryJournal() */
  journal?: JobJournalV1;
  router?: DispatcherRouterOptions;
  concurrency?: {
    /** Jobs admitted at once across all providers. @default 1000 */
    global?: number;
    /** Jobs at once per provider: one number for all, or by provider id. @default the provider's limits.maxConcurrency, else unbounded */
    perProvider?: number | Record<string, number>;
  };
  retry?: DispatcherRetryOptions;
  /** Time source for deadlines, backoff and metrics. @default the system clock */
  clock?: Clock;
  /** Deadline for jobs that set none, ms. @default none */
  defaultTimeoutMs?: number;
  /** This process's name in a shared journal's ownership claims. @default a random id */
  owner?: string;
  /**
   * How long this process's claim on a job lasts without renewal, ms, in journals that
   * track ownership (claims are renewed at a third of it while the job runs). @default 30000
   */
  claimTtlMs?: number;
  /**
   * Calls `resume()` this often, ms, so that jobs whose owner died are taken over by this
   * process. Use it with a journal shared by many processes. @default off
   */
  takeOverIntervalMs?: number;
  /**
   * What to do on resume with a job that was being sent when its process died, on a
   * provider that cannot look jobs up (`doLookup`): `'fail'` ends it with
   * `SubmissionUnknownError` (never a second execution); `'resubmit'` sends it again
   * (never lost, but it may run twice). @default 'fail'
   */
  onUnknownSubmission?: 'fail' | 'resubmit';
  /** A pino-compatible logger: every job's life is logged as JSON lines (see docs/operations.md). */
  logger?: LoggerLike;
  /** The `service` field of log lines. @default 'comfy-serverless' */
  service?: string;
  /** Values (API keys, tokens) removed from every log line, on top of signatures and bearer tokens. */
  secrets?: readonly string[];
}

function fail(argument: string, expected: string, received: unknown): never {
  throw new InvalidArgumentError({
    argument,
    message: `Option "${argument}" must be ${expected}; got ${safeDescribe(received)}.`,
  });
}

function checkCount(argument: string, value: unknown, allowZero: boolean, allowInfinity: boolean): void {
  if (value === undefined) return;
  const ok =
    typeof value === 'number' &&
    ((allowInfinity && value === Number.POSITIVE_INFINITY) ||
      (Number.isInteger(value) && (allowZero ? value >= 0 : value >= 1)));
  if (!ok)
    fail(
      argument,
      `a whole number ${allowZero ? '>= 0' : '>= 1'}${allowInfinity ? ' or Infinity' : ''}`,
      value,
    );
}

/** Checks every option at once and throws `InvalidArgumentError` naming the first bad one. */
export function validateDispatcherOptions(options: DispatcherOptions): void {
  if (options === null || typeof options !== 'object') fail('options', 'an object with "providers"', options);
  const { providers } = options;
  if (!Array.isArray(providers) || providers.length === 0) {
    fail(
      'providers',
      'a non-empty array of providers (createRunpod(...), createSelfHosted(...), ...)',
      providers,
    );
  }
  const ids = new Set<string>();
  providers.forEach((provider, index) => {
    if (provider === null || typeof provider !== 'object')
      fail(`providers[${index}]`, 'a provider object', provider);
    if (provider.specificationVersion !== 'v1') {
      throw new UnsupportedSpecificationError({
        message: `Provider ${String(provider.id ?? index)} implements spec version "${String(provider.specificationVersion)}", but this dispatcher supports "v1". Install matching versions of @comfy-serverless/core and the adapter.`,
      });
    }
    if (typeof provider.id !== 'string' || provider.id === '')
      fail(`providers[${index}].id`, 'a non-empty string', provider.id);
    if (ids.has(provider.id))
      fail(`providers[${index}].id`, `unique among providers ("${provider.id}" appears twice)`, provider.id);
    ids.add(provider.id);
    for (const method of ['doSubmit', 'doWatch', 'doCancel', 'doHealth'] as const) {
      if (typeof provider[method] !== 'function')
        fail(`providers[${index}].${method}`, 'a function', provider[method]);
    }
    if (!(provider.gpu && typeof provider.gpu.vramGb === 'number' && provider.gpu.vramGb > 0)) {
      fail(`providers[${index}].gpu`, '{ type, vramGb > 0 }', provider.gpu);
    }
    if (
      !(
        provider.pricing &&
        typeof provider.pricing.usdPerSecond === 'number' &&
        provider.pricing.usdPerSecond >= 0
      )
    ) {
      fail(`providers[${index}].pricing`, '{ usdPerSecond >= 0 }', provider.pricing);
    }
  });
  if (options.journal !== undefined) {
    if (options.journal === null || typeof options.journal !== 'object')
      fail('journal', 'a JobJournalV1', options.journal);
    if (options.journal.specificationVersion !== 'v1') {
      throw new UnsupportedSpecificationError({
        message: `The journal implements spec version "${String(options.journal.specificationVersion)}", but this dispatcher supports "v1".`,
      });
    }
  }
  checkCount('concurrency.global', options.concurrency?.global, false, true);
  const perProvider = options.concurrency?.perProvider;
  if (typeof perProvider === 'object' && perProvider !== null) {
    for (const [id, value] of Object.entries(perProvider)) {
      if (!ids.has(id))
        fail(`concurrency.perProvider.${id}`, `the id of one of the providers (${[...ids].join(', ')})`, id);
      checkCount(`concurrency.perProvider.${id}`, value, false, true);
    }
  } else {
    checkCount('concurrency.perProvider', perProvider, false, true);
  }
  const retry = options.retry ?? {};
  checkCount('retry.submitRetries', retry.submitRetries, true, false);
  checkCount('retry.watchRetries', retry.watchRetries, true, false);
  checkCount('retry.maxAttempts', retry.maxAttempts, false, false);
  checkCount('retry.minDelayMs', retry.minDelayMs, true, false);
  checkCount('retry.maxDelayMs', retry.maxDelayMs, true, false);
  checkCount('defaultTimeoutMs', options.defaultTimeoutMs, false, false);
  checkCount('claimTtlMs', options.claimTtlMs, false, false);
  checkCount('takeOverIntervalMs', options.takeOverIntervalMs, false, false);
  if (
    options.onUnknownSubmission !== undefined &&
    !['fail', 'resubmit'].includes(options.onUnknownSubmission)
  ) {
    fail('onUnknownSubmission', '"fail" or "resubmit"', options.onUnknownSubmission);
  }
  checkCount('router.latencyBudgetMs', options.router?.latencyBudgetMs, false, false);
  const bandwidth = options.router?.modelBandwidthBytesPerSecond;
  if (bandwidth !== undefined && !(typeof bandwidth === 'number' && bandwidth > 0)) {
    fail('router.modelBandwidthBytesPerSecond', 'a number of bytes per second > 0', bandwidth);
  }
  checkCount('router.healthTtlMs', options.router?.healthTtlMs, true, false);
  checkCount('router.breaker.failureThreshold', options.router?.breaker?.failureThreshold, false, false);
  checkCount('router.breaker.cooldownMs', options.router?.breaker?.cooldownMs, true, false);
  const clock = options.clock;
  if (
    clock !== undefined &&
    (typeof clock.now !== 'function' ||
      typeof clock.setTimeout !== 'function' ||
      typeof clock.clearTimeout !== 'function')
  ) {
    fail('clock', 'an object with now(), setTimeout() and clearTimeout()', clock);
  }
}
