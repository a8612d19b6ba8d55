import type { ApiWorkflow, JobOutput, OutputKind } from '@comfy-serverless/core';
import { InvalidResponseError } from '@comfy-serverless/core';
import { workerOutputSchema } from './runpod-api';

/** Output files worker-comfyui returns, and how they are told apart. */
const EXTENSIONS: Record<string, { kind: OutputKind; mime: string }> = {
  png: { kind: 'image', mime: 'image/png' },
  jpg: { kind: 'image', mime: 'image/jpeg' },
  jpeg: { kind: 'image', mime: 'image/jpeg' },
  webp: { kind: 'image', mime: 'image/webp' },
  bmp: { kind: 'image', mime: 'image/bmp' },
  tif: { kind: 'image', mime: 'image/tiff' },
  tiff: { kind: 'image', mime: 'image/tiff' },
  gif: { kind: 'gif', mime: 'image/gif' },
  mp4: { kind: 'video', mime: 'video/mp4' },
  webm: { kind: 'video', mime: 'video/webm' },
  mov: { kind: 'video', mime: 'video/quicktime' },
  flac: { kind: 'audio', mime: 'audio/flac' },
  mp3: { kind: 'audio', mime: 'audio/mpeg' },
  wav: { kind: 'audio', mime: 'audio/wav' },
  ogg: { kind: 'audio', mime: 'audio/ogg' },
  opus: { kind: 'audio', mime: 'audio/opus' },
  m4a: { kind: 'audio', mime: 'audio/mp4' },
};

const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;
const BASE64_URL = /^[A-Za-z0-9_\-\s]*={0,2}\s*$/;

/**
 * Output nodes of a workflow by their `filename_prefix`, so that files worker-comfyui
 * returns (which carry only a file name) can be traced back to the node that saved them.
 */
export function outputNodesByPrefix(workflow: ApiWorkflow, limit = 50): Record<string, string> {
  const result: Record<string, string> = {};
  let size = 0;
  for (const [nodeId, node] of Object.entries(workflow)) {
    const prefix = node?.inputs?.filename_prefix;
    if (typeof prefix !== 'string' || prefix === '' || prefix.length > 200) continue;
    // Subfolders in the prefix (`renders/hero`) do not appear in the returned file name.
    const base = prefix.split('/').at(-1) ?? prefix;
    if (base === '' || base in result) continue;
    result[base] = nodeId;
    size += 1;
    if (size >= limit) break;
  }
  return result;
}

function nodeIdFor(filename: string, prefixes: Record<string, string>): string {
  let best = '';
  let bestNode = '';
  for (const [prefix, nodeId] of Object.entries(prefixes)) {
    if (filename.startsWith(prefix) && prefix.length > best.length) {
      best = prefix;
      bestNode = nodeId;
    }
  }
  return bestNode;
}

/** Decodes base64 (with or without a data URI prefix); undefined when it is not base64. */
export function decodeBase64(text: string): { bytes: Uint8Array; mime?: string } | undefined {
  let payload = text;
  let mime: string | undefined;
  const match = /^data:([^;,]+)?(?:;[^,]*)?,/.exec(text);
  if (match) {
    mime = match[1];
    payload = text.slice(match[0].length);
  }
  if (BASE64.test(payload))
    return { bytes: new Uint8Array(Buffer.from(payload, 'base64')), ...(mime ? { mime } : {}) };
  if (BASE64_URL.test(payload))
    return { bytes: new Uint8Array(Buffer.from(payload, 'base64url')), ...(mime ? { mime } : {}) };
  return undefined;
}

function describeFile(filename: string, fallback: OutputKind): { kind: OutputKind; mime: string } {
  const extension = filename.split('.').at(-1)?.toLowerCase() ?? '';
  return (
    // Own keys only: a file named `x.constructor` must not pick up Object.prototype's members.
    (Object.hasOwn(EXTENSIONS, extension) ? EXTENSIONS[extension] : undefined) ?? {
      kind: fallback,
      mime:
        fallback === 'audio' ? 'audio/flac' : fallback === 'image' ? 'image/png' : 'application/octet-stream',
    }
  );
}

/** The outputs of a COMPLETED worker-comfyui job, and the warnings it reported beside them. */
export interface DecodedWorkerOutput {
  outputs: JobOutput[];
  /** worker-comfyui's `errors` (non-fatal warnings such as unsupported output types). */
  warnings: string[];
}

/**
 * Turns worker-comfyui's `output` (`images` and `audio`, each file `base64` or `s3_url`)
 * into the core output shape. Throws `InvalidResponseError` for a shape it cannot read.
 */
export function decodeWorkerOutput(
  output: unknown,
  context: { prefixes?: Record<string, string>; url?: string; jobId?: string; providerId?: string } = {},
): DecodedWorkerOutput {
  if (output === undefined || output === null) return { outputs: [], warnings: [] };
  const parsed = workerOutputSchema.safeParse(output);
  if (!parsed.success) {
    throw new InvalidResponseError({
      message: `The job's output is not in worker-comfyui's format ({ images?, audio? }): ${parsed.error.issues
        .slice(0, 3)
        .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
        .join('; ')}. Check that the endpoint runs worker-comfyui.`,
      issues: parsed.error.issues.map((issue) => issue.message),
      ...(context.url === undefined ? {} : { url: context.url }),
      ...(context.jobId === undefined ? {} : { jobId: context.jobId }),
      ...(context.providerId === undefined ? {} : { providerId: context.providerId }),
    });
  }
  const prefixes = context.prefixes ?? {};
  const outputs: JobOutput[] = [];
  const groups: Array<[unknown[] | null | undefined, OutputKind]> = [
    [parsed.data.images, 'image'],
    [parsed.data.audio, 'audio'],
  ];
  for (const [files, fallback] of groups) {
    for (const [index, file] of (files ?? []).entries()) {
      const entry = file as { filename?: string | null; type?: string | null; data?: string | null };
      if (entry.type === 'temp' || typeof entry.data !== 'string') continue;
      const filename = entry.filename || `output_${index}.${fallback === 'audio' ? 'flac' : 'png'}`;
      const described = describeFile(filename, fallback);
      const base = {
        nodeId: nodeIdFor(filename, prefixes),
        kind: described.kind,
        filename,
        mime: described.mime,
      };
      if (entry.type === 's3_url' || /^https?:\/\//.test(entry.data)) {
        outputs.push({ ...base, url: entry.data });
        continue;
      }
      const decoded = decodeBase64(entry.data);
      if (decoded === undefined) {
        throw new InvalidResponseError({
          message: `Output "${filename}" is neither base64 nor a URL. Check that the endpoint runs worker-comfyui.`,
          ...(context.url === undefined ? {} : { url: context.url }),
        });
      }
      outputs.push({ ...base, ...(decoded.mime ? { mime: decoded.mime } : {}), data: decoded.bytes });
    }
  }
  const warnings = (parsed.data.errors ?? []).map((warning) =>
    typeof warning === 'string' ? warning : JSON.stringify(warning),
  );
  return { outputs, warnings };
}
