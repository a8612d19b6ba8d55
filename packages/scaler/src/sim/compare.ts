import type { ScalingPolicyV1 } from '@comfy-serverless/core';
import {
  createKeepAlivePolicy,
  createKnativePolicy,
  createRunpodQueueDelayPolicy,
  createRunpodRequestCountPolicy,
  createStaticPolicy,
} from './baselines';
import { type ClairvoyantBound, computeClairvoyantBound } from './clairvoyant-bound';
import { type ColdStartModel, meanColdStartMs } from './cold-start';
import { type SimulatedTargetOptions, type SimulationResult, simulate } from './simulator';
import type { Trace } from './trace';

/** One line of a comparison: a policy, a baseline or the bound. */
export interface ComparisonRow {
  name: string;
  kind: 'policy' | 'baseline' | 'bound';
  gpuSeconds: number;
  costUsd: number;
  boundGpuSeconds: number;
  costRatioToBound: number;
  waitP50Ms: number;
  waitP95Ms: number;
  waitP99Ms: number;
  shareWithin10s: number;
  coldStarts: number;
  idleShare: number;
  scalingActions: number;
  maxHourlyCostUsd: number;
}

/** A policy to compare; `create` is called once per run because policies keep state. */
export interface ComparedPolicy {
  name: string;
  create: () => ScalingPolicyV1;
  /** Decision interval. @default 10_000 */
  intervalMs?: number;
}

/** Options of `runComparison`. */
export interface ComparisonOptions {
  trace: Trace;
  coldStart: ColdStartModel;
  /** Price of one worker. @default 0.00076 (an 80 GB A100 on RunPod) */
  usdPerSecond?: number;
  policies: ComparedPolicy[];
  /** Run the baselines too. @default true */
  baselines?: boolean;
  /** Idle timeouts of the keep-alive baselines, seconds. @default [5, 60, 300, 600, 1800] */
  keepAliveTimeouts?: number[];
  /** Most workers of the simulated pool. @default 500 */
  maxWorkers?: number;
  modelSwitchMs?: number;
  seed?: number;
  /** Called before each run and as it advances. */
  onProgress?: (label: string, fraction: number) => void;
}

/** What `runComparison` returns. */
export interface Comparison {
  bound: ClairvoyantBound;
  rows: ComparisonRow[];
  results: Record<string, SimulationResult>;
}

/**
 * Replays one trace under each policy and every baseline (static at peak, keep-alive at
 * several idle timeouts, RunPod's QUEUE_DELAY and REQUEST_COUNT scalers, a Knative-style
 * scaler) and the clairvoyant bound, on one simulated pool, with the same cold-start draws.
 *
 * @example
 * const { rows } = runComparison({ trace, coldStart: 23_000, policies: [{ name: 'predictive', create: () => createPredictivePolicy() }] });
 */
export function runComparison(options: ComparisonOptions): Comparison {
  const { trace, coldStart } = options;
  const usdPerSecond = options.usdPerSecond ?? 0.00076;
  const bound = computeClairvoyantBound(trace, meanColdStartMs(coldStart));
  const runs: {
    name: string;
    kind: 'policy' | 'baseline';
    policy: () => ScalingPolicyV1;
    intervalMs: number;
    startOnQueue: boolean;
    maxWorkers?: number;
  }[] = options.policies.map((entry) => ({
    name: entry.name,
    kind: 'policy' as const,
    policy: entry.create,
    intervalMs: entry.intervalMs ?? 10_000,
    startOnQueue: true,
  }));
  if (options.baselines ?? true) {
    const peak = Math.max(1, bound.peakConcurrency);
    runs.push({
      name: `static at peak (${peak})`,
      kind: 'baseline',
      policy: () => createStaticPolicy(peak),
      intervalMs: 60_000,
      startOnQueue: true,
      maxWorkers: Math.max(peak, options.maxWorkers ?? 500),
    });
    for (const timeout of options.keepAliveTimeouts ?? [5, 60, 300, 600, 1800])
      runs.push({
        name: `keep-alive ${timeout}s`,
        kind: 'baseline',
        policy: () => createKeepAlivePolicy(timeout),
        intervalMs: 60_000,
        startOnQueue: true,
      });
    runs.push(
      {
        name: 'runpod QUEUE_DELAY',
        kind: 'baseline',
        policy: () => createRunpodQueueDelayPolicy(),
        intervalMs: 2_000,
        startOnQueue: false,
      },
      {
        name: 'runpod REQUEST_COUNT',
        kind: 'baseline',
        policy: () => createRunpodRequestCountPolicy(),
        intervalMs: 2_000,
        startOnQueue: false,
      },
      {
        name: 'knative',
        kind: 'baseline',
        policy: () => createKnativePolicy(),
        intervalMs: 2_000,
        startOnQueue: false,
      },
    );
  }
  const rows: ComparisonRow[] = [
    {
      name: 'clairvoyant bound',
      kind: 'bound',
      gpuSeconds: bound.gpuSeconds,
      costUsd: bound.gpuSeconds * usdPerSecond,
      boundGpuSeconds: bound.gpuSeconds,
      costRatioToBound: 1,
      waitP50Ms: 0,
      waitP95Ms: 0,
      waitP99Ms: 0,
      shareWithin10s: 1,
      coldStarts: bound.workerStarts,
      idleShare: bound.gpuSeconds > 0 ? 1 - bound.executionSeconds / bound.gpuSeconds : 0,
      scalingActions: 0,
      maxHourlyCostUsd: Number.NaN,
    },
  ];
  const results: Record<string, SimulationResult> = {};
  for (const run of runs) {
    options.onProgress?.(run.name, 0);
    const target: SimulatedTargetOptions = {
      id: 'pool',
      usdPerSecond,
      coldStart,
      maxWorkers: run.maxWorkers ?? options.maxWorkers ?? 500,
      startOnQueue: run.startOnQueue,
      ...(options.modelSwitchMs === undefined ? {} : { modelSwitchMs: options.modelSwitchMs }),
    };
    const result = simulate({
      trace,
      policy: run.policy(),
      targets: [target],
      intervalMs: run.intervalMs,
      seed: options.seed ?? 1,
      onProgress: (fraction) => options.onProgress?.(run.name, fraction),
    });
    results[run.name] = result;
    rows.push({
      name: run.name,
      kind: run.kind,
      gpuSeconds: result.gpuSeconds,
      costUsd: result.costUsd,
      boundGpuSeconds: bound.gpuSeconds,
      costRatioToBound: bound.gpuSeconds > 0 ? result.gpuSeconds / bound.gpuSeconds : Number.NaN,
      waitP50Ms: result.waitP50Ms,
      waitP95Ms: result.waitP95Ms,
      waitP99Ms: result.waitP99Ms,
      shareWithin10s: result.shareWithin10s,
      coldStarts: result.coldStarts,
      idleShare: result.idleShare,
      scalingActions: result.scalingActions,
      maxHourlyCostUsd: result.maxHourlyCostUsd,
    });
  }
  return { bound, rows, results };
}

/** Formats comparison rows as a fixed-width text table. */
export function formatComparisonTable(rows: readonly ComparisonRow[]): string {
  const header = ['policy', 'GPU-s', 'USD', 'x bound', 'wait p50', 'p95', 'p99', '<=10s', 'cold starts'];
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
  const lines = rows.map((row) => [
    row.name,
    row.gpuSeconds.toFixed(0),
    row.costUsd.toFixed(2),
    row.costRatioToBound.toFixed(2),
    seconds(row.waitP50Ms),
    seconds(row.waitP95Ms),
    seconds(row.waitP99Ms),
    `${(row.shareWithin10s * 100).toFixed(1)}%`,
    String(row.coldStarts),
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...lines.map((line) => line[column]!.length)),
  );
  const format = (cells: string[]) =>
    cells
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join('  ');
  return [format(header), format(widths.map((width) => '-'.repeat(width))), ...lines.map(format)].join('\n');
}
