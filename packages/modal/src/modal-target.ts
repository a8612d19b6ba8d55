import type { Clock, ScaleSettings, ScaleTargetState, ScaleTargetV1 } from '@comfy-serverless/core';
import { InvalidArgumentError, systemClock } from '@comfy-serverless/core';
import type { ModalAutoscalerSettings, ModalBackend, ModalMethodTarget } from './modal-backend';
import { mapModalError } from './modal-error';
import { optionalClock, optionalNumber, optionalString, requireString } from './modal-options';
import type { ModalClientLike } from './modal-sdk-backend';
import { createModalSdkBackend } from './modal-sdk-backend';

/** Options of `createModalTarget`. */
export interface ModalTargetOptions {
  /** The deployed app's name. */
  app: string;
  /** @default 'ComfyWorker' */
  cls?: string;
  /** Any method of the class: all methods of a class share one autoscaler. @default 'run' */
  method?: string;
  environment?: string;
  /** The autoscaler settings `comfyui_app.py` declares: what a deploy resets to. @default { minContainers: 0, maxContainers: bounds.maxWorkers, bufferContainers: 0, scaledownWindowMs: 60000 } */
  deployed?: ModalAutoscalerSettings;
  /** The range `apply` accepts. @default { minWorkers: 0, maxWorkers: 100 } */
  bounds?: { minWorkers: number; maxWorkers: number };
  /** USD per second of one container, reported in `describe`. */
  usdPerSecond?: number;
  coldStartMs?: number;
  /** The provider that sends jobs to this class (`modal:<app>/<cls>`). */
  providerId?: string;
  /** @default `modal-target:<app>/<cls>` */
  id?: string;
  client?: ModalBackend;
  modalClient?: ModalClientLike;
  tokenId?: string;
  tokenSecret?: string;
  clock?: Clock;
}

/** What Modal's autoscaler was last told by this target, and when. */
export interface ModalAppliedSettings extends ModalAutoscalerSettings {
  /** Epoch ms of the update. */
  appliedAt: number;
  /** The app's deployment version when the update was made, when Modal said. */
  deploymentVersion?: number;
  /** Epoch ms of the app's deployment when the update was made, when Modal said. */
  deployedAt?: number;
}

/** `describe()` of a Modal target: the common state plus the last applied settings. */
export interface ModalScaleTargetState extends ScaleTargetState {
  /** The last settings applied through this target; still in force unless `drifted`. */
  lastApplied?: ModalAppliedSettings;
}

/** A Modal class as a scale target. */
export interface ModalScaleTarget extends ScaleTargetV1 {
  describe(options?: { signal?: AbortSignal }): Promise<ModalScaleTargetState>;
  apply(settings: ScaleSettings, options?: { signal?: AbortSignal }): Promise<ModalScaleTargetState>;
  /** Applies the last applied settings again (after a deploy reset them); a no-op when none were applied. */
  reapply(options?: { signal?: AbortSignal }): Promise<ModalScaleTargetState>;
}

const MIN_SCALEDOWN_SECONDS = 2;
const MAX_SCALEDOWN_SECONDS = 20 * 60;

/**
 * A `ScaleTargetV1` over Modal's autoscaler: `apply` calls `updateAutoscaler` with
 * `minContainers`, `maxContainers`, `bufferContainers` and `scaledownWindowMs`;
 * `describe` reads `getCurrentStats()`. A `modal deploy` resets run-time overrides, so
 * `describe` compares the app's deployment with the one the settings were applied to and
 * reports `drifted` (the autoscaler then applies again, or call `reapply`).
 *
 * @example
 * const target = createModalTarget({ app: 'comfyui', providerId: 'modal:comfyui/ComfyWorker' });
 * await target.apply({ minWorkers: 1, maxWorkers: 8, bufferWorkers: 1, idleTimeoutSeconds: 120 });
 */
export function createModalTarget(options: ModalTargetOptions): ModalScaleTarget {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError({ argument: 'options', message: 'createModalTarget needs { app, ... }.' });
  }
  const app = requireString(options.app, 'app', 'the name of the deployed Modal app');
  const cls = optionalString(options.cls, 'cls') ?? 'ComfyWorker';
  const method = optionalString(options.method, 'method') ?? 'run';
  const environment = optionalString(options.environment, 'environment');
  const bounds = options.bounds ?? { minWorkers: 0, maxWorkers: 100 };
  optionalNumber(bounds.minWorkers, 'bounds.minWorkers', { min: 0, integer: true });
  optionalNumber(bounds.maxWorkers, 'bounds.maxWorkers', {
    min: Math.max(1, bounds.minWorkers ?? 0),
    integer: true,
  });
  const usdPerSecond = optionalNumber(options.usdPerSecond, 'usdPerSecond', { min: 0 });
  const coldStartMs = optionalNumber(options.coldStartMs, 'coldStartMs', { min: 0 });
  const clock = optionalClock(options.clock) ?? systemClock;
  const providerId = optionalString(options.providerId, 'providerId');
  const id = optionalString(options.id, 'id') ?? `modal-target:${app}/${cls}`;
  const deployed: ModalAutoscalerSettings = {
    minContainers: 0,
    maxContainers: bounds.maxWorkers,
    bufferContainers: 0,
    scaledownWindowMs: 60_000,
    ...options.deployed,
  };
  const backend: ModalBackend =
    options.client ??
    createModalSdkBackend({
      ...(options.modalClient === undefined ? {} : { modalClient: options.modalClient }),
      ...(options.tokenId === undefined ? {} : { tokenId: options.tokenId }),
      ...(options.tokenSecret === undefined ? {} : { tokenSecret: options.tokenSecret }),
      ...(environment === undefined ? {} : { environment }),
    });
  const target: ModalMethodTarget = {
    app,
    cls,
    method,
    ...(environment === undefined ? {} : { environment }),
  };
  const secrets = [options.tokenSecret];
  let lastApplied: ModalAppliedSettings | undefined;

  const fail = (error: unknown) =>
    mapModalError(error, {
      phase: 'scale',
      target,
      secrets,
      ...(providerId === undefined ? {} : { providerId }),
    });

  const deploymentNow = async () => {
    if (backend.deployment === undefined) return {};
    try {
      return await backend.deployment(target);
    } catch (error) {
      throw fail(error);
    }
  };

  const isDrifted = (current: { version?: number; deployedAt?: number }): boolean | undefined => {
    if (lastApplied === undefined) return undefined;
    if (current.version !== undefined && lastApplied.deploymentVersion !== undefined)
      return current.version !== lastApplied.deploymentVersion;
    if (current.deployedAt !== undefined && lastApplied.deployedAt !== undefined)
      return current.deployedAt !== lastApplied.deployedAt;
    return undefined;
  };

  const describe = async (describeOptions: { signal?: AbortSignal } = {}): Promise<ModalScaleTargetState> => {
    describeOptions.signal?.throwIfAborted();
    let stats: Awaited<ReturnType<ModalBackend['currentStats']>>;
    try {
      stats = await backend.currentStats(target);
    } catch (error) {
      throw fail(error);
    }
    const drifted = isDrifted(await deploymentNow());
    // After a redeploy the class runs with what the app file declares again.
    const inForce =
      drifted === true || lastApplied === undefined ? deployed : { ...deployed, ...lastApplied };
    const scaledownWindowMs = inForce.scaledownWindowMs;
    return {
      minWorkers: inForce.minContainers ?? 0,
      maxWorkers: inForce.maxContainers ?? bounds.maxWorkers,
      runningWorkers: stats.runners,
      queueDepth: stats.backlog,
      ...(stats.backlog > 0 ? { idleWorkers: 0 } : {}),
      ...(scaledownWindowMs === undefined ? {} : { idleTimeoutSeconds: scaledownWindowMs / 1000 }),
      bounds: { ...bounds },
      ...(usdPerSecond === undefined ? {} : { usdPerSecond }),
      ...(coldStartMs === undefined ? {} : { coldStartMs }),
      ...(drifted === undefined ? {} : { drifted }),
      ...(lastApplied === undefined ? {} : { lastApplied: { ...lastApplied } }),
      describedAt: clock.now(),
    };
  };

  const toModalSettings = (settings: ScaleSettings): ModalAutoscalerSettings => {
    if (settings === null || typeof settings !== 'object') {
      throw new InvalidArgumentError({ argument: 'settings', message: 'apply() needs a settings object.' });
    }
    const range = { min: bounds.minWorkers, max: bounds.maxWorkers, integer: true };
    const minWorkers = optionalNumber(settings.minWorkers, 'minWorkers', range);
    const maxWorkers = optionalNumber(settings.maxWorkers, 'maxWorkers', range);
    const desiredWorkers = optionalNumber(settings.desiredWorkers, 'desiredWorkers', range);
    const bufferWorkers = optionalNumber(settings.bufferWorkers, 'bufferWorkers', {
      min: 0,
      max: bounds.maxWorkers,
      integer: true,
    });
    const idleTimeoutSeconds = optionalNumber(settings.idleTimeoutSeconds, 'idleTimeoutSeconds', {
      min: MIN_SCALEDOWN_SECONDS,
      max: MAX_SCALEDOWN_SECONDS,
    });
    // Modal has no desired count: keeping that many warm is the closest it offers.
    const minimum = minWorkers ?? desiredWorkers;
    const currentMax = lastApplied?.maxContainers ?? deployed.maxContainers;
    const currentMin = lastApplied?.minContainers ?? deployed.minContainers;
    const effectiveMin = minimum ?? currentMin ?? 0;
    const effectiveMax = maxWorkers ?? currentMax ?? bounds.maxWorkers;
    if (effectiveMin > effectiveMax) {
      throw new InvalidArgumentError({
        argument: maxWorkers === undefined ? 'minWorkers' : 'maxWorkers',
        message: `minWorkers (${effectiveMin}) must not exceed maxWorkers (${effectiveMax}).`,
      });
    }
    return {
      ...(minimum === undefined ? {} : { minContainers: minimum }),
      ...(maxWorkers === undefined ? {} : { maxContainers: maxWorkers }),
      ...(bufferWorkers === undefined ? {} : { bufferContainers: bufferWorkers }),
      ...(idleTimeoutSeconds === undefined
        ? {}
        : { scaledownWindowMs: Math.round(idleTimeoutSeconds * 1000) }),
    };
  };

  const push = async (settings: ModalAutoscalerSettings, signal: AbortSignal | undefined) => {
    signal?.throwIfAborted();
    const deployment = await deploymentNow();
    // After a redeploy, earlier overrides are gone: only what is sent now holds.
    const base = isDrifted(deployment) === true ? {} : lastApplied;
    let inForce: ModalAutoscalerSettings;
    try {
      inForce = await backend.updateAutoscaler(target, settings);
    } catch (error) {
      throw fail(error);
    }
    const merged: ModalAutoscalerSettings = { ...stripTimes(base), ...settings };
    for (const key of ['minContainers', 'maxContainers', 'bufferContainers', 'scaledownWindowMs'] as const) {
      const value = inForce[key];
      if (value !== undefined && value !== null) merged[key] = value;
    }
    lastApplied = {
      ...merged,
      appliedAt: clock.now(),
      ...(deployment.version === undefined ? {} : { deploymentVersion: deployment.version }),
      ...(deployment.deployedAt === undefined ? {} : { deployedAt: deployment.deployedAt }),
    };
  };

  return {
    specificationVersion: 'v1',
    id,
    platform: 'modal',
    ...(providerId === undefined ? {} : { providerId }),
    describe,
    async apply(settings, applyOptions = {}) {
      const modalSettings = toModalSettings(settings);
      if (Object.keys(modalSettings).length > 0) await push(modalSettings, applyOptions.signal);
      return describe(applyOptions);
    },
    async reapply(reapplyOptions = {}) {
      if (lastApplied !== undefined) await push(stripTimes(lastApplied), reapplyOptions.signal);
      return describe(reapplyOptions);
    },
  };
}

function stripTimes(
  settings: ModalAutoscalerSettings | ModalAppliedSettings | undefined,
): ModalAutoscalerSettings {
  if (settings === undefined) return {};
  const result: ModalAutoscalerSettings = {};
  for (const key of ['minContainers', 'maxContainers', 'bufferContainers', 'scaledownWindowMs'] as const) {
    const value = settings[key];
    if (value !== undefined) result[key] = value;
  }
  return result;
}
