import type { ScaleSettings, ScaleTargetState } from './scale-target-v1';

/** Demand as the dispatcher (or the simulator) observed it. */
export interface DemandSnapshot {
  /** Arrivals per interval, oldest first; the last bucket is the current, possibly partial, one. */
  arrivals: number[];
  /** Length of one arrivals bucket, in ms. */
  bucketMs: number;
  /** Jobs accepted but not yet running. */
  queueDepth: number;
  /** Jobs running. */
  inFlight: number;
  /** Queue waits of jobs that started in the recent window, in ms. */
  recentWaitsMs: number[];
  /** Execution times of jobs that finished in the recent window, in ms. */
  recentExecutionMs: number[];
}

/** One target as a policy sees it. */
export interface TargetSnapshot {
  id: string;
  platform: string;
  state: ScaleTargetState;
  /** Jobs of this target waiting, running. */
  queueDepth: number;
  inFlight: number;
  /** Share of workers' time spent running jobs in the recent window, 0..1, when known. */
  gpuUtilization?: number;
  /** USD per second of one worker. */
  usdPerSecond: number;
  /** Typical cold start in ms. */
  coldStartMs: number;
}

/** Everything a scaling policy decides from. The live autoscaler and the simulator build the same shape. */
export interface ScalingSnapshot {
  /** Epoch ms (virtual in the simulator). */
  now: number;
  /** How often the policy is called, in ms. */
  intervalMs: number;
  demand: DemandSnapshot;
  targets: TargetSnapshot[];
}

/** What a policy wants: settings per target id, with a reason for the logs. */
export interface ScalingDecision {
  targets: Record<string, ScaleSettings>;
  reason?: string;
}

/**
 * A scaling policy: a pure function of a snapshot (and the policy's own state).
 * It never does I/O; the autoscaler or simulator applies what it decides.
 *
 * @example
 * const policy: ScalingPolicyV1 = {
 *   specificationVersion: 'v1',
 *   name: 'one-per-queued-job',
 *   decide: (snapshot) => ({
 *     targets: Object.fromEntries(snapshot.targets.map((t) => [t.id, { desiredWorkers: t.queueDepth + t.inFlight }])),
 *   }),
 * };
 */
export interface ScalingPolicyV1 {
  readonly specificationVersion: 'v1';
  readonly name: string;
  decide(snapshot: ScalingSnapshot): ScalingDecision;
}
