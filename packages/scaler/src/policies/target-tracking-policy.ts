import type { ScalingPolicyV1 } from '@comfy-serverless/core';
import { InvalidArgumentError } from '@comfy-serverless/core';
import { resolveObjective, type ScalingObjective } from '../objective';
import { CapacityPlanner } from './capacity-planner';
import { costSettings, splitNeed } from './split-need';

/** Options of `createTargetTrackingPolicy`. */
export interface TargetTrackingPolicyOptions {
  /** What to aim at. @default { waitMs: 10_000, quantile: 0.99 } */
  objective?: ScalingObjective;
  /** Jobs in flight per worker to aim at. @default 0.7 for a wait objective, 1 in cost mode */
  targetPerWorker?: number;
  /** Stable window, ms. @default 60_000 */
  stableWindowMs?: number;
  /**
   * Longest stable window, ms: kept for compatibility (the window no longer grows; idle
   * capacity is held by the shared planner at its learned price of a late job).
   * @default 21_600_000 (6 h)
   */
  maxStableWindowMs?: number;
  /** Panic window as a share of the shortest stable window. @default 0.1 */
  panicWindowShare?: number;
  /** Panic when the panic-window demand reaches this multiple of the workers up. @default 2 */
  panicThreshold?: number;
  /** @default 'target-tracking' */
  name?: string;
}

/**
 * Target tracking in the manner of Knative's autoscaler: the average of jobs running and
 * queued over a stable window, divided by the jobs per worker to aim at; a short panic
 * window scales up at once on a burst and never down while the panic lasts. The count never
 * falls below the shared planner's, which holds the idle workers worth their GPU time at
 * the price of a late job it learns from the waits jobs get.
 *
 * @example
 * const policy = createTargetTrackingPolicy({ objective: { waitMs: 10_000, share: 0.95 } });
 */
export function createTargetTrackingPolicy(options: TargetTrackingPolicyOptions = {}): ScalingPolicyV1 {
  const objective = resolveObjective(options.objective);
  const targetPerWorker = options.targetPerWorker ?? (objective.kind === 'cost' ? 1 : 0.7);
  if (!(targetPerWorker > 0))
    throw new InvalidArgumentError({
      argument: 'targetPerWorker',
      message: `targetPerWorker must be > 0, got ${targetPerWorker}.`,
    });
  const minimumWindowMs = options.stableWindowMs ?? 60_000;
  const maximumWindowMs = options.maxStableWindowMs ?? 21_600_000;
  if (!(minimumWindowMs > 0 && maximumWindowMs >= minimumWindowMs))
    throw new InvalidArgumentError({
      argument: 'stableWindowMs',
      message: `stableWindowMs must be > 0 and at most maxStableWindowMs (${maximumWindowMs}), got ${minimumWindowMs}.`,
    });
  const panicWindowMs = minimumWindowMs * (options.panicWindowShare ?? 0.1);
  const panicThreshold = options.panicThreshold ?? 2;
  const planner = new CapacityPlanner(objective);
  // Samples of concurrency, oldest first; a window of up to six hours at the decision interval.
  const times: number[] = [];
  const samples: number[] = [];
  let panicUntil = Number.NEGATIVE_INFINITY;
  let previous = 0;
  return {
    specificationVersion: 'v1',
    name: options.name ?? 'target-tracking',
    decide(snapshot) {
      planner.observe(snapshot);
      // The stable window stays at its shortest: idle capacity beyond the tracked concurrency
      // is what the planner holds at its learned price of a late job.
      const windowMs = minimumWindowMs;
      const now = snapshot.now;
      const concurrency = snapshot.demand.inFlight + snapshot.demand.queueDepth;
      times.push(now);
      samples.push(concurrency);
      let drop = 0;
      while (drop < times.length && times[drop]! <= now - windowMs) drop++;
      if (drop > 0) {
        times.splice(0, drop);
        samples.splice(0, drop);
      }
      let stableSum = 0;
      let stableCount = 0;
      let panicSum = 0;
      let panicCount = 0;
      for (let index = samples.length - 1; index >= 0 && times[index]! > now - windowMs; index--) {
        stableSum += samples[index]!;
        stableCount++;
        if (times[index]! > now - panicWindowMs) {
          panicSum += samples[index]!;
          panicCount++;
        }
      }
      const stableDesired = Math.ceil(stableSum / Math.max(1, stableCount) / targetPerWorker - 1e-9);
      const panicDesired = Math.ceil(panicSum / Math.max(1, panicCount) / targetPerWorker - 1e-9);
      let up = 0;
      for (const target of snapshot.targets) up += target.state.runningWorkers;
      if (panicDesired >= panicThreshold * Math.max(1, up)) panicUntil = now + minimumWindowMs;
      let desired = now < panicUntil ? Math.max(previous, panicDesired, stableDesired) : stableDesired;
      desired = Math.max(desired, planner.workersFor(snapshot));
      previous = desired;
      planner.commit(snapshot, desired);
      return {
        targets: planner.costMode
          ? costSettings(snapshot, planner.idleTimeoutSeconds(snapshot))
          : splitNeed(snapshot, desired, { idleTimeoutSeconds: planner.idleTimeoutSeconds(snapshot) }),
        reason: `${now < panicUntil ? 'panic' : 'stable'} window ${Math.round(windowMs / 1000)} s`,
      };
    },
  };
}
