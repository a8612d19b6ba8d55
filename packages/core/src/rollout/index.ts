export type {
  BlueGreenEvents,
  BlueGreenOptions,
  BlueGreenProvider,
  BlueGreenState,
  RolloutSide,
} from './blue-green';
export { createBlueGreen } from './blue-green';
export type { GateVerdict, HealthGate, HealthGateOptions, SideStats, StepComparison } from './health-gate';
export { createHealthGate } from './health-gate';
export type { JsonFileRolloutStoreOptions, RolloutStore } from './rollout-store';
export { createJsonFileRolloutStore, createMemoryRolloutStore } from './rollout-store';
