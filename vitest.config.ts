import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url));

// Tests import packages by their public names; these aliases point those names at the
// sources so that a test run needs no build and always sees the code under test.
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@comfy-serverless\/core\/test$/, replacement: source('./packages/core/src/test/index.ts') },
      { find: /^@comfy-serverless\/core$/, replacement: source('./packages/core/src/index.ts') },
      {
        find: /^@comfy-serverless\/runpod\/test$/,
        replacement: source('./packages/runpod/src/test/index.ts'),
      },
      { find: /^@comfy-serverless\/runpod$/, replacement: source('./packages/runpod/src/index.ts') },
      { find: /^@comfy-serverless\/modal\/test$/, replacement: source('./packages/modal/src/test/index.ts') },
      { find: /^@comfy-serverless\/modal$/, replacement: source('./packages/modal/src/index.ts') },
      { find: /^@comfy-serverless\/ecs\/test$/, replacement: source('./packages/ecs/src/test/index.ts') },
      { find: /^@comfy-serverless\/ecs$/, replacement: source('./packages/ecs/src/index.ts') },
      { find: /^@comfy-serverless\/s3\/test$/, replacement: source('./packages/s3/src/test/index.ts') },
      { find: /^@comfy-serverless\/s3$/, replacement: source('./packages/s3/src/index.ts') },
      { find: /^@comfy-serverless\/redis\/test$/, replacement: source('./packages/redis/src/test/index.ts') },
      { find: /^@comfy-serverless\/redis$/, replacement: source('./packages/redis/src/index.ts') },
      { find: /^@comfy-serverless\/scaler\/sim$/, replacement: source('./packages/scaler/src/sim/index.ts') },
      { find: /^@comfy-serverless\/scaler$/, replacement: source('./packages/scaler/src/index.ts') },
    ],
  },
  test: {
    setupFiles: ['./vitest.setup.ts'],
    include: ['packages/*/src/**/*.test.ts', 'examples/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**', '**/*.chaos.test.ts'],
    // The JSON report is what .ci/run counts; the default reporter is for people.
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-results.json' },
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
});
