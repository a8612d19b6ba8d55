import type { ScalingSnapshot } from '@comfy-serverless/core';
import type { ResolvedObjective } from '../objective';
import { DemandTracker, leadColdStartMs } from './demand-tracker';
import { idleWorkers, pendingWorkers } from './split-need';

/** How fast the keep time moves per job (on a log scale). */
const STEP = 0.05;
const MIN_KEEP_MS = 1_000;
const MAX_KEEP_MS = 86_400_000;

/**
 * The part every built-in policy shares: it watches demand and the waits jobs get, and
 * turns them into a worker count that meets the objective at least cost. Internal to the
 * policies.
 *
 * For a wait objective it learns one number online, the keep time T: the most recently
 * idle worker is kept while it has been idle less than T, the next one less than T/2, the
 * r-th less than T/r (a worker deeper in the idle stack is needed only when that many jobs
 * come at once, which is rarer). T grows at every job that waits longer than the objective
 * and shrinks at every job that does not, on a log scale, so that the long-run share of
 * late jobs settles just inside the objective (a stochastic-approximation quantile
 * tracker). T starts from the exchange rate at which that tracker settles, a late job for
 * (1 - a) / a cold starts, a being the share of late jobs aimed at; nothing is fitted to a
 * data set, and T is free of the traffic's size and time scale.
 */
export class CapacityPlanner {
  readonly tracker: DemandTracker;
  private logKeepMs: number | undefined;
  /** When each idle worker became idle (as far as the snapshots tell), oldest first. */
  private readonly idleSince: number[] = [];
  private costTimeoutMs: number | undefined;
  private readonly reuseGaps = new Float64Array(512);
  private readonly reuseCensored = new Uint8Array(512);
  private reuseCount = 0;
  private reuseCountAtChoice = -1;

  constructor(
    readonly objective: ResolvedObjective,
    onHour?: (count: number, hourStartMs: number) => void,
  ) {
    this.tracker = new DemandTracker(onHour);
  }

  /** Reads a snapshot; call once per decision, before `workersFor`. */
  observe(snapshot: ScalingSnapshot): void {
    this.tracker.update(snapshot);
    const idle = idleWorkers(snapshot);
    const now = snapshot.now;
    if (this.objective.kind === 'cost') {
      this.costTimeoutMs ??= leadColdStartMs(snapshot);
      // Workers idle for longer than the timeout were stopped by the platform: their next
      // use, if any, came later than the timeout (a censored sample).
      while (this.idleSince.length > idle && now - this.idleSince[0]! >= this.costTimeoutMs) {
        this.idleSince.shift();
        this.recordReuse(this.costTimeoutMs, true);
      }
    }
    // Jobs take the most recently idle worker; new idle workers went idle since the last call.
    while (this.idleSince.length > idle) {
      const since = this.idleSince.pop()!;
      if (this.objective.kind === 'cost') this.recordReuse(Math.max(0, now - since), false);
    }
    while (this.idleSince.length < idle) this.idleSince.push(now - snapshot.intervalMs / 2);
    if (this.objective.kind === 'cost') this.chooseCostTimeout(leadColdStartMs(snapshot));
    if (this.objective.kind !== 'wait') return;
    const target = this.objective.allowedViolationShare * 0.8;
    // Prior: a late job is worth (1 - a) / a cold starts, the exchange rate at which the
    // tracker below settles (a being the share of late jobs aimed at).
    this.logKeepMs ??= Math.log(Math.max(MIN_KEEP_MS, (leadColdStartMs(snapshot) * (1 - target)) / target));
    for (const wait of this.tracker.newWaits)
      this.logKeepMs += wait > this.objective.waitMs ? STEP * (1 - target) : -STEP * target;
    this.logKeepMs = Math.min(Math.log(MAX_KEEP_MS), Math.max(Math.log(MIN_KEEP_MS), this.logKeepMs));
  }

  /** The learned keep time T in ms (undefined in cost mode), for reports. */
  get keepMs(): number | undefined {
    return this.logKeepMs === undefined ? undefined : Math.exp(this.logKeepMs);
  }

  /**
   * Seconds an idle worker above the planned count stays. In cost mode, the idle timeout
   * that would have cost least on the recent gaps between arrivals; for a wait objective
   * none, because the planned count already holds the workers worth keeping.
   */
  idleTimeoutSeconds(snapshot: ScalingSnapshot): number {
    if (this.objective.kind === 'cost')
      return Math.round((this.costTimeoutMs ?? leadColdStartMs(snapshot)) / 1000);
    return 0;
  }

  private recordReuse(gapMs: number, censored: boolean): void {
    const slot = this.reuseCount % this.reuseGaps.length;
    this.reuseGaps[slot] = gapMs;
    this.reuseCensored[slot] = censored ? 1 : 0;
    this.reuseCount++;
  }

  /**
   * Cost mode's idle timeout: the one that would have cost least over the recent idle
   * spells (a spell shorter than the timeout costs its length, a longer one the timeout
   * plus a cold start). It starts at one cold start (never worse than twice the best,
   * the classic ski-rental bound) and only looks at timeouts it has evidence for, that is
   * no longer than the current one.
   */
  private chooseCostTimeout(coldStartMs: number): void {
    const count = Math.min(this.reuseCount, this.reuseGaps.length);
    if (count < 16 || this.costTimeoutMs === undefined || this.reuseCount === this.reuseCountAtChoice) return;
    this.reuseCountAtChoice = this.reuseCount;
    let best = this.costTimeoutMs;
    let bestCost = Number.POSITIVE_INFINITY;
    for (const factor of [0, 0.25, 0.5, 1]) {
      const timeout = factor * coldStartMs;
      if (timeout > this.costTimeoutMs) continue;
      let cost = 0;
      for (let index = 0; index < count; index++) {
        const gap = this.reuseGaps[index]!;
        cost += this.reuseCensored[index] === 0 && gap <= timeout ? gap : timeout + coldStartMs;
      }
      if (cost < bestCost) {
        bestCost = cost;
        best = timeout;
      }
    }
    this.costTimeoutMs = best;
  }

  /**
   * Workers wanted now: busy ones, those starting (or enough for the queue), the idle ones
   * still inside their keep time, and at least `floor` (a forecast's, for the predictive
   * policy).
   */
  workersFor(snapshot: ScalingSnapshot, floor = 0): number {
    const demand = snapshot.demand;
    const base = demand.inFlight + Math.max(demand.queueDepth, pendingWorkers(snapshot));
    if (this.objective.kind === 'cost' || this.logKeepMs === undefined) return Math.max(base, floor);
    const keepMs = Math.exp(this.logKeepMs);
    let keep = 0;
    for (let rank = 1; rank <= this.idleSince.length; rank++) {
      const since = this.idleSince[this.idleSince.length - rank]!;
      if (snapshot.now - since < keepMs / rank) keep = rank;
      else break;
    }
    return Math.max(base + keep, floor);
  }

  /**
   * Records the worker count finally asked for: the platform stops the longest-idle
   * workers above it, so they are forgotten now. Call once per decision.
   */
  commit(snapshot: ScalingSnapshot, workers: number): void {
    if (this.objective.kind === 'cost') return;
    const demand = snapshot.demand;
    const base = demand.inFlight + Math.max(demand.queueDepth, pendingWorkers(snapshot));
    const kept = Math.max(0, workers - base);
    if (this.idleSince.length > kept) this.idleSince.splice(0, this.idleSince.length - kept);
  }

  /** True in cost mode, where the policy sets no floor and tunes the idle timeout instead. */
  get costMode(): boolean {
    return this.objective.kind === 'cost';
  }
}
