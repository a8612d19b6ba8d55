import {
  ApiCallError,
  ConfigurationError,
  InvalidArgumentError,
  LoadApiKeyError,
} from '@comfy-serverless/core';
import { createVirtualClock } from '@comfy-serverless/core/test';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createRunpodEndpointTarget, type RunpodEndpointTargetSettings } from './runpod-endpoint-target';
import { type RunpodMock, startRunpodMock } from './test/runpod-mock';

let mock: RunpodMock | undefined;
afterEach(async () => {
  await mock?.close();
  mock = undefined;
  vi.unstubAllEnvs();
});

async function setup(settings: Partial<RunpodEndpointTargetSettings> = {}) {
  const clock = createVirtualClock();
  mock = await startRunpodMock({ clock, workersMin: 1, workersMax: 3, coldStartMs: 0 });
  const target = createRunpodEndpointTarget({
    endpointId: mock.endpointId,
    apiKey: mock.apiKey,
    restBaseURL: mock.restUrl,
    baseURL: mock.url,
    clock,
    random: () => 0.5,
    ...settings,
  });
  return { mock, target, clock };
}

describe('createRunpodEndpointTarget', () => {
  it('describes the endpoint: worker settings, scaler and live worker counts', async () => {
    const { target } = await setup();
    const state = await target.describe();
    expect(state).toMatchObject({
      minWorkers: 1,
      maxWorkers: 3,
      runningWorkers: 1,
      idleWorkers: 1,
      pendingWorkers: 0,
      queueDepth: 0,
      idleTimeoutSeconds: 5,
      scalerType: 'QUEUE_DELAY',
      scalerValue: 4,
      bounds: { minWorkers: 0, maxWorkers: 100 },
      drifted: false,
    });
    expect(target.specificationVersion).toBe('v1');
    expect(target.providerId).toBe('runpod:mock-endpoint');
  });

  it('applies workers, idle timeout and scaler through PATCH, and reads them back', async () => {
    const { target, mock } = await setup();
    const state = await target.apply({
      minWorkers: 2,
      maxWorkers: 6,
      idleTimeoutSeconds: 60,
      scalerType: 'REQUEST_COUNT',
      scalerValue: 2,
    });
    expect(state).toMatchObject({
      minWorkers: 2,
      maxWorkers: 6,
      idleTimeoutSeconds: 60,
      scalerType: 'REQUEST_COUNT',
    });
    expect(mock.endpoint()).toMatchObject({ workersMin: 2, workersMax: 6, idleTimeout: 60, scalerValue: 2 });
    expect(mock.stats().requests['rest-patch']).toBe(1);
    // The mock starts the extra minimum worker, as RunPod does.
    expect((await target.describe()).runningWorkers).toBe(2);
  });

  it('does not PATCH when nothing changes, and maps desiredWorkers to workersMin', async () => {
    const { target, mock } = await setup();
    await target.apply({ maxWorkers: 3 });
    expect(mock.stats().requests['rest-patch']).toBe(0);
    await target.apply({ desiredWorkers: 2 });
    expect(mock.endpoint().workersMin).toBe(2);
  });

  it('validates ranges before sending, naming the option', async () => {
    const { target, mock } = await setup({ bounds: { maxWorkers: 10 } });
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ maxWorkers: 11 }, 'maxWorkers'],
      [{ minWorkers: -1 }, 'minWorkers'],
      [{ minWorkers: 1.5 }, 'minWorkers'],
      [{ idleTimeoutSeconds: 0 }, 'idleTimeoutSeconds'],
      [{ idleTimeoutSeconds: 4_000 }, 'idleTimeoutSeconds'],
      [{ scalerType: 'CPU' }, 'scalerType'],
      [{ scalerValue: 0 }, 'scalerValue'],
      [{ bufferWorkers: 2 }, 'bufferWorkers'],
      [{ minWorkers: 5 }, 'minWorkers'],
    ];
    for (const [settings, argument] of cases) {
      const error = await target.apply(settings).catch((caught: unknown) => caught);
      expect(InvalidArgumentError.isInstance(error), JSON.stringify(settings)).toBe(true);
      expect((error as InvalidArgumentError).argument).toBe(argument);
    }
    expect(mock.stats().requests['rest-patch']).toBe(0);
    expect(() =>
      createRunpodEndpointTarget({ endpointId: 'x', bounds: { minWorkers: 5, maxWorkers: 2 } }),
    ).toThrow(InvalidArgumentError);
  });

  it("surfaces the REST API's own range errors as non-retryable", async () => {
    const { mock } = await setup();
    const response = await fetch(`${mock.restUrl}/endpoints/${mock.endpointId}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${mock.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ workersMin: 5, workersMax: 2 }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: 'workersMin must not exceed workersMax' });
    const { target } = {
      target: createRunpodEndpointTarget({
        endpointId: mock.endpointId,
        apiKey: mock.apiKey,
        restBaseURL: mock.restUrl,
        baseURL: mock.url,
        bounds: { maxWorkers: 2000 },
      }),
    };
    const error = await target.apply({ maxWorkers: 1_500 }).catch((caught: unknown) => caught);
    expect(ApiCallError.isInstance(error) && error.statusCode === 400 && !error.isRetryable).toBe(true);
    expect((error as Error).message).toContain('workersMax must be an integer');
  });

  it('reports drift when someone else changed the settings', async () => {
    const { target, mock } = await setup();
    await target.apply({ maxWorkers: 5 });
    await fetch(`${mock.restUrl}/endpoints/${mock.endpointId}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${mock.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ workersMax: 4 }),
    });
    expect((await target.describe()).drifted).toBe(true);
  });

  it('maps a bad key, a missing key and an unknown endpoint', async () => {
    const { mock } = await setup();
    const wrongKey = createRunpodEndpointTarget({
      endpointId: mock.endpointId,
      apiKey: 'sk-wrong-000000',
      restBaseURL: mock.restUrl,
      baseURL: mock.url,
    });
    const unauthorized = await wrongKey.describe().catch((caught: unknown) => caught);
    expect(
      ApiCallError.isInstance(unauthorized) && unauthorized.statusCode === 401 && !unauthorized.isRetryable,
    ).toBe(true);
    expect((unauthorized as Error).message).toContain('RUNPOD_API_KEY');
    expect((unauthorized as Error).message).not.toContain('sk-wrong-000000');

    vi.stubEnv('RUNPOD_API_KEY', '');
    const noKey = createRunpodEndpointTarget({ endpointId: mock.endpointId, restBaseURL: mock.restUrl });
    expect(LoadApiKeyError.isInstance(await noKey.describe().catch((caught: unknown) => caught))).toBe(true);

    const missing = createRunpodEndpointTarget({
      endpointId: 'nope',
      apiKey: mock.apiKey,
      restBaseURL: mock.restUrl,
    });
    expect(ConfigurationError.isInstance(await missing.describe().catch((caught: unknown) => caught))).toBe(
      true,
    );
  });
});
