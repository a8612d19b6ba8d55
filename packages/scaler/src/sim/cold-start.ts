import { InvalidArgumentError } from '@comfy-serverless/core';
import { sortedQuantile } from './statistics';

/** A cold-start time: fixed, or drawn from measured samples. */
export type ColdStartModel = number | ColdStartDistribution;

/** Measured cold starts to draw from (an empirical distribution). */
export interface ColdStartDistribution {
  /** Samples in ms, sorted ascending. */
  readonly samplesMs: Float64Array;
  /** Mean of the samples, in ms. */
  readonly meanMs: number;
}

/**
 * Builds a cold-start distribution from samples in ms.
 *
 * @example
 * const coldStart = createColdStartDistribution([21_000, 23_000, 40_000]);
 */
export function createColdStartDistribution(samplesMs: ArrayLike<number>): ColdStartDistribution {
  const samples = Float64Array.from(samplesMs as ArrayLike<number>).filter(
    (value) => Number.isFinite(value) && value >= 0,
  );
  if (samples.length === 0)
    throw new InvalidArgumentError({
      argument: 'coldStart',
      message:
        'The cold-start distribution has no usable sample; give at least one non-negative duration in ms.',
    });
  samples.sort();
  let sum = 0;
  for (const value of samples) sum += value;
  return { samplesMs: samples, meanMs: sum / samples.length };
}

/**
 * Reads cold-start samples from a CSV: the column `column` (default: `value`, else the
 * last column), in ms.
 */
export function parseColdStartCsv(text: string, column = 'value'): ColdStartDistribution {
  const lines = text.split(/\r?\n/).filter((line) => line.length > 0);
  const header = (lines[0] ?? '').split(',').map((name) => name.trim());
  let index = header.indexOf(column);
  if (index < 0) index = header.length - 1;
  const values: number[] = [];
  for (let lineIndex = 1; lineIndex < lines.length; lineIndex++) {
    const value = Number(lines[lineIndex]!.split(',')[index]);
    if (Number.isFinite(value)) values.push(value);
  }
  return createColdStartDistribution(values);
}

/** The typical (mean) cold start of a model, in ms. */
export function meanColdStartMs(model: ColdStartModel): number {
  return typeof model === 'number' ? model : model.meanMs;
}

/** The `q` quantile of a cold-start model, in ms. */
export function coldStartQuantileMs(model: ColdStartModel, q: number): number {
  return typeof model === 'number' ? model : sortedQuantile(model.samplesMs, q);
}

/** Draws one cold start, in ms, using `random` (0..1). */
export function drawColdStartMs(model: ColdStartModel, random: () => number): number {
  if (typeof model === 'number') return model;
  const samples = model.samplesMs;
  return samples[Math.min(samples.length - 1, Math.floor(random() * samples.length))]!;
}
