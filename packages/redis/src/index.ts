// The public face of @comfy-serverless/redis.
export type { RedisJournal, RedisJournalOptions } from './redis-journal';
export { createRedisJournal } from './redis-journal';
export type { RedisLease, RedisLeaseGrant, RedisLeaseOptions } from './redis-lease';
export { createRedisLease } from './redis-lease';
export type {
  ProcessLoad,
  RedisMetricWindows,
  RedisMetricWindowsOptions,
  SharedMetrics,
} from './redis-metric-windows';
export { createRedisMetricWindows } from './redis-metric-windows';
export type { ShareDispatcherDemandOptions, SharedDemandSource } from './share-dispatcher-demand';
export { shareDispatcherDemand } from './share-dispatcher-demand';
