import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clientTokenFor, startedByForJob, tagValueForJob } from './ecs-job-tags';

describe('job tags', () => {
  it('always gives a startedBy ECS accepts, the same for the same job id', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 300 }), (jobId) => {
        const startedBy = startedByForJob(jobId);
        expect(startedBy).toMatch(/^[A-Za-z0-9_/-]{1,36}$/);
        expect(startedByForJob(jobId)).toBe(startedBy);
      }),
    );
    expect(startedByForJob('0b6f4c2e-9a51-4f7e-8d0c-1f2e3d4c5b6a')).toBe(
      '0b6f4c2e-9a51-4f7e-8d0c-1f2e3d4c5b6a',
    );
    expect(startedByForJob('a'.repeat(37))).toMatch(/^cs-[0-9a-f]{33}$/);
  });

  it('always gives a valid tag value, distinct for distinct job ids', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 400 }),
        fc.string({ minLength: 1, maxLength: 400 }),
        (a, b) => {
          const value = tagValueForJob(a);
          expect(value.length).toBeLessThanOrEqual(256);
          expect(value).toMatch(/^[\p{L}\p{N} +\-=._:/@]+$/u);
          if (a !== b) expect(tagValueForJob(b)).not.toBe(value);
        },
      ),
    );
  });

  it('gives client tokens of at most 64 characters that change with attempt and refusals only', () => {
    fc.assert(
      fc.property(fc.string(), fc.nat(20), fc.nat(5), (jobId, attempt, refusals) => {
        const token = clientTokenFor('ecs:gpu/comfyui', jobId, attempt, refusals);
        expect(token.length).toBeLessThanOrEqual(64);
        expect(clientTokenFor('ecs:gpu/comfyui', jobId, attempt, refusals)).toBe(token);
        expect(clientTokenFor('ecs:gpu/comfyui', jobId, attempt + 1, refusals)).not.toBe(token);
        expect(clientTokenFor('ecs:gpu/comfyui', jobId, attempt, refusals + 1)).not.toBe(token);
      }),
    );
  });
});
