export type { AttachLoggerOptions } from './attach-logger';
export { attachLogger } from './attach-logger';
export type { AttachTracingOptions, OpenTelemetryApiModule } from './attach-tracing';
export { attachTracing, SPAN_NAMES } from './attach-tracing';
export type { JsonLoggerOptions, LoggerLike, LogLevel, LogMethod } from './json-logger';
export { createJsonLogger } from './json-logger';
export type { MetricName } from './metric-names';
export { METRIC_NAMES } from './metric-names';
export type { ModelCacheRecorder } from './model-cache-hook';
export { instrumentModelLoader, recordModelLoad } from './model-cache-hook';
export type { ObservedDispatcher } from './observed-dispatcher';
export type {
  Bottleneck,
  BottleneckKind,
  LatencyQuantiles,
  PerformanceKpis,
  PerformanceReport,
  PerformanceReportOptions,
  PerformanceReportQuery,
  ProviderErrorRate,
} from './performance-report';
export { createPerformanceReport, formatPerformanceReport } from './performance-report';
export type {
  PromClientModule,
  PrometheusBuckets,
  PrometheusMetrics,
  PrometheusMetricsOptions,
} from './prometheus-metrics';
export { createPrometheusMetrics } from './prometheus-metrics';
export { redactSecrets, redactValue } from './redact';
