import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  analyzeWorkflow,
  ComfyServerlessError,
  createDiskModelCache,
  createModelLoader,
  InvalidArgumentError,
  type ModelRef,
  modelKey,
  parseWorkflow,
} from '@comfy-serverless/core';
import { createProgressBar, formatBytes, type ProgressStream } from './progress-bar';
import { createS3ModelSource } from './s3-model-source';

/** Where the command writes and what it may read; injectable for tests. */
export interface ModelsSyncIo {
  stdout: ProgressStream;
  /** Progress and errors go here. */
  stderr: ProgressStream;
  /** Environment for credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`). @default process.env */
  env?: Record<string, string | undefined>;
  /** Relative paths are resolved from here. @default process.cwd() */
  cwd?: string;
  /** An S3 client to use instead of one built from the options. */
  s3Client?: S3Client;
  /** Cancels the sync (Ctrl-C). */
  signal?: AbortSignal;
}

/** The usage text of `comfy-serverless models sync`. */
export const MODELS_SYNC_USAGE = `Usage: comfy-serverless models sync --workflow wf.json --source s3://bucket/prefix --dir ./models [options]

Downloads every model an API-format workflow needs from S3 into a ComfyUI models
directory (<dir>/<folder>/<name>), skipping those already there. Pre-warms a volume.

Options:
  --workflow <file>      API-format workflow JSON (ComfyUI: "Export (API)")
  --source <s3-url>      s3://bucket/prefix where models live as <prefix>/<folder>/<name>
  --dir <path>           ComfyUI models directory to fill
  --endpoint-url <url>   S3-compatible endpoint (MinIO, R2, a local server)
  --region <region>      AWS region (default: AWS_REGION, else the SDK's lookup)
  --max-gb <n>           Most the directory may hold; older files are evicted (default: no limit)
  --concurrency <n>      Parallel ranged requests per model (default 10)
  --part-size-mb <n>     Size of each ranged request in MiB (default 8)
  --dry-run              Show what would be downloaded, download nothing
  -h, --help             Show this text

Credentials come from the AWS SDK's default chain (environment, profile, instance role).`;

/** Splits `s3://bucket/some/prefix` into bucket and prefix. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (match === null || match[1] === undefined) {
    throw new InvalidArgumentError({
      argument: '--source',
      message: `--source must look like s3://bucket/prefix; got ${JSON.stringify(url)}.`,
    });
  }
  return { bucket: match[1], prefix: match[2] ?? '' };
}

function positiveNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) {
    throw new InvalidArgumentError({
      argument: flag,
      message: `${flag} must be a positive number; got ${JSON.stringify(value)}.`,
    });
  }
  return number;
}

/**
 * Runs `comfy-serverless models sync`: reads the workflow, finds its models with
 * `analyzeWorkflow`, and downloads those missing from `--dir` out of `--source`, with a
 * progress bar on stderr. Resolves to the process exit code (0 done, 1 failed, 2 usage).
 * `argv` is what follows `models sync` (a leading `models sync` is skipped too).
 *
 * @example
 * process.exitCode = await runModelsSyncCli(process.argv.slice(4), { stdout: process.stdout, stderr: process.stderr });
 */
export async function runModelsSyncCli(argv: string[], io: ModelsSyncIo): Promise<number> {
  const args = argv[0] === 'models' && argv[1] === 'sync' ? argv.slice(2) : argv;
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        workflow: { type: 'string' },
        source: { type: 'string' },
        dir: { type: 'string' },
        'endpoint-url': { type: 'string' },
        region: { type: 'string' },
        'max-gb': { type: 'string' },
        concurrency: { type: 'string' },
        'part-size-mb': { type: 'string' },
        'dry-run': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    io.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${MODELS_SYNC_USAGE}\n`);
    return 2;
  }
  if (values.help === true) {
    io.stdout.write(`${MODELS_SYNC_USAGE}\n`);
    return 0;
  }
  const missing = (['workflow', 'source', 'dir'] as const).filter((name) => typeof values[name] !== 'string');
  if (missing.length > 0) {
    io.stderr.write(`Missing ${missing.map((name) => `--${name}`).join(', ')}.\n\n${MODELS_SYNC_USAGE}\n`);
    return 2;
  }

  try {
    const cwd = io.cwd ?? process.cwd();
    const env = io.env ?? process.env;
    const { bucket, prefix } = parseS3Url(values.source as string);
    const maxGb = positiveNumber('--max-gb', values['max-gb'] as string | undefined);
    const concurrency = positiveNumber('--concurrency', values.concurrency as string | undefined);
    const partSizeMb = positiveNumber('--part-size-mb', values['part-size-mb'] as string | undefined);
    const workflowPath = resolve(cwd, values.workflow as string);
    const analysis = analyzeWorkflow(parseWorkflow(await readFile(workflowPath, 'utf8')));

    const placeable: ModelRef[] = [];
    for (const model of analysis.models) {
      if (model.folder === null) {
        io.stderr.write(
          `Skipping ${model.name} (node ${model.nodeId}, ${model.classType}): its folder is unknown.\n`,
        );
        continue;
      }
      placeable.push({ folder: model.folder, name: model.name });
    }
    const accessKeyId = env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
    const region = (values.region as string | undefined) ?? env.AWS_REGION;
    const source = createS3ModelSource({
      bucket,
      prefix,
      ...(io.s3Client === undefined ? {} : { client: io.s3Client }),
      ...(values['endpoint-url'] === undefined ? {} : { endpoint: values['endpoint-url'] as string }),
      ...(region === undefined ? {} : { region }),
      ...(accessKeyId !== undefined && secretAccessKey !== undefined
        ? {
            credentials: {
              accessKeyId,
              secretAccessKey,
              ...(env.AWS_SESSION_TOKEN === undefined ? {} : { sessionToken: env.AWS_SESSION_TOKEN }),
            },
          }
        : {}),
      ...(concurrency === undefined ? {} : { concurrency: Math.round(concurrency) }),
      ...(partSizeMb === undefined ? {} : { partSizeBytes: Math.round(partSizeMb * 1024 * 1024) }),
    });
    const cache = createDiskModelCache({
      dir: resolve(cwd, values.dir as string),
      maxBytes: maxGb === undefined ? Number.POSITIVE_INFINITY : maxGb * 1e9,
    });
    const loader = createModelLoader({ source, cache });
    const plan = await loader.plan(placeable);
    const toFetch = plan.items.filter((item) => item.action !== 'cache_hit');
    const totalBytes = toFetch.reduce((sum, item) => sum + (item.model.sizeBytes ?? 0), 0);
    io.stdout.write(
      `${plan.items.length} models in ${values.workflow as string}: ${plan.items.length - toFetch.length} present, ${toFetch.length} to download (${formatBytes(totalBytes)}).\n`,
    );
    for (const item of toFetch) {
      io.stdout.write(`  ${modelKey(item.model)}  ${formatBytes(item.model.sizeBytes ?? 0)}\n`);
    }
    if (values['dry-run'] === true || toFetch.length === 0) return 0;

    const bar = createProgressBar({ stream: io.stderr, totalBytes });
    const doneByModel = new Map<string, number>();
    let done = 0;
    const result = await loader.load(plan, {
      ...(io.signal === undefined ? {} : { signal: io.signal }),
      onProgress: (progress) => {
        const key = modelKey(progress.model);
        done += progress.bytesDone - (doneByModel.get(key) ?? 0);
        doneByModel.set(key, progress.bytesDone);
        bar.update(done, key);
      },
    });
    bar.update(totalBytes);
    bar.finish();
    const seconds = Math.max(0.001, result.totalMs / 1000);
    io.stdout.write(
      `Synced ${result.loaded.length} models: downloaded ${formatBytes(result.bytesDownloaded)} in ${seconds.toFixed(1)} s (${formatBytes(result.bytesDownloaded / seconds)}/s).\n`,
    );
    return 0;
  } catch (error) {
    const message =
      ComfyServerlessError.isInstance(error) || error instanceof Error ? error.message : String(error);
    io.stderr.write(`models sync failed: ${message}\n`);
    return 1;
  }
}
