import type { ScaleSettings, ScalingPolicyV1, TargetSnapshot } from '@comfy-serverless/core';
import { InvalidArgumentError } from '@comfy-serverless/core';
import { createReactivePolicy } from '../policies/reactive-policy';
import { InfeasibleAllocationError } from '../scaler-errors';

/** Limits the split must respect. */
export interface AllocationConstraints {
  /** Most USD per hour for all workers, counting every worker each target may start. */
  maxBudgetPerHour?: number;
  /** Targets whose p99 latency (see `targetInfo`) is above this are not used. */
  p99LatencyTargetMs?: number;
  /** Availability the set of targets used must reach together: 1 - Π(1 - a). */
  minAvailability?: number;
  /** Most workers across all targets. */
  maxInstances?: number;
}

/** Weights of the objective. @default { cost: 0.6, latency: 0.3, availability: 0.1 } */
export interface AllocationWeights {
  cost: number;
  latency: number;
  availability: number;
}

/** What the optimiser knows of a target beyond its snapshot. */
export interface AllocationTargetInfo {
  /** Share of time the platform serves, 0..1. @default 0.99 */
  availability?: number;
  /** Expected p99 latency of a job on this target, ms. @default its cold start */
  p99LatencyMs?: number;
}

/** A split of workers over targets. */
export interface Allocation {
  /** Workers wanted up per target id. */
  workers: Record<string, number>;
  /** Most workers each target may start (so the budget holds whatever the platform does). */
  maxWorkers: Record<string, number>;
  /** The constraint that stopped the split short of the need, when one did. */
  binding?: 'maxBudgetPerHour' | 'maxInstances' | 'maxWorkers';
}

function validateConstraints(constraints: AllocationConstraints): void {
  const check = (name: keyof AllocationConstraints, valid: (value: number) => boolean, what: string) => {
    const value = constraints[name];
    if (value !== undefined && !(typeof value === 'number' && valid(value)))
      throw new InvalidArgumentError({
        argument: name,
        message: `${name} must be ${what}, got ${String(value)}.`,
      });
  };
  check('maxBudgetPerHour', (value) => value >= 0 && Number.isFinite(value), 'a USD amount >= 0');
  check('p99LatencyTargetMs', (value) => value > 0, 'a duration in ms > 0');
  check('minAvailability', (value) => value >= 0 && value < 1, 'between 0 and 1 (exclusive)');
  check('maxInstances', (value) => Number.isInteger(value) && value >= 0, 'an integer >= 0');
}

/**
 * Splits `need` workers across targets: each target gets a score from its price,
 * expected latency and availability (lower is better, weighted); targets above the
 * latency target are left out; the best-scored targets are used until their joint
 * availability reaches `minAvailability`; then workers go to the best target with room,
 * within `maxInstances`, each target's bounds and the hourly budget. Throws
 * `InfeasibleAllocationError` naming the constraint when the constraints contradict
 * each other; a need larger than they allow is capped and `binding` says why.
 *
 * @example
 * const allocation = allocateCapacity(12, snapshot.targets, { maxBudgetPerHour: 20 });
 */
export function allocateCapacity(
  need: number,
  targets: readonly TargetSnapshot[],
  constraints: AllocationConstraints = {},
  weights: AllocationWeights = { cost: 0.6, latency: 0.3, availability: 0.1 },
  info: Record<string, AllocationTargetInfo> = {},
): Allocation {
  validateConstraints(constraints);
  const described = targets.map((target) => ({
    target,
    availability: info[target.id]?.availability ?? 0.99,
    latencyMs: info[target.id]?.p99LatencyMs ?? target.coldStartMs,
    hourly: target.usdPerSecond * 3600,
    room: Math.max(0, Math.min(target.state.bounds.maxWorkers, target.state.bounds.maxWorkers)),
  }));
  const eligible =
    constraints.p99LatencyTargetMs === undefined
      ? described
      : described.filter((entry) => entry.latencyMs <= constraints.p99LatencyTargetMs!);
  if (eligible.length === 0)
    throw new InfeasibleAllocationError({
      constraint: 'p99LatencyTargetMs',
      message: `No target meets p99LatencyTargetMs ${constraints.p99LatencyTargetMs} ms (their p99 latencies: ${described
        .map((entry) => `${entry.target.id} ${Math.round(entry.latencyMs)} ms`)
        .join(', ')}). Raise the target or add a faster target.`,
    });
  const maxPrice = Math.max(1e-12, ...eligible.map((entry) => entry.hourly));
  const maxLatency = Math.max(1, ...eligible.map((entry) => entry.latencyMs));
  const maxOutage = Math.max(1e-12, ...eligible.map((entry) => 1 - entry.availability));
  const scored = eligible
    .map((entry) => ({
      ...entry,
      score:
        weights.cost * (entry.hourly / maxPrice) +
        weights.latency * (entry.latencyMs / maxLatency) +
        weights.availability * ((1 - entry.availability) / maxOutage),
    }))
    .sort((left, right) => left.score - right.score || left.hourly - right.hourly);

  // The fewest best-scored targets whose joint availability reaches the minimum.
  const required: typeof scored = [];
  let outage = 1;
  if (constraints.minAvailability !== undefined && constraints.minAvailability > 0) {
    for (const entry of scored) {
      if (1 - outage >= constraints.minAvailability) break;
      required.push(entry);
      outage *= 1 - entry.availability;
    }
    if (1 - outage < constraints.minAvailability)
      throw new InfeasibleAllocationError({
        constraint: 'minAvailability',
        message: `minAvailability ${constraints.minAvailability} cannot be reached: all eligible targets together give ${(1 - outage).toFixed(6)}. Lower it or add targets.`,
      });
  }
  const budget = constraints.maxBudgetPerHour ?? Number.POSITIVE_INFINITY;
  const instances = constraints.maxInstances ?? Number.POSITIVE_INFINITY;
  const wanted = Math.max(0, Math.ceil(need));
  if (wanted > 0 && required.length > 0) {
    const floorCost = required.reduce((sum, entry) => sum + entry.hourly, 0);
    if (floorCost > budget)
      throw new InfeasibleAllocationError({
        constraint: 'maxBudgetPerHour',
        message: `maxBudgetPerHour ${budget} is below the ${floorCost.toFixed(2)} USD/h of one worker on each target minAvailability needs (${required.map((entry) => entry.target.id).join(', ')}). Raise the budget or lower minAvailability.`,
      });
    if (required.length > instances)
      throw new InfeasibleAllocationError({
        constraint: 'maxInstances',
        message: `maxInstances ${instances} is below the ${required.length} targets minAvailability needs. Raise it or lower minAvailability.`,
      });
  }
  const workers: Record<string, number> = {};
  for (const entry of described) workers[entry.target.id] = 0;
  let spent = 0;
  let count = 0;
  let binding: Allocation['binding'];
  const give = (entry: (typeof scored)[number]): boolean => {
    if (count + 1 > instances) {
      binding = 'maxInstances';
      return false;
    }
    if (spent + entry.hourly > budget + 1e-9) {
      binding = 'maxBudgetPerHour';
      return false;
    }
    if (workers[entry.target.id]! + 1 > entry.room) {
      binding = 'maxWorkers';
      return false;
    }
    workers[entry.target.id]!++;
    spent += entry.hourly;
    count++;
    return true;
  };
  if (wanted > 0) for (const entry of required) give(entry);
  for (const entry of scored) {
    while (count < wanted && give(entry)) {}
    if (count >= wanted) break;
  }
  if (count >= wanted) binding = undefined;
  // Headroom: what is left of the budget and instance count goes to the best targets, so
  // that a platform starting workers on its own can never spend past the budget. Workers
  // already up keep their place under the cap (they may be running jobs), so moving the
  // cap from one target to another never lets both be full at once.
  const maxWorkers: Record<string, number> = {};
  let headroomSpent = 0;
  let headroomCount = 0;
  for (const entry of described) {
    const up = entry.target.state.runningWorkers + (entry.target.state.pendingWorkers ?? 0);
    const limit = Math.max(workers[entry.target.id]!, Math.min(up, entry.room));
    maxWorkers[entry.target.id] = limit;
    headroomSpent += limit * entry.hourly;
    headroomCount += limit;
  }
  for (const entry of scored) {
    let limit = maxWorkers[entry.target.id]!;
    while (
      limit < entry.room &&
      headroomCount < instances &&
      headroomSpent + entry.hourly <= budget + 1e-9 &&
      Number.isFinite(budget) === true
    ) {
      limit++;
      headroomCount++;
      headroomSpent += entry.hourly;
    }
    if (!Number.isFinite(budget) && !Number.isFinite(instances)) limit = entry.room;
    else if (!Number.isFinite(budget)) {
      const take = Math.min(entry.room - limit, instances - headroomCount);
      limit += take;
      headroomCount += take;
    }
    maxWorkers[entry.target.id] = limit;
  }
  // Targets left out (too slow) may start nothing.
  return binding === undefined ? { workers, maxWorkers } : { workers, maxWorkers, binding };
}

/** Options of `createAllocationOptimizer`. */
export interface AllocationOptimizerOptions extends AllocationConstraints {
  /** The policy whose total worker count is split. @default createReactivePolicy() */
  policy?: ScalingPolicyV1;
  /** @default { cost: 0.6, latency: 0.3, availability: 0.1 } */
  weights?: Partial<AllocationWeights>;
  /** Availability and latency per target id. */
  targetInfo?: Record<string, AllocationTargetInfo>;
  /** When the need exceeds what the constraints allow: cap it, or throw. @default 'cap' */
  onInfeasible?: 'cap' | 'throw';
  /** @default 'allocation' */
  name?: string;
}

/**
 * A policy that splits the capacity another policy asks for across targets by price,
 * expected latency and availability, under a budget per hour, a p99 latency target, a
 * minimum availability and a maximum instance count. It also caps every target's
 * `maxWorkers` so that the budget holds even when a platform starts workers by itself.
 *
 * @example
 * const policy = createAllocationOptimizer({
 *   policy: createPredictivePolicy({ objective: { waitMs: 10_000, quantile: 0.99 } }),
 *   maxBudgetPerHour: 25,
 *   p99LatencyTargetMs: 60_000,
 *   minAvailability: 0.999,
 * });
 */
export function createAllocationOptimizer(options: AllocationOptimizerOptions = {}): ScalingPolicyV1 {
  validateConstraints(options);
  const weights: AllocationWeights = {
    cost: options.weights?.cost ?? 0.6,
    latency: options.weights?.latency ?? 0.3,
    availability: options.weights?.availability ?? 0.1,
  };
  for (const [name, value] of Object.entries(weights))
    if (!(value >= 0 && Number.isFinite(value)))
      throw new InvalidArgumentError({
        argument: `weights.${name}`,
        message: `weights.${name} must be a number >= 0, got ${value}.`,
      });
  const inner = options.policy ?? createReactivePolicy();
  const onInfeasible = options.onInfeasible ?? 'cap';
  const constraints: AllocationConstraints = {
    ...(options.maxBudgetPerHour === undefined ? {} : { maxBudgetPerHour: options.maxBudgetPerHour }),
    ...(options.p99LatencyTargetMs === undefined ? {} : { p99LatencyTargetMs: options.p99LatencyTargetMs }),
    ...(options.minAvailability === undefined ? {} : { minAvailability: options.minAvailability }),
    ...(options.maxInstances === undefined ? {} : { maxInstances: options.maxInstances }),
  };
  return {
    specificationVersion: 'v1',
    name: options.name ?? `allocation(${inner.name})`,
    decide(snapshot) {
      const decision = inner.decide(snapshot);
      let need = 0;
      let idleTimeoutSeconds: number | undefined;
      for (const settings of Object.values(decision.targets)) {
        need += settings.desiredWorkers ?? settings.minWorkers ?? 0;
        idleTimeoutSeconds ??= settings.idleTimeoutSeconds;
      }
      const allocation = allocateCapacity(need, snapshot.targets, constraints, weights, options.targetInfo);
      if (allocation.binding !== undefined && onInfeasible === 'throw')
        throw new InfeasibleAllocationError({
          constraint: allocation.binding,
          message: `A need of ${need} workers exceeds what ${allocation.binding} allows; raise it or accept longer waits.`,
        });
      const targets: Record<string, ScaleSettings> = {};
      for (const target of snapshot.targets) {
        const workers = allocation.workers[target.id] ?? 0;
        targets[target.id] = {
          minWorkers: workers,
          desiredWorkers: workers,
          maxWorkers: allocation.maxWorkers[target.id] ?? workers,
          ...(idleTimeoutSeconds === undefined ? {} : { idleTimeoutSeconds }),
        };
      }
      return {
        targets,
        reason: `${decision.reason ?? inner.name}; split ${need}${allocation.binding ? `, capped by ${allocation.binding}` : ''}`,
      };
    },
  };
}
