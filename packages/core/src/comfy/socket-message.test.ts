import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseSocketBinary, parseSocketText, sniffImageMime } from './socket-message';

const PNG = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);
const JPEG = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 9, 9]);

function frame(eventType: number, ...parts: Uint8Array[]): Uint8Array {
  const size = 4 + parts.reduce((sum, part) => sum + part.byteLength, 0);
  const bytes = new Uint8Array(size);
  new DataView(bytes.buffer).setUint32(0, eventType);
  let offset = 4;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.byteLength;
  }
  return bytes;
}
const u32 = (value: number) => {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
};

describe('parseSocketText', () => {
  it('parses every JSON event type of the protocol', () => {
    const text = (type: string, data: unknown) => parseSocketText(JSON.stringify({ type, data }));
    expect(text('status', { status: { exec_info: { queue_remaining: 2 } }, sid: 'abc' })).toEqual({
      type: 'status',
      queueRemaining: 2,
      sid: 'abc',
    });
    expect(text('execution_start', { prompt_id: 'p', timestamp: 5 })).toEqual({
      type: 'execution_start',
      promptId: 'p',
      timestamp: 5,
    });
    expect(text('execution_cached', { nodes: ['1', 2], prompt_id: 'p' })).toEqual({
      type: 'execution_cached',
      promptId: 'p',
      nodeIds: ['1', '2'],
    });
    expect(text('executing', { node: null, prompt_id: 'p' })).toEqual({
      type: 'executing',
      nodeId: null,
      promptId: 'p',
    });
    expect(text('executing', { node: '3' })).toEqual({ type: 'executing', nodeId: '3' });
    expect(text('progress', { value: 2, max: 4, prompt_id: 'p', node: '3' })).toEqual({
      type: 'progress',
      value: 2,
      max: 4,
      promptId: 'p',
      nodeId: '3',
    });
    expect(
      text('progress_state', { prompt_id: 'p', nodes: { '3': { state: 'running', value: 1, max: 2 } } }),
    ).toEqual({
      type: 'progress_state',
      promptId: 'p',
      nodes: { '3': { state: 'running', value: 1, max: 2 } },
    });
    expect(text('executed', { node: '9', output: { images: [] }, prompt_id: 'p' })).toEqual({
      type: 'executed',
      nodeId: '9',
      output: { images: [] },
      promptId: 'p',
    });
    expect(text('execution_success', { prompt_id: 'p' })).toEqual({
      type: 'execution_success',
      promptId: 'p',
    });
    const error = text('execution_error', { prompt_id: 'p', node_id: '3', exception_message: 'boom' });
    expect(error.type).toBe('execution_error');
    expect(text('execution_interrupted', { prompt_id: 'p', node_id: '3', node_type: 'KSampler' })).toEqual({
      type: 'execution_interrupted',
      promptId: 'p',
      nodeId: '3',
      nodeType: 'KSampler',
    });
  });

  it('keeps unknown or malformed messages as unknown instead of throwing', () => {
    expect(parseSocketText('not json')).toEqual({ type: 'unknown', rawType: 'invalid-json' });
    expect(parseSocketText(JSON.stringify({ type: 'crystools.monitor', data: { cpu: 3 } }))).toMatchObject({
      type: 'unknown',
      rawType: 'crystools.monitor',
    });
    expect(parseSocketText(JSON.stringify({ type: 'progress', data: { value: 'x' } }))).toMatchObject({
      type: 'unknown',
      rawType: 'progress',
    });
    fc.assert(
      fc.property(fc.string(), (value) => {
        expect(() => parseSocketText(value)).not.toThrow();
      }),
    );
  });
});

describe('parseSocketBinary', () => {
  it('reads the preview format at offset 4, not 0', () => {
    // A PNG preview: event type 1, format 2. Reading offset 0 would say JPEG.
    expect(parseSocketBinary(frame(1, u32(2), PNG))).toEqual({
      type: 'preview',
      mime: 'image/png',
      data: PNG,
    });
    expect(parseSocketBinary(frame(1, u32(1), JPEG))).toEqual({
      type: 'preview',
      mime: 'image/jpeg',
      data: JPEG,
    });
  });

  it('reads previews with metadata, and text frames', () => {
    const metadata = new TextEncoder().encode(
      JSON.stringify({ node_id: '3', prompt_id: 'p', image_type: 'image/png' }),
    );
    expect(parseSocketBinary(frame(4, u32(metadata.byteLength), metadata, PNG))).toEqual({
      type: 'preview',
      mime: 'image/png',
      data: PNG,
      nodeId: '3',
      promptId: 'p',
    });
    const nodeId = new TextEncoder().encode('12');
    expect(
      parseSocketBinary(frame(3, u32(nodeId.byteLength), nodeId, new TextEncoder().encode('hello'))),
    ).toEqual({
      type: 'text',
      nodeId: '12',
      text: 'hello',
    });
  });

  it('never throws, and any type-1 frame takes its format from bytes 4..8', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(() => parseSocketBinary(bytes)).not.toThrow();
      }),
    );
    fc.assert(
      fc.property(fc.constantFrom(1, 2), fc.uint8Array({ maxLength: 32 }), (format, image) => {
        const parsed = parseSocketBinary(frame(1, u32(format), image));
        expect(parsed).toMatchObject({ type: 'preview', mime: format === 2 ? 'image/png' : 'image/jpeg' });
        if (parsed.type === 'preview') expect([...parsed.data]).toEqual([...image]);
      }),
    );
  });

  it('reports truncated frames as unknown', () => {
    expect(parseSocketBinary(Uint8Array.from([0, 0]))).toMatchObject({ type: 'unknown' });
    expect(parseSocketBinary(frame(4, u32(100), PNG))).toMatchObject({ type: 'unknown', rawType: 4 });
    expect(parseSocketBinary(frame(9, PNG))).toMatchObject({ type: 'unknown', rawType: 9 });
  });

  it('sniffs image types', () => {
    expect(sniffImageMime(PNG)).toBe('image/png');
    expect(sniffImageMime(JPEG)).toBe('image/jpeg');
    expect(sniffImageMime(new Uint8Array([1, 2, 3]))).toBeUndefined();
  });
});
