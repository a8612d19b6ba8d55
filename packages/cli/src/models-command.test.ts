import { describe, expect, it } from 'vitest';
import { runCli } from './cli';
import type { CliIo } from './cli-io';

function captureIo(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    stdout: (text) => out.push(text),
    stderr: (text) => err.push(text),
    readFile: async () => '',
    writeFile: async () => {},
    cwd: process.cwd(),
  };
}

describe('comfy-serverless models', () => {
  it('is listed among the commands and refuses a missing subcommand with its usage', async () => {
    const io = captureIo();
    expect(await runCli(['models'], io)).toBe(2);
    expect(io.err.join('')).toMatch(/models sync --workflow/);
  });

  it('hands `models sync` to the S3 sync, which refuses a bad source before any download', async () => {
    const io = captureIo();
    const code = await runCli(
      ['models', 'sync', '--workflow', 'wf.json', '--source', 'not-s3', '--dir', 'models'],
      io,
    );
    expect(code).toBe(1);
    expect(io.err.join('')).toMatch(/--source must look like s3:\/\/bucket\/prefix/);
  });
});
