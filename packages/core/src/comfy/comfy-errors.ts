import { ComfyExecutionError, type ComfyNodeError, ComfyValidationError } from '../spec/errors';
import { promptErrorBodySchema } from './comfy-api';

const ADVICE: Record<string, string> = {
  value_not_in_list:
    'the server does not have this value (usually a model file): install the model on the server or change the input',
  invalid_prompt:
    'the server does not know a node type: install the custom node on the server or use one that has it',
  prompt_no_outputs: 'the workflow has no output node: add a SaveImage (or another output) node',
  required_input_missing: 'connect or set the missing input',
  bad_linked_input: 'a link points at a node output that does not exist: re-export the workflow',
  return_type_mismatch: 'a link connects outputs and inputs of different types: fix the workflow',
  value_smaller_than_min: 'raise the value to the allowed minimum',
  value_bigger_than_max: 'lower the value to the allowed maximum',
};

/**
 * Turns the body of a 400 answer of `POST /prompt` into a `ComfyValidationError` that keeps
 * ComfyUI's `node_errors`, both normalised (`nodeErrors`) and raw (`rawNodeErrors`).
 * Returns undefined when the body is not ComfyUI's validation shape.
 */
export function toComfyValidationError(
  body: unknown,
  context: { url?: string; providerId?: string; jobId?: string } = {},
): ComfyValidationError | undefined {
  const parsed = promptErrorBodySchema.safeParse(body);
  if (!parsed.success || (parsed.data.error == null && parsed.data.node_errors == null)) return undefined;
  const top = parsed.data.error;
  const topType = typeof top === 'string' ? 'invalid_prompt' : (top?.type ?? 'invalid_prompt');
  const topMessage = typeof top === 'string' ? top : (top?.message ?? 'Prompt validation failed');
  const topDetails = typeof top === 'string' ? undefined : (top?.details ?? undefined);
  const nodeErrors: ComfyNodeError[] = [];
  for (const [nodeId, node] of Object.entries(parsed.data.node_errors ?? {})) {
    for (const item of node.errors ?? []) {
      const inputName = item.extra_info?.['input_name'];
      nodeErrors.push({
        nodeId,
        ...(node.class_type == null ? {} : { classType: node.class_type }),
        type: item.type ?? 'unknown',
        message: item.message ?? 'validation failed',
        ...(item.details == null ? {} : { details: item.details }),
        ...(typeof inputName === 'string' ? { input: inputName } : {}),
      });
    }
  }
  const firstType = nodeErrors[0]?.type ?? topType;
  const adviceFor = (type: string) => (Object.hasOwn(ADVICE, type) ? ADVICE[type] : undefined);
  const advice = adviceFor(firstType) ?? adviceFor(topType) ?? 'fix the workflow and submit it again';
  const described = nodeErrors
    .slice(0, 3)
    .map(
      (error) =>
        `node ${error.nodeId}${error.classType ? ` (${error.classType})` : ''}${error.input ? ` input ${error.input}` : ''}: ${error.message}${error.details ? ` (${error.details})` : ''}`,
    );
  const more = nodeErrors.length > 3 ? `; and ${nodeErrors.length - 3} more` : '';
  const head = `ComfyUI refused the prompt (${topType}): ${topMessage}${topDetails ? ` ${topDetails}` : ''}`;
  return new ComfyValidationError({
    message: `${head}${described.length ? `; ${described.join('; ')}${more}` : ''}. To fix: ${advice}.`,
    type: topType,
    nodeErrors,
    rawNodeErrors: parsed.data.node_errors ?? undefined,
    ...(context.providerId === undefined ? {} : { providerId: context.providerId }),
    ...(context.jobId === undefined ? {} : { jobId: context.jobId }),
  });
}

/** The `data` of an `execution_error` event (or history message). */
export interface ComfyExecutionErrorData {
  prompt_id?: string;
  node_id?: string | number | null;
  node_type?: string | null;
  exception_message?: string | null;
  exception_type?: string | null;
  traceback?: unknown;
  [key: string]: unknown;
}

/** Turns ComfyUI's `execution_error` data into a typed `ComfyExecutionError`. */
export function toComfyExecutionError(
  data: ComfyExecutionErrorData,
  context: { providerId?: string; jobId?: string } = {},
): ComfyExecutionError {
  const nodeId = data.node_id == null ? undefined : String(data.node_id);
  const nodeType = data.node_type ?? undefined;
  const exceptionType = data.exception_type ?? undefined;
  const exceptionMessage = (data.exception_message ?? '').trim() || 'no message';
  const where = nodeId === undefined ? 'a node' : `node ${nodeId}${nodeType ? ` (${nodeType})` : ''}`;
  const outOfMemory = /out of memory|OutOfMemoryError/i.test(`${exceptionType ?? ''} ${exceptionMessage}`);
  const advice = outOfMemory
    ? 'the GPU ran out of memory: lower the resolution or batch size, or run on a GPU with more memory'
    : 'check the node inputs and the server log for the traceback';
  return new ComfyExecutionError({
    message: `ComfyUI failed at ${where}: ${exceptionType ? `${exceptionType}: ` : ''}${exceptionMessage}. To fix: ${advice}.`,
    ...(nodeId === undefined ? {} : { nodeId }),
    ...(nodeType === undefined ? {} : { nodeType }),
    ...(exceptionType === undefined ? {} : { exceptionType }),
    // Out of memory may pass on a larger GPU; anything else fails again the same way.
    isRetryable: outOfMemory,
    ...(context.providerId === undefined ? {} : { providerId: context.providerId }),
    ...(context.jobId === undefined ? {} : { jobId: context.jobId }),
  });
}
