// Model download benchmark: a 1 GiB object on a local s3rver, fetched (a) straight and (b)
// through a proxy capping each connection at 50 MB/s, each time by our loader (parallel
// ranged GETs into the disk cache), by one plain GET stream, and by `aws s3 cp`.
//
//   cd /work/main && flock /tmp/bench.lock node --import tsx bench/model-download/main.ts
//
// Each contender runs BENCH_ROUNDS times, interleaved in a rotated order, and the median
// counts. MB is 10^6 bytes throughout (the object is 1024 MiB = 1073.7 MB; the cap is
// 50 x 10^6 bytes/s). CPU used by s3rver and the proxy (their own processes) is printed too:
// on a small machine they compete with the client for the same cores.
//
// Environment: BENCH_SIZE_MIB (default 1024), BENCH_CAP_MBPS (default 50), BENCH_ROUNDS (default 3).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createDiskModelCache, createModelLoader, type ModelRef } from '@comfy-serverless/core';
// The s3 package is read from source: the workspace's tsconfig paths do not map
// @comfy-serverless/s3 yet, and s3rver and the SDK are dependencies of that package only.
import { createS3ModelSource } from '../../packages/s3/src/index';
import { localS3Client, putObjectFromFile } from '../../packages/s3/src/testing/s3-transfer-helpers';

const run = promisify(execFile);
const MIB = 1024 * 1024;
const sizeMib = Number(process.env.BENCH_SIZE_MIB ?? 1024);
const capMBps = Number(process.env.BENCH_CAP_MBPS ?? 50);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const SIZE = sizeMib * MIB;
const BUCKET = 'bench';
const KEY = 'models/checkpoints/bench-1gib.safetensors';

const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);
const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

async function findAws(): Promise<{ path: string; version: string; debian: boolean } | undefined> {
  // Debian's awscli installs /usr/bin/aws; another, older `aws` (pip, pyenv) may come first on PATH.
  const candidates = ['/usr/bin/aws', 'aws'];
  for (const path of candidates) {
    if (path.startsWith('/') && !existsSync(path)) continue;
    try {
      const { stdout, stderr } = await run(path, ['--version'], { timeout: 30_000 });
      return { path, version: (stdout || stderr).trim(), debian: path === '/usr/bin/aws' };
    } catch {
      // not this one
    }
  }
  return undefined;
}

/** Starts one of the helper servers in its own process (so it does not share our event loop) and waits for its port. */
async function startProcess(script: string, args: string[]): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', new URL(script, import.meta.url).pathname, ...args],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise<string>((resolve, reject) => {
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /PORT (\d+)/.exec(output);
      if (match?.[1] !== undefined) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code} before listening`)));
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

/** CPU time (user + system, ms) a helper process has used so far: s3rver and the proxy share the machine with the clients. */
function cpuMsOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1000;
  } catch {
    return 0; // not Linux
  }
}
const CLOCK_TICKS = 100;

/** A plan where every model is already in the cache (the router's common case): ms per model. */
async function timeCacheHitPlan(
  work: string,
  endpoint: string,
  credentials: { accessKeyId: string; secretAccessKey: string },
): Promise<{ msPerModel: number; models: number }> {
  const modelsDir = join(work, 'models-warm');
  const present: ModelRef[] = [];
  await mkdir(join(modelsDir, 'loras'), { recursive: true });
  for (let index = 0; index < 100; index++) {
    const name = `small-${index}.safetensors`;
    await writeFile(join(modelsDir, 'loras', name), 'x');
    present.push({ folder: 'loras', name, sizeBytes: 1 });
  }
  const warmLoader = createModelLoader({
    source: createS3ModelSource({ bucket: BUCKET, endpoint, credentials }),
    cache: createDiskModelCache({ dir: modelsDir, maxBytes: Number.POSITIVE_INFINITY }),
  });
  await warmLoader.plan(present); // the first call scans the directory
  const planRounds = 200;
  const planMs = await timeIt(async () => {
    for (let index = 0; index < planRounds; index++) {
      const hitPlan = await warmLoader.plan(present);
      if (hitPlan.items.some((item) => item.action !== 'cache_hit'))
        throw new Error('expected cache hits only');
    }
  });
  await rm(modelsDir, { recursive: true, force: true });
  return { msPerModel: round(planMs / planRounds / present.length, 5), models: present.length };
}

async function timeIt(task: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await task();
  return performance.now() - started;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'bench-model-download-'));
  const free = await statfs(work);
  const freeBytes = free.bavail * free.bsize;
  if (freeBytes < 4 * SIZE) {
    console.log(
      `Not enough free disk in ${work}: ${round(freeBytes / 2 ** 30)} GiB free, ${round((4 * SIZE) / 2 ** 30)} GiB needed.`,
    );
    await rm(work, { recursive: true, force: true });
    process.exitCode = 1;
    return;
  }
  // The figures are wall times on a shared machine: say how busy it was.
  const loadBefore = loadavg()[0] ?? 0;
  console.log(`Machine: ${cpus().length} CPUs, load average ${round(loadBefore)} at start.`);
  console.log(
    `Work directory ${work} (${round(freeBytes / 2 ** 30, 1)} GiB free); object ${sizeMib} MiB; cap ${capMBps} MB/s per connection.`,
  );

  await mkdir(join(work, 's3rver'));
  const server = await startProcess('./s3rver-process.ts', [join(work, 's3rver'), BUCKET]);
  const proxy = await startProcess('./proxy-process.ts', [server.url, String(capMBps)]);
  const client = localS3Client(server.url);
  const aws = await findAws();
  const figures: Record<string, Record<string, number | null>> = {};
  const cpuFigures: Record<string, unknown> = {};
  let peakRssMiB = 0;
  try {
    // The object: random bytes, written in 8 MiB blocks so memory stays small here too.
    const sourceFile = join(work, 'object.bin');
    const out = createWriteStream(sourceFile);
    for (let written = 0; written < SIZE; written += 8 * MIB) {
      if (!out.write(randomBytes(Math.min(8 * MIB, SIZE - written))))
        await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    }
    await new Promise<void>((resolve, reject) =>
      out.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
    const uploadMs = await timeIt(() => putObjectFromFile(client, BUCKET, KEY, sourceFile));
    await rm(sourceFile);
    console.log(`Uploaded the object to s3rver in ${round(uploadMs / 1000)} s.`);

    if (aws === undefined) {
      console.log(
        "aws s3 cp: not run. Debian's awscli is absent (apt-get install -y awscli) and no other `aws` is on PATH.",
      );
    } else {
      console.log(
        `aws s3 cp: ${aws.path} (${aws.version})${aws.debian ? " - Debian's awscli" : " - Debian's awscli is absent; this is another aws"}.`,
      );
    }

    const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
    const awsEnv = {
      ...process.env,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_PAGER: '',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    };
    for (const [mode, endpoint] of [
      ['straight', server.url],
      ['throttled', proxy.url],
    ] as const) {
      // Every contender does the same: the whole object from the server into a new file on
      // the same disk, which is then deleted. The loader does all it promises (HEAD, ranged
      // GETs pinned with If-Match, a hidden temporary file, a flush to disk, the rename);
      // `loaderNotDurable` skips only the flush. The plain GET and aws s3 cp write the file
      // without flushing it.
      // The loader and the plain GET each run in a fresh process (contender-process.ts),
      // timed there around the download only, as aws s3 cp runs in its own.
      const inProcess = (contender: string, target: string) => async () => {
        const { stdout } = await run(
          process.execPath,
          [
            '--import',
            'tsx',
            new URL('./contender-process.ts', import.meta.url).pathname,
            contender,
            endpoint,
            BUCKET,
            KEY,
            join(work, target),
          ],
          { timeout: 600_000, maxBuffer: 16 * MIB },
        );
        const line = stdout.split('\n').find((text) => text.startsWith('RESULT '));
        if (line === undefined) throw new Error(`${contender} printed no RESULT: ${stdout}`);
        const result = JSON.parse(line.slice('RESULT '.length)) as {
          ms: number;
          cpuMs: number;
          peakRssMiB: number;
        };
        if (contender === 'loader') peakRssMiB = Math.max(peakRssMiB, result.peakRssMiB);
        return result;
      };
      const contenders: Record<string, () => Promise<{ ms: number; cpuMs: number } | undefined>> = {
        loader: inProcess('loader', `models-${mode}`),
        loaderNotDurable: inProcess('loaderNotDurable', `models-loose-${mode}`),
        plainGet: inProcess('plainGet', `plain-${mode}.bin`),
      };
      if (aws !== undefined) {
        // aws s3 cp with its defaults (8 MiB parts, 10 concurrent requests), start-up included.
        contenders.aws = async () => {
          const started = performance.now();
          await run(
            aws.path,
            [
              '--endpoint-url',
              endpoint,
              's3',
              'cp',
              `s3://${BUCKET}/${KEY}`,
              join(work, `aws-${mode}.bin`),
              '--only-show-errors',
            ],
            { env: awsEnv, timeout: 600_000 },
          );
          return { ms: performance.now() - started, cpuMs: Number.NaN };
        };
      }
      const names = Object.keys(contenders);
      const times: Record<string, number[]> = Object.fromEntries(names.map((name) => [name, []]));
      const cpu: Record<string, { server: number[]; proxy: number[]; self: number[] }> = Object.fromEntries(
        names.map((name) => [name, { server: [], proxy: [], self: [] }]),
      );
      for (let roundIndex = 0; roundIndex < rounds; roundIndex++) {
        // Interleaved, and in a rotated order each round, so that no contender always runs
        // right after another (and its disk write-back) or always first.
        const order = names.map((_, index) => names[(index + roundIndex) % names.length]!);
        const line: string[] = [];
        for (const name of order) {
          const serverCpu = cpuMsOf(server.child.pid);
          const proxyCpu = cpuMsOf(proxy.child.pid);
          const result = await contenders[name]!();
          const ms = result!.ms;
          cpu[name]!.server.push(cpuMsOf(server.child.pid) - serverCpu);
          cpu[name]!.proxy.push(cpuMsOf(proxy.child.pid) - proxyCpu);
          cpu[name]!.self.push(result!.cpuMs);
          times[name]!.push(ms);
          line.push(`${name} ${Math.round(ms)} ms`);
          // Each run leaves its file behind; remove it before the next contender starts.
          for (const leftover of [
            `models-${mode}`,
            `models-loose-${mode}`,
            `plain-${mode}.bin`,
            `aws-${mode}.bin`,
          ]) {
            await rm(join(work, leftover), { recursive: true, force: true });
          }
        }
        console.log(`${mode.padEnd(9)} round ${roundIndex + 1}/${rounds}: ${line.join(', ')}`);
      }
      if (mode === 'straight') figures.cacheHitPlan = await timeCacheHitPlan(work, server.url, credentials);
      const row: Record<string, number | null> = {};
      for (const name of ['loader', 'loaderNotDurable', 'plainGet', 'aws']) {
        const list = times[name];
        row[`${name}MBps`] = list === undefined ? null : round(mbps(SIZE, median(list)));
        row[`${name}Ms`] = list === undefined ? null : Math.round(median(list));
      }
      figures[mode] = row;
      cpuFigures[mode] = Object.fromEntries(
        names.map((name) => [
          name,
          {
            serverCpuMs: Math.round(median(cpu[name]!.server)),
            proxyCpuMs: mode === 'straight' ? null : Math.round(median(cpu[name]!.proxy)),
            ...(name === 'aws' ? {} : { clientCpuMs: Math.round(median(cpu[name]!.self)) }),
          },
        ]),
      );
      console.log(
        `${mode.padEnd(9)}  medians of ${rounds}: loader ${row.loaderMBps} MB/s (${row.loaderMs} ms; ${row.loaderNotDurableMBps} MB/s with durable: false)   plain GET ${row.plainGetMBps} MB/s (${row.plainGetMs} ms)   aws s3 cp ${row.awsMBps === null ? 'n/a' : `${row.awsMBps} MB/s (${row.awsMs} ms)`}`,
      );
      console.log(`${mode.padEnd(9)}  CPU ms per run (medians): ${JSON.stringify(cpuFigures[mode])}`);
    }
  } finally {
    client.destroy();
    await stopProcess(proxy.child);
    await stopProcess(server.child);
    await rm(work, { recursive: true, force: true });
  }

  const straight = figures.straight!;
  const throttled = figures.throttled!;
  const ceiling = Math.min(10 * capMBps, straight.plainGetMBps!);
  const ratios = {
    straightVsPlainGet: round(straight.loaderMBps! / straight.plainGetMBps!),
    straightNotDurableVsPlainGet: round(straight.loaderNotDurableMBps! / straight.plainGetMBps!),
    straightVsAws: straight.awsMBps === null ? null : round(straight.loaderMBps! / straight.awsMBps!),
    throttledVsCeiling: round(throttled.loaderMBps! / ceiling),
    throttledVsPlainGet: round(throttled.loaderMBps! / throttled.plainGetMBps!),
    throttledVsAws: throttled.awsMBps === null ? null : round(throttled.loaderMBps! / throttled.awsMBps!),
  };
  const targets = {
    straightVsPlainGet: ratios.straightVsPlainGet >= 0.8,
    straightVsAws: ratios.straightVsAws === null ? null : ratios.straightVsAws >= 1.5,
    throttledVsCeiling: ratios.throttledVsCeiling >= 0.8,
    cacheHitPlanUnder1msPerModel: (figures.cacheHitPlan?.msPerModel ?? 1) < 1,
  };
  console.log(
    `Ratios: ${JSON.stringify(ratios)} (throttled ceiling = min(10 x ${capMBps}, straight plain GET) = ${round(ceiling)} MB/s)`,
  );
  console.log(
    `Targets met: ${JSON.stringify(targets)}; cache-hit plan ${figures.cacheHitPlan?.msPerModel} ms per model; peak RSS while loading ${Math.round(peakRssMiB)} MiB.`,
  );
  console.log(
    `RESULT ${JSON.stringify({
      bench: 'model-download',
      sizeMiB: sizeMib,
      capMBpsPerConnection: capMBps,
      aws: aws === undefined ? null : { path: aws.path, version: aws.version, debian: aws.debian },
      ...figures,
      cpuMsPerRun: cpuFigures,
      ratios,
      targets,
      peakRssMiB: Math.round(peakRssMiB),
      cpus: cpus().length,
      loadAverage: { start: round(loadBefore), end: round(loadavg()[0] ?? 0) },
    })}`,
  );
}

await main();
