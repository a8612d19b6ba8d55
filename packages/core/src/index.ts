// The public face of @comfy-serverless/core. Each area keeps its own barrel.
export * from './comfy';
export * from './dispatch';
export * from './http';
export * from './images';
export * from './models';
export * from './providers';
export * from './rollout';
export * from './spec';
export * from './telemetry';
export { sleep, systemClock } from './util/clock';
export type { GpuInput, KnownGpu } from './util/gpu';
export { defaultGpuPrice, KNOWN_GPUS, resolveGpu } from './util/gpu';
export {
  describeOption,
  optionalClockOption,
  optionalNumberOption,
  optionalStringOption,
  requireStringOption,
} from './util/options';
export * from './workflow';
