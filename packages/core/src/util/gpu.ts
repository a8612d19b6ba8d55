import { InvalidArgumentError } from '../spec/errors';
import type { GpuSpec } from '../spec/provider-v1';

/** A GPU the SDK knows by name, with its memory and a default price. */
export interface KnownGpu {
  vramGb: number;
  /** Default USD per second (RunPod serverless list prices, June 2026). Override per provider. */
  usdPerSecond: number;
}

/**
 * Known GPU names. Prices are defaults taken from RunPod's published serverless prices;
 * every adapter lets the user set `pricing` instead.
 */
export const KNOWN_GPUS: Readonly<Record<string, KnownGpu>> = {
  'A4000-16GB': { vramGb: 16, usdPerSecond: 0.00016 },
  'L4-24GB': { vramGb: 24, usdPerSecond: 0.00019 },
  'A5000-24GB': { vramGb: 24, usdPerSecond: 0.00019 },
  'RTX3090-24GB': { vramGb: 24, usdPerSecond: 0.00019 },
  'RTX4090-24GB': { vramGb: 24, usdPerSecond: 0.00031 },
  'A6000-48GB': { vramGb: 48, usdPerSecond: 0.00034 },
  'A40-48GB': { vramGb: 48, usdPerSecond: 0.00034 },
  'L40-48GB': { vramGb: 48, usdPerSecond: 0.00053 },
  'L40S-48GB': { vramGb: 48, usdPerSecond: 0.00053 },
  'A100-40GB': { vramGb: 40, usdPerSecond: 0.00076 },
  'A100-80GB': { vramGb: 80, usdPerSecond: 0.00076 },
  'H100-80GB': { vramGb: 80, usdPerSecond: 0.00116 },
  'H200-141GB': { vramGb: 141, usdPerSecond: 0.00155 },
  'B200-180GB': { vramGb: 180, usdPerSecond: 0.0024 },
};

/** A GPU as users give it: a known name or the full form. */
export type GpuInput = string | GpuSpec;

/**
 * Turns a GPU setting into the full `{ type, vramGb }` form.
 *
 * @example resolveGpu('H100-80GB') // { type: 'H100-80GB', vramGb: 80 }
 */
export function resolveGpu(gpu: GpuInput, optionName = 'gpu'): GpuSpec {
  if (typeof gpu === 'string') {
    const known = KNOWN_GPUS[gpu];
    if (known === undefined) {
      throw new InvalidArgumentError({
        argument: optionName,
        message: `Unknown GPU name for "${optionName}": "${gpu}". Use one of ${Object.keys(KNOWN_GPUS).join(', ')}, or give { type, vramGb }.`,
      });
    }
    return { type: gpu, vramGb: known.vramGb };
  }
  if (
    gpu === null ||
    typeof gpu !== 'object' ||
    typeof gpu.type !== 'string' ||
    typeof gpu.vramGb !== 'number' ||
    !(gpu.vramGb > 0)
  ) {
    throw new InvalidArgumentError({
      argument: optionName,
      message: `"${optionName}" must be a known GPU name or { type: string, vramGb: number > 0 }; got ${safeDescribe(gpu)}.`,
    });
  }
  return { type: gpu.type, vramGb: gpu.vramGb, ...(gpu.count === undefined ? {} : { count: gpu.count }) };
}

/** The default price of a GPU, when it is known by name. */
export function defaultGpuPrice(gpu: GpuSpec): number | undefined {
  const known = KNOWN_GPUS[gpu.type];
  return known === undefined ? undefined : known.usdPerSecond * (gpu.count ?? 1);
}

/** A short description of a value for error messages, never its full content. */
export function safeDescribe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'string')
    return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value);
  if (typeof value === 'object')
    return `an object with keys ${Object.keys(value).slice(0, 5).join(', ') || '(none)'}`;
  return String(value);
}
