// Test doubles for @comfy-serverless/s3: `@comfy-serverless/s3/test`.
export type { S3Mock, S3MockFault, S3MockRequest } from './s3-mock';
export { createS3Mock } from './s3-mock';
export type { RunningS3MockServer } from './s3-mock-server';
export { startS3MockServer } from './s3-mock-server';
