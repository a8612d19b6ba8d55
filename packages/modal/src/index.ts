// The public face of @comfy-serverless/modal.
export type {
  ModalAutoscalerSettings,
  ModalBackend,
  ModalCurrentStats,
  ModalDeploymentInfo,
  ModalMethodTarget,
  ModalPollResult,
} from './modal-backend';
export type { ModalEndpointOptions } from './modal-endpoint-provider';
export { createModalEndpoint } from './modal-endpoint-provider';
export type { ModalErrorContext, ModalErrorPhase } from './modal-error';
export { isCancellation, isPollTimeout, mapModalError } from './modal-error';
export type { ModalGpu } from './modal-gpu';
export { MODAL_GPUS, resolveModalGpu } from './modal-gpu';
export type { ModalProvider, ModalProviderOptions } from './modal-provider';
export { createModal } from './modal-provider';
export type { ModalRunRequest, ModalRunResult, ModalRunTiming } from './modal-result';
export { buildRunRequest, decodeRunResult, runResultEvents } from './modal-result';
export type {
  ModalClientLike,
  ModalSdkBackendOptions,
  ModalSdkFunction,
  ModalSdkFunctionCall,
  ModalSdkModule,
} from './modal-sdk-backend';
export { createModalSdkBackend, loadModalSdk } from './modal-sdk-backend';
export type {
  ModalAppliedSettings,
  ModalScaleTarget,
  ModalScaleTargetState,
  ModalTargetOptions,
} from './modal-target';
export { createModalTarget } from './modal-target';
