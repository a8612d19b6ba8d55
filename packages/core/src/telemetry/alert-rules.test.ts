import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createPrometheusMetrics } from './prometheus-metrics';

const deployDirectory = resolve(dirname(fileURLToPath(import.meta.url)), '../../../../deploy/prometheus');
const rulesPath = resolve(deployDirectory, 'alerts.yml');

interface Rule {
  alert: string;
  expr: string;
  for: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** Reads alerts.yml's simple structure: groups of rules with alert, expr, for, labels and annotations. */
function readRules(text: string): Rule[] {
  const rules: Rule[] = [];
  let current: Rule | undefined;
  let section: 'labels' | 'annotations' | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s+$/, '');
    if (line.trim() === '' || line.trim().startsWith('#')) continue;
    const alert = /^\s*- alert:\s*(.+)$/.exec(line);
    if (alert) {
      current = { alert: alert[1]!.trim(), expr: '', for: '', labels: {}, annotations: {} };
      rules.push(current);
      section = undefined;
      continue;
    }
    if (current === undefined) continue;
    const field = /^\s{8}(expr|for|labels|annotations):\s*(.*)$/.exec(line);
    if (field) {
      const [, key, value] = field;
      if (key === 'labels' || key === 'annotations') section = key;
      else {
        current[key as 'expr' | 'for'] = value!.trim();
        section = undefined;
      }
      continue;
    }
    const entry = /^\s{10}([\w]+):\s*(.*)$/.exec(line);
    if (entry && section !== undefined) {
      current[section][entry[1]!] = entry[2]!.trim().replace(/^"(.*)"$/, '$1');
    }
  }
  return rules;
}

const PROMQL_WORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
]);

/** The metric names an expression reads, and the label names it groups or matches by. */
function namesIn(expr: string): { metrics: Set<string>; labels: Set<string> } {
  const labels = new Set<string>();
  for (const match of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    for (const label of match[1]!.split(',')) labels.add(label.trim());
  }
  for (const match of expr.matchAll(/\{([^}]*)\}/g)) {
    for (const matcher of match[1]!.split(',')) labels.add(matcher.split(/[=!~]/)[0]!.trim());
  }
  const stripped = expr
    .replace(/\b(?:by|without)\s*\([^)]*\)/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ');
  const metrics = new Set<string>();
  for (const match of stripped.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?/g)) {
    if (match[2] !== undefined || PROMQL_WORDS.has(match[1]!)) continue;
    metrics.add(match[1]!);
  }
  return { metrics, labels };
}

const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
const promtoolMissing =
  promtool.error !== undefined || promtool.status !== 0
    ? 'promtool is not on PATH (install Debian\'s "prometheus" package to run this check)'
    : undefined;

describe('deploy/prometheus/alerts.yml', () => {
  const rules = readRules(readFileSync(rulesPath, 'utf8'));

  it('has the five rules of the issue, with their thresholds and durations', () => {
    const byName = Object.fromEntries(rules.map((rule) => [rule.alert, rule]));
    expect(Object.keys(byName).sort()).toEqual([
      'ComfyExecutionSlow',
      'ComfyGpuUnderused',
      'ComfyJobErrorRateHigh',
      'ComfyModelCacheHitRateLow',
      'ComfyQueueWaitLong',
    ]);
    expect(byName.ComfyJobErrorRateHigh).toMatchObject({ for: '2m' });
    expect(byName.ComfyJobErrorRateHigh!.expr).toMatch(/> 0\.05$/);
    expect(byName.ComfyExecutionSlow).toMatchObject({ for: '5m' });
    expect(byName.ComfyExecutionSlow!.expr).toMatch(/> 300$/);
    expect(byName.ComfyGpuUnderused).toMatchObject({ for: '10m' });
    expect(byName.ComfyGpuUnderused!.expr).toMatch(/< 0\.3$/);
    expect(byName.ComfyQueueWaitLong).toMatchObject({ for: '5m' });
    expect(byName.ComfyQueueWaitLong!.expr).toMatch(/> 600$/);
    expect(byName.ComfyModelCacheHitRateLow).toMatchObject({ for: '10m' });
    expect(byName.ComfyModelCacheHitRateLow!.expr).toMatch(/< 0\.7$/);
    for (const rule of rules) {
      expect(['page', 'warning']).toContain(rule.labels.severity);
      expect(rule.annotations.description).toContain('docs/operations.md#alerts');
    }
  });

  it('reads only metrics and labels that createPrometheusMetrics registers', async () => {
    const metrics = createPrometheusMetrics({ client });
    const registered = new Map(
      (await metrics.registry.getMetricsAsJSON()).map((metric) => [metric.name, String(metric.type)]),
    );
    const labelNames = new Map<string, string[]>();
    for (const metric of metrics.registry.getMetricsAsArray()) {
      labelNames.set(
        metric.name,
        ((metric as unknown as { labelNames?: string[] }).labelNames ?? []).slice(),
      );
    }
    for (const rule of rules) {
      const { metrics: used, labels } = namesIn(rule.expr);
      expect(used.size, rule.alert).toBeGreaterThan(0);
      for (const name of used) {
        const base = name.replace(/_(sum|count|bucket)$/, '');
        const type = registered.get(name) ?? registered.get(base);
        expect(type, `${rule.alert} reads ${name}, which is not registered`).toBeDefined();
        if (base !== name) expect(type, `${name} is a histogram series`).toBe('histogram');
        for (const label of labels) {
          expect(
            labelNames.get(base) ?? labelNames.get(name),
            `${rule.alert}: ${name} has no label ${label}`,
          ).toContain(label);
        }
      }
    }
    // The outcomes the error-rate rule matches are the ones the counter uses.
    const errorRule = rules.find((rule) => rule.alert === 'ComfyJobErrorRateHigh')!;
    expect(errorRule.expr).toContain('outcome=~"failed|timed_out"');
  });

  it.skipIf(promtoolMissing !== undefined)(
    `passes promtool check rules and the rule unit tests${promtoolMissing ? ` (skipped: ${promtoolMissing})` : ''}`,
    () => {
      const check = spawnSync('promtool', ['check', 'rules', rulesPath], { encoding: 'utf8' });
      expect(check.status, check.stdout + check.stderr).toBe(0);
      expect(check.stdout).toContain('SUCCESS: 5 rules found');
      const unit = spawnSync('promtool', ['test', 'rules', resolve(deployDirectory, 'alerts.test.yml')], {
        encoding: 'utf8',
        cwd: deployDirectory,
      });
      expect(unit.status, unit.stdout + unit.stderr).toBe(0);
      expect(unit.stdout).toContain('SUCCESS');
    },
  );
});
