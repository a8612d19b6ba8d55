import { GetObjectCommand, PutObjectCommand, type StorageClass } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { InvalidArgumentError, type JobOutput } from '@comfy-serverless/core';
import { normalizePrefix, resolveS3Client, type S3ConnectionOptions, validateBucket } from './s3-client';
import { toS3ApiCallError } from './s3-error';

/** Options of `createS3ResultStore`. */
export interface S3ResultStoreOptions extends S3ConnectionOptions {
  bucket: string;
  /** Outputs go to `<prefix>/<jobId>/<nodeId>-<filename>`. */
  prefix: string;
  /** Storage class of uploads. @default 'STANDARD' */
  storageClass?: StorageClass;
  /** Lifetime of presigned URLs, in seconds (at most 7 days). @default 3600 */
  expiresInSeconds?: number;
}

/** Where one output went. */
export interface StoredOutput {
  bucket: string;
  key: string;
  /** A presigned GET URL; it carries a signature, so treat it as a secret until it expires. */
  url: string;
}

/** Uploads job outputs to S3 and hands out presigned URLs. */
export interface S3ResultStore {
  /** Uploads one output (it must have `data`) and returns where it went. */
  put(jobId: string, output: JobOutput, options?: { signal?: AbortSignal }): Promise<StoredOutput>;
  /** Uploads every output that has `data`; returns copies with `url` set and `data` removed. */
  storeOutputs(jobId: string, outputs: JobOutput[], options?: { signal?: AbortSignal }): Promise<JobOutput[]>;
  /** A fresh presigned GET URL for a stored key. */
  presign(key: string, expiresInSeconds?: number): Promise<string>;
}

const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

function safeSegment(value: string): string {
  return value.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '_') || '_';
}

/**
 * An S3 store for job outputs: uploads each output under `<prefix>/<jobId>/` with its
 * content type and storage class, and returns presigned URLs. Pair it with
 * `lifecycleRules` to move old outputs to cheaper storage and delete them.
 *
 * @example
 * const store = createS3ResultStore({ bucket: 'my-outputs', prefix: 'comfy', storageClass: 'STANDARD' });
 * const outputs = await store.storeOutputs(result.jobId, result.outputs);
 */
export function createS3ResultStore(options: S3ResultStoreOptions): S3ResultStore {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError({
      argument: 'options',
      message: 'createS3ResultStore needs { bucket, prefix }.',
    });
  }
  const bucket = validateBucket(options.bucket);
  const prefix = normalizePrefix(options.prefix);
  const expiresDefault = options.expiresInSeconds ?? 3600;
  const checkExpiry = (seconds: number) => {
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_PRESIGN_SECONDS) {
      throw new InvalidArgumentError({
        argument: 'expiresInSeconds',
        message: `"expiresInSeconds" must be a whole number from 1 to ${MAX_PRESIGN_SECONDS} (7 days, S3's limit); got ${String(seconds)}.`,
      });
    }
    return seconds;
  };
  checkExpiry(expiresDefault);
  let client: ReturnType<typeof resolveS3Client> | undefined;
  const clientOf = () => {
    client ??= resolveS3Client(options);
    return client;
  };

  const presign = (key: string, expiresInSeconds = expiresDefault) =>
    getSignedUrl(clientOf(), new GetObjectCommand({ Bucket: bucket, Key: key }), {
      expiresIn: checkExpiry(expiresInSeconds),
    });

  const put: S3ResultStore['put'] = async (jobId, output, putOptions = {}) => {
    if (typeof jobId !== 'string' || jobId === '') {
      throw new InvalidArgumentError({ argument: 'jobId', message: '"jobId" must be a non-empty string.' });
    }
    const body =
      output.data ?? (output.text === undefined ? undefined : new TextEncoder().encode(output.text));
    if (body === undefined) {
      throw new InvalidArgumentError({
        argument: 'output.data',
        message: `The output ${output.filename} of node ${output.nodeId} has no data to upload; fetch it first.`,
      });
    }
    const key = `${prefix}${safeSegment(jobId)}/${safeSegment(output.nodeId)}-${safeSegment(output.filename)}`;
    try {
      await clientOf().send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentLength: body.byteLength,
          ContentType: output.mime,
          StorageClass: options.storageClass ?? 'STANDARD',
        }),
        putOptions.signal === undefined ? {} : { abortSignal: putOptions.signal },
      );
    } catch (error) {
      throw toS3ApiCallError(error, 'PutObject', `s3://${bucket}/${key}`);
    }
    return { bucket, key, url: await presign(key) };
  };

  return {
    put,
    presign,
    async storeOutputs(jobId, outputs, storeOptions = {}) {
      return Promise.all(
        outputs.map(async (output) => {
          if (output.data === undefined) return { ...output };
          const stored = await put(jobId, output, storeOptions);
          const { data: _data, ...rest } = output;
          return { ...rest, url: stored.url };
        }),
      );
    },
  };
}
