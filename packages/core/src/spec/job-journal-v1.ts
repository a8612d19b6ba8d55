import type { SerializedError } from './errors';
import type { ApiWorkflow, InputImage, JobResult, JobStatus, RemoteJobRef } from './job';

/** One submission of a job to one provider. */
export interface JobAttempt {
  providerId: string;
  /** Set once the provider accepted the job. */
  remote?: RemoteJobRef;
  submittedAt: number;
  /** Set once the platform reported execution started. */
  startedAt?: number;
  endedAt?: number;
  error?: SerializedError;
}

/** A job as the journal keeps it. */
export interface JobRecord {
  jobId: string;
  status: JobStatus;
  /** Bumped by every update; lets a journal refuse lost updates. */
  version: number;
  createdAt: number;
  updatedAt: number;
  /** A fingerprint of the request, to tell a resubmission from a conflicting reuse of the id. */
  requestHash: string;
  /** What is needed to submit the job again after a crash. */
  request: {
    workflow: ApiWorkflow;
    images: InputImage[];
    timeoutMs?: number;
    deadlineAt?: number;
    metadata?: Record<string, string>;
  };
  attempts: JobAttempt[];
  providerId?: string;
  /** Epoch ms when execution started. */
  startedAt?: number;
  finishedAt?: number;
  result?: JobResult;
  error?: SerializedError;
  /** The process that is driving the job, when the journal tracks ownership. */
  owner?: string;
}

/** The fields `create` takes. */
export type NewJobRecord = Omit<JobRecord, 'version' | 'updatedAt' | 'attempts' | 'status'> & {
  status?: 'queued';
};

/** A change to a job record. `status` may only move forward (queued, running, then terminal). */
export type JobRecordPatch = Partial<
  Omit<JobRecord, 'jobId' | 'version' | 'createdAt' | 'requestHash' | 'request'>
>;

/**
 * Where jobs are written before anything leaves the process, so that none is lost and
 * none is submitted twice. `createMemoryJournal()` is the default; a Redis one serves
 * many processes.
 */
export interface JobJournalV1 {
  readonly specificationVersion: 'v1';
  /** Creates the record unless one with the same job id exists; returns the stored one either way. */
  create(record: NewJobRecord): Promise<{ record: JobRecord; created: boolean }>;
  /**
   * Applies a patch. Refuses (with `InvalidArgumentError`) a status that goes backwards or
   * leaves a terminal state; returns the record after the update.
   */
  update(jobId: string, patch: JobRecordPatch): Promise<JobRecord>;
  get(jobId: string): Promise<JobRecord | undefined>;
  /** Every job not yet in a terminal state (what `resume()` re-attaches to). */
  listNonTerminal(): Promise<JobRecord[]>;
  /**
   * Optional: takes (or renews) ownership of a job for `ttlMs`; false when another live
   * owner holds it. Journals shared by many processes implement it.
   */
  claim?(jobId: string, owner: string, ttlMs: number): Promise<boolean>;
}
