import type { ProviderJobEvent, ProviderJobRequest, RemoteJobRef, WorkflowRequirements } from './job';

/** A GPU as providers describe it. */
export interface GpuSpec {
  /** A known name (`H100-80GB`) or the platform's own. */
  type: string;
  vramGb: number;
  /** GPUs per worker. @default 1 */
  count?: number;
}

/** What a provider charges. */
export interface ProviderPricing {
  /** USD per second of one worker, cold start and idle time included. */
  usdPerSecond: number;
  /** Billing is rounded up to this many seconds. @default 1 */
  billingIncrementSeconds?: number;
}

/** What a worker image contains (for preflight, routing and image selection). */
export interface ImageDescriptor {
  id: string;
  /** Models baked into the image or present on its volume, by ComfyUI folder. */
  models?: Record<string, string[]>;
  /** Sizes in bytes of those models, by `folder/name`, when known. */
  modelSizes?: Record<string, number>;
  /** Node types the image has (`class_type` values). When absent, unknown: not checked. */
  nodeTypes?: string[];
  /** Whether models missing from the image can be loaded at run time (network volume, download). */
  canLoadModels?: boolean;
  sizeGb?: number;
  coldStartMs?: number;
}

/** Platform limits the dispatcher and router respect. */
export interface ProviderLimits {
  /** Largest request body the platform takes, in bytes. */
  maxPayloadBytes?: number;
  /** Most jobs this provider should run at once (the dispatcher's per-provider bound). */
  maxConcurrency?: number;
  /** Longest execution the platform allows, in ms. */
  maxExecutionMs?: number;
}

/** A provider's health, normalised across platforms. */
export interface ProviderHealth {
  status: 'healthy' | 'degraded' | 'unhealthy';
  /** Jobs waiting on the platform. */
  queued?: number;
  /** Jobs running on the platform. */
  running?: number;
  /** Workers up and idle (a job would start at once). */
  idleWorkers?: number;
  /** Workers running a job. */
  busyWorkers?: number;
  /** Workers starting. */
  initializingWorkers?: number;
  /** Workers the platform holds back (RunPod's `throttled`). */
  throttledWorkers?: number;
  /** The most workers the platform will run. */
  maxWorkers?: number;
  message?: string;
  /** Epoch ms of the check. */
  checkedAt: number;
}

/** Options passed to every `do*` call. */
export interface ProviderCallOptions {
  signal?: AbortSignal;
}

/** Options of `doLookup`. */
export interface ProviderLookupOptions extends ProviderCallOptions {
  /** The attempt whose submission is being looked for (as in `ProviderJobRequest.attempt`). */
  attempt?: number;
}

/**
 * A place that runs ComfyUI workflows: a RunPod endpoint, a Modal class, an ECS service,
 * a pool of ComfyUI servers. The dispatcher calls the `do*` methods; users call the
 * dispatcher.
 */
export interface ProviderV1 {
  readonly specificationVersion: 'v1';
  /** Unique among the dispatcher's providers (`runpod:abc123`). */
  readonly id: string;
  /** `runpod`, `modal`, `ecs`, `self-hosted`, or another platform's name. */
  readonly platform: string;
  readonly region?: string;
  readonly gpu: GpuSpec;
  readonly pricing: ProviderPricing;
  readonly image?: ImageDescriptor;
  readonly limits?: ProviderLimits;
  /** Typical time to start a worker from nothing, in ms; used to estimate waits. */
  readonly coldStartMs?: number;
  /** Typical execution time for a job, in ms, when the provider knows better than the dispatcher. */
  readonly expectedExecutionMs?: number;

  /**
   * Sends the job to the platform and returns as soon as the platform has accepted it,
   * without waiting for it to run. Throws a `ComfyServerlessError`: retryable when a second
   * try may succeed; `executionStarted` is implied false for errors thrown here.
   */
  doSubmit(request: ProviderJobRequest, options?: ProviderCallOptions): Promise<RemoteJobRef>;

  /**
   * Follows a submitted job. Yields normalised events and ends after exactly one terminal
   * event (`completed`, `failed` or `cancelled`). Throwing means the watch itself broke
   * (network, platform outage): a retryable error makes the dispatcher watch again with the
   * same reference. Must stop promptly when `signal` aborts.
   */
  doWatch(ref: RemoteJobRef, options?: ProviderCallOptions): AsyncIterable<ProviderJobEvent>;

  /** Cancels the job on the platform; a job already finished is not an error. */
  doCancel(ref: RemoteJobRef, options?: ProviderCallOptions): Promise<void>;

  /** Reports the platform's health and load. */
  doHealth(options?: ProviderCallOptions): Promise<ProviderHealth>;

  /**
   * Optional: finds a job this provider accepted, by the dispatcher's job id, when the
   * process that submitted it died before it could journal the reference. Providers whose
   * platform can be searched by a client-chosen id (a ComfyUI prompt id, ECS `startedBy`)
   * implement it; for the others such a job is ambiguous and is not sent again.
   */
  doLookup?(jobId: string, options?: ProviderLookupOptions): Promise<RemoteJobRef | undefined>;

  /** Optional: checks before submission that this provider can run the workflow (preflight). */
  doPreflight?(
    requirements: WorkflowRequirements,
    options?: ProviderCallOptions,
  ): Promise<{ ok: boolean; missingModels: string[]; missingNodeTypes: string[] }>;
}
