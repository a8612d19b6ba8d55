import { ECSClient } from '@aws-sdk/client-ecs';
import type { FakeEcs } from './fake-ecs';

interface WireRequest {
  headers: Record<string, string>;
  body?: unknown;
}

function headerOf(headers: Record<string, string>, name: string): string | null {
  const key = Object.keys(headers).find((candidate) => candidate.toLowerCase() === name);
  return key === undefined ? null : (headers[key] ?? null);
}

/**
 * A real `ECSClient` wired to a fake control plane through its request handler: requests
 * go through the SDK's whole middleware stack (serialisation, signing, its retries) and
 * are answered by `fake.handleWire` in memory, without a socket. Handy for examples and
 * for tests that want the SDK's own behaviour without msw.
 *
 * @example
 * const fake = createFakeEcs();
 * const provider = createEcs({ mode: 'service', cluster: 'gpu', service: 'comfyui', client: createFakeEcsClient(fake), gpu: 'L4-24GB' });
 */
export function createFakeEcsClient(fake: FakeEcs, options: { maxAttempts?: number } = {}): ECSClient {
  const requestHandler = {
    async handle(request: WireRequest) {
      const body =
        typeof request.body === 'string'
          ? request.body
          : request.body instanceof Uint8Array
            ? new TextDecoder().decode(request.body)
            : '';
      const answer = await fake.handleWire({ target: headerOf(request.headers, 'x-amz-target'), body });
      return {
        response: {
          statusCode: answer.status,
          reason: answer.status === 200 ? 'OK' : 'Error',
          headers: answer.headers,
          body: new TextEncoder().encode(answer.body),
        },
      };
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs: () => ({}),
  };
  return new ECSClient({
    region: fake.region,
    credentials: { accessKeyId: 'AKIDFAKEECS', secretAccessKey: 'fake-ecs-secret' },
    requestHandler,
    ...(options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts }),
  });
}
