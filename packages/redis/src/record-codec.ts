import type { JobRecord } from '@comfy-serverless/core';

const BYTES_MARKER = '__comfyServerlessBytes';

/**
 * Serialises a job record to JSON, keeping byte arrays (input images, output files) as
 * base64 so that they come back as `Uint8Array`s.
 */
export function encodeRecord(record: JobRecord): string {
  return JSON.stringify(record, function replace(this: Record<string, unknown>, key, value: unknown) {
    // `this[key]` is the value before `toJSON` (Buffer has one), so Buffers are caught too.
    const original = this[key];
    if (original instanceof Uint8Array) {
      return {
        [BYTES_MARKER]: Buffer.from(original.buffer, original.byteOffset, original.byteLength).toString(
          'base64',
        ),
      };
    }
    return value;
  });
}

/** Reads a job record written by `encodeRecord`. */
export function decodeRecord(text: string): JobRecord {
  return JSON.parse(text, (_key, value: unknown) => {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const bytes = (value as Record<string, unknown>)[BYTES_MARKER];
      if (typeof bytes === 'string' && Object.keys(value).length === 1) {
        return new Uint8Array(Buffer.from(bytes, 'base64'));
      }
    }
    return value;
  }) as JobRecord;
}
