import type {
  ComfyNodeError,
  ComfyServerlessError,
  InputImage,
  JobOutput,
  OutputKind,
  ProviderJobEvent,
  ProviderJobRequest,
} from '@comfy-serverless/core';
import {
  ComfyExecutionError,
  ComfyValidationError,
  InvalidResponseError,
  JobCancelledError,
  JobFailedError,
  JobTimeoutError,
} from '@comfy-serverless/core';

/** The request `ComfyWorker.run` takes (see deploy/modal/comfyui_app.py). */
export interface ModalRunRequest {
  jobId: string;
  workflow: ProviderJobRequest['workflow'];
  /** Input images; `data` is bytes (SDK calls, CBOR) or base64 (HTTP calls, JSON). */
  images: Array<{ name: string; data: Uint8Array | string }>;
  /** Epoch ms after which the container stops waiting and reports a timeout. */
  deadlineAt?: number;
  /** Epoch ms the job was handed to Modal, so that the container can tell its queue time. */
  submittedAt?: number;
}

/** How a job's phases went, as the reference app measures them inside the container. */
export interface ModalRunTiming {
  /** Epoch ms the container began the job. */
  startedAt?: number;
  queuedMs?: number;
  /** Time this container spent starting ComfyUI, reported on its first job only. */
  coldStartMs?: number;
  executionMs: number;
  totalMs?: number;
}

/** A decoded result of `ComfyWorker.run`. */
export interface ModalRunResult {
  outputs: JobOutput[];
  timing: ModalRunTiming;
  /** The failure the container reported, already typed; absent when the job succeeded. */
  error?: ComfyServerlessError;
  /** For a failure: whether ComfyUI had begun executing (false for a refused prompt). */
  executionStarted: boolean;
  /** Whether the container reports the job as interrupted (cancelled). */
  cancelled: boolean;
  workerId?: string;
}

const OUTPUT_KINDS: readonly OutputKind[] = ['image', 'video', 'gif', 'audio', 'text', 'file'];
const MIME_PATTERN = /^[a-z]+\/[\w.+-]+$/;
const BASE64_PATTERN = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

function toBytes(data: InputImage['data']): Uint8Array {
  if (typeof data !== 'string') return data;
  const comma = data.startsWith('data:') ? data.indexOf(',') : -1;
  return new Uint8Array(Buffer.from(comma >= 0 ? data.slice(comma + 1) : data, 'base64'));
}

/**
 * Builds the argument of `ComfyWorker.run` from a job: images as bytes for SDK calls
 * (`encoding: 'bytes'`) or base64 for the HTTP endpoint (`encoding: 'base64'`).
 */
export function buildRunRequest(
  request: ProviderJobRequest,
  options: { encoding: 'bytes' | 'base64'; submittedAt: number },
): ModalRunRequest {
  const images = request.images.map((image) => {
    const bytes = toBytes(image.data);
    return {
      name: image.name,
      data: options.encoding === 'bytes' ? bytes : Buffer.from(bytes).toString('base64'),
    };
  });
  return {
    jobId: request.jobId,
    workflow: request.workflow,
    images,
    submittedAt: options.submittedAt,
    ...(request.deadlineAt === undefined ? {} : { deadlineAt: request.deadlineAt }),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return (
    value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Uint8Array)
  );
}

function optionalNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** A message for an error value that is not an object, never throwing (a prototype-less object cannot be `String()`ed). */
function describeErrorValue(value: unknown): string {
  try {
    return typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    return 'The ComfyUI worker reported an error in a form that cannot be shown.';
  }
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function decodeData(value: unknown, path: string, issues: string[]): Uint8Array | undefined {
  if (value === undefined || value === null) return undefined;
  if (value instanceof Uint8Array) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (typeof value === 'string') {
    const payload = value.startsWith('data:') ? value.slice(value.indexOf(',') + 1) : value;
    if (!BASE64_PATTERN.test(payload)) {
      issues.push(`${path}: not base64`);
      return undefined;
    }
    return new Uint8Array(Buffer.from(payload, 'base64'));
  }
  issues.push(`${path}: expected bytes or a base64 string`);
  return undefined;
}

function flattenNodeErrors(raw: unknown): ComfyNodeError[] {
  if (!isRecord(raw)) return [];
  const flat: ComfyNodeError[] = [];
  for (const [nodeId, entry] of Object.entries(raw)) {
    if (!isRecord(entry)) continue;
    const classType = optionalString(entry.class_type);
    const errors = Array.isArray(entry.errors) ? entry.errors : [];
    for (const item of errors) {
      if (!isRecord(item)) continue;
      const extra = isRecord(item.extra_info) ? item.extra_info : {};
      const input = optionalString(extra.input_name);
      const details = optionalString(item.details);
      flat.push({
        nodeId,
        type: optionalString(item.type) ?? 'unknown',
        message: optionalString(item.message) ?? 'error',
        ...(classType === undefined ? {} : { classType }),
        ...(details === undefined ? {} : { details }),
        ...(input === undefined ? {} : { input }),
      });
    }
  }
  return flat;
}

function decodeError(
  raw: Record<string, unknown>,
  context: { providerId?: string; jobId?: string },
): { error: ComfyServerlessError; executionStarted: boolean; cancelled: boolean } {
  const type = optionalString(raw.type) ?? 'server';
  const message = optionalString(raw.message) ?? 'The ComfyUI worker reported a failure without a message.';
  const ids = {
    ...(context.providerId === undefined ? {} : { providerId: context.providerId }),
    ...(context.jobId === undefined ? {} : { jobId: context.jobId }),
  };
  switch (type) {
    case 'validation': {
      const nodeErrors = flattenNodeErrors(raw.nodeErrors);
      const summary = nodeErrors
        .slice(0, 3)
        .map(
          (item) =>
            `node ${item.nodeId}${item.input ? `.${item.input}` : ''}: ${item.message}${item.details ? ` (${item.details})` : ''}`,
        )
        .join('; ');
      return {
        error: new ComfyValidationError({
          message: `ComfyUI on Modal refused the workflow: ${message}${summary ? ` — ${summary}` : ''}. A missing model or node type must be added to the image or volume.`,
          type: optionalString(raw.comfyType) ?? 'invalid_prompt',
          nodeErrors,
          rawNodeErrors: raw.nodeErrors,
          ...ids,
        }),
        executionStarted: false,
        cancelled: false,
      };
    }
    case 'execution': {
      const nodeId = optionalString(raw.nodeId);
      const nodeType = optionalString(raw.nodeType);
      const exceptionType = optionalString(raw.exceptionType);
      const oom = /out of memory|OutOfMemory/i.test(`${exceptionType ?? ''} ${message}`);
      return {
        error: new ComfyExecutionError({
          message: `ComfyUI node ${nodeId ?? '?'}${nodeType ? ` (${nodeType})` : ''} failed: ${exceptionType ? `${exceptionType}: ` : ''}${message}`,
          isRetryable: oom,
          ...(nodeId === undefined ? {} : { nodeId }),
          ...(nodeType === undefined ? {} : { nodeType }),
          ...(exceptionType === undefined ? {} : { exceptionType }),
          ...ids,
        }),
        executionStarted: true,
        cancelled: false,
      };
    }
    case 'interrupted':
      return {
        error: new JobCancelledError({ message: `ComfyUI on Modal interrupted the job: ${message}`, ...ids }),
        executionStarted: true,
        cancelled: true,
      };
    case 'timeout':
      return {
        error: new JobTimeoutError({
          message: `The job passed its deadline inside the Modal container: ${message}`,
          ...ids,
        }),
        executionStarted: raw.executionStarted !== false,
        cancelled: false,
      };
    case 'request':
      return {
        error: new JobFailedError({
          message: `The ComfyUI worker on Modal refused the request: ${message}`,
          isRetryable: false,
          ...ids,
        }),
        executionStarted: false,
        cancelled: false,
      };
    default:
      return {
        error: new JobFailedError({
          message: `The ComfyUI worker on Modal failed: ${message}. Another container may succeed.`,
          isRetryable: true,
          ...ids,
        }),
        executionStarted: raw.executionStarted === true,
        cancelled: false,
      };
  }
}

const EXTENSION_MIME: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  gif: 'image/gif',
  mp4: 'video/mp4',
  webm: 'video/webm',
  flac: 'audio/flac',
  mp3: 'audio/mpeg',
  wav: 'audio/wav',
  txt: 'text/plain',
  json: 'application/json',
};

function mimeFor(filename: string): string {
  const extension = filename.split('.').pop()?.toLowerCase() ?? '';
  // Own keys only: a file named `x.constructor` or `__proto__` must not reach Object.prototype.
  return (
    (Object.hasOwn(EXTENSION_MIME, extension) ? EXTENSION_MIME[extension] : undefined) ??
    'application/octet-stream'
  );
}

/**
 * Decodes what `ComfyWorker.run` returned: `{ outputs: [{ nodeId, kind, filename, mime, data }], timing, error? }`,
 * with `data` as bytes (SDK) or base64 (HTTP). A shape that does not match throws
 * `InvalidResponseError` listing each problem.
 */
export function decodeRunResult(
  value: unknown,
  context: { providerId?: string; jobId?: string; source: string },
): ModalRunResult {
  const issues: string[] = [];
  if (!isRecord(value)) {
    throw new InvalidResponseError({
      message: `${context.source} returned ${value === null ? 'null' : typeof value} instead of { outputs, timing, error? }. Is the deployed app the reference comfyui_app.py?`,
      issues: ['(root): expected an object'],
      ...(context.providerId === undefined ? {} : { providerId: context.providerId }),
      ...(context.jobId === undefined ? {} : { jobId: context.jobId }),
    });
  }
  const outputs: JobOutput[] = [];
  const rawOutputs = value.outputs ?? [];
  if (!Array.isArray(rawOutputs)) issues.push('outputs: expected an array');
  else {
    rawOutputs.forEach((raw, index) => {
      const path = `outputs.${index}`;
      if (!isRecord(raw)) {
        issues.push(`${path}: expected an object`);
        return;
      }
      const nodeId = typeof raw.nodeId === 'number' ? String(raw.nodeId) : optionalString(raw.nodeId);
      const filename = optionalString(raw.filename);
      if (nodeId === undefined) issues.push(`${path}.nodeId: expected a string`);
      if (filename === undefined) issues.push(`${path}.filename: expected a string`);
      if (nodeId === undefined || filename === undefined) return;
      const kind = OUTPUT_KINDS.includes(raw.kind as OutputKind) ? (raw.kind as OutputKind) : 'file';
      const mimeCandidate = optionalString(raw.mime)?.toLowerCase();
      const mime =
        mimeCandidate !== undefined && MIME_PATTERN.test(mimeCandidate) ? mimeCandidate : mimeFor(filename);
      const issuesBefore = issues.length;
      const data = decodeData(raw.data, `${path}.data`, issues);
      if (issues.length > issuesBefore) return;
      const text = typeof raw.text === 'string' ? raw.text : undefined;
      const url = optionalString(raw.url);
      if (data === undefined && text === undefined && url === undefined) {
        issues.push(`${path}: has neither data, text nor url`);
        return;
      }
      outputs.push({
        nodeId,
        kind,
        filename,
        mime,
        ...(data === undefined ? {} : { data }),
        ...(text === undefined ? {} : { text }),
        ...(url === undefined ? {} : { url }),
      });
    });
  }
  const rawTiming = isRecord(value.timing) ? value.timing : {};
  const timing: ModalRunTiming = { executionMs: optionalNumber(rawTiming.executionMs) ?? 0 };
  for (const key of ['startedAt', 'queuedMs', 'coldStartMs', 'totalMs'] as const) {
    const number = optionalNumber(rawTiming[key]);
    if (number !== undefined) timing[key] = number;
  }
  if (issues.length > 0) {
    throw new InvalidResponseError({
      message: `${context.source} returned an unexpected result: ${issues.slice(0, 5).join('; ')}. Is the deployed app the reference comfyui_app.py?`,
      issues,
      ...(context.providerId === undefined ? {} : { providerId: context.providerId }),
      ...(context.jobId === undefined ? {} : { jobId: context.jobId }),
    });
  }
  const workerId = isRecord(value.worker) ? optionalString(value.worker.containerId) : undefined;
  const base = { outputs, timing, ...(workerId === undefined ? {} : { workerId }) };
  if (value.error !== undefined && value.error !== null) {
    const rawError = isRecord(value.error) ? value.error : { message: describeErrorValue(value.error) };
    const decoded = decodeError(rawError, context);
    return { ...base, ...decoded };
  }
  if (outputs.length === 0) {
    return {
      ...base,
      error: new JobFailedError({
        message:
          'The workflow finished on Modal without outputs. Add a SaveImage (or another output) node to the workflow.',
        isRetryable: false,
        ...(context.providerId === undefined ? {} : { providerId: context.providerId }),
        ...(context.jobId === undefined ? {} : { jobId: context.jobId }),
      }),
      executionStarted: true,
      cancelled: false,
    };
  }
  return { ...base, executionStarted: true, cancelled: false };
}

/**
 * The events a finished call stands for: `started` (with the queue and cold-start times
 * the container measured), one `output` per output, then exactly one terminal event.
 */
export function runResultEvents(result: ModalRunResult, submittedAt: number | undefined): ProviderJobEvent[] {
  if (result.cancelled) return [{ type: 'cancelled' }];
  const queuedMs =
    result.timing.startedAt !== undefined && submittedAt !== undefined
      ? Math.max(0, result.timing.startedAt - submittedAt)
      : result.timing.queuedMs;
  const coldStartMs = result.timing.coldStartMs;
  const events: ProviderJobEvent[] = [];
  if (result.error === undefined || result.executionStarted) {
    events.push({
      type: 'started',
      ...(queuedMs === undefined ? {} : { queuedMs }),
      ...(coldStartMs === undefined ? {} : { coldStartMs }),
      ...(result.workerId === undefined ? {} : { workerId: result.workerId }),
    });
  }
  if (result.error !== undefined) {
    events.push({ type: 'failed', error: result.error, executionStarted: result.executionStarted });
    return events;
  }
  for (const output of result.outputs) events.push({ type: 'output', output });
  events.push({
    type: 'completed',
    outputs: result.outputs,
    timing: {
      ...(queuedMs === undefined ? {} : { queuedMs }),
      ...(coldStartMs === undefined ? {} : { coldStartMs }),
      executionMs: result.timing.executionMs,
    },
    // A container is billed while it starts and while it runs the job.
    gpuSeconds: ((coldStartMs ?? 0) + result.timing.executionMs) / 1000,
  });
  return events;
}
