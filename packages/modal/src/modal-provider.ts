import type {
  Clock,
  GpuInput,
  GpuSpec,
  ImageDescriptor,
  ProviderCallOptions,
  ProviderHealth,
  ProviderJobEvent,
  ProviderJobRequest,
  ProviderLimits,
  ProviderPricing,
  ProviderV1,
  RemoteJobRef,
  WorkflowRequirements,
} from '@comfy-serverless/core';
import { InvalidArgumentError, JobTimeoutError, redactSecrets, systemClock } from '@comfy-serverless/core';
import type { ModalBackend, ModalMethodTarget } from './modal-backend';
import { isCancellation, mapModalError } from './modal-error';
import { resolveModalGpu } from './modal-gpu';
import {
  abortable,
  optionalClock,
  optionalNumber,
  optionalString,
  requireJobId,
  requireString,
} from './modal-options';
import { buildRunRequest, decodeRunResult, runResultEvents } from './modal-result';
import type { ModalClientLike } from './modal-sdk-backend';
import { createModalSdkBackend } from './modal-sdk-backend';

/** Options of `createModal`. */
export interface ModalProviderOptions {
  /** The deployed app's name (`modal deploy deploy/modal/comfyui_app.py` deploys `comfyui`). */
  app: string;
  /** The class that runs ComfyUI. @default 'ComfyWorker' */
  cls?: string;
  /** The method that runs one job. @default 'run' */
  method?: string;
  /** The Modal environment; the token's default environment when absent. */
  environment?: string;
  /** The GPU the class is deployed on: a Modal name (`H100`, `L40S`), one of core's names, or `{ type, vramGb }`. */
  gpu: GpuInput;
  /** What a container costs. @default Modal's list price for the GPU (May 2026) */
  pricing?: ProviderPricing;
  /** Where the containers run, for routing; Modal chooses unless the class pins a region. */
  region?: string;
  /** What the image and its volume contain, for preflight and routing. */
  image?: ImageDescriptor;
  limits?: ProviderLimits;
  /** Typical cold start of a container, in ms (with a memory snapshot, often under 20 s). @default 30000 */
  coldStartMs?: number;
  expectedExecutionMs?: number;
  /** @default `modal:<app>/<cls>` */
  id?: string;
  /** A Modal backend to use instead of Modal's SDK (the fake from `@comfy-serverless/modal/test`, or your own). */
  client?: ModalBackend;
  /** An existing `ModalClient` from `modal`, wrapped instead of creating one. */
  modalClient?: ModalClientLike;
  /** @default process.env.MODAL_TOKEN_ID, read on the first call */
  tokenId?: string;
  /** @default process.env.MODAL_TOKEN_SECRET, read on the first call */
  tokenSecret?: string;
  /** How long one long-poll round waits for a result, in ms; a round that ends without one is not an error. @default 30000 */
  pollTimeoutMs?: number;
  /** Whether cancelling also stops the container (it is rebuilt for the next job). @default false */
  terminateContainersOnCancel?: boolean;
  /**
   * Whether `doPreflight` asks the class for `/object_info` and its model lists. It wakes
   * a GPU container when none is up, so it is off by default; results are cached.
   * @default false
   */
  preflight?: boolean;
  /** How long a preflight answer is reused, in ms. @default 600000 */
  preflightTtlMs?: number;
  /** The time source for deadlines. @default the system clock */
  clock?: Clock;
}

/** The Modal provider: a `ProviderV1` with the settings it was made with. */
export interface ModalProvider extends ProviderV1 {
  readonly app: string;
  readonly cls: string;
  readonly environment?: string;
}

interface RefData {
  app: string;
  cls: string;
  method: string;
  environment?: string;
  submittedAt?: number;
  deadlineAt?: number;
}

const SUBMITTED_CACHE_LIMIT = 1000;

function readRefData(ref: RemoteJobRef, fallback: RefData): RefData {
  if (typeof ref?.remoteId !== 'string' || ref.remoteId === '') {
    throw new InvalidArgumentError({
      argument: 'ref.remoteId',
      message: 'The job reference has no remoteId (the Modal function call id returned by doSubmit).',
    });
  }
  const data = (ref.data ?? {}) as Partial<RefData>;
  return {
    app: typeof data.app === 'string' ? data.app : fallback.app,
    cls: typeof data.cls === 'string' ? data.cls : fallback.cls,
    method: typeof data.method === 'string' ? data.method : fallback.method,
    ...(typeof data.environment === 'string'
      ? { environment: data.environment }
      : fallback.environment === undefined
        ? {}
        : { environment: fallback.environment }),
    ...(typeof data.submittedAt === 'number' ? { submittedAt: data.submittedAt } : {}),
    ...(typeof data.deadlineAt === 'number' ? { deadlineAt: data.deadlineAt } : {}),
  };
}

/**
 * A provider that runs each job as one call of the `ComfyWorker.run` method of a deployed
 * Modal app (deploy/modal/comfyui_app.py): submit spawns the call and returns its id at
 * once, watch long-polls its result in rounds, cancel cancels it, health reads the
 * function's backlog and containers.
 *
 * @example
 * const modal = createModal({ app: 'comfyui', gpu: 'L40S' });
 * const ref = await modal.doSubmit({ jobId: 'j1', workflow, images: [], attempt: 1 });
 */
export function createModal(options: ModalProviderOptions): ModalProvider {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError({ argument: 'options', message: 'createModal needs { app, gpu, ... }.' });
  }
  const app = requireString(options.app, 'app', 'the name of the deployed Modal app');
  const cls = optionalString(options.cls, 'cls') ?? 'ComfyWorker';
  const method = optionalString(options.method, 'method') ?? 'run';
  const environment = optionalString(options.environment, 'environment');
  const region = optionalString(options.region, 'region');
  const { gpu, pricing } = resolveModalGpu(options.gpu, options.pricing);
  const pollTimeoutMs =
    optionalNumber(options.pollTimeoutMs, 'pollTimeoutMs', { min: 100, max: 300_000 }) ?? 30_000;
  const coldStartMs = optionalNumber(options.coldStartMs, 'coldStartMs', { min: 0 }) ?? 30_000;
  const expectedExecutionMs = optionalNumber(options.expectedExecutionMs, 'expectedExecutionMs', { min: 0 });
  const preflightTtlMs = optionalNumber(options.preflightTtlMs, 'preflightTtlMs', { min: 0 }) ?? 600_000;
  const clock = optionalClock(options.clock) ?? systemClock;
  if (
    options.client !== undefined &&
    (typeof options.client !== 'object' || typeof options.client.spawn !== 'function')
  ) {
    throw new InvalidArgumentError({
      argument: 'client',
      message: '"client" must be a ModalBackend (spawn, poll, cancel, call, currentStats, updateAutoscaler).',
    });
  }
  const id = optionalString(options.id, 'id') ?? `modal:${app}/${cls}`;
  const secrets = [options.tokenSecret];
  const backend: ModalBackend =
    options.client ??
    createModalSdkBackend({
      ...(options.modalClient === undefined ? {} : { modalClient: options.modalClient }),
      ...(options.tokenId === undefined ? {} : { tokenId: options.tokenId }),
      ...(options.tokenSecret === undefined ? {} : { tokenSecret: options.tokenSecret }),
      ...(environment === undefined ? {} : { environment }),
    });
  const defaults: RefData = { app, cls, method, ...(environment === undefined ? {} : { environment }) };
  const runTarget: ModalMethodTarget = { ...defaults };
  /** Calls cancelled from this process: their watches end at once. */
  const cancellations = new Map<string, AbortController>();
  /** Recent submissions by job id and attempt, so that a repeated doSubmit does not spawn twice. */
  const submitted = new Map<string, Promise<RemoteJobRef>>();

  const errorContext = (
    phase: Parameters<typeof mapModalError>[1]['phase'],
    extra: { jobId?: string; callId?: string; target?: RefData } = {},
  ) => ({
    phase,
    target: extra.target ?? defaults,
    providerId: id,
    secrets,
    ...(extra.jobId === undefined ? {} : { jobId: extra.jobId }),
    ...(extra.callId === undefined ? {} : { callId: extra.callId }),
  });

  const cancellationOf = (callId: string) => {
    let controller = cancellations.get(callId);
    if (controller === undefined) {
      controller = new AbortController();
      cancellations.set(callId, controller);
    }
    return controller;
  };

  async function* watch(
    ref: RemoteJobRef,
    callOptions: ProviderCallOptions = {},
  ): AsyncGenerator<ProviderJobEvent> {
    const data = readRefData(ref, defaults);
    const callId = ref.remoteId;
    const signal = callOptions.signal;
    const jobId = typeof ref.data?.jobId === 'string' ? ref.data.jobId : undefined;
    const context = errorContext('watch', {
      callId,
      target: data,
      ...(jobId === undefined ? {} : { jobId }),
    });
    signal?.throwIfAborted();
    const cancellation = cancellationOf(callId);
    try {
      yield* follow(callId, data, jobId, context, cancellation, signal);
    } finally {
      if (!cancellation.signal.aborted && cancellations.get(callId) === cancellation)
        cancellations.delete(callId);
    }
  }

  async function* follow(
    callId: string,
    data: RefData,
    jobId: string | undefined,
    context: ReturnType<typeof errorContext>,
    cancellation: AbortController,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<ProviderJobEvent> {
    yield { type: 'queued' };
    for (;;) {
      signal?.throwIfAborted();
      if (cancellation.signal.aborted || cancellations.get(callId)?.signal.aborted) {
        yield { type: 'cancelled' };
        return;
      }
      const now = clock.now();
      if (data.deadlineAt !== undefined && now >= data.deadlineAt) {
        // Our deadline, not Modal's timeout: stop the call so that it stops costing.
        await backend
          .cancel(callId, { terminateContainers: options.terminateContainersOnCancel ?? false })
          .catch(() => {});
        yield {
          type: 'failed',
          error: new JobTimeoutError({
            message: `The job passed its deadline (${new Date(data.deadlineAt).toISOString()}) before Modal returned a result; the call was cancelled.`,
            timeoutMs: data.submittedAt === undefined ? undefined : data.deadlineAt - data.submittedAt,
            providerId: id,
            ...(jobId === undefined ? {} : { jobId }),
          }),
          executionStarted: true,
        };
        return;
      }
      const round =
        data.deadlineAt === undefined
          ? pollTimeoutMs
          : Math.max(1, Math.min(pollTimeoutMs, data.deadlineAt - now));
      let polled: Awaited<ReturnType<ModalBackend['poll']>>;
      try {
        polled = await abortable(backend.poll(callId, { timeoutMs: round }), [signal, cancellation.signal]);
      } catch (error) {
        signal?.throwIfAborted();
        if (
          cancellation.signal.aborted ||
          cancellations.get(callId)?.signal.aborted ||
          isCancellation(error)
        ) {
          yield { type: 'cancelled' };
          return;
        }
        const mapped = mapModalError(error, context);
        const name = (error as { name?: unknown } | null)?.name;
        const callFailed =
          name === 'FunctionTimeoutError' ||
          name === 'RemoteError' ||
          name === 'ExecutionError' ||
          name === 'InternalFailure' ||
          mapped.name === 'JobExpiredError';
        if (!callFailed) throw mapped;
        yield { type: 'failed', error: mapped, executionStarted: mapped.name !== 'JobExpiredError' };
        return;
      }
      if (polled.status === 'pending') continue;
      const result = decodeRunResult(polled.value, {
        providerId: id,
        ...(jobId === undefined ? {} : { jobId }),
        source: `${data.cls}.${data.method} of Modal app "${data.app}"`,
      });
      for (const event of runResultEvents(result, data.submittedAt)) yield event;
      return;
    }
  }

  let preflightCache: { at: number; nodeTypes: Set<string>; models: Record<string, string[]> } | undefined;

  const provider: ModalProvider = {
    specificationVersion: 'v1',
    id,
    platform: 'modal',
    app,
    cls,
    ...(environment === undefined ? {} : { environment }),
    ...(region === undefined ? {} : { region }),
    gpu: gpu satisfies GpuSpec,
    pricing,
    ...(options.image === undefined ? {} : { image: options.image }),
    ...(options.limits === undefined ? {} : { limits: { ...options.limits } }),
    coldStartMs,
    ...(expectedExecutionMs === undefined ? {} : { expectedExecutionMs }),

    doSubmit(request: ProviderJobRequest, callOptions: ProviderCallOptions = {}): Promise<RemoteJobRef> {
      requireJobId(request);
      // Spawning cannot be undone once sent, so the signal is honoured only before it.
      callOptions.signal?.throwIfAborted();
      const key = `${request.jobId}#${request.attempt}`;
      const existing = submitted.get(key);
      if (existing !== undefined) return existing;
      const promise = (async () => {
        const submittedAt = clock.now();
        const body = buildRunRequest(request, { encoding: 'bytes', submittedAt });
        let callId: string;
        try {
          callId = await backend.spawn(runTarget, [body]);
        } catch (error) {
          throw mapModalError(error, errorContext('submit', { jobId: request.jobId }));
        }
        return {
          remoteId: callId,
          data: {
            ...defaults,
            jobId: request.jobId,
            submittedAt,
            ...(request.deadlineAt === undefined ? {} : { deadlineAt: request.deadlineAt }),
          },
        };
      })();
      submitted.set(key, promise);
      promise.catch(() => submitted.delete(key));
      if (submitted.size > SUBMITTED_CACHE_LIMIT) {
        const oldest = submitted.keys().next().value;
        if (oldest !== undefined) submitted.delete(oldest);
      }
      return promise;
    },

    doWatch: (ref, callOptions) => watch(ref, callOptions),

    async doCancel(ref: RemoteJobRef, _callOptions?: ProviderCallOptions): Promise<void> {
      const data = readRefData(ref, defaults);
      const callId = ref.remoteId;
      cancellationOf(callId).abort(new Error('cancelled'));
      try {
        await backend.cancel(callId, { terminateContainers: options.terminateContainersOnCancel ?? false });
      } catch (error) {
        const mapped = mapModalError(error, errorContext('cancel', { callId, target: data }));
        // A call that finished or expired has nothing left to cancel.
        if (mapped.name === 'JobExpiredError' || (error as { code?: unknown } | null)?.code === 9) return;
        throw mapped;
      } finally {
        // Forget the marker after a while so that long-lived providers do not grow.
        const handle = clock.setTimeout(() => cancellations.delete(callId), 10 * 60_000);
        void handle;
      }
    },

    async doHealth(_callOptions?: ProviderCallOptions): Promise<ProviderHealth> {
      const checkedAt = clock.now();
      try {
        const stats = await backend.currentStats(runTarget);
        const busy = stats.backlog > 0 ? { busyWorkers: stats.runners, idleWorkers: 0 } : {};
        return {
          status: 'healthy',
          queued: stats.backlog,
          ...busy,
          message: `${stats.runners} container(s) up, ${stats.backlog} call(s) waiting`,
          checkedAt,
        };
      } catch (error) {
        const mapped = mapModalError(error, errorContext('health'));
        return {
          status: mapped.isRetryable ? 'degraded' : 'unhealthy',
          message: redactSecrets(mapped.message, secrets),
          checkedAt,
        };
      }
    },
  };

  if (options.preflight === true) {
    provider.doPreflight = async (
      requirements: WorkflowRequirements,
      callOptions: ProviderCallOptions = {},
    ) => {
      if (preflightCache === undefined || clock.now() - preflightCache.at > preflightTtlMs) {
        try {
          const [objectInfo, models] = await abortable(
            Promise.all([
              backend.call({ ...runTarget, method: 'object_info' }, [], { timeoutMs: 600_000 }),
              backend.call({ ...runTarget, method: 'list_models' }, [], { timeoutMs: 600_000 }),
            ]),
            [callOptions.signal],
          );
          const nodeTypes = new Set(
            objectInfo !== null && typeof objectInfo === 'object' ? Object.keys(objectInfo as object) : [],
          );
          const modelLists: Record<string, string[]> = {};
          if (models !== null && typeof models === 'object') {
            for (const [folder, names] of Object.entries(models as Record<string, unknown>)) {
              if (Array.isArray(names))
                modelLists[folder] = names.filter((name): name is string => typeof name === 'string');
            }
          }
          preflightCache = { at: clock.now(), nodeTypes, models: modelLists };
        } catch (error) {
          callOptions.signal?.throwIfAborted();
          throw mapModalError(error, errorContext('preflight'));
        }
      }
      const cache = preflightCache;
      const missingNodeTypes = requirements.nodeTypes.filter((type) => !cache.nodeTypes.has(type));
      const missingModels = requirements.models
        .filter((model) => model.folder !== null && !(cache.models[model.folder] ?? []).includes(model.name))
        .map((model) => `${model.folder}/${model.name}`);
      return {
        ok: missingModels.length === 0 && missingNodeTypes.length === 0,
        missingModels,
        missingNodeTypes,
      };
    };
  }
  return provider;
}
