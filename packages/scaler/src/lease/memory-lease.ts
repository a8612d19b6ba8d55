import type { Clock } from '@comfy-serverless/core';
import { systemClock } from '@comfy-serverless/core';
import type { LeaseGrant, LeaseV1 } from './lease-v1';

/**
 * A lease held in this process: enough for one host, and for tests of several autoscalers
 * sharing one lease object.
 *
 * @example
 * const lease = createMemoryLease();
 * const grant = await lease.acquire('host-a', 30_000);
 */
export function createMemoryLease(options: { clock?: Clock } = {}): LeaseV1 {
  const clock = options.clock ?? systemClock;
  let current: LeaseGrant | undefined;
  let lastToken = 0;
  const live = (): LeaseGrant | undefined =>
    current !== undefined && current.expiresAt > clock.now() ? current : undefined;
  const matches = (grant: LeaseGrant): boolean => {
    const held = live();
    return held !== undefined && held.holder === grant.holder && held.token === grant.token;
  };
  return {
    specificationVersion: 'v1',
    async acquire(holder, ttlMs) {
      const held = live();
      if (held !== undefined && held.holder !== holder) return undefined;
      if (held !== undefined) {
        current = { ...held, expiresAt: clock.now() + ttlMs };
        return { ...current };
      }
      current = { holder, token: ++lastToken, expiresAt: clock.now() + ttlMs };
      return { ...current };
    },
    async renew(grant, ttlMs) {
      if (!matches(grant)) return undefined;
      current = { ...grant, expiresAt: clock.now() + ttlMs };
      return { ...current };
    },
    async release(grant) {
      if (matches(grant)) current = undefined;
    },
    async isHeld(grant) {
      return matches(grant);
    },
  };
}
