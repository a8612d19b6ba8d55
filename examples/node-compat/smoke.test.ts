import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const built = ['core', 'runpod', 'modal', 'ecs', 's3', 'redis', 'scaler'].every((name) =>
  existsSync(`${root}/packages/${name}/dist/index.js`),
);

describe('the built packages', () => {
  // `pnpm test` builds before it tests; a bare `vitest run` on a fresh clone has no dist.
  it.skipIf(!built)('load in plain Node and run a job on each kind of provider', () => {
    const run = spawnSync(process.execPath, ['examples/node-compat/smoke.mjs'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/7 packages loaded; simulated, RunPod mock and fake ComfyUI jobs completed/);
  });
});
