// The public face of @comfy-serverless/runpod.
export type {
  RunpodEndpointResponse,
  RunpodHealthResponse,
  RunpodJobStatus,
  RunpodScalerType,
  RunpodStatusResponse,
  RunpodStreamResponse,
  WorkerOutput,
} from './runpod-api';
export { isRunpodTerminal, RUNPOD_JOB_STATUSES, RUNPOD_SCALER_TYPES } from './runpod-api';
export { loadRunpodApiKey } from './runpod-api-key';
export type {
  RunpodEndpointTarget,
  RunpodEndpointTargetSettings,
  RunpodScaleSettings,
  RunpodScaleTargetState,
} from './runpod-endpoint-target';
export { createRunpodEndpointTarget } from './runpod-endpoint-target';
export type { RunpodFailure } from './runpod-error';
export { mapJobFailure } from './runpod-error';
export type { DecodedWorkerOutput } from './runpod-outputs';
export { decodeWorkerOutput } from './runpod-outputs';
export type { RunpodProvider, RunpodSettings, RunpodWaitMode } from './runpod-provider';
export { createRunpod, RUNPOD_RUN_MAX_BYTES } from './runpod-provider';
