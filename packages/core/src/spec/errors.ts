/**
 * Error classes shared by core and every adapter.
 *
 * Each class carries a `Symbol.for('comfy-serverless.error.<Name>')` marker so that
 * `isInstance` works across package copies and bundles, where `instanceof` does not.
 */

const BASE_MARKER = 'comfy-serverless.error';
const baseSymbol = Symbol.for(BASE_MARKER);

function hasMarker(error: unknown, marker: string): boolean {
  if (error == null || typeof error !== 'object') return false;
  const symbol = Symbol.for(marker);
  return (error as Record<symbol, unknown>)[symbol] === true;
}

/** Options every error accepts. */
export interface ComfyServerlessErrorOptions {
  message: string;
  cause?: unknown;
  /** Whether trying again (the same call, or another provider) may succeed. */
  isRetryable?: boolean;
  /** The provider the error came from, when known. */
  providerId?: string;
  /** The job the error belongs to, when known. */
  jobId?: string;
}

/** Base class of every error the SDK throws. */
export class ComfyServerlessError extends Error {
  protected readonly [baseSymbol] = true;
  readonly isRetryable: boolean;
  providerId: string | undefined;
  jobId: string | undefined;

  constructor(options: ComfyServerlessErrorOptions & { name?: string }) {
    super(options.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = options.name ?? 'ComfyServerlessError';
    this.isRetryable = options.isRetryable ?? false;
    this.providerId = options.providerId;
    this.jobId = options.jobId;
  }

  /** True for any error of this SDK, from any copy of the package. */
  static isInstance(error: unknown): error is ComfyServerlessError {
    return hasMarker(error, BASE_MARKER);
  }

  /** A plain, JSON-safe description of the error (for journals and events). */
  toJSON(): SerializedError {
    return {
      name: this.name,
      message: this.message,
      isRetryable: this.isRetryable,
      ...(this.providerId === undefined ? {} : { providerId: this.providerId }),
      ...(this.jobId === undefined ? {} : { jobId: this.jobId }),
      ...this.details(),
    };
  }

  /** Extra fields a subclass adds to its serialised form. */
  protected details(): Record<string, unknown> {
    return {};
  }
}

/** The JSON form of an error as journals and events carry it. */
export interface SerializedError {
  name: string;
  message: string;
  isRetryable: boolean;
  providerId?: string;
  jobId?: string;
  [key: string]: unknown;
}

function defineMarker(name: string): { marker: string; symbol: symbol } {
  const marker = `${BASE_MARKER}.${name}`;
  return { marker, symbol: Symbol.for(marker) };
}

const apiCall = defineMarker('ApiCallError');
/** An HTTP (or RPC) call to a platform failed or answered with an error status. */
export class ApiCallError extends ComfyServerlessError {
  protected readonly [apiCall.symbol] = true;
  readonly url: string;
  readonly statusCode: number | undefined;
  /** The response body, with secrets redacted by the adapter that raised it. */
  readonly responseBody: string | undefined;
  /** Milliseconds the platform asked us to wait (Retry-After), when it said. */
  readonly retryAfterMs: number | undefined;
  /** The system error code when the connection failed (`ECONNRESET`, `ECONNREFUSED`, ...). */
  readonly networkErrorCode: string | undefined;

  constructor(
    options: Omit<ComfyServerlessErrorOptions, 'isRetryable'> & {
      url: string;
      statusCode?: number;
      responseBody?: string;
      retryAfterMs?: number;
      isRetryable?: boolean;
      networkErrorCode?: string;
    },
  ) {
    super({
      ...options,
      name: 'ApiCallError',
      isRetryable: options.isRetryable ?? isRetryableStatus(options.statusCode),
    });
    this.url = options.url;
    this.statusCode = options.statusCode;
    this.responseBody = options.responseBody;
    this.retryAfterMs = options.retryAfterMs;
    this.networkErrorCode = options.networkErrorCode;
  }

  static override isInstance(error: unknown): error is ApiCallError {
    return hasMarker(error, apiCall.marker);
  }

  protected override details(): Record<string, unknown> {
    return { url: this.url, statusCode: this.statusCode };
  }
}

/**
 * Whether an HTTP status is worth retrying: 408, 409, 429 and 5xx, and a missing status
 * (the connection failed before an answer).
 */
export function isRetryableStatus(statusCode: number | undefined): boolean {
  if (statusCode === undefined) return true;
  return statusCode === 408 || statusCode === 409 || statusCode === 429 || statusCode >= 500;
}

const loadApiKey = defineMarker('LoadApiKeyError');
/** No API key was given and none was found in the environment. */
export class LoadApiKeyError extends ComfyServerlessError {
  protected readonly [loadApiKey.symbol] = true;
  constructor(options: { message: string; providerId?: string }) {
    super({ ...options, name: 'LoadApiKeyError', isRetryable: false });
  }
  static override isInstance(error: unknown): error is LoadApiKeyError {
    return hasMarker(error, loadApiKey.marker);
  }
}

const invalidArgument = defineMarker('InvalidArgumentError');
/** An option or argument is missing or has the wrong value. */
export class InvalidArgumentError extends ComfyServerlessError {
  protected readonly [invalidArgument.symbol] = true;
  /** The option's name, as the caller wrote it (`concurrency.global`). */
  readonly argument: string;
  constructor(options: { argument: string; message: string; cause?: unknown }) {
    super({ ...options, name: 'InvalidArgumentError', isRetryable: false });
    this.argument = options.argument;
  }
  static override isInstance(error: unknown): error is InvalidArgumentError {
    return hasMarker(error, invalidArgument.marker);
  }
  protected override details(): Record<string, unknown> {
    return { argument: this.argument };
  }
}

const invalidResponse = defineMarker('InvalidResponseError');
/** A platform answered with something that does not match its documented shape. */
export class InvalidResponseError extends ComfyServerlessError {
  protected readonly [invalidResponse.symbol] = true;
  readonly url: string | undefined;
  /** What was wrong, path by path. */
  readonly issues: string[];
  constructor(options: ComfyServerlessErrorOptions & { url?: string; issues?: string[] }) {
    super({ isRetryable: false, ...options, name: 'InvalidResponseError' });
    this.url = options.url;
    this.issues = options.issues ?? [];
  }
  static override isInstance(error: unknown): error is InvalidResponseError {
    return hasMarker(error, invalidResponse.marker);
  }
  protected override details(): Record<string, unknown> {
    return { url: this.url, issues: this.issues };
  }
}

const unsupportedSpec = defineMarker('UnsupportedSpecificationError');
/** A provider, target, policy or journal implements a spec version this core does not know. */
export class UnsupportedSpecificationError extends ComfyServerlessError {
  protected readonly [unsupportedSpec.symbol] = true;
  constructor(options: { message: string }) {
    super({ ...options, name: 'UnsupportedSpecificationError', isRetryable: false });
  }
  static override isInstance(error: unknown): error is UnsupportedSpecificationError {
    return hasMarker(error, unsupportedSpec.marker);
  }
}

const workflowFormat = defineMarker('WorkflowFormatError');
/** The workflow is not ComfyUI's API format (typically a UI-format export). */
export class WorkflowFormatError extends ComfyServerlessError {
  protected readonly [workflowFormat.symbol] = true;
  constructor(options: { message: string; cause?: unknown }) {
    super({ ...options, name: 'WorkflowFormatError', isRetryable: false });
  }
  static override isInstance(error: unknown): error is WorkflowFormatError {
    return hasMarker(error, workflowFormat.marker);
  }
}

/** One structural problem found in a workflow. */
export interface WorkflowIssue {
  nodeId?: string;
  input?: string;
  message: string;
}

const workflowValidation = defineMarker('WorkflowValidationError');
/** The workflow is API format but structurally broken; `issues` lists every problem. */
export class WorkflowValidationError extends ComfyServerlessError {
  protected readonly [workflowValidation.symbol] = true;
  readonly issues: WorkflowIssue[];
  constructor(options: { message: string; issues: WorkflowIssue[] }) {
    super({ ...options, name: 'WorkflowValidationError', isRetryable: false });
    this.issues = options.issues;
  }
  static override isInstance(error: unknown): error is WorkflowValidationError {
    return hasMarker(error, workflowValidation.marker);
  }
  protected override details(): Record<string, unknown> {
    return { issues: this.issues };
  }
}

const workflowPatch = defineMarker('WorkflowPatchError');
/** An input patch names a node or input the workflow does not have. */
export class WorkflowPatchError extends ComfyServerlessError {
  protected readonly [workflowPatch.symbol] = true;
  readonly path: string;
  /** The closest existing names, best first. */
  readonly suggestions: string[];
  constructor(options: { message: string; path: string; suggestions?: string[] }) {
    super({ ...options, name: 'WorkflowPatchError', isRetryable: false });
    this.path = options.path;
    this.suggestions = options.suggestions ?? [];
  }
  static override isInstance(error: unknown): error is WorkflowPatchError {
    return hasMarker(error, workflowPatch.marker);
  }
  protected override details(): Record<string, unknown> {
    return { path: this.path, suggestions: this.suggestions };
  }
}

const unsafeModelPath = defineMarker('UnsafeModelPathError');
/** A model or file name would escape its folder (`..`, an absolute path, a drive, a NUL). */
export class UnsafeModelPathError extends ComfyServerlessError {
  protected readonly [unsafeModelPath.symbol] = true;
  readonly modelName: string;
  constructor(options: { message: string; modelName: string; jobId?: string }) {
    super({ ...options, name: 'UnsafeModelPathError', isRetryable: false });
    this.modelName = options.modelName;
  }
  static override isInstance(error: unknown): error is UnsafeModelPathError {
    return hasMarker(error, unsafeModelPath.marker);
  }
  protected override details(): Record<string, unknown> {
    return { modelName: this.modelName };
  }
}

/** One error ComfyUI reported for one node while validating a prompt. */
export interface ComfyNodeError {
  nodeId: string;
  classType?: string;
  type: string;
  message: string;
  details?: string;
  input?: string;
}

const comfyValidation = defineMarker('ComfyValidationError');
/**
 * ComfyUI (or a worker in front of it) refused the prompt before running it: a missing
 * model (`value_not_in_list`), an unknown node type (`invalid_prompt`) and the like.
 */
export class ComfyValidationError extends ComfyServerlessError {
  protected readonly [comfyValidation.symbol] = true;
  /** ComfyUI's top-level error type (`invalid_prompt`, `prompt_outputs_failed_validation`, ...). */
  readonly type: string;
  readonly nodeErrors: ComfyNodeError[];
  /** The raw `node_errors` object as ComfyUI sent it, when there was one. */
  readonly rawNodeErrors: unknown;
  constructor(
    options: ComfyServerlessErrorOptions & {
      type: string;
      nodeErrors?: ComfyNodeError[];
      rawNodeErrors?: unknown;
    },
  ) {
    super({ ...options, name: 'ComfyValidationError', isRetryable: options.isRetryable ?? false });
    this.type = options.type;
    this.nodeErrors = options.nodeErrors ?? [];
    this.rawNodeErrors = options.rawNodeErrors;
  }
  static override isInstance(error: unknown): error is ComfyValidationError {
    return hasMarker(error, comfyValidation.marker);
  }
  protected override details(): Record<string, unknown> {
    return { type: this.type, nodeErrors: this.nodeErrors };
  }
}

const comfyExecution = defineMarker('ComfyExecutionError');
/** A node raised an exception while the workflow ran. */
export class ComfyExecutionError extends ComfyServerlessError {
  protected readonly [comfyExecution.symbol] = true;
  readonly nodeId: string | undefined;
  readonly nodeType: string | undefined;
  readonly exceptionType: string | undefined;
  constructor(
    options: ComfyServerlessErrorOptions & { nodeId?: string; nodeType?: string; exceptionType?: string },
  ) {
    super({ ...options, name: 'ComfyExecutionError', isRetryable: options.isRetryable ?? false });
    this.nodeId = options.nodeId;
    this.nodeType = options.nodeType;
    this.exceptionType = options.exceptionType;
  }
  static override isInstance(error: unknown): error is ComfyExecutionError {
    return hasMarker(error, comfyExecution.marker);
  }
  protected override details(): Record<string, unknown> {
    return { nodeId: this.nodeId, nodeType: this.nodeType, exceptionType: this.exceptionType };
  }
}

const jobFailed = defineMarker('JobFailedError');
/** The platform reports the job as failed, for a reason that has no more specific class. */
export class JobFailedError extends ComfyServerlessError {
  protected readonly [jobFailed.symbol] = true;
  constructor(options: ComfyServerlessErrorOptions) {
    super({ ...options, name: 'JobFailedError' });
  }
  static override isInstance(error: unknown): error is JobFailedError {
    return hasMarker(error, jobFailed.marker);
  }
}

const jobCancelled = defineMarker('JobCancelledError');
/** The job was cancelled (by the caller's signal, `cancel()`, or on the platform). */
export class JobCancelledError extends ComfyServerlessError {
  protected readonly [jobCancelled.symbol] = true;
  constructor(options: ComfyServerlessErrorOptions) {
    super({ ...options, name: 'JobCancelledError', isRetryable: false });
  }
  static override isInstance(error: unknown): error is JobCancelledError {
    return hasMarker(error, jobCancelled.marker);
  }
}

const jobTimeout = defineMarker('JobTimeoutError');
/** The job did not finish before its deadline (ours or the platform's). */
export class JobTimeoutError extends ComfyServerlessError {
  protected readonly [jobTimeout.symbol] = true;
  readonly timeoutMs: number | undefined;
  constructor(options: ComfyServerlessErrorOptions & { timeoutMs?: number }) {
    super({ ...options, name: 'JobTimeoutError', isRetryable: options.isRetryable ?? false });
    this.timeoutMs = options.timeoutMs;
  }
  static override isInstance(error: unknown): error is JobTimeoutError {
    return hasMarker(error, jobTimeout.marker);
  }
  protected override details(): Record<string, unknown> {
    return { timeoutMs: this.timeoutMs };
  }
}

const jobExpired = defineMarker('JobExpiredError');
/** The platform no longer knows a job it accepted earlier (its retention or TTL passed). */
export class JobExpiredError extends ComfyServerlessError {
  protected readonly [jobExpired.symbol] = true;
  readonly remoteId: string | undefined;
  constructor(options: ComfyServerlessErrorOptions & { remoteId?: string }) {
    // Not retryable by default (the platform forgot the job); a provider may say otherwise,
    // as for a prompt lost when a ComfyUI server restarted, which can run elsewhere.
    super({ ...options, name: 'JobExpiredError', isRetryable: options.isRetryable ?? false });
    this.remoteId = options.remoteId;
  }
  static override isInstance(error: unknown): error is JobExpiredError {
    return hasMarker(error, jobExpired.marker);
  }
  protected override details(): Record<string, unknown> {
    return { remoteId: this.remoteId };
  }
}

const noProvider = defineMarker('NoProviderError');
/** No provider can take the job (none fits its GPU memory, models or nodes, or all are open-circuited). */
export class NoProviderError extends ComfyServerlessError {
  protected readonly [noProvider.symbol] = true;
  /** Why each provider was left out, by provider id. */
  readonly rejected: Record<string, string>;
  constructor(options: ComfyServerlessErrorOptions & { rejected?: Record<string, string> }) {
    super({ ...options, name: 'NoProviderError' });
    this.rejected = options.rejected ?? {};
  }
  static override isInstance(error: unknown): error is NoProviderError {
    return hasMarker(error, noProvider.marker);
  }
  protected override details(): Record<string, unknown> {
    return { rejected: this.rejected };
  }
}

const payloadTooLarge = defineMarker('PayloadTooLargeError');
/** A request or response is larger than a platform (or our own guard) allows. */
export class PayloadTooLargeError extends ComfyServerlessError {
  protected readonly [payloadTooLarge.symbol] = true;
  readonly sizeBytes: number;
  readonly limitBytes: number;
  constructor(options: ComfyServerlessErrorOptions & { sizeBytes: number; limitBytes: number }) {
    super({ ...options, name: 'PayloadTooLargeError', isRetryable: false });
    this.sizeBytes = options.sizeBytes;
    this.limitBytes = options.limitBytes;
  }
  static override isInstance(error: unknown): error is PayloadTooLargeError {
    return hasMarker(error, payloadTooLarge.marker);
  }
  protected override details(): Record<string, unknown> {
    return { sizeBytes: this.sizeBytes, limitBytes: this.limitBytes };
  }
}

const configuration = defineMarker('ConfigurationError');
/** The platform side is not set up as the adapter expects (app not deployed, endpoint missing, ...). */
export class ConfigurationError extends ComfyServerlessError {
  protected readonly [configuration.symbol] = true;
  constructor(options: ComfyServerlessErrorOptions) {
    super({ ...options, name: 'ConfigurationError', isRetryable: options.isRetryable ?? false });
  }
  static override isInstance(error: unknown): error is ConfigurationError {
    return hasMarker(error, configuration.marker);
  }
}

const duplicateJob = defineMarker('JobConflictError');
/** A job id was reused with a different workflow than the one it was first submitted with. */
export class JobConflictError extends ComfyServerlessError {
  protected readonly [duplicateJob.symbol] = true;
  constructor(options: ComfyServerlessErrorOptions) {
    super({ ...options, name: 'JobConflictError', isRetryable: false });
  }
  static override isInstance(error: unknown): error is JobConflictError {
    return hasMarker(error, duplicateJob.marker);
  }
}

const submissionUnknown = defineMarker('SubmissionUnknownError');
/**
 * A job was sent to a platform that may have accepted it, but its id for the job never
 * came back: the answer was lost, or the process died before it could journal it. The
 * job may be running there; sending it again (or elsewhere) could run it twice. Providers
 * throw it from `doSubmit` when the platform has no idempotency key; the dispatcher looks
 * the job up where the provider can, and otherwise ends the job with it.
 */
export class SubmissionUnknownError extends ComfyServerlessError {
  protected readonly [submissionUnknown.symbol] = true;
  constructor(options: ComfyServerlessErrorOptions) {
    super({ ...options, name: 'SubmissionUnknownError', isRetryable: false });
  }
  static override isInstance(error: unknown): error is SubmissionUnknownError {
    return hasMarker(error, submissionUnknown.marker);
  }
}

/** Turns anything thrown into a `ComfyServerlessError`, keeping it when it already is one. */
export function toComfyServerlessError(
  error: unknown,
  context: { providerId?: string; jobId?: string } = {},
): ComfyServerlessError {
  if (ComfyServerlessError.isInstance(error)) {
    if (error.providerId === undefined && context.providerId !== undefined)
      error.providerId = context.providerId;
    if (error.jobId === undefined && context.jobId !== undefined) error.jobId = context.jobId;
    return error;
  }
  const message = error instanceof Error ? error.message : String(error);
  return new JobFailedError({
    message: `Unexpected error: ${message}`,
    cause: error,
    isRetryable: false,
    ...context,
  });
}
