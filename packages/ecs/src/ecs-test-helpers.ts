import type { ProviderJobEvent, ProviderV1, RemoteJobRef } from '@comfy-serverless/core';
import { sampleWorkflow, type VirtualClock } from '@comfy-serverless/core/test';

/** A small API-format txt2img workflow the fake ComfyUI accepts. For tests only. */
export const txt2img = (sampler = 'KSampler') => sampleWorkflow({ sampler, size: 512 });

/** Watch settings that keep tests fast. */
export const fastWatch = { pollIntervalMs: 20, socketPollIntervalMs: 100, missingChecks: 3 };

/**
 * Settles a promise while moving a virtual clock forward in steps, with a real
 * millisecond between steps so that loopback I/O (the fake ComfyUI servers) can run.
 */
export async function drive<T>(clock: VirtualClock, promise: Promise<T>, stepMs = 100): Promise<T> {
  let done = false;
  promise.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  for (let steps = 0; !done && steps < 20_000; steps++) {
    await clock.advance(stepMs);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return promise;
}

/** Every event of a watch until it ends (or throws). */
export async function collect(
  provider: ProviderV1,
  ref: RemoteJobRef,
  signal?: AbortSignal,
): Promise<ProviderJobEvent[]> {
  const events: ProviderJobEvent[] = [];
  for await (const event of provider.doWatch(ref, signal ? { signal } : {})) events.push(event);
  return events;
}

/** Resolves once `check` holds, polling in real time (for conditions on loopback servers). */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
