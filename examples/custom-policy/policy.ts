import type { ScalingPolicyV1 } from '@comfy-serverless/core';

/**
 * A user's own policy, in twenty lines: one worker per running or queued job, plus one
 * warm spare during working hours (UTC), and a 2-minute idle timeout at night.
 */
export function createOfficeHoursPolicy(): ScalingPolicyV1 {
  return {
    specificationVersion: 'v1',
    name: 'office-hours',
    decide(snapshot) {
      const hour = new Date(snapshot.now).getUTCHours();
      const working = hour >= 8 && hour < 20;
      const demand = snapshot.demand.inFlight + snapshot.demand.queueDepth;
      const targets: Record<string, { minWorkers: number; idleTimeoutSeconds: number }> = {};
      for (const target of snapshot.targets)
        targets[target.id] = {
          minWorkers: demand + (working ? 1 : 0),
          idleTimeoutSeconds: working ? 60 : 120,
        };
      return { targets, reason: working ? 'working hours' : 'night' };
    },
  };
}
