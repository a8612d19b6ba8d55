import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url));

// Self-contained: `vitest run --config chaos/vitest.config.ts` runs the chaos suite only.
// The aliases are the root config's (packages by public name resolve to their sources),
// plus @comfy-serverless/redis, which the chaos hosts journal to.
export default defineConfig({
  root: source('..'),
  resolve: {
    alias: [
      { find: /^@comfy-serverless\/core\/test$/, replacement: source('../packages/core/src/test/index.ts') },
      { find: /^@comfy-serverless\/core$/, replacement: source('../packages/core/src/index.ts') },
      {
        find: /^@comfy-serverless\/runpod\/test$/,
        replacement: source('../packages/runpod/src/test/index.ts'),
      },
      { find: /^@comfy-serverless\/runpod$/, replacement: source('../packages/runpod/src/index.ts') },
      {
        find: /^@comfy-serverless\/modal\/test$/,
        replacement: source('../packages/modal/src/test/index.ts'),
      },
      { find: /^@comfy-serverless\/modal$/, replacement: source('../packages/modal/src/index.ts') },
      { find: /^@comfy-serverless\/ecs\/test$/, replacement: source('../packages/ecs/src/test/index.ts') },
      { find: /^@comfy-serverless\/ecs$/, replacement: source('../packages/ecs/src/index.ts') },
      {
        find: /^@comfy-serverless\/scaler\/sim$/,
        replacement: source('../packages/scaler/src/sim/index.ts'),
      },
      { find: /^@comfy-serverless\/scaler$/, replacement: source('../packages/scaler/src/index.ts') },
      { find: /^@comfy-serverless\/redis$/, replacement: source('../packages/redis/src/index.ts') },
    ],
  },
  test: {
    include: ['chaos/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 180_000,
    hookTimeout: 30_000,
    // The chaos run owns the machine while it runs; its pieces are not run side by side.
    fileParallelism: false,
  },
});
