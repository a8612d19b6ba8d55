import type { ScalingPolicyV1 } from '@comfy-serverless/core';
import { InvalidArgumentError } from '@comfy-serverless/core';
import { createSeasonalForecaster, type SeasonalForecasterOptions } from '../forecast/seasonal-forecaster';
import { resolveObjective, type ScalingObjective } from '../objective';
import { CapacityPlanner } from './capacity-planner';
import { createReactiveCore, type ReactivePolicyOptions } from './reactive-policy';
import { costSettings, splitNeed } from './split-need';

const HOUR_MS = 3_600_000;

/** Options of `createPredictivePolicy`. */
export interface PredictivePolicyOptions {
  /** What to aim at. @default { waitMs: 10_000, quantile: 0.99 } */
  objective?: ScalingObjective;
  /** How far ahead to plan, ms. @default 1_800_000 (30 min) */
  horizonMs?: number;
  /**
   * Confidence level of the forecast interval whose lower end is used as a floor (the
   * workers the forecast keeps busy at least this often). @default 0.85
   */
  confidence?: number;
  /** Forecaster settings (season lengths in hours). */
  forecaster?: SeasonalForecasterOptions;
  /** Options of the reactive policy whose answer is the floor. */
  reactive?: Omit<ReactivePolicyOptions, 'objective'>;
  /** Hours of history before the forecast is trusted. @default 24 */
  warmUpHours?: number;
  /** @default 'predictive' */
  name?: string;
}

/**
 * A predictive policy: a seasonal forecast of hourly arrivals (Holt-Winters with daily and
 * weekly seasons) over the horizon, at the confidence level, turned into workers from the
 * measured execution and cold-start times (busy workers by Little's law, plus the idle
 * workers worth keeping at that rate under the objective); never below what the reactive
 * policy asks for.
 *
 * @example
 * const policy = createPredictivePolicy({ objective: { waitMs: 10_000, quantile: 0.99 } });
 */
export function createPredictivePolicy(options: PredictivePolicyOptions = {}): ScalingPolicyV1 {
  const objective = resolveObjective(options.objective);
  const horizonMs = options.horizonMs ?? 1_800_000;
  if (!(horizonMs > 0))
    throw new InvalidArgumentError({
      argument: 'horizonMs',
      message: `horizonMs must be > 0, got ${horizonMs}.`,
    });
  const confidence = options.confidence ?? 0.85;
  if (!(confidence > 0 && confidence < 1))
    throw new InvalidArgumentError({
      argument: 'confidence',
      message: `confidence must be between 0 and 1 exclusive, got ${confidence}.`,
    });
  const warmUpHours = options.warmUpHours ?? 24;
  const forecaster = createSeasonalForecaster(options.forecaster);
  let lastHourStart = Number.NaN;
  const planner = new CapacityPlanner(objective, (count, hourStartMs) => {
    forecaster.observe(count);
    lastHourStart = hourStartMs;
  });
  const reactive = createReactiveCore(
    { ...options.reactive, ...(options.objective === undefined ? {} : { objective: options.objective }) },
    planner,
  );
  return {
    specificationVersion: 'v1',
    name: options.name ?? 'predictive',
    decide(snapshot) {
      planner.observe(snapshot);
      let forecastRate = 0;
      if (forecaster.observations >= warmUpHours && !Number.isNaN(lastHourStart)) {
        // Hours from the next unobserved one to the end of the horizon.
        const last = Math.max(1, Math.ceil((snapshot.now + horizonMs - (lastHourStart + HOUR_MS)) / HOUR_MS));
        for (let step = 1; step <= last; step++)
          forecastRate = Math.max(forecastRate, forecaster.forecast(step, confidence).lower / 3600);
      }
      const floor = reactive.workers(snapshot).workers;
      const tracker = planner.tracker;
      // Whole workers the forecast keeps busy at the confidence level (Little's law on the
      // lower end of the rate's interval: busy that often or more); idle capacity above them
      // is left to the planner, which prices it against late jobs.
      const busyExpected = Math.floor((forecastRate * tracker.serviceMs) / 1000);
      const desired = Math.max(floor, busyExpected);
      planner.commit(snapshot, desired);
      const idleTimeoutSeconds = planner.idleTimeoutSeconds(snapshot);
      return {
        // In cost mode the forecast does not start workers: it cannot pay for the cold start it
        // would save, so the policy is the reactive one's.
        targets: planner.costMode
          ? costSettings(snapshot, idleTimeoutSeconds)
          : splitNeed(snapshot, desired, { idleTimeoutSeconds }),
        reason: `forecast ${(forecastRate * 3600).toFixed(1)}/h, reactive floor ${floor}`,
      };
    },
  };
}
