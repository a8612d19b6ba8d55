/**
 * A small seeded pseudo-random generator (mulberry32), so that a replay with the same
 * seed draws the same cold starts.
 *
 * @example
 * const random = createRandom(42);
 * random(); // 0 <= x < 1, the same sequence every run
 */
export function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}
