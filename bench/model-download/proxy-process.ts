// Runs the throttling proxy in its own process for the benchmark. Prints `PORT <n>` once listening.
import { startThrottleProxy } from './throttle-proxy';

const target = process.argv[2];
const capMBps = Number(process.argv[3] ?? 50);
if (target === undefined) throw new Error('usage: proxy-process.ts <target-url> [MB/s per connection]');
const proxy = await startThrottleProxy(target, capMBps * 1e6);
console.log(`PORT ${new URL(proxy.url).port}`);
process.on('SIGTERM', () => {
  proxy.close().finally(() => process.exit(0));
});
