import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

/** A running s3rver on loopback, for tests and the benchmark (not part of the package's exports). */
export interface RunningS3rver {
  endpoint: string;
  port: number;
  directory: string;
  stop(): Promise<void>;
}

/** Starts s3rver on 127.0.0.1, port 0, storing objects in a fresh temporary directory. */
export async function startS3rver(
  buckets: string[],
  options: { directory?: string } = {},
): Promise<RunningS3rver> {
  const directory = options.directory ?? (await mkdtemp(join(tmpdir(), 's3rver-')));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: buckets.map((name) => ({ name })),
  });
  const address = await server.run();
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    port: address.port,
    directory,
    async stop() {
      await server.close();
      if (options.directory === undefined) await rm(directory, { recursive: true, force: true });
    },
  };
}
