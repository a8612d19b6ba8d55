/** What a scale target reports about itself. */
export interface ScaleTargetState {
  /** Workers the platform keeps even when idle. */
  minWorkers: number;
  /** Most workers the platform may start. */
  maxWorkers: number;
  /** Workers asked for, on platforms with a desired count (ECS). */
  desiredWorkers?: number;
  /** Workers up (busy or idle). */
  runningWorkers: number;
  /** Workers up and idle. */
  idleWorkers?: number;
  /** Workers starting. */
  pendingWorkers?: number;
  /** Jobs waiting on the platform. */
  queueDepth?: number;
  /** Seconds a worker stays after its last job. */
  idleTimeoutSeconds?: number;
  /** Bounds that `apply` accepts. */
  bounds: { minWorkers: number; maxWorkers: number };
  /** USD per second of one worker. */
  usdPerSecond?: number;
  /** Typical cold start, in ms. */
  coldStartMs?: number;
  /** True when the platform's settings no longer match what was last applied (a deploy reset them). */
  drifted?: boolean;
  /** Epoch ms of the reading. */
  describedAt: number;
}

/** Settings a policy asks a target to take; absent fields stay as they are. */
export interface ScaleSettings {
  minWorkers?: number;
  maxWorkers?: number;
  desiredWorkers?: number;
  idleTimeoutSeconds?: number;
  /** Idle workers to keep ready beyond the demand (Modal's buffer containers). */
  bufferWorkers?: number;
}

/** Something whose capacity can be changed: a RunPod endpoint, a Modal class, an ECS service. */
export interface ScaleTargetV1 {
  readonly specificationVersion: 'v1';
  readonly id: string;
  readonly platform: string;
  /** The provider whose capacity this target controls, when there is one. */
  readonly providerId?: string;
  describe(options?: { signal?: AbortSignal }): Promise<ScaleTargetState>;
  /** Applies the settings and returns the state after. Out-of-range values are refused. */
  apply(settings: ScaleSettings, options?: { signal?: AbortSignal }): Promise<ScaleTargetState>;
}
