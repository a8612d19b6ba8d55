import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ScalingPolicyV1 } from '@comfy-serverless/core';
import { ComfyServerlessError, InvalidArgumentError } from '@comfy-serverless/core';
import {
  createPredictivePolicy,
  createReactivePolicy,
  createTargetTrackingPolicy,
  type ScalingObjective,
} from '@comfy-serverless/scaler';
import {
  type ColdStartModel,
  type ComparedPolicy,
  formatComparisonTable,
  parseColdStartCsv,
  parseTraceCsv,
  parseTraceTime,
  renderHtmlReport,
  runComparison,
  sliceTrace,
} from '@comfy-serverless/scaler/sim';
import type { CliIo } from './cli-io';
import { createProgressBar } from './progress-bar';

/** Usage of `comfy-serverless simulate`. */
export const SIMULATE_USAGE = `Usage: comfy-serverless simulate --trace <csv> --policy reactive|target|predictive|<module>
  [--slo-wait-ms N --slo-quantile Q | --slo-share S] [--cold-start-ms N | --cold-start-file <csv>]
  [--time-column C --exec-column C --model-column C] [--from T --to T] [--speedup N]
  [--json] [--report out.html]

Replays the trace against the policy and the baselines (static at peak, keep-alive,
RunPod QUEUE_DELAY and REQUEST_COUNT, Knative) and the clairvoyant lower bound.
A <module> exports a ScalingPolicyV1 or a factory ({ objective }) => ScalingPolicyV1,
as its default export or as \`policy\` / \`createPolicy\`.
`;

const FLAGS = new Set([
  'trace',
  'policy',
  'slo-wait-ms',
  'slo-quantile',
  'slo-share',
  'cold-start-ms',
  'cold-start-file',
  'time-column',
  'exec-column',
  'model-column',
  'from',
  'to',
  'speedup',
  'report',
]);
const SWITCHES = new Set(['json', 'help']);

function parseFlags(argv: string[]): Record<string, string | true> {
  const values: Record<string, string | true> = {};
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index]!;
    if (!argument.startsWith('--'))
      throw new InvalidArgumentError({
        argument,
        message: `Unexpected argument "${argument}".\n${SIMULATE_USAGE}`,
      });
    let name = argument.slice(2);
    let value: string | undefined;
    const equals = name.indexOf('=');
    if (equals >= 0) {
      value = name.slice(equals + 1);
      name = name.slice(0, equals);
    }
    if (SWITCHES.has(name)) {
      values[name] = true;
      continue;
    }
    if (!FLAGS.has(name))
      throw new InvalidArgumentError({
        argument: `--${name}`,
        message: `Unknown option --${name}.\n${SIMULATE_USAGE}`,
      });
    value ??= argv[++index];
    if (value === undefined || value.startsWith('--'))
      throw new InvalidArgumentError({
        argument: `--${name}`,
        message: `--${name} needs a value.\n${SIMULATE_USAGE}`,
      });
    values[name] = value;
  }
  return values;
}

function numberFlag(values: Record<string, string | true>, name: string): number | undefined {
  const value = values[name];
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (typeof value !== 'string' || !Number.isFinite(parsed))
    throw new InvalidArgumentError({
      argument: `--${name}`,
      message: `--${name} must be a number, got "${String(value)}".`,
    });
  return parsed;
}

function timeFlag(values: Record<string, string | true>, name: string): number | undefined {
  const value = values[name];
  if (value === undefined) return undefined;
  const text = String(value);
  const parsed = /^\d+$/.test(text) ? Number(text) : parseTraceTime(text, 'datetime');
  if (!Number.isFinite(parsed))
    throw new InvalidArgumentError({
      argument: `--${name}`,
      message: `--${name} must be a time such as "2024-11-22 00:00:00" (UTC) or epoch ms, got "${text}".`,
    });
  return parsed;
}

function objectiveFrom(values: Record<string, string | true>): ScalingObjective {
  const waitMs = numberFlag(values, 'slo-wait-ms') ?? 10_000;
  const quantile = numberFlag(values, 'slo-quantile');
  const share = numberFlag(values, 'slo-share');
  if (quantile !== undefined && share !== undefined)
    throw new InvalidArgumentError({
      argument: '--slo-share',
      message: 'Give --slo-quantile or --slo-share, not both.',
    });
  if (share !== undefined) return { waitMs, share };
  return { waitMs, quantile: quantile ?? 0.99 };
}

async function loadPolicy(name: string, objective: ScalingObjective, io: CliIo): Promise<ComparedPolicy> {
  if (name === 'reactive') return { name, create: () => createReactivePolicy({ objective }) };
  if (name === 'target') return { name, create: () => createTargetTrackingPolicy({ objective }) };
  if (name === 'predictive') return { name, create: () => createPredictivePolicy({ objective }) };
  const path = isAbsolute(name) ? name : resolve(io.cwd, name);
  let loaded: Record<string, unknown>;
  try {
    loaded = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (error) {
    throw new InvalidArgumentError({
      argument: '--policy',
      message: `--policy must be reactive, target, predictive or a module path; could not import "${path}": ${error instanceof Error ? error.message : String(error)}`,
      cause: error,
    });
  }
  const exported = loaded.default ?? loaded.policy ?? loaded.createPolicy;
  const isPolicy = (value: unknown): value is ScalingPolicyV1 =>
    typeof value === 'object' &&
    value !== null &&
    (value as ScalingPolicyV1).specificationVersion === 'v1' &&
    typeof (value as ScalingPolicyV1).decide === 'function';
  if (isPolicy(exported)) {
    let used = false;
    return {
      name: exported.name,
      create: () => {
        // A policy object keeps its own state, so it can serve one run only.
        if (used)
          throw new InvalidArgumentError({
            argument: '--policy',
            message: 'Export a factory to run the same module policy more than once.',
          });
        used = true;
        return exported;
      },
    };
  }
  if (typeof exported === 'function') {
    const factory = exported as (options: { objective: ScalingObjective }) => ScalingPolicyV1;
    const probe = factory({ objective });
    if (!isPolicy(probe))
      throw new InvalidArgumentError({
        argument: '--policy',
        message: `The factory exported by ${path} did not return a ScalingPolicyV1 (specificationVersion 'v1' with decide).`,
      });
    let first: ScalingPolicyV1 | undefined = probe;
    return {
      name: probe.name,
      create: () => {
        const policy = first ?? factory({ objective });
        first = undefined;
        return policy;
      },
    };
  }
  throw new InvalidArgumentError({
    argument: '--policy',
    message: `${path} exports no ScalingPolicyV1 nor a factory of one (default, \`policy\` or \`createPolicy\`).`,
  });
}

/**
 * `comfy-serverless simulate`: replays a trace against a policy and the baselines, prints
 * a table (or one JSON object with `--json`) and writes an HTML report with `--report`.
 */
export async function simulateCommand(argv: string[], io: CliIo): Promise<number> {
  let values: Record<string, string | true>;
  try {
    values = parseFlags(argv);
    if (values.help === true) {
      io.stdout(SIMULATE_USAGE);
      return 0;
    }
    if (typeof values.trace !== 'string')
      throw new InvalidArgumentError({
        argument: '--trace',
        message: `--trace <csv> is required.\n${SIMULATE_USAGE}`,
      });
    if (typeof values.policy !== 'string')
      throw new InvalidArgumentError({
        argument: '--policy',
        message: `--policy reactive|target|predictive|<module> is required.\n${SIMULATE_USAGE}`,
      });
    if (values['cold-start-ms'] !== undefined && values['cold-start-file'] !== undefined)
      throw new InvalidArgumentError({
        argument: '--cold-start-file',
        message: 'Give --cold-start-ms or --cold-start-file, not both.',
      });
    const objective = objectiveFrom(values);
    const speedup = numberFlag(values, 'speedup') ?? 1;
    if (!(speedup > 0))
      throw new InvalidArgumentError({
        argument: '--speedup',
        message: `--speedup must be > 0, got ${speedup}.`,
      });
    const coldStartMs = numberFlag(values, 'cold-start-ms');
    if (coldStartMs !== undefined && !(coldStartMs >= 0))
      throw new InvalidArgumentError({
        argument: '--cold-start-ms',
        message: `--cold-start-ms must be >= 0, got ${coldStartMs}.`,
      });
    const coldStart: ColdStartModel =
      typeof values['cold-start-file'] === 'string'
        ? parseColdStartCsv(await io.readFile(resolve(io.cwd, values['cold-start-file'])))
        : (coldStartMs ?? 23_000);
    const parsed = parseTraceCsv(await io.readFile(resolve(io.cwd, values.trace)), {
      ...(typeof values['time-column'] === 'string' ? { time: values['time-column'] } : {}),
      ...(typeof values['exec-column'] === 'string' ? { execution: values['exec-column'] } : {}),
      ...(typeof values['model-column'] === 'string' ? { model: values['model-column'] } : {}),
    });
    const from = timeFlag(values, 'from');
    const to = timeFlag(values, 'to');
    const trace = sliceTrace(parsed, {
      ...(from === undefined ? {} : { from }),
      ...(to === undefined ? {} : { to }),
      speedup,
    });
    if (trace.count === 0)
      throw new InvalidArgumentError({
        argument: '--from',
        message: 'No job of the trace falls between --from and --to; widen the window.',
      });
    const policy = await loadPolicy(values.policy, objective, io);
    const json = values.json === true;
    const progress = json ? undefined : createProgressBar(io.stderr);
    const comparison = runComparison({
      trace,
      coldStart,
      policies: [policy],
      ...(progress === undefined ? {} : { onProgress: progress }),
    });
    if (progress !== undefined) io.stderr('\n');
    if (typeof values.report === 'string') {
      const names = [
        policy.name,
        ...Object.keys(comparison.results).filter((name) => name !== policy.name),
      ].slice(0, 4);
      const html = renderHtmlReport({
        title: `Scaling simulation: ${policy.name}`,
        notes: [
          `Trace ${values.trace}: ${trace.count} jobs${speedup === 1 ? '' : `, ${speedup}x speed-up`}${parsed.skippedRows > 0 ? `, ${parsed.skippedRows} unreadable rows skipped` : ''}.`,
          `Cold start: ${typeof coldStart === 'number' ? `${coldStart} ms fixed` : `drawn from ${values['cold-start-file']} (mean ${Math.round(coldStart.meanMs)} ms)`}. Objective: ${JSON.stringify(objective)}.`,
          `Clairvoyant bound: ${comparison.bound.gpuSeconds.toFixed(0)} GPU-s; execution alone ${comparison.bound.executionSeconds.toFixed(0)} GPU-s.`,
        ],
        rows: comparison.rows,
        timelines: names
          .map((name) => ({ name, timeline: comparison.results[name]?.timeline }))
          .filter(
            (entry): entry is { name: string; timeline: NonNullable<typeof entry.timeline> } =>
              entry.timeline !== undefined,
          ),
      });
      await io.writeFile(resolve(io.cwd, values.report), html);
    }
    if (json) {
      const output: Record<string, unknown> = {
        trace: { jobs: trace.count, speedup, skippedRows: parsed.skippedRows },
        objective,
        bound: comparison.bound,
        results: Object.fromEntries(
          comparison.rows.map((row) => [
            row.name,
            {
              kind: row.kind,
              gpuSeconds: row.gpuSeconds,
              costUsd: row.costUsd,
              boundGpuSeconds: row.boundGpuSeconds,
              costRatioToBound: row.costRatioToBound,
              waitP50Ms: row.waitP50Ms,
              waitP95Ms: row.waitP95Ms,
              waitP99Ms: row.waitP99Ms,
              shareWithin10s: row.shareWithin10s,
              coldStarts: row.coldStarts,
            },
          ]),
        ),
      };
      io.stdout(`${JSON.stringify(output)}\n`);
    } else {
      io.stdout(`${formatComparisonTable(comparison.rows)}\n`);
      if (typeof values.report === 'string') io.stdout(`Report written to ${values.report}\n`);
    }
    return 0;
  } catch (error) {
    if (ComfyServerlessError.isInstance(error)) {
      io.stderr(`${error.message}\n`);
      return 2;
    }
    throw error;
  }
}
