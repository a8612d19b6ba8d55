import { LoadApiKeyError } from '@comfy-serverless/core';

/**
 * The RunPod API key: the `apiKey` option when given, else `RUNPOD_API_KEY`, read when a
 * request is made (never at import). Throws `LoadApiKeyError` naming both when neither is set.
 */
export function loadRunpodApiKey(apiKey: string | undefined, providerId?: string): string {
  const key = apiKey ?? process.env.RUNPOD_API_KEY;
  if (key === undefined || key.trim() === '') {
    throw new LoadApiKeyError({
      message:
        'No RunPod API key: pass the `apiKey` option or set the RUNPOD_API_KEY environment variable (RunPod console, Settings, API Keys).',
      ...(providerId === undefined ? {} : { providerId }),
    });
  }
  return key.trim();
}
