import type { JobEvent, JobResult, JobStatus } from '../spec/job';

/** A live view of one job: its events, its result, and a way to cancel it. */
export interface JobHandle {
  readonly id: string;
  /** The status as this process last saw it. */
  status(): JobStatus;
  /**
   * The job's events from the start (previews excepted once the job has finished), then
   * live ones; ends after the terminal event.
   */
  events(): AsyncIterableIterator<JobEvent>;
  /** Resolves with the result, or rejects with the typed error that ended the job. */
  result(): Promise<JobResult>;
  /** Cancels the job (remotely too) and resolves once it has ended. */
  cancel(reason?: string): Promise<void>;
}

const HISTORY_LIMIT = 1_000;

function ignore(): void {}

/**
 * Holds what the process knows of a job while it runs: its events (for late
 * subscribers), its settled result, and the controller that stops it.
 */
export class JobRun implements JobHandle {
  readonly controller = new AbortController();
  private currentStatus: JobStatus;
  private readonly history: JobEvent[] = [];
  /** Iterators waiting for the next event; made when the first one waits. */
  private waiters: Set<() => void> | undefined;
  /** How the job ended, once it has. */
  private outcome: { result: JobResult } | { error: unknown } | undefined;
  /** Made when someone first asks for the result. */
  private settled: Promise<JobResult> | undefined;
  private resolveResult: ((result: JobResult) => void) | undefined;
  private rejectResult: ((error: unknown) => void) | undefined;
  /** Why the job is being stopped, once something asked. */
  stopRequest: { kind: 'cancelled' | 'timed_out'; reason?: string } | undefined;

  constructor(
    readonly id: string,
    status: JobStatus,
    private readonly onEvent: ((event: JobEvent) => void) | undefined,
    private readonly broadcast: (event: JobEvent) => void,
    private readonly requestStop: (run: JobRun, kind: 'cancelled' | 'timed_out', reason?: string) => void,
  ) {
    this.currentStatus = status;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get isFinished(): boolean {
    return this.outcome !== undefined;
  }

  status(): JobStatus {
    return this.currentStatus;
  }

  setStatus(status: JobStatus): void {
    this.currentStatus = status;
  }

  /** Records and delivers one event; a throwing listener never breaks the job. */
  emit(event: JobEvent): void {
    if (this.history.length < HISTORY_LIMIT || (event.type !== 'progress' && event.type !== 'preview')) {
      this.history.push(event);
    }
    if (this.onEvent !== undefined) {
      try {
        this.onEvent(event);
      } catch {
        // The caller's listener failing is the caller's problem, not the job's.
      }
    }
    this.broadcast(event);
    if (this.waiters !== undefined) for (const wake of this.waiters) wake();
  }

  /** Ends the job with its result or error, once. */
  finish(outcome: { result: JobResult } | { error: unknown }): void {
    if (this.outcome !== undefined) return;
    this.outcome = outcome;
    // Large previews are of no use after the job ended; drop them from the replay.
    for (let index = this.history.length - 1; index >= 0; index--) {
      if (this.history[index]!.type === 'preview') this.history.splice(index, 1);
    }
    if ('result' in outcome) this.resolveResult?.(outcome.result);
    else this.rejectResult?.(outcome.error);
    this.resolveResult = undefined;
    this.rejectResult = undefined;
    if (this.waiters !== undefined) {
      for (const wake of this.waiters) wake();
      this.waiters = undefined;
    }
  }

  result(): Promise<JobResult> {
    if (this.settled !== undefined) return this.settled;
    const outcome = this.outcome;
    if (outcome !== undefined) {
      this.settled = 'result' in outcome ? Promise.resolve(outcome.result) : Promise.reject(outcome.error);
    } else {
      this.settled = new Promise<JobResult>((resolve, reject) => {
        this.resolveResult = resolve;
        this.rejectResult = reject;
      });
    }
    // A result nobody awaits must not crash the host with an unhandled rejection.
    this.settled.catch(ignore);
    return this.settled;
  }

  async cancel(reason?: string): Promise<void> {
    if (this.outcome === undefined) this.requestStop(this, 'cancelled', reason);
    await this.result().then(ignore, ignore);
  }

  events(): AsyncIterableIterator<JobEvent> {
    let index = 0;
    let closed = false;
    const run = this;
    const iterator: AsyncIterableIterator<JobEvent> = {
      [Symbol.asyncIterator]() {
        return iterator;
      },
      async next(): Promise<IteratorResult<JobEvent>> {
        for (;;) {
          if (closed) return { value: undefined, done: true };
          const event = run.history[index];
          if (event !== undefined) {
            index += 1;
            return { value: event, done: false };
          }
          if (run.isFinished) return { value: undefined, done: true };
          await new Promise<void>((resolve) => {
            const waiters = (run.waiters ??= new Set());
            const wake = () => {
              waiters.delete(wake);
              resolve();
            };
            waiters.add(wake);
          });
        }
      },
      async return(): Promise<IteratorResult<JobEvent>> {
        closed = true;
        return { value: undefined, done: true };
      },
    };
    return iterator;
  }
}
