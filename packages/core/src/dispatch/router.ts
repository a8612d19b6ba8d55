import type { ModelRef } from '../spec/job';
import type { GpuSpec, ImageDescriptor, ProviderHealth, ProviderPricing } from '../spec/provider-v1';

/** What the router knows about one provider at the moment of routing. */
export interface RouteProviderSnapshot {
  id: string;
  gpu: GpuSpec;
  pricing: ProviderPricing;
  region?: string;
  image?: ImageDescriptor;
  /** Typical cold start in ms. */
  coldStartMs: number;
  /** Typical execution time of a job in ms (measured, or the provider's own figure). */
  expectedExecutionMs: number;
  /** Extra time to load models the image lacks, in ms (0 when it has them all). */
  modelLoadMs?: number;
  /** The last health reading, when there is one. */
  health?: ProviderHealth;
  /** Whether the provider's circuit breaker lets a job through. */
  available: boolean;
  /** Jobs of ours waiting for this provider (admitted but not started). */
  queued: number;
  /** Jobs of ours running on it. */
  inFlight: number;
  /** Our concurrency bound for it. */
  maxConcurrency: number;
  /** The largest request the platform takes, in bytes, when it has a limit. */
  maxPayloadBytes?: number;
}

/** What the router is asked. */
export interface RouteRequest {
  /** Estimated GPU memory the job needs, in GB. */
  vramGbEstimate?: number;
  /** Size of the request as sent (workflow and inline images), in bytes. */
  payloadBytes?: number;
  models?: ModelRef[];
  nodeTypes?: string[];
  /** Prefer providers whose total expected time is within this budget, in ms. */
  latencyBudgetMs?: number;
  /** The caller's region: its providers come first (it stands in for `regions.primary`). */
  preferRegion?: string;
  /** Region tiers: the primary first, then secondaries, other regions, and disaster recovery last. */
  regions?: RegionPreference;
  providers: RouteProviderSnapshot[];
}

/** Which regions to use first, next, and last. */
export interface RegionPreference {
  primary?: string;
  /** Spilled to, in order, when the primary's providers are unhealthy or saturated. */
  secondary?: string[];
  /** Used only when nothing else can take the job. */
  disasterRecovery?: string[];
}

/** One ranked candidate. */
export interface RouteCandidate {
  providerId: string;
  expectedWaitMs: number;
  expectedTotalMs: number;
  expectedCostUsd: number;
  withinBudget: boolean;
}

/** The router's answer: candidates best first (the fallback order), and why the others were left out. */
export interface RouteDecision {
  candidates: RouteCandidate[];
  rejected: Record<string, string>;
}

function modelKey(model: ModelRef): string {
  return `${model.folder ?? '?'}/${model.name.replace(/\\/g, '/')}`;
}

/** Why a provider cannot take the job, or undefined when it can. */
function rejection(request: RouteRequest, provider: RouteProviderSnapshot): string | undefined {
  const need = request.vramGbEstimate;
  const have = provider.gpu.vramGb * (provider.gpu.count ?? 1);
  if (need !== undefined && need > have) {
    return `needs about ${need.toFixed(1)} GB of GPU memory; ${provider.gpu.type} has ${have} GB`;
  }
  if (
    request.payloadBytes !== undefined &&
    provider.maxPayloadBytes !== undefined &&
    request.payloadBytes > provider.maxPayloadBytes
  ) {
    return `the request is ${request.payloadBytes} bytes, over its ${provider.maxPayloadBytes}-byte limit (send large inputs by URL)`;
  }
  if (!provider.available) return 'circuit open after repeated failures (cooling down)';
  if (provider.health?.status === 'unhealthy') {
    return `unhealthy${provider.health.message ? `: ${provider.health.message}` : ''}`;
  }
  const image = provider.image;
  if (image?.nodeTypes !== undefined && request.nodeTypes !== undefined) {
    const have = new Set(image.nodeTypes);
    const missing = request.nodeTypes.filter((type) => !have.has(type));
    if (missing.length > 0) return `image ${image.id} lacks node types ${missing.slice(0, 5).join(', ')}`;
  }
  if (image?.models !== undefined && image.canLoadModels === false && request.models !== undefined) {
    const have = new Set<string>();
    for (const [folder, names] of Object.entries(image.models)) {
      for (const name of names) have.add(`${folder}/${name.replace(/\\/g, '/')}`);
    }
    const missing = request.models.filter((model) => model.folder !== null && !have.has(modelKey(model)));
    if (missing.length > 0) {
      return `image ${image.id} lacks models ${missing
        .slice(0, 5)
        .map((model) => modelKey(model))
        .join(', ')} and cannot load them`;
    }
  }
  return undefined;
}

/**
 * Expected wait before the job starts executing on this provider: nothing when a worker
 * is idle for it, a cold start when the platform can add a worker, otherwise the time for
 * the jobs ahead of it to drain through the workers there are.
 */
export function expectedWaitMs(provider: RouteProviderSnapshot): number {
  const health = provider.health;
  const ahead = (health?.queued ?? 0) + provider.queued;
  const idle = health?.idleWorkers ?? 0;
  const load = provider.modelLoadMs ?? 0;
  if (ahead < idle) return load;
  if (health === undefined) return provider.coldStartMs + load;
  const workers = (health.busyWorkers ?? health.running ?? 0) + idle + (health.initializingWorkers ?? 0);
  const canGrow = health.maxWorkers === undefined || workers < health.maxWorkers;
  if (canGrow) return provider.coldStartMs + load;
  const perWorker = Math.ceil((ahead - idle + 1) / Math.max(1, workers));
  return perWorker * provider.expectedExecutionMs + load;
}

/**
 * Whether a provider has no room for another job now: our own bound for it is reached, or
 * the platform reports a queue, no idle worker, and no room to add one.
 */
export function isSaturated(provider: RouteProviderSnapshot): boolean {
  if (provider.queued + provider.inFlight >= provider.maxConcurrency) return true;
  const health = provider.health;
  if (health === undefined || health.maxWorkers === undefined) return false;
  const workers =
    (health.busyWorkers ?? health.running ?? 0) +
    (health.idleWorkers ?? 0) +
    (health.initializingWorkers ?? 0);
  return (
    (health.idleWorkers ?? 0) === 0 &&
    workers >= health.maxWorkers &&
    (health.queued ?? 0) + provider.queued > 0
  );
}

/**
 * The region tier of a provider, lower first: 0 the caller's region or the primary, 1 a
 * secondary (or a saturated primary, which spills after the secondaries), 2 any other
 * region, 3 disaster recovery.
 */
function regionTier(request: RouteRequest, provider: RouteProviderSnapshot): number {
  const primary = request.preferRegion ?? request.regions?.primary;
  const region = provider.region;
  if (region === undefined) return 2;
  if (request.regions?.disasterRecovery?.includes(region)) return 3;
  if (primary !== undefined && region === primary) return isSaturated(provider) ? 1.5 : 0;
  const secondary = request.regions?.secondary?.indexOf(region) ?? -1;
  if (secondary >= 0) return 1 + secondary / 1000;
  return 2;
}

/**
 * Ranks providers for one job: a pure function of the request and the snapshot.
 *
 * Providers that cannot take the job (GPU memory, open circuit, unhealthy, missing node
 * types, missing models they cannot load) are left out with a reason. The rest are ranked
 * by expected cost (price per second times expected wait plus execution, since serverless
 * platforms bill the cold start), cheapest first; with a latency budget, those expected to
 * finish within it come first, then the others by expected time. Ties go to the preferred
 * region, then to the shorter expected time, then to the provider's id (for stability).
 *
 * Regions come before all of that when the request names any: the caller's region (or the
 * primary) first, then the secondaries in order (a saturated primary spills after them),
 * then other regions, and disaster-recovery regions only when nothing else can take the job.
 */
export function routeJob(request: RouteRequest): RouteDecision {
  const rejected: Record<string, string> = {};
  const candidates: Array<RouteCandidate & { regionMatch: boolean; tier: number }> = [];
  for (const provider of request.providers) {
    const reason = rejection(request, provider);
    if (reason !== undefined) {
      rejected[provider.id] = reason;
      continue;
    }
    const waitMs = expectedWaitMs(provider);
    const totalMs = waitMs + provider.expectedExecutionMs;
    const costUsd = (provider.pricing.usdPerSecond * totalMs) / 1000;
    candidates.push({
      providerId: provider.id,
      expectedWaitMs: waitMs,
      expectedTotalMs: totalMs,
      expectedCostUsd: costUsd,
      withinBudget: request.latencyBudgetMs === undefined || totalMs <= request.latencyBudgetMs,
      regionMatch: request.preferRegion !== undefined && provider.region === request.preferRegion,
      tier: regionTier(request, provider),
    });
  }
  candidates.sort((a, b) => {
    if (a.tier !== b.tier) return a.tier - b.tier;
    if (a.withinBudget !== b.withinBudget) return a.withinBudget ? -1 : 1;
    if (!a.withinBudget)
      return a.expectedTotalMs - b.expectedTotalMs || a.providerId.localeCompare(b.providerId);
    const costDifference = a.expectedCostUsd - b.expectedCostUsd;
    // Costs within a thousandth of each other are equal for ranking purposes.
    if (Math.abs(costDifference) > 1e-3 * Math.max(a.expectedCostUsd, b.expectedCostUsd))
      return costDifference;
    if (a.regionMatch !== b.regionMatch) return a.regionMatch ? -1 : 1;
    return a.expectedTotalMs - b.expectedTotalMs || a.providerId.localeCompare(b.providerId);
  });
  return {
    candidates: candidates.map(({ regionMatch: _regionMatch, tier: _tier, ...candidate }) => candidate),
    rejected,
  };
}
