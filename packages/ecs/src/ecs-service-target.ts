import type { ECSClient, ECSClientConfig, Service } from '@aws-sdk/client-ecs';
import {
  type Clock,
  ConfigurationError,
  InvalidArgumentError,
  type ScaleSettings,
  type ScaleTargetState,
  type ScaleTargetV1,
  systemClock,
} from '@comfy-serverless/core';
import { createEcsCalls, type EcsRetryOptions, lazyEcsClient } from './ecs-calls';
import { optionalClock, optionalNumber, optionalString, requireString } from './ecs-options';

/** Options of `createEcsServiceTarget`. */
export interface EcsServiceTargetOptions {
  /** The cluster's name or ARN. */
  cluster: string;
  /** The service's name or ARN. */
  service: string;
  /** Needed unless `client` is given. */
  region?: string;
  client?: ECSClient;
  credentials?: ECSClientConfig['credentials'];
  /** The range of `desiredCount` that `apply` accepts. @default { minWorkers: 0, maxWorkers: 20 } */
  bounds?: { minWorkers: number; maxWorkers: number };
  /** USD per second of one task, reported in `describe`. */
  usdPerSecond?: number;
  /** Typical time for a new task to take jobs, reported in `describe`. */
  coldStartMs?: number;
  /** The provider that sends jobs to this service. */
  providerId?: string;
  /** @default `ecs-service:<cluster>/<service>` */
  id?: string;
  retry?: EcsRetryOptions;
  clock?: Clock;
}

/**
 * An ECS service as a `ScaleTargetV1`: `describe` reads DescribeServices (desired, running
 * and pending counts), `apply` sets the service's `desiredCount` through UpdateService.
 * ECS services have no min/max of their own (that is Application Auto Scaling), so
 * `minWorkers`/`maxWorkers` are kept here and the desired count is clamped into them.
 * `drifted` is true when the desired count is no longer what this target last set (a
 * deployment or another scaler changed it).
 *
 * @example
 * const target = createEcsServiceTarget({ cluster: 'gpu', service: 'comfyui', region: 'us-east-1' });
 * await target.apply({ desiredWorkers: 3 });
 */
export function createEcsServiceTarget(options: EcsServiceTargetOptions): ScaleTargetV1 {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError({
      argument: 'options',
      message: 'createEcsServiceTarget needs { cluster, service, region }.',
    });
  }
  const cluster = requireString(options.cluster, 'cluster', 'the ECS cluster name or ARN');
  const service = requireString(options.service, 'service', 'the ECS service name or ARN');
  const region = optionalString(options.region, 'region');
  if (options.client === undefined && region === undefined) {
    throw new InvalidArgumentError({
      argument: 'region',
      message: '"region" is needed when no "client" is given (like region: \'us-east-1\').',
    });
  }
  const bounds = options.bounds ?? { minWorkers: 0, maxWorkers: 20 };
  const minBound = optionalNumber(bounds?.minWorkers, 'bounds.minWorkers', { min: 0, integer: true }) ?? 0;
  const maxBound =
    optionalNumber(bounds?.maxWorkers, 'bounds.maxWorkers', { min: Math.max(1, minBound), integer: true }) ??
    20;
  const usdPerSecond = optionalNumber(options.usdPerSecond, 'usdPerSecond', { min: 0 });
  const coldStartMs = optionalNumber(options.coldStartMs, 'coldStartMs', { min: 0 });
  const providerId = optionalString(options.providerId, 'providerId');
  const clock = optionalClock(options.clock) ?? systemClock;
  const id =
    optionalString(options.id, 'id') ??
    `ecs-service:${cluster.split('/').at(-1)}/${service.split('/').at(-1)}`;
  const calls = createEcsCalls({
    getClient: lazyEcsClient({ client: options.client, region, credentials: options.credentials }),
    cluster,
    region,
    providerId,
    clock,
    retry: options.retry,
  });
  let minWorkers = minBound;
  let maxWorkers = maxBound;
  let lastApplied: number | undefined;

  const stateOf = (found: Service): ScaleTargetState => {
    const desired = found.desiredCount ?? 0;
    return {
      minWorkers,
      maxWorkers,
      desiredWorkers: desired,
      runningWorkers: found.runningCount ?? 0,
      pendingWorkers: found.pendingCount ?? 0,
      bounds: { minWorkers: minBound, maxWorkers: maxBound },
      ...(usdPerSecond === undefined ? {} : { usdPerSecond }),
      ...(coldStartMs === undefined ? {} : { coldStartMs }),
      ...(lastApplied === undefined ? {} : { drifted: desired !== lastApplied }),
      describedAt: clock.now(),
    };
  };

  const read = async (signal?: AbortSignal): Promise<Service> => {
    const { service: found, failures } = await calls.describeService(service, signal);
    if (found === undefined || found.status === 'INACTIVE') {
      const reason = found?.status ?? (failures.map((failure) => failure.reason).join(', ') || 'not found');
      throw new ConfigurationError({
        message: `ECS service ${service} in cluster ${cluster} is ${reason}. Check the "service" and "cluster" options and the region.`,
        ...(providerId === undefined ? {} : { providerId }),
      });
    }
    return found;
  };

  const checkRange = (value: number | undefined, name: string) => {
    if (value === undefined) return;
    if (!Number.isInteger(value) || value < minBound || value > maxBound) {
      throw new InvalidArgumentError({
        argument: name,
        message: `"${name}" must be an integer from ${minBound} to ${maxBound} (the target's bounds); got ${String(value)}.`,
      });
    }
  };

  return {
    specificationVersion: 'v1',
    id,
    platform: 'ecs',
    ...(providerId === undefined ? {} : { providerId }),

    async describe(describeOptions = {}) {
      return stateOf(await read(describeOptions.signal));
    },

    async apply(settings: ScaleSettings, applyOptions = {}) {
      checkRange(settings.minWorkers, 'minWorkers');
      checkRange(settings.maxWorkers, 'maxWorkers');
      checkRange(settings.desiredWorkers, 'desiredWorkers');
      const nextMin = settings.minWorkers ?? minWorkers;
      const nextMax = settings.maxWorkers ?? maxWorkers;
      if (nextMin > nextMax) {
        throw new InvalidArgumentError({
          argument: 'minWorkers',
          message: `"minWorkers" (${nextMin}) must not exceed "maxWorkers" (${nextMax}).`,
        });
      }
      const current = await read(applyOptions.signal);
      minWorkers = nextMin;
      maxWorkers = nextMax;
      const wanted = settings.desiredWorkers ?? current.desiredCount ?? 0;
      const desired = Math.min(maxWorkers, Math.max(minWorkers, wanted));
      if (desired === current.desiredCount) {
        lastApplied = desired;
        return stateOf(current);
      }
      const updated = await calls.updateService(service, desired, applyOptions.signal);
      lastApplied = desired;
      return stateOf(updated ?? { ...current, desiredCount: desired });
    },
  };
}
