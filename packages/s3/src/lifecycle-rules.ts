import type { LifecycleRule } from '@aws-sdk/client-s3';
import { InvalidArgumentError } from '@comfy-serverless/core';

/** Options of `lifecycleRules`. */
export interface LifecycleRulesOptions {
  /** Days after upload when outputs move to STANDARD_IA; S3 requires at least 30. */
  warmAfterDays?: number;
  /** Days after upload when outputs move to GLACIER_IR; at least 30 after `warmAfterDays` (S3's minimum stay in STANDARD_IA). */
  coldAfterDays?: number;
  /** Days after upload when outputs are deleted; after the other two. GLACIER_IR bills at least 90 days. */
  expireAfterDays?: number;
  /** Only objects under this prefix. @default '' (the whole bucket) */
  prefix?: string;
  /** The rule's ID. @default 'comfy-serverless-outputs' */
  id?: string;
}

function days(name: string, value: number | undefined, minimum: number): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < minimum) {
    throw new InvalidArgumentError({
      argument: name,
      message: `"${name}" must be a whole number of days, at least ${minimum}; got ${String(value)}.`,
    });
  }
  return value;
}

/**
 * Builds S3 lifecycle rules for job outputs: STANDARD, then STANDARD_IA after
 * `warmAfterDays`, then GLACIER_IR after `coldAfterDays`, deleted after `expireAfterDays`
 * (each step optional). Incomplete multipart uploads are aborted after a day. Pass the
 * result to `PutBucketLifecycleConfigurationCommand({ Bucket, LifecycleConfiguration: { Rules } })`.
 *
 * @example
 * lifecycleRules({ warmAfterDays: 30, coldAfterDays: 90, expireAfterDays: 365, prefix: 'outputs/' })
 */
export function lifecycleRules(options: LifecycleRulesOptions): LifecycleRule[] {
  const warm = days('warmAfterDays', options.warmAfterDays, 30);
  const cold = days('coldAfterDays', options.coldAfterDays, warm === undefined ? 0 : warm + 30);
  const expire = days('expireAfterDays', options.expireAfterDays, Math.max(1, (cold ?? warm ?? 0) + 1));
  if (warm === undefined && cold === undefined && expire === undefined) {
    throw new InvalidArgumentError({
      argument: 'options',
      message: 'lifecycleRules needs at least one of warmAfterDays, coldAfterDays, expireAfterDays.',
    });
  }
  const transitions: NonNullable<LifecycleRule['Transitions']> = [];
  if (warm !== undefined) transitions.push({ Days: warm, StorageClass: 'STANDARD_IA' });
  if (cold !== undefined) transitions.push({ Days: cold, StorageClass: 'GLACIER_IR' });
  return [
    {
      ID: options.id ?? 'comfy-serverless-outputs',
      Status: 'Enabled',
      Filter: { Prefix: options.prefix ?? '' },
      ...(transitions.length === 0 ? {} : { Transitions: transitions }),
      ...(expire === undefined ? {} : { Expiration: { Days: expire } }),
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
    },
  ];
}
