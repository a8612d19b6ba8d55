import type { Clock } from '../spec/clock';

/** Options of a circuit breaker. */
export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. @default 5 */
  failureThreshold?: number;
  /** How long an open circuit excludes the provider before one trial job is let through, in ms. @default 30000 */
  cooldownMs?: number;
}

/** The state of one provider's circuit. */
export type CircuitState = 'closed' | 'open' | 'half-open';

/**
 * A circuit breaker per provider: after `failureThreshold` consecutive failures the
 * provider is excluded for `cooldownMs`, then one trial job decides whether it closes
 * again or stays open for another cool-down.
 */
export class CircuitBreaker {
  private failures = 0;
  private openedAt: number | undefined;
  private trialInFlight = false;
  private readonly failureThreshold: number;
  private readonly cooldownMs: number;

  constructor(
    private readonly clock: Clock,
    options: CircuitBreakerOptions = {},
  ) {
    this.failureThreshold = options.failureThreshold ?? 5;
    this.cooldownMs = options.cooldownMs ?? 30_000;
  }

  /** The state now. */
  get state(): CircuitState {
    if (this.openedAt === undefined) return 'closed';
    return this.clock.now() - this.openedAt >= this.cooldownMs ? 'half-open' : 'open';
  }

  /** Whether a job may be sent now. In half-open state only one trial at a time. */
  allows(): boolean {
    const state = this.state;
    if (state === 'closed') return true;
    if (state === 'open') return false;
    return !this.trialInFlight;
  }

  /** Marks that a job was sent (the half-open trial, when half-open). */
  onAttempt(): void {
    if (this.state === 'half-open') this.trialInFlight = true;
  }

  /** Records a success: the circuit closes. */
  onSuccess(): void {
    this.failures = 0;
    this.openedAt = undefined;
    this.trialInFlight = false;
  }

  /** Records a failure; returns true when this failure opened the circuit. */
  onFailure(): boolean {
    this.failures += 1;
    const wasHalfOpen = this.state === 'half-open';
    this.trialInFlight = false;
    if (wasHalfOpen || (this.openedAt === undefined && this.failures >= this.failureThreshold)) {
      this.openedAt = this.clock.now();
      return true;
    }
    return false;
  }
}
