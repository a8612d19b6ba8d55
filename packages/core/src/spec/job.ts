import type { SerializedError } from './errors';

/** One node of an API-format workflow. */
export interface WorkflowNode {
  class_type: string;
  inputs: Record<string, unknown>;
  _meta?: { title?: string; [key: string]: unknown };
  [key: string]: unknown;
}

/** An API-format ComfyUI workflow: node id to node. */
export type ApiWorkflow = Record<string, WorkflowNode>;

/** The states of a job. `completed`, `failed`, `cancelled` and `timed_out` are terminal. */
export type JobStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled' | 'timed_out';

/** The terminal job states. */
export const TERMINAL_JOB_STATUSES: readonly JobStatus[] = ['completed', 'failed', 'cancelled', 'timed_out'];

/** Whether a status is terminal. */
export function isTerminalStatus(status: JobStatus): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled' || status === 'timed_out';
}

/** An input image sent with a job; ComfyUI's `LoadImage` nodes refer to it by `name`. */
export interface InputImage {
  name: string;
  /** The bytes, or a base64 string (a data URI is accepted too). */
  data: Uint8Array | string;
  mime?: string;
}

/** A model a workflow needs, by ComfyUI folder and file name. */
export interface ModelRef {
  /** ComfyUI's model folder (`checkpoints`, `loras`, ...), or null when it could not be told. */
  folder: string | null;
  name: string;
  sizeBytes?: number;
  sha256?: string;
}

/** What a workflow needs from the worker that runs it (the result of workflow analysis). */
export interface WorkflowRequirements {
  models: ModelRef[];
  nodeTypes: string[];
  /** Estimated GPU memory need in GB. */
  vramGbEstimate?: number;
}

/** The kinds of output a workflow produces. */
export type OutputKind = 'image' | 'video' | 'gif' | 'audio' | 'text' | 'file';

/** One output of a finished job, normalised across platforms. */
export interface JobOutput {
  nodeId: string;
  kind: OutputKind;
  filename: string;
  mime: string;
  /** The bytes, when the platform returned them inline or they were fetched. */
  data?: Uint8Array;
  /** Where the file can be fetched, when the platform stored it elsewhere (S3, ...). */
  url?: string;
  /** The content of a text output. */
  text?: string;
}

/** How long a job spent in each phase, in milliseconds. */
export interface JobTiming {
  /** From acceptance until execution started (includes routing, admission and platform queue). */
  queuedMs: number;
  /** The part of the wait spent starting a worker, when the platform says. */
  coldStartMs?: number;
  executionMs: number;
  totalMs: number;
}

/** What a job cost. */
export interface JobCost {
  usd: number;
  gpuSeconds: number;
  providerId: string;
}

/** The result of a completed job. */
export interface JobResult {
  jobId: string;
  status: 'completed';
  outputs: JobOutput[];
  timing: JobTiming;
  cost: JobCost;
  providerId: string;
  /** How many submissions it took (1 when the first one succeeded). */
  attempts: number;
}

/**
 * A job as the dispatcher hands it to a provider. The provider must treat `jobId` as the
 * idempotency key where its platform supports one.
 */
export interface ProviderJobRequest {
  jobId: string;
  workflow: ApiWorkflow;
  images: InputImage[];
  requirements?: WorkflowRequirements;
  /** Epoch milliseconds after which the job is of no use to the caller. */
  deadlineAt?: number;
  /** 1 for the first submission of this job, counting every provider tried. */
  attempt: number;
  /** Caller metadata passed through (user id, tags). */
  metadata?: Record<string, string>;
}

/**
 * What a provider returns from `doSubmit`: enough to watch or cancel the job later, also
 * from another process after a crash. It must be JSON-serialisable; it is journalled.
 */
export interface RemoteJobRef {
  /** The platform's id for the job (RunPod job id, Modal call id, ComfyUI prompt id, ...). */
  remoteId: string;
  /** Whatever else the provider needs to find the job again (server URL, task ARN, ...). */
  data?: Record<string, unknown>;
}

/** Events a provider yields while it watches a job. */
export type ProviderJobEvent =
  | { type: 'queued'; position?: number }
  | {
      type: 'started';
      /** Time the platform spent starting a worker for this job, when it says. */
      coldStartMs?: number;
      /** Time from submission until execution started, when the platform says. */
      queuedMs?: number;
      workerId?: string;
    }
  | { type: 'progress'; fraction: number; value?: number; max?: number; nodeId?: string }
  | { type: 'preview'; mime: string; data: Uint8Array; nodeId?: string }
  | { type: 'output'; output: JobOutput }
  | {
      type: 'completed';
      /** Every output; when absent, the outputs yielded as `output` events are the result. */
      outputs?: JobOutput[];
      timing?: { queuedMs?: number; coldStartMs?: number; executionMs?: number };
      /** GPU-seconds billed for this job, when the platform bills per job. */
      gpuSeconds?: number;
    }
  | {
      type: 'failed';
      error: SerializedError | Error;
      /** Whether execution had begun on a worker; decides whether another provider may be tried. */
      executionStarted: boolean;
    }
  | { type: 'cancelled' };

/** The events the dispatcher emits for a job. */
export type JobEvent =
  | {
      type: 'queued';
      jobId: string;
      at: number;
      /** The caller's metadata (user id, tags), for logs and traces. */
      metadata?: Record<string, string>;
    }
  | { type: 'routed'; jobId: string; at: number; providerId: string; candidates: string[] }
  | { type: 'submitted'; jobId: string; at: number; providerId: string; remoteId: string; attempt: number }
  | {
      type: 'started';
      jobId: string;
      at: number;
      providerId: string;
      coldStartMs?: number;
      /** The worker (container, task) that runs the job, when the platform says. */
      workerId?: string;
    }
  | { type: 'progress'; jobId: string; at: number; providerId: string; fraction: number; nodeId?: string }
  | { type: 'preview'; jobId: string; at: number; providerId: string; mime: string; data: Uint8Array }
  | { type: 'output'; jobId: string; at: number; providerId: string; output: JobOutput }
  | {
      type: 'retrying';
      jobId: string;
      at: number;
      providerId: string;
      error: SerializedError;
      nextProviderId: string;
      attempt: number;
      delayMs: number;
    }
  | { type: 'completed'; jobId: string; at: number; result: JobResult }
  | { type: 'failed'; jobId: string; at: number; error: SerializedError }
  | { type: 'cancelled'; jobId: string; at: number; reason?: string }
  | { type: 'timed_out'; jobId: string; at: number; timeoutMs: number };

/** The type names of `JobEvent`. */
export type JobEventType = JobEvent['type'];
