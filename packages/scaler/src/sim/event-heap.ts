/**
 * A binary min-heap of simulator events keyed by time, stored in parallel typed arrays
 * so that a million events cost no object allocations. Ties are broken by insertion
 * order so that a replay is deterministic.
 */
export class EventHeap {
  private times: Float64Array;
  private sequences: Float64Array;
  private payloads: Int32Array;
  private stamps: Int32Array;
  private size = 0;
  private sequence = 0;

  constructor(capacity = 1024) {
    this.times = new Float64Array(capacity);
    this.sequences = new Float64Array(capacity);
    this.payloads = new Int32Array(capacity);
    this.stamps = new Int32Array(capacity);
  }

  /** Number of events waiting. */
  get length(): number {
    return this.size;
  }

  /** Time of the earliest event, or `Infinity` when empty. */
  peekTime(): number {
    return this.size === 0 ? Number.POSITIVE_INFINITY : this.times[0]!;
  }

  /** Payload of the earliest event (valid only when not empty). */
  peekPayload(): number {
    return this.payloads[0]!;
  }

  /** Stamp of the earliest event (valid only when not empty). */
  peekStamp(): number {
    return this.stamps[0]!;
  }

  /** Adds an event. `stamp` lets the owner recognise events made stale by later changes. */
  push(time: number, payload: number, stamp: number): void {
    if (this.size === this.times.length) this.grow();
    let index = this.size++;
    const sequence = this.sequence++;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const parentTime = this.times[parent]!;
      if (parentTime < time || (parentTime === time && this.sequences[parent]! < sequence)) break;
      this.move(parent, index);
      index = parent;
    }
    this.times[index] = time;
    this.sequences[index] = sequence;
    this.payloads[index] = payload;
    this.stamps[index] = stamp;
  }

  /** Removes the earliest event. */
  pop(): void {
    if (this.size === 0) return;
    const last = --this.size;
    if (last === 0) return;
    const time = this.times[last]!;
    const sequence = this.sequences[last]!;
    const payload = this.payloads[last]!;
    const stamp = this.stamps[last]!;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= last) break;
      const right = left + 1;
      let child = left;
      if (
        right < last &&
        (this.times[right]! < this.times[left]! ||
          (this.times[right] === this.times[left] && this.sequences[right]! < this.sequences[left]!))
      )
        child = right;
      const childTime = this.times[child]!;
      if (time < childTime || (time === childTime && sequence < this.sequences[child]!)) break;
      this.move(child, index);
      index = child;
    }
    this.times[index] = time;
    this.sequences[index] = sequence;
    this.payloads[index] = payload;
    this.stamps[index] = stamp;
  }

  private move(from: number, to: number): void {
    this.times[to] = this.times[from]!;
    this.sequences[to] = this.sequences[from]!;
    this.payloads[to] = this.payloads[from]!;
    this.stamps[to] = this.stamps[from]!;
  }

  private grow(): void {
    const capacity = this.times.length * 2;
    const times = new Float64Array(capacity);
    times.set(this.times);
    const sequences = new Float64Array(capacity);
    sequences.set(this.sequences);
    const payloads = new Int32Array(capacity);
    payloads.set(this.payloads);
    const stamps = new Int32Array(capacity);
    stamps.set(this.stamps);
    this.times = times;
    this.sequences = sequences;
    this.payloads = payloads;
    this.stamps = stamps;
  }
}
