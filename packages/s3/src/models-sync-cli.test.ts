import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseS3Url, runModelsSyncCli } from './models-sync-cli';
import { createProgressBar } from './progress-bar';
import { type RunningS3rver, startS3rver } from './testing/s3rver-server';

const workflow = {
  '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd15/base.safetensors' } },
  '10': {
    class_type: 'LoraLoader',
    inputs: {
      lora_name: 'style.safetensors',
      strength_model: 1,
      strength_clip: 1,
      model: ['4', 0],
      clip: ['4', 1],
    },
  },
  '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a lighthouse', clip: ['10', 1] } },
  '5': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
  '3': {
    class_type: 'KSampler',
    inputs: {
      seed: 1,
      steps: 20,
      cfg: 7,
      sampler_name: 'euler',
      scheduler: 'normal',
      denoise: 1,
      model: ['10', 0],
      positive: ['6', 0],
      negative: ['6', 0],
      latent_image: ['5', 0],
    },
  },
  '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
  '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'out', images: ['8', 0] } },
};

function sink(isTTY = false) {
  const chunks: string[] = [];
  return {
    chunks,
    stream: { isTTY, write: (text: string) => chunks.push(text) },
    text: () => chunks.join(''),
  };
}

describe('runModelsSyncCli', () => {
  let server: RunningS3rver;
  let dir: string;
  const checkpoint = Buffer.alloc(3 * 1024 * 1024 + 5, 4);
  const lora = Buffer.alloc(200 * 1024, 5);
  const env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };

  beforeAll(async () => {
    server = await startS3rver(['models']);
    dir = await mkdtemp(join(tmpdir(), 'models-sync-'));
    await writeFile(join(dir, 'wf.json'), JSON.stringify(workflow));
    const client = new S3Client({
      region: 'us-east-1',
      endpoint: server.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
    await client.send(
      new PutObjectCommand({
        Bucket: 'models',
        Key: 'comfy/checkpoints/sd15/base.safetensors',
        Body: checkpoint,
      }),
    );
    await client.send(
      new PutObjectCommand({ Bucket: 'models', Key: 'comfy/loras/style.safetensors', Body: lora }),
    );
    client.destroy();
  });
  afterAll(async () => {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const argv = () => [
    'models',
    'sync',
    '--workflow',
    'wf.json',
    '--source',
    's3://models/comfy',
    '--dir',
    'models',
    '--endpoint-url',
    server.endpoint,
    '--part-size-mb',
    '1',
  ];

  it('pre-warms a models directory with what a workflow needs, with a progress bar', async () => {
    const stdout = sink();
    const stderr = sink();
    const code = await runModelsSyncCli(argv(), {
      stdout: stdout.stream,
      stderr: stderr.stream,
      env,
      cwd: dir,
    });
    expect(stderr.text()).not.toContain('failed');
    expect(code).toBe(0);
    expect(stdout.text()).toContain('2 models in wf.json: 0 present, 2 to download');
    expect(stdout.text()).toContain('checkpoints/sd15/base.safetensors');
    expect(stderr.text()).toMatch(/\[#{24}\] 100%/);
    expect(
      (await readFile(join(dir, 'models', 'checkpoints', 'sd15', 'base.safetensors'))).equals(checkpoint),
    ).toBe(true);
    expect((await readFile(join(dir, 'models', 'loras', 'style.safetensors'))).equals(lora)).toBe(true);

    const again = sink();
    expect(
      await runModelsSyncCli(argv(), { stdout: again.stream, stderr: sink().stream, env, cwd: dir }),
    ).toBe(0);
    expect(again.text()).toContain('2 present, 0 to download');
  });

  it('exits 2 with the usage for missing options and 1 with a reason for failures', async () => {
    const stderr = sink();
    expect(
      await runModelsSyncCli(['--workflow', 'wf.json'], { stdout: sink().stream, stderr: stderr.stream }),
    ).toBe(2);
    expect(stderr.text()).toContain('Missing --source, --dir');
    const failed = sink();
    const code = await runModelsSyncCli(
      ['--workflow', 'nope.json', '--source', 's3://models/comfy', '--dir', 'm'],
      { stdout: sink().stream, stderr: failed.stream, env, cwd: dir },
    );
    expect(code).toBe(1);
    expect(failed.text()).toContain('models sync failed');
    expect(() => parseS3Url('https://bucket/prefix')).toThrow(/s3:\/\/bucket\/prefix/);
    expect(parseS3Url('s3://b/x/y')).toEqual({ bucket: 'b', prefix: 'x/y' });
  });
});

describe('createProgressBar', () => {
  it('redraws one line on a terminal, at most every interval', () => {
    const out = sink(true);
    let now = 0;
    const bar = createProgressBar({ stream: out.stream, totalBytes: 1000, now: () => now, intervalMs: 100 });
    bar.update(100, 'a');
    now = 50;
    bar.update(200, 'a');
    now = 1000;
    bar.update(1000, 'a');
    bar.finish();
    expect(out.chunks).toHaveLength(3);
    expect(out.chunks[0]).toMatch(/^\r\[#{2}-{22}\] {2}10% {2}100 B \/ 1\.0 kB/);
    expect(out.chunks[2]).toContain('100%');
    expect(out.chunks[2]?.endsWith('\n')).toBe(true);
  });
});
