import type { GpuInput, GpuSpec, ProviderPricing } from '@comfy-serverless/core';
import { InvalidArgumentError, KNOWN_GPUS, resolveGpu } from '@comfy-serverless/core';

/** A GPU Modal offers, with its memory and list price. */
export interface ModalGpu {
  /** The name Modal's `gpu=` takes. */
  modalName: string;
  vramGb: number;
  /** USD per second, when a price is known (secondary sources, May 2026). */
  usdPerSecond?: number;
}

/**
 * GPUs by Modal's own names. Prices are list prices gathered from secondary sources in
 * May 2026; pass `pricing` to use your own. H200 and B200 have no price here: pass one.
 */
export const MODAL_GPUS: Readonly<Record<string, ModalGpu>> = {
  T4: { modalName: 'T4', vramGb: 16, usdPerSecond: 0.000164 },
  L4: { modalName: 'L4', vramGb: 24, usdPerSecond: 0.000222 },
  A10: { modalName: 'A10', vramGb: 24, usdPerSecond: 0.000306 },
  L40S: { modalName: 'L40S', vramGb: 48, usdPerSecond: 0.000542 },
  A100: { modalName: 'A100', vramGb: 40, usdPerSecond: 0.000583 },
  'A100-40GB': { modalName: 'A100-40GB', vramGb: 40, usdPerSecond: 0.000583 },
  'A100-80GB': { modalName: 'A100-80GB', vramGb: 80, usdPerSecond: 0.000694 },
  H100: { modalName: 'H100', vramGb: 80, usdPerSecond: 0.001097 },
  H200: { modalName: 'H200', vramGb: 141 },
  B200: { modalName: 'B200', vramGb: 180 },
};

/** Core's GPU names that are the same card as one of Modal's. */
const CORE_TO_MODAL: Readonly<Record<string, string>> = {
  'L4-24GB': 'L4',
  'L40S-48GB': 'L40S',
  'A100-40GB': 'A100-40GB',
  'A100-80GB': 'A100-80GB',
  'H100-80GB': 'H100',
  'H200-141GB': 'H200',
  'B200-180GB': 'B200',
};

/** Validates a `pricing` option. */
export function validatePricing(pricing: unknown, optionName = 'pricing'): ProviderPricing {
  const candidate = pricing as ProviderPricing | null;
  if (
    candidate === null ||
    typeof candidate !== 'object' ||
    typeof candidate.usdPerSecond !== 'number' ||
    !Number.isFinite(candidate.usdPerSecond) ||
    candidate.usdPerSecond < 0
  ) {
    throw new InvalidArgumentError({
      argument: optionName,
      message: `"${optionName}" must be { usdPerSecond: number >= 0, billingIncrementSeconds? }; got ${typeof pricing}.`,
    });
  }
  return { ...candidate };
}

/**
 * Turns the `gpu` and `pricing` options into the provider's GPU and price: a Modal name
 * (`H100`, `L40S`), one of core's names (`H100-80GB`), or `{ type, vramGb }`.
 */
export function resolveModalGpu(
  gpu: GpuInput | undefined,
  pricing: ProviderPricing | undefined,
): { gpu: GpuSpec; pricing: ProviderPricing } {
  if (gpu === undefined) {
    throw new InvalidArgumentError({
      argument: 'gpu',
      message: `"gpu" is required: the GPU your ComfyWorker class runs on, one of ${Object.keys(MODAL_GPUS).join(', ')} (as in comfyui_app.py), or { type, vramGb }.`,
    });
  }
  const explicitPricing = pricing === undefined ? undefined : validatePricing(pricing);
  let spec: GpuSpec;
  let modal: ModalGpu | undefined;
  if (typeof gpu === 'string' && MODAL_GPUS[gpu] !== undefined) {
    modal = MODAL_GPUS[gpu];
    spec = { type: gpu, vramGb: modal.vramGb };
  } else if (typeof gpu === 'string' && KNOWN_GPUS[gpu] === undefined) {
    throw new InvalidArgumentError({
      argument: 'gpu',
      message: `Unknown GPU "${gpu}" for Modal. Use one of Modal's names (${Object.keys(MODAL_GPUS).join(', ')}), or give { type, vramGb } with pricing.`,
    });
  } else {
    spec = resolveGpu(gpu, 'gpu');
    const modalName = CORE_TO_MODAL[spec.type];
    modal = modalName === undefined ? undefined : MODAL_GPUS[modalName];
  }
  if (explicitPricing !== undefined) return { gpu: spec, pricing: explicitPricing };
  if (modal?.usdPerSecond === undefined) {
    throw new InvalidArgumentError({
      argument: 'pricing',
      message: `No Modal list price is known for GPU "${spec.type}": pass pricing: { usdPerSecond } (Modal's pricing page has it).`,
    });
  }
  return { gpu: spec, pricing: { usdPerSecond: modal.usdPerSecond * (spec.count ?? 1) } };
}
