import { RunTaskCommand, StopTaskCommand } from '@aws-sdk/client-ecs';
import { ConfigurationError, JobFailedError, type RemoteJobRef } from '@comfy-serverless/core';
import { createVirtualClock } from '@comfy-serverless/core/test';
import { afterEach, describe, expect, it } from 'vitest';
import { createEcs, type EcsTaskModeSettings } from './ecs-provider';
import { STOP_REASONS } from './ecs-task-mode';
import { mockEcsClient } from './ecs-test-harness';
import { collect, drive, fastWatch, txt2img, until } from './ecs-test-helpers';
import { createFakeEcs, type FakeEcs } from './test/fake-ecs';
import { createFakeTaskFleet, type FakeTaskFleet } from './test/fake-task-fleet';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

function setup(
  overrides: Partial<EcsTaskModeSettings> = {},
  shared?: { fake: FakeEcs; fleet: FakeTaskFleet; clock?: ReturnType<typeof createVirtualClock> },
) {
  const clock = shared?.clock ?? createVirtualClock({ start: Date.UTC(2026, 10, 26) });
  const fake = shared?.fake ?? createFakeEcs({ clock, provisioningMs: 2_000, pendingMs: 1_000 });
  const fleet = shared?.fleet ?? createFakeTaskFleet({ stepMs: 2 });
  const { client, mock } = mockEcsClient(fake);
  const provider = createEcs({
    mode: 'task',
    cluster: 'gpu',
    taskDefinition: 'comfyui-gpu:3',
    capacityProviderStrategy: [{ capacityProvider: 'gpu-asg', weight: 1, base: 0 }],
    networkConfiguration: {
      awsvpcConfiguration: {
        subnets: ['subnet-a'],
        securityGroups: ['sg-comfy'],
        assignPublicIp: 'DISABLED',
      },
    },
    containerName: 'comfyui',
    environment: { COMFYUI_ARGS: '--listen 0.0.0.0' },
    tags: { team: 'imaging' },
    client,
    clock,
    gpu: 'L4-24GB',
    resolveTaskUrl: fleet.resolveTaskUrl,
    watch: fastWatch,
    pollIntervalMs: 500,
    provisioningTimeoutMs: 60_000,
    startupTimeoutMs: 30_000,
    idleTimeoutMs: 120_000,
    retry: { minDelayMs: 10, maxDelayMs: 10 },
    ...overrides,
  });
  if (shared === undefined) cleanups.push(() => fleet.close());
  return { clock, fake, fleet, client, mock, provider };
}

const request = (jobId: string, attempt = 1) => ({ jobId, workflow: txt2img(), images: [], attempt });

describe('createEcs in task mode', () => {
  it('starts one task per job with a capacity provider strategy, startedBy, tags and a client token', async () => {
    const { provider, mock, clock } = setup();
    const jobId = '0b6f4c2e-9a51-4f7e-8d0c-1f2e3d4c5b6a';
    const ref = await provider.doSubmit(request(jobId));
    const calls = mock.commandCalls(RunTaskCommand);
    expect(calls).toHaveLength(1);
    const input = calls[0]!.args[0].input;
    expect(input).toMatchObject({
      cluster: 'gpu',
      taskDefinition: 'comfyui-gpu:3',
      count: 1,
      capacityProviderStrategy: [{ capacityProvider: 'gpu-asg', weight: 1, base: 0 }],
      startedBy: jobId,
      networkConfiguration: { awsvpcConfiguration: { subnets: ['subnet-a'], securityGroups: ['sg-comfy'] } },
      overrides: {
        containerOverrides: [
          { name: 'comfyui', environment: [{ name: 'COMFYUI_ARGS', value: '--listen 0.0.0.0' }] },
        ],
      },
    });
    expect(input.tags).toEqual(
      expect.arrayContaining([
        { key: 'team', value: 'imaging' },
        { key: 'comfy-serverless:job-id', value: jobId },
      ]),
    );
    expect(input.clientToken).toMatch(/^[0-9a-f]{64}$/);
    expect(ref.data).toMatchObject({ mode: 'task', jobId });
    expect(JSON.parse(JSON.stringify(ref))).toEqual(ref);

    const events = await drive(clock, collect(provider, ref));
    expect(events[0]?.type).toBe('queued');
    const started = events.find((event) => event.type === 'started');
    // 2 s provisioning and 1 s pending on the fake: the job waited at least that for its task.
    expect(started).toMatchObject({ type: 'started', workerId: ref.remoteId.split('/').at(-1) });
    expect((started as { coldStartMs?: number }).coldStartMs).toBeGreaterThanOrEqual(3_000);
    expect(events.at(-1)?.type).toBe('completed');
    expect(events.some((event) => event.type === 'output')).toBe(true);
  });

  it('derives a valid startedBy from a job id ECS would refuse', async () => {
    const { provider, mock } = setup();
    const jobId = 'user:42/job with spaces and a very long name that goes on';
    await provider.doSubmit(request(jobId));
    const input = mock.commandCalls(RunTaskCommand)[0]!.args[0].input;
    expect(input.startedBy).toMatch(/^[A-Za-z0-9_/-]{1,36}$/);
    expect(input.startedBy).not.toBe(jobId);
  });

  it('uses the same client token for the same attempt, so a repeated RunTask starts no second task', async () => {
    const first = setup();
    const second = setup({}, { fake: first.fake, fleet: first.fleet, clock: first.clock });
    const refA = await first.provider.doSubmit(request('job-idempotent'));
    const refB = await second.provider.doSubmit(request('job-idempotent'));
    expect(refB.remoteId).toBe(refA.remoteId);
    expect(first.fake.tasks()).toHaveLength(1);
    const tokenA = first.mock.commandCalls(RunTaskCommand)[0]!.args[0].input.clientToken;
    const tokenB = second.mock.commandCalls(RunTaskCommand)[0]!.args[0].input.clientToken;
    expect(tokenB).toBe(tokenA);
    // A new attempt is a new submission.
    await second.provider.doSubmit(request('job-idempotent-2', 2));
    expect(first.fake.tasks()).toHaveLength(2);
  });

  it('turns RESOURCE:GPU into a retryable error and the next try gets a new client token', async () => {
    const { provider, fake, mock } = setup();
    fake.failNextRunTask([{ reason: 'RESOURCE:GPU', detail: 'no g5 instance free' }]);
    const error = await provider.doSubmit(request('job-gpu')).catch((caught: unknown) => caught);
    expect(JobFailedError.isInstance(error)).toBe(true);
    expect((error as JobFailedError).isRetryable).toBe(true);
    expect((error as Error).message).toContain('RESOURCE:GPU');
    const ref = await provider.doSubmit(request('job-gpu'));
    expect(ref.data?.['taskArn']).toMatch(/^arn:aws:ecs:/);
    const tokens = mock.commandCalls(RunTaskCommand).map((call) => call.args[0].input.clientToken);
    expect(tokens).toHaveLength(2);
    expect(tokens[0]).not.toBe(tokens[1]);
  });

  it('turns MISSING and ATTRIBUTE failures into configuration errors', async () => {
    const { provider, fake } = setup();
    fake.failNextRunTask([{ reason: 'MISSING', detail: 'capacity provider gpu-asg' }]);
    const missing = await provider.doSubmit(request('job-missing')).catch((caught: unknown) => caught);
    expect(ConfigurationError.isInstance(missing)).toBe(true);
    expect((missing as ConfigurationError).isRetryable).toBe(false);
    fake.failNextRunTask([{ reason: 'ATTRIBUTE', detail: 'ecs.instance-type' }]);
    const attribute = await provider.doSubmit(request('job-attribute')).catch((caught: unknown) => caught);
    expect(ConfigurationError.isInstance(attribute)).toBe(true);
    expect((attribute as Error).message).toContain('GPU-optimised AMI');
  });

  it('stops a task stuck in PROVISIONING at the deadline and fails over with a retryable error', async () => {
    const { provider, fake, mock, clock } = setup({ provisioningTimeoutMs: 30_000 });
    fake.holdProvisioning(true);
    const ref = await provider.doSubmit(request('job-stuck'));
    const events = await drive(clock, collect(provider, ref), 1_000);
    const last = events.at(-1);
    expect(last?.type).toBe('failed');
    if (last?.type !== 'failed') return;
    expect(last.executionStarted).toBe(false);
    expect((last.error as { isRetryable?: boolean }).isRetryable).toBe(true);
    expect(last.error.message).toContain('provisioningTimeoutMs');
    const stops = mock.commandCalls(StopTaskCommand);
    expect(stops).toHaveLength(1);
    expect(stops[0]!.args[0].input).toMatchObject({
      cluster: 'gpu',
      task: ref.remoteId,
      reason: STOP_REASONS.provisioning,
    });
    expect(clock.now() - (ref.data?.['launchedAt'] as number)).toBeGreaterThanOrEqual(30_000);
    expect(fake.tasks()[0]?.['desiredStatus']).toBe('STOPPED');
  });

  it('reports a task that failed to start as retryable, before execution', async () => {
    const { provider, fake, clock } = setup();
    fake.holdProvisioning(true);
    const ref = await provider.doSubmit(request('job-pull'));
    fake.stopTask(ref.remoteId, {
      stopCode: 'TaskFailedToStart',
      reason: 'CannotPullContainerError: pull access denied for comfyui',
    });
    const events = await drive(clock, collect(provider, ref));
    const last = events.at(-1);
    expect(last?.type).toBe('failed');
    if (last?.type !== 'failed') return;
    expect(last.executionStarted).toBe(false);
    expect((last.error as { isRetryable?: boolean }).isRetryable).toBe(true);
    expect(last.error.message).toContain('CannotPullContainerError');
  });

  it('reports ComfyUI exiting mid-job with its exit code, as not retryable', async () => {
    const { provider, fake, fleet, clock } = setup();
    fleet.arrangeAll({ type: 'run-until-cancelled' });
    const ref = await provider.doSubmit(request('job-oom'));
    const watching = collect(provider, ref);
    await drive(
      clock,
      until(() => [...fleet.servers().values()].some((server) => server.queue().running.length > 0)),
    );
    const [server] = [...fleet.servers().values()];
    await server!.close();
    fake.stopTask(ref.remoteId, {
      stopCode: 'EssentialContainerExited',
      reason: 'Essential container in task exited',
      exitCode: 137,
    });
    const events = await drive(clock, watching, 500);
    const last = events.at(-1);
    expect(last?.type).toBe('failed');
    if (last?.type !== 'failed') return;
    expect(last.executionStarted).toBe(true);
    expect((last.error as { isRetryable?: boolean }).isRetryable).toBe(false);
    expect(last.error.message).toContain('137');
  });

  it('keeps a task warm for the next job, then stops it after the idle timeout', async () => {
    const { provider, mock, clock } = setup({ idleTimeoutMs: 120_000 });
    const first = await provider.doSubmit(request('job-warm-1'));
    expect((await drive(clock, collect(provider, first))).at(-1)?.type).toBe('completed');
    const second = await provider.doSubmit(request('job-warm-2'));
    expect(second.remoteId).toBe(first.remoteId);
    expect(mock.commandCalls(RunTaskCommand)).toHaveLength(1);
    const events = await drive(clock, collect(provider, second));
    expect(events.at(-1)?.type).toBe('completed');
    // A warm task has no cold start.
    expect(events.find((event) => event.type === 'started')).not.toHaveProperty('coldStartMs');
    expect((await provider.tasks()).map((task) => task.state)).toEqual(['ready']);
    await clock.advance(119_000);
    expect(mock.commandCalls(StopTaskCommand)).toHaveLength(0);
    await clock.advance(2_000);
    const stops = mock.commandCalls(StopTaskCommand);
    expect(stops).toHaveLength(1);
    expect(stops[0]!.args[0].input.reason).toBe(STOP_REASONS.idle);
    expect(await provider.tasks()).toEqual([]);
  });

  it('cancels a job whose task is still starting by stopping the task', async () => {
    const { provider, fake, mock, clock } = setup();
    fake.holdProvisioning(true);
    const ref = await provider.doSubmit(request('job-cancel-early'));
    const watching = collect(provider, ref);
    await clock.advance(1_000);
    await provider.doCancel(ref);
    const events = await drive(clock, watching);
    expect(events.at(-1)?.type).toBe('cancelled');
    const stops = mock.commandCalls(StopTaskCommand);
    expect(stops).toHaveLength(1);
    expect(stops[0]!.args[0].input.reason).toBe(STOP_REASONS.cancelled);
    await expect(provider.doCancel(ref)).resolves.toBeUndefined();
  });

  it('finds a task by startedBy after a restart, adopts it, and runs the resubmitted job on it', async () => {
    const before = setup();
    const jobId = 'b7c1d2e3-0000-4000-8000-00000000abcd';
    await before.provider.doSubmit(request(jobId));
    // The process dies here, before the reference is journalled. A new one starts:
    const after = setup({}, { fake: before.fake, fleet: before.fleet, clock: before.clock });
    expect(await after.provider.doLookup?.(jobId)).toBeUndefined();
    const lookups = after.fake.calls.filter((call) => call.operation === 'ListTasks');
    expect(lookups.at(-1)?.input).toMatchObject({
      cluster: 'gpu',
      startedBy: jobId,
      desiredStatus: 'RUNNING',
    });
    expect(after.fake.calls.at(-1)).toMatchObject({
      operation: 'DescribeTasks',
      input: { include: ['TAGS'] },
    });
    expect(await after.provider.tasks()).toHaveLength(1);
    const ref = await after.provider.doSubmit(request(jobId, 2));
    expect(after.mock.commandCalls(RunTaskCommand)).toHaveLength(0);
    expect(after.fake.tasks()).toHaveLength(1);
    const events = await drive(after.clock, collect(after.provider, ref));
    expect(events.at(-1)?.type).toBe('completed');
    expect(await after.provider.doLookup?.('no-such-job')).toBeUndefined();
  });

  it('watches, from a new process, a job whose prompt is already on its task', async () => {
    const before = setup();
    before.fleet.arrangeAll({ type: 'run-until-cancelled' });
    const ref = await before.provider.doSubmit(request('job-resume'));
    const abandoned = new AbortController();
    const watching = collect(before.provider, ref, abandoned.signal).catch(() => []);
    await drive(
      before.clock,
      until(() => [...before.fleet.servers().values()].some((server) => server.queue().running.length > 0)),
    );
    abandoned.abort(new Error('process stopped'));
    await watching;
    const after = setup({}, { fake: before.fake, fleet: before.fleet, clock: before.clock });
    const journalled = JSON.parse(JSON.stringify(ref)) as RemoteJobRef;
    const resumed = collect(after.provider, journalled);
    await drive(
      after.clock,
      until(() => [...after.fleet.servers().values()].some((server) => server.connectedClients().length > 0)),
    );
    for (const server of after.fleet.servers().values()) server.release();
    const events = await drive(after.clock, resumed);
    expect(events.at(-1)).toMatchObject({ type: 'completed' });
  });

  it('reports health from the cluster and the tasks it holds', async () => {
    const { provider, clock } = setup();
    const ref = await provider.doSubmit(request('job-health'));
    const health = await provider.doHealth();
    expect(health).toMatchObject({ status: 'healthy', initializingWorkers: 1, queued: 1, maxWorkers: 10 });
    await drive(clock, collect(provider, ref));
    expect(await provider.doHealth()).toMatchObject({ status: 'healthy', idleWorkers: 1, busyWorkers: 0 });
    const other = setup({ cluster: 'no-such-cluster' });
    const down = await other.provider.doHealth();
    expect(down.status).toBe('unhealthy');
    expect(down.message).toContain('no-such-cluster');
  });

  it('refuses bad settings naming the option', () => {
    const base = {
      mode: 'task' as const,
      cluster: 'gpu',
      region: 'us-east-1',
      gpu: 'L4-24GB',
      taskDefinition: 'comfyui',
    };
    expect(() => createEcs({ ...base, taskDefinition: '' })).toThrow(/"taskDefinition"/);
    expect(() => createEcs({ ...base, region: undefined })).toThrow(/"region"/);
    expect(() => createEcs({ ...base, capacityProviderStrategy: [] })).toThrow(/"capacityProviderStrategy"/);
    expect(() => createEcs({ ...base, environment: { A: 'b' } })).toThrow(/"containerName"/);
    expect(() => createEcs({ ...base, idleTimeoutMs: -1 })).toThrow(/"idleTimeoutMs"/);
    expect(() => createEcs({ ...base, mode: 'fargate' as 'task' })).toThrow(/"mode"/);
    const provider = createEcs(base);
    expect(provider.id).toBe('ecs:gpu/comfyui');
    expect(provider.platform).toBe('ecs');
    expect(provider.limits?.maxConcurrency).toBe(10);
  });
});
