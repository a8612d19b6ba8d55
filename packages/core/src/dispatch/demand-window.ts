import type { Clock } from '../spec/clock';
import type { DemandSnapshot } from '../spec/scaling-policy-v1';

/** A bounded record of recent demand: arrivals per bucket, queue waits and execution times. */
export class DemandWindow {
  private readonly arrivals: number[];
  private firstBucketStart: number;
  private readonly waits: number[] = [];
  private readonly executions: number[] = [];

  constructor(
    private readonly clock: Clock,
    private readonly bucketMs = 10_000,
    private readonly bucketCount = 360,
    private readonly sampleLimit = 1_000,
  ) {
    this.arrivals = [0];
    this.firstBucketStart = Math.floor(clock.now() / bucketMs) * bucketMs;
  }

  private roll(): void {
    const current = Math.floor(this.clock.now() / this.bucketMs) * this.bucketMs;
    const lastStart = this.firstBucketStart + (this.arrivals.length - 1) * this.bucketMs;
    const missing = Math.min(
      this.bucketCount,
      Math.max(0, Math.round((current - lastStart) / this.bucketMs)),
    );
    for (let index = 0; index < missing; index++) this.arrivals.push(0);
    while (this.arrivals.length > this.bucketCount) {
      this.arrivals.shift();
    }
    this.firstBucketStart = current - (this.arrivals.length - 1) * this.bucketMs;
  }

  /** Records one accepted job. */
  recordArrival(): void {
    this.roll();
    this.arrivals[this.arrivals.length - 1]! += 1;
  }

  /** Records how long a job waited before it started. */
  recordWait(ms: number): void {
    this.waits.push(ms);
    if (this.waits.length > this.sampleLimit) this.waits.shift();
  }

  /** Records how long a job ran. */
  recordExecution(ms: number): void {
    this.executions.push(ms);
    if (this.executions.length > this.sampleLimit) this.executions.shift();
  }

  /** The demand part of a scaling snapshot. */
  snapshot(queueDepth: number, inFlight: number): DemandSnapshot {
    this.roll();
    return {
      arrivals: [...this.arrivals],
      bucketMs: this.bucketMs,
      queueDepth,
      inFlight,
      recentWaitsMs: [...this.waits],
      recentExecutionMs: [...this.executions],
    };
  }
}
