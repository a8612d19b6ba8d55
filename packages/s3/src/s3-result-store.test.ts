import { InvalidArgumentError } from '@comfy-serverless/core';
import { http } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lifecycleRules } from './lifecycle-rules';
import { createS3ResultStore } from './s3-result-store';
import { createS3Mock } from './test';

const mock = createS3Mock();
const server = setupServer(http.all('http://s3.test/*', ({ request }) => mock.handle(request)));
beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterAll(() => server.close());

const connection = {
  endpoint: 'http://s3.test',
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret-key-example' },
};

describe('createS3ResultStore', () => {
  it('uploads outputs with content type and storage class and returns presigned URLs', async () => {
    const store = createS3ResultStore({
      bucket: 'outputs',
      prefix: '/comfy/',
      storageClass: 'STANDARD_IA',
      expiresInSeconds: 600,
      ...connection,
    });
    const png = new Uint8Array([137, 80, 78, 71, 1, 2, 3]);
    const outputs = await store.storeOutputs('job/1', [
      { nodeId: '9', kind: 'image', filename: 'out_00001_.png', mime: 'image/png', data: png },
      { nodeId: '12', kind: 'text', filename: 'caption.txt', mime: 'text/plain', text: 'kept inline' },
    ]);
    expect(mock.getObject('outputs', 'comfy/job_1/9-out_00001_.png')).toEqual(png);
    const put = mock.requests.find((request) => request.method === 'PUT');
    expect(put?.key).toBe('comfy/job_1/9-out_00001_.png');
    const head = await mock.handle(
      new Request('http://s3.test/outputs/comfy/job_1/9-out_00001_.png', { method: 'HEAD' }),
    );
    expect(head?.headers.get('x-amz-storage-class')).toBe('STANDARD_IA');
    expect(head?.headers.get('content-type')).toBe('image/png');
    expect(outputs[0]?.data).toBeUndefined();
    const url = new URL(outputs[0]!.url!);
    expect(url.pathname).toBe('/outputs/comfy/job_1/9-out_00001_.png');
    expect(url.searchParams.get('X-Amz-Expires')).toBe('600');
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    expect(outputs[1]).toEqual({
      nodeId: '12',
      kind: 'text',
      filename: 'caption.txt',
      mime: 'text/plain',
      text: 'kept inline',
    });
    const fetched = await fetch(outputs[0]!.url!);
    expect(new Uint8Array(await fetched.arrayBuffer())).toEqual(png);
  });

  it('validates its options and refuses an output with nothing to upload', async () => {
    expect(() => createS3ResultStore({ bucket: 'Bad_Bucket', prefix: 'x' })).toThrow(InvalidArgumentError);
    expect(() =>
      createS3ResultStore({ bucket: 'outputs', prefix: 'x', expiresInSeconds: 8 * 24 * 3600 }),
    ).toThrow(/7 days/);
    const store = createS3ResultStore({ bucket: 'outputs', prefix: 'x', ...connection });
    await expect(
      store.put('job', {
        nodeId: '1',
        kind: 'image',
        filename: 'a.png',
        mime: 'image/png',
        url: 'https://x',
      }),
    ).rejects.toThrow(/no data to upload/);
  });
});

describe('lifecycleRules', () => {
  it('moves outputs STANDARD -> STANDARD_IA -> GLACIER_IR and expires them', () => {
    expect(
      lifecycleRules({ warmAfterDays: 30, coldAfterDays: 90, expireAfterDays: 365, prefix: 'outputs/' }),
    ).toEqual([
      {
        ID: 'comfy-serverless-outputs',
        Status: 'Enabled',
        Filter: { Prefix: 'outputs/' },
        Transitions: [
          { Days: 30, StorageClass: 'STANDARD_IA' },
          { Days: 90, StorageClass: 'GLACIER_IR' },
        ],
        Expiration: { Days: 365 },
        AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
      },
    ]);
  });

  it('refuses steps S3 would refuse: IA before 30 days, Glacier less than 30 days after IA, expiry before the last move', () => {
    expect(() => lifecycleRules({ warmAfterDays: 7 })).toThrow(/warmAfterDays.*at least 30/);
    expect(() => lifecycleRules({ warmAfterDays: 30, coldAfterDays: 45 })).toThrow(
      /coldAfterDays.*at least 60/,
    );
    expect(() => lifecycleRules({ coldAfterDays: 10, expireAfterDays: 5 })).toThrow(
      /expireAfterDays.*at least 11/,
    );
    expect(() => lifecycleRules({})).toThrow(/at least one/);
    expect(lifecycleRules({ expireAfterDays: 14 })[0]).not.toHaveProperty('Transitions');
  });
});
