import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createProgressTracker } from './progress-tracker';

describe('createProgressTracker', () => {
  it('aggregates nodes done, cached nodes and the running node into one fraction', () => {
    const tracker = createProgressTracker({ totalNodes: 4 });
    tracker.cached(['1']);
    expect(tracker.fraction()).toBe(0.25);
    tracker.executing('2');
    tracker.progress('2', 1, 2);
    expect(tracker.fraction()).toBe((1 + 0.5) / 4);
    tracker.executing('3');
    expect(tracker.fraction()).toBe(2 / 4);
    tracker.progress('3', 4, 4);
    expect(tracker.fraction()).toBe(3 / 4);
  });

  it('uses progress_state when the server sends it', () => {
    const tracker = createProgressTracker({ totalNodes: 2 });
    tracker.progressState({ a: { state: 'finished' }, b: { state: 'running', value: 1, max: 4 } });
    expect(tracker.fraction()).toBe((1 + 0.25) / 2);
  });

  it('without a node count, reports the running node', () => {
    const tracker = createProgressTracker();
    tracker.progress('3', 3, 10);
    expect(tracker.fraction()).toBeCloseTo(0.3);
  });

  it('never goes backwards and stays within 0..1', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ kind: fc.constant('executing' as const), node: fc.constantFrom('1', '2', '3') }),
            fc.record({
              kind: fc.constant('progress' as const),
              node: fc.constantFrom('1', '2', '3'),
              value: fc.integer({ min: -5, max: 50 }),
              max: fc.integer({ min: 0, max: 20 }),
            }),
          ),
        ),
        fc.integer({ min: 0, max: 5 }),
        (steps, total) => {
          const tracker = createProgressTracker({ totalNodes: total });
          let last = 0;
          for (const step of steps) {
            if (step.kind === 'executing') tracker.executing(step.node);
            else tracker.progress(step.node, step.value, step.max);
            const fraction = tracker.fraction();
            expect(fraction).toBeGreaterThanOrEqual(last);
            expect(fraction).toBeLessThanOrEqual(1);
            last = fraction;
          }
        },
      ),
    );
  });
});
