import { z } from 'zod';

/** The job states RunPod reports. */
export const RUNPOD_JOB_STATUSES = [
  'IN_QUEUE',
  'IN_PROGRESS',
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TIMED_OUT',
] as const;

/** A RunPod job state. */
export type RunpodJobStatus = (typeof RUNPOD_JOB_STATUSES)[number];

/** Whether a RunPod job state is final. */
export function isRunpodTerminal(status: string): boolean {
  return status === 'COMPLETED' || status === 'FAILED' || status === 'CANCELLED' || status === 'TIMED_OUT';
}

// Tolerant: RunPod may add states; an unknown one is treated as "still going".
const statusField = z.string();
const millis = z.number().nonnegative().nullish();

/** The answer of `POST /run`. */
export const runResponseSchema = z.object({ id: z.string().min(1), status: statusField.nullish() });

/** The answer of `GET /status/{id}`, `GET /status-sync/{id}` and `POST /runsync`. */
export const statusResponseSchema = z.object({
  id: z.string().nullish(),
  status: statusField,
  delayTime: millis,
  executionTime: millis,
  output: z.unknown().optional(),
  error: z.unknown().optional(),
  details: z.unknown().optional(),
  workerId: z.string().nullish(),
});
/** A parsed job status. */
export type RunpodStatusResponse = z.infer<typeof statusResponseSchema>;

/** The answer of `GET /stream/{id}`. */
export const streamResponseSchema = z.object({
  status: statusField,
  stream: z.array(z.object({ output: z.unknown().optional() }).passthrough()).nullish(),
  error: z.unknown().optional(),
});
/** A parsed stream answer. */
export type RunpodStreamResponse = z.infer<typeof streamResponseSchema>;

const count = z.number().int().nonnegative().nullish();

/** The answer of `GET /health`. */
export const healthResponseSchema = z.object({
  jobs: z
    .object({ completed: count, failed: count, inProgress: count, inQueue: count, retried: count })
    .nullish(),
  workers: z
    .object({
      idle: count,
      running: count,
      initializing: count,
      ready: count,
      throttled: count,
      unhealthy: count,
    })
    .nullish(),
});
/** A parsed health answer. */
export type RunpodHealthResponse = z.infer<typeof healthResponseSchema>;

/** The answer of `POST /cancel/{id}`. */
export const cancelResponseSchema = z.object({ id: z.string().nullish(), status: statusField.nullish() });

/** The scaler types RunPod endpoints take. */
export const RUNPOD_SCALER_TYPES = ['QUEUE_DELAY', 'REQUEST_COUNT'] as const;
/** A RunPod scaler type. */
export type RunpodScalerType = (typeof RUNPOD_SCALER_TYPES)[number];

/** An endpoint as `GET|PATCH https://rest.runpod.io/v1/endpoints/{id}` describes it. */
export const endpointResponseSchema = z.object({
  id: z.string(),
  name: z.string().nullish(),
  workersMin: z.number().int().nonnegative(),
  workersMax: z.number().int().nonnegative(),
  idleTimeout: z.number().nonnegative().nullish(),
  scalerType: z.string().nullish(),
  scalerValue: z.number().nullish(),
  gpuTypeIds: z.array(z.string()).nullish(),
  gpuCount: z.number().nullish(),
  executionTimeoutMs: z.number().nullish(),
  networkVolumeId: z.string().nullish(),
  templateId: z.string().nullish(),
  workers: z.array(z.unknown()).nullish(),
});
/** A parsed endpoint description. */
export type RunpodEndpointResponse = z.infer<typeof endpointResponseSchema>;

/** One file of a worker-comfyui result. */
export const workerFileSchema = z.object({
  filename: z.string().nullish(),
  type: z.string().nullish(),
  data: z.string().nullish(),
});

/** The `output` of a COMPLETED worker-comfyui job. */
export const workerOutputSchema = z
  .object({
    images: z.array(workerFileSchema).nullish(),
    audio: z.array(workerFileSchema).nullish(),
    errors: z.array(z.unknown()).nullish(),
    status: z.string().nullish(),
  })
  .passthrough();
/** A parsed worker-comfyui output. */
export type WorkerOutput = z.infer<typeof workerOutputSchema>;
