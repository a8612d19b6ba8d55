import type { ScalingSnapshot } from '@comfy-serverless/core';
import type { ResolvedObjective } from '../objective';
import { DemandTracker, leadColdStartMs } from './demand-tracker';
import { idleWorkers } from './split-need';
import { ViolationPriceController, worthwhileIdleWorkers } from './warm-pool';

/**
 * The part every built-in policy shares: it watches demand and the waits jobs get, and
 * turns an arrival rate into a worker count that meets the objective at least cost.
 * Internal to the policies.
 */
export class CapacityPlanner {
  readonly tracker: DemandTracker;
  private controller: ViolationPriceController | undefined;

  constructor(
    readonly objective: ResolvedObjective,
    onHour?: (count: number, hourStartMs: number) => void,
  ) {
    this.tracker = new DemandTracker(onHour);
  }

  /** Reads a snapshot; call once per decision, before `workersFor`. */
  observe(snapshot: ScalingSnapshot): void {
    this.tracker.update(snapshot);
    if (this.objective.kind === 'wait') {
      const coldStartSeconds = Math.max(1, leadColdStartMs(snapshot) / 1000);
      this.controller ??= new ViolationPriceController(
        this.objective.allowedViolationShare / coldStartSeconds,
        // Aim a little inside the objective, so that noise does not push the result over.
        this.objective.allowedViolationShare * 0.8,
      );
      this.controller.observe(this.tracker.newWaits, this.objective.waitMs);
    }
  }

  /**
   * Seconds an idle worker above the planned count stays: none in cost mode (only the
   * workers worth keeping are kept), one cold start for a wait objective, so that a dip in
   * the planned count does not stop a worker it will want back soon (ski rental).
   */
  idleTimeoutSeconds(snapshot: ScalingSnapshot): number {
    const coldStartMs = leadColdStartMs(snapshot);
    if (this.objective.kind === 'cost') return Math.round(this.tracker.bestIdleTimeoutMs(coldStartMs) / 1000);
    return Math.round(coldStartMs / 1000);
  }

  /** The learned price of a violation (jobs a worker-second must save), for reports. */
  get valuePerSecond(): number | undefined {
    return this.controller?.valuePerSecond;
  }

  /**
   * Workers wanted now for arrivals at `ratePerSecond`: those running and queued, plus
   * idle ones. For a wait objective, idle workers are started ahead of demand while each
   * saves enough violations; in cost mode, idle workers are only kept (never started
   * early) while keeping one costs less than the cold start it saves.
   */
  workersFor(snapshot: ScalingSnapshot, ratePerSecond: number, startRatePerSecond = ratePerSecond): number {
    const coldStartMs = leadColdStartMs(snapshot);
    const base = snapshot.demand.inFlight + snapshot.demand.queueDepth;
    // In cost mode the idle timeout does the work (see idleTimeoutSeconds): no floor above demand.
    if (this.objective.kind === 'cost' || this.controller === undefined) return base;
    const lead = coldStartMs + snapshot.intervalMs;
    const value = this.controller.valuePerSecond;
    // Starting a worker costs a cold start more than keeping one that is up, so starts
    // follow the steadier rate and keeping follows the quicker one.
    const keep = Math.min(idleWorkers(snapshot), worthwhileIdleWorkers(ratePerSecond, lead, value));
    const start = worthwhileIdleWorkers(startRatePerSecond, lead, value);
    return base + Math.max(keep, start);
  }

  /** True in cost mode, where the policy sets no floor and tunes the idle timeout instead. */
  get costMode(): boolean {
    return this.objective.kind === 'cost';
  }
}
