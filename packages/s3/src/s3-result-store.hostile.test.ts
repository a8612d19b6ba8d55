import { http } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3ResultStore } from './s3-result-store';
import { createS3Mock } from './test';

// Output names come from workers: keys built from them must stay under the job's prefix.
const mock = createS3Mock();
const server = setupServer(http.all('http://s3.test/*', ({ request }) => mock.handle(request)));
beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterAll(() => server.close());

describe('S3 result store against hostile output names', () => {
  it('keeps outputs named with .., absolute paths or odd characters under <prefix>/<jobId>/', async () => {
    const store = createS3ResultStore({
      bucket: 'outputs',
      prefix: 'comfy/',
      endpoint: 'http://s3.test',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret-key-example' },
    });
    const names = [
      '../../../etc/passwd',
      '/etc/shadow.png',
      '..',
      'a/../../b.png',
      'C:\\x.png',
      '\u0000.png',
    ];
    await store.storeOutputs(
      '../job',
      names.map((filename, index) => ({
        nodeId: index === 0 ? '../9' : String(index),
        kind: 'image' as const,
        filename,
        mime: 'image/png',
        data: new Uint8Array([1, 2, 3]),
      })),
    );
    const keys = mock.requests.filter((request) => request.method === 'PUT').map((request) => request.key);
    expect(keys).toHaveLength(names.length);
    for (const key of keys) {
      expect(key.startsWith('comfy/')).toBe(true);
      const parts = key.slice('comfy/'.length).split('/');
      // One folder for the job, one file name; no part walks up or is empty.
      expect(parts).toHaveLength(2);
      for (const part of parts) {
        expect(part).not.toBe('');
        expect(part.startsWith('.')).toBe(false);
      }
    }
  });
});
