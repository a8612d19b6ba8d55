// Runs s3rver in its own process for the benchmark, so that the server and the clients
// under test do not share one event loop. Prints `PORT <n>` once listening.
import { startS3rver } from '../../packages/s3/src/testing/s3rver-server';

const directory = process.argv[2];
const bucket = process.argv[3] ?? 'bench';
if (directory === undefined) throw new Error('usage: s3rver-process.ts <directory> [bucket]');
const server = await startS3rver([bucket], { directory });
console.log(`PORT ${server.port}`);
process.on('SIGTERM', () => {
  server.stop().finally(() => process.exit(0));
});
