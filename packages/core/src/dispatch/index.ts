export type { CircuitBreakerOptions, CircuitState } from './breaker';
export { CircuitBreaker } from './breaker';
export type {
  Dispatcher,
  DispatcherEvents,
  DispatcherMetrics,
  ProviderCallEvent,
  RunWorkflowOptions,
} from './dispatcher';
export { createDispatcher } from './dispatcher';
export type { JobHandle } from './job-run';
export type { MemoryJournalOptions } from './memory-journal';
export { assertStatusTransition, createMemoryJournal } from './memory-journal';
export type { DispatcherOptions, DispatcherRetryOptions, DispatcherRouterOptions } from './options';
export type {
  RegionPreference,
  RouteCandidate,
  RouteDecision,
  RouteProviderSnapshot,
  RouteRequest,
} from './router';
export { expectedWaitMs, isSaturated, routeJob } from './router';
