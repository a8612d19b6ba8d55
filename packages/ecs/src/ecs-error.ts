import {
  ApiCallError,
  ComfyServerlessError,
  ConfigurationError,
  JobFailedError,
  redactSecrets,
  toComfyServerlessError,
} from '@comfy-serverless/core';

/** Where an ECS error happened, for the message and the error's fields. */
export interface EcsErrorContext {
  /** The ECS operation (`RunTask`, `DescribeTasks`, ...). */
  operation: string;
  region?: string;
  cluster?: string;
  service?: string;
  providerId?: string;
  jobId?: string;
}

/** One entry of a RunTask, DescribeTasks or DescribeServices `failures[]`. */
export interface EcsFailure {
  arn?: string | undefined;
  reason?: string | undefined;
  detail?: string | undefined;
}

interface AwsErrorShape {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  $fault?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  $retryable?: { throttling?: unknown };
}

const THROTTLING_NAMES = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
]);

const TRANSIENT_NAMES = new Set([
  'ServerException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalFailure',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'UpdateInProgressException',
]);

/** What to do about the errors a user has to fix, by exception name. */
const CONFIGURATION_HINTS: Record<string, string> = {
  ClusterNotFoundException: 'check the "cluster" option (name or ARN) and the region',
  ServiceNotFoundException: 'check the "service" option and that it lives in this cluster',
  ServiceNotActiveException: 'the service is draining or deleted; create it again or point at an active one',
  AccessDeniedException:
    'the credentials lack an ECS permission: allow ecs:RunTask, ecs:DescribeTasks, ecs:ListTasks, ecs:StopTask, ecs:DescribeServices, ecs:UpdateService, ecs:DescribeClusters (and iam:PassRole for the task roles)',
  UnrecognizedClientException: 'the AWS credentials are not valid; check the access key',
  InvalidClientTokenId: 'the AWS credentials are not valid; check the access key',
  ExpiredTokenException: 'the AWS session token expired; refresh the credentials',
  PlatformTaskDefinitionIncompatibilityException:
    'the task definition does not fit the capacity it was sent to',
  UnsupportedFeatureException: 'the region or capacity does not support this feature',
};

function endpointOf(context: EcsErrorContext): string {
  return `https://ecs.${context.region ?? '<region>'}.amazonaws.com/ (${context.operation})`;
}

/**
 * Turns anything an ECS call threw into a typed error: throttling, server errors and
 * dropped connections are retryable `ApiCallError`s; a missing cluster or service and
 * denied access are `ConfigurationError`s that say what to fix; other client errors are
 * non-retryable `ApiCallError`s. Messages carry no credentials.
 */
export function mapEcsError(error: unknown, context: EcsErrorContext): ComfyServerlessError {
  const ids = {
    ...(context.providerId === undefined ? {} : { providerId: context.providerId }),
    ...(context.jobId === undefined ? {} : { jobId: context.jobId }),
  };
  if (ComfyServerlessError.isInstance(error)) return toComfyServerlessError(error, ids);
  const shape = (error ?? {}) as AwsErrorShape;
  const name = typeof shape.name === 'string' ? shape.name : 'Error';
  const rawMessage = typeof shape.message === 'string' ? shape.message : String(error);
  const message = redactSecrets(rawMessage).slice(0, 500);
  const status =
    typeof shape.$metadata?.httpStatusCode === 'number' ? shape.$metadata.httpStatusCode : undefined;
  const url = endpointOf(context);
  const where = `ECS ${context.operation}${context.cluster ? ` on cluster ${context.cluster}` : ''}`;

  const hint = CONFIGURATION_HINTS[name];
  if (hint !== undefined) {
    return new ConfigurationError({
      message: `${where} failed with ${name}: ${message}. To fix: ${hint}.`,
      cause: error,
      ...ids,
    });
  }
  if (THROTTLING_NAMES.has(name) || shape.$retryable?.throttling === true) {
    return new ApiCallError({
      message: `${where} was throttled (${name}: ${message}) after the AWS SDK's own retries; it will be tried again with backoff.`,
      url,
      ...(status === undefined ? {} : { statusCode: status }),
      isRetryable: true,
      cause: error,
      ...ids,
    });
  }
  if (TRANSIENT_NAMES.has(name) || shape.$fault === 'server' || (status !== undefined && status >= 500)) {
    return new ApiCallError({
      message: `${where} failed on the AWS side (${name}: ${message}); trying again may succeed.`,
      url,
      ...(status === undefined ? {} : { statusCode: status }),
      isRetryable: true,
      cause: error,
      ...ids,
    });
  }
  if (status === undefined && shape.$fault === undefined) {
    // No answer at all: DNS, a reset connection, an aborted socket.
    return new ApiCallError({
      message: `${where} got no answer from ECS (${name}: ${message}). Check the network route to ecs.${context.region ?? '<region>'}.amazonaws.com.`,
      url,
      isRetryable: true,
      cause: error,
      ...ids,
    });
  }
  return new ApiCallError({
    message: `${where} was refused (${name}: ${message}). Check the request options (task definition, capacity provider, network configuration).`,
    url,
    ...(status === undefined ? {} : { statusCode: status }),
    isRetryable: false,
    cause: error,
    ...ids,
  });
}

/** Whether a RunTask failure reason means there was no room (retryable elsewhere). */
export function isCapacityReason(reason: string | undefined): boolean {
  if (reason === undefined) return false;
  return reason.startsWith('RESOURCE:') || reason === 'AGENT' || reason === 'CAPACITY';
}

/**
 * Turns RunTask's `failures[]` into one typed error: a capacity shortage (`RESOURCE:GPU`,
 * `RESOURCE:MEMORY`, `AGENT`) is a retryable `JobFailedError` so that the dispatcher tries
 * elsewhere; `MISSING` (no such task definition or capacity provider) and `ATTRIBUTE` (no
 * instance matches the placement constraints) are `ConfigurationError`s.
 */
export function runTaskFailureError(
  failures: EcsFailure[],
  context: { providerId?: string; jobId?: string; cluster?: string },
): ComfyServerlessError {
  const ids = {
    ...(context.providerId === undefined ? {} : { providerId: context.providerId }),
    ...(context.jobId === undefined ? {} : { jobId: context.jobId }),
  };
  const described = failures
    .map((failure) => `${failure.reason ?? 'unknown'}${failure.detail ? ` (${failure.detail})` : ''}`)
    .join('; ')
    .slice(0, 400);
  const where = context.cluster ? `cluster ${context.cluster}` : 'the cluster';
  if (failures.length > 0 && failures.every((failure) => isCapacityReason(failure.reason))) {
    return new JobFailedError({
      message: `ECS could not place the task: ${described}. ${where} has no free GPU capacity right now; the job can run elsewhere, or give the capacity provider room (managed scaling, a larger Auto Scaling group).`,
      isRetryable: true,
      ...ids,
    });
  }
  if (failures.some((failure) => failure.reason === 'ATTRIBUTE')) {
    return new ConfigurationError({
      message: `ECS found no container instance in ${where} that matches the task's requirements: ${described}. Check the placement constraints and that the capacity provider launches GPU instances with the ECS GPU-optimised AMI.`,
      ...ids,
    });
  }
  if (failures.some((failure) => failure.reason === 'MISSING')) {
    return new ConfigurationError({
      message: `ECS reports something missing for RunTask: ${described}. Check the "taskDefinition" and "capacityProviderStrategy" options against ${where}.`,
      ...ids,
    });
  }
  return new JobFailedError({
    message: `ECS did not start the task: ${described || 'no task and no failure given'}. Trying again may succeed.`,
    isRetryable: true,
    ...ids,
  });
}

/** What we know about a stopped task, to explain why. */
export interface StoppedTaskInfo {
  taskArn: string;
  stopCode?: string | undefined;
  stoppedReason?: string | undefined;
  exitCodes?: Array<{
    name?: string | undefined;
    exitCode?: number | undefined;
    reason?: string | undefined;
  }>;
}

/**
 * Explains why a task stopped while a job depended on it, as a typed error. A task that
 * never started (`TaskFailedToStart`) or was taken away (`SpotInterruption`,
 * `TerminationNotice`, `ServiceSchedulerInitiated`, someone's `StopTask`) is retryable;
 * ComfyUI exiting (`EssentialContainerExited`) is not, and the message gives its exit code.
 */
export function stoppedTaskError(
  info: StoppedTaskInfo,
  context: { providerId?: string; jobId?: string },
): JobFailedError {
  const ids = {
    ...(context.providerId === undefined ? {} : { providerId: context.providerId }),
    ...(context.jobId === undefined ? {} : { jobId: context.jobId }),
  };
  const reason = info.stoppedReason ? redactSecrets(info.stoppedReason).slice(0, 300) : 'no reason given';
  const exits = (info.exitCodes ?? [])
    .filter((container) => container.exitCode !== undefined || container.reason)
    .map(
      (container) =>
        `${container.name ?? 'container'} exited${container.exitCode === undefined ? '' : ` with ${container.exitCode}`}${container.reason ? ` (${container.reason})` : ''}`,
    )
    .join(', ');
  const task = info.taskArn.split('/').at(-1) ?? info.taskArn;
  switch (info.stopCode) {
    case 'TaskFailedToStart':
      return new JobFailedError({
        message: `ECS task ${task} failed to start: ${reason}. Check the image, the task role and the logs; the job can run elsewhere.`,
        isRetryable: true,
        ...ids,
      });
    case 'EssentialContainerExited':
      return new JobFailedError({
        message: `ComfyUI's container in ECS task ${task} exited while the job depended on it: ${exits || reason}. Exit code 137 usually means out of memory; check the task's logs.`,
        isRetryable: false,
        ...ids,
      });
    case 'SpotInterruption':
    case 'TerminationNotice':
      return new JobFailedError({
        message: `ECS task ${task} lost its instance (${info.stopCode}: ${reason}); the job can run again elsewhere.`,
        isRetryable: true,
        ...ids,
      });
    case 'ServiceSchedulerInitiated':
      return new JobFailedError({
        message: `ECS replaced task ${task} (a deployment or scale-in: ${reason}) while it held the job; the job can run again elsewhere. Drain tasks before stopping them to avoid this.`,
        isRetryable: true,
        ...ids,
      });
    default:
      return new JobFailedError({
        message: `ECS task ${task} stopped (${info.stopCode ?? 'no stop code'}: ${reason}) while it held the job.`,
        isRetryable: true,
        ...ids,
      });
  }
}
