import { DescribeServicesCommand, DescribeTasksCommand, ListTasksCommand } from '@aws-sdk/client-ecs';
import { JobFailedError, type RemoteJobRef } from '@comfy-serverless/core';
import { createVirtualClock } from '@comfy-serverless/core/test';
import { afterEach, describe, expect, it } from 'vitest';
import { createEcs, type EcsServiceModeSettings } from './ecs-provider';
import { mockEcsClient } from './ecs-test-harness';
import { collect, fastWatch, txt2img, until } from './ecs-test-helpers';
import { createFakeEcs } from './test/fake-ecs';
import { createFakeTaskFleet } from './test/fake-task-fleet';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

function setup(desiredCount: number, overrides: Partial<EcsServiceModeSettings> = {}, pageSize?: number) {
  const fake = createFakeEcs({ provisioningMs: 0, pendingMs: 0, ...(pageSize ? { pageSize } : {}) });
  fake.createService('comfyui', { desiredCount });
  const fleet = createFakeTaskFleet({ stepMs: 2 });
  cleanups.push(() => fleet.close());
  const { client, mock } = mockEcsClient(fake);
  const provider = createEcs({
    mode: 'service',
    cluster: 'gpu',
    service: 'comfyui',
    client,
    gpu: 'L4-24GB',
    resolveTaskUrl: fleet.resolveTaskUrl,
    watch: fastWatch,
    ...overrides,
  });
  return { fake, fleet, mock, provider };
}

const request = (jobId: string) => ({ jobId, workflow: txt2img(), images: [], attempt: 1 });
const ipOf = (fake: ReturnType<typeof createFakeEcs>, taskArn: unknown) => {
  const task = fake.tasks().find((entry) => entry['taskArn'] === taskArn);
  const attachments = task?.['attachments'] as Array<{ details: Array<{ name: string; value: string }> }>;
  const ip = attachments[0]?.details.find((detail) => detail.name === 'privateIPv4Address')?.value;
  if (ip === undefined) throw new Error(`no IP for ${String(taskArn)}`);
  return ip;
};

describe('createEcs in service mode', () => {
  it('reads the service tasks with ListTasks and DescribeTasks, paging, and binds each job to one task', async () => {
    const { provider, mock, fake, fleet } = setup(3, {}, 2);
    fleet.arrangeAll({ type: 'run-until-cancelled' });
    const members = await provider.tasks();
    expect(members).toHaveLength(3);
    for (const member of members) expect(member.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const lists = mock.commandCalls(ListTasksCommand);
    expect(lists.length).toBe(2);
    expect(lists[0]!.args[0].input).toEqual({
      cluster: 'gpu',
      serviceName: 'comfyui',
      desiredStatus: 'RUNNING',
    });
    expect(lists[1]!.args[0].input.nextToken).toBe('2');
    expect(mock.commandCalls(DescribeTasksCommand)[0]!.args[0].input.tasks).toHaveLength(3);

    const refs: RemoteJobRef[] = [];
    for (const jobId of ['job-a', 'job-b', 'job-c']) {
      const ref = await provider.doSubmit(request(jobId));
      refs.push(ref);
      await until(() => fleet.server(ipOf(fake, ref.data?.['taskArn']))!.queue().running.length > 0);
    }
    // Least loaded first: three long jobs land on three different tasks.
    const tasksUsed = new Set(refs.map((ref) => ref.data?.['taskArn']));
    expect(tasksUsed.size).toBe(3);
    for (const ref of refs) {
      expect(ref.data?.['server']).toBe(fleet.server(ipOf(fake, ref.data?.['taskArn']))!.url);
      expect(ref.data?.['mode']).toBe('service');
    }
    for (const server of fleet.servers().values()) server.release();
    for (const ref of refs) expect((await collect(provider, ref)).at(-1)?.type).toBe('completed');
  });

  it('sends no new job to a draining task and watches its running job to the end', async () => {
    const { provider, fake, fleet } = setup(2, { membershipTtlMs: 0 });
    fleet.arrangeAll({ type: 'run-until-cancelled' });
    const first = await provider.doSubmit(request('job-on-draining'));
    const drainingArn = first.data?.['taskArn'] as string;
    const drainingServer = fleet.server(ipOf(fake, drainingArn))!;
    await until(() => drainingServer.queue().running.length > 0);
    const watching = collect(provider, first);
    fake.drainTask(drainingArn);
    fleet.arrangeAll({ type: 'succeed' });
    const later = [
      await provider.doSubmit(request('job-later-1')),
      await provider.doSubmit(request('job-later-2')),
    ];
    for (const ref of later) expect(ref.data?.['taskArn']).not.toBe(drainingArn);
    expect((await provider.tasks()).map((member) => member.taskArn)).not.toContain(drainingArn);
    drainingServer.release();
    expect((await watching).at(-1)?.type).toBe('completed');
    // The other task still had a long job arranged: let it finish too.
    for (const server of fleet.servers().values()) server.release();
    for (const ref of later) expect((await collect(provider, ref)).at(-1)?.type).toBe('completed');
  });

  it('reads the membership again after membershipTtlMs, not before', async () => {
    const clock = createVirtualClock();
    const { provider, mock, fake } = setup(1, { membershipTtlMs: 30_000, clock });
    expect(await provider.doSubmit(request('job-ttl-1'))).toBeDefined();
    await fake.handle('UpdateService', { cluster: 'gpu', service: 'comfyui', desiredCount: 2 });
    await provider.doSubmit(request('job-ttl-2'));
    expect(mock.commandCalls(ListTasksCommand)).toHaveLength(1);
    await clock.advance(30_000);
    await provider.doSubmit(request('job-ttl-3'));
    expect(mock.commandCalls(ListTasksCommand)).toHaveLength(2);
    const described = mock.commandCalls(DescribeTasksCommand).at(-1)!.args[0].input.tasks;
    expect(described).toHaveLength(2);
  });

  it('reads the membership again when every known task stopped answering', async () => {
    const { provider, fake, fleet, mock } = setup(1, { membershipTtlMs: 600_000, checkTimeoutMs: 500 });
    const [gone] = await provider.tasks();
    await fleet.server(ipOf(fake, gone!.taskArn))!.close();
    fake.stopTask(gone!.taskArn, { stopCode: 'SpotInterruption', reason: 'Your Spot Task was interrupted.' });
    const ref = await provider.doSubmit(request('job-after-interruption'));
    expect(ref.data?.['taskArn']).not.toBe(gone!.taskArn);
    expect(mock.commandCalls(ListTasksCommand).length).toBeGreaterThanOrEqual(2);
    expect((await collect(provider, ref)).at(-1)?.type).toBe('completed');
  });

  it('ends a job whose task was interrupted with a retryable error naming the stop code', async () => {
    const { provider, fake, fleet } = setup(1, {
      watch: {
        ...fastWatch,
        reconnect: { attempts: 1, minDelayMs: 5, maxDelayMs: 5 },
        stallTimeoutMs: 200,
      },
    });
    fleet.arrangeAll({ type: 'run-until-cancelled' });
    const ref = await provider.doSubmit(request('job-spot'));
    const server = fleet.server(ipOf(fake, ref.data?.['taskArn']))!;
    await until(() => server.queue().running.length > 0);
    const watching = collect(provider, ref);
    await server.close();
    fake.stopTask(ref.data?.['taskArn'] as string, {
      stopCode: 'SpotInterruption',
      reason: 'Your Spot Task was interrupted.',
    });
    const events = await watching;
    const last = events.at(-1);
    expect(last?.type).toBe('failed');
    if (last?.type !== 'failed') return;
    expect((last.error as { isRetryable?: boolean }).isRetryable).toBe(true);
    expect(last.error.message).toContain('SpotInterruption');
  }, 15_000);

  it('fails over with a retryable error when the service has no running task', async () => {
    const { provider } = setup(0);
    const error = await provider.doSubmit(request('job-none')).catch((caught: unknown) => caught);
    expect(JobFailedError.isInstance(error)).toBe(true);
    expect((error as JobFailedError).isRetryable).toBe(true);
    expect((error as Error).message).toContain('desiredCount');
  });

  it('reports health from DescribeServices and each task queue', async () => {
    const { provider, mock, fleet, fake } = setup(2);
    fleet.arrangeAll({ type: 'run-until-cancelled' });
    const ref = await provider.doSubmit(request('job-health'));
    await until(() => fleet.server(ipOf(fake, ref.data?.['taskArn']))!.queue().running.length > 0);
    const health = await provider.doHealth();
    expect(health).toMatchObject({ status: 'healthy', running: 1, busyWorkers: 1, idleWorkers: 1 });
    expect(mock.commandCalls(DescribeServicesCommand)[0]!.args[0].input).toEqual({
      cluster: 'gpu',
      services: ['comfyui'],
    });
    await provider.doCancel(ref);
    const empty = setup(0);
    expect((await empty.provider.doHealth()).status).toBe('unhealthy');
    const missing = setup(1, { service: 'other' });
    const unknown = await missing.provider.doHealth().catch((caught: unknown) => caught);
    // ListTasks for an unknown service throws ServiceNotFoundException: a configuration error.
    expect((unknown as Error).name).toBe('ConfigurationError');
    expect((unknown as Error).message).toContain('"service"');
  });

  it('preflights against the tasks before a GPU is used', async () => {
    const { provider } = setup(1);
    const result = await provider.doPreflight?.({ models: [], nodeTypes: ['KSampler', 'NoSuchNode'] });
    expect(result?.ok).toBe(false);
    expect(result?.missingNodeTypes).toEqual(['NoSuchNode']);
  });
});
