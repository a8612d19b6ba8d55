import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Runs an example as a user would (tsx, no build), on the simulated or mock backends. */
function runExample(name: string): { status: number | null; stdout: string; stderr: string } {
  const env = { ...process.env };
  // The examples switch to real platforms when these are set; the test never does.
  for (const key of ['COMFYUI_URL', 'RUNPOD_ENDPOINT_ID', 'RUNPOD_API_KEY']) delete env[key];
  const run = spawnSync(process.execPath, ['--import', 'tsx', `examples/${name}/main.ts`], {
    cwd: root,
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('the examples run', () => {
  it('quickstart: 20 jobs dispatched, scaled and reported on simulated pools', () => {
    const run = runExample('quickstart');
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/SIMULATED/);
    expect(run.stdout).toMatch(/Scaling: \d+ change\(s\) applied by the autoscaler/);
    expect(run.stdout).toMatch(/20 completed, 0 failed/);
  });

  it('workflow-analysis: refuses a UI export, patches, analyses and preflights', () => {
    const run = runExample('workflow-analysis');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/Save \(API format\)/);
    expect(run.stdout).toMatch(/needs checkpoints\/sdxl\/juggernautXL_v9\.safetensors/);
    expect(run.stdout).toMatch(/preflight ok: false/);
  });

  it('self-hosted: jobs across two fake ComfyUI servers, a missing model refused before running', () => {
    const run = runExample('self-hosted');
    expect(run.status).toBe(0);
    expect(run.stdout.match(/\.png \(image\/png/g)).toHaveLength(3);
    expect(run.stdout).toMatch(/refused before running: prompt_outputs_failed_validation/);
  });

  it('runpod: scaling through the management API and jobs through the RunPod mock', () => {
    const run = runExample('runpod');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/after: {2}\{"minWorkers":1,"maxWorkers":3\}/);
    expect(run.stdout.match(/1 output\(s\)/g)).toHaveLength(4);
  });

  it('models: the models of a workflow downloaded from an S3 mock in ranged parts, then served from the cache', () => {
    const run = runExample('models');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/plan: sd_xl_base_1\.0\.safetensors: network_download/);
    expect(run.stdout).toMatch(/load: 1 model\(s\), 50331648 bytes downloaded, 0 cache hit\(s\)/);
    expect(run.stdout).toMatch(/plan again: sd_xl_base_1\.0\.safetensors: cache_hit/);
    expect(run.stdout).toMatch(/load again: 1 cache hit\(s\), 0 bytes downloaded/);
  });

  it('operations: logs, metrics, a rolled-back rollout and the report', () => {
    const run = runExample('operations');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/rollout:rolled-back/);
    expect(run.stdout).toMatch(/"service":"render-api"/);
    expect(run.stdout).toMatch(/workflow_jobs_total\{provider="worker-v1",outcome="completed"\}/);
    expect(run.stdout).toMatch(/bottleneck:/);
  });

  it('custom-policy: one policy in the simulator and the live autoscaler', () => {
    const run = runExample('custom-policy');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/live: pool ->/);
  });
});
