// Test doubles for @comfy-serverless/runpod: `@comfy-serverless/runpod/test`.
export type { RunpodRateLimit, RunpodRateRoute } from './mock-rate-limiter';
export { RUNPOD_RATE_LIMITS } from './mock-rate-limiter';
export type { MockJobPlan } from './mock-worker-comfyui';
export { MOCK_PNG_BASE64 } from './mock-worker-comfyui';
export type {
  MockFailure,
  RunpodMock,
  RunpodMockEndpoint,
  RunpodMockJob,
  RunpodMockOptions,
  RunpodMockRoute,
  RunpodMockStats,
} from './runpod-mock';
export { startRunpodMock } from './runpod-mock';
