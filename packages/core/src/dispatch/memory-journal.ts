import { InvalidArgumentError } from '../spec/errors';
import { isTerminalStatus, type JobStatus } from '../spec/job';
import type { JobJournalV1, JobRecord, JobRecordPatch, NewJobRecord } from '../spec/job-journal-v1';

const STATUS_ORDER: Record<JobStatus, number> = {
  queued: 0,
  running: 1,
  completed: 2,
  failed: 2,
  cancelled: 2,
  timed_out: 2,
};

/**
 * Checks that a status change only moves forward (queued, running, then one terminal state)
 * and throws `InvalidArgumentError` otherwise. Every journal applies the same rule.
 */
export function assertStatusTransition(jobId: string, from: JobStatus, to: JobStatus): void {
  if (from === to) return;
  if (isTerminalStatus(from) || STATUS_ORDER[to] < STATUS_ORDER[from]) {
    throw new InvalidArgumentError({
      argument: 'status',
      message: `Job ${jobId} cannot move from "${from}" to "${to}": a job's status only moves forward and a finished job stays finished.`,
    });
  }
}

/**
 * The same operations answered at once, for a caller in this package that knows the journal
 * lives in its own memory: it saves a promise and a turn of the microtask queue per write.
 * Not part of the journal contract; other journals simply do not have it.
 */
export interface SynchronousJournal {
  create(record: NewJobRecord): { record: JobRecord; created: boolean };
  update(jobId: string, patch: JobRecordPatch): JobRecord;
  claim(jobId: string, owner: string, ttlMs: number): boolean;
}

/** Where a memory journal keeps its synchronous operations. */
export const synchronousJournal: unique symbol = Symbol.for('comfy-serverless.synchronousJournal');

/** The synchronous operations of a journal that has them (the memory journal). */
export function synchronousJournalOf(journal: JobJournalV1): SynchronousJournal | undefined {
  return (journal as { [synchronousJournal]?: SynchronousJournal })[synchronousJournal];
}

/** Options of the memory journal. */
export interface MemoryJournalOptions {
  /** Finished jobs kept for `get` and idempotent resubmission; the oldest go first. @default 10000 */
  maxFinishedJobs?: number;
  /** Milliseconds since the epoch. @default Date.now */
  now?: () => number;
}

/**
 * A job journal in this process's memory: the default. It makes submission idempotent
 * and lets `resume()` re-attach within the process, but it does not survive a crash: use a
 * Redis journal (`@comfy-serverless/redis`) for that.
 */
export function createMemoryJournal(options: MemoryJournalOptions = {}): JobJournalV1 {
  const maxFinished = options.maxFinishedJobs ?? 10_000;
  if (!(Number.isInteger(maxFinished) && maxFinished >= 0)) {
    throw new InvalidArgumentError({
      argument: 'maxFinishedJobs',
      message: `"maxFinishedJobs" must be a whole number >= 0; got ${String(options.maxFinishedJobs)}.`,
    });
  }
  const now = options.now ?? Date.now;
  const records = new Map<string, JobRecord>();
  // Insertion-ordered set of finished job ids, oldest first, for eviction.
  const finished = new Set<string>();
  const owners = new Map<string, { owner: string; until: number }>();

  function create(record: NewJobRecord): { record: JobRecord; created: boolean } {
    const existing = records.get(record.jobId);
    if (existing !== undefined) return { record: existing, created: false };
    // Every field a later update may set is present from the start, so that all records
    // share one shape and updates stay on the fast path.
    const stored: JobRecord = {
      jobId: record.jobId,
      status: 'queued',
      version: 1,
      createdAt: record.createdAt,
      updatedAt: record.createdAt,
      requestHash: record.requestHash,
      request: record.request,
      attempts: [],
      providerId: record.providerId,
      startedAt: record.startedAt,
      finishedAt: record.finishedAt,
      result: record.result,
      error: record.error,
      owner: record.owner,
    };
    records.set(record.jobId, stored);
    return { record: stored, created: true };
  }

  function update(jobId: string, patch: JobRecordPatch): JobRecord {
    const existing = records.get(jobId);
    if (existing === undefined) {
      throw new InvalidArgumentError({
        argument: 'jobId',
        message: `Job ${jobId} is not in the journal; it may have been evicted after it finished.`,
      });
    }
    if (patch.status !== undefined) assertStatusTransition(jobId, existing.status, patch.status);
    // Updated in place: records returned by this journal are live, read-only views.
    const updated: JobRecord = Object.assign(existing, patch);
    updated.version += 1;
    updated.updatedAt = now();
    if (isTerminalStatus(updated.status) && !finished.has(jobId)) {
      finished.add(jobId);
      owners.delete(jobId);
      while (finished.size > maxFinished) {
        const oldest = finished.values().next().value as string;
        finished.delete(oldest);
        records.delete(oldest);
      }
    }
    return updated;
  }

  function claim(jobId: string, owner: string, ttlMs: number): boolean {
    const current = owners.get(jobId);
    const time = now();
    if (current !== undefined && current.owner !== owner && current.until > time) return false;
    if (current !== undefined && current.owner === owner) current.until = time + ttlMs;
    else owners.set(jobId, { owner, until: time + ttlMs });
    return true;
  }

  return {
    specificationVersion: 'v1',
    async create(record: NewJobRecord) {
      return create(record);
    },
    async update(jobId: string, patch: JobRecordPatch) {
      return update(jobId, patch);
    },
    async get(jobId: string) {
      return records.get(jobId);
    },
    async listNonTerminal() {
      const result: JobRecord[] = [];
      for (const record of records.values()) if (!isTerminalStatus(record.status)) result.push(record);
      return result;
    },
    async claim(jobId: string, owner: string, ttlMs: number) {
      return claim(jobId, owner, ttlMs);
    },
    [synchronousJournal]: { create, update, claim },
  } as JobJournalV1;
}
