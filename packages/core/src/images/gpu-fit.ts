import type { WorkflowRequirements } from '../spec/job';
import type { GpuSpec } from '../spec/provider-v1';

/** Options of `gpuFit` and `gpuFits`. */
export interface GpuFitOptions {
  /** Memory kept free on top of the estimate (CUDA context, fragmentation), in GB. @default 0 */
  headroomGb?: number;
}

/** Whether a workflow's memory estimate fits one GPU, and by how much. */
export interface GpuFitResult {
  fits: boolean;
  /** The estimate plus headroom, in GB; 0 when the workflow has no estimate. */
  neededGb: number;
  /** Memory of one GPU of the provider, in GB (ComfyUI runs a prompt on one GPU). */
  availableGb: number;
  /** Why it does not fit, for `NoProviderError.rejected`. */
  reason?: string;
}

/**
 * Compares a workflow's GPU memory estimate (`requirements.vramGbEstimate`) with the memory
 * of one of the provider's GPUs. Pure. A workflow with no estimate fits everywhere.
 *
 * @example gpuFit({ models: [], nodeTypes: [], vramGbEstimate: 30 }, { type: 'RTX4090-24GB', vramGb: 24 })
 * // { fits: false, neededGb: 30, availableGb: 24, reason: 'needs about 30 GB of GPU memory; RTX4090-24GB has 24 GB' }
 */
export function gpuFit(
  requirements: WorkflowRequirements,
  gpu: GpuSpec,
  options: GpuFitOptions = {},
): GpuFitResult {
  const estimate = requirements.vramGbEstimate;
  const availableGb = gpu.vramGb;
  if (estimate === undefined || !Number.isFinite(estimate)) return { fits: true, neededGb: 0, availableGb };
  const neededGb = estimate + Math.max(0, options.headroomGb ?? 0);
  if (neededGb <= availableGb) return { fits: true, neededGb, availableGb };
  return {
    fits: false,
    neededGb,
    availableGb,
    reason: `needs about ${Math.round(neededGb * 10) / 10} GB of GPU memory; ${gpu.type} has ${availableGb} GB`,
  };
}

/** Whether a workflow's memory estimate fits one of the provider's GPUs (see `gpuFit`). Pure. */
export function gpuFits(
  requirements: WorkflowRequirements,
  gpu: GpuSpec,
  options: GpuFitOptions = {},
): boolean {
  return gpuFit(requirements, gpu, options).fits;
}
