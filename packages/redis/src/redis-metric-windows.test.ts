import { createDispatcher, InvalidArgumentError } from '@comfy-serverless/core';
import { createMockProvider, createVirtualClock } from '@comfy-serverless/core/test';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, deleteKeys, uniquePrefix } from './__fixtures__/redis-connection';
import { createRedisMetricWindows } from './redis-metric-windows';
import { shareDispatcherDemand } from './share-dispatcher-demand';

const WORKFLOW = {
  '3': { class_type: 'KSampler', inputs: { seed: 1, steps: 20, model: ['4', 0] } },
  '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd_xl_base_1.0.safetensors' } },
  '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'ComfyUI', images: ['3', 0] } },
};

describe('createRedisMetricWindows', () => {
  let first: Redis;
  let second: Redis;
  const prefixes: string[] = [];
  const fresh = () => {
    const prefix = uniquePrefix('metrics');
    prefixes.push(prefix);
    return prefix;
  };
  beforeAll(() => {
    first = connect();
    second = connect();
  });
  afterAll(async () => {
    for (const prefix of prefixes) await deleteKeys(first, prefix);
    first.disconnect();
    second.disconnect();
  });

  it('refuses bad options, naming the option', () => {
    const cases: Array<[unknown, string]> = [
      [{ redis: 'redis://x' }, 'redis'],
      [{ redis: first, bucketMs: 0 }, 'bucketMs'],
      [{ redis: first, bucketCount: 1.5 }, 'bucketCount'],
      [{ redis: first, sampleLimit: -1 }, 'sampleLimit'],
      [{ redis: first, loadTtlMs: 'long' }, 'loadTtlMs'],
      [{ redis: first, prefix: 'a b' }, 'prefix'],
    ];
    for (const [options, argument] of cases) {
      expect(() => createRedisMetricWindows(options as never)).toThrow(
        expect.objectContaining({ name: 'InvalidArgumentError', argument }),
      );
    }
  });

  it('sums the arrivals of every process per bucket, oldest first, within bucketCount', async () => {
    const prefix = fresh();
    let now = 1_000_000;
    const clock = () => now;
    const one = createRedisMetricWindows({
      redis: first,
      prefix,
      bucketMs: 1_000,
      bucketCount: 4,
      now: clock,
    });
    const two = createRedisMetricWindows({
      redis: second,
      prefix,
      bucketMs: 1_000,
      bucketCount: 4,
      now: clock,
    });
    await one.recordArrival();
    await two.recordArrival(2);
    now += 1_000;
    await two.recordArrival();
    now += 2_000;
    await one.recordArrival();
    await two.recordArrival();
    expect((await one.snapshot()).demand.arrivals).toEqual([3, 1, 0, 2]);
    // Five buckets on, the first ones fall out of the window and are deleted.
    now += 2_000;
    const later = await two.snapshot();
    expect(later.demand.arrivals).toEqual([2, 0, 0]);
    expect(later.demand.bucketMs).toBe(1_000);
    expect(Object.keys(await first.hgetall(`${prefix}:arrivals`))).toHaveLength(1);
    await expect(one.recordArrival(0)).rejects.toSatisfy(InvalidArgumentError.isInstance);
  });

  it('buckets by the Redis server clock by default', async () => {
    const prefix = fresh();
    const one = createRedisMetricWindows({ redis: first, prefix, bucketMs: 60_000 });
    const two = createRedisMetricWindows({ redis: second, prefix, bucketMs: 60_000 });
    await Promise.all([one.recordArrival(), two.recordArrival(), one.recordArrival(4)]);
    const { demand } = await two.snapshot();
    expect(demand.arrivals.reduce((sum, value) => sum + value, 0)).toBe(6);
    expect(demand.arrivals.length).toBeLessThanOrEqual(2);
  });

  it('keeps the latest waits and execution times of every process, oldest first', async () => {
    const prefix = fresh();
    const one = createRedisMetricWindows({ redis: first, prefix, sampleLimit: 3 });
    const two = createRedisMetricWindows({ redis: second, prefix, sampleLimit: 3 });
    await one.recordWait(10);
    await two.recordWait(20);
    await one.recordWait(30);
    await two.recordWait(40);
    await one.recordExecution(1_500);
    await two.recordExecution(2_500);
    const { demand } = await one.snapshot();
    expect(demand.recentWaitsMs).toEqual([20, 30, 40]);
    expect(demand.recentExecutionMs).toEqual([1_500, 2_500]);
    await expect(one.recordWait(Number.NaN)).rejects.toSatisfy(InvalidArgumentError.isInstance);
  });

  it('sums the load of live processes and forgets those that stopped reporting', async () => {
    const prefix = fresh();
    let now = 5_000_000;
    const windows = createRedisMetricWindows({ redis: first, prefix, loadTtlMs: 10_000, now: () => now });
    await windows.publishLoad('a', {
      queueDepth: 3,
      inFlight: 2,
      providers: { runpod: { queueDepth: 3, inFlight: 1 }, modal: { queueDepth: 0, inFlight: 1 } },
    });
    now += 6_000;
    await windows.publishLoad('b', {
      queueDepth: 4,
      inFlight: 1,
      providers: { runpod: { queueDepth: 4, inFlight: 1 } },
    });
    let shared = await windows.snapshot();
    expect(shared.processes).toBe(2);
    expect(shared.demand.queueDepth).toBe(7);
    expect(shared.demand.inFlight).toBe(3);
    expect(shared.providers).toEqual({
      runpod: { queueDepth: 7, inFlight: 2 },
      modal: { queueDepth: 0, inFlight: 1 },
    });
    // "a" last reported 11 s ago, past loadTtlMs: it no longer counts and is removed.
    now += 5_000;
    shared = await windows.snapshot();
    expect(shared.processes).toBe(1);
    expect(shared.demand.queueDepth).toBe(4);
    expect(await first.hkeys(`${prefix}:loads`)).toEqual(['b']);
    await windows.withdrawLoad('b');
    expect((await windows.snapshot()).processes).toBe(0);
  });

  it('lets the autoscaler of one process see the jobs of every dispatcher', async () => {
    const prefix = fresh();
    const clock = createVirtualClock();
    const setUp = (redis: Redis, processId: string) => {
      const dispatcher = createDispatcher({ providers: [createMockProvider({ id: 'mock' })], clock });
      const windows = createRedisMetricWindows({ redis, prefix, now: () => clock.now() });
      return { dispatcher, shared: shareDispatcherDemand({ windows, dispatcher, processId, clock }) };
    };
    const a = setUp(first, 'a');
    const b = setUp(second, 'b');
    expect(a.shared.metrics()).toEqual(a.dispatcher.metrics());
    for (let index = 0; index < 3; index++) await a.dispatcher.runWorkflow(WORKFLOW);
    for (let index = 0; index < 5; index++) await b.dispatcher.runWorkflow(WORKFLOW);
    await b.shared.flush();
    await b.shared.refresh();
    const merged = await a.shared.refresh();
    expect(a.dispatcher.metrics().demand.arrivals.reduce((sum, value) => sum + value, 0)).toBe(3);
    expect(merged.demand.arrivals.reduce((sum, value) => sum + value, 0)).toBe(8);
    expect(merged.demand.recentExecutionMs).toHaveLength(8);
    expect(merged.demand.recentWaitsMs).toHaveLength(8);
    expect(a.shared.metrics()).toEqual(merged);
    await a.shared.close();
    await b.shared.close();
    a.dispatcher.close();
    b.dispatcher.close();
    expect(await first.hkeys(`${prefix}:loads`)).toEqual([]);
  });
});
