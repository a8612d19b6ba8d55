// Scaling benchmark: every policy and every baseline on two weeks of real traffic, at 1x and
// 10x speed-up, with a fixed 23 s cold start and with cold starts drawn from measured model
// loads; the forecaster's accuracy; a budget check; the simulator's speed on a million jobs.
// Run: cd /work/main && node --import tsx bench/scaling/main.ts [--quick]
import { readFileSync } from 'node:fs';
import {
  countPerPeriod,
  createAllocationOptimizer,
  createPredictivePolicy,
  createReactivePolicy,
  createTargetTrackingPolicy,
  evaluateForecaster,
  type ScalingObjective,
} from '@comfy-serverless/scaler';
import {
  buildTrace,
  type ColdStartModel,
  type ComparisonRow,
  coldStartQuantileMs,
  createKeepAlivePolicy,
  createRandom,
  formatComparisonTable,
  parseColdStartCsv,
  parseTraceCsv,
  parseTraceTime,
  runComparison,
  simulate,
  sliceTrace,
  type Trace,
} from '@comfy-serverless/scaler/sim';

const quick = process.argv.includes('--quick');
const traces = new URL('../../../shared/traces/', import.meta.url);
const full = parseTraceCsv(readFileSync(new URL('sd-requests-2024-11-15-to-28.csv', traces), 'utf8'));
const measured = parseColdStartCsv(readFileSync(new URL('sd-model-load-latency-ms.csv', traces), 'utf8'));
const weekTwoStart = parseTraceTime('2024-11-22 00:00:00', 'datetime');

const objectives: { label: string; objective: ScalingObjective }[] = [
  { label: 'p99<=10s', objective: { waitMs: 10_000, quantile: 0.99 } },
  { label: '95%<=10s', objective: { waitMs: 10_000, share: 0.95 } },
  { label: 'cost', objective: { mode: 'cost' } },
];
const factories = {
  reactive: createReactivePolicy,
  target: createTargetTrackingPolicy,
  predictive: createPredictivePolicy,
} as const;
const day = 86_400_000;

/** Every built-in policy under each of `objectives`, named `<policy> <objective label>`. */
function policiesFor(list: typeof objectives) {
  return list.flatMap(({ label: objectiveLabel, objective }) =>
    Object.entries(factories).map(([name, factory]) => ({
      name: `${name} ${objectiveLabel}`,
      create: () => factory({ objective }),
    })),
  );
}

/** The policies (no baselines) on one copy of the trace with a 23 s cold start, rows by name. */
function rowsByName(trace: Trace, policies: Parameters<typeof runComparison>[0]['policies']) {
  const { rows } = runComparison({ trace, coldStart: 23_000, policies, baselines: false });
  return Object.fromEntries(rows.map((row) => [row.name, row]));
}

/** Rows of copies, by label then policy, with the given fields rounded for RESULT. */
function roundedRows(
  rowsByLabel: Record<string, Record<string, ComparisonRow>>,
  fields: readonly (keyof ComparisonRow & string)[],
) {
  const decimals = (field: string) => (field === 'costRatioToBound' ? 3 : field === 'shareWithin10s' ? 4 : 0);
  return Object.fromEntries(
    Object.entries(rowsByLabel).map(([label, rows]) => [
      label,
      Object.fromEntries(
        Object.entries(rows).map(([name, row]) => [
          name,
          Object.fromEntries(
            fields.map((field) => [field, Number((row[field] as number).toFixed(decimals(field)))]),
          ),
        ]),
      ),
    ]),
  );
}

interface Check {
  name: string;
  pass: boolean;
  detail: string;
}
const checks: Check[] = [];
const scenarios: Record<string, ComparisonRow[]> = {};

function runScenario(label: string, trace: Trace, coldStart: ColdStartModel): ComparisonRow[] {
  const started = performance.now();
  const { rows } = runComparison({ trace, coldStart, policies: policiesFor(objectives) });
  console.log(`\n== ${label}: ${trace.count} jobs (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  console.log(formatComparisonTable(rows));
  scenarios[label] = rows;
  // The targets of the issue, as GPU-seconds over the clairvoyant bound.
  const coldStartLimit = coldStartQuantileMs(coldStart, 0.99) + 10_000;
  for (const row of rows.filter((entry) => entry.kind === 'policy')) {
    if (row.name.endsWith('p99<=10s'))
      checks.push({
        name: `${label} ${row.name}`,
        pass: row.waitP99Ms <= 10_000 && row.costRatioToBound <= 2.5,
        detail: `p99 ${(row.waitP99Ms / 1000).toFixed(1)} s, ${row.costRatioToBound.toFixed(2)}x (target p99<=10 s at <=2.5x)`,
      });
    else if (row.name.endsWith('95%<=10s'))
      checks.push({
        name: `${label} ${row.name}`,
        pass: row.shareWithin10s >= 0.95 && row.costRatioToBound <= 1.6,
        detail: `${(row.shareWithin10s * 100).toFixed(1)} % within 10 s, ${row.costRatioToBound.toFixed(2)}x (target >=95 % at <=1.6x)`,
      });
    else
      checks.push({
        name: `${label} ${row.name}`,
        pass: row.costRatioToBound <= 1.1 && row.waitP99Ms <= coldStartLimit,
        detail: `${row.costRatioToBound.toFixed(2)}x, p99 ${(row.waitP99Ms / 1000).toFixed(1)} s (target <=1.1x, p99 <= ${(coldStartLimit / 1000).toFixed(0)} s)`,
      });
  }
  return rows;
}

for (const speedup of quick ? [10] : [1, 10]) {
  const trace = sliceTrace(full, { speedup });
  runScenario(`${speedup}x, cold start 23 s`, trace, 23_000);
  if (!quick) runScenario(`${speedup}x, measured cold starts`, trace, measured);
}
// Week 2 alone: the policies start cold (no state from week 1). This is NOT held out: week 2
// is part of the trace the planner's constants were chosen on (docs/scaling.md, "Choices
// made on this trace"); it is in-sample, and only shows a cold start.
console.log('\n(week 2 only: in-sample, policies starting cold; not held out)');
runScenario('week 2 only, 1x, cold start 23 s', sliceTrace(full, { from: weekTwoStart }), 23_000);

// Tuning copies (printed, not a target check; in-sample). The same policies on two copies
// of the trace. These copies were used to design and tune the late-job budget rule and its
// first step (commit e86f8f5: FIRST_STEP 0.3 was picked among 0.2/0.3/0.5 on them), so they
// are NOT out-of-sample evidence; the held-out copies further down are. "shifted+jittered":
// the two weeks rotated by 3.5 days (the replay starts mid-week, at another hour of the day;
// the arrivals before the cut move to the end) and every arrival moved by a uniform draw
// within +-30 s (bursts of jobs that arrived in the same second are broken up). "thinned":
// every job kept with probability 1/2 (half the traffic, the same daily shape). Seeded, so
// the report is deterministic.
function shiftedJittered(trace: Trace, shiftMs: number, jitterMs: number, seed: number): Trace {
  const random = createRandom(seed);
  const first = trace.arrivalMs[0]!;
  const span = trace.arrivalMs[trace.count - 1]! - first + 1_000;
  const arrivals = new Float64Array(trace.count);
  for (let index = 0; index < trace.count; index++) {
    const rotated = (trace.arrivalMs[index]! - first + span - shiftMs) % span;
    arrivals[index] = first + Math.max(0, rotated + (random() * 2 - 1) * jitterMs);
  }
  return buildTrace(arrivals, trace.executionMs, trace.modelIndex, trace.models);
}
function thinned(trace: Trace, keep: number, seed: number): Trace {
  const random = createRandom(seed);
  const arrivals: number[] = [];
  const executions: number[] = [];
  const models: number[] = [];
  for (let index = 0; index < trace.count; index++)
    if (random() < keep) {
      arrivals.push(trace.arrivalMs[index]!);
      executions.push(trace.executionMs[index]!);
      models.push(trace.modelIndex[index]!);
    }
  return buildTrace(arrivals, executions, models, trace.models);
}
const tuningCopies: Record<string, Record<string, ComparisonRow>> = {};
{
  const compared = [
    ...policiesFor(objectives),
    ...[300, 1800].map((timeout) => ({
      name: `keep-alive ${timeout}s`,
      create: () => createKeepAlivePolicy(timeout),
      intervalMs: 60_000,
    })),
  ];
  const format = (row: ComparisonRow | undefined) =>
    row === undefined
      ? '-'
      : `${row.costRatioToBound.toFixed(2)}x ${(row.waitP50Ms / 1000).toFixed(0)}/${(row.waitP95Ms / 1000).toFixed(0)}/${(row.waitP99Ms / 1000).toFixed(0)} s ${(row.shareWithin10s * 100).toFixed(1)} %`;
  for (const speedup of quick ? [10] : [1, 10]) {
    const original = sliceTrace(full, { speedup });
    const variants: [string, Trace][] = [
      ['original', original],
      ['shifted 3.5 d, jitter ±30 s', shiftedJittered(original, (3.5 * day) / speedup, 30_000 / speedup, 7)],
      ['thinned 50 %', thinned(original, 0.5, 11)],
    ];
    const started = performance.now();
    const byVariant = variants.map(([variant, trace]) => {
      const named = rowsByName(trace, compared);
      tuningCopies[`${speedup}x ${variant}`] = named;
      return named;
    });
    console.log(
      `\n== tuning copies (in-sample: the budget rule was tuned on them), ${speedup}x, cold start 23 s (x bound, wait p50/p95/p99, share within 10 s; not a target check) (${((performance.now() - started) / 1000).toFixed(1)} s)`,
    );
    const width = 32;
    console.log(['policy'.padEnd(22), ...variants.map(([variant]) => variant.padEnd(width))].join(' '));
    for (const row of compared)
      console.log(
        [row.name.padEnd(22), ...byVariant.map((named) => format(named[row.name]).padEnd(width))].join(' '),
      );
  }
}

// Held-out copies (printed and in RESULT; NOT a target check, and not to be used to tune
// anything: once a figure here is used to choose a constant, these copies become tuning
// copies and new seeds must be drawn). No choice was made on these particular copies, but
// they are resamplings of the same two weeks the constants were chosen on (same daily shape,
// same bursts, same execution times), so they test robustness to resampling, not to other
// traffic. The copies: thinned to 30/50/70 % and rotated by 2/5/9 days (jitter +-30 s of trace time), all with
// seeds not used before by the bench or by the review (tuning used thinning seed 11 and
// rotation seed 7; the review's scratch runs used 1-5, 7-9). At 10x with C = 23 s every
// copy, and at 1x one copy, to keep the bench's run time down. For every policy: the worst
// share within 10 s over the copies, the worst and median cost ratio, and whether the
// objective held on every copy.
interface HeldOutSummary {
  copies: number;
  objectiveHeldOnEvery: boolean;
  missedOn: string[];
  worstShareWithin10s: number;
  worstWaitP99Ms: number;
  medianCostRatio: number;
  worstCostRatio: number;
}
const heldOut: Record<string, Record<string, HeldOutSummary>> = {};
const heldOutRows: Record<string, Record<string, ComparisonRow>> = {};
{
  const policiesHeldOut = policiesFor(objectives.filter(({ objective }) => !('mode' in objective)));
  const objectiveHeld = (name: string, row: ComparisonRow) =>
    name.endsWith('p99<=10s') ? row.waitP99Ms <= 10_000 : row.shareWithin10s >= 0.95;
  const sets: { label: string; copies: [string, Trace][] }[] = [];
  const tenfold = sliceTrace(full, { speedup: 10 });
  const onefold = sliceTrace(full, { speedup: 1 });
  sets.push({
    label: '10x, cold start 23 s',
    copies: quick
      ? [['thinned 50 % seed 1002', thinned(tenfold, 0.5, 1002)]]
      : [
          ['thinned 30 % seed 1001', thinned(tenfold, 0.3, 1001)],
          ['thinned 50 % seed 1002', thinned(tenfold, 0.5, 1002)],
          ['thinned 70 % seed 1003', thinned(tenfold, 0.7, 1003)],
          ['shifted 2 d seed 2001', shiftedJittered(tenfold, (2 * day) / 10, 30_000 / 10, 2001)],
          ['shifted 5 d seed 2002', shiftedJittered(tenfold, (5 * day) / 10, 30_000 / 10, 2002)],
          ['shifted 9 d seed 2003', shiftedJittered(tenfold, (9 * day) / 10, 30_000 / 10, 2003)],
        ],
  });
  if (!quick)
    sets.push({
      label: '1x, cold start 23 s',
      copies: [['thinned 50 % seed 1004', thinned(onefold, 0.5, 1004)]],
    });
  for (const { label, copies } of sets) {
    const started = performance.now();
    const rowsByCopy = copies.map(([copy, trace]) => {
      const named = rowsByName(trace, policiesHeldOut);
      heldOutRows[`${label} ${copy}`] = named;
      return named;
    });
    console.log(
      `\n== held-out copies, ${label} (not a target check, not used for tuning) (${((performance.now() - started) / 1000).toFixed(1)} s)`,
    );
    console.log(['policy'.padEnd(22), ...copies.map(([copy]) => copy.padEnd(24)), 'summary'].join(' '));
    heldOut[label] = {};
    for (const { name } of policiesHeldOut) {
      const rows = rowsByCopy.map((named) => named[name]!);
      const ratios = rows.map((row) => row.costRatioToBound).sort((left, right) => left - right);
      const middle = ratios.length / 2;
      const median =
        ratios.length % 2 === 1 ? ratios[Math.floor(middle)]! : (ratios[middle - 1]! + ratios[middle]!) / 2;
      const missedOn = copies.filter((_, index) => !objectiveHeld(name, rows[index]!)).map(([copy]) => copy);
      const summary: HeldOutSummary = {
        copies: rows.length,
        objectiveHeldOnEvery: missedOn.length === 0,
        missedOn,
        worstShareWithin10s: Math.min(...rows.map((row) => row.shareWithin10s)),
        worstWaitP99Ms: Math.max(...rows.map((row) => row.waitP99Ms)),
        medianCostRatio: median,
        worstCostRatio: ratios[ratios.length - 1]!,
      };
      heldOut[label][name] = summary;
      console.log(
        [
          name.padEnd(22),
          ...rows.map((row) =>
            `${row.costRatioToBound.toFixed(2)}x ${(row.waitP99Ms / 1000).toFixed(1)} s ${(row.shareWithin10s * 100).toFixed(2)} %`.padEnd(
              24,
            ),
          ),
          `worst ${(summary.worstShareWithin10s * 100).toFixed(2)} % within 10 s, cost median ${median.toFixed(2)}x worst ${summary.worstCostRatio.toFixed(2)}x, objective ${summary.objectiveHeldOnEvery ? 'held on every copy' : `MISSED on ${missedOn.join(', ')}`}`,
        ].join(' '),
      );
    }
  }
}

// Forecaster: one-step-ahead hourly counts against the same slot yesterday.
const hourly = countPerPeriod(full.arrivalMs);
const forecastAll = evaluateForecaster(hourly, { naiveLag: 24, confidence: 0.9 });
const forecastWeekTwo = evaluateForecaster(hourly, { naiveLag: 24, confidence: 0.9, scoreFrom: 168 });
console.log('\n== forecaster (hourly, one step ahead, 90 % intervals)');
for (const [label, accuracy] of [
  ['from day 2', forecastAll],
  ['week 2', forecastWeekTwo],
] as const)
  console.log(
    `${label}: MASE ${accuracy.mase.toFixed(3)} vs same slot yesterday (MAE ${accuracy.meanAbsoluteError.toFixed(1)} vs ${accuracy.naiveMeanAbsoluteError.toFixed(1)}), coverage ${(accuracy.coverage * 100).toFixed(1)} % over ${accuracy.scored} h`,
  );
for (const [label, accuracy] of [
  ['forecaster from day 2', forecastAll],
  ['forecaster week 2', forecastWeekTwo],
] as const) {
  checks.push({
    name: `${label} MASE`,
    pass: accuracy.mase < 1,
    detail: `${accuracy.mase.toFixed(3)} (target < 1)`,
  });
  checks.push({
    name: `${label} coverage`,
    pass: accuracy.coverage >= 0.85 && accuracy.coverage <= 0.95,
    detail: `${(accuracy.coverage * 100).toFixed(1)} % (target 85-95 %)`,
  });
}

// Budget: the allocation optimiser over two platforms must never spend past its budget.
const budgetPerHour = 60;
const budgetTrace = sliceTrace(full, { speedup: 10 });
const budgetRun = simulate({
  trace: budgetTrace,
  policy: createAllocationOptimizer({
    policy: createPredictivePolicy({ objective: { waitMs: 10_000, quantile: 0.99 } }),
    maxBudgetPerHour: budgetPerHour,
  }),
  targets: [
    { id: 'runpod-a100', usdPerSecond: 0.00076, coldStart: measured, maxWorkers: 50 },
    { id: 'modal-a100', usdPerSecond: 0.000694, coldStart: 30_000, maxWorkers: 50 },
  ],
});
console.log(
  `\n== budget ${budgetPerHour} USD/h, 10x: most spent in an hour ${budgetRun.maxHourlyCostUsd.toFixed(2)} USD, p99 wait ${(budgetRun.waitP99Ms / 1000).toFixed(1)} s`,
);
checks.push({
  name: 'budget per hour never exceeded',
  pass: budgetRun.maxHourlyCostUsd <= budgetPerHour + 1e-9,
  detail: `max ${budgetRun.maxHourlyCostUsd.toFixed(2)} USD/h vs budget ${budgetPerHour}`,
});

// Speed: a million jobs (the trace tiled, ten times compressed), against a baseline policy
// and a predictive one in the same run.
const tiles = Math.ceil(1_000_000 / full.count);
const compressed = sliceTrace(full, { speedup: 10 });
const span = compressed.arrivalMs[compressed.count - 1]! - compressed.arrivalMs[0]! + 60_000;
const arrivals = new Float64Array(tiles * compressed.count);
const executions = new Float64Array(tiles * compressed.count);
for (let tile = 0; tile < tiles; tile++)
  for (let index = 0; index < compressed.count; index++) {
    arrivals[tile * compressed.count + index] = compressed.arrivalMs[index]! + tile * span;
    executions[tile * compressed.count + index] = compressed.executionMs[index]!;
  }
const million = buildTrace(arrivals.subarray(0, 1_000_000), executions.subarray(0, 1_000_000));
const speed: Record<string, { seconds: number; cpuSeconds: number; jobsPerSecond: number }> = {};
for (const [label, policy] of [
  ['keep-alive 60s', createKeepAlivePolicy(60)],
  ['predictive p99', createPredictivePolicy({ objective: { waitMs: 10_000, quantile: 0.99 } })],
] as const) {
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const result = simulate({
    trace: million,
    policy,
    targets: [{ id: 'pool', usdPerSecond: 0.00076, coldStart: measured, maxWorkers: 500 }],
  });
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  // CPU time as well as wall time: the machines are shared, and wall time counts the neighbours.
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  speed[label] = { seconds, cpuSeconds, jobsPerSecond: result.jobs / seconds };
  console.log(
    `== speed ${label}: ${result.jobs} jobs in ${seconds.toFixed(2)} s wall, ${cpuSeconds.toFixed(2)} s CPU (${Math.round(result.jobs / seconds)} jobs/s)`,
  );
  checks.push({
    name: `speed ${label}`,
    pass: Math.min(seconds, cpuSeconds) <= 10,
    detail: `${result.jobs} jobs in ${seconds.toFixed(2)} s wall / ${cpuSeconds.toFixed(2)} s CPU (target 1M in <= 10 s)`,
  });
}

console.log('\n== checks');
for (const check of checks) console.log(`${check.pass ? 'PASS' : 'FAIL'}  ${check.name}: ${check.detail}`);
const summary = Object.fromEntries(
  Object.entries(scenarios).map(([label, rows]) => [
    label,
    Object.fromEntries(
      rows.map((row) => [
        row.name,
        {
          costRatioToBound: Number(row.costRatioToBound.toFixed(3)),
          waitP50Ms: Math.round(row.waitP50Ms),
          waitP95Ms: Math.round(row.waitP95Ms),
          waitP99Ms: Math.round(row.waitP99Ms),
          shareWithin10s: Number(row.shareWithin10s.toFixed(4)),
          coldStarts: row.coldStarts,
        },
      ]),
    ),
  ]),
);
console.log(
  `RESULT ${JSON.stringify({
    passed: checks.filter((check) => check.pass).length,
    failed: checks.filter((check) => !check.pass).map((check) => check.name),
    forecaster: {
      fromDay2: { mase: forecastAll.mase, coverage90: forecastAll.coverage },
      week2: { mase: forecastWeekTwo.mase, coverage90: forecastWeekTwo.coverage },
    },
    budget: { perHour: budgetPerHour, maxHourlyCostUsd: budgetRun.maxHourlyCostUsd },
    speed,
    scenarios: summary,
    heldOut: Object.fromEntries(
      Object.entries(heldOut).map(([label, policies]) => [
        label,
        Object.fromEntries(
          Object.entries(policies).map(([name, summary]) => [
            name,
            {
              ...summary,
              worstShareWithin10s: Number(summary.worstShareWithin10s.toFixed(4)),
              worstWaitP99Ms: Math.round(summary.worstWaitP99Ms),
              medianCostRatio: Number(summary.medianCostRatio.toFixed(3)),
              worstCostRatio: Number(summary.worstCostRatio.toFixed(3)),
            },
          ]),
        ),
      ]),
    ),
    heldOutCopies: roundedRows(heldOutRows, ['costRatioToBound', 'waitP99Ms', 'shareWithin10s']),
    tuningCopies: roundedRows(tuningCopies, [
      'costRatioToBound',
      'waitP50Ms',
      'waitP95Ms',
      'waitP99Ms',
      'shareWithin10s',
    ]),
  })}`,
);
