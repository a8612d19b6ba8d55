import { ECSClient } from '@aws-sdk/client-ecs';
import { ApiCallError, ConfigurationError } from '@comfy-serverless/core';
import { HttpResponse, http } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createEcs } from './ecs-provider';
import { createEcsServiceTarget } from './ecs-service-target';
import { createFakeEcs, type FakeEcs } from './test/fake-ecs';

// The AWS SDK's retry middleware runs only on the wire: aws-sdk-client-mock replaces
// `send` above it. These tests speak the ECS JSON protocol through msw.
const region = 'eu-west-1';
let fake: FakeEcs;
const seen: Array<{ target: string | null; contentType: string | null; authorization: boolean }> = [];

const server = setupServer(
  http.post(`https://ecs.${region}.amazonaws.com/`, async ({ request }) => {
    seen.push({
      target: request.headers.get('x-amz-target'),
      contentType: request.headers.get('content-type'),
      authorization: (request.headers.get('authorization') ?? '').startsWith('AWS4-HMAC-SHA256'),
    });
    const answer = await fake.handleWire({
      target: request.headers.get('x-amz-target'),
      body: await request.text(),
    });
    return new HttpResponse(answer.body, { status: answer.status, headers: answer.headers });
  }),
);

beforeAll(() => server.listen({ onUnhandledRequest: 'bypass' }));
afterEach(() => {
  server.resetHandlers();
  seen.length = 0;
  vi.restoreAllMocks();
});
afterAll(() => server.close());

function client() {
  return new ECSClient({
    region,
    credentials: { accessKeyId: 'AKIDWIRE', secretAccessKey: 'wire-secret-value' },
  });
}

describe('ECS over the JSON wire', () => {
  it('speaks X-Amz-Target and application/x-amz-json-1.1', async () => {
    fake = createFakeEcs({ region });
    fake.createService('comfyui', { desiredCount: 2 });
    const target = createEcsServiceTarget({ cluster: 'gpu', service: 'comfyui', client: client() });
    const state = await target.describe();
    expect(state.desiredWorkers).toBe(2);
    expect(seen[0]).toEqual({
      target: 'AmazonEC2ContainerServiceV20141113.DescribeServices',
      contentType: 'application/x-amz-json-1.1',
      authorization: true,
    });
  });

  it('gets through ThrottlingException with the SDK retries, without ours', async () => {
    // The SDK's backoff draws from Math.random; zero makes its waits zero.
    vi.spyOn(Math, 'random').mockReturnValue(0);
    // Tasks start at once: on the system clock a 40 ms start-up raced the (zero) SDK backoff.
    fake = createFakeEcs({ region, provisioningMs: 0, pendingMs: 0 });
    fake.createService('comfyui', { desiredCount: 1 });
    fake.failNext('DescribeServices', { name: 'ThrottlingException', message: 'Rate exceeded' }, 2);
    const target = createEcsServiceTarget({ cluster: 'gpu', service: 'comfyui', client: client() });
    const state = await target.describe();
    expect(state.runningWorkers).toBe(1);
    expect(seen.filter((entry) => entry.target?.endsWith('.DescribeServices'))).toHaveLength(3);
  });

  it('retries again on top of the SDK when throttling outlasts its attempts, then gives a retryable ApiCallError', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    fake = createFakeEcs({ region });
    fake.createService('comfyui', { desiredCount: 1 });
    fake.failNext('UpdateService', { name: 'ThrottlingException', message: 'Rate exceeded' }, 100);
    const target = createEcsServiceTarget({
      cluster: 'gpu',
      service: 'comfyui',
      client: client(),
      retry: { retries: 1, minDelayMs: 1, maxDelayMs: 1 },
    });
    const error = await target.apply({ desiredWorkers: 3 }).catch((caught: unknown) => caught);
    expect(ApiCallError.isInstance(error)).toBe(true);
    expect((error as ApiCallError).isRetryable).toBe(true);
    expect((error as ApiCallError).statusCode).toBe(400);
    expect((error as Error).message).toContain('ThrottlingException');
    expect(JSON.stringify((error as ApiCallError).toJSON())).not.toContain('wire-secret-value');
    // Three SDK attempts, twice (ours retried once).
    expect(seen.filter((entry) => entry.target?.endsWith('.UpdateService'))).toHaveLength(6);
  });

  it('retries a ServerException and does not retry ClusterNotFoundException', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    fake = createFakeEcs({ region });
    fake.failNext(
      'DescribeClusters',
      { name: 'ServerException', message: 'Service unavailable', status: 500 },
      1,
    );
    const provider = createEcs({
      mode: 'task',
      cluster: 'gpu',
      taskDefinition: 'comfyui',
      client: client(),
      gpu: 'L4-24GB',
      retry: { retries: 0 },
    });
    expect((await provider.doHealth()).status).toBe('healthy');
    expect(seen).toHaveLength(2);
    seen.length = 0;
    const lost = createEcs({
      mode: 'task',
      cluster: 'nowhere',
      taskDefinition: 'comfyui',
      client: client(),
      gpu: 'L4-24GB',
    });
    const error = await lost
      .doSubmit({ jobId: 'job-lost', workflow: {}, images: [], attempt: 1 })
      .catch((caught: unknown) => caught);
    expect(ConfigurationError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('"cluster"');
    expect(seen).toHaveLength(1);
  });

  it('creates its own client from region and credentials on first use', async () => {
    fake = createFakeEcs({ region });
    const provider = createEcs({
      mode: 'task',
      cluster: 'gpu',
      taskDefinition: 'comfyui',
      region,
      credentials: { accessKeyId: 'AKIDOWN', secretAccessKey: 'own-secret-value' },
      gpu: 'L4-24GB',
    });
    expect(seen).toHaveLength(0);
    expect((await provider.doHealth()).status).toBe('healthy');
    expect(seen).toEqual([
      {
        target: 'AmazonEC2ContainerServiceV20141113.DescribeClusters',
        contentType: 'application/x-amz-json-1.1',
        authorization: true,
      },
    ]);
  });

  it('reads RunTask failures[] from an HTTP 200 answer', async () => {
    fake = createFakeEcs({ region });
    fake.failNextRunTask([{ reason: 'RESOURCE:GPU' }]);
    const provider = createEcs({
      mode: 'task',
      cluster: 'gpu',
      taskDefinition: 'comfyui',
      client: client(),
      gpu: 'L4-24GB',
    });
    const error = await provider
      .doSubmit({ jobId: 'job-no-gpu', workflow: {}, images: [], attempt: 1 })
      .catch((caught: unknown) => caught);
    expect((error as Error).name).toBe('JobFailedError');
    expect((error as Error & { isRetryable: boolean }).isRetryable).toBe(true);
    expect(seen).toHaveLength(1);
  });
});
