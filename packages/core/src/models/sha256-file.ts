import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** The sha256 of a file (lower-case hex), read as a stream so that memory stays small. */
export async function sha256File(filePath: string, options: { signal?: AbortSignal } = {}): Promise<string> {
  const hash = createHash('sha256');
  const stream = createReadStream(filePath, {
    highWaterMark: 1024 * 1024,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
