import { ApiCallError, ConfigurationError, JobFailedError } from '@comfy-serverless/core';
import { describe, expect, it } from 'vitest';
import { mapEcsError, runTaskFailureError, stoppedTaskError } from './ecs-error';
import { defaultTaskUrl, taskPrivateIp } from './ecs-task';
import { FakeEcsError } from './test/fake-ecs';

const context = { operation: 'RunTask', region: 'us-east-1', cluster: 'gpu', providerId: 'ecs:gpu/comfyui' };

describe('mapEcsError', () => {
  it('makes throttling and server errors retryable and keeps the status', () => {
    const throttled = mapEcsError(new FakeEcsError('ThrottlingException', 'Rate exceeded'), context);
    expect(ApiCallError.isInstance(throttled)).toBe(true);
    expect(throttled.isRetryable).toBe(true);
    expect((throttled as ApiCallError).statusCode).toBe(400);
    const server = mapEcsError(new FakeEcsError('ServerException', 'boom', 500), context);
    expect(server.isRetryable).toBe(true);
    expect(server.providerId).toBe('ecs:gpu/comfyui');
  });

  it('makes a missing cluster, service or permission a configuration error that says what to fix', () => {
    const cluster = mapEcsError(new FakeEcsError('ClusterNotFoundException', 'Cluster not found.'), context);
    expect(ConfigurationError.isInstance(cluster)).toBe(true);
    expect(cluster.isRetryable).toBe(false);
    expect(cluster.message).toContain('"cluster"');
    const denied = mapEcsError(new FakeEcsError('AccessDeniedException', 'not authorized'), context);
    expect(denied.message).toContain('ecs:RunTask');
  });

  it('treats a dropped connection as retryable and other client errors as not', () => {
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    const dropped = mapEcsError(reset, context);
    expect(dropped.isRetryable).toBe(true);
    expect((dropped as ApiCallError).statusCode).toBeUndefined();
    const invalid = mapEcsError(
      new FakeEcsError('InvalidParameterException', 'count must be between 1 and 10.'),
      context,
    );
    expect(invalid.isRetryable).toBe(false);
    expect(invalid.message).toContain('count must be');
  });

  it('redacts credentials that leak into a message', () => {
    const leaked = mapEcsError(
      new FakeEcsError(
        'ClientException',
        'bad request with Authorization: Bearer sk-live-abcdef1234567890abcdef',
      ),
      context,
    );
    expect(leaked.message).not.toContain('sk-live-abcdef1234567890abcdef');
  });
});

describe('runTaskFailureError and stoppedTaskError', () => {
  it('classifies RunTask failures', () => {
    expect(
      runTaskFailureError([{ reason: 'RESOURCE:GPU' }, { reason: 'RESOURCE:MEMORY' }], {}).isRetryable,
    ).toBe(true);
    expect(runTaskFailureError([{ reason: 'AGENT' }], {}).isRetryable).toBe(true);
    expect(ConfigurationError.isInstance(runTaskFailureError([{ reason: 'MISSING' }], {}))).toBe(true);
    expect(
      ConfigurationError.isInstance(
        runTaskFailureError([{ reason: 'RESOURCE:GPU' }, { reason: 'ATTRIBUTE' }], {}),
      ),
    ).toBe(true);
    const empty = runTaskFailureError([], { jobId: 'job-1' });
    expect(JobFailedError.isInstance(empty)).toBe(true);
    expect(empty.jobId).toBe('job-1');
  });

  it('explains stop codes', () => {
    const arn = 'arn:aws:ecs:us-east-1:1:task/gpu/abc';
    expect(stoppedTaskError({ taskArn: arn, stopCode: 'SpotInterruption' }, {}).isRetryable).toBe(true);
    expect(stoppedTaskError({ taskArn: arn, stopCode: 'TerminationNotice' }, {}).isRetryable).toBe(true);
    expect(stoppedTaskError({ taskArn: arn, stopCode: 'ServiceSchedulerInitiated' }, {}).isRetryable).toBe(
      true,
    );
    const exited = stoppedTaskError(
      { taskArn: arn, stopCode: 'EssentialContainerExited', exitCodes: [{ name: 'comfyui', exitCode: 137 }] },
      {},
    );
    expect(exited.isRetryable).toBe(false);
    expect(exited.message).toContain('comfyui exited with 137');
    expect(exited.message).toContain('abc');
  });
});

describe('task addresses', () => {
  it('reads the private IP of the ENI attachment and builds the URL', () => {
    const task = {
      taskArn: 'arn:aws:ecs:us-east-1:1:task/gpu/abc',
      attachments: [
        {
          type: 'ElasticNetworkInterface',
          details: [
            { name: 'subnetId', value: 'subnet-1' },
            { name: 'privateIPv4Address', value: '10.0.3.17' },
          ],
        },
      ],
    };
    expect(taskPrivateIp(task)).toBe('10.0.3.17');
    expect(defaultTaskUrl(task, { port: 8188 })).toBe('http://10.0.3.17:8188');
    expect(() => defaultTaskUrl({ taskArn: 'x' }, { port: 8188 })).toThrow(/awsvpc/);
    expect(taskPrivateIp({ containers: [{ networkInterfaces: [{ privateIpv4Address: '10.0.9.9' }] }] })).toBe(
      '10.0.9.9',
    );
  });
});
