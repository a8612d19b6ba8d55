import { DescribeServicesCommand, ListTasksCommand } from '@aws-sdk/client-ecs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createFakeEcs } from './fake-ecs';
import { createFakeEcsClient } from './fake-ecs-client';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('createFakeEcsClient', () => {
  it('answers through the SDK stack, throttling and retries included', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    const fake = createFakeEcs({ provisioningMs: 0, pendingMs: 0, pageSize: 1 });
    fake.createService('comfyui', { desiredCount: 2 });
    const client = createFakeEcsClient(fake);
    fake.failNext('DescribeServices', { name: 'ThrottlingException' });
    const described = await client.send(
      new DescribeServicesCommand({ cluster: 'gpu', services: ['comfyui'] }),
    );
    expect(described.services?.[0]?.desiredCount).toBe(2);
    expect(fake.calls.filter((call) => call.operation === 'DescribeServices')).toHaveLength(2);
    const page = await client.send(new ListTasksCommand({ cluster: 'gpu', serviceName: 'comfyui' }));
    expect(page.taskArns).toHaveLength(1);
    expect(page.nextToken).toBe('1');
    await expect(client.send(new ListTasksCommand({ cluster: 'elsewhere' }))).rejects.toMatchObject({
      name: 'ClusterNotFoundException',
    });
  });
});
