export type { FakeNodeDefinition } from './default-object-info';
export { DEFAULT_FAKE_MODELS, defaultObjectInfo, TINY_JPEG, TINY_PNG } from './default-object-info';
export type {
  FakeComfyFile,
  FakeComfyServer,
  FakeComfyServerOptions,
  FakeComfyStats,
  FakeJobBehaviour,
  FakeNodeOutput,
} from './fake-comfy-server';
export { startFakeComfyServer } from './fake-comfy-server';
export { validateFakePrompt } from './fake-validation';
export { sampleWorkflow } from './sample-workflow';
