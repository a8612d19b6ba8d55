import type { ScalingSnapshot } from '@comfy-serverless/core';

const HOUR_MS = 3_600_000;

/**
 * Reads successive snapshots and keeps what the policies learn from them: new arrivals
 * since the last call (from the arrival buckets, which are aligned to multiples of
 * `bucketMs`), decaying arrival-rate averages, hourly counts, the waits of the jobs that
 * started since the last call, service and cold-start times. Internal to the policies.
 */
export class DemandTracker {
  /** Arrivals per second, averaged over about one minute. */
  rateShort = 0;
  /** Arrivals per second, averaged over about ten minutes. */
  rateLong = 0;
  /** New arrivals seen in the last update. */
  newArrivals = 0;
  /** Waits (ms) of jobs that started since the last update, oldest first. */
  newWaits: number[] = [];
  /** Mean execution time of recent jobs, ms. */
  serviceMs = 30_000;
  private lastNow: number | undefined;
  private lastBucket = Number.NaN;
  private lastBucketValue = 0;
  private lastQueueDepth = 0;
  private lastInFlight = 0;
  private currentHour = Number.NaN;
  private currentHourCount = 0;

  constructor(private readonly onHour?: (count: number, hourStartMs: number) => void) {}

  update(snapshot: ScalingSnapshot): void {
    const { demand, now } = snapshot;
    const buckets = demand.arrivals;
    const bucketMs = demand.bucketMs;
    const currentBucket = Math.floor(now / bucketMs);
    const firstBucket = currentBucket - buckets.length + 1;
    let arrived = 0;
    if (Number.isNaN(this.lastBucket)) {
      arrived = buckets[buckets.length - 1] ?? 0;
    } else {
      for (let bucket = Math.max(firstBucket, this.lastBucket); bucket <= currentBucket; bucket++)
        arrived += buckets[bucket - firstBucket] ?? 0;
      if (this.lastBucket >= firstBucket) arrived -= this.lastBucketValue;
      // Whole buckets that closed since the last call feed the hourly counts.
      for (let bucket = Math.max(firstBucket, this.lastBucket); bucket < currentBucket; bucket++) {
        const count = buckets[bucket - firstBucket] ?? 0;
        this.addToHour(bucket * bucketMs, count);
      }
    }
    arrived = Math.max(0, arrived);
    this.lastBucket = currentBucket;
    this.lastBucketValue = buckets[buckets.length - 1] ?? 0;
    if (Number.isNaN(this.currentHour)) this.currentHour = Math.floor(now / HOUR_MS);
    this.addToHour(currentBucket * bucketMs, 0);

    const elapsed = this.lastNow === undefined ? snapshot.intervalMs : Math.max(1, now - this.lastNow);
    this.lastNow = now;
    this.rateShort = decay(this.rateShort, arrived, elapsed, 60_000);
    this.rateLong = decay(this.rateLong, arrived, elapsed, 600_000);
    this.newArrivals = arrived;

    // Jobs that started since the last call: arrivals plus the queue we had minus the queue now.
    const started = Math.max(0, arrived + this.lastQueueDepth - demand.queueDepth);
    this.lastQueueDepth = demand.queueDepth;
    if (started === 0) this.newWaits = [];
    else {
      const waits = demand.recentWaitsMs;
      this.newWaits = waits.slice(Math.max(0, waits.length - started));
    }
    // Execution times change only when jobs finish, which needs jobs in flight.
    const busy = demand.inFlight > 0 || this.lastInFlight > 0;
    this.lastInFlight = demand.inFlight;
    const executions = busy ? demand.recentExecutionMs : [];
    if (executions.length > 0) {
      let sum = 0;
      const from = Math.max(0, executions.length - 200);
      for (let index = from; index < executions.length; index++) sum += executions[index]!;
      this.serviceMs = sum / (executions.length - from);
    }
  }

  private addToHour(bucketStartMs: number, count: number): void {
    const hour = Math.floor(bucketStartMs / HOUR_MS);
    if (Number.isNaN(this.currentHour)) this.currentHour = hour;
    while (hour > this.currentHour) {
      this.onHour?.(this.currentHourCount, this.currentHour * HOUR_MS);
      this.currentHour++;
      this.currentHourCount = 0;
    }
    if (hour === this.currentHour) this.currentHourCount += count;
  }
}

/** An exponentially decaying rate (per second) after `count` events in `elapsedMs`. */
function decay(rate: number, count: number, elapsedMs: number, timeConstantMs: number): number {
  const keep = Math.exp(-elapsedMs / timeConstantMs);
  return rate * keep + (count / (timeConstantMs / 1000)) * 1;
}

/** Typical cold start across the targets of a snapshot (the cheapest target's), ms. */
export function leadColdStartMs(snapshot: ScalingSnapshot): number {
  let best: { price: number; coldStartMs: number } | undefined;
  for (const target of snapshot.targets)
    if (best === undefined || target.usdPerSecond < best.price)
      best = { price: target.usdPerSecond, coldStartMs: target.coldStartMs };
  return best?.coldStartMs ?? 30_000;
}
