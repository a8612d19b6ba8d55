import { InvalidArgumentError } from '@comfy-serverless/core';

/** A wait objective as a quantile: `quantile` of jobs wait at most `waitMs` (p99 wait <= 10 s). */
export interface WaitQuantileObjective {
  waitMs: number;
  quantile: number;
}

/** A wait objective as a share: at least `share` of jobs wait at most `waitMs`. */
export interface WaitShareObjective {
  waitMs: number;
  share: number;
}

/** Spend as little as possible; jobs may wait a cold start. */
export interface CostObjective {
  mode: 'cost';
}

/**
 * What a policy aims at. A policy finds the cheapest capacity that meets it on the
 * traffic it observes, instead of taking thresholds as constants.
 *
 * @example
 * const objective: ScalingObjective = { waitMs: 10_000, quantile: 0.99 };
 */
export type ScalingObjective = WaitQuantileObjective | WaitShareObjective | CostObjective;

/** An objective reduced to what the controllers use. */
export interface ResolvedObjective {
  kind: 'wait' | 'cost';
  /** Wait that counts as a violation when exceeded, ms (Infinity in cost mode). */
  waitMs: number;
  /** Share of jobs that may exceed `waitMs` (0..1). */
  allowedViolationShare: number;
}

/** Checks an objective and reduces it (a quantile q and a share s = q are the same target). */
export function resolveObjective(
  objective: ScalingObjective | undefined,
  argument = 'objective',
): ResolvedObjective {
  const value = objective ?? { waitMs: 10_000, quantile: 0.99 };
  if ('mode' in value) {
    if (value.mode !== 'cost')
      throw new InvalidArgumentError({
        argument: `${argument}.mode`,
        message: `${argument}.mode must be 'cost', got ${String(value.mode)}.`,
      });
    return { kind: 'cost', waitMs: Number.POSITIVE_INFINITY, allowedViolationShare: 1 };
  }
  if (!(typeof value.waitMs === 'number' && value.waitMs >= 0 && Number.isFinite(value.waitMs)))
    throw new InvalidArgumentError({
      argument: `${argument}.waitMs`,
      message: `${argument}.waitMs must be a wait in ms >= 0, got ${String(value.waitMs)}.`,
    });
  const share = 'quantile' in value ? value.quantile : (value as WaitShareObjective).share;
  const name = 'quantile' in value ? 'quantile' : 'share';
  if (!(typeof share === 'number' && share > 0 && share < 1))
    throw new InvalidArgumentError({
      argument: `${argument}.${name}`,
      message: `${argument}.${name} must be between 0 and 1 exclusive (0.99 for p99), got ${String(share)}.`,
    });
  return { kind: 'wait', waitMs: value.waitMs, allowedViolationShare: 1 - share };
}
