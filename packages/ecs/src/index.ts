// The public face of @comfy-serverless/ecs.
export type { EcsCalls, EcsCallsSettings, EcsClientSource, EcsRetryOptions } from './ecs-calls';
export type { EcsErrorContext, EcsFailure, StoppedTaskInfo } from './ecs-error';
export { isCapacityReason, mapEcsError, runTaskFailureError, stoppedTaskError } from './ecs-error';
export { clientTokenFor, JOB_ID_TAG, PROVIDER_TAG, startedByForJob, tagValueForJob } from './ecs-job-tags';
export type {
  EcsProvider,
  EcsProviderSettings,
  EcsServiceModeSettings,
  EcsTaskModeSettings,
} from './ecs-provider';
export { createEcs } from './ecs-provider';
export type { EcsServiceMember } from './ecs-service-mode';
export type { EcsServiceTargetOptions } from './ecs-service-target';
export { createEcsServiceTarget } from './ecs-service-target';
export type { ResolveTaskUrl } from './ecs-task';
export { defaultTaskUrl, ECS_TASK_STATES, taskIdOf, taskPrivateIp } from './ecs-task';
export { STOP_REASONS } from './ecs-task-mode';
