import type { ScaleSettings, ScalingSnapshot } from '@comfy-serverless/core';

/**
 * Puts a worker count on the targets, cheapest first, each up to its bounds; used by the
 * single-pool policies (the allocation optimiser splits by cost, latency and availability).
 */
export function splitNeed(
  snapshot: ScalingSnapshot,
  workers: number,
  extra: Omit<ScaleSettings, 'minWorkers' | 'desiredWorkers'> = {},
): Record<string, ScaleSettings> {
  const order =
    snapshot.targets.length === 1
      ? snapshot.targets
      : [...snapshot.targets].sort((left, right) => left.usdPerSecond - right.usdPerSecond);
  const result: Record<string, ScaleSettings> = {};
  let remaining = Math.max(0, Math.ceil(workers));
  for (const target of order) {
    const room = Math.max(0, Math.min(target.state.maxWorkers, target.state.bounds.maxWorkers));
    const share = Math.min(remaining, room);
    remaining -= share;
    result[target.id] = { ...extra, minWorkers: share, desiredWorkers: share };
  }
  return result;
}

/** Idle workers across the targets of a snapshot. */
export function idleWorkers(snapshot: ScalingSnapshot): number {
  let idle = 0;
  for (const target of snapshot.targets) idle += target.state.idleWorkers ?? 0;
  return idle;
}

/** Workers starting across the targets of a snapshot. */
export function pendingWorkers(snapshot: ScalingSnapshot): number {
  let pending = 0;
  for (const target of snapshot.targets) pending += target.state.pendingWorkers ?? 0;
  return pending;
}

/**
 * Settings of cost mode: no warm floor, and the idle timeout that costs least on the
 * observed gaps; the platform starts a worker for a job that finds none idle.
 */
export function costSettings(
  snapshot: ScalingSnapshot,
  idleTimeoutSeconds: number,
): Record<string, ScaleSettings> {
  const result: Record<string, ScaleSettings> = {};
  for (const target of snapshot.targets) result[target.id] = { minWorkers: 0, idleTimeoutSeconds };
  return result;
}
