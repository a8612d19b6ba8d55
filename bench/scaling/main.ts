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

interface Check {
  name: string;
  pass: boolean;
  detail: string;
}
const checks: Check[] = [];
const scenarios: Record<string, ComparisonRow[]> = {};

function runScenario(label: string, trace: Trace, coldStart: ColdStartModel): ComparisonRow[] {
  const started = performance.now();
  const policies = objectives.flatMap(({ label: objectiveLabel, objective }) =>
    Object.entries(factories).map(([name, factory]) => ({
      name: `${name} ${objectiveLabel}`,
      create: () => factory({ objective }),
    })),
  );
  const { rows } = runComparison({ trace, coldStart, policies });
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
// Held out: nothing is tuned on this trace; week 2 alone is also reported so that a
// reader can see the policies start cold on traffic they never saw.
runScenario('week 2 only, 1x, cold start 23 s', sliceTrace(full, { from: weekTwoStart }), 23_000);

// Generalisation (printed, not a target check): the same policies on copies of the trace
// that nothing can have been tuned to. "shifted+jittered": the two weeks rotated by 3.5 days
// (the replay starts mid-week, at another hour of the day; the arrivals before the cut move
// to the end) and every arrival moved by a uniform draw within +-30 s (bursts of jobs that
// arrived in the same second are broken up). "thinned": every job kept with probability
// 1/2 (half the traffic, the same daily shape). Seeded, so the report is deterministic.
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
const generalisation: Record<string, Record<string, ComparisonRow>> = {};
{
  const day = 86_400_000;
  const compared = [
    ...objectives.flatMap(({ label: objectiveLabel, objective }) =>
      Object.entries(factories).map(([name, factory]) => ({
        name: `${name} ${objectiveLabel}`,
        create: () => factory({ objective }),
      })),
    ),
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
      const { rows } = runComparison({ trace, coldStart: 23_000, policies: compared, baselines: false });
      const named = Object.fromEntries(rows.map((row) => [row.name, row]));
      generalisation[`${speedup}x ${variant}`] = named;
      return named;
    });
    console.log(
      `\n== generalisation, ${speedup}x, cold start 23 s (x bound, wait p50/p95/p99, share within 10 s; not a target check) (${((performance.now() - started) / 1000).toFixed(1)} s)`,
    );
    const width = 32;
    console.log(['policy'.padEnd(22), ...variants.map(([variant]) => variant.padEnd(width))].join(' '));
    for (const row of compared)
      console.log(
        [row.name.padEnd(22), ...byVariant.map((named) => format(named[row.name]).padEnd(width))].join(' '),
      );
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
    generalisation: Object.fromEntries(
      Object.entries(generalisation).map(([label, rows]) => [
        label,
        Object.fromEntries(
          Object.entries(rows).map(([name, row]) => [
            name,
            {
              costRatioToBound: Number(row.costRatioToBound.toFixed(3)),
              waitP50Ms: Math.round(row.waitP50Ms),
              waitP95Ms: Math.round(row.waitP95Ms),
              waitP99Ms: Math.round(row.waitP99Ms),
              shareWithin10s: Number(row.shareWithin10s.toFixed(4)),
            },
          ]),
        ),
      ]),
    ),
  })}`,
);
