/**
 * Keeps a metric label's values few: a value is kept when it is short and plain and fewer
 * than `limit` distinct values were seen; anything else becomes `other`. Prometheus stores
 * one series per label value, so an unbounded label (a job id, a file name) would grow
 * without end.
 */
export class BoundedLabel {
  private readonly seen = new Set<string>();

  constructor(
    private readonly limit: number,
    private readonly secrets: readonly string[] = [],
    private readonly fallback = 'other',
  ) {}

  /** The label value to use for `value`. */
  of(value: string | undefined | null, empty = 'none'): string {
    if (value === undefined || value === null || value === '') return empty;
    if (this.secrets.some((secret) => secret.length >= 4 && value.includes(secret))) return 'redacted';
    if (this.seen.has(value)) return value;
    if (value.length > 64 || !/^[\w.:@/-]+$/.test(value) || this.seen.size >= this.limit)
      return this.fallback;
    this.seen.add(value);
    return value;
  }
}
