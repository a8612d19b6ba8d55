import type {
  Clock,
  DemandSnapshot,
  ScaleSettings,
  ScaleTargetState,
  ScaleTargetV1,
  ScalingDecision,
  ScalingPolicyV1,
  ScalingSnapshot,
  TargetSnapshot,
} from '@comfy-serverless/core';
import {
  InvalidArgumentError,
  systemClock,
  toComfyServerlessError,
  UnsupportedSpecificationError,
} from '@comfy-serverless/core';
import type { LeaseGrant, LeaseV1 } from '../lease/lease-v1';
import { createMemoryLease } from '../lease/memory-lease';
import { TypedEmitter } from './typed-emitter';

/** What the autoscaler reads from the dispatcher (any object with this method will do). */
export interface DispatcherMetricsSource {
  metrics(): {
    demand: DemandSnapshot;
    providers: Record<string, { queueDepth: number; inFlight: number }>;
  };
}

/** Events of the autoscaler. */
export interface AutoscalerEvents extends Record<string, unknown> {
  'scale:decided': { snapshot: ScalingSnapshot; decision: ScalingDecision };
  'scale:applied': { targetId: string; settings: ScaleSettings; state: ScaleTargetState };
  'scale:error': { error: Error; targetId?: string };
  'lease:acquired': { token: number };
  'lease:lost': { token: number };
}

/** Options of `createAutoscaler`. */
export interface AutoscalerOptions {
  policy: ScalingPolicyV1;
  targets: ScaleTargetV1[];
  dispatcher: DispatcherMetricsSource;
  /** How often to decide, ms. @default 10_000 */
  intervalMs?: number;
  /** Who may apply decisions. @default an in-memory lease */
  lease?: LeaseV1;
  /** This host's name in the lease. @default a random id */
  holderId?: string;
  /** Lease time to live, ms. @default three intervals */
  leaseTtlMs?: number;
  /** Time after a change to a target before its capacity may go up again, ms. @default 0 */
  scaleUpCooldownMs?: number;
  /** Time after a change to a target before its capacity may go down, ms. @default 60_000 */
  scaleDownCooldownMs?: number;
  /** @default systemClock */
  clock?: Clock;
}

/** What one tick did. */
export interface AutoscalerTickResult {
  /** False when another host holds the lease (nothing was decided or applied). */
  leader: boolean;
  decision?: ScalingDecision;
  /** Settings applied, by target id (targets left as they were are absent). */
  applied: Record<string, ScaleSettings>;
}

/** The live scaling loop. */
export interface Autoscaler extends Pick<TypedEmitter<AutoscalerEvents>, 'on' | 'off'> {
  /** Starts ticking every `intervalMs`. */
  start(): void;
  /** Stops ticking and releases the lease. */
  stop(): Promise<void>;
  /** Runs one decision now (also what the timer calls). */
  tick(options?: { signal?: AbortSignal }): Promise<AutoscalerTickResult>;
  /** Whether this host held the lease at its last tick. */
  readonly isLeader: boolean;
}

const COUNT_FIELDS = ['minWorkers', 'maxWorkers', 'desiredWorkers', 'bufferWorkers'] as const;

function clampSettings(settings: ScaleSettings, state: ScaleTargetState): ScaleSettings {
  const { minWorkers: low, maxWorkers: high } = state.bounds;
  const clamp = (value: number) => Math.min(high, Math.max(low, Math.round(value)));
  const result: ScaleSettings = {};
  if (settings.maxWorkers !== undefined) result.maxWorkers = clamp(settings.maxWorkers);
  const ceiling = result.maxWorkers ?? state.maxWorkers;
  if (settings.minWorkers !== undefined) result.minWorkers = Math.min(clamp(settings.minWorkers), ceiling);
  if (settings.desiredWorkers !== undefined)
    result.desiredWorkers = Math.min(clamp(settings.desiredWorkers), ceiling);
  if (settings.bufferWorkers !== undefined)
    result.bufferWorkers = Math.max(0, Math.round(settings.bufferWorkers));
  if (settings.idleTimeoutSeconds !== undefined)
    result.idleTimeoutSeconds = Math.max(0, Math.round(settings.idleTimeoutSeconds));
  return result;
}

/**
 * The live autoscaler: every `intervalMs` it builds a `ScalingSnapshot` from the
 * dispatcher's metrics and every target's `describe()`, asks the policy, clamps the answer
 * to each target's bounds, holds back moves inside their cooldowns, applies what changed,
 * and emits `scale:decided` and `scale:applied`. It acts only while it holds the lease.
 *
 * @example
 * const autoscaler = createAutoscaler({ policy, targets: [runpodTarget], dispatcher, intervalMs: 10_000 });
 * autoscaler.on('scale:applied', ({ targetId, settings }) => console.log(targetId, settings));
 * autoscaler.start();
 */
export function createAutoscaler(options: AutoscalerOptions): Autoscaler {
  const { policy, targets, dispatcher } = options;
  if (policy?.specificationVersion !== 'v1' || typeof policy.decide !== 'function')
    throw new UnsupportedSpecificationError({
      message: `policy must be a ScalingPolicyV1 (specificationVersion 'v1' with decide), got ${String(policy?.specificationVersion)}.`,
    });
  if (!Array.isArray(targets) || targets.length === 0)
    throw new InvalidArgumentError({
      argument: 'targets',
      message: 'targets must hold at least one ScaleTargetV1.',
    });
  for (const target of targets)
    if (target?.specificationVersion !== 'v1')
      throw new UnsupportedSpecificationError({
        message: `Scale target ${String(target?.id)} has specificationVersion ${String(target?.specificationVersion)}; this autoscaler knows 'v1'.`,
      });
  if (typeof dispatcher?.metrics !== 'function')
    throw new InvalidArgumentError({
      argument: 'dispatcher',
      message: 'dispatcher must have a metrics() method (the dispatcher of @comfy-serverless/core has one).',
    });
  const intervalMs = options.intervalMs ?? 10_000;
  if (!(Number.isFinite(intervalMs) && intervalMs >= 100))
    throw new InvalidArgumentError({
      argument: 'intervalMs',
      message: `intervalMs must be >= 100, got ${intervalMs}.`,
    });
  const clock = options.clock ?? systemClock;
  const lease = options.lease ?? createMemoryLease({ clock });
  const holderId = options.holderId ?? `autoscaler-${Math.random().toString(36).slice(2, 10)}`;
  const leaseTtlMs = options.leaseTtlMs ?? intervalMs * 3;
  const scaleUpCooldownMs = options.scaleUpCooldownMs ?? 0;
  const scaleDownCooldownMs = options.scaleDownCooldownMs ?? 60_000;

  const emitter = new (class extends TypedEmitter<AutoscalerEvents> {
    fire<Name extends keyof AutoscalerEvents>(name: Name, payload: AutoscalerEvents[Name]) {
      this.emit(name, payload);
    }
  })();
  let grant: LeaseGrant | undefined;
  let timer: unknown;
  let running = false;
  const lastChangeAt = new Map<string, number>();

  const holdLease = async (): Promise<boolean> => {
    if (grant !== undefined) {
      const renewed = await lease.renew(grant, leaseTtlMs);
      if (renewed === undefined) {
        emitter.fire('lease:lost', { token: grant.token });
        grant = undefined;
      } else grant = renewed;
    }
    if (grant === undefined) {
      grant = await lease.acquire(holderId, leaseTtlMs);
      if (grant !== undefined) emitter.fire('lease:acquired', { token: grant.token });
    }
    return grant !== undefined;
  };

  const withCooldown = (targetId: string, wanted: ScaleSettings, state: ScaleTargetState): ScaleSettings => {
    const since = clock.now() - (lastChangeAt.get(targetId) ?? Number.NEGATIVE_INFINITY);
    const result: ScaleSettings = { ...wanted };
    for (const field of COUNT_FIELDS) {
      const next = wanted[field];
      const current = state[field as keyof ScaleTargetState] as number | undefined;
      if (next === undefined || current === undefined || next === current) continue;
      const tooSoon = next > current ? since < scaleUpCooldownMs : since < scaleDownCooldownMs;
      if (tooSoon) result[field] = current;
    }
    return result;
  };

  const differs = (settings: ScaleSettings, state: ScaleTargetState): boolean =>
    (Object.keys(settings) as (keyof ScaleSettings)[]).some(
      (field) =>
        settings[field] !== undefined && settings[field] !== (state as unknown as ScaleSettings)[field],
    );

  const tick = async (tickOptions: { signal?: AbortSignal } = {}): Promise<AutoscalerTickResult> => {
    const applied: Record<string, ScaleSettings> = {};
    if (!(await holdLease())) return { leader: false, applied };
    const metrics = dispatcher.metrics();
    const states = await Promise.all(
      targets.map((target) =>
        target.describe(tickOptions.signal === undefined ? {} : { signal: tickOptions.signal }),
      ),
    );
    const snapshotTargets: TargetSnapshot[] = targets.map((target, index) => {
      const state = states[index]!;
      const provider = target.providerId === undefined ? undefined : metrics.providers[target.providerId];
      const running = state.runningWorkers;
      const idle = state.idleWorkers;
      return {
        id: target.id,
        platform: target.platform,
        state,
        queueDepth: provider?.queueDepth ?? state.queueDepth ?? 0,
        inFlight: provider?.inFlight ?? Math.max(0, running - (idle ?? running)),
        ...(idle !== undefined && running > 0 ? { gpuUtilization: (running - idle) / running } : {}),
        usdPerSecond: state.usdPerSecond ?? 0,
        coldStartMs: state.coldStartMs ?? 30_000,
      };
    });
    const snapshot: ScalingSnapshot = {
      now: clock.now(),
      intervalMs,
      demand: metrics.demand,
      targets: snapshotTargets,
    };
    let decision: ScalingDecision;
    try {
      decision = policy.decide(snapshot);
    } catch (error) {
      emitter.fire('scale:error', { error: toComfyServerlessError(error) });
      return { leader: true, applied };
    }
    emitter.fire('scale:decided', { snapshot, decision });
    for (const [index, target] of targets.entries()) {
      const wanted = decision.targets[target.id];
      if (wanted === undefined) continue;
      const state = states[index]!;
      const settings = withCooldown(target.id, clampSettings(wanted, state), state);
      if (!differs(settings, state)) continue;
      // Fencing: a host that lost the lease while deciding must not apply.
      if (grant === undefined || !(await lease.isHeld(grant))) {
        if (grant !== undefined) emitter.fire('lease:lost', { token: grant.token });
        grant = undefined;
        return { leader: false, decision, applied };
      }
      try {
        const after = await target.apply(
          settings,
          tickOptions.signal === undefined ? {} : { signal: tickOptions.signal },
        );
        lastChangeAt.set(target.id, clock.now());
        applied[target.id] = settings;
        emitter.fire('scale:applied', { targetId: target.id, settings, state: after });
      } catch (error) {
        emitter.fire('scale:error', { error: toComfyServerlessError(error), targetId: target.id });
      }
    }
    return { leader: true, decision, applied };
  };

  const schedule = () => {
    if (!running) return;
    timer = clock.setTimeout(() => {
      tick()
        .catch((error: unknown) => emitter.fire('scale:error', { error: toComfyServerlessError(error) }))
        .finally(schedule);
    }, intervalMs);
  };

  return {
    on: emitter.on.bind(emitter),
    off: emitter.off.bind(emitter),
    start() {
      if (running) return;
      running = true;
      schedule();
    },
    async stop() {
      running = false;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      if (grant !== undefined) await lease.release(grant);
      grant = undefined;
    },
    tick,
    get isLeader() {
      return grant !== undefined;
    },
  };
}
