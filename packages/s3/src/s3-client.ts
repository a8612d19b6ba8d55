import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { InvalidArgumentError } from '@comfy-serverless/core';

/** How to reach S3 or an S3-compatible server when no `client` is given. */
export interface S3ConnectionOptions {
  /** An S3 client of your own; the other connection options are then ignored. */
  client?: S3Client;
  /** @default the AWS SDK's own lookup (AWS_REGION, profile), else `us-east-1` for a custom endpoint */
  region?: string;
  /** An S3-compatible server (MinIO, R2, s3rver, a proxy): `http://127.0.0.1:9000`. */
  endpoint?: string;
  /** @default the AWS SDK's default credential chain */
  credentials?: S3ClientConfig['credentials'];
  /** Path-style addressing (`<endpoint>/<bucket>/<key>`). @default true when `endpoint` is set */
  forcePathStyle?: boolean;
  /** Attempts the SDK makes per request before our own retries. @default 1 (retries are ours, per part, with backoff) */
  maxAttempts?: number;
}

/**
 * Creates the S3 client a model source or result store uses, unless one was given.
 * Integrity checksums are computed and validated only when an operation requires them:
 * since @aws-sdk/client-s3 3.729 the default (always) breaks many S3-compatible servers,
 * and ranged GETs cannot be checked against a whole-object checksum anyway.
 */
export function resolveS3Client(options: S3ConnectionOptions): S3Client {
  if (options.client !== undefined) return options.client;
  if (options.endpoint !== undefined) {
    try {
      new URL(options.endpoint);
    } catch (error) {
      throw new InvalidArgumentError({
        argument: 'endpoint',
        message: `"endpoint" must be a URL such as http://127.0.0.1:9000; got ${JSON.stringify(options.endpoint)}.`,
        cause: error,
      });
    }
  }
  const region = options.region ?? (options.endpoint === undefined ? undefined : 'us-east-1');
  return new S3Client({
    ...(region === undefined ? {} : { region }),
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: options.maxAttempts ?? 1,
  });
}

/** Checks a bucket name option at once. */
export function validateBucket(bucket: unknown): string {
  if (typeof bucket !== 'string' || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new InvalidArgumentError({
      argument: 'bucket',
      message: `"bucket" must be an S3 bucket name (3-63 lower-case letters, digits, dots, hyphens); got ${typeof bucket === 'string' ? JSON.stringify(bucket) : typeof bucket}.`,
    });
  }
  return bucket;
}

/** Turns a prefix option into `''` or `a/b/`. */
export function normalizePrefix(prefix: unknown): string {
  if (prefix === undefined || prefix === '') return '';
  if (typeof prefix !== 'string') {
    throw new InvalidArgumentError({
      argument: 'prefix',
      message: `"prefix" must be a string; got ${typeof prefix}.`,
    });
  }
  const trimmed = prefix.replace(/^\/+/, '').replace(/\/+$/, '');
  return trimmed === '' ? '' : `${trimmed}/`;
}
