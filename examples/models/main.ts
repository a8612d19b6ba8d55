// Models to the GPU: a workflow's models found, planned, downloaded from S3 in parallel
// ranged parts into a ComfyUI-layout disk cache, then served from the cache. With
// MODELS_S3_BUCKET set (and AWS credentials in the environment) it reads your bucket;
// otherwise an S3 mock on loopback from @comfy-serverless/s3/test (real HTTP, same
// answers and errors as S3's GetObject and HeadObject).
// Run: node --import tsx examples/models/main.ts
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  analyzeWorkflow,
  createDiskModelCache,
  createModelLoader,
  type ModelRef,
  parseWorkflow,
} from '@comfy-serverless/core';
import { sampleWorkflow } from '@comfy-serverless/core/test';
import { createS3ModelSource } from '@comfy-serverless/s3';
import { createS3Mock, startS3MockServer } from '@comfy-serverless/s3/test';

const bucket = process.env.MODELS_S3_BUCKET;
// The models the workflow loads from a folder ComfyUI knows (a cache places them there).
const models: Array<ModelRef & { folder: string }> = analyzeWorkflow(
  parseWorkflow(sampleWorkflow()),
).models.flatMap((model) => (model.folder === null ? [] : [{ folder: model.folder, name: model.name }]));

let server: Awaited<ReturnType<typeof startS3MockServer>> | undefined;
if (bucket === undefined) {
  const mock = createS3Mock();
  // A stand-in for each model the workflow names: 48 MiB of random bytes under <folder>/<name>.
  for (const model of models)
    mock.putObject('models', `${model.folder}/${model.name}`, randomBytes(48 * 2 ** 20));
  server = await startS3MockServer(mock);
  console.log(`Using an S3 MOCK at ${server.endpoint} (set MODELS_S3_BUCKET for a real bucket)`);
}

const dir = await mkdtemp(join(tmpdir(), 'comfy-models-'));
const loader = createModelLoader({
  source: createS3ModelSource(
    server === undefined
      ? { bucket: bucket! }
      : {
          bucket: 'models',
          endpoint: server.endpoint,
          region: 'us-east-1',
          forcePathStyle: true,
          credentials: { accessKeyId: 'MOCK', secretAccessKey: 'MOCK' },
        },
  ),
  cache: createDiskModelCache({ dir, maxBytes: 10 * 2 ** 30 }),
});

try {
  console.log(`The workflow needs ${models.map((model) => `${model.folder}/${model.name}`).join(', ')}`);
  const first = await loader.plan(models);
  for (const item of first.items)
    console.log(
      `plan: ${item.model.name}: ${item.action}, ~${Math.round(item.estimatedMs)} ms, ${item.streams} stream(s)`,
    );
  const loaded = await loader.load(first, {
    signal: AbortSignal.timeout(120_000),
    onProgress: ({ model, bytesDone, bytesTotal }) => {
      if (bytesDone === bytesTotal) console.log(`  ${model.name}: ${bytesTotal} bytes on disk`);
    },
  });
  console.log(
    `load: ${loaded.loaded.length} model(s), ${loaded.bytesDownloaded} bytes downloaded, ${loaded.cacheHits} cache hit(s), ${loaded.totalMs} ms`,
  );
  for (const model of models) {
    const file = join(dir, model.folder, model.name);
    console.log(`  ${file.slice(dir.length + 1)}: ${(await stat(file)).size} bytes`);
  }

  const again = await loader.plan(models);
  console.log(`plan again: ${again.items.map((item) => `${item.model.name}: ${item.action}`).join(', ')}`);
  const second = await loader.load(again);
  console.log(`load again: ${second.cacheHits} cache hit(s), ${second.bytesDownloaded} bytes downloaded`);
} finally {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
}
