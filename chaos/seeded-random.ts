import { createHash } from 'node:crypto';

/**
 * A number in [0, 1) fixed by a seed and a key: the same seed and key always give the
 * same number, whatever order the keys are asked in (unlike one shared generator, whose
 * draws depend on the order in which concurrent requests arrive).
 */
export function seededFraction(seed: number, key: string): number {
  const digest = createHash('sha256').update(`${seed}\u0000${key}`).digest();
  // 48 bits are plenty for a probability and stay exact in a double.
  return digest.readUIntBE(0, 6) / 2 ** 48;
}

/**
 * A small seeded generator (mulberry32) for sequences drawn in a fixed order, such as the
 * plan of a chaos run: which jobs fail, which are cancelled, when the outage starts.
 */
export function createSeededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4_294_967_296;
  };
}
