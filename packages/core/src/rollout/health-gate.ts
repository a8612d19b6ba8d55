import { InvalidArgumentError } from '../spec/errors';

/** How one side did over a step. */
export interface SideStats {
  /** Jobs that ended (completed or failed; cancellations are not counted). */
  samples: number;
  errors: number;
  /** errors / samples, 0..1 (0 when there are no samples). */
  errorRate: number;
  /** 95th percentile of submission-to-end latency, ms; undefined without samples. */
  p95Ms: number | undefined;
}

/** What a gate is asked at the end of a step. */
export interface StepComparison {
  stepIndex: number;
  /** Green's share of traffic during the step, percent. */
  weight: number;
  blue: SideStats;
  green: SideStats;
  /**
   * Blue's figures to compare against: its stats over this step when it had enough samples,
   * otherwise its last such stats from an earlier step (at 100 % green, blue gets none).
   */
  baseline: SideStats | undefined;
}

/** A gate's answer: pass (advance), hold (extend the step: not enough evidence), or fail (roll back). */
export interface GateVerdict {
  outcome: 'pass' | 'hold' | 'fail';
  /** Why, one sentence per check that mattered. */
  reasons: string[];
}

/** The thresholds of the built-in health gate. */
export interface HealthGateOptions {
  /** Green fails above this error rate, whatever blue does. @default 0.05 */
  maxErrorRate?: number;
  /** Green fails when its error rate exceeds blue's by more than this. @default 0.02 */
  maxErrorRateIncrease?: number;
  /** Green fails when its p95 latency exceeds blue's times this. @default 1.25 */
  maxLatencyRatio?: number;
  /** Green jobs needed in a step to judge it; with fewer the step is extended. @default 10 */
  minSamples?: number;
}

/** A gate: the built-in one's thresholds, or your own function of the comparison. */
export type HealthGate = HealthGateOptions | ((comparison: StepComparison) => GateVerdict);

function ratio(name: string, value: number | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!(typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= max)) {
    throw new InvalidArgumentError({
      argument: `gate.${name}`,
      message: `"gate.${name}" must be a number from 0 to ${max}; got ${String(value)}.`,
    });
  }
  return value;
}

/**
 * The built-in health gate: green must have `minSamples` jobs, an error rate at most
 * `maxErrorRate` and at most `maxErrorRateIncrease` above blue's, and a p95 latency at most
 * `maxLatencyRatio` times blue's.
 */
export function createHealthGate(
  options: HealthGateOptions = {},
): (comparison: StepComparison) => GateVerdict {
  const maxErrorRate = ratio('maxErrorRate', options.maxErrorRate, 0.05, 1);
  const maxErrorRateIncrease = ratio('maxErrorRateIncrease', options.maxErrorRateIncrease, 0.02, 1);
  const maxLatencyRatio = ratio('maxLatencyRatio', options.maxLatencyRatio, 1.25, Number.MAX_VALUE);
  const minSamples = options.minSamples ?? 10;
  if (!(Number.isInteger(minSamples) && minSamples >= 1)) {
    throw new InvalidArgumentError({
      argument: 'gate.minSamples',
      message: `"gate.minSamples" must be a whole number of at least 1; got ${String(options.minSamples)}.`,
    });
  }
  const percent = (value: number) => `${(value * 100).toFixed(1)} %`;
  return ({ green, baseline }) => {
    if (green.samples < minSamples) {
      return {
        outcome: 'hold',
        reasons: [`green ended ${green.samples} jobs in the step; ${minSamples} are needed to judge it`],
      };
    }
    const failures: string[] = [];
    if (green.errorRate > maxErrorRate) {
      failures.push(`green's error rate ${percent(green.errorRate)} is above ${percent(maxErrorRate)}`);
    }
    if (baseline !== undefined && green.errorRate - baseline.errorRate > maxErrorRateIncrease) {
      failures.push(
        `green's error rate ${percent(green.errorRate)} exceeds blue's ${percent(baseline.errorRate)} by more than ${percent(maxErrorRateIncrease)}`,
      );
    }
    if (
      baseline?.p95Ms !== undefined &&
      green.p95Ms !== undefined &&
      green.p95Ms > baseline.p95Ms * maxLatencyRatio
    ) {
      failures.push(
        `green's p95 latency ${Math.round(green.p95Ms)} ms is above ${maxLatencyRatio} x blue's ${Math.round(baseline.p95Ms)} ms`,
      );
    }
    if (failures.length > 0) return { outcome: 'fail', reasons: failures };
    return {
      outcome: 'pass',
      reasons: [
        `green: ${green.samples} jobs, ${percent(green.errorRate)} errors, p95 ${green.p95Ms === undefined ? 'n/a' : `${Math.round(green.p95Ms)} ms`}${baseline === undefined ? ' (no blue baseline yet)' : `; blue: ${percent(baseline.errorRate)} errors, p95 ${baseline.p95Ms === undefined ? 'n/a' : `${Math.round(baseline.p95Ms)} ms`}`}`,
      ],
    };
  };
}
