import type { Clock } from '@comfy-serverless/core';
import { sleep, systemClock } from '@comfy-serverless/core';
import type {
  ModalAutoscalerSettings,
  ModalBackend,
  ModalCurrentStats,
  ModalDeploymentInfo,
  ModalMethodTarget,
  ModalPollResult,
} from '../modal-backend';

/** The names Modal's SDK gives its errors; the adapter maps errors by these names. */
export type ModalErrorName =
  | 'NotFoundError'
  | 'FunctionTimeoutError'
  | 'RemoteError'
  | 'InternalFailure'
  | 'InvalidError'
  | 'ExecutionError'
  | 'TimeoutError'
  | 'ResourceExhaustedError';

/** An error shaped like the one Modal's SDK throws under that name. */
export function modalError(name: ModalErrorName, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

/** A gRPC `ClientError` as nice-grpc throws it (`code` 14 is UNAVAILABLE, 16 UNAUTHENTICATED). */
export function grpcError(code: number, details: string): Error & { code: number; details: string } {
  const error = Object.assign(new Error(`/modal.client.ModalClient/Call ${code} ${details}`), {
    code,
    details,
  });
  error.name = 'ClientError';
  return error;
}

/** What a fake method receives for one call. */
export interface FakeModalCallContext {
  callId: string;
  args: unknown[];
  clock: Clock;
  /** Aborts when the call is cancelled or passes the class timeout. */
  signal: AbortSignal;
  /** Sleeps on the fake's clock; rejects when the call is cancelled. */
  sleep(ms: number): Promise<void>;
  containerId: string;
  /** Time the container spent starting before this call, when this is its first call. */
  coldStartMs?: number;
}

/** A method of a fake class: returns the call's value or throws its error. */
export type FakeModalMethod = (context: FakeModalCallContext) => unknown;

/** A class as `deploy` takes it. */
export interface FakeModalClassOptions {
  environment?: string;
  methods: Record<string, FakeModalMethod>;
  /** What the app file declares (`min_containers`, ...): a deploy resets run-time overrides to it. */
  autoscaler?: ModalAutoscalerSettings;
  /** The class's `timeout`, in ms. @default 300000 */
  timeoutMs?: number;
  /** Time from a container's start until it takes calls, in ms. @default 20000 */
  coldStartMs?: number;
}

/** A call as the fake keeps it. */
export interface FakeModalCall {
  id: string;
  app: string;
  cls: string;
  method: string;
  environment?: string;
  args: unknown[];
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  submittedAt: number;
  startedAt?: number;
  finishedAt?: number;
  containerId?: string;
  value?: unknown;
  error?: Error;
}

/** The operations `failNext` can make fail. */
export type FakeModalOperation =
  | 'spawn'
  | 'poll'
  | 'cancel'
  | 'currentStats'
  | 'updateAutoscaler'
  | 'deployment';

/** A fake Modal control plane: a `ModalBackend` plus the controls tests need. */
export interface FakeModal extends ModalBackend {
  readonly clock: Clock;
  /** Deploys (or redeploys) a class; a redeploy bumps the version and drops autoscaler overrides, like `modal deploy`. */
  deploy(app: string, cls: string, options: FakeModalClassOptions): void;
  /** Stops an app: its classes are not found afterwards. */
  undeploy(app: string, environment?: string): void;
  /** Makes the next call of an operation throw `error`. */
  failNext(operation: FakeModalOperation, error: Error): void;
  calls(): FakeModalCall[];
  getCall(callId: string): FakeModalCall | undefined;
  /** The autoscaler settings in force (declared, then overrides). */
  autoscaler(app: string, cls: string, environment?: string): ModalAutoscalerSettings;
  /** Containers of a class by state. */
  containers(
    app: string,
    cls: string,
    environment?: string,
  ): { starting: number; idle: number; busy: number };
  /** Every `updateAutoscaler` request received, in order. */
  readonly autoscalerUpdates: Array<{ app: string; cls: string; settings: ModalAutoscalerSettings }>;
}

interface Container {
  id: string;
  state: 'starting' | 'idle' | 'busy';
  startedAt: number;
  readyAt?: number;
  served: number;
  scaledownHandle?: unknown;
  startHandle?: unknown;
}

interface Pool {
  app: string;
  cls: string;
  environment?: string;
  options: FakeModalClassOptions;
  version: number;
  deployedAt: number;
  overrides: ModalAutoscalerSettings;
  containers: Container[];
  queue: string[];
}

interface CallState extends FakeModalCall {
  waiters: Array<() => void>;
  controller?: AbortController;
  timeoutHandle?: unknown;
}

const RESULT_RETENTION_MS = 7 * 24 * 3600 * 1000;
const DEFAULT_AUTOSCALER: Required<ModalAutoscalerSettings> = {
  minContainers: 0,
  maxContainers: 10,
  bufferContainers: 0,
  scaledownWindowMs: 60_000,
};

/**
 * A fake of Modal's control plane for tests: deployed classes, function calls that queue
 * for containers, cold starts, the class timeout, cancellation, result retention (7
 * days), `getCurrentStats`, `updateAutoscaler` with redeploys that reset it. Time runs on
 * the injected clock, so a virtual clock makes hours pass in milliseconds.
 *
 * @example
 * const clock = createVirtualClock();
 * const modal = createFakeModal({ clock });
 * modal.deploy('comfyui', 'ComfyWorker', { methods: createFakeComfyWorker().methods });
 * const provider = createModal({ app: 'comfyui', gpu: 'L40S', client: modal, clock });
 */
export function createFakeModal(options: { clock?: Clock } = {}): FakeModal {
  const clock = options.clock ?? systemClock;
  const pools = new Map<string, Pool>();
  const calls = new Map<string, CallState>();
  const failures = new Map<FakeModalOperation, Error[]>();
  const autoscalerUpdates: FakeModal['autoscalerUpdates'] = [];
  let sequence = 0;
  let containerSequence = 0;

  const poolKey = (app: string, cls: string, environment?: string) =>
    JSON.stringify([environment ?? '', app, cls]);
  const maybeFail = (operation: FakeModalOperation) => {
    const queue = failures.get(operation);
    const error = queue?.shift();
    if (error !== undefined) throw error;
  };
  const findPool = (target: Omit<ModalMethodTarget, 'method'>): Pool => {
    const pool = pools.get(poolKey(target.app, target.cls, target.environment));
    if (pool === undefined)
      throw modalError('NotFoundError', `Class '${target.app}/${target.cls}' not found`);
    return pool;
  };
  const settingsOf = (pool: Pool): Required<ModalAutoscalerSettings> => ({
    ...DEFAULT_AUTOSCALER,
    ...pool.options.autoscaler,
    ...pool.overrides,
  });

  const finish = (
    call: CallState,
    status: FakeModalCall['status'],
    outcome: { value?: unknown; error?: Error },
  ) => {
    if (call.finishedAt !== undefined) return;
    call.status = status;
    call.finishedAt = clock.now();
    if ('value' in outcome) call.value = outcome.value;
    if (outcome.error !== undefined) call.error = outcome.error;
    if (call.timeoutHandle !== undefined) clock.clearTimeout(call.timeoutHandle);
    const waiters = call.waiters.splice(0);
    for (const wake of waiters) wake();
  };

  const release = (pool: Pool, container: Container, terminate: boolean) => {
    if (terminate) pool.containers = pool.containers.filter((item) => item !== container);
    else container.state = 'idle';
    pump(pool);
  };

  const run = (pool: Pool, call: CallState, container: Container) => {
    container.state = 'busy';
    const coldStartMs =
      container.served === 0 && container.readyAt !== undefined
        ? container.readyAt - container.startedAt
        : undefined;
    container.served += 1;
    call.status = 'running';
    call.startedAt = clock.now();
    call.containerId = container.id;
    const controller = new AbortController();
    call.controller = controller;
    const timeoutMs = pool.options.timeoutMs ?? 300_000;
    call.timeoutHandle = clock.setTimeout(() => {
      controller.abort(
        modalError(
          'FunctionTimeoutError',
          `Timeout: ${call.method} exceeded its timeout of ${timeoutMs / 1000} s`,
        ),
      );
      finish(call, 'failed', {
        error: modalError(
          'FunctionTimeoutError',
          `Timeout: Function call exceeded the timeout of ${timeoutMs / 1000} s`,
        ),
      });
      // Modal restarts a container whose input timed out.
      release(pool, container, true);
    }, timeoutMs);
    const method = pool.options.methods[call.method];
    const context: FakeModalCallContext = {
      callId: call.id,
      args: call.args,
      clock,
      signal: controller.signal,
      sleep: (ms) => sleep(ms, { clock, signal: controller.signal }),
      containerId: container.id,
      ...(coldStartMs === undefined ? {} : { coldStartMs }),
    };
    Promise.resolve()
      .then(() => {
        if (method === undefined)
          throw modalError('NotFoundError', `Method '${call.method}' not found on class`);
        return method(context);
      })
      .then(
        (value) => {
          if (call.finishedAt !== undefined) return;
          finish(call, 'succeeded', { value });
          release(pool, container, false);
        },
        (error: unknown) => {
          if (call.finishedAt !== undefined) return;
          const known =
            error instanceof Error &&
            ['FunctionTimeoutError', 'InternalFailure', 'RemoteError'].includes(error.name);
          finish(call, 'failed', {
            error: known
              ? (error as Error)
              : modalError(
                  'RemoteError',
                  `Remote error: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
                ),
          });
          release(pool, container, false);
        },
      );
  };

  const pump = (pool: Pool) => {
    for (;;) {
      const container = pool.containers.find((item) => item.state === 'idle');
      const callId = pool.queue[0];
      if (container === undefined || callId === undefined) break;
      pool.queue.shift();
      const call = calls.get(callId);
      if (call === undefined || call.status !== 'queued') continue;
      if (container.scaledownHandle !== undefined) clock.clearTimeout(container.scaledownHandle);
      container.scaledownHandle = undefined;
      run(pool, call, container);
    }
    const settings = settingsOf(pool);
    const busy = pool.containers.filter((item) => item.state === 'busy').length;
    const wanted = Math.min(
      settings.maxContainers,
      Math.max(settings.minContainers, busy + pool.queue.length + settings.bufferContainers),
    );
    while (pool.containers.length < wanted) {
      const container: Container = {
        id: `ta-${++containerSequence}`,
        state: 'starting',
        startedAt: clock.now(),
        served: 0,
      };
      container.startHandle = clock.setTimeout(() => {
        if (!pool.containers.includes(container)) return;
        container.state = 'idle';
        container.readyAt = clock.now();
        pump(pool);
      }, pool.options.coldStartMs ?? 20_000);
      pool.containers.push(container);
    }
    const keep = Math.max(settings.minContainers, busy + pool.queue.length + settings.bufferContainers);
    const idle = pool.containers.filter((item) => item.state === 'idle');
    let surplus = pool.containers.length - keep;
    for (const container of idle) {
      if (surplus <= 0) break;
      surplus -= 1;
      if (container.scaledownHandle !== undefined) continue;
      container.scaledownHandle = clock.setTimeout(() => {
        container.scaledownHandle = undefined;
        if (container.state !== 'idle') return;
        const now = settingsOf(pool);
        const stillBusy = pool.containers.filter((item) => item.state === 'busy').length;
        if (
          pool.containers.length >
          Math.max(now.minContainers, stillBusy + pool.queue.length + now.bufferContainers)
        ) {
          pool.containers = pool.containers.filter((item) => item !== container);
        }
      }, settings.scaledownWindowMs);
    }
  };

  const waitFor = (call: CallState, timeoutMs: number): Promise<void> =>
    new Promise((resolve) => {
      if (call.finishedAt !== undefined) {
        resolve();
        return;
      }
      const wake = () => {
        clock.clearTimeout(handle);
        resolve();
      };
      const handle = clock.setTimeout(() => {
        const index = call.waiters.indexOf(wake);
        if (index >= 0) call.waiters.splice(index, 1);
        resolve();
      }, timeoutMs);
      call.waiters.push(wake);
    });

  const outcome = (call: CallState): ModalPollResult => {
    if (call.error !== undefined) throw call.error;
    return { status: 'done', value: call.value };
  };

  const lookUp = (callId: string): CallState => {
    const call = calls.get(callId);
    if (call === undefined) throw modalError('NotFoundError', `Function call '${callId}' not found`);
    if (call.finishedAt !== undefined && clock.now() - call.finishedAt > RESULT_RETENTION_MS) {
      throw modalError('NotFoundError', `Function call '${callId}' not found: its result expired`);
    }
    return call;
  };

  const fake: FakeModal = {
    clock,
    autoscalerUpdates,
    deploy(app, cls, classOptions) {
      const key = poolKey(app, cls, classOptions.environment);
      const existing = pools.get(key);
      if (existing !== undefined) {
        existing.options = { ...classOptions };
        existing.version += 1;
        existing.deployedAt = clock.now();
        existing.overrides = {};
        pump(existing);
        return;
      }
      const pool: Pool = {
        app,
        cls,
        options: { ...classOptions },
        version: 1,
        deployedAt: clock.now(),
        overrides: {},
        containers: [],
        queue: [],
        ...(classOptions.environment === undefined ? {} : { environment: classOptions.environment }),
      };
      pools.set(key, pool);
      pump(pool);
    },
    undeploy(app, environment) {
      for (const [key, pool] of pools) {
        if (pool.app === app && pool.environment === environment) {
          for (const container of pool.containers) {
            if (container.startHandle !== undefined) clock.clearTimeout(container.startHandle);
            if (container.scaledownHandle !== undefined) clock.clearTimeout(container.scaledownHandle);
          }
          pools.delete(key);
        }
      }
    },
    failNext(operation, error) {
      const queue = failures.get(operation) ?? [];
      queue.push(error);
      failures.set(operation, queue);
    },
    calls: () =>
      [...calls.values()].map(
        ({ waiters: _waiters, controller: _controller, timeoutHandle: _handle, ...call }) => ({ ...call }),
      ),
    getCall(callId) {
      const call = calls.get(callId);
      if (call === undefined) return undefined;
      const { waiters: _waiters, controller: _controller, timeoutHandle: _handle, ...rest } = call;
      return { ...rest };
    },
    autoscaler: (app, cls, environment) => ({
      ...settingsOf(findPool({ app, cls, ...(environment === undefined ? {} : { environment }) })),
    }),
    containers(app, cls, environment) {
      const pool = findPool({ app, cls, ...(environment === undefined ? {} : { environment }) });
      const count = (state: Container['state']) =>
        pool.containers.filter((item) => item.state === state).length;
      return { starting: count('starting'), idle: count('idle'), busy: count('busy') };
    },

    async spawn(target, args) {
      maybeFail('spawn');
      const pool = findPool(target);
      if (pool.options.methods[target.method] === undefined) {
        throw modalError('NotFoundError', `Method '${target.method}' not found on class`);
      }
      const id = `fc-${String(++sequence).padStart(26, '0')}`;
      const call: CallState = {
        id,
        app: target.app,
        cls: target.cls,
        method: target.method,
        args: structuredClone(args),
        status: 'queued',
        submittedAt: clock.now(),
        waiters: [],
        ...(target.environment === undefined ? {} : { environment: target.environment }),
      };
      calls.set(id, call);
      pool.queue.push(id);
      pump(pool);
      return id;
    },
    async poll(callId, pollOptions) {
      maybeFail('poll');
      const call = lookUp(callId);
      if (call.finishedAt === undefined) await waitFor(call, pollOptions.timeoutMs);
      if (call.finishedAt === undefined) return { status: 'pending' };
      return outcome(call);
    },
    async cancel(callId, cancelOptions) {
      maybeFail('cancel');
      const call = lookUp(callId);
      if (call.finishedAt !== undefined) return;
      const pool = pools.get(poolKey(call.app, call.cls, call.environment));
      const terminated = modalError(
        'RemoteError',
        'Remote error: Function call was cancelled: input terminated by the user',
      );
      if (call.status === 'queued') {
        if (pool !== undefined) pool.queue = pool.queue.filter((id) => id !== callId);
        finish(call, 'cancelled', { error: terminated });
        if (pool !== undefined) pump(pool);
        return;
      }
      call.controller?.abort(terminated);
      finish(call, 'cancelled', { error: terminated });
      const container = pool?.containers.find((item) => item.id === call.containerId);
      if (pool !== undefined && container !== undefined)
        release(pool, container, cancelOptions?.terminateContainers === true);
    },
    async call(target, args, callOptions) {
      const callId = await fake.spawn(target, args);
      const result = await fake.poll(callId, { timeoutMs: callOptions?.timeoutMs ?? 300_000 });
      if (result.status === 'pending') {
        await fake.cancel(callId);
        throw modalError('TimeoutError', `Timeout exceeded: ${callOptions?.timeoutMs ?? 300_000}ms`);
      }
      return result.value;
    },
    async currentStats(target): Promise<ModalCurrentStats> {
      maybeFail('currentStats');
      const pool = findPool(target);
      return { backlog: pool.queue.length, runners: pool.containers.length };
    },
    async updateAutoscaler(target, settings) {
      maybeFail('updateAutoscaler');
      const pool = findPool(target);
      autoscalerUpdates.push({ app: target.app, cls: target.cls, settings: { ...settings } });
      for (const key of [
        'minContainers',
        'maxContainers',
        'bufferContainers',
        'scaledownWindowMs',
      ] as const) {
        const value = settings[key];
        if (value !== undefined) pool.overrides[key] = value;
      }
      pump(pool);
      return { ...settingsOf(pool) };
    },
    async deployment(target): Promise<ModalDeploymentInfo> {
      maybeFail('deployment');
      const matching = [...pools.values()].filter(
        (pool) => pool.app === target.app && pool.environment === target.environment,
      );
      if (matching.length === 0) throw modalError('NotFoundError', `App '${target.app}' not found`);
      const version = Math.max(...matching.map((pool) => pool.version));
      const deployedAt = Math.max(...matching.map((pool) => pool.deployedAt));
      return { version, deployedAt };
    },
  };
  return fake;
}
