import { createHash } from 'node:crypto';

/** The tag every task started for a job carries, with the job id (or its hash) as the value. */
export const JOB_ID_TAG = 'comfy-serverless:job-id';
/** The tag naming the provider that started a task. */
export const PROVIDER_TAG = 'comfy-serverless:provider';

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * The `startedBy` value of a job's task: the job id itself when it fits ECS's rule (up to
 * 36 letters, digits, `-`, `_` or `/`; a UUID does), else `cs-` and the first 33 hex digits
 * of its SHA-256. The same job id always gives the same value, so a job can be found again.
 */
export function startedByForJob(jobId: string): string {
  if (/^[A-Za-z0-9_/-]{1,36}$/.test(jobId)) return jobId;
  return `cs-${digest(jobId).slice(0, 33)}`;
}

/**
 * The value of the job-id tag: the job id when it is a valid tag value (up to 256 letters,
 * digits, spaces and `+ - = . _ : / @`), else `sha256:` and its hash.
 */
export function tagValueForJob(jobId: string): string {
  if (/^[\p{L}\p{N} +\-=._:/@]{1,256}$/u.test(jobId)) return jobId;
  return `sha256:${digest(jobId)}`;
}

/**
 * A RunTask `clientToken` (at most 64 characters): the same for retries of the same
 * submission (so a RunTask that reached ECS but whose answer was lost does not start a
 * second task), different for a new attempt or after a definite refusal.
 */
export function clientTokenFor(providerId: string, jobId: string, attempt: number, refusals: number): string {
  return digest(`${providerId}\u0000${jobId}\u0000${attempt}\u0000${refusals}`).slice(0, 64);
}
