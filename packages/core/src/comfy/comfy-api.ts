import { z } from 'zod';

/**
 * Minimal, tolerant schemas of ComfyUI's HTTP answers: only the fields this SDK reads are
 * checked, everything else passes through untouched.
 */

/** The answer of `POST /prompt` (200). */
export const promptResponseSchema = z.looseObject({
  prompt_id: z.string(),
  number: z.number().nullish(),
  node_errors: z.record(z.string(), z.unknown()).nullish(),
});

/** One per-input error inside a 400 answer of `POST /prompt`. */
export const promptErrorItemSchema = z.looseObject({
  type: z.string().nullish(),
  message: z.string().nullish(),
  details: z.string().nullish(),
  extra_info: z.record(z.string(), z.unknown()).nullish(),
});

/** The body of a 400 answer of `POST /prompt`. */
export const promptErrorBodySchema = z.looseObject({
  error: z.union([promptErrorItemSchema, z.string()]).nullish(),
  node_errors: z
    .record(
      z.string(),
      z.looseObject({
        errors: z.array(promptErrorItemSchema).nullish(),
        dependent_outputs: z.array(z.unknown()).nullish(),
        class_type: z.string().nullish(),
      }),
    )
    .nullish(),
});

/**
 * One queue entry: `[number, prompt_id, prompt, extra_data, outputs_to_execute, ...]`.
 * Only the prompt id (index 1) is read.
 */
const queueItemSchema = z.array(z.unknown()).refine((item) => typeof item[1] === 'string', {
  message: 'a queue item must carry its prompt id at index 1',
});

/** The answer of `GET /queue`. */
export const queueResponseSchema = z.looseObject({
  queue_running: z.array(queueItemSchema).nullish(),
  queue_pending: z.array(queueItemSchema).nullish(),
});

/** One file a node produced, as history and `executed` events list it. */
export const outputFileSchema = z.looseObject({
  filename: z.string(),
  subfolder: z.string().nullish(),
  type: z.string().nullish(),
  format: z.string().nullish(),
});

/** One entry of `GET /history/{id}`. */
export const historyEntrySchema = z.looseObject({
  prompt: z.unknown().optional(),
  outputs: z.record(z.string(), z.record(z.string(), z.unknown())).nullish(),
  status: z
    .looseObject({
      status_str: z.string().nullish(),
      completed: z.boolean().nullish(),
      messages: z.array(z.unknown()).nullish(),
    })
    .nullish(),
  meta: z.record(z.string(), z.unknown()).nullish(),
});

/** The answer of `GET /history/{id}`: `{}` while the prompt is queued, running or unknown. */
export const historyResponseSchema = z.record(z.string(), historyEntrySchema);

/** The answer of `POST /upload/image`. */
export const uploadResponseSchema = z.looseObject({
  name: z.string(),
  subfolder: z.string().nullish(),
  type: z.string().nullish(),
});

/** One device of `GET /system_stats`. */
const deviceSchema = z.looseObject({
  name: z.string().nullish(),
  type: z.string().nullish(),
  index: z.number().nullish(),
  vram_total: z.number().nullish(),
  vram_free: z.number().nullish(),
  torch_vram_total: z.number().nullish(),
  torch_vram_free: z.number().nullish(),
});

/** The answer of `GET /system_stats`. */
export const systemStatsSchema = z.looseObject({
  system: z
    .looseObject({
      os: z.string().nullish(),
      ram_total: z.number().nullish(),
      ram_free: z.number().nullish(),
      comfyui_version: z.string().nullish(),
      python_version: z.string().nullish(),
      pytorch_version: z.string().nullish(),
    })
    .nullish(),
  devices: z.array(deviceSchema).nullish(),
});

/** One node type of `GET /object_info`; fields of an odd shape (custom nodes) are dropped, not fatal. */
const objectInfoNodeSchema = z.looseObject({
  input: z
    .looseObject({
      required: z.record(z.string(), z.unknown()).nullish().catch(undefined),
      optional: z.record(z.string(), z.unknown()).nullish().catch(undefined),
    })
    .nullish()
    .catch(undefined),
  output: z.array(z.unknown()).nullish().catch(undefined),
  output_node: z.boolean().nullish().catch(undefined),
  category: z.string().nullish().catch(undefined),
});

/**
 * The answer of `GET /object_info`: node type name to its definition. A custom node with a
 * malformed definition is kept (its type exists) with what could be read of it.
 */
export const objectInfoSchema = z.record(z.string(), z.unknown()).transform((record) =>
  Object.fromEntries(
    Object.entries(record).map(([name, node]) => {
      const parsed = objectInfoNodeSchema.safeParse(node);
      return [name, parsed.success ? parsed.data : {}];
    }),
  ),
) as unknown as z.ZodType<Record<string, z.infer<typeof objectInfoNodeSchema>>>;

/** The answer of `GET /models/{folder}`: file names (newer builds may send objects). */
export const modelListSchema = z.array(
  z.union([z.string(), z.looseObject({ name: z.string() }).transform((item) => item.name)]),
);

/** `POST /prompt` 200 answer. */
export type ComfyPromptResponse = z.infer<typeof promptResponseSchema>;
/** `GET /queue` answer. */
export type ComfyQueue = z.infer<typeof queueResponseSchema>;
/** One file a node produced. */
export type ComfyOutputFile = z.infer<typeof outputFileSchema>;
/** One `GET /history/{id}` entry. */
export type ComfyHistoryEntry = z.infer<typeof historyEntrySchema>;
/** Node id to the node's UI dict (`images`, `gifs`, `video`, `audio`, `text`, ...). */
export type ComfyHistoryOutputs = Record<string, Record<string, unknown>>;
/** `POST /upload/image` answer. */
export type ComfyUploadResult = z.infer<typeof uploadResponseSchema>;
/** `GET /system_stats` answer. */
export type ComfySystemStats = z.infer<typeof systemStatsSchema>;
/** `GET /object_info` answer. */
export type ComfyObjectInfo = z.infer<typeof objectInfoSchema>;
