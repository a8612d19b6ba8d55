import type { Clock } from '@comfy-serverless/core';

/** The routes RunPod rate-limits, each with its own budget per endpoint. */
export type RunpodRateRoute = 'run' | 'runsync' | 'status' | 'stream' | 'cancel' | 'purge-queue';

/** A route's limits: requests per 10 s and requests open at once. */
export interface RunpodRateLimit {
  per10s: number;
  concurrent: number;
}

/** RunPod's published limits per endpoint (contracts/runpod.md). */
export const RUNPOD_RATE_LIMITS: Readonly<Record<RunpodRateRoute, RunpodRateLimit>> = {
  run: { per10s: 1000, concurrent: 200 },
  runsync: { per10s: 2000, concurrent: 400 },
  status: { per10s: 2000, concurrent: 400 },
  stream: { per10s: 2000, concurrent: 400 },
  cancel: { per10s: 100, concurrent: 20 },
  'purge-queue': { per10s: 2, concurrent: 2 },
};

const WINDOW_MS = 10_000;

/**
 * Sliding 10-second windows and concurrency counts per route, on the mock's clock. `admit`
 * answers how long to wait (Retry-After, in whole seconds) when a request is over a limit.
 */
export class MockRateLimiter {
  private readonly stamps = new Map<RunpodRateRoute, number[]>();
  private readonly open = new Map<RunpodRateRoute, number>();

  constructor(
    private readonly clock: Clock,
    private readonly limits: Record<RunpodRateRoute, RunpodRateLimit>,
  ) {}

  /** Records the request and returns undefined, or the seconds to wait when it is over a limit. */
  admit(route: RunpodRateRoute): number | undefined {
    const limit = this.limits[route];
    const now = this.clock.now();
    const stamps = (this.stamps.get(route) ?? []).filter((stamp) => stamp > now - WINDOW_MS);
    this.stamps.set(route, stamps);
    if ((this.open.get(route) ?? 0) >= limit.concurrent) return 1;
    if (stamps.length >= limit.per10s) {
      const oldest = stamps[0] ?? now;
      return Math.max(1, Math.ceil((oldest + WINDOW_MS - now) / 1000));
    }
    stamps.push(now);
    this.open.set(route, (this.open.get(route) ?? 0) + 1);
    return undefined;
  }

  /** Marks an admitted request as answered. */
  release(route: RunpodRateRoute): void {
    this.open.set(route, Math.max(0, (this.open.get(route) ?? 0) - 1));
  }
}
