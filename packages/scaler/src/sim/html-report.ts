import type { ComparisonRow } from './compare';
import type { SimulationTimeline } from './simulator';

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);
}

function lineChart(
  title: string,
  unit: string,
  series: { name: string; values: number[] }[],
  startMs: number,
  bucketMs: number,
): string {
  const width = 900;
  const height = 220;
  const left = 60;
  const bottom = 30;
  const plotWidth = width - left - 10;
  const plotHeight = height - bottom - 20;
  const length = Math.max(1, ...series.map((entry) => entry.values.length));
  let maximum = 0;
  for (const entry of series)
    for (const value of entry.values) if (Number.isFinite(value)) maximum = Math.max(maximum, value);
  maximum = maximum > 0 ? maximum : 1;
  const x = (index: number) => left + (index / Math.max(1, length - 1)) * plotWidth;
  const y = (value: number) => 20 + plotHeight - (Math.min(value, maximum) / maximum) * plotHeight;
  const lines = series
    .map((entry, index) => {
      const points = entry.values
        .map((value, position) => `${x(position).toFixed(1)},${y(value).toFixed(1)}`)
        .join(' ');
      return `<polyline fill="none" stroke="${COLORS[index % COLORS.length]}" stroke-width="1.2" points="${points}"><title>${escapeHtml(entry.name)}</title></polyline>`;
    })
    .join('');
  const legend = series
    .map(
      (entry, index) =>
        `<tspan fill="${COLORS[index % COLORS.length]}" dx="${index === 0 ? 0 : 16}">■ ${escapeHtml(entry.name)}</tspan>`,
    )
    .join('');
  const first = new Date(startMs).toISOString().slice(0, 16).replace('T', ' ');
  const last = new Date(startMs + length * bucketMs).toISOString().slice(0, 16).replace('T', ' ');
  return `<figure><figcaption>${escapeHtml(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-label="${escapeHtml(title)}">
<line x1="${left}" y1="${20 + plotHeight}" x2="${width - 10}" y2="${20 + plotHeight}" stroke="#888"/><line x1="${left}" y1="20" x2="${left}" y2="${20 + plotHeight}" stroke="#888"/>
<text x="${left - 4}" y="24" font-size="11" text-anchor="end">${maximum.toFixed(maximum < 10 ? 1 : 0)}${escapeHtml(unit)}</text><text x="${left - 4}" y="${20 + plotHeight}" font-size="11" text-anchor="end">0</text>
<text x="${left}" y="${height - 8}" font-size="11">${first} UTC</text><text x="${width - 10}" y="${height - 8}" font-size="11" text-anchor="end">${last} UTC</text>
${lines}<text x="${left + 8}" y="14" font-size="11">${legend}</text></svg></figure>`;
}

/** What the HTML report shows. */
export interface HtmlReportInput {
  title: string;
  /** Lines of text shown under the title (trace, cold start, objective). */
  notes?: string[];
  rows: ComparisonRow[];
  /** Timelines to chart, by run name (the first is drawn first). */
  timelines: { name: string; timeline: SimulationTimeline }[];
}

/**
 * A self-contained HTML report: the comparison table and inline SVG charts of arrivals,
 * workers and queue wait over time. No script and nothing loaded from elsewhere.
 */
export function renderHtmlReport(input: HtmlReportInput): string {
  const first = input.timelines[0];
  const table = `<table><thead><tr><th>policy</th><th>GPU-s</th><th>USD</th><th>× bound</th><th>wait p50</th><th>p95</th><th>p99</th><th>≤ 10 s</th><th>cold starts</th></tr></thead><tbody>${input.rows
    .map(
      (row) =>
        `<tr class="${row.kind}"><td>${escapeHtml(row.name)}</td><td>${row.gpuSeconds.toFixed(0)}</td><td>${row.costUsd.toFixed(2)}</td><td>${row.costRatioToBound.toFixed(2)}</td><td>${(row.waitP50Ms / 1000).toFixed(1)} s</td><td>${(row.waitP95Ms / 1000).toFixed(1)} s</td><td>${(row.waitP99Ms / 1000).toFixed(1)} s</td><td>${(row.shareWithin10s * 100).toFixed(1)} %</td><td>${row.coldStarts}</td></tr>`,
    )
    .join('')}</tbody></table>`;
  const charts =
    first === undefined
      ? ''
      : [
          lineChart(
            'Arrivals per interval',
            '',
            [{ name: 'arrivals', values: first.timeline.arrivals }],
            first.timeline.startMs,
            first.timeline.bucketMs,
          ),
          lineChart(
            'Workers up (mean per interval)',
            '',
            [
              { name: `busy (${first.name})`, values: first.timeline.busy },
              ...input.timelines.map((entry) => ({ name: entry.name, values: entry.timeline.workers })),
            ],
            first.timeline.startMs,
            first.timeline.bucketMs,
          ),
          lineChart(
            'Queue wait p95 (s)',
            ' s',
            input.timelines.map((entry) => ({
              name: entry.name,
              values: entry.timeline.waitP95Ms.map((ms) => ms / 1000),
            })),
            first.timeline.startMs,
            first.timeline.bucketMs,
          ),
        ].join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(input.title)}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:960px}table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child{text-align:left}tr.policy{font-weight:600}tr.bound{color:#555}figure{margin:1.5em 0}figcaption{font-weight:600}</style>
</head><body><h1>${escapeHtml(input.title)}</h1>${(input.notes ?? []).map((note) => `<p>${escapeHtml(note)}</p>`).join('')}
${table}
${charts}
</body></html>
`;
}
