import type {
  DemandSnapshot,
  ScaleSettings,
  ScaleTargetState,
  ScalingPolicyV1,
  ScalingSnapshot,
  TargetSnapshot,
} from '@comfy-serverless/core';
import { InvalidArgumentError, UnsupportedSpecificationError } from '@comfy-serverless/core';
import { type ColdStartModel, coldStartQuantileMs, drawColdStartMs, meanColdStartMs } from './cold-start';
import { EventHeap } from './event-heap';
import { createRandom } from './random';
import { sortedQuantile } from './statistics';
import type { Trace } from './trace';

/** A simulated platform pool (one RunPod endpoint, one Modal class, one ECS service). */
export interface SimulatedTargetOptions {
  id: string;
  /** @default 'simulated' */
  platform?: string;
  /** USD per second of one worker, billed from start to stop. */
  usdPerSecond: number;
  /** Cold start in ms: fixed, or a distribution to draw from. */
  coldStart: ColdStartModel;
  /** Extra time when a worker runs a job for another model than its last one. @default 0 */
  modelSwitchMs?: number;
  /** Seconds an idle worker above the floor stays before it stops. @default 60 */
  idleTimeoutSeconds?: number;
  /** Workers kept even when idle, before the policy says otherwise. @default 0 */
  minWorkers?: number;
  /** Most workers. @default 100 */
  maxWorkers?: number;
  /**
   * Whether the platform starts a worker by itself for a job that finds none idle, as
   * RunPod and Modal do. Off for platforms that only follow a desired count (ECS) and
   * for baselines that model another platform's scaler.
   * @default true
   */
  startOnQueue?: boolean;
}

/** What a simulation run is given. */
export interface SimulationOptions {
  trace: Trace;
  policy: ScalingPolicyV1;
  targets: SimulatedTargetOptions[];
  /** How often the policy is called, in virtual ms. @default 10_000 */
  intervalMs?: number;
  /** Arrival bucket length in the demand snapshot. @default 10_000 (as the dispatcher) */
  bucketMs?: number;
  /**
   * Arrival buckets in the demand snapshot. The dispatcher keeps 360 (an hour); the
   * simulator defaults to 60 (ten minutes) because a replay builds this array at every
   * decision. Set 360 for a policy that reads the whole hour.
   * @default 60
   */
  demandBuckets?: number;
  /**
   * Recent waits and execution times in the demand snapshot, as the dispatcher keeps them
   * (1000). Policies learn the waits of the jobs that started since their last call from
   * the newest entries, so this must exceed the most jobs that start in one interval, or
   * the waits beyond it never reach them. 256 (was 64): on the bench's runs every figure is
   * the same with 256 as with 1000, and building 1000-entry arrays at each decision cost a
   * third more time on a million jobs. @default 256
   */
  sampleLimit?: number;
  /** Seed of the cold-start draws. @default 1 */
  seed?: number;
  /** Wait counted as "good" for `shareWithinThreshold`. @default 10_000 */
  waitThresholdMs?: number;
  /** Length of one timeline point. @default the run's length / 500, at least 1 min */
  timelineBucketMs?: number;
  /** Called with 0..1 as the replay advances. */
  onProgress?: (fraction: number) => void;
}

/** Timeline of a run, for charts. */
export interface SimulationTimeline {
  startMs: number;
  bucketMs: number;
  /** Arrivals per bucket. */
  arrivals: number[];
  /** Mean workers up (booting, idle or busy) per bucket. */
  workers: number[];
  /** Mean workers busy per bucket. */
  busy: number[];
  /** 95th percentile wait of the jobs that arrived in the bucket, in ms. */
  waitP95Ms: number[];
}

/** What a simulation run reports. */
export interface SimulationResult {
  policy: string;
  jobs: number;
  /** Virtual ms from the first to the last event. */
  durationMs: number;
  /** Worker-seconds billed (start to stop, cold start and idle included). */
  gpuSeconds: number;
  costUsd: number;
  /** Worker-seconds spent running jobs. */
  busySeconds: number;
  /** Share of billed time not running jobs (booting or idle). */
  idleShare: number;
  waitP50Ms: number;
  waitP95Ms: number;
  waitP99Ms: number;
  waitMaxMs: number;
  /** Share of jobs that waited at most `waitThresholdMs` (10 s by default). */
  shareWithin10s: number;
  /** Workers started (each pays a cold start). */
  coldStarts: number;
  /** Times the policy changed a target's settings. */
  scalingActions: number;
  /** Most spent in any clock hour, USD. */
  maxHourlyCostUsd: number;
  /** Policy calls. */
  decisions: number;
  perTarget: Record<string, { gpuSeconds: number; costUsd: number; coldStarts: number }>;
  timeline: SimulationTimeline;
  /** Every job's wait in ms, in trace order. */
  waitsMs: Float64Array;
}

const BOOTING = 1;
const IDLE = 2;
const BUSY = 3;
const EVENT_READY = 0;
const EVENT_DONE = 1;
const EVENT_IDLE_CHECK = 2;
const HOUR_MS = 3_600_000;

interface TargetRuntime {
  options: SimulatedTargetOptions;
  index: number;
  price: number;
  coldStart: ColdStartModel;
  modelSwitchMs: number;
  startOnQueue: boolean;
  bounds: { minWorkers: number; maxWorkers: number };
  settings: Required<Omit<ScaleSettings, 'desiredWorkers'>> & { desiredWorkers: number | undefined };
  alive: number;
  booting: number;
  busy: number;
  idle: Int32Array;
  idleCount: number;
  starts: number;
  aliveArea: number;
  busyArea: number;
  aliveAreaAtTick: number;
  busyAreaAtTick: number;
}

function validateTarget(target: SimulatedTargetOptions, index: number): void {
  const name = `targets[${index}]`;
  if (typeof target.id !== 'string' || target.id.length === 0)
    throw new InvalidArgumentError({
      argument: `${name}.id`,
      message: `${name}.id must be a non-empty string.`,
    });
  if (!(target.usdPerSecond >= 0))
    throw new InvalidArgumentError({
      argument: `${name}.usdPerSecond`,
      message: `${name}.usdPerSecond must be a price >= 0 in USD per second, got ${target.usdPerSecond}.`,
    });
  const coldStart = target.coldStart;
  if (typeof coldStart === 'number' ? !(coldStart >= 0) : coldStart?.samplesMs === undefined)
    throw new InvalidArgumentError({
      argument: `${name}.coldStart`,
      message: `${name}.coldStart must be ms >= 0 or a distribution from createColdStartDistribution.`,
    });
  const maxWorkers = target.maxWorkers ?? 100;
  if (!Number.isInteger(maxWorkers) || maxWorkers < 1 || maxWorkers > 100_000)
    throw new InvalidArgumentError({
      argument: `${name}.maxWorkers`,
      message: `${name}.maxWorkers must be an integer from 1 to 100000, got ${target.maxWorkers}.`,
    });
  const minWorkers = target.minWorkers ?? 0;
  if (!Number.isInteger(minWorkers) || minWorkers < 0 || minWorkers > maxWorkers)
    throw new InvalidArgumentError({
      argument: `${name}.minWorkers`,
      message: `${name}.minWorkers must be an integer from 0 to maxWorkers (${maxWorkers}), got ${target.minWorkers}.`,
    });
}

/**
 * Replays a trace against simulated targets on a virtual clock, calling `policy` every
 * `intervalMs` with the same `ScalingSnapshot` shape the live autoscaler builds, and
 * applying its decisions as a platform would. Synchronous: a run never waits on real time.
 *
 * Jobs queue in one FIFO; a job goes to an idle worker of the cheapest target that has
 * one (preferring a worker whose last model matches). A platform with `startOnQueue`
 * starts a worker for each job no idle or booting worker will take. Workers above the
 * floor (`max(minWorkers, desiredWorkers, busy + bufferWorkers)`) stop after
 * `idleTimeoutSeconds` idle.
 *
 * @example
 * const result = simulate({
 *   trace,
 *   policy: createPredictivePolicy({ objective: { waitMs: 10_000, quantile: 0.99 } }),
 *   targets: [{ id: 'pool', usdPerSecond: 0.00076, coldStart: 23_000 }],
 * });
 * console.log(result.gpuSeconds, result.waitP99Ms);
 */
export function simulate(options: SimulationOptions): SimulationResult {
  const { trace, policy } = options;
  if (policy?.specificationVersion !== 'v1' || typeof policy.decide !== 'function')
    throw new UnsupportedSpecificationError({
      message: `The policy must be a ScalingPolicyV1 (specificationVersion 'v1' and a decide function); got ${String(policy?.specificationVersion)}.`,
    });
  if (!Array.isArray(options.targets) || options.targets.length === 0)
    throw new InvalidArgumentError({ argument: 'targets', message: 'Give at least one simulated target.' });
  options.targets.forEach(validateTarget);
  const intervalMs = options.intervalMs ?? 10_000;
  if (!(intervalMs >= 100))
    throw new InvalidArgumentError({
      argument: 'intervalMs',
      message: `intervalMs must be >= 100, got ${intervalMs}.`,
    });
  const bucketMs = options.bucketMs ?? 10_000;
  if (!(bucketMs > 0))
    throw new InvalidArgumentError({
      argument: 'bucketMs',
      message: `bucketMs must be > 0, got ${bucketMs}.`,
    });
  const demandBuckets = Math.max(1, Math.floor(options.demandBuckets ?? 60));
  const sampleLimit = Math.max(1, Math.floor(options.sampleLimit ?? 256));
  const waitThresholdMs = options.waitThresholdMs ?? 10_000;
  const random = createRandom(options.seed ?? 1);

  const targets: TargetRuntime[] = options.targets.map((target, index) => {
    const maxWorkers = target.maxWorkers ?? 100;
    return {
      options: target,
      index,
      price: target.usdPerSecond,
      coldStart: target.coldStart,
      modelSwitchMs: target.modelSwitchMs ?? 0,
      startOnQueue: target.startOnQueue ?? true,
      bounds: { minWorkers: 0, maxWorkers },
      settings: {
        minWorkers: target.minWorkers ?? 0,
        maxWorkers,
        desiredWorkers: undefined,
        idleTimeoutSeconds: target.idleTimeoutSeconds ?? 60,
        bufferWorkers: 0,
      },
      alive: 0,
      booting: 0,
      busy: 0,
      idle: new Int32Array(maxWorkers),
      idleCount: 0,
      starts: 0,
      aliveArea: 0,
      busyArea: 0,
      aliveAreaAtTick: 0,
      busyAreaAtTick: 0,
    };
  });
  // Cheapest first: jobs and on-demand starts go there before anywhere else.
  const byPrice = [...targets].sort((left, right) => left.price - right.price || left.index - right.index);

  const capacity = targets.reduce((sum, target) => sum + target.bounds.maxWorkers, 0);
  const workerTarget = new Int32Array(capacity);
  const workerState = new Uint8Array(capacity);
  const workerStamp = new Int32Array(capacity);
  const workerIdleSince = new Float64Array(capacity);
  const workerModel = new Int32Array(capacity);
  const workerIdlePosition = new Int32Array(capacity);
  const workerExecution = new Float64Array(capacity);
  const freeSlots = new Int32Array(capacity);
  let freeCount = capacity;
  for (let index = 0; index < capacity; index++) freeSlots[index] = capacity - 1 - index;

  const jobCount = trace.count;
  const waits = new Float64Array(jobCount);
  const queue = new Int32Array(Math.max(1, jobCount));
  let queueHead = 0;
  let queueTail = 0;
  const heap = new EventHeap(Math.max(1024, capacity * 2));

  // Demand window, as the dispatcher keeps it.
  const arrivalRing = new Float64Array(demandBuckets);
  let ringBucket = Number.NaN;
  const waitRing = new Float64Array(sampleLimit);
  let waitRingCount = 0;
  const executionRing = new Float64Array(sampleLimit);
  let executionRingCount = 0;

  const firstArrival = jobCount > 0 ? trace.arrivalMs[0]! : 0;
  const lastArrival = jobCount > 0 ? trace.arrivalMs[jobCount - 1]! : 0;
  let longestColdStart = 0;
  for (const target of targets)
    longestColdStart = Math.max(longestColdStart, coldStartQuantileMs(target.coldStart, 0.99));
  // The first decision is on a grid that does not depend on when exactly the first job comes:
  // the start of the clock hour that holds (first arrival - longest cold start - interval).
  // An interval-aligned start right before the first arrival would tell a policy, by its
  // first \`now\`, that a job is about to come.
  const startTime = Math.floor((firstArrival - longestColdStart - intervalMs) / HOUR_MS) * HOUR_MS;
  const span = Math.max(1, lastArrival - startTime + HOUR_MS);
  const timelineBucketMs =
    options.timelineBucketMs ?? Math.max(60_000, Math.ceil(span / 500 / 60_000) * 60_000);
  const timelineLength = Math.ceil(span / timelineBucketMs) + 2;
  const timelineArrivals = new Float64Array(timelineLength);
  const timelineAlive = new Float64Array(timelineLength);
  const timelineBusy = new Float64Array(timelineLength);
  const hourlyCost: number[] = [];
  const hourOrigin = Math.floor(startTime / HOUR_MS) * HOUR_MS;

  let now = startTime;
  let totalAlive = 0;
  let totalBusy = 0;
  let costRate = 0;
  let aliveArea = 0;
  let busyArea = 0;
  let coldStarts = 0;
  let scalingActions = 0;
  let decisions = 0;

  const growTimeline = (index: number): boolean => index < timelineLength;

  const advanceTo = (time: number): void => {
    while (now < time) {
      const timelineIndex = Math.floor((now - startTime) / timelineBucketMs);
      const hourIndex = Math.floor((now - hourOrigin) / HOUR_MS);
      const boundary = Math.min(
        time,
        startTime + (timelineIndex + 1) * timelineBucketMs,
        hourOrigin + (hourIndex + 1) * HOUR_MS,
      );
      const duration = boundary - now;
      aliveArea += totalAlive * duration;
      busyArea += totalBusy * duration;
      if (growTimeline(timelineIndex)) {
        timelineAlive[timelineIndex]! += totalAlive * duration;
        timelineBusy[timelineIndex]! += totalBusy * duration;
      }
      while (hourlyCost.length <= hourIndex) hourlyCost.push(0);
      hourlyCost[hourIndex]! += (costRate * duration) / 1000;
      for (const target of targets) {
        target.aliveArea += target.alive * duration;
        target.busyArea += target.busy * duration;
      }
      now = boundary;
    }
  };

  const floorOf = (target: TargetRuntime): number => {
    const settings = target.settings;
    const floor = Math.max(
      settings.minWorkers,
      settings.desiredWorkers ?? 0,
      settings.bufferWorkers > 0 ? target.busy + settings.bufferWorkers : 0,
    );
    return Math.min(floor, settings.maxWorkers);
  };

  const pushIdle = (target: TargetRuntime, worker: number): void => {
    workerIdlePosition[worker] = target.idleCount;
    target.idle[target.idleCount++] = worker;
  };
  const removeIdle = (target: TargetRuntime, worker: number): void => {
    const position = workerIdlePosition[worker]!;
    const last = target.idle[--target.idleCount]!;
    target.idle[position] = last;
    workerIdlePosition[last] = position;
  };

  const startWorker = (target: TargetRuntime): void => {
    const worker = freeSlots[--freeCount]!;
    workerTarget[worker] = target.index;
    workerState[worker] = BOOTING;
    workerModel[worker] = -1;
    const stamp = ++workerStamp[worker]!;
    target.alive++;
    target.booting++;
    target.starts++;
    totalAlive++;
    coldStarts++;
    costRate += target.price;
    heap.push(now + drawColdStartMs(target.coldStart, random), worker * 4 + EVENT_READY, stamp);
  };

  const stopWorker = (target: TargetRuntime, worker: number): void => {
    removeIdle(target, worker);
    workerState[worker] = 0;
    workerStamp[worker]!++;
    target.alive--;
    totalAlive--;
    costRate -= target.price;
    freeSlots[freeCount++] = worker;
  };

  const scheduleIdleCheck = (target: TargetRuntime, worker: number): void => {
    const at = Math.max(now, workerIdleSince[worker]! + target.settings.idleTimeoutSeconds * 1000);
    heap.push(at, worker * 4 + EVENT_IDLE_CHECK, workerStamp[worker]!);
  };

  const recordSample = (ring: Float64Array, count: number, value: number): number => {
    ring[count % sampleLimit] = value;
    return count + 1;
  };

  const runJob = (target: TargetRuntime, worker: number, job: number): void => {
    removeIdle(target, worker);
    workerState[worker] = BUSY;
    const stamp = ++workerStamp[worker]!;
    target.busy++;
    totalBusy++;
    const wait = now - trace.arrivalMs[job]!;
    waits[job] = wait;
    waitRingCount = recordSample(waitRing, waitRingCount, wait);
    const model = trace.modelIndex[job]!;
    let execution = trace.executionMs[job]!;
    if (model >= 0) {
      if (workerModel[worker] !== -1 && workerModel[worker] !== model) execution += target.modelSwitchMs;
      workerModel[worker] = model;
    }
    workerExecution[worker] = execution;
    heap.push(now + execution, worker * 4 + EVENT_DONE, stamp);
  };

  const pickIdle = (target: TargetRuntime, model: number): number => {
    const top = target.idleCount - 1;
    if (model >= 0 && target.modelSwitchMs > 0) {
      const stop = Math.max(0, top - 8);
      for (let position = top; position >= stop; position--) {
        const worker = target.idle[position]!;
        if (workerModel[worker] === model || workerModel[worker] === -1) return worker;
      }
    }
    return target.idle[top]!;
  };

  const dispatch = (): void => {
    while (queueHead < queueTail) {
      let chosen: TargetRuntime | undefined;
      for (const target of byPrice)
        if (target.idleCount > 0) {
          chosen = target;
          break;
        }
      if (chosen === undefined) return;
      const job = queue[queueHead++]!;
      runJob(chosen, pickIdle(chosen, trace.modelIndex[job]!), job);
    }
  };

  const ensureFloors = (): void => {
    for (const target of targets) {
      const floor = floorOf(target);
      while (target.alive < floor && freeCount > 0) startWorker(target);
    }
  };

  const startForQueue = (): void => {
    let uncovered = queueTail - queueHead;
    for (const target of targets) uncovered -= target.booting;
    while (uncovered > 0) {
      let chosen: TargetRuntime | undefined;
      for (const target of byPrice)
        if (target.startOnQueue && target.alive < target.settings.maxWorkers) {
          chosen = target;
          break;
        }
      if (chosen === undefined || freeCount === 0) return;
      startWorker(chosen);
      uncovered--;
    }
  };

  const becomeIdle = (target: TargetRuntime, worker: number): void => {
    workerState[worker] = IDLE;
    workerStamp[worker]!++;
    workerIdleSince[worker] = now;
    pushIdle(target, worker);
  };

  const afterChange = (): void => {
    dispatch();
    startForQueue();
    ensureFloors();
  };

  const sweepIdle = (target: TargetRuntime): void => {
    for (let position = 0; position < target.idleCount; position++) {
      const worker = target.idle[position]!;
      workerStamp[worker]!++;
      scheduleIdleCheck(target, worker);
    }
  };

  const clampCount = (value: number | undefined, target: TargetRuntime): number | undefined => {
    if (value === undefined || !Number.isFinite(value)) return undefined;
    return Math.min(target.bounds.maxWorkers, Math.max(target.bounds.minWorkers, Math.round(value)));
  };

  const applySettings = (target: TargetRuntime, settings: ScaleSettings): void => {
    const current = target.settings;
    const next = { ...current };
    const maxWorkers = clampCount(settings.maxWorkers, target);
    if (maxWorkers !== undefined) next.maxWorkers = maxWorkers;
    const minWorkers = clampCount(settings.minWorkers, target);
    if (minWorkers !== undefined) next.minWorkers = Math.min(minWorkers, next.maxWorkers);
    if (settings.desiredWorkers !== undefined)
      next.desiredWorkers = Math.min(clampCount(settings.desiredWorkers, target) ?? 0, next.maxWorkers);
    if (settings.idleTimeoutSeconds !== undefined && Number.isFinite(settings.idleTimeoutSeconds))
      next.idleTimeoutSeconds = Math.max(0, settings.idleTimeoutSeconds);
    if (settings.bufferWorkers !== undefined && Number.isFinite(settings.bufferWorkers))
      next.bufferWorkers = Math.max(0, Math.round(settings.bufferWorkers));
    if (
      next.maxWorkers === current.maxWorkers &&
      next.minWorkers === current.minWorkers &&
      next.desiredWorkers === current.desiredWorkers &&
      next.idleTimeoutSeconds === current.idleTimeoutSeconds &&
      next.bufferWorkers === current.bufferWorkers
    )
      return;
    const floorBefore = floorOf(target);
    const timeoutBefore = current.idleTimeoutSeconds;
    target.settings = next;
    scalingActions++;
    if (
      floorOf(target) < floorBefore ||
      next.idleTimeoutSeconds < timeoutBefore ||
      (next.maxWorkers < current.maxWorkers && target.alive > next.maxWorkers)
    )
      sweepIdle(target);
  };

  const rollArrivals = (bucket: number): void => {
    if (bucket === ringBucket) return;
    if (Number.isNaN(ringBucket) || bucket - ringBucket >= demandBuckets) arrivalRing.fill(0);
    else for (let index = ringBucket + 1; index <= bucket; index++) arrivalRing[index % demandBuckets] = 0;
    ringBucket = bucket;
  };

  const ringToArray = (ring: Float64Array, count: number): number[] => {
    const size = Math.min(count, sampleLimit);
    const result = new Array<number>(size);
    const first = count - size;
    for (let index = 0; index < size; index++) result[index] = ring[(first + index) % sampleLimit]!;
    return result;
  };

  // The arrays of the demand snapshot are built only when a policy reads them, and shared
  // between snapshots while nothing changed (policies must not mutate them), so that a
  // replay of a million jobs does not spend its time allocating.
  let cachedArrivals: { bucket: number; version: number; value: number[] } | undefined;
  let cachedWaits: { version: number; value: number[] } | undefined;
  let cachedExecutions: { version: number; value: number[] } | undefined;
  let arrivalVersion = 0;
  const buildSnapshot = (): ScalingSnapshot => {
    const bucket = Math.floor(now / bucketMs);
    rollArrivals(bucket);
    const queueDepth = queueTail - queueHead;
    const waitCount = waitRingCount;
    const executionCount = executionRingCount;
    const version = arrivalVersion;
    const demand: DemandSnapshot = {
      get arrivals() {
        if (
          cachedArrivals === undefined ||
          cachedArrivals.bucket !== bucket ||
          cachedArrivals.version !== version
        ) {
          const value = new Array<number>(demandBuckets);
          for (let index = 0; index < demandBuckets; index++)
            value[index] =
              arrivalRing[
                (((bucket - demandBuckets + 1 + index) % demandBuckets) + demandBuckets) % demandBuckets
              ]!;
          cachedArrivals = { bucket, version, value };
        }
        return cachedArrivals.value;
      },
      bucketMs,
      queueDepth,
      inFlight: totalBusy,
      get recentWaitsMs() {
        if (cachedWaits?.version !== waitCount)
          cachedWaits = { version: waitCount, value: ringToArray(waitRing, waitCount) };
        return cachedWaits.value;
      },
      get recentExecutionMs() {
        if (cachedExecutions?.version !== executionCount)
          cachedExecutions = { version: executionCount, value: ringToArray(executionRing, executionCount) };
        return cachedExecutions.value;
      },
    };
    let unattributed = queueDepth;
    const queueShare = new Array<number>(targets.length).fill(0);
    for (const target of byPrice) {
      const share = Math.min(unattributed, target.booting);
      queueShare[target.index] = share;
      unattributed -= share;
    }
    if (unattributed > 0) {
      const first = byPrice.find((target) => target.startOnQueue) ?? byPrice[0]!;
      queueShare[first.index]! += unattributed;
    }
    const targetSnapshots: TargetSnapshot[] = targets.map((target) => {
      const aliveDelta = target.aliveArea - target.aliveAreaAtTick;
      const busyDelta = target.busyArea - target.busyAreaAtTick;
      target.aliveAreaAtTick = target.aliveArea;
      target.busyAreaAtTick = target.busyArea;
      // The exact mean of the distribution the cold starts are drawn from: more than a live
      // platform tells (it reports a configured or measured figure), so policies in the
      // simulator know the mean cold start exactly.
      const coldStartMs = meanColdStartMs(target.coldStart);
      const state: ScaleTargetState = {
        minWorkers: target.settings.minWorkers,
        maxWorkers: target.settings.maxWorkers,
        ...(target.settings.desiredWorkers === undefined
          ? {}
          : { desiredWorkers: target.settings.desiredWorkers }),
        runningWorkers: target.alive - target.booting,
        idleWorkers: target.idleCount,
        pendingWorkers: target.booting,
        queueDepth: queueShare[target.index]!,
        idleTimeoutSeconds: target.settings.idleTimeoutSeconds,
        bounds: { ...target.bounds },
        usdPerSecond: target.price,
        coldStartMs,
        describedAt: now,
      };
      return {
        id: target.options.id,
        platform: target.options.platform ?? 'simulated',
        state,
        queueDepth: queueShare[target.index]!,
        inFlight: target.busy,
        ...(aliveDelta > 0 ? { gpuUtilization: busyDelta / aliveDelta } : {}),
        usdPerSecond: target.price,
        coldStartMs,
      };
    });
    return { now, intervalMs, demand, targets: targetSnapshots };
  };

  const targetById = new Map(targets.map((target) => [target.options.id, target]));
  const tick = (): void => {
    decisions++;
    const decision = policy.decide(buildSnapshot());
    const settingsById = decision?.targets ?? {};
    for (const id of Object.keys(settingsById)) {
      const target = targetById.get(id);
      const settings = settingsById[id];
      if (target !== undefined && settings !== undefined) applySettings(target, settings);
    }
    afterChange();
  };

  // The main loop: arrivals come from the sorted trace, worker events from the heap,
  // policy calls at a fixed period. At equal times: worker events, then arrivals, then the policy.
  let nextJob = 0;
  let nextTick = startTime;
  let lastCompletion = startTime;
  const progressEvery = Math.max(1, Math.floor(jobCount / 100));
  for (;;) {
    const eventTime = heap.peekTime();
    const arrivalTime = nextJob < jobCount ? trace.arrivalMs[nextJob]! : Number.POSITIVE_INFINITY;
    const finished = nextJob >= jobCount && queueHead === queueTail && totalBusy === 0;
    if (finished) break;
    // A policy that never starts a worker for the jobs left would spin forever: stop a week on.
    if (nextJob >= jobCount && now > lastArrival + 7 * 24 * HOUR_MS) {
      for (let index = queueHead; index < queueTail; index++)
        waits[queue[index]!] = now - trace.arrivalMs[queue[index]!]!;
      lastCompletion = now;
      break;
    }
    if (eventTime <= arrivalTime && eventTime <= nextTick) {
      advanceTo(eventTime);
      const payload = heap.peekPayload();
      const stamp = heap.peekStamp();
      heap.pop();
      const worker = payload >> 2;
      if (workerStamp[worker] !== stamp) continue;
      const kind = payload & 3;
      const target = targets[workerTarget[worker]!]!;
      if (kind === EVENT_READY) {
        target.booting--;
        becomeIdle(target, worker);
        dispatch();
        if (workerState[worker] === IDLE) scheduleIdleCheck(target, worker);
      } else if (kind === EVENT_DONE) {
        target.busy--;
        totalBusy--;
        lastCompletion = now;
        executionRingCount = recordSample(executionRing, executionRingCount, workerExecution[worker]!);
        becomeIdle(target, worker);
        dispatch();
        if (workerState[worker] === IDLE) scheduleIdleCheck(target, worker);
        if (target.settings.bufferWorkers > 0) ensureFloors();
      } else if (workerState[worker] === IDLE) {
        const dueAt = workerIdleSince[worker]! + target.settings.idleTimeoutSeconds * 1000;
        if (target.alive > target.settings.maxWorkers) stopWorker(target, worker);
        else if (now < dueAt) heap.push(dueAt, payload, stamp);
        else if (target.alive > floorOf(target)) stopWorker(target, worker);
      }
    } else if (arrivalTime <= nextTick) {
      advanceTo(arrivalTime);
      const job = nextJob++;
      rollArrivals(Math.floor(now / bucketMs));
      arrivalRing[ringBucket % demandBuckets]!++;
      arrivalVersion++;
      const timelineIndex = Math.floor((now - startTime) / timelineBucketMs);
      if (growTimeline(timelineIndex)) timelineArrivals[timelineIndex]!++;
      queue[queueTail++] = job;
      dispatch();
      if (queueHead < queueTail) startForQueue();
      if (nextJob % progressEvery === 0) options.onProgress?.(nextJob / jobCount);
    } else {
      advanceTo(nextTick);
      nextTick += intervalMs;
      tick();
    }
  }
  advanceTo(lastCompletion);
  options.onProgress?.(1);

  const sortedWaits = Float64Array.from(waits).sort();
  let within = 0;
  for (let index = 0; index < jobCount; index++) if (waits[index]! <= waitThresholdMs) within++;
  const perTarget: SimulationResult['perTarget'] = {};
  let costUsd = 0;
  for (const target of targets) {
    const gpuSeconds = target.aliveArea / 1000;
    costUsd += gpuSeconds * target.price;
    perTarget[target.options.id] = {
      gpuSeconds,
      costUsd: gpuSeconds * target.price,
      coldStarts: target.starts,
    };
  }
  const usedBuckets = Math.min(timelineLength, Math.ceil((now - startTime) / timelineBucketMs));
  const waitP95 = new Array<number>(usedBuckets).fill(0);
  let jobCursor = 0;
  for (let bucket = 0; bucket < usedBuckets; bucket++) {
    const end = startTime + (bucket + 1) * timelineBucketMs;
    const first = jobCursor;
    while (jobCursor < jobCount && trace.arrivalMs[jobCursor]! < end) jobCursor++;
    if (jobCursor > first) waitP95[bucket] = sortedQuantile(waits.slice(first, jobCursor).sort(), 0.95);
  }
  return {
    policy: policy.name,
    jobs: jobCount,
    durationMs: now - startTime,
    gpuSeconds: aliveArea / 1000,
    costUsd,
    busySeconds: busyArea / 1000,
    idleShare: aliveArea > 0 ? 1 - busyArea / aliveArea : 0,
    waitP50Ms: sortedQuantile(sortedWaits, 0.5),
    waitP95Ms: sortedQuantile(sortedWaits, 0.95),
    waitP99Ms: sortedQuantile(sortedWaits, 0.99),
    waitMaxMs: jobCount > 0 ? sortedWaits[jobCount - 1]! : 0,
    shareWithin10s: jobCount > 0 ? within / jobCount : 1,
    coldStarts,
    scalingActions,
    maxHourlyCostUsd: hourlyCost.reduce((max, value) => Math.max(max, value), 0),
    decisions,
    perTarget,
    timeline: {
      startMs: startTime,
      bucketMs: timelineBucketMs,
      arrivals: Array.from(timelineArrivals.subarray(0, usedBuckets)),
      workers: Array.from(timelineAlive.subarray(0, usedBuckets), (area) => area / timelineBucketMs),
      busy: Array.from(timelineBusy.subarray(0, usedBuckets), (area) => area / timelineBucketMs),
      waitP95Ms: waitP95,
    },
    waitsMs: waits,
  };
}
