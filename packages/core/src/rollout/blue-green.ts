import { createHash } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import type { Clock } from '../spec/clock';
import { InvalidArgumentError, UnsupportedSpecificationError } from '../spec/errors';
import type { ProviderJobEvent, ProviderJobRequest, RemoteJobRef } from '../spec/job';
import type { ProviderCallOptions, ProviderHealth, ProviderV1 } from '../spec/provider-v1';
import { redactSecrets } from '../telemetry/redact';
import { quantileOfSorted } from '../telemetry/ring-buffer';
import { systemClock, unrefTimer } from '../util/clock';
import {
  createHealthGate,
  type GateVerdict,
  type HealthGate,
  type SideStats,
  type StepComparison,
} from './health-gate';
import { createMemoryRolloutStore, type RolloutStore } from './rollout-store';

/** The two sides of a blue-green rollout: blue is the current version, green the new one. */
export type RolloutSide = 'blue' | 'green';

/** A rollout's saved state: what a new instance (after a restart) continues from. */
export interface BlueGreenState {
  version: 1;
  blueId: string;
  greenId: string;
  /** The steps the rollout was started with, percent of traffic to green. */
  steps: number[];
  phase: 'rolling' | 'completed' | 'rolled_back';
  stepIndex: number;
  /** Green's share of traffic now, percent. */
  weight: number;
  /** Epoch ms the current step began (its gate is evaluated `stepMs` later). */
  stepStartedAt: number;
  updatedAt: number;
  /** Why the rollout was rolled back. */
  reason?: string;
  /** Blue's last stats with enough samples, the baseline for later steps. */
  baseline?: SideStats;
}

/** The events of a rollout. */
export type BlueGreenEvents = {
  /** A step began: green now takes `weight` percent of new jobs. */
  'step:started': (event: { stepIndex: number; weight: number; at: number }) => void;
  /** A step's gate passed; the next step (or completion) follows. */
  'step:passed': (event: {
    stepIndex: number;
    weight: number;
    at: number;
    comparison: StepComparison;
    verdict: GateVerdict;
  }) => void;
  /** A step had too little evidence; it runs again for another `stepMs` at the same weight. */
  'step:held': (event: {
    stepIndex: number;
    weight: number;
    at: number;
    comparison: StepComparison;
    verdict: GateVerdict;
  }) => void;
  /** Every step passed: green takes all traffic. */
  'rollout:completed': (event: { at: number }) => void;
  /** A gate failed (or `rollback()` was called): blue takes all traffic. */
  'rollout:rolled-back': (event: {
    stepIndex: number;
    weight: number;
    at: number;
    reason: string;
    comparison?: StepComparison;
  }) => void;
  /** A saved rollout was found and continued (after a restart). */
  'rollout:resumed': (event: { state: BlueGreenState; at: number }) => void;
  /** The store could not be read or written; the message is redacted. */
  'store:error': (event: { operation: 'load' | 'save'; message: string; at: number }) => void;
};

/** Options of `createBlueGreen`. */
export interface BlueGreenOptions {
  /** The current version. */
  blue: ProviderV1;
  /** The new version. */
  green: ProviderV1;
  /** Green's share of traffic at each step, percent, increasing and ending at 100. @default [10, 25, 50, 75, 100] */
  steps?: number[];
  /** The health gate each step must pass. @default the built-in gate's defaults */
  gate?: HealthGate;
  /** How long each step runs before its gate is evaluated, ms. */
  stepMs: number;
  /** Where the rollout's state is kept. @default in memory (lost with the process) */
  store?: RolloutStore<BlueGreenState>;
  clock?: Clock;
  /** The provider id the dispatcher sees. @default blue's id (jobs journalled under blue resume through it) */
  id?: string;
  /** Values removed from event messages (API keys). */
  secrets?: readonly string[];
  /** Samples kept per side per step for the latency percentile. @default 5000 */
  maxSamples?: number;
}

/** A provider that shifts traffic from blue to green step by step, with health gates and rollback. */
export interface BlueGreenProvider extends ProviderV1 {
  readonly events: EventEmitter<BlueGreenEvents>;
  /** Resolves once the saved state was read (or a new rollout saved). */
  ready(): Promise<void>;
  /** The current state (undefined until ready). */
  state(): BlueGreenState | undefined;
  /** The side a job id goes to at the current weight. */
  sideFor(jobId: string): RolloutSide;
  /** Sends all new traffic back to blue now. */
  rollback(reason?: string): Promise<void>;
  /** Stops the step timer (jobs in flight are unaffected). */
  close(): void;
}

/** What a blue-green reference carries besides the side's own reference. */
interface SideRefData {
  blueGreenSide: RolloutSide;
  ref: RemoteJobRef;
  submittedAt: number;
}

interface Sample {
  ok: boolean;
  latencyMs: number;
}

const DEFAULT_STEPS = [10, 25, 50, 75, 100];

/** 0..9999, the same for a job id in every process. */
function bucketOf(jobId: string): number {
  return createHash('sha256').update(jobId).digest().readUInt32BE(0) % 10_000;
}

function validate(options: BlueGreenOptions): number[] {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError({
      argument: 'options',
      message: `createBlueGreen takes an options object; got ${String(options)}.`,
    });
  }
  for (const side of ['blue', 'green'] as const) {
    const provider = options[side];
    if (provider === null || typeof provider !== 'object' || typeof provider.doSubmit !== 'function') {
      throw new InvalidArgumentError({
        argument: side,
        message: `"${side}" must be a provider (ProviderV1).`,
      });
    }
    if (provider.specificationVersion !== 'v1') {
      throw new UnsupportedSpecificationError({
        message: `Provider "${provider.id}" implements spec ${String(provider.specificationVersion)}; createBlueGreen supports v1. Update the adapter package.`,
      });
    }
  }
  if (options.blue.id === options.green.id) {
    throw new InvalidArgumentError({
      argument: 'green',
      message: `"blue" and "green" must be different providers; both have id "${options.blue.id}".`,
    });
  }
  if (!(typeof options.stepMs === 'number' && Number.isFinite(options.stepMs) && options.stepMs > 0)) {
    throw new InvalidArgumentError({
      argument: 'stepMs',
      message: `"stepMs" must be a positive number of ms (how long each step runs before its gate); got ${String(options.stepMs)}.`,
    });
  }
  const steps = options.steps ?? DEFAULT_STEPS;
  const valid =
    Array.isArray(steps) &&
    steps.length > 0 &&
    steps.every(
      (weight, index) =>
        typeof weight === 'number' &&
        weight > 0 &&
        weight <= 100 &&
        (index === 0 || weight > steps[index - 1]!),
    ) &&
    steps.at(-1) === 100;
  if (!valid) {
    throw new InvalidArgumentError({
      argument: 'steps',
      message: `"steps" must be increasing percentages above 0 ending at 100 ([10, 25, 50, 75, 100]); got ${JSON.stringify(steps)}.`,
    });
  }
  if (options.maxSamples !== undefined && !(Number.isInteger(options.maxSamples) && options.maxSamples > 0)) {
    throw new InvalidArgumentError({
      argument: 'maxSamples',
      message: `"maxSamples" must be a positive whole number; got ${String(options.maxSamples)}.`,
    });
  }
  if (options.clock !== undefined && typeof options.clock?.setTimeout !== 'function') {
    throw new InvalidArgumentError({
      argument: 'clock',
      message: '"clock" must be a Clock (now, setTimeout, clearTimeout).',
    });
  }
  if (
    options.store !== undefined &&
    (typeof options.store?.load !== 'function' || typeof options.store?.save !== 'function')
  ) {
    throw new InvalidArgumentError({
      argument: 'store',
      message: '"store" must have load() and save(state).',
    });
  }
  if (
    options.gate !== undefined &&
    options.gate !== null &&
    typeof options.gate !== 'object' &&
    typeof options.gate !== 'function'
  ) {
    throw new InvalidArgumentError({
      argument: 'gate',
      message:
        '"gate" must be the built-in gate\'s thresholds ({ maxErrorRate, maxLatencyRatio, ... }) or a function of the step comparison.',
    });
  }
  return [...steps];
}

function statsOf(samples: readonly Sample[]): SideStats {
  const errors = samples.filter((sample) => !sample.ok).length;
  const latencies = samples.map((sample) => sample.latencyMs).sort((a, b) => a - b);
  return {
    samples: samples.length,
    errors,
    errorRate: samples.length === 0 ? 0 : errors / samples.length,
    p95Ms: quantileOfSorted(latencies, 0.95),
  };
}

function isSideRef(data: unknown): data is SideRefData {
  if (data === null || typeof data !== 'object') return false;
  const candidate = data as Partial<SideRefData>;
  return (
    (candidate.blueGreenSide === 'blue' || candidate.blueGreenSide === 'green') &&
    candidate.ref !== null &&
    typeof candidate.ref === 'object' &&
    typeof candidate.ref.remoteId === 'string'
  );
}

/**
 * Creates a provider that rolls a new version (green) out beside the current one (blue):
 * each new job goes to green with the current step's probability, decided by a hash of its
 * job id (so a resubmission goes to the same side); every `stepMs` the health gate compares
 * green's error rate and p95 latency with blue's over the step and moves to the next step,
 * holds the step when it lacks evidence, or rolls everything back to blue. The state is
 * kept in `store`, so a new instance (after a restart) continues the rollout; references
 * carry their side, so jobs are watched and cancelled where they run.
 *
 * @example
 * const provider = createBlueGreen({
 *   blue: createRunpod({ endpointId: 'v1-endpoint', gpu: 'L4-24GB' }),
 *   green: createRunpod({ endpointId: 'v2-endpoint', gpu: 'L4-24GB' }),
 *   steps: [10, 25, 50, 75, 100],
 *   gate: { maxErrorRate: 0.05, maxLatencyRatio: 1.25 },
 *   stepMs: 10 * 60_000,
 *   store: createJsonFileRolloutStore({ path: './rollout-v2.json' }),
 * });
 * provider.events.on('rollout:rolled-back', (event) => alert(event.reason));
 */
export function createBlueGreen(options: BlueGreenOptions): BlueGreenProvider {
  const steps = validate(options);
  const { blue, green, stepMs } = options;
  const clock = options.clock ?? systemClock;
  const store = options.store ?? createMemoryRolloutStore<BlueGreenState>();
  const gate = typeof options.gate === 'function' ? options.gate : createHealthGate(options.gate ?? {});
  const baselineSamples =
    typeof options.gate === 'object' && options.gate !== null ? (options.gate.minSamples ?? 10) : 10;
  const maxSamples = options.maxSamples ?? 5_000;
  const secrets = (options.secrets ?? []).filter((secret): secret is string => typeof secret === 'string');
  const events = new EventEmitter<BlueGreenEvents>();
  const sides: Record<RolloutSide, ProviderV1> = { blue, green };
  const samples: Record<RolloutSide, Sample[]> = { blue: [], green: [] };

  let current: BlueGreenState | undefined;
  /** The store could not be read: all traffic goes to blue and nothing is saved over it. */
  let degraded = false;
  let timer: unknown;
  let closed = false;

  const emitSafely = <Name extends keyof BlueGreenEvents>(
    name: Name,
    payload: Parameters<BlueGreenEvents[Name]>[0],
  ) => {
    try {
      (events.emit as (name: string, payload: unknown) => boolean)(name, payload);
    } catch {
      // A listener's failure must not stop the rollout.
    }
  };

  const persist = async (state: BlueGreenState) => {
    if (degraded) return;
    try {
      await store.save(state);
    } catch (error) {
      emitSafely('store:error', {
        operation: 'save',
        message: redactSecrets(error instanceof Error ? error.message : String(error), secrets),
        at: clock.now(),
      });
    }
  };

  const schedule = () => {
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
    if (closed || current === undefined || current.phase !== 'rolling') return;
    const delay = Math.max(0, current.stepStartedAt + stepMs - clock.now());
    timer = clock.setTimeout(() => {
      timer = undefined;
      void evaluate();
    }, delay);
    unrefTimer(timer);
  };

  const startStep = (stepIndex: number, at: number): BlueGreenState => {
    samples.blue = [];
    samples.green = [];
    return { ...current!, stepIndex, weight: steps[stepIndex]!, stepStartedAt: at, updatedAt: at };
  };

  async function evaluate(): Promise<void> {
    const state = current;
    if (state === undefined || state.phase !== 'rolling') return;
    const at = clock.now();
    const blueStats = statsOf(samples.blue);
    const greenStats = statsOf(samples.green);
    const baseline = blueStats.samples >= baselineSamples ? blueStats : state.baseline;
    const comparison: StepComparison = {
      stepIndex: state.stepIndex,
      weight: state.weight,
      blue: blueStats,
      green: greenStats,
      baseline,
    };
    let verdict: GateVerdict;
    try {
      verdict = gate(comparison);
    } catch (error) {
      verdict = {
        outcome: 'fail',
        reasons: [`the gate threw: ${error instanceof Error ? error.message : String(error)}`],
      };
    }
    const withBaseline = baseline === undefined ? state : { ...state, baseline };
    if (verdict.outcome === 'hold') {
      current = { ...withBaseline, stepStartedAt: at, updatedAt: at };
      samples.blue = [];
      samples.green = [];
      await persist(current);
      emitSafely('step:held', { stepIndex: state.stepIndex, weight: state.weight, at, comparison, verdict });
      schedule();
      return;
    }
    if (verdict.outcome === 'fail') {
      const reason = redactSecrets(
        `step ${state.stepIndex + 1} (${state.weight} %): ${verdict.reasons.join('; ')}`,
        secrets,
      );
      current = { ...withBaseline, phase: 'rolled_back', weight: 0, reason, updatedAt: at };
      await persist(current);
      emitSafely('rollout:rolled-back', {
        stepIndex: state.stepIndex,
        weight: state.weight,
        at,
        reason,
        comparison,
      });
      return;
    }
    emitSafely('step:passed', { stepIndex: state.stepIndex, weight: state.weight, at, comparison, verdict });
    current = withBaseline;
    if (state.stepIndex >= steps.length - 1) {
      current = { ...current, phase: 'completed', weight: 100, updatedAt: at };
      await persist(current);
      emitSafely('rollout:completed', { at });
      return;
    }
    current = startStep(state.stepIndex + 1, at);
    await persist(current);
    emitSafely('step:started', { stepIndex: current.stepIndex, weight: current.weight, at });
    schedule();
  }

  const loaded = (async () => {
    let saved: BlueGreenState | undefined;
    try {
      saved = await store.load();
    } catch (error) {
      degraded = true;
      const at = clock.now();
      current = {
        version: 1,
        blueId: blue.id,
        greenId: green.id,
        steps,
        phase: 'rolled_back',
        stepIndex: 0,
        weight: 0,
        stepStartedAt: at,
        updatedAt: at,
        reason: 'the rollout store could not be read; all traffic stays on blue',
      };
      emitSafely('store:error', {
        operation: 'load',
        message: redactSecrets(error instanceof Error ? error.message : String(error), secrets),
        at,
      });
      return;
    }
    const at = clock.now();
    if (
      saved !== undefined &&
      saved.version === 1 &&
      saved.blueId === blue.id &&
      saved.greenId === green.id &&
      Number.isInteger(saved.stepIndex)
    ) {
      const stepIndex = Math.min(Math.max(0, saved.stepIndex), steps.length - 1);
      current = {
        ...saved,
        steps,
        stepIndex,
        weight: saved.phase === 'rolling' ? steps[stepIndex]! : saved.weight,
      };
      emitSafely('rollout:resumed', { state: { ...current }, at });
      schedule();
      return;
    }
    current = {
      version: 1,
      blueId: blue.id,
      greenId: green.id,
      steps,
      phase: 'rolling',
      stepIndex: 0,
      weight: steps[0]!,
      stepStartedAt: at,
      updatedAt: at,
    };
    await persist(current);
    emitSafely('step:started', { stepIndex: 0, weight: current.weight, at });
    schedule();
  })();

  const sideFor = (jobId: string): RolloutSide => {
    const weight = current?.weight ?? 0;
    return bucketOf(jobId) < weight * 100 ? 'green' : 'blue';
  };

  const record = (side: RolloutSide, ok: boolean, submittedAt: number) => {
    const list = samples[side];
    if (list.length >= maxSamples) list.shift();
    list.push({ ok, latencyMs: Math.max(0, clock.now() - submittedAt) });
  };

  const unwrap = (
    ref: RemoteJobRef,
  ): { side: RolloutSide; ref: RemoteJobRef; submittedAt: number | undefined } => {
    if (isSideRef(ref.data))
      return { side: ref.data.blueGreenSide, ref: ref.data.ref, submittedAt: ref.data.submittedAt };
    // A reference journalled before this provider wrapped blue (same id): it is blue's own.
    return { side: 'blue', ref, submittedAt: undefined };
  };

  const sidesInUse = (): RolloutSide[] => {
    const weight = current?.weight ?? 0;
    if (weight <= 0) return ['blue'];
    if (weight >= 100) return ['green'];
    return ['blue', 'green'];
  };

  const worst = (statuses: ProviderHealth['status'][]): ProviderHealth['status'] => {
    if (statuses.every((status) => status === 'unhealthy')) return 'unhealthy';
    if (statuses.every((status) => status === 'healthy')) return 'healthy';
    return 'degraded';
  };

  const provider: BlueGreenProvider = {
    specificationVersion: 'v1',
    id: options.id ?? blue.id,
    platform: blue.platform === green.platform ? blue.platform : 'blue-green',
    ...(blue.region === undefined ? {} : { region: blue.region }),
    gpu: blue.gpu.vramGb <= green.gpu.vramGb ? blue.gpu : green.gpu,
    pricing: blue.pricing.usdPerSecond >= green.pricing.usdPerSecond ? blue.pricing : green.pricing,
    ...(blue.image === undefined ? {} : { image: blue.image }),
    ...(blue.limits === undefined ? {} : { limits: blue.limits }),
    ...(blue.coldStartMs === undefined ? {} : { coldStartMs: blue.coldStartMs }),
    ...(blue.expectedExecutionMs === undefined ? {} : { expectedExecutionMs: blue.expectedExecutionMs }),
    events,
    ready: () => loaded,
    state: () => (current === undefined ? undefined : { ...current }),
    sideFor,

    async doSubmit(request: ProviderJobRequest, callOptions?: ProviderCallOptions): Promise<RemoteJobRef> {
      await loaded;
      const side = sideFor(request.jobId);
      const submittedAt = clock.now();
      let ref: RemoteJobRef;
      try {
        ref = await sides[side].doSubmit(request, callOptions);
      } catch (error) {
        if (!callOptions?.signal?.aborted) record(side, false, submittedAt);
        throw error;
      }
      const data: SideRefData = { blueGreenSide: side, ref, submittedAt };
      return { remoteId: ref.remoteId, data: data as unknown as Record<string, unknown> };
    },

    doWatch(ref: RemoteJobRef, callOptions?: ProviderCallOptions): AsyncIterable<ProviderJobEvent> {
      const target = unwrap(ref);
      return {
        async *[Symbol.asyncIterator]() {
          await loaded;
          for await (const event of sides[target.side].doWatch(target.ref, callOptions)) {
            if (target.submittedAt !== undefined) {
              if (event.type === 'completed') record(target.side, true, target.submittedAt);
              else if (event.type === 'failed') record(target.side, false, target.submittedAt);
            }
            yield event;
          }
        },
      };
    },

    async doCancel(ref: RemoteJobRef, callOptions?: ProviderCallOptions): Promise<void> {
      const target = unwrap(ref);
      await sides[target.side].doCancel(target.ref, callOptions);
    },

    async doHealth(callOptions?: ProviderCallOptions): Promise<ProviderHealth> {
      await loaded;
      const inUse = sidesInUse();
      const readings = await Promise.all(
        inUse.map((side) =>
          sides[side].doHealth(callOptions).catch(
            (error: unknown): ProviderHealth => ({
              status: 'unhealthy',
              message: `${side}: ${redactSecrets(error instanceof Error ? error.message : String(error), secrets)}`,
              checkedAt: clock.now(),
            }),
          ),
        ),
      );
      const sum = (
        key:
          | 'queued'
          | 'running'
          | 'idleWorkers'
          | 'busyWorkers'
          | 'initializingWorkers'
          | 'throttledWorkers'
          | 'maxWorkers',
      ) => {
        const values = readings
          .map((reading) => reading[key])
          .filter((value): value is number => value !== undefined);
        return values.length === 0 ? {} : { [key]: values.reduce((total, value) => total + value, 0) };
      };
      const messages = readings
        .map((reading, index) =>
          reading.message === undefined ? undefined : `${inUse[index]}: ${reading.message}`,
        )
        .filter((message): message is string => message !== undefined);
      return {
        status: worst(readings.map((reading) => reading.status)),
        ...sum('queued'),
        ...sum('running'),
        ...sum('idleWorkers'),
        ...sum('busyWorkers'),
        ...sum('initializingWorkers'),
        ...sum('throttledWorkers'),
        ...sum('maxWorkers'),
        ...(messages.length === 0 ? {} : { message: messages.join('; ') }),
        checkedAt: Math.max(...readings.map((reading) => reading.checkedAt)),
      };
    },

    async rollback(reason = 'rolled back by hand') {
      await loaded;
      if (current === undefined || current.phase === 'rolled_back') return;
      const at = clock.now();
      const previous = current;
      current = {
        ...current,
        phase: 'rolled_back',
        weight: 0,
        reason: redactSecrets(reason, secrets),
        updatedAt: at,
      };
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      await persist(current);
      emitSafely('rollout:rolled-back', {
        stepIndex: previous.stepIndex,
        weight: previous.weight,
        at,
        reason: current.reason!,
      });
    },

    close() {
      closed = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
    },
  };

  const lookups = [blue, green].filter((side) => side.doLookup !== undefined);
  if (lookups.length > 0) {
    provider.doLookup = async (jobId, callOptions) => {
      await loaded;
      const first = sideFor(jobId);
      for (const side of [first, first === 'blue' ? 'green' : 'blue'] as const) {
        const lookup = sides[side].doLookup;
        if (lookup === undefined) continue;
        const ref = await lookup.call(sides[side], jobId, callOptions);
        if (ref !== undefined) {
          const data: SideRefData = { blueGreenSide: side, ref, submittedAt: clock.now() };
          return { remoteId: ref.remoteId, data: data as unknown as Record<string, unknown> };
        }
      }
      return undefined;
    };
  }
  if (blue.doPreflight !== undefined || green.doPreflight !== undefined) {
    provider.doPreflight = async (requirements, callOptions) => {
      await loaded;
      const results = await Promise.all(
        sidesInUse().map((side) =>
          sides[side].doPreflight === undefined
            ? { ok: true, missingModels: [], missingNodeTypes: [] }
            : sides[side].doPreflight!(requirements, callOptions),
        ),
      );
      return {
        ok: results.every((result) => result.ok),
        missingModels: [...new Set(results.flatMap((result) => result.missingModels))],
        missingNodeTypes: [...new Set(results.flatMap((result) => result.missingNodeTypes))],
      };
    };
  }
  return provider;
}
