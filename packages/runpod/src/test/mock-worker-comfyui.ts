import { getDefaultLoaderRegistry } from '@comfy-serverless/core';

/** How one mock job behaves once a worker takes it. */
export interface MockJobPlan {
  /** Time the handler runs, in ms. @default the mock's `executionMs` */
  executionMs?: number;
  /** `completed` (the default), `failed`, or `hang` (runs until cancelled, timed out or deleted). */
  outcome?: 'completed' | 'failed' | 'hang';
  /** The FAILED job's `error`. */
  error?: string;
  /** The FAILED job's `details`. */
  details?: string[];
  /** The COMPLETED job's `output`, instead of the one derived from the workflow. */
  output?: unknown;
  /** Chunks the handler yields, spread evenly over the execution (read with `/stream`). */
  stream?: unknown[];
}

/** A 1x1 transparent PNG, the image every mock SaveImage node "renders". */
export const MOCK_PNG_BASE64 =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

/** A few bytes standing in for a FLAC file. */
export const MOCK_FLAC_BASE64 = Buffer.from('fLaC\u0000\u0000\u0000\u0022mock').toString('base64');

/** The model folder a node's input reads from, by core's loader registry. */
function folderOf(classType: string, input: string): string | undefined {
  const rules = getDefaultLoaderRegistry().get(classType)?.models ?? [];
  const rule = rules.find((candidate) =>
    typeof candidate.input === 'string'
      ? candidate.input === input
      : new RegExp(candidate.input.source).test(input),
  );
  return rule?.folder;
}

interface WorkflowLike {
  [nodeId: string]: { class_type?: unknown; inputs?: Record<string, unknown> } | undefined;
}

function quote(value: string): string {
  return `'${value.replace(/'/g, "\\'")}'`;
}

/**
 * What worker-comfyui would answer for an input, as far as the mock can tell without a GPU:
 * its input checks, ComfyUI's validation of node types and models (when the mock is told
 * which exist), and the files its output nodes save.
 */
export function planFromInput(
  input: unknown,
  options: { models?: Record<string, string[]>; nodeTypes?: string[]; bucketUrl?: string; jobId: string },
): MockJobPlan {
  if (input === null || typeof input !== 'object')
    return { outcome: 'failed', error: 'Please provide input' };
  const record = input as Record<string, unknown>;
  const workflow = record.workflow as WorkflowLike | undefined;
  if (workflow === undefined || workflow === null || typeof workflow !== 'object')
    return { outcome: 'failed', error: "Missing 'workflow' parameter" };
  const images = record.images;
  if (
    images !== undefined &&
    (!Array.isArray(images) ||
      !images.every((image) => image && typeof image === 'object' && 'name' in image && 'image' in image))
  )
    return { outcome: 'failed', error: "'images' must be a list of objects with 'name' and 'image' keys" };

  if (options.nodeTypes) {
    for (const [nodeId, node] of Object.entries(workflow)) {
      const classType = String(node?.class_type ?? '');
      if (!options.nodeTypes.includes(classType)) {
        const raw = JSON.stringify({
          error: {
            type: 'invalid_prompt',
            message: `Cannot execute because node ${classType} does not exist.`,
            details: `Node ID '#${nodeId}'`,
          },
          node_errors: {},
        });
        return {
          outcome: 'failed',
          executionMs: 300,
          error: `Cannot execute because node ${classType} does not exist.. Raw response: ${raw}`,
        };
      }
    }
  }

  if (options.models) {
    const lines: string[] = [];
    for (const [nodeId, node] of Object.entries(workflow)) {
      for (const [inputName, value] of Object.entries(node?.inputs ?? {})) {
        const folder = folderOf(String(node?.class_type ?? ''), inputName);
        if (folder === undefined || typeof value !== 'string') continue;
        const available = options.models[folder] ?? [];
        if (available.includes(value)) continue;
        const list = `[${available.map(quote).join(', ')}]`;
        lines.push(
          `• Node ${nodeId} (errors): [{'type': 'value_not_in_list', 'message': 'Value not in list', 'details': "${inputName}: ${quote(value)} not in ${list}", 'extra_info': {'input_name': '${inputName}'}}]`,
          `• Node ${nodeId} (dependent_outputs): ['9']`,
          `• Node ${nodeId} (class_type): ${String(node?.class_type ?? '')}`,
        );
      }
    }
    if (lines.length > 0) {
      const checkpoints = options.models.checkpoints ?? [];
      return {
        outcome: 'failed',
        executionMs: 300,
        error: `Workflow validation failed:\n${lines.join('\n')}${
          checkpoints.length > 0
            ? `\n\nAvailable checkpoint models: ${checkpoints.join(', ')}`
            : '\n\nNo checkpoint models appear to be available. Please check your model installation.'
        }`,
      };
    }
  }

  const imageFiles: Array<{ filename: string; type: string; data: string }> = [];
  const audioFiles: Array<{ filename: string; type: string; data: string }> = [];
  for (const node of Object.values(workflow)) {
    const classType = String(node?.class_type ?? '');
    const prefix = node?.inputs?.filename_prefix;
    if (typeof prefix !== 'string') continue;
    const base = prefix.split('/').at(-1) || 'ComfyUI';
    const audio = classType.toLowerCase().includes('audio');
    const filename = `${base}_00001_.${audio ? 'flac' : 'png'}`;
    const file = options.bucketUrl
      ? {
          filename,
          type: 's3_url',
          data: `${options.bucketUrl.replace(/\/+$/, '')}/${options.jobId}/${filename}`,
        }
      : { filename, type: 'base64', data: audio ? MOCK_FLAC_BASE64 : MOCK_PNG_BASE64 };
    (audio ? audioFiles : imageFiles).push(file);
  }
  if (imageFiles.length === 0 && audioFiles.length === 0)
    return { outcome: 'completed', output: { status: 'success_no_images', images: [] } };
  return {
    outcome: 'completed',
    output: { images: imageFiles, ...(audioFiles.length > 0 ? { audio: audioFiles } : {}) },
  };
}
