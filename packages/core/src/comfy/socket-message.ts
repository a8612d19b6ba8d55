import { z } from 'zod';

/** The JSON messages ComfyUI sends on `/ws`, and its binary frames, parsed. */
export type ComfySocketMessage =
  | { type: 'status'; queueRemaining?: number; sid?: string }
  | { type: 'execution_start'; promptId: string; timestamp?: number }
  | { type: 'execution_cached'; promptId: string; nodeIds: string[] }
  | { type: 'executing'; promptId?: string; nodeId: string | null }
  | { type: 'progress'; promptId?: string; nodeId?: string; value: number; max: number }
  | {
      type: 'progress_state';
      promptId: string;
      nodes: Record<string, { state?: string; value?: number; max?: number }>;
    }
  | { type: 'executed'; promptId?: string; nodeId: string; output: Record<string, unknown> }
  | { type: 'execution_success'; promptId: string; timestamp?: number }
  | { type: 'execution_error'; promptId: string; data: Record<string, unknown> }
  | { type: 'execution_interrupted'; promptId: string; nodeId?: string; nodeType?: string }
  | { type: 'preview'; mime: string; data: Uint8Array; nodeId?: string; promptId?: string }
  | { type: 'text'; nodeId: string; text: string }
  /** A JSON message or binary frame this SDK does not know (kept so callers can log it). */
  | { type: 'unknown'; rawType: string | number; data?: unknown };

const id = z.union([z.string(), z.number()]).transform(String);

const schemas = {
  status: z.looseObject({
    status: z
      .looseObject({ exec_info: z.looseObject({ queue_remaining: z.number().nullish() }).nullish() })
      .nullish(),
    sid: z.string().nullish(),
  }),
  execution_start: z.looseObject({ prompt_id: z.string(), timestamp: z.number().nullish() }),
  execution_cached: z.looseObject({ prompt_id: z.string(), nodes: z.array(id).nullish() }),
  executing: z.looseObject({ prompt_id: z.string().nullish(), node: id.nullish() }),
  progress: z.looseObject({
    prompt_id: z.string().nullish(),
    node: id.nullish(),
    value: z.number(),
    max: z.number(),
  }),
  progress_state: z.looseObject({
    prompt_id: z.string(),
    nodes: z.record(
      z.string(),
      z.looseObject({ state: z.string().nullish(), value: z.number().nullish(), max: z.number().nullish() }),
    ),
  }),
  executed: z.looseObject({
    prompt_id: z.string().nullish(),
    node: id,
    output: z.record(z.string(), z.unknown()).nullish(),
  }),
  execution_success: z.looseObject({ prompt_id: z.string(), timestamp: z.number().nullish() }),
  execution_error: z.looseObject({ prompt_id: z.string() }),
  execution_interrupted: z.looseObject({
    prompt_id: z.string(),
    node_id: id.nullish(),
    node_type: z.string().nullish(),
  }),
};

const envelope = z.looseObject({ type: z.string(), data: z.unknown() });

/** Parses one JSON (text) frame of ComfyUI's websocket; never throws. */
export function parseSocketText(text: string): ComfySocketMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { type: 'unknown', rawType: 'invalid-json' };
  }
  const parsedEnvelope = envelope.safeParse(value);
  if (!parsedEnvelope.success) return { type: 'unknown', rawType: 'invalid-envelope', data: value };
  const { type, data } = parsedEnvelope.data;
  const unknown: ComfySocketMessage = { type: 'unknown', rawType: type, data };
  switch (type) {
    case 'status': {
      const parsed = schemas.status.safeParse(data);
      if (!parsed.success) return unknown;
      const queueRemaining = parsed.data.status?.exec_info?.queue_remaining;
      return {
        type,
        ...(queueRemaining == null ? {} : { queueRemaining }),
        ...(parsed.data.sid == null ? {} : { sid: parsed.data.sid }),
      };
    }
    case 'execution_start':
    case 'execution_success': {
      const parsed = schemas[type].safeParse(data);
      if (!parsed.success) return unknown;
      return {
        type,
        promptId: parsed.data.prompt_id,
        ...(parsed.data.timestamp == null ? {} : { timestamp: parsed.data.timestamp }),
      };
    }
    case 'execution_cached': {
      const parsed = schemas.execution_cached.safeParse(data);
      if (!parsed.success) return unknown;
      return { type, promptId: parsed.data.prompt_id, nodeIds: parsed.data.nodes ?? [] };
    }
    case 'executing': {
      const parsed = schemas.executing.safeParse(data);
      if (!parsed.success) return unknown;
      return {
        type,
        nodeId: parsed.data.node ?? null,
        ...(parsed.data.prompt_id == null ? {} : { promptId: parsed.data.prompt_id }),
      };
    }
    case 'progress': {
      const parsed = schemas.progress.safeParse(data);
      if (!parsed.success) return unknown;
      return {
        type,
        value: parsed.data.value,
        max: parsed.data.max,
        ...(parsed.data.prompt_id == null ? {} : { promptId: parsed.data.prompt_id }),
        ...(parsed.data.node == null ? {} : { nodeId: parsed.data.node }),
      };
    }
    case 'progress_state': {
      const parsed = schemas.progress_state.safeParse(data);
      if (!parsed.success) return unknown;
      const nodes: Record<string, { state?: string; value?: number; max?: number }> = {};
      for (const [nodeId, node] of Object.entries(parsed.data.nodes)) {
        nodes[nodeId] = {
          ...(node.state == null ? {} : { state: node.state }),
          ...(node.value == null ? {} : { value: node.value }),
          ...(node.max == null ? {} : { max: node.max }),
        };
      }
      return { type, promptId: parsed.data.prompt_id, nodes };
    }
    case 'executed': {
      const parsed = schemas.executed.safeParse(data);
      if (!parsed.success) return unknown;
      return {
        type,
        nodeId: parsed.data.node,
        output: parsed.data.output ?? {},
        ...(parsed.data.prompt_id == null ? {} : { promptId: parsed.data.prompt_id }),
      };
    }
    case 'execution_error': {
      const parsed = schemas.execution_error.safeParse(data);
      if (!parsed.success) return unknown;
      return { type, promptId: parsed.data.prompt_id, data: parsed.data };
    }
    case 'execution_interrupted': {
      const parsed = schemas.execution_interrupted.safeParse(data);
      if (!parsed.success) return unknown;
      return {
        type,
        promptId: parsed.data.prompt_id,
        ...(parsed.data.node_id == null ? {} : { nodeId: parsed.data.node_id }),
        ...(parsed.data.node_type == null ? {} : { nodeType: parsed.data.node_type }),
      };
    }
    default:
      return unknown;
  }
}

/** Binary frame event types of ComfyUI's websocket. */
export const BINARY_EVENT = {
  previewImage: 1,
  unencodedPreviewImage: 2,
  text: 3,
  previewImageWithMetadata: 4,
} as const;

/** The MIME type of a preview format code (the 4 bytes after the event type). */
function mimeOfFormat(format: number): string | undefined {
  if (format === 1) return 'image/jpeg';
  if (format === 2) return 'image/png';
  return undefined;
}

/** Tells an image's type from its first bytes. */
export function sniffImageMime(data: Uint8Array): string | undefined {
  if (data[0] === 0x89 && data[1] === 0x50 && data[2] === 0x4e && data[3] === 0x47) return 'image/png';
  if (data[0] === 0xff && data[1] === 0xd8) return 'image/jpeg';
  if (data[0] === 0x52 && data[1] === 0x49 && data[2] === 0x46 && data[3] === 0x46) return 'image/webp';
  if (data[0] === 0x47 && data[1] === 0x49 && data[2] === 0x46) return 'image/gif';
  return undefined;
}

/**
 * Parses one binary frame: a 4-byte big-endian event type, then the payload. A preview
 * (type 1) carries its format in the NEXT 4 bytes (offset 4, not 0: reading offset 0 labels
 * every PNG as JPEG); type 4 carries a 4-byte metadata length, JSON metadata, then the
 * image; type 3 carries a 4-byte node id length, the node id, then text. Never throws.
 */
export function parseSocketBinary(frame: Uint8Array): ComfySocketMessage {
  if (frame.byteLength < 4) return { type: 'unknown', rawType: 'short-binary' };
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const eventType = view.getUint32(0);
  if (eventType === BINARY_EVENT.previewImage || eventType === BINARY_EVENT.unencodedPreviewImage) {
    if (frame.byteLength < 8) return { type: 'unknown', rawType: eventType };
    const data = frame.slice(8);
    const mime = mimeOfFormat(view.getUint32(4)) ?? sniffImageMime(data) ?? 'application/octet-stream';
    return { type: 'preview', mime, data };
  }
  if (eventType === BINARY_EVENT.previewImageWithMetadata) {
    if (frame.byteLength < 8) return { type: 'unknown', rawType: eventType };
    const metadataLength = view.getUint32(4);
    if (8 + metadataLength > frame.byteLength) return { type: 'unknown', rawType: eventType };
    let metadata: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(new TextDecoder().decode(frame.subarray(8, 8 + metadataLength)));
      if (parsed !== null && typeof parsed === 'object') metadata = parsed as Record<string, unknown>;
    } catch {
      // Metadata is optional detail; the image is still worth showing.
    }
    const data = frame.slice(8 + metadataLength);
    const declared = typeof metadata['image_type'] === 'string' ? metadata['image_type'] : undefined;
    const mime = declared ?? sniffImageMime(data) ?? 'application/octet-stream';
    const nodeId = metadata['node_id'] ?? metadata['display_node_id'];
    const promptId = metadata['prompt_id'];
    return {
      type: 'preview',
      mime,
      data,
      ...(typeof nodeId === 'string' || typeof nodeId === 'number' ? { nodeId: String(nodeId) } : {}),
      ...(typeof promptId === 'string' ? { promptId } : {}),
    };
  }
  if (eventType === BINARY_EVENT.text) {
    if (frame.byteLength < 8) return { type: 'unknown', rawType: eventType };
    const nodeIdLength = view.getUint32(4);
    if (8 + nodeIdLength > frame.byteLength) return { type: 'unknown', rawType: eventType };
    const decoder = new TextDecoder();
    return {
      type: 'text',
      nodeId: decoder.decode(frame.subarray(8, 8 + nodeIdLength)),
      text: decoder.decode(frame.subarray(8 + nodeIdLength)),
    };
  }
  return { type: 'unknown', rawType: eventType };
}
