import { describe, expect, it } from 'vitest';
import { expectedWaitMs, type RouteProviderSnapshot, routeJob } from './router';

function provider(overrides: Partial<RouteProviderSnapshot> & { id: string }): RouteProviderSnapshot {
  return {
    gpu: { type: 'L4-24GB', vramGb: 24 },
    pricing: { usdPerSecond: 0.0002 },
    coldStartMs: 20_000,
    expectedExecutionMs: 30_000,
    available: true,
    queued: 0,
    inFlight: 0,
    maxConcurrency: Number.POSITIVE_INFINITY,
    ...overrides,
  };
}

const now = 1_000;

describe('routeJob', () => {
  it('leaves out providers whose GPU is too small, with the reason', () => {
    const decision = routeJob({
      vramGbEstimate: 30,
      providers: [provider({ id: 'l4' }), provider({ id: 'a100', gpu: { type: 'A100-80GB', vramGb: 80 } })],
    });
    expect(decision.candidates.map((candidate) => candidate.providerId)).toEqual(['a100']);
    expect(decision.rejected.l4).toMatch(/30\.0 GB.*24 GB/);
  });

  it('ranks by expected cost: price times expected wait plus execution', () => {
    const cheapCold = provider({ id: 'cheap-cold', pricing: { usdPerSecond: 0.0002 }, coldStartMs: 60_000 });
    const dearWarm = provider({
      id: 'dear-warm',
      pricing: { usdPerSecond: 0.0003 },
      health: { status: 'healthy', idleWorkers: 1, queued: 0, checkedAt: now },
    });
    // cheap-cold: 0.0002 * 90 s = 0.018; dear-warm: 0.0003 * 30 s = 0.009
    const decision = routeJob({ providers: [cheapCold, dearWarm] });
    expect(decision.candidates.map((candidate) => candidate.providerId)).toEqual(['dear-warm', 'cheap-cold']);
    expect(decision.candidates[0]?.expectedCostUsd).toBeCloseTo(0.009, 10);
    expect(decision.candidates[1]?.expectedCostUsd).toBeCloseTo(0.018, 10);
  });

  it('puts providers within the latency budget first, then the rest by expected time', () => {
    const slowCheap = provider({ id: 'slow-cheap', pricing: { usdPerSecond: 0.0001 }, coldStartMs: 100_000 });
    const fastDear = provider({ id: 'fast-dear', pricing: { usdPerSecond: 0.002 }, coldStartMs: 1_000 });
    const unbounded = routeJob({ providers: [slowCheap, fastDear] });
    expect(unbounded.candidates[0]?.providerId).toBe('slow-cheap');
    const bounded = routeJob({ latencyBudgetMs: 60_000, providers: [slowCheap, fastDear] });
    expect(bounded.candidates.map((candidate) => [candidate.providerId, candidate.withinBudget])).toEqual([
      ['fast-dear', true],
      ['slow-cheap', false],
    ]);
  });

  it('excludes open circuits and unhealthy providers', () => {
    const decision = routeJob({
      providers: [
        provider({ id: 'open', available: false }),
        provider({
          id: 'sick',
          health: { status: 'unhealthy', message: 'endpoint disabled', checkedAt: now },
        }),
        provider({ id: 'ok' }),
      ],
    });
    expect(decision.candidates.map((candidate) => candidate.providerId)).toEqual(['ok']);
    expect(decision.rejected.open).toMatch(/circuit/);
    expect(decision.rejected.sick).toMatch(/endpoint disabled/);
  });

  it('excludes images without a node type, and images that lack models and cannot load them', () => {
    const decision = routeJob({
      nodeTypes: ['KSampler', 'UnetLoaderGGUF'],
      models: [{ folder: 'unet', name: 'flux1-dev-Q4_0.gguf' }],
      providers: [
        provider({ id: 'no-gguf', image: { id: 'base', nodeTypes: ['KSampler'] } }),
        provider({
          id: 'baked-other',
          image: {
            id: 'sdxl',
            nodeTypes: ['KSampler', 'UnetLoaderGGUF'],
            models: { unet: [] },
            canLoadModels: false,
          },
        }),
        provider({
          id: 'right',
          image: {
            id: 'flux-gguf',
            nodeTypes: ['KSampler', 'UnetLoaderGGUF'],
            models: { unet: ['flux1-dev-Q4_0.gguf'] },
            canLoadModels: false,
          },
        }),
      ],
    });
    expect(decision.candidates.map((candidate) => candidate.providerId)).toEqual(['right']);
    expect(decision.rejected['no-gguf']).toMatch(/UnetLoaderGGUF/);
    expect(decision.rejected['baked-other']).toMatch(/flux1-dev-Q4_0\.gguf/);
  });

  it('breaks cost ties by region, then by expected time, then by id', () => {
    const decision = routeJob({
      preferRegion: 'eu-west-1',
      providers: [
        provider({ id: 'b-us', region: 'us-east-1' }),
        provider({ id: 'a-eu', region: 'eu-west-1' }),
        provider({ id: 'c-us', region: 'us-east-1' }),
      ],
    });
    expect(decision.candidates.map((candidate) => candidate.providerId)).toEqual(['a-eu', 'b-us', 'c-us']);
  });

  it('is a pure function of its input', () => {
    const input = {
      providers: [provider({ id: 'x' }), provider({ id: 'y', pricing: { usdPerSecond: 0.0001 } })],
    };
    const copy = structuredClone(input);
    expect(routeJob(input)).toEqual(routeJob(input));
    expect(input).toEqual(copy);
  });
});

describe('expectedWaitMs', () => {
  it('is zero with an idle worker, a cold start when the pool can grow, and a drain time when it cannot', () => {
    expect(
      expectedWaitMs(
        provider({ id: 'p', health: { status: 'healthy', idleWorkers: 2, queued: 1, checkedAt: now } }),
      ),
    ).toBe(0);
    expect(
      expectedWaitMs(
        provider({ id: 'p', health: { status: 'healthy', busyWorkers: 2, maxWorkers: 5, checkedAt: now } }),
      ),
    ).toBe(20_000);
    expect(
      expectedWaitMs(
        provider({
          id: 'p',
          health: { status: 'healthy', busyWorkers: 2, maxWorkers: 2, queued: 3, checkedAt: now },
        }),
      ),
    ).toBe(2 * 30_000);
    expect(expectedWaitMs(provider({ id: 'p' }))).toBe(20_000);
  });
});

describe('routeJob with regions', () => {
  const regions = { primary: 'eu-west-1', secondary: ['us-east-1'], disasterRecovery: ['ap-south-1'] };
  const eu = provider({ id: 'eu', region: 'eu-west-1', pricing: { usdPerSecond: 0.001 } });
  const us = provider({ id: 'us', region: 'us-east-1', pricing: { usdPerSecond: 0.0002 } });
  const other = provider({ id: 'other', region: 'sa-east-1', pricing: { usdPerSecond: 0.0001 } });
  const dr = provider({ id: 'dr', region: 'ap-south-1', pricing: { usdPerSecond: 0.00001 } });

  it('orders primary, secondary, other regions, then disaster recovery, whatever the prices', () => {
    const decision = routeJob({ regions, providers: [dr, other, us, eu] });
    expect(decision.candidates.map((candidate) => candidate.providerId)).toEqual(['eu', 'us', 'other', 'dr']);
  });

  it("puts the caller's region first", () => {
    const decision = routeJob({ regions, preferRegion: 'us-east-1', providers: [dr, other, us, eu] });
    expect(decision.candidates[0]?.providerId).toBe('us');
  });

  it('spills from a saturated primary to the secondaries, still before other regions', () => {
    const full = { ...eu, queued: 4, inFlight: 4, maxConcurrency: 8 };
    const decision = routeJob({ regions, providers: [dr, other, us, full] });
    expect(decision.candidates.map((candidate) => candidate.providerId)).toEqual(['us', 'eu', 'other', 'dr']);
  });

  it('uses disaster recovery when every other region is out', () => {
    const down = { status: 'unhealthy' as const, checkedAt: now };
    const decision = routeJob({
      regions,
      providers: [dr, { ...eu, health: down }, { ...us, health: down }, { ...other, available: false }],
    });
    expect(decision.candidates.map((candidate) => candidate.providerId)).toEqual(['dr']);
  });
});

describe('routeJob with payload limits', () => {
  it('leaves out providers whose request limit the job exceeds, saying so', () => {
    const decision = routeJob({
      payloadBytes: 12_000_000,
      providers: [
        provider({ id: 'runpod', maxPayloadBytes: 10_000_000 }),
        provider({ id: 'comfy', maxPayloadBytes: 100_000_000 }),
      ],
    });
    expect(decision.candidates.map((candidate) => candidate.providerId)).toEqual(['comfy']);
    expect(decision.rejected.runpod).toMatch(/12000000 bytes, over its 10000000-byte limit/);
  });
});
