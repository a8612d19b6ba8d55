import { runModelsSyncCli } from '@comfy-serverless/s3';
import type { CliCommand } from './cli-io';

/**
 * `comfy-serverless models sync ...`: pre-warms a model volume with what a workflow needs,
 * from S3 (see `@comfy-serverless/s3`), with a progress bar on the error stream.
 */
export const modelsCommand: CliCommand = async (argv, io) => {
  if (argv[0] !== 'sync') {
    io.stderr(
      'Usage: comfy-serverless models sync --workflow wf.json --source s3://bucket/prefix --dir ./models [--endpoint-url URL]\n',
    );
    return 2;
  }
  // The CLI's streams are functions; the progress bar also wants to know if it may redraw.
  const stream = (write: (text: string) => void, terminal: NodeJS.WriteStream) => ({
    write: (text: string) => write(text),
    isTTY: terminal.isTTY === true,
    columns: terminal.columns,
  });
  return runModelsSyncCli(argv.slice(1), {
    stdout: stream(io.stdout, process.stdout),
    stderr: stream(io.stderr, process.stderr),
    cwd: io.cwd,
  });
};
