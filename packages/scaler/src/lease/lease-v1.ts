/** Proof of holding a lease: who holds it, its fencing token and when it lapses. */
export interface LeaseGrant {
  holder: string;
  /**
   * Fencing token: strictly greater at every new acquisition of the lease, so that a
   * holder that paused past its expiry can be told apart from the current one.
   */
  token: number;
  /** Epoch ms at which the grant lapses unless renewed. */
  expiresAt: number;
}

/**
 * A leader lease: only the holder applies scaling decisions. `createMemoryLease` holds it
 * in the process; a Redis implementation (for hosts on many machines) fits the same
 * interface: `acquire` as `SET key holder NX PX ttl` plus an `INCR` for the token,
 * `renew`/`release` as compare-and-set scripts on holder and token.
 */
export interface LeaseV1 {
  readonly specificationVersion: 'v1';
  /** Tries to take the lease for `ttlMs`; the grant, or undefined when someone else holds it. */
  acquire(holder: string, ttlMs: number): Promise<LeaseGrant | undefined>;
  /** Extends a held lease; the new grant, or undefined when it was lost (expired or taken). */
  renew(grant: LeaseGrant, ttlMs: number): Promise<LeaseGrant | undefined>;
  /** Gives the lease up, if this grant still holds it. */
  release(grant: LeaseGrant): Promise<void>;
  /** Whether this grant (holder and token) is still the current, unexpired one. */
  isHeld(grant: LeaseGrant): Promise<boolean>;
}
