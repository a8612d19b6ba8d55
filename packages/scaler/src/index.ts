// The public face of @comfy-serverless/scaler. The simulator is at `@comfy-serverless/scaler/sim`.
export type {
  Allocation,
  AllocationConstraints,
  AllocationOptimizerOptions,
  AllocationTargetInfo,
  AllocationWeights,
} from './allocation/allocation-optimizer';
export { allocateCapacity, createAllocationOptimizer } from './allocation/allocation-optimizer';
export type {
  Autoscaler,
  AutoscalerEvents,
  AutoscalerOptions,
  AutoscalerTickResult,
  DispatcherMetricsSource,
} from './autoscaler/autoscaler';
export { createAutoscaler } from './autoscaler/autoscaler';
export type { ForecastAccuracy } from './forecast/forecast-accuracy';
export { countPerPeriod, evaluateForecaster } from './forecast/forecast-accuracy';
export type { Forecast, SeasonalForecaster, SeasonalForecasterOptions } from './forecast/seasonal-forecaster';
export { createSeasonalForecaster, normalQuantile } from './forecast/seasonal-forecaster';
export type { LeaseGrant, LeaseV1 } from './lease/lease-v1';
export { createMemoryLease } from './lease/memory-lease';
export type {
  CostObjective,
  ResolvedObjective,
  ScalingObjective,
  WaitQuantileObjective,
  WaitShareObjective,
} from './objective';
export { resolveObjective } from './objective';
export type { PredictivePolicyOptions } from './policies/predictive-policy';
export { createPredictivePolicy } from './policies/predictive-policy';
export type { ReactivePolicyOptions, ReactiveTrigger } from './policies/reactive-policy';
export { createReactivePolicy } from './policies/reactive-policy';
export type { TargetTrackingPolicyOptions } from './policies/target-tracking-policy';
export { createTargetTrackingPolicy } from './policies/target-tracking-policy';
export type { AllocationConstraint } from './scaler-errors';
export { InfeasibleAllocationError } from './scaler-errors';
