import type { ComfyNodeError, ComfyServerlessError, ModelInputRule } from '@comfy-serverless/core';
import {
  ApiCallError,
  ComfyExecutionError,
  ComfyValidationError,
  ConfigurationError,
  getDefaultLoaderRegistry,
  JobExpiredError,
  JobFailedError,
  JobTimeoutError,
  redactSecrets,
} from '@comfy-serverless/core';

/**
 * The model folder a loader input reads from, by core's loader registry: by the node's class
 * type when the message names it, else by the first loader with an input of that name.
 */
function modelFolder(input: string, classType: string | undefined): string | undefined {
  const registry = getDefaultLoaderRegistry();
  const matches = (rule: ModelInputRule) =>
    typeof rule.input === 'string' ? rule.input === input : new RegExp(rule.input.source).test(input);
  const byClass = classType === undefined ? undefined : registry.get(classType)?.models?.find(matches);
  if (byClass) return byClass.folder;
  for (const definition of registry.values()) {
    const rule = definition.models?.find(matches);
    if (rule) return rule.folder;
  }
  return undefined;
}

/** What a FAILED job carried. */
export interface RunpodFailure {
  error: unknown;
  details?: unknown;
}

interface Context {
  providerId: string;
  jobId?: string;
  remoteId: string;
  secrets: Array<string | undefined>;
  /** The job's `policy.executionTimeout`, when known. */
  executionTimeoutMs?: number;
}

function text(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

/**
 * RunPod's Python SDK wraps handler exceptions as a JSON string
 * (`{ error_type, error_message, error_traceback, ... }`); a handler that returns
 * `{ error }` gives the plain string. Both become one message.
 */
export function failureMessage(error: unknown): string {
  if (typeof error === 'string') {
    const trimmed = error.trim();
    if (trimmed.startsWith('{')) {
      try {
        return failureMessage(JSON.parse(trimmed));
      } catch {
        return error;
      }
    }
    return error;
  }
  if (error && typeof error === 'object') {
    const record = error as Record<string, unknown>;
    for (const key of ['error_message', 'message', 'error']) {
      if (typeof record[key] === 'string') return failureMessage(record[key]);
    }
  }
  return text(error);
}

function detailLines(details: unknown): string[] {
  if (Array.isArray(details)) return details.map(text);
  if (details === undefined || details === null) return [];
  return [text(details)];
}

// "• Node 4 (errors): [{'type': 'value_not_in_list', ..., 'details': "ckpt_name: 'x' not in [...]"}]"
const NODE_LINE = /Node\s+([\w:.-]+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$/;
const NOT_IN_LIST = /(\w+):\s*'([^']+)'\s+not in\s+/;
const EXECUTION = /Node Type:\s*([^,]+),\s*Node ID:\s*([^,]+),\s*Message:\s*([\s\S]*)$/;

/** Node errors named in worker-comfyui's validation message and `details`. */
export function parseNodeErrors(lines: string[]): ComfyNodeError[] {
  const byNode = new Map<string, ComfyNodeError>();
  const classTypes = new Map<string, string>();
  for (const raw of lines) {
    for (const line of raw.split('\n')) {
      const match = NODE_LINE.exec(line.replace(/^[\s•*-]+/, ''));
      if (!match) continue;
      const nodeId = match[1] ?? '';
      const key = match[2] ?? '';
      const body = match[3] ?? '';
      if (key === 'class_type') {
        classTypes.set(nodeId, body.trim());
        continue;
      }
      if (key === 'dependent_outputs') continue;
      const missing = NOT_IN_LIST.exec(body);
      const typeMatch = /'type':\s*'([^']+)'/.exec(body);
      const type = typeMatch?.[1] ?? (missing ? 'value_not_in_list' : key || 'error');
      const existing = byNode.get(nodeId);
      if (existing && !missing) continue;
      byNode.set(nodeId, {
        nodeId,
        type,
        message: missing ? `${missing[1]}: '${missing[2]}' is not on the worker` : body.trim().slice(0, 500),
        ...(missing ? { input: missing[1], details: missing[2] } : {}),
      });
    }
  }
  for (const [nodeId, error] of byNode) {
    const classType = classTypes.get(nodeId);
    if (classType) error.classType = classType;
  }
  return [...byNode.values()];
}

/**
 * Maps a FAILED job to a typed error: a refused workflow (often a missing model) to
 * `ComfyValidationError` naming the node and the model, a node that raised while running to
 * `ComfyExecutionError`, anything else to `JobFailedError`.
 */
export function mapJobFailure(failure: RunpodFailure, context: Context): ComfyServerlessError {
  const base = {
    providerId: context.providerId,
    ...(context.jobId === undefined ? {} : { jobId: context.jobId }),
  };
  const message = redactSecrets(failureMessage(failure.error), context.secrets);
  const details = detailLines(failure.details).map((line) => redactSecrets(line, context.secrets));
  const all = [message, ...details];
  const lower = message.toLowerCase();

  if (lower.includes('validation failed') || lower.includes('prompt_outputs_failed_validation')) {
    const nodeErrors = parseNodeErrors(all);
    const missing = nodeErrors.filter((error) => error.type === 'value_not_in_list' && error.details);
    const describe = (error: ComfyNodeError) => {
      const where = `node ${error.nodeId}${error.classType ? ` (${error.classType})` : ''}`;
      if (error.type === 'value_not_in_list' && error.details && error.input) {
        const folder = modelFolder(error.input, error.classType);
        return `${where}: model '${error.details}' (${error.input}) is not on the worker${
          folder ? `; put it in /runpod-volume/models/${folder}/ or use an image that has it` : ''
        }`;
      }
      return `${where}: ${error.message}`;
    };
    const summary =
      nodeErrors.length > 0
        ? nodeErrors.slice(0, 5).map(describe).join('; ')
        : message.split('\n').slice(0, 4).join(' ').slice(0, 600);
    return new ComfyValidationError({
      message: `worker-comfyui refused the workflow of RunPod job ${context.remoteId}: ${summary}.${
        missing.length > 0 ? '' : ' Fix the workflow (or the worker image) and submit again.'
      }`,
      type: missing.length > 0 ? 'value_not_in_list' : 'prompt_outputs_failed_validation',
      nodeErrors,
      rawNodeErrors: all,
      ...base,
    });
  }

  const unknownNode = /Cannot execute because node (\S+?) does not exist/.exec(message);
  if (unknownNode) {
    const classType = unknownNode[1] ?? '';
    const nodeId = /Node ID '#?([^']+)'/.exec(message)?.[1] ?? '';
    return new ComfyValidationError({
      message: `The worker of RunPod job ${context.remoteId} has no node type ${classType}${
        nodeId ? ` (node ${nodeId})` : ''
      }. Use a worker image with that custom node installed, or remove it from the workflow.`,
      type: 'invalid_prompt',
      nodeErrors: [
        { nodeId, classType, type: 'invalid_prompt', message: `node type ${classType} does not exist` },
      ],
      rawNodeErrors: all,
      ...base,
    });
  }

  const execution = all.map((line) => EXECUTION.exec(line)).find((match) => match !== null);
  if (execution) {
    const nodeType = execution[1]?.trim() ?? '';
    const nodeId = execution[2]?.trim() ?? '';
    const exceptionMessage = execution[3]?.trim() ?? '';
    return new ComfyExecutionError({
      message: `Node ${nodeId} (${nodeType}) failed while RunPod job ${context.remoteId} ran: ${exceptionMessage.slice(0, 500)}`,
      nodeId,
      nodeType,
      ...base,
    });
  }

  // The worker could not reach its own ComfyUI (a crashed or still-starting worker): another try may work.
  const workerTrouble = /not reachable|websocket|http communication error|connection (?:refused|reset)/i.test(
    message,
  );
  const extra = details.length > 0 ? ` (${details.slice(0, 3).join('; ').slice(0, 400)})` : '';
  return new JobFailedError({
    message: `RunPod job ${context.remoteId} failed: ${message.slice(0, 600) || 'no error message'}${extra}.${
      workerTrouble
        ? ' The worker lost its ComfyUI; trying again may succeed.'
        : ' See the worker logs in the RunPod console.'
    }`,
    isRetryable: workerTrouble,
    ...base,
  });
}

/** The error for a job RunPod ended as TIMED_OUT (its `policy.executionTimeout` passed). */
export function timedOutError(context: Context): JobTimeoutError {
  return new JobTimeoutError({
    message: `RunPod job ${context.remoteId} ran past its execution timeout${
      context.executionTimeoutMs === undefined ? '' : ` of ${context.executionTimeoutMs} ms`
    } and was stopped. Raise executionTimeoutMs, or the endpoint's execution timeout, if the workflow needs longer.`,
    providerId: context.providerId,
    ...(context.jobId === undefined ? {} : { jobId: context.jobId }),
    ...(context.executionTimeoutMs === undefined ? {} : { timeoutMs: context.executionTimeoutMs }),
  });
}

/** The error for a 404 on an id RunPod accepted earlier. */
export function expiredError(context: Context): JobExpiredError {
  return new JobExpiredError({
    message: `RunPod no longer knows job ${context.remoteId}: its result was kept 30 minutes after completion (1 minute for /runsync), or its TTL deleted it. Submit the job again; watch jobs within the retention window to keep results.`,
    providerId: context.providerId,
    remoteId: context.remoteId,
    ...(context.jobId === undefined ? {} : { jobId: context.jobId }),
  });
}

/**
 * Refines an HTTP error of the job API: 401/403 name the key to fix, 404 on `/run` names
 * the endpoint. Other errors pass through as `requestJson` made them.
 */
export function mapHttpError(
  error: unknown,
  context: { providerId: string; endpointId: string; route: string },
): unknown {
  if (!ApiCallError.isInstance(error)) return error;
  if (error.statusCode === 401 || error.statusCode === 403) {
    return new ApiCallError({
      message: `RunPod refused the API key (${error.statusCode}) on ${context.route}. Set the \`apiKey\` option or the RUNPOD_API_KEY environment variable to a key with access to endpoint ${context.endpointId} (RunPod console, Settings, API Keys).`,
      url: error.url,
      statusCode: error.statusCode,
      ...(error.responseBody === undefined ? {} : { responseBody: error.responseBody }),
      isRetryable: false,
      providerId: context.providerId,
      cause: error,
    });
  }
  if (error.statusCode === 404 && (context.route === '/run' || context.route === '/health')) {
    return new ConfigurationError({
      message: `RunPod has no endpoint ${context.endpointId} (404 on ${context.route}). Check endpointId against the RunPod console.`,
      providerId: context.providerId,
      cause: error,
    });
  }
  if (error.statusCode === 400) {
    return new ApiCallError({
      message: `${error.message}. RunPod refused the request; fix it before trying again.`,
      url: error.url,
      statusCode: 400,
      ...(error.responseBody === undefined ? {} : { responseBody: error.responseBody }),
      isRetryable: false,
      providerId: context.providerId,
      cause: error,
    });
  }
  return error;
}
