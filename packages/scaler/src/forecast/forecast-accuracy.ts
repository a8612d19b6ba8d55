import { createSeasonalForecaster, type SeasonalForecasterOptions } from './seasonal-forecaster';

/** How well a forecaster did on a series of counts, one step ahead. */
export interface ForecastAccuracy {
  /** Mean absolute error of the forecaster over the scored periods. */
  meanAbsoluteError: number;
  /** Mean absolute error of the seasonal naive forecast (the same slot one season ago). */
  naiveMeanAbsoluteError: number;
  /** The ratio of the two: below 1 means better than the naive forecast. */
  mase: number;
  /** Share of scored periods inside the interval at `confidence`. */
  coverage: number;
  confidence: number;
  /** Periods scored. */
  scored: number;
}

/**
 * Scores a fresh forecaster on `counts` one step ahead: each period is forecast from the
 * periods before it only, then revealed. MASE is taken against the seasonal naive
 * forecast `counts[t - naiveLag]` (same slot yesterday for hourly counts), on the periods
 * from `scoreFrom` on (at least `naiveLag`).
 *
 * @example
 * const accuracy = evaluateForecaster(hourlyCounts, { naiveLag: 24, confidence: 0.9 });
 */
export function evaluateForecaster(
  counts: readonly number[],
  options: {
    naiveLag?: number;
    confidence?: number;
    scoreFrom?: number;
    forecaster?: SeasonalForecasterOptions;
  } = {},
): ForecastAccuracy {
  const naiveLag = options.naiveLag ?? 24;
  const confidence = options.confidence ?? 0.9;
  const scoreFrom = Math.max(naiveLag, options.scoreFrom ?? naiveLag);
  const forecaster = createSeasonalForecaster(options.forecaster);
  let error = 0;
  let naiveError = 0;
  let covered = 0;
  let scored = 0;
  for (let index = 0; index < counts.length; index++) {
    const actual = counts[index]!;
    if (index >= scoreFrom) {
      const forecast = forecaster.forecast(1, confidence);
      error += Math.abs(forecast.mean - actual);
      naiveError += Math.abs(counts[index - naiveLag]! - actual);
      if (actual >= forecast.lower && actual <= forecast.upper) covered++;
      scored++;
    }
    forecaster.observe(actual);
  }
  return {
    meanAbsoluteError: scored > 0 ? error / scored : 0,
    naiveMeanAbsoluteError: scored > 0 ? naiveError / scored : 0,
    mase: naiveError > 0 ? error / naiveError : Number.POSITIVE_INFINITY,
    coverage: scored > 0 ? covered / scored : 0,
    confidence,
    scored,
  };
}

/** Counts per period of `bucketMs` from sorted arrival times (epoch ms), starting at the period of the first. */
export function countPerPeriod(arrivalMs: ArrayLike<number>, bucketMs = 3_600_000): number[] {
  if (arrivalMs.length === 0) return [];
  const start = Math.floor(arrivalMs[0]! / bucketMs) * bucketMs;
  const counts: number[] = [];
  for (let index = 0; index < arrivalMs.length; index++) {
    const slot = Math.floor((arrivalMs[index]! - start) / bucketMs);
    while (counts.length <= slot) counts.push(0);
    counts[slot]!++;
  }
  return counts;
}
