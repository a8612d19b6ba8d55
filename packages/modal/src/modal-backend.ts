/**
 * The few Modal calls the adapter needs, behind an interface of ours.
 *
 * Modal's SDK speaks gRPC, which HTTP mocks cannot intercept; tests (and users) replace
 * this interface with the fake control plane from `@comfy-serverless/modal/test`, and
 * production wraps the real SDK with `createModalSdkBackend`.
 */

/** Which deployed class method a call goes to. */
export interface ModalMethodTarget {
  /** The deployed app's name (`modal deploy` of `comfyui_app.py` names it). */
  app: string;
  /** The class name (`ComfyWorker`). */
  cls: string;
  /** The method name (`run`, `object_info`). */
  method: string;
  /** The Modal environment; the profile's default when absent. */
  environment?: string;
}

/** What one long-poll round of a function call gave. */
export type ModalPollResult =
  /** The call has not finished within the round's timeout (not an error). */
  | { status: 'pending' }
  /** The call finished and returned `value` (decoded from CBOR by the SDK). */
  | { status: 'done'; value: unknown };

/** `getCurrentStats()` of a Modal function. */
export interface ModalCurrentStats {
  /** Calls waiting for a container. */
  backlog: number;
  /** Containers up (starting, idle or busy). */
  runners: number;
}

/** Autoscaler settings of a Modal function, as `updateAutoscaler` takes and returns them. */
export interface ModalAutoscalerSettings {
  minContainers?: number;
  maxContainers?: number;
  bufferContainers?: number;
  scaledownWindowMs?: number;
}

/** What Modal says about the app's current deployment, used to notice a redeploy. */
export interface ModalDeploymentInfo {
  /** The app's deployment version; a `modal deploy` increments it. */
  version?: number;
  /** Epoch ms of the last deployment. */
  deployedAt?: number;
}

/**
 * The Modal operations the provider and scale target use. Errors are thrown as the SDK
 * throws them: `NotFoundError`, `FunctionTimeoutError`, `RemoteError`, `InternalFailure`,
 * `InvalidError`, or a gRPC `ClientError` with a numeric `code`; the adapter maps them by
 * `name` and `code`, so a replacement must use the same names.
 */
export interface ModalBackend {
  /** `cls.fromName(app, cls, { environment })`, `instance()`, `method(name).spawn(args)`: returns the function call id. */
  spawn(target: ModalMethodTarget, args: unknown[], options?: { signal?: AbortSignal }): Promise<string>;
  /**
   * `functionCalls.fromId(id).get({ timeoutMs })`. Returns `pending` when the round's
   * timeout passed (the SDK's `TimeoutError`); throws what the call itself raised.
   */
  poll(callId: string, options: { timeoutMs: number }): Promise<ModalPollResult>;
  /** `functionCalls.fromId(id).cancel({ terminateContainers })`. */
  cancel(callId: string, options?: { terminateContainers?: boolean }): Promise<void>;
  /** Calls a method and waits for its result (`remote`), for short calls such as `object_info`. */
  call(target: ModalMethodTarget, args: unknown[], options?: { timeoutMs?: number }): Promise<unknown>;
  /** The method's function `getCurrentStats()`. */
  currentStats(target: ModalMethodTarget): Promise<ModalCurrentStats>;
  /** The method's function `updateAutoscaler(settings)`; returns the settings now in force. */
  updateAutoscaler(
    target: ModalMethodTarget,
    settings: ModalAutoscalerSettings,
  ): Promise<ModalAutoscalerSettings>;
  /** The app's deployment version, to notice that a deploy reset the autoscaler overrides. */
  deployment?(target: Omit<ModalMethodTarget, 'method'>): Promise<ModalDeploymentInfo>;
  /** Releases connections. */
  close?(): void;
}
