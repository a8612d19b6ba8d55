// Runs one download of the benchmark in a fresh process, so that no contender inherits
// another's heap, sockets or warmed-up code, and prints `RESULT {"ms":...}`. The time
// covers the download only, not this process's start-up.
//
//   node --import tsx contender-process.ts <loader|loaderNotDurable|plainGet> <endpoint> <bucket> <key> <file or models dir>
import { createDiskModelCache, createModelLoader } from '@comfy-serverless/core';
import { createS3ModelSource } from '../../packages/s3/src/index';
import { getObjectToFile, localS3Client } from '../../packages/s3/src/testing/s3-transfer-helpers';

const [contender, endpoint, bucket, key, target] = process.argv.slice(2);
if (
  contender === undefined ||
  endpoint === undefined ||
  bucket === undefined ||
  key === undefined ||
  target === undefined
) {
  throw new Error('usage: contender-process.ts <contender> <endpoint> <bucket> <key> <target>');
}
const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

async function download(): Promise<void> {
  if (contender === 'plainGet') {
    const client = localS3Client(endpoint!);
    try {
      await getObjectToFile(client, bucket!, key!, target!);
    } finally {
      client.destroy();
    }
    return;
  }
  if (contender !== 'loader' && contender !== 'loaderNotDurable')
    throw new Error(`unknown contender ${contender}`);
  // `<prefix>/<folder>/<name>`, as the loader reads it.
  const [prefix, folder, ...name] = key!.split('/');
  const loader = createModelLoader({
    source: createS3ModelSource({
      bucket: bucket!,
      prefix: prefix!,
      endpoint: endpoint!,
      credentials,
      ...(contender === 'loaderNotDurable' ? { durable: false } : {}),
    }),
    cache: createDiskModelCache({ dir: target!, maxBytes: Number.POSITIVE_INFINITY }),
  });
  await loader.load(await loader.plan([{ folder: folder!, name: name.join('/') }]));
}

let peakRss = process.memoryUsage().rss;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 50);
const cpuBefore = process.cpuUsage();
const started = performance.now();
await download();
const ms = performance.now() - started;
const cpu = process.cpuUsage(cpuBefore);
clearInterval(sampler);
console.log(
  `RESULT ${JSON.stringify({ ms, cpuMs: (cpu.user + cpu.system) / 1000, peakRssMiB: Math.max(peakRss, process.memoryUsage().rss) / 2 ** 20 })}`,
);
