// The public face of @comfy-serverless/s3.
export type { LifecycleRulesOptions } from './lifecycle-rules';
export { lifecycleRules } from './lifecycle-rules';
export type { ModelsSyncIo } from './models-sync-cli';
export { MODELS_SYNC_USAGE, parseS3Url, runModelsSyncCli } from './models-sync-cli';
export type { ProgressBar, ProgressStream } from './progress-bar';
export { createProgressBar, formatBytes } from './progress-bar';
export type { S3ConnectionOptions } from './s3-client';
export type { S3ModelSourceOptions } from './s3-model-source';
export { createS3ModelSource } from './s3-model-source';
export type { S3ResultStore, S3ResultStoreOptions, StoredOutput } from './s3-result-store';
export { createS3ResultStore } from './s3-result-store';
