// Test doubles for @comfy-serverless/modal: `@comfy-serverless/modal/test`.
export type {
  FakeComfyBehaviour,
  FakeComfyWorker,
  FakeComfyWorkerOptions,
} from './fake-comfy-worker';
export { createFakeComfyWorker, sampleWorkflow, TINY_PNG } from './fake-comfy-worker';
export type {
  FakeModal,
  FakeModalCall,
  FakeModalCallContext,
  FakeModalClassOptions,
  FakeModalMethod,
  FakeModalOperation,
  ModalErrorName,
} from './fake-modal';
export { createFakeModal, grpcError, modalError } from './fake-modal';
export type {
  FakeModalEndpoint,
  FakeModalEndpointOptions,
  FakeModalEndpointRequest,
} from './fake-modal-endpoint';
export { startFakeModalEndpoint } from './fake-modal-endpoint';
