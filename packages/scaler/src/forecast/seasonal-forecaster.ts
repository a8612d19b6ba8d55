import { InvalidArgumentError } from '@comfy-serverless/core';

/** A forecast of one future period with its interval. */
export interface Forecast {
  /** Central forecast (counts). */
  mean: number;
  /** Lower end of the interval (counts, >= 0). */
  lower: number;
  /** Upper end of the interval (counts). */
  upper: number;
}

/** Options of `createSeasonalForecaster`. */
export interface SeasonalForecasterOptions {
  /** Season lengths in periods. @default [24, 168] (daily and weekly on hourly counts) */
  seasonLengths?: number[];
  /** Default confidence of intervals. @default 0.9 */
  confidence?: number;
  /** One-step errors kept for intervals. @default 336 (two weeks of hours) */
  residualWindow?: number;
}

/** A forecaster fed one count per period (an hour, typically). */
export interface SeasonalForecaster {
  /** Adds the count of the period that just ended. */
  observe(count: number): void;
  /** Forecast `stepsAhead` periods on (1 = the period now starting). */
  forecast(stepsAhead?: number, confidence?: number): Forecast;
  /** Periods observed so far. */
  readonly observations: number;
}

interface Candidate {
  level: number;
  seasons: Float64Array[];
  alpha: number;
  gamma: number;
  /** Smoothed absolute one-step error on the count scale: how this candidate is chosen. */
  score: number;
  residuals: Float64Array;
  residualCount: number;
}

// The smoothing constants are not fitted to any data set: a small grid runs side by side
// and the one with the lowest recent one-step error forecasts (online model selection).
const ALPHAS = [0.05, 0.15, 0.35];
const GAMMAS = [0.05, 0.15, 0.3];

/**
 * Holt-Winters with several additive seasonalities (Taylor's double-seasonal form, daily
 * and weekly by default), on the square root of the counts so that the noise of a count
 * process is about even. A grid of smoothing constants runs in parallel and the best
 * recent one forecasts. Intervals come from the empirical quantiles of recent one-step
 * errors (so their coverage follows what the data does, not a normal assumption),
 * widened by the square root of the horizon.
 *
 * @example
 * const forecaster = createSeasonalForecaster();
 * for (const count of hourlyCounts) forecaster.observe(count);
 * const next = forecaster.forecast(1, 0.9); // { mean, lower, upper }
 */
export function createSeasonalForecaster(options: SeasonalForecasterOptions = {}): SeasonalForecaster {
  const seasonLengths = options.seasonLengths ?? [24, 168];
  for (const length of seasonLengths)
    if (!Number.isInteger(length) || length < 2)
      throw new InvalidArgumentError({
        argument: 'seasonLengths',
        message: `seasonLengths must hold integers >= 2, got ${length}.`,
      });
  const defaultConfidence = options.confidence ?? 0.9;
  checkConfidence(defaultConfidence);
  const residualWindow = options.residualWindow ?? 336;
  const candidates: Candidate[] = [];
  for (const alpha of ALPHAS)
    for (const gamma of GAMMAS)
      candidates.push({
        level: Number.NaN,
        seasons: seasonLengths.map((length) => new Float64Array(length)),
        alpha,
        gamma,
        score: 0,
        residuals: new Float64Array(residualWindow),
        residualCount: 0,
      });
  let time = 0;
  let sorted = new Float64Array(0);
  let sortedFor: Candidate | undefined;
  let sortedAt = -1;

  const predictScaled = (candidate: Candidate, at: number): number => {
    let value = candidate.level;
    candidate.seasons.forEach((season, index) => {
      value += season[at % seasonLengths[index]!]!;
    });
    return value;
  };

  const best = (): Candidate => {
    let chosen = candidates[0]!;
    for (const candidate of candidates) if (candidate.score < chosen.score) chosen = candidate;
    return chosen;
  };

  return {
    get observations() {
      return time;
    },
    observe(count) {
      const value = Math.sqrt(Math.max(0, count));
      for (const candidate of candidates) {
        if (Number.isNaN(candidate.level)) {
          candidate.level = value;
          continue;
        }
        const predicted = predictScaled(candidate, time);
        const error = value - predicted;
        const countError = Math.abs(Math.max(0, predicted) ** 2 - count);
        candidate.score = candidate.score * 0.97 + countError * 0.03;
        candidate.residuals[candidate.residualCount % residualWindow] = error;
        candidate.residualCount++;
        candidate.level += candidate.alpha * error;
        // Each seasonal term corrects by the same error (Taylor's double-seasonal update);
        // the weekly one still learns more slowly because it sees each slot once a week.
        candidate.seasons.forEach((season, index) => {
          const slot = time % seasonLengths[index]!;
          season[slot] = season[slot]! + candidate.gamma * error;
        });
      }
      time++;
    },
    forecast(stepsAhead = 1, confidence = defaultConfidence) {
      checkConfidence(confidence);
      const candidate = best();
      if (Number.isNaN(candidate.level)) return { mean: 0, lower: 0, upper: 0 };
      const center = Math.max(0, predictScaled(candidate, time + stepsAhead - 1));
      const count = Math.min(candidate.residualCount, residualWindow);
      let low: number;
      let high: number;
      if (count >= 24) {
        // Sorted errors change only when a period is observed; a policy asks every decision.
        if (sortedFor !== candidate || sortedAt !== time) {
          sorted = candidate.residuals.slice(0, count).sort();
          sortedFor = candidate;
          sortedAt = time;
        }
        // Split-conformal ranks: the finite-sample correction keeps coverage at the level asked.
        low = sorted[Math.max(0, Math.floor(((count + 1) * (1 - confidence)) / 2) - 1)]!;
        high = sorted[Math.min(count - 1, Math.ceil(((count + 1) * (1 + confidence)) / 2) - 1)]!;
      } else {
        // Too few errors yet: the square root of a Poisson count has a spread of about 1/2.
        const z = normalQuantile((1 + confidence) / 2);
        low = -0.5 * z;
        high = 0.5 * z;
      }
      const widen = Math.sqrt(Math.max(1, stepsAhead));
      return {
        mean: center * center,
        lower: Math.max(0, center + low * widen) ** 2 * (center + low * widen > 0 ? 1 : 0),
        upper: Math.max(0, center + high * widen) ** 2,
      };
    },
  };
}

function checkConfidence(confidence: number): void {
  if (!(confidence > 0 && confidence < 1))
    throw new InvalidArgumentError({
      argument: 'confidence',
      message: `confidence must be between 0 and 1 exclusive, got ${confidence}.`,
    });
}

/** The standard normal quantile (Acklam's approximation, error below 1e-9 after refinement). */
export function normalQuantile(p: number): number {
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  if (p <= 0) return Number.NEGATIVE_INFINITY;
  if (p >= 1) return Number.POSITIVE_INFINITY;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (
      (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
      ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1)
    );
  }
  if (p > 1 - low) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
  );
}
