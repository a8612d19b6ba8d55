// The simulator: `@comfy-serverless/scaler/sim`.
export type { KnativeOptions } from './baselines';
export {
  createKeepAlivePolicy,
  createKnativePolicy,
  createRunpodQueueDelayPolicy,
  createRunpodRequestCountPolicy,
  createStaticPolicy,
} from './baselines';
export type { ClairvoyantBound } from './clairvoyant-bound';
export { computeClairvoyantBound } from './clairvoyant-bound';
export type { ColdStartDistribution, ColdStartModel } from './cold-start';
export {
  coldStartQuantileMs,
  createColdStartDistribution,
  drawColdStartMs,
  meanColdStartMs,
  parseColdStartCsv,
} from './cold-start';
export type { ComparedPolicy, Comparison, ComparisonOptions, ComparisonRow } from './compare';
export { formatComparisonTable, runComparison } from './compare';
export { EventHeap } from './event-heap';
export type { HtmlReportInput } from './html-report';
export { renderHtmlReport } from './html-report';
export { createRandom } from './random';
export type {
  SimulatedTargetOptions,
  SimulationOptions,
  SimulationResult,
  SimulationTimeline,
} from './simulator';
export { simulate } from './simulator';
export { quantile, sortedQuantile } from './statistics';
export type { Trace, TraceColumns, TraceTimeFormat } from './trace';
export { buildTrace, parseTraceCsv, parseTraceTime, sliceTrace } from './trace';
