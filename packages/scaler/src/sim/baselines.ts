import type { ScalingDecision, ScalingPolicyV1, ScalingSnapshot } from '@comfy-serverless/core';
import { InvalidArgumentError } from '@comfy-serverless/core';

function forEveryTarget(
  snapshot: ScalingSnapshot,
  settings: (target: ScalingSnapshot['targets'][number]) => ScalingDecision['targets'][string],
): ScalingDecision['targets'] {
  const result: ScalingDecision['targets'] = {};
  for (const target of snapshot.targets) result[target.id] = settings(target);
  return result;
}

function requireNonNegative(name: string, value: number): void {
  if (!(value >= 0) || !Number.isFinite(value))
    throw new InvalidArgumentError({
      argument: name,
      message: `${name} must be a finite number >= 0, got ${value}.`,
    });
}

/**
 * Static provisioning: `workers` always up on every target (typically the peak
 * concurrency, so that no job waits once they are warm).
 */
export function createStaticPolicy(workers: number): ScalingPolicyV1 {
  requireNonNegative('workers', workers);
  return {
    specificationVersion: 'v1',
    name: `static-${workers}`,
    decide: (snapshot) => ({
      targets: forEveryTarget(snapshot, () => ({ minWorkers: workers, desiredWorkers: workers })),
    }),
  };
}

/**
 * Idle-timeout keep-alive, what users tune on RunPod (`idleTimeout`) and Modal
 * (`scaledown_window`) today: no warm floor, a worker starts for a job that finds none
 * idle, and stays `idleTimeoutSeconds` after its last job.
 */
export function createKeepAlivePolicy(idleTimeoutSeconds: number): ScalingPolicyV1 {
  requireNonNegative('idleTimeoutSeconds', idleTimeoutSeconds);
  return {
    specificationVersion: 'v1',
    name: `keep-alive-${idleTimeoutSeconds}s`,
    decide: (snapshot) => ({
      targets: forEveryTarget(snapshot, () => ({ minWorkers: 0, idleTimeoutSeconds })),
    }),
  };
}

/**
 * RunPod's QUEUE_DELAY scaler at its defaults: a worker is added for each queued job once
 * jobs have waited `scalerValue` seconds (default 4); idle workers stop after
 * `idleTimeoutSeconds` (default 5). Run it on a target without `startOnQueue`.
 */
export function createRunpodQueueDelayPolicy(
  options: { scalerValue?: number; idleTimeoutSeconds?: number } = {},
): ScalingPolicyV1 {
  const scalerValue = options.scalerValue ?? 4;
  const idleTimeoutSeconds = options.idleTimeoutSeconds ?? 5;
  requireNonNegative('scalerValue', scalerValue);
  requireNonNegative('idleTimeoutSeconds', idleTimeoutSeconds);
  let queuedSince: number | undefined;
  return {
    specificationVersion: 'v1',
    name: 'runpod-queue-delay',
    decide(snapshot) {
      const queueDepth = snapshot.demand.queueDepth;
      if (queueDepth === 0) queuedSince = undefined;
      else queuedSince ??= snapshot.now;
      const delayed = queuedSince !== undefined && snapshot.now - queuedSince >= scalerValue * 1000;
      return {
        targets: forEveryTarget(snapshot, (target) => {
          const pending = target.state.pendingWorkers ?? 0;
          const wanted = target.inFlight + (delayed ? Math.max(pending, target.queueDepth) : pending);
          return { desiredWorkers: wanted, minWorkers: 0, idleTimeoutSeconds };
        }),
      };
    },
  };
}

/**
 * RunPod's REQUEST_COUNT scaler at its defaults: `ceil((queued + running) / scalerValue)`
 * workers (default 4 jobs per worker); idle workers stop after 5 s. Run it on a target
 * without `startOnQueue`.
 */
export function createRunpodRequestCountPolicy(
  options: { scalerValue?: number; idleTimeoutSeconds?: number } = {},
): ScalingPolicyV1 {
  const scalerValue = options.scalerValue ?? 4;
  const idleTimeoutSeconds = options.idleTimeoutSeconds ?? 5;
  if (!(scalerValue > 0))
    throw new InvalidArgumentError({
      argument: 'scalerValue',
      message: `scalerValue must be > 0, got ${scalerValue}.`,
    });
  return {
    specificationVersion: 'v1',
    name: 'runpod-request-count',
    decide: (snapshot) => ({
      targets: forEveryTarget(snapshot, (target) => ({
        desiredWorkers: Math.ceil((target.queueDepth + target.inFlight) / scalerValue),
        minWorkers: 0,
        idleTimeoutSeconds,
      })),
    }),
  };
}

/** Knative Pod Autoscaler settings (its defaults, for a container concurrency of 1). */
export interface KnativeOptions {
  /** Concurrent requests per pod. @default 1 */
  targetConcurrency?: number;
  /** Share of the target to aim at. @default 0.7 */
  targetUtilization?: number;
  /** @default 60_000 */
  stableWindowMs?: number;
  /** Panic window as a share of the stable window. @default 0.1 */
  panicWindowShare?: number;
  /** Panic when the panic-window demand reaches this multiple of ready pods. @default 2 */
  panicThreshold?: number;
  /** Most the pod count may shrink by, as a factor per decision. @default 2 */
  maxScaleDownRate?: number;
  /** Time at zero demand before scaling to zero. @default 30_000 */
  scaleToZeroGraceMs?: number;
}

/**
 * A Knative-style stable/panic autoscaler at Knative's defaults: concurrency (running plus
 * queued) averaged over a 60 s stable and a 6 s panic window, aiming at 70 % of one job
 * per pod; in panic it never scales down. Run it on a target without `startOnQueue` with
 * a 2 s interval (Knative's tick).
 */
export function createKnativePolicy(options: KnativeOptions = {}): ScalingPolicyV1 {
  const target = (options.targetConcurrency ?? 1) * (options.targetUtilization ?? 0.7);
  const stableWindowMs = options.stableWindowMs ?? 60_000;
  const panicWindowMs = stableWindowMs * (options.panicWindowShare ?? 0.1);
  const panicThreshold = options.panicThreshold ?? 2;
  const maxScaleDownRate = options.maxScaleDownRate ?? 2;
  const scaleToZeroGraceMs = options.scaleToZeroGraceMs ?? 30_000;
  if (!(target > 0))
    throw new InvalidArgumentError({
      argument: 'targetConcurrency',
      message: 'targetConcurrency × targetUtilization must be > 0.',
    });
  const times: number[] = [];
  const samples: number[] = [];
  let panicUntil = Number.NEGATIVE_INFINITY;
  let lastNonZero = Number.NEGATIVE_INFINITY;
  const current: Record<string, number> = {};
  return {
    specificationVersion: 'v1',
    name: 'knative',
    decide(snapshot) {
      const now = snapshot.now;
      const concurrency = snapshot.demand.inFlight + snapshot.demand.queueDepth;
      times.push(now);
      samples.push(concurrency);
      while (times.length > 0 && times[0]! <= now - stableWindowMs) {
        times.shift();
        samples.shift();
      }
      let stableSum = 0;
      let panicSum = 0;
      let panicCount = 0;
      for (let index = 0; index < samples.length; index++) {
        stableSum += samples[index]!;
        if (times[index]! > now - panicWindowMs) {
          panicSum += samples[index]!;
          panicCount++;
        }
      }
      const stableDesired = Math.ceil(stableSum / samples.length / target);
      const panicDesired = Math.ceil(panicSum / Math.max(1, panicCount) / target);
      if (concurrency > 0) lastNonZero = now;
      return {
        targets: forEveryTarget(snapshot, (targetSnapshot) => {
          const ready = Math.max(1, targetSnapshot.state.runningWorkers);
          if (panicDesired / ready >= panicThreshold) panicUntil = now + stableWindowMs;
          const previous = current[targetSnapshot.id] ?? 0;
          let desired: number;
          if (now < panicUntil) desired = Math.max(previous, panicDesired, stableDesired);
          else desired = Math.max(stableDesired, Math.floor(previous / maxScaleDownRate));
          if (desired === 0 && now - lastNonZero < scaleToZeroGraceMs)
            desired = Math.max(1, previous > 0 ? 1 : 0);
          if (concurrency > 0) desired = Math.max(desired, 1);
          current[targetSnapshot.id] = desired;
          return { desiredWorkers: desired, minWorkers: 0, idleTimeoutSeconds: 0 };
        }),
      };
    },
  };
}
