/** A fixed-size buffer that keeps the most recent items: constant memory however many jobs pass. */
export class RingBuffer<Item> {
  private readonly items: Array<Item | undefined>;
  private next = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    this.items = new Array<Item | undefined>(capacity);
  }

  push(item: Item): void {
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count += 1;
  }

  get size(): number {
    return this.count;
  }

  /** The items, oldest first. */
  *[Symbol.iterator](): IterableIterator<Item> {
    const start = (this.next - this.count + this.capacity) % this.capacity;
    for (let offset = 0; offset < this.count; offset++) {
      yield this.items[(start + offset) % this.capacity] as Item;
    }
  }
}

/** A map that forgets its oldest entries past `capacity` (jobs this process never sees end). */
export class BoundedMap<Key, Value> extends Map<Key, Value> {
  constructor(readonly capacity: number) {
    super();
  }

  override set(key: Key, value: Value): this {
    if (!this.has(key) && this.size >= this.capacity) {
      const oldest = this.keys().next();
      if (!oldest.done) this.delete(oldest.value);
    }
    return super.set(key, value);
  }
}

/** The value at quantile `q` (0..1) of sorted numbers, by linear interpolation; undefined when empty. */
export function quantileOfSorted(sorted: readonly number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const position = (sorted.length - 1) * Math.min(1, Math.max(0, q));
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  const low = sorted[lower]!;
  const high = sorted[upper]!;
  return low + (high - low) * (position - lower);
}
