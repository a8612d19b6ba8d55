/**
 * The names of the metrics `createPrometheusMetrics` registers (before any prefix). The
 * alert rules in `deploy/prometheus/alerts.yml` use them.
 */
export const METRIC_NAMES = {
  /** Histogram, seconds a workflow executed on a GPU, by provider. */
  executionDuration: 'workflow_execution_duration_seconds',
  /** Histogram, seconds from acceptance until execution started (or the job ended unstarted), by provider. */
  queueWait: 'workflow_queue_wait_seconds',
  /** Counter, jobs ended, by provider and outcome (`completed`, `failed`, `cancelled`, `timed_out`). */
  jobs: 'workflow_jobs_total',
  /** Counter, a provider's failed attempts that moved the job elsewhere, by provider. */
  retries: 'workflow_job_retries_total',
  /** Counter, USD spent on completed jobs, by provider. */
  cost: 'workflow_cost_usd_total',
  /** Gauge, jobs waiting, by provider (`unassigned`: not yet routed). */
  queueDepth: 'queue_depth',
  /** Gauge, jobs running, by provider. */
  inFlight: 'jobs_in_flight',
  /** Gauge, busy / (busy + idle) workers, 0..1, by provider, from its last health reading. */
  gpuUtilization: 'gpu_utilization',
  /** Counter, model loads served from cache, by ComfyUI folder. */
  modelCacheHits: 'model_cache_hits_total',
  /** Counter, model loads that had to fetch the model, by ComfyUI folder. */
  modelCacheMisses: 'model_cache_misses_total',
  /** Histogram, seconds of each call to a provider, by provider, call and outcome. */
  apiRequestDuration: 'api_request_duration_seconds',
  /** Histogram, seconds a platform spent starting a worker for a job, by provider. */
  containerStartupDuration: 'container_startup_duration_seconds',
} as const;

/** One of the metric names. */
export type MetricName = (typeof METRIC_NAMES)[keyof typeof METRIC_NAMES];
