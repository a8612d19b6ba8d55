import type { ScalingSnapshot } from '@comfy-serverless/core';

// Context bins. The edges were picked by hand while developing on the GenTD26 trace (only
// the recent-arrival edges double); see "Choices made on this trace" in docs/scaling.md,
// as for SHRINK, the ten-minute window and the 32 spares. Seconds since the last
// arrival (bursts: the hazard of the next job falls as a quiet spell lengthens), arrivals
// in the last ten minutes (how busy the service is now, which follows the time of day),
// and jobs running (busy workers free themselves and absorb part of a rise).
const SINCE_EDGES_S = [10, 30, 60, 120, 300, 600, 1_200, 2_400, 4_800];
const RECENT_EDGES = [1, 2, 4, 8, 16, 32, 64];
const BUSY_EDGES = [1, 2, 3, 5, 9, 17];
const RECENT_WINDOW_MS = 600_000;
/** Pseudo-counts with which a cell leans on the coarser estimate above it. */
const SHRINK = 20;

function binOf(edges: readonly number[], value: number): number {
  let bin = 0;
  while (bin < edges.length && value >= edges[bin]!) bin++;
  return bin;
}

/**
 * How many idle workers the next decision interval will need, learned online from the
 * snapshots: for each context (time since the last arrival, arrivals in the last ten
 * minutes, jobs running) it counts the intervals seen and, for every j, those over which
 * the demand (jobs running plus queued) rose by at least j. A rise of j over one interval
 * is what j idle workers would have served at once; a smaller one was absorbed by workers
 * that freed. Estimates are shrunk towards the same count over the time-since-arrival
 * context alone, and that towards all intervals, so a rarely seen context borrows from
 * the common ones. Only the past is used: an interval's outcome is recorded at the next
 * call. Internal to the policies.
 */
export class SpareModel {
  private readonly recentBins = RECENT_EDGES.length + 1;
  private readonly busyBins = BUSY_EDGES.length + 1;
  private readonly exposure: Float64Array;
  private readonly rises: Float64Array;
  private readonly sinceExposure: Float64Array;
  private readonly sinceRises: Float64Array;
  private readonly totalRises: Float64Array;
  private total = 0;
  private lastArrivalMs = Number.NaN;
  private previousCell = -1;
  private previousSince = -1;
  private previousLevel = 0;
  private cell = 0;
  private since = 0;
  private sinceS = Number.POSITIVE_INFINITY;
  private cellRest = 0;
  /** The context one boot ahead, computed once per update. */
  private laggedAfterMs = Number.NaN;
  private laggedSince = 0;

  /** @param maxSpares most idle workers the model prices (rises above count as this many). */
  constructor(readonly maxSpares = 32) {
    const sinceBins = SINCE_EDGES_S.length + 1;
    const cells = sinceBins * this.recentBins * this.busyBins;
    this.exposure = new Float64Array(cells);
    this.rises = new Float64Array(cells * maxSpares);
    this.sinceExposure = new Float64Array(sinceBins);
    this.sinceRises = new Float64Array(sinceBins * maxSpares);
    this.totalRises = new Float64Array(maxSpares);
  }

  /** Records how the last interval ended and reads the context of the next one. */
  update(snapshot: ScalingSnapshot, newArrivals: number): void {
    const { demand, now } = snapshot;
    const level = demand.inFlight + demand.queueDepth;
    if (this.previousCell >= 0) {
      const rise = Math.min(this.maxSpares, level - this.previousLevel);
      this.exposure[this.previousCell]!++;
      this.sinceExposure[this.previousSince]!++;
      this.total++;
      for (let j = 0; j < rise; j++) {
        this.rises[this.previousCell * this.maxSpares + j]!++;
        this.sinceRises[this.previousSince * this.maxSpares + j]!++;
        this.totalRises[j]!++;
      }
    }
    if (newArrivals > 0) this.lastArrivalMs = now;
    const sinceS = Number.isNaN(this.lastArrivalMs)
      ? Number.POSITIVE_INFINITY
      : (now - this.lastArrivalMs) / 1000;
    const buckets = demand.arrivals;
    const span = Math.min(buckets.length, Math.max(1, Math.round(RECENT_WINDOW_MS / demand.bucketMs)));
    let recent = 0;
    for (let index = buckets.length - span; index < buckets.length; index++) recent += buckets[index]!;
    this.sinceS = sinceS;
    this.laggedAfterMs = Number.NaN;
    this.since = binOf(SINCE_EDGES_S, sinceS);
    this.cellRest = binOf(RECENT_EDGES, recent) * this.busyBins + binOf(BUSY_EDGES, demand.inFlight);
    this.cell =
      (this.since * this.recentBins + binOf(RECENT_EDGES, recent)) * this.busyBins +
      binOf(BUSY_EDGES, demand.inFlight);
    this.previousCell = this.cell;
    this.previousSince = this.since;
    this.previousLevel = level;
  }

  /**
   * Probability that demand rises by more than `spare` (0-based) over the next interval; with
   * `afterMs`, over the interval that starts that much later if nothing arrives meanwhile.
   */
  needProbability(spare: number, afterMs = 0): number {
    if (spare >= this.maxSpares) return 0;
    let since = this.since;
    let cell = this.cell;
    if (afterMs > 0) {
      if (afterMs !== this.laggedAfterMs) {
        this.laggedAfterMs = afterMs;
        this.laggedSince = binOf(SINCE_EDGES_S, this.sinceS + afterMs / 1000);
      }
      since = this.laggedSince;
      cell = since * this.recentBins * this.busyBins + this.cellRest;
    }
    const overall = (this.totalRises[spare]! + 0.5) / (this.total + 1);
    const bySince =
      (this.sinceRises[since * this.maxSpares + spare]! + SHRINK * overall) /
      (this.sinceExposure[since]! + SHRINK);
    return (this.rises[cell * this.maxSpares + spare]! + SHRINK * bySince) / (this.exposure[cell]! + SHRINK);
  }
}
