import type { ScalingSnapshot } from '@comfy-serverless/core';
import type { ResolvedObjective } from '../objective';
import { DemandTracker, leadColdStartMs } from './demand-tracker';
import { SpareModel } from './spare-model';
import { idleWorkers, pendingWorkers } from './split-need';

/** How fast the price of a late job moves per job (on a log scale). */
const STEP = 0.05;
/**
 * The first steps, shrinking with the square root of the late jobs seen within budget down to
 * STEP (late jobs spent while over budget do not shrink it: Kesten's rule).
 */
const FIRST_STEP = 0.3;
const MIN_PRICE_S = 1;
const MAX_PRICE_S = 10_000_000;

/**
 * The part every built-in policy shares: it watches demand and the waits jobs get, and
 * turns them into a worker count that meets the objective at least cost. Internal to the
 * policies.
 *
 * For a wait objective it solves the Lagrangian of "fewest GPU-seconds such that at most a
 * share a of jobs wait longer than the objective": a late job is priced at P GPU-seconds,
 * and the j-th idle worker is held (kept, or started ahead of demand) for the next
 * decision interval of w seconds while
 *
 *   Pr(demand rises by at least j over the interval | context) x P >= w,
 *
 * that is while the late jobs it is expected to save are worth the GPU time it costs. The
 * probabilities come from `SpareModel`, learned online from the traffic seen so far in
 * the context of the moment (time since the last arrival, arrivals in the last ten
 * minutes, jobs running): capacity is held through busy spells and right after bursts,
 * and let go in quiet hours, where it buys few on-time jobs. The price is the dual
 * variable: it rises at every job that waits longer than the objective and falls at every
 * job that does not, on a log scale, by steps in the ratio (1 - a') : a' with a' = 0.8 a,
 * so that the long-run share of late jobs settles just inside the objective (dual ascent
 * as a stochastic-approximation quantile tracker). It starts at C (1 - a') / a', C the cold
 * start. The rule is free of the traffic's size, but the margin 0.8, the steps and the
 * payback horizon were chosen by looking at results on the GenTD26 trace (docs/scaling.md,
 * "Choices made on this trace").
 */
export class CapacityPlanner {
  readonly tracker: DemandTracker;
  private readonly spares = new SpareModel();
  private logPriceS: number | undefined;
  private lateJobs = 0;
  private seenJobs = 0;
  /** Late jobs seen while the share so far was within the margin: what shrinks the step. */
  private lateWithinBudget = 0;
  /** Cost mode: when each idle worker became idle (as far as the snapshots tell), oldest first. */
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
      // Jobs take the most recently idle worker; new idle workers went idle since the last call.
      while (this.idleSince.length > idle) this.recordReuse(Math.max(0, now - this.idleSince.pop()!), false);
      while (this.idleSince.length < idle) this.idleSince.push(now - snapshot.intervalMs / 2);
      this.chooseCostTimeout(leadColdStartMs(snapshot));
    }
    if (this.objective.kind !== 'wait') return;
    this.spares.update(snapshot, this.tracker.newArrivals);
    const allowed = this.objective.allowedViolationShare;
    const margin = allowed * 0.8;
    this.logPriceS ??= Math.log(
      Math.max(MIN_PRICE_S, (leadColdStartMs(snapshot) / 1000) * ((1 - margin) / margin)),
    );
    for (const wait of this.tracker.newWaits) {
      const late = wait > this.objective.waitMs;
      const target = this.shareToAim(margin, allowed);
      const overBudget = this.lateJobs > margin * this.seenJobs;
      // Larger steps while few late jobs have been seen within budget (Robbins-Monro with
      // Kesten's rule: a step shrinks only once the late share so far is back under the
      // margin, so a price still climbing from its prior keeps its pace), then the steady step.
      const step = Math.max(STEP, FIRST_STEP / Math.sqrt(1 + this.lateWithinBudget));
      this.seenJobs++;
      if (late) {
        this.lateJobs++;
        if (!overBudget) this.lateWithinBudget++;
      }
      this.logPriceS += late ? step * (1 - target) : -step * target;
    }
    this.logPriceS = Math.min(Math.log(MAX_PRICE_S), Math.max(Math.log(MIN_PRICE_S), this.logPriceS));
  }

  /**
   * The late share to aim at from here on. The late jobs already spent count against the
   * budget: the excess over the margin so far, L - a'n, is paid back over as many jobs as
   * have been seen (so that the share over twice the jobs seen would end at a'), and a
   * share below a' is lent to the next jobs the same way. Bounded by a tenth of a' and by
   * the objective's own share a. Without this the tracker settles at a' from wherever it
   * is, and the late jobs spent while the price climbed from its prior stay in the run's
   * share: on a short or quiet run they are more than the margin a - a' covers.
   */
  private shareToAim(margin: number, allowed: number): number {
    if (this.seenJobs === 0) return margin;
    const excess = this.lateJobs - margin * this.seenJobs;
    return Math.min(allowed, Math.max(margin / 10, margin - excess / this.seenJobs));
  }

  /** The learned price of a late job in GPU-seconds (undefined in cost mode), for reports. */
  get lateJobPriceSeconds(): number | undefined {
    return this.logPriceS === undefined ? undefined : Math.exp(this.logPriceS);
  }

  /**
   * Seconds an idle worker above the planned count stays. In cost mode, the idle timeout
   * that would have cost least on the recent gaps between arrivals. For a wait objective one
   * cold start: a worker the planner lets go may be wanted again a few intervals later, and
   * starting it again costs a cold start of GPU time (and late jobs meanwhile); holding it
   * idle for as long as a restart would cost is the ski-rental rule, never more than twice
   * the cheaper of the two choices in hindsight (the clairvoyant bound keeps workers through
   * gaps up to a cold start for the same reason).
   */
  idleTimeoutSeconds(snapshot: ScalingSnapshot): number {
    if (this.objective.kind === 'cost')
      return Math.round((this.costTimeoutMs ?? leadColdStartMs(snapshot)) / 1000);
    return Math.round(leadColdStartMs(snapshot) / 1000);
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
   * worth holding at the learned price, and at least `floor` (a forecast's, for the
   * predictive policy). Idle workers beyond those already up are started ahead of demand.
   */
  workersFor(snapshot: ScalingSnapshot, floor = 0): number {
    const demand = snapshot.demand;
    const base = demand.inFlight + Math.max(demand.queueDepth, pendingWorkers(snapshot));
    if (this.objective.kind === 'cost' || this.logPriceS === undefined) return Math.max(base, floor);
    const price = Math.exp(this.logPriceS);
    const intervalS = snapshot.intervalMs / 1000;
    // Idle workers already up (or booting beyond the queue's) are held while their chance of
    // use over the next interval pays for it. A worker started now is of use only once it is
    // up, one cold start C later, and costs C before then: it is started only while the
    // chance of use in the interval after its boot (in the context of that moment if nothing
    // arrives meanwhile) pays for the boot and that interval.
    const coldStartMs = leadColdStartMs(snapshot);
    const up = idleWorkers(snapshot) + Math.max(0, pendingWorkers(snapshot) - demand.queueDepth);
    const startS = intervalS + coldStartMs / 1000;
    let spares = 0;
    while (
      spares < this.spares.maxSpares &&
      (spares < up
        ? this.spares.needProbability(spares) * price >= intervalS
        : this.spares.needProbability(spares, coldStartMs) * price >= startS)
    )
      spares++;
    return Math.max(demand.inFlight + demand.queueDepth + spares, floor);
  }

  /** Records the worker count finally asked for. Call once per decision. */
  commit(_snapshot: ScalingSnapshot, _workers: number): void {}

  /** True in cost mode, where the policy sets no floor and tunes the idle timeout instead. */
  get costMode(): boolean {
    return this.objective.kind === 'cost';
  }
}
