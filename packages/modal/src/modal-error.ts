import {
  ApiCallError,
  ComfyServerlessError,
  ConfigurationError,
  JobExpiredError,
  JobFailedError,
  JobTimeoutError,
  LoadApiKeyError,
  redactSecrets,
  SubmissionUnknownError,
  toComfyServerlessError,
} from '@comfy-serverless/core';
import type { ModalMethodTarget } from './modal-backend';

/** gRPC status codes Modal's SDK surfaces on a `ClientError`. */
const GRPC = {
  cancelled: 1,
  unknown: 2,
  invalidArgument: 3,
  deadlineExceeded: 4,
  notFound: 5,
  permissionDenied: 7,
  resourceExhausted: 8,
  failedPrecondition: 9,
  aborted: 10,
  internal: 13,
  unavailable: 14,
  unauthenticated: 16,
} as const;

const RETRYABLE_GRPC_CODES = new Set<number>([
  GRPC.cancelled,
  GRPC.unknown,
  GRPC.deadlineExceeded,
  GRPC.resourceExhausted,
  GRPC.aborted,
  GRPC.internal,
  GRPC.unavailable,
]);

/**
 * gRPC statuses that can arrive after Modal took a request: a spawn that ends in one may
 * have queued the call, and spawn has no idempotency key, so it must not be sent again.
 * (UNAVAILABLE and RESOURCE_EXHAUSTED mean the request was not taken and stay retryable.)
 */
const SPAWN_OUTCOME_UNKNOWN_CODES = new Set<number>([
  GRPC.cancelled,
  GRPC.unknown,
  GRPC.deadlineExceeded,
  GRPC.internal,
]);

/** Where in the provider's life an error happened; decides what a not-found means. */
export type ModalErrorPhase = 'submit' | 'watch' | 'cancel' | 'health' | 'scale' | 'preflight';

/** What `mapModalError` needs to write an actionable message. */
export interface ModalErrorContext {
  phase: ModalErrorPhase;
  target: Omit<ModalMethodTarget, 'method'> & { method?: string };
  providerId?: string;
  jobId?: string;
  callId?: string;
  /** Values that must never appear in a message (token secret). */
  secrets?: Array<string | undefined>;
}

function errorName(error: unknown): string | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const name = (error as { name?: unknown }).name;
  return typeof name === 'string' ? name : undefined;
}

function grpcCode(error: unknown): number | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

function messageOf(error: unknown, secrets: Array<string | undefined>): string {
  const raw = error instanceof Error ? error.message : String(error);
  return redactSecrets(raw, secrets).slice(0, 2000);
}

/** True for the SDK's `TimeoutError` that `get({ timeoutMs })` throws when a poll round ends: not a failure. */
export function isPollTimeout(error: unknown): boolean {
  return errorName(error) === 'TimeoutError';
}

/**
 * True when a call's error says it was cancelled: Modal marks a cancelled input as
 * terminated, and the SDK reports that as a `RemoteError`.
 */
export function isCancellation(error: unknown): boolean {
  if (errorName(error) !== 'RemoteError') return false;
  const message = error instanceof Error ? error.message : '';
  return /cancel|terminated/i.test(message);
}

function describeTarget(target: ModalErrorContext['target']): string {
  const environment = target.environment === undefined ? '' : ` in environment "${target.environment}"`;
  return `class "${target.cls}" of app "${target.app}"${environment}`;
}

/**
 * Maps what Modal's SDK throws to the SDK's typed errors: a missing app or class becomes
 * a `ConfigurationError` naming what to deploy; Modal's function timeout a
 * `JobTimeoutError`; an internal failure a retryable `JobFailedError`; transport
 * failures retryable `ApiCallError`s. Secrets are removed from every message.
 */
export function mapModalError(error: unknown, context: ModalErrorContext): ComfyServerlessError {
  const secrets = context.secrets ?? [];
  const ids = {
    ...(context.providerId === undefined ? {} : { providerId: context.providerId }),
    ...(context.jobId === undefined ? {} : { jobId: context.jobId }),
  };
  const name = errorName(error);
  const code = grpcCode(error);
  const message = messageOf(error, secrets);
  const where = describeTarget(context.target);

  if (ComfyServerlessError.isInstance(error)) return toComfyServerlessError(error, ids);
  // The original error is kept as the cause only when it holds no secret.
  const cause =
    message === (error instanceof Error ? error.message : String(error)).slice(0, 2000) ? error : undefined;
  if (name === 'NotFoundError' || code === GRPC.notFound) {
    if (context.phase === 'watch' || context.phase === 'cancel') {
      return new JobExpiredError({
        message: `Modal no longer knows function call ${context.callId ?? '(unknown)'} (${message}); Modal keeps results for 7 days. Submit the job again.`,
        ...(context.callId === undefined ? {} : { remoteId: context.callId }),
        ...ids,
      });
    }
    const method = context.target.method === undefined ? '' : ` (method "${context.target.method}")`;
    return new ConfigurationError({
      message: `Modal has no ${where}${method}: ${message}. Deploy it with \`modal deploy deploy/modal/comfyui_app.py\`, or set the app, cls and environment options to what you deployed.`,
      cause,
      ...ids,
    });
  }
  if (name === 'FunctionTimeoutError') {
    return new JobTimeoutError({
      message: `Modal stopped the call after the timeout of ${where} (${message}). This is Modal's own limit, not your deadline: raise \`timeout=\` on the class in comfyui_app.py and redeploy.`,
      isRetryable: false,
      ...ids,
    });
  }
  if (name === 'InternalFailure') {
    return new JobFailedError({
      message: `Modal reported an internal failure for ${where}: ${message}. It is safe to try again.`,
      isRetryable: true,
      cause,
      ...ids,
    });
  }
  if (name === 'RemoteError' || name === 'ExecutionError') {
    const transient = /out of memory|oom|preempt|container (exited|crashed)|worker (died|lost)/i.test(
      message,
    );
    return new JobFailedError({
      message: `The ${where} raised an error: ${message}. ${transient ? 'The container failed; another try may succeed.' : "Check the app's logs with `modal app logs`."}`,
      isRetryable: transient,
      cause,
      ...ids,
    });
  }
  if (name === 'InvalidError') {
    return new ConfigurationError({
      message: `Modal refused the request to ${where}: ${message}. Redeploy comfyui_app.py with a current Modal Python package (>= 1.2, for calls from JavaScript).`,
      cause,
      ...ids,
    });
  }
  if (code === GRPC.unauthenticated) {
    return new LoadApiKeyError({
      message: `Modal refused the token (${message}). Pass tokenId and tokenSecret, or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (\`modal token new\` creates a pair).`,
      ...(context.providerId === undefined ? {} : { providerId: context.providerId }),
    });
  }
  if (code === GRPC.permissionDenied) {
    return new ConfigurationError({
      message: `Modal denied access to ${where}: ${message}. Use a token of the workspace that owns the app.`,
      cause,
      ...ids,
    });
  }
  if (context.phase === 'submit' && code !== undefined && SPAWN_OUTCOME_UNKNOWN_CODES.has(code)) {
    return new SubmissionUnknownError({
      message: `Modal may have queued the call for ${where}, but the spawn ended with gRPC status ${code} (${message}) before its id came back`,
      cause,
      ...ids,
    });
  }
  if (name === 'ResourceExhaustedError' || (code !== undefined && RETRYABLE_GRPC_CODES.has(code))) {
    return new ApiCallError({
      message: `A Modal API call for ${where} failed (${message}); it will be retried.`,
      url: `modal:${context.phase}`,
      isRetryable: true,
      cause,
      ...ids,
    });
  }
  if (code !== undefined) {
    return new ApiCallError({
      message: `Modal refused a call for ${where} (gRPC status ${code}): ${message}.`,
      url: `modal:${context.phase}`,
      isRetryable: false,
      cause,
      ...ids,
    });
  }
  return new JobFailedError({
    message: `Unexpected error from Modal's SDK for ${where}: ${message}`,
    isRetryable: false,
    cause,
    ...ids,
  });
}
