import type { Clock } from '../spec/clock';

/** A clock whose time moves only when told to; timers fire in order as it moves. */
export interface VirtualClock extends Clock {
  /** Moves time forward by `ms`, firing due timers in order and letting promise chains settle between them. */
  advance(ms: number): Promise<void>;
  /** Moves to the next timer and fires it; false when none is pending. */
  next(): Promise<boolean>;
  /** Timers not yet fired. */
  pending(): number;
  /** Sets the time without firing anything (only forward). */
  set(now: number): void;
}

interface Timer {
  id: number;
  at: number;
  callback: () => void;
}

/** Lets pending promise callbacks and I/O callbacks run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A virtual clock for deterministic tests and simulations.
 *
 * @example
 * const clock = createVirtualClock();
 * const done = sleep(5_000, { clock });
 * await clock.advance(5_000); // `done` resolves without a real wait
 */
export function createVirtualClock(options: { start?: number } = {}): VirtualClock {
  let now = options.start ?? Date.UTC(2026, 0, 1);
  let sequence = 0;
  const timers: Timer[] = [];

  const popDue = (until: number): Timer | undefined => {
    let bestIndex = -1;
    for (let index = 0; index < timers.length; index++) {
      const timer = timers[index]!;
      if (timer.at > until) continue;
      const best = timers[bestIndex];
      if (best === undefined || timer.at < best.at || (timer.at === best.at && timer.id < best.id))
        bestIndex = index;
    }
    if (bestIndex < 0) return undefined;
    return timers.splice(bestIndex, 1)[0];
  };

  const clock: VirtualClock = {
    now: () => now,
    setTimeout(callback, ms) {
      const timer = { id: ++sequence, at: now + Math.max(0, ms), callback };
      timers.push(timer);
      return timer.id;
    },
    clearTimeout(handle) {
      const index = timers.findIndex((timer) => timer.id === handle);
      if (index >= 0) timers.splice(index, 1);
    },
    async advance(ms) {
      const until = now + ms;
      await settle();
      for (;;) {
        const timer = popDue(until);
        if (timer === undefined) break;
        now = Math.max(now, timer.at);
        timer.callback();
        await settle();
      }
      now = until;
      await settle();
    },
    async next() {
      await settle();
      const timer = popDue(Number.POSITIVE_INFINITY);
      if (timer === undefined) return false;
      now = Math.max(now, timer.at);
      timer.callback();
      await settle();
      return true;
    },
    pending: () => timers.length,
    set(value) {
      if (value > now) now = value;
    },
  };
  return clock;
}
