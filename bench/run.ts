// Runs every benchmark under bench/<name>/main.ts (or only those named on the command line),
// each in its own process so that one's heap and timers do not disturb another's figures.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const names = readdirSync(root, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(join(root, entry.name, 'main.ts')))
  .map((entry) => entry.name)
  .filter((name) => wanted.length === 0 || wanted.includes(name))
  .sort();

let failed = 0;
for (const name of names) {
  console.log(`\n=== bench/${name} ===`);
  const result = spawnSync(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', join(root, name, 'main.ts')],
    {
      stdio: 'inherit',
      cwd: join(root, '..'),
    },
  );
  if (result.status !== 0) {
    failed += 1;
    console.log(`bench/${name} exited with ${result.status ?? result.signal}`);
  }
}
console.log(`\n${names.length - failed} benchmarks ran, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
