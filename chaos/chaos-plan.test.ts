import { describe, expect, it } from 'vitest';
import { chaosPlan, jobIdOfWorkflow, MISSING_CHECKPOINT, workflowOf } from './chaos-plan';
import { createSeededRandom, seededFraction } from './seeded-random';

describe('chaos plan', () => {
  it('is the same for the same seed and differs between seeds', () => {
    expect(chaosPlan(42, 1_000)).toEqual(chaosPlan(42, 1_000));
    expect(chaosPlan(43, 1_000)).not.toEqual(chaosPlan(42, 1_000));
  });

  it('makes about 3 % of the jobs fail and 2 % be cancelled, and puts the crash after the outage', () => {
    for (const seed of [1, 2, 3, 42]) {
      const plan = chaosPlan(seed, 1_000);
      const failing = plan.jobs.filter((job) => job.failing).length;
      const cancelled = plan.jobs.filter((job) => job.cancelAfterMs !== undefined).length;
      expect(failing).toBeGreaterThan(10);
      expect(failing).toBeLessThan(55);
      expect(cancelled).toBeGreaterThan(5);
      expect(cancelled).toBeLessThan(40);
      expect(plan.outageAfterAccepted).toBeLessThan(plan.crashAfterAccepted);
      expect(plan.crashAfterAccepted).toBeGreaterThanOrEqual(400);
      expect(plan.crashAfterAccepted).toBeLessThan(600);
    }
  });

  it('writes the job id into the workflow, where the mocks read it back', () => {
    const plan = chaosPlan(5, 50);
    for (const job of plan.jobs) {
      const workflow = workflowOf(job);
      expect(jobIdOfWorkflow(workflow)).toBe(job.jobId);
      expect(JSON.stringify(workflow).includes(MISSING_CHECKPOINT)).toBe(job.failing);
    }
    expect(jobIdOfWorkflow({ '6': { inputs: { text: 'a lighthouse' } } })).toBeUndefined();
    expect(jobIdOfWorkflow(null)).toBeUndefined();
  });
});

describe('seeded numbers', () => {
  it('give a fraction fixed by seed and key, spread over [0, 1)', () => {
    expect(seededFraction(1, 'a')).toBe(seededFraction(1, 'a'));
    expect(seededFraction(1, 'a')).not.toBe(seededFraction(2, 'a'));
    const draws = Array.from({ length: 2_000 }, (_, index) => seededFraction(9, `k${index}`));
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...draws)).toBeLessThan(1);
    const mean = draws.reduce((sum, value) => sum + value, 0) / draws.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
  });

  it('repeat a sequence for one seed', () => {
    const first = createSeededRandom(3);
    const second = createSeededRandom(3);
    const a = Array.from({ length: 5 }, first);
    expect(Array.from({ length: 5 }, second)).toEqual(a);
    expect(new Set(a).size).toBe(5);
  });
});
