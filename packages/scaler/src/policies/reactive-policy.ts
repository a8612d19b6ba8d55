import type { ScalingPolicyV1, ScalingSnapshot } from '@comfy-serverless/core';
import { InvalidArgumentError } from '@comfy-serverless/core';
import { resolveObjective, type ScalingObjective } from '../objective';
import { CapacityPlanner } from './capacity-planner';
import { costSettings, splitNeed } from './split-need';

/** A trigger: when its signal is above `threshold`, `severity` workers are added. */
export interface ReactiveTrigger {
  threshold: number;
  /** Workers added while the trigger fires. */
  severity: number;
}

/** Options of `createReactivePolicy`. */
export interface ReactivePolicyOptions {
  /** What to aim at. @default { waitMs: 10_000, quantile: 0.99 } */
  objective?: ScalingObjective;
  /**
   * Triggers. `queueDepth` in jobs (adds at least the jobs above the threshold), `averageWaitMs`
   * of recent jobs, `gpuUtilization` 0..1, `rateSlope` as the ratio of the one-minute to the
   * ten-minute arrival rate. Defaults: queue 0/1; wait half the objective's wait/1;
   * utilisation 0.9/1; slope 2/1. In cost mode only the queue trigger is on by default.
   */
  triggers?: {
    queueDepth?: ReactiveTrigger | false;
    averageWaitMs?: ReactiveTrigger | false;
    gpuUtilization?: ReactiveTrigger | false;
    rateSlope?: ReactiveTrigger | false;
  };
  /** Time with every trigger below its threshold before workers are released. @default 60_000 (0 in cost mode) */
  cooldownMs?: number;
  /** @default 'reactive' */
  name?: string;
}

function checkTrigger(name: string, trigger: ReactiveTrigger | false | undefined): void {
  if (trigger === undefined || trigger === false) return;
  if (!(Number.isFinite(trigger.threshold) && trigger.threshold >= 0))
    throw new InvalidArgumentError({
      argument: `triggers.${name}.threshold`,
      message: `triggers.${name}.threshold must be a number >= 0, got ${String(trigger.threshold)}.`,
    });
  if (!(Number.isFinite(trigger.severity) && trigger.severity >= 0))
    throw new InvalidArgumentError({
      argument: `triggers.${name}.severity`,
      message: `triggers.${name}.severity must be a worker count >= 0, got ${String(trigger.severity)}.`,
    });
}

/** The reactive decision without the settings: shared with the predictive policy. */
export interface ReactiveCore {
  /** Workers wanted; call after `planner.observe(snapshot)`. */
  workers(snapshot: ScalingSnapshot): { workers: number; fired: string[] };
}

/** Builds the reactive decision on a planner the caller feeds. Internal to the policies. */
export function createReactiveCore(
  options: Omit<ReactivePolicyOptions, 'name'>,
  planner: CapacityPlanner,
): ReactiveCore {
  const cooldownMs =
    options.cooldownMs ?? (options.objective !== undefined && 'mode' in options.objective ? 0 : 60_000);
  if (!(cooldownMs >= 0))
    throw new InvalidArgumentError({
      argument: 'cooldownMs',
      message: `cooldownMs must be >= 0, got ${cooldownMs}.`,
    });
  const given = options.triggers ?? {};
  // Only the queue trigger is on by default: on real traffic the others, at any fixed
  // threshold, bought fewer late jobs than the same GPU time spent by the planner (see
  // docs/scaling.md); turn them on for traffic whose signals you trust.
  const triggers = {
    queueDepth: given.queueDepth ?? { threshold: 0, severity: 1 },
    averageWaitMs: given.averageWaitMs ?? false,
    gpuUtilization: given.gpuUtilization ?? false,
    rateSlope: given.rateSlope ?? false,
  };
  for (const [name, trigger] of Object.entries(triggers)) checkTrigger(name, trigger);
  let heldAdded = 0;
  let lastFired = Number.NEGATIVE_INFINITY;
  return {
    workers(snapshot) {
      const tracker = planner.tracker;
      const base = planner.workersFor(snapshot);
      let added = 0;
      const fired: string[] = [];
      const queueDepth = snapshot.demand.queueDepth;
      if (triggers.queueDepth && queueDepth > triggers.queueDepth.threshold) {
        added +=
          Math.max(triggers.queueDepth.severity, queueDepth - triggers.queueDepth.threshold) - queueDepth;
        fired.push('queueDepth');
      }
      const waits = tracker.newWaits;
      if (triggers.averageWaitMs && waits.length > 0) {
        const average = waits.reduce((sum, wait) => sum + wait, 0) / waits.length;
        if (average > triggers.averageWaitMs.threshold) {
          added += triggers.averageWaitMs.severity;
          fired.push('averageWaitMs');
        }
      }
      if (triggers.gpuUtilization) {
        let busy = 0;
        let up = 0;
        for (const target of snapshot.targets) {
          busy += target.inFlight;
          up += target.state.runningWorkers;
        }
        if (up > 0 && busy / up > triggers.gpuUtilization.threshold) {
          added += triggers.gpuUtilization.severity;
          fired.push('gpuUtilization');
        }
      }
      if (
        triggers.rateSlope &&
        tracker.rateLong > 0 &&
        tracker.rateShort / tracker.rateLong > triggers.rateSlope.threshold
      ) {
        added += triggers.rateSlope.severity;
        fired.push('rateSlope');
      }
      if (fired.length > 0) lastFired = snapshot.now;
      // Workers added by triggers stay until every trigger has been quiet for the cooldown.
      heldAdded = snapshot.now - lastFired < cooldownMs ? Math.max(added, heldAdded) : Math.max(0, added);
      return { workers: base + heldAdded, fired };
    },
  };
}

/**
 * A reactive policy: the workers the current demand needs (running, queued, and the idle
 * ones worth keeping for the recent arrival rate under the objective), plus workers for
 * each trigger that fires; the count only falls once every trigger has stayed below its
 * threshold for the cooldown.
 *
 * @example
 * const policy = createReactivePolicy({ objective: { waitMs: 10_000, share: 0.95 } });
 */
export function createReactivePolicy(options: ReactivePolicyOptions = {}): ScalingPolicyV1 {
  const objective = resolveObjective(options.objective);
  const planner = new CapacityPlanner(objective);
  const core = createReactiveCore(options, planner);
  return {
    specificationVersion: 'v1',
    name: options.name ?? 'reactive',
    decide(snapshot) {
      planner.observe(snapshot);
      const { workers, fired } = core.workers(snapshot);
      planner.commit(snapshot, workers);
      const idleTimeoutSeconds = planner.idleTimeoutSeconds(snapshot);
      return {
        targets: planner.costMode
          ? costSettings(snapshot, idleTimeoutSeconds)
          : splitNeed(snapshot, workers, { idleTimeoutSeconds }),
        reason: `${fired.length > 0 ? `fired: ${fired.join(', ')}` : 'demand'}; late job priced ${planner.lateJobPriceSeconds === undefined ? 'n/a' : `${Math.round(planner.lateJobPriceSeconds)} GPU-s`}`,
      };
    },
  };
}
