import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type CliIo, runCli } from './cli';

function memoryIo(
  files: Record<string, string>,
  cwd = '/work',
): CliIo & { out: string; err: string; written: Record<string, string> } {
  const io = {
    out: '',
    err: '',
    written: {} as Record<string, string>,
    cwd,
    stdout: (text: string) => {
      io.out += text;
    },
    stderr: (text: string) => {
      io.err += text;
    },
    readFile: async (path: string) => {
      const text = files[path];
      if (text === undefined) throw new Error(`no file ${path}`);
      return text;
    },
    writeFile: async (path: string, text: string) => {
      io.written[path] = text;
    },
  };
  return io;
}

const rows = ['gmt_create,exec_time_seconds,model'];
for (let index = 0; index < 60; index++) {
  const second = index * 47;
  const time = new Date(Date.UTC(2024, 10, 15, 10, 0, 0) + second * 1000)
    .toISOString()
    .replace('T', ' ')
    .slice(0, 19);
  rows.push(`${time},${10 + (index % 7)},m${index % 2}`);
}
const trace = `${rows.join('\n')}\n`;

describe('comfy-serverless simulate', () => {
  it('prints one JSON object with the policy, every baseline and the bound', async () => {
    const io = memoryIo({ '/work/trace.csv': trace });
    const code = await runCli(
      [
        'simulate',
        '--trace',
        'trace.csv',
        '--policy',
        'predictive',
        '--slo-wait-ms',
        '5000',
        '--slo-share',
        '0.9',
        '--json',
      ],
      io,
    );
    expect(code).toBe(0);
    const output = JSON.parse(io.out) as {
      results: Record<string, Record<string, number>>;
      objective: unknown;
    };
    expect(output.objective).toEqual({ waitMs: 5000, share: 0.9 });
    expect(Object.keys(output.results)).toEqual(
      expect.arrayContaining([
        'predictive',
        'clairvoyant bound',
        'knative',
        'runpod QUEUE_DELAY',
        'keep-alive 60s',
      ]),
    );
    for (const entry of Object.values(output.results))
      for (const field of [
        'gpuSeconds',
        'costUsd',
        'boundGpuSeconds',
        'costRatioToBound',
        'waitP50Ms',
        'waitP95Ms',
        'waitP99Ms',
        'shareWithin10s',
        'coldStarts',
      ])
        expect(typeof entry[field]).toBe('number');
    expect(output.results.predictive!.gpuSeconds).toBeGreaterThan(0);
  });

  it('prints a table with a progress bar and writes a self-contained HTML report', async () => {
    const io = memoryIo({
      '/work/trace.csv': trace,
      '/work/cold.csv': 'timestamp_anon,value\n1,20000\n2,30000\n',
    });
    const code = await runCli(
      [
        'simulate',
        '--trace',
        'trace.csv',
        '--policy',
        'reactive',
        '--cold-start-file',
        'cold.csv',
        '--speedup',
        '2',
        '--report',
        'out.html',
      ],
      io,
    );
    expect(code).toBe(0);
    expect(io.out).toMatch(/clairvoyant bound/);
    expect(io.err).toMatch(/100%/);
    const html = io.written['/work/out.html']!;
    expect(html).toMatch(/<svg/);
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
  });

  it('runs a policy from a module file', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'cli-policy-'));
    writeFileSync(
      join(directory, 'policy.mjs'),
      "export default ({ objective }) => ({ specificationVersion: 'v1', name: 'mine', decide: (s) => ({ targets: Object.fromEntries(s.targets.map((t) => [t.id, { minWorkers: 1 }])) }) });\n",
    );
    const io = memoryIo({ [join(directory, 'trace.csv')]: trace }, directory);
    const code = await runCli(['simulate', '--trace', 'trace.csv', '--policy', './policy.mjs', '--json'], io);
    expect(code).toBe(0);
    expect(Object.keys(JSON.parse(io.out).results)).toContain('mine');
  });

  it('refuses bad flags with a message naming them', async () => {
    const io = memoryIo({ '/work/trace.csv': trace });
    expect(
      await runCli(
        [
          'simulate',
          '--trace',
          'trace.csv',
          '--policy',
          'target',
          '--slo-share',
          '0.9',
          '--slo-quantile',
          '0.9',
        ],
        io,
      ),
    ).toBe(2);
    expect(io.err).toMatch(/--slo-quantile or --slo-share/);
    expect(await runCli(['simulate', '--trace', 'trace.csv', '--bogus', '1'], io)).toBe(2);
    expect(io.err).toMatch(/--bogus/);
    expect(await runCli(['nope'], io)).toBe(2);
    expect(io.err).toMatch(/Unknown command "nope"/);
  });
});
