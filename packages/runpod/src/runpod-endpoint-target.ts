import type {
  Clock,
  FetchFunction,
  ScaleSettings,
  ScaleTargetState,
  ScaleTargetV1,
} from '@comfy-serverless/core';
import {
  ApiCallError,
  ConfigurationError,
  InvalidArgumentError,
  requestJson,
  systemClock,
  withRetry,
} from '@comfy-serverless/core';
import type { z } from 'zod';
import {
  endpointResponseSchema,
  healthResponseSchema,
  RUNPOD_SCALER_TYPES,
  type RunpodEndpointResponse,
  type RunpodScalerType,
} from './runpod-api';
import { loadRunpodApiKey } from './runpod-api-key';

/** Settings of `createRunpodEndpointTarget`. */
export interface RunpodEndpointTargetSettings {
  endpointId: string;
  /** @default process.env.RUNPOD_API_KEY, read at request time */
  apiKey?: string;
  /** The REST management API. @default 'https://rest.runpod.io/v1' */
  restBaseURL?: string;
  /** The job API, read for worker counts (`/health`). @default 'https://api.runpod.ai/v2' */
  baseURL?: string;
  headers?: Record<string, string>;
  fetch?: FetchFunction;
  clock?: Clock;
  /** Bounds `apply` accepts. @default { minWorkers: 0, maxWorkers: 100 } */
  bounds?: { minWorkers?: number; maxWorkers?: number };
  /** The provider this endpoint serves. @default `runpod:<endpointId>` */
  providerId?: string;
  /** Target id. @default `runpod-endpoint:<endpointId>` */
  id?: string;
  /** USD per second of one worker, reported in the state. */
  usdPerSecond?: number;
  coldStartMs?: number;
  /** Also read `/health` for running, idle and starting workers. @default true */
  readHealth?: boolean;
  /** Retries of a 429 or 5xx. @default 4 */
  maxRetries?: number;
  random?: () => number;
}

/** What `apply` takes for a RunPod endpoint: the common settings plus RunPod's scaler. */
export interface RunpodScaleSettings extends ScaleSettings {
  /** `QUEUE_DELAY` (scale when jobs wait longer than `scalerValue` s) or `REQUEST_COUNT`. */
  scalerType?: RunpodScalerType;
  /** Seconds of queue delay, or requests per worker, depending on `scalerType` (1..3600). */
  scalerValue?: number;
}

/** A RunPod endpoint's state: the common fields plus its scaler. */
export interface RunpodScaleTargetState extends ScaleTargetState {
  scalerType?: string;
  scalerValue?: number;
  /** GPU types in the order RunPod tries them. */
  gpuTypeIds?: string[];
}

/** A `ScaleTargetV1` over a RunPod endpoint's worker settings. */
export interface RunpodEndpointTarget extends ScaleTargetV1 {
  readonly platform: 'runpod';
  describe(options?: { signal?: AbortSignal }): Promise<RunpodScaleTargetState>;
  apply(settings: RunpodScaleSettings, options?: { signal?: AbortSignal }): Promise<RunpodScaleTargetState>;
}

const IDLE_TIMEOUT_RANGE = { min: 1, max: 3_600 };
const SCALER_VALUE_RANGE = { min: 1, max: 3_600 };

function invalid(argument: string, message: string): never {
  throw new InvalidArgumentError({ argument, message });
}

function integerIn(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    invalid(name, `"${name}" must be an integer from ${min} to ${max}; got ${String(value)}.`);
  return value;
}

/**
 * Creates a scale target over a RunPod endpoint through the REST management API
 * (`GET|PATCH /endpoints/{id}`: `workersMin`, `workersMax`, `idleTimeout`, `scalerType`,
 * `scalerValue`). Values are checked against RunPod's ranges and `bounds` before sending.
 *
 * `desiredWorkers` has no RunPod counterpart and is applied as `workersMin` (workers kept
 * up, and billed, even when idle); `bufferWorkers` is refused.
 *
 * @example
 * const target = createRunpodEndpointTarget({ endpointId: 'abc123' });
 * await target.apply({ minWorkers: 1, maxWorkers: 5, idleTimeoutSeconds: 30 });
 */
export function createRunpodEndpointTarget(settings: RunpodEndpointTargetSettings): RunpodEndpointTarget {
  if (settings === null || typeof settings !== 'object')
    invalid('settings', 'createRunpodEndpointTarget needs a settings object.');
  const { endpointId } = settings;
  if (typeof endpointId !== 'string' || !/^[\w-]+$/.test(endpointId))
    invalid('endpointId', `"endpointId" must be the endpoint's id; got ${JSON.stringify(endpointId)}.`);
  const boundsMin = integerIn('bounds.minWorkers', settings.bounds?.minWorkers ?? 0, 0, 10_000);
  const boundsMax = integerIn('bounds.maxWorkers', settings.bounds?.maxWorkers ?? 100, 1, 10_000);
  if (boundsMin > boundsMax)
    invalid('bounds', `"bounds.minWorkers" (${boundsMin}) is above "bounds.maxWorkers" (${boundsMax}).`);
  const restBaseURL = (settings.restBaseURL ?? 'https://rest.runpod.io/v1').replace(/\/+$/, '');
  const baseURL = (settings.baseURL ?? 'https://api.runpod.ai/v2').replace(/\/+$/, '');
  const clock = settings.clock ?? systemClock;
  const id = settings.id ?? `runpod-endpoint:${endpointId}`;
  const providerId = settings.providerId ?? `runpod:${endpointId}`;
  let lastApplied: RunpodEndpointResponse | undefined;

  const call = async <T>(
    url: string,
    schema: z.ZodType<T>,
    options: { method?: 'GET' | 'PATCH'; body?: unknown; signal?: AbortSignal | undefined },
  ): Promise<T> => {
    const key = loadRunpodApiKey(settings.apiKey, providerId);
    return withRetry(
      async () => {
        try {
          const response = await requestJson<T>({
            url,
            method: options.method ?? 'GET',
            headers: { ...(settings.headers ?? {}), authorization: `Bearer ${key}` },
            ...(options.body === undefined ? {} : { body: options.body }),
            ...(settings.fetch ? { fetch: settings.fetch } : {}),
            ...(options.signal ? { signal: options.signal } : {}),
            timeoutMs: 30_000,
            schema,
            secrets: [key],
            providerId,
          });
          return response.value;
        } catch (error) {
          if (!ApiCallError.isInstance(error)) throw error;
          if (error.statusCode === 401 || error.statusCode === 403)
            throw new ApiCallError({
              message: `RunPod refused the API key (${error.statusCode}) for endpoint ${endpointId}. Set the \`apiKey\` option or the RUNPOD_API_KEY environment variable to a key with read/write access.`,
              url: error.url,
              statusCode: error.statusCode,
              isRetryable: false,
              providerId,
            });
          if (error.statusCode === 404)
            throw new ConfigurationError({
              message: `RunPod has no endpoint ${endpointId} (404 on ${error.url}). Check endpointId against the RunPod console.`,
              providerId,
            });
          if (error.statusCode === 400)
            throw new ApiCallError({
              message: `RunPod refused the endpoint settings: ${error.responseBody?.slice(0, 300) ?? '(no detail)'}. Fix the values and apply again.`,
              url: error.url,
              statusCode: 400,
              ...(error.responseBody === undefined ? {} : { responseBody: error.responseBody }),
              isRetryable: false,
              providerId,
            });
          throw error;
        }
      },
      {
        retries: settings.maxRetries ?? 4,
        clock,
        ...(settings.random ? { random: settings.random } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      },
    );
  };

  const endpointUrl = `${restBaseURL}/endpoints/${encodeURIComponent(endpointId)}`;

  const toState = async (
    endpoint: RunpodEndpointResponse,
    signal?: AbortSignal,
  ): Promise<RunpodScaleTargetState> => {
    let health: z.infer<typeof healthResponseSchema> | undefined;
    if (settings.readHealth ?? true)
      health = await call(`${baseURL}/${encodeURIComponent(endpointId)}/health`, healthResponseSchema, {
        signal,
      });
    const workers = health?.workers ?? {};
    // Some answers carry `ready` beside or instead of `idle`; they may overlap, so never add them.
    const idle = workers.idle ?? workers.ready ?? 0;
    const drifted =
      lastApplied !== undefined &&
      (lastApplied.workersMin !== endpoint.workersMin ||
        lastApplied.workersMax !== endpoint.workersMax ||
        (lastApplied.idleTimeout ?? null) !== (endpoint.idleTimeout ?? null) ||
        (lastApplied.scalerType ?? null) !== (endpoint.scalerType ?? null) ||
        (lastApplied.scalerValue ?? null) !== (endpoint.scalerValue ?? null));
    return {
      minWorkers: endpoint.workersMin,
      maxWorkers: endpoint.workersMax,
      runningWorkers: (workers.running ?? 0) + idle,
      ...(health
        ? {
            idleWorkers: idle,
            pendingWorkers: workers.initializing ?? 0,
            queueDepth: health.jobs?.inQueue ?? 0,
          }
        : {}),
      ...(endpoint.idleTimeout == null ? {} : { idleTimeoutSeconds: endpoint.idleTimeout }),
      bounds: { minWorkers: boundsMin, maxWorkers: boundsMax },
      ...(settings.usdPerSecond === undefined ? {} : { usdPerSecond: settings.usdPerSecond }),
      ...(settings.coldStartMs === undefined ? {} : { coldStartMs: settings.coldStartMs }),
      ...(endpoint.scalerType == null ? {} : { scalerType: endpoint.scalerType }),
      ...(endpoint.scalerValue == null ? {} : { scalerValue: endpoint.scalerValue }),
      ...(endpoint.gpuTypeIds == null ? {} : { gpuTypeIds: [...endpoint.gpuTypeIds] }),
      drifted,
      describedAt: clock.now(),
    };
  };

  return {
    specificationVersion: 'v1',
    id,
    platform: 'runpod',
    providerId,

    async describe(options = {}) {
      const endpoint = await call(endpointUrl, endpointResponseSchema, { signal: options.signal });
      return toState(endpoint, options.signal);
    },

    async apply(requested, options = {}) {
      if (requested === null || typeof requested !== 'object')
        invalid('settings', 'apply needs a settings object.');
      if (requested.bufferWorkers !== undefined)
        invalid(
          'bufferWorkers',
          'RunPod endpoints have no buffer workers; use minWorkers to keep workers warm.',
        );
      const patch: Record<string, unknown> = {};
      const minWorkers = requested.minWorkers ?? requested.desiredWorkers;
      const minName = requested.minWorkers === undefined ? 'desiredWorkers' : 'minWorkers';
      if (minWorkers !== undefined) patch.workersMin = integerIn(minName, minWorkers, boundsMin, boundsMax);
      if (requested.maxWorkers !== undefined)
        patch.workersMax = integerIn('maxWorkers', requested.maxWorkers, Math.max(1, boundsMin), boundsMax);
      if (requested.idleTimeoutSeconds !== undefined)
        patch.idleTimeout = integerIn(
          'idleTimeoutSeconds',
          requested.idleTimeoutSeconds,
          IDLE_TIMEOUT_RANGE.min,
          IDLE_TIMEOUT_RANGE.max,
        );
      if (requested.scalerType !== undefined) {
        if (!RUNPOD_SCALER_TYPES.includes(requested.scalerType))
          invalid(
            'scalerType',
            `"scalerType" must be one of ${RUNPOD_SCALER_TYPES.join(', ')}; got ${JSON.stringify(requested.scalerType)}.`,
          );
        patch.scalerType = requested.scalerType;
      }
      if (requested.scalerValue !== undefined)
        patch.scalerValue = integerIn(
          'scalerValue',
          requested.scalerValue,
          SCALER_VALUE_RANGE.min,
          SCALER_VALUE_RANGE.max,
        );

      const current = await call(endpointUrl, endpointResponseSchema, { signal: options.signal });
      const nextMin = (patch.workersMin as number | undefined) ?? current.workersMin;
      const nextMax = (patch.workersMax as number | undefined) ?? current.workersMax;
      if (nextMin > nextMax)
        invalid(
          minName in patch || patch.workersMin !== undefined ? minName : 'maxWorkers',
          `workersMin (${nextMin}) would be above workersMax (${nextMax}); raise maxWorkers or lower minWorkers.`,
        );
      const unchanged = Object.entries(patch).every(
        ([key, value]) => current[key as keyof RunpodEndpointResponse] === value,
      );
      const updated = unchanged
        ? current
        : await call(endpointUrl, endpointResponseSchema, {
            method: 'PATCH',
            body: patch,
            signal: options.signal,
          });
      lastApplied = { ...updated };
      return toState(updated, options.signal);
    },
  };
}
