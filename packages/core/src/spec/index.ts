export type { Clock } from './clock';
export * from './errors';
export type {
  ImageScore,
  ImageSelectorV1,
} from './image-selector-v1';
export type {
  ApiWorkflow,
  InputImage,
  JobCost,
  JobEvent,
  JobEventType,
  JobOutput,
  JobResult,
  JobStatus,
  JobTiming,
  ModelRef,
  OutputKind,
  ProviderJobEvent,
  ProviderJobRequest,
  RemoteJobRef,
  WorkflowNode,
  WorkflowRequirements,
} from './job';
export { isTerminalStatus, TERMINAL_JOB_STATUSES } from './job';
export type { JobAttempt, JobJournalV1, JobRecord, JobRecordPatch, NewJobRecord } from './job-journal-v1';
export type {
  ModelCacheStatus,
  ModelLoaderV1,
  ModelLoadPlan,
  ModelLoadProgress,
  ModelLoadResult,
  ModelPlanItem,
} from './model-loader-v1';
export type {
  GpuSpec,
  ImageDescriptor,
  ProviderCallOptions,
  ProviderHealth,
  ProviderLimits,
  ProviderLookupOptions,
  ProviderPricing,
  ProviderV1,
} from './provider-v1';
export type { ScaleSettings, ScaleTargetState, ScaleTargetV1 } from './scale-target-v1';
export type {
  DemandSnapshot,
  ScalingDecision,
  ScalingPolicyV1,
  ScalingSnapshot,
  TargetSnapshot,
} from './scaling-policy-v1';
