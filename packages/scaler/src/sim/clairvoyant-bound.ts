import { InvalidArgumentError } from '@comfy-serverless/core';
import type { Trace } from './trace';

/** The clairvoyant lower bound of a trace: what a scaler that knew the future would bill. */
export interface ClairvoyantBound {
  /** Worker-seconds billed by the bound: the denominator of "cost ratio to the bound". */
  gpuSeconds: number;
  /** Sum of execution times alone: a stricter floor no scaler reaches. */
  executionSeconds: number;
  /** Workers the bound starts. */
  workerStarts: number;
  /** Most jobs running at once when every job starts on arrival. */
  peakConcurrency: number;
}

/** Index of the last element <= value in an ascending array, or -1. */
function lastAtMost(sorted: number[], value: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (sorted[middle]! <= value) low = middle + 1;
    else high = middle;
  }
  return low - 1;
}

/**
 * The clairvoyant lower bound as ../shared/traces/README.md defines it: every job starts
 * the moment it arrives; a worker is started exactly one cold start before it is first
 * needed (the cold start is billed); after a job a worker is kept warm through an idle
 * gap no longer than a cold start and stopped otherwise; jobs go to workers best-fit
 * (the warm worker that freed last). With a cold-start distribution, pass its mean.
 *
 * @example
 * const bound = computeClairvoyantBound(trace, 23_000);
 * const ratio = result.gpuSeconds / bound.gpuSeconds;
 */
export function computeClairvoyantBound(trace: Trace, coldStartMs: number): ClairvoyantBound {
  if (!(coldStartMs >= 0))
    throw new InvalidArgumentError({
      argument: 'coldStartMs',
      message: `coldStartMs must be >= 0, got ${coldStartMs}.`,
    });
  // Times at which each live worker frees, ascending.
  const freeAt: number[] = [];
  let billedMs = 0;
  let executionMs = 0;
  let workerStarts = 0;
  let peakConcurrency = 0;
  for (let job = 0; job < trace.count; job++) {
    const arrival = trace.arrivalMs[job]!;
    const execution = trace.executionMs[job]!;
    executionMs += execution;
    // Workers idle for longer than a cold start were stopped when they freed.
    let dead = 0;
    while (dead < freeAt.length && freeAt[dead]! < arrival - coldStartMs) dead++;
    if (dead > 0) freeAt.splice(0, dead);
    const best = lastAtMost(freeAt, arrival);
    if (best >= 0) {
      billedMs += arrival - freeAt[best]!;
      freeAt.splice(best, 1);
    } else {
      billedMs += coldStartMs;
      workerStarts++;
    }
    const end = arrival + execution;
    const position = lastAtMost(freeAt, end) + 1;
    freeAt.splice(position, 0, end);
    const busy = freeAt.length - (lastAtMost(freeAt, arrival) + 1);
    if (busy > peakConcurrency) peakConcurrency = busy;
    billedMs += execution;
  }
  return {
    gpuSeconds: billedMs / 1000,
    executionSeconds: executionMs / 1000,
    workerStarts,
    peakConcurrency,
  };
}
