import type { ApiWorkflow } from '@comfy-serverless/core';
import { sampleWorkflow } from '@comfy-serverless/core/test';
import { createSeededRandom } from './seeded-random';

/** One job of a chaos run. */
export interface ChaosJob {
  jobId: string;
  index: number;
  /** Names a checkpoint no worker has: the job must fail with a typed validation error. */
  failing: boolean;
  /** Cancelled by its host this long after it was accepted (clock ms), when set. */
  cancelAfterMs?: number;
  /** How long the RunPod mock's handler runs it, clock ms. */
  executionMs: number;
}

/** Everything a chaos run decides from its seed, shared by the orchestrator and its hosts. */
export interface ChaosPlan {
  seed: number;
  jobs: ChaosJob[];
  /** The host is killed once this many jobs were accepted. */
  crashAfterAccepted: number;
  /** The outage starts once this many jobs were accepted. */
  outageAfterAccepted: number;
  /** Which provider goes down. */
  outageOf: 'runpod' | 'comfy';
  /** Clock ms between two job arrivals. */
  arrivalEveryMs: number;
}

/** The checkpoint every worker in the run has. */
export const PRESENT_CHECKPOINT = 'sd_xl_base_1.0.safetensors';
/** A checkpoint no worker has. */
export const MISSING_CHECKPOINT = 'chaos-missing-model.safetensors';
const MARKER = 'chaos job ';

/** The plan of a run of `count` jobs under `seed`. */
export function chaosPlan(seed: number, count: number): ChaosPlan {
  const random = createSeededRandom(seed);
  const jobs: ChaosJob[] = [];
  for (let index = 0; index < count; index++) {
    const failing = random() < 0.03;
    const cancelled = random() < 0.02;
    const cancelAfterMs = Math.round(random() * 8_000);
    const executionMs = 2_000 + Math.round(random() * 6_000);
    jobs.push({
      jobId: `chaos-${seed}-${index.toString().padStart(4, '0')}`,
      index,
      failing,
      ...(cancelled ? { cancelAfterMs } : {}),
      executionMs,
    });
  }
  return {
    seed,
    jobs,
    crashAfterAccepted: Math.floor(count * (0.4 + random() * 0.2)),
    outageAfterAccepted: Math.floor(count * (0.15 + random() * 0.15)),
    outageOf: random() < 0.5 ? 'runpod' : 'comfy',
    arrivalEveryMs: 100,
  };
}

/** The workflow of a job: the job id is in its prompt text, so that mocks can tell jobs apart. */
export function workflowOf(job: ChaosJob): ApiWorkflow {
  const workflow = sampleWorkflow({
    prompt: `${MARKER}${job.jobId}`,
    checkpoint: job.failing ? MISSING_CHECKPOINT : PRESENT_CHECKPOINT,
    steps: 4,
  });
  const sampler = workflow['3'];
  if (sampler !== undefined) sampler.inputs = { ...sampler.inputs, seed: job.index };
  return workflow;
}

/** The job id written into a workflow by `workflowOf`, if any. */
export function jobIdOfWorkflow(workflow: unknown): string | undefined {
  if (workflow === null || typeof workflow !== 'object') return undefined;
  const node = (workflow as Record<string, { inputs?: { text?: unknown } } | undefined>)['6'];
  const text = node?.inputs?.text;
  return typeof text === 'string' && text.startsWith(MARKER) ? text.slice(MARKER.length) : undefined;
}
