import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

/** A client for a local S3-compatible server (benchmarks and tests; not exported by the package). */
export function localS3Client(endpoint: string): S3Client {
  return new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Uploads a file as one object, streamed. */
export async function putObjectFromFile(
  client: S3Client,
  bucket: string,
  key: string,
  filePath: string,
): Promise<void> {
  const { size } = await stat(filePath);
  await client.send(
    new PutObjectCommand({ Bucket: bucket, Key: key, Body: createReadStream(filePath), ContentLength: size }),
  );
}

/** The baseline: one plain GetObject, its body streamed to a file. Resolves to the bytes written. */
export async function getObjectToFile(
  client: S3Client,
  bucket: string,
  key: string,
  filePath: string,
): Promise<number> {
  const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  await pipeline(response.Body as Readable, createWriteStream(filePath));
  return (await stat(filePath)).size;
}
