/**
 * The `q` quantile (0..1) of values already sorted ascending, by linear interpolation.
 * Returns 0 for an empty input.
 */
export function sortedQuantile(sorted: ArrayLike<number>, q: number): number {
  const count = sorted.length;
  if (count === 0) return 0;
  const position = Math.min(Math.max(q, 0), 1) * (count - 1);
  const lower = Math.floor(position);
  const upper = Math.min(lower + 1, count - 1);
  const weight = position - lower;
  return sorted[lower]! * (1 - weight) + sorted[upper]! * weight;
}

/** The `q` quantile of unsorted values (copies, then sorts). */
export function quantile(values: ArrayLike<number>, q: number): number {
  const sorted = Float64Array.from(values as ArrayLike<number>).sort();
  return sortedQuantile(sorted, q);
}
