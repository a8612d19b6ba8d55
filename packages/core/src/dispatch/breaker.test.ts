import { describe, expect, it } from 'vitest';
import { createVirtualClock } from '../test/virtual-clock';
import { CircuitBreaker } from './breaker';

describe('CircuitBreaker', () => {
  it('opens after the threshold, lets one trial through after the cool-down, and closes on success', async () => {
    const clock = createVirtualClock();
    const breaker = new CircuitBreaker(clock, { failureThreshold: 2, cooldownMs: 1_000 });
    expect(breaker.onFailure()).toBe(false);
    expect(breaker.onFailure()).toBe(true);
    expect(breaker.state).toBe('open');
    expect(breaker.allows()).toBe(false);
    await clock.advance(1_000);
    expect(breaker.state).toBe('half-open');
    expect(breaker.allows()).toBe(true);
    breaker.onAttempt();
    expect(breaker.allows()).toBe(false);
    breaker.onSuccess();
    expect(breaker.state).toBe('closed');
  });

  it('reopens for another cool-down when the trial fails', async () => {
    const clock = createVirtualClock();
    const breaker = new CircuitBreaker(clock, { failureThreshold: 1, cooldownMs: 1_000 });
    breaker.onFailure();
    await clock.advance(1_000);
    breaker.onAttempt();
    expect(breaker.onFailure()).toBe(true);
    expect(breaker.state).toBe('open');
    await clock.advance(999);
    expect(breaker.allows()).toBe(false);
  });
});
