import { InvalidResponseError } from '@comfy-serverless/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBase64, decodeWorkerOutput, outputNodesByPrefix } from './runpod-outputs';

describe('decodeWorkerOutput', () => {
  it('decodes base64 images and audio, keeps s3_url as URLs, skips temp files', () => {
    const { outputs, warnings } = decodeWorkerOutput(
      {
        images: [
          {
            filename: 'Render_00001_.png',
            type: 'base64',
            data: Buffer.from('png-bytes').toString('base64'),
          },
          { filename: 'Preview_00001_.png', type: 'temp', data: 'AAAA' },
          {
            filename: 'Other_00001_.webp',
            type: 's3_url',
            data: 'https://bucket.example.com/a/Other_00001_.webp',
          },
          { filename: 'Anim_00001_.gif', type: 'base64', data: 'R0lGODlh' },
        ],
        audio: [{ filename: 'Voice_00001_.flac', type: 'base64', data: 'ZkxhQw==' }],
        errors: ["Node 12 produced unhandled output keys: ['gifs']."],
      },
      { prefixes: { Render: '9', Other: '11', Voice: '20' } },
    );
    expect(outputs).toHaveLength(4);
    expect(outputs[0]).toMatchObject({
      nodeId: '9',
      kind: 'image',
      mime: 'image/png',
      filename: 'Render_00001_.png',
    });
    expect(Buffer.from(outputs[0]?.data ?? []).toString()).toBe('png-bytes');
    expect(outputs[1]).toEqual({
      nodeId: '11',
      kind: 'image',
      mime: 'image/webp',
      filename: 'Other_00001_.webp',
      url: 'https://bucket.example.com/a/Other_00001_.webp',
    });
    expect(outputs[2]).toMatchObject({ kind: 'gif', mime: 'image/gif', nodeId: '' });
    expect(outputs[3]).toMatchObject({ nodeId: '20', kind: 'audio', mime: 'audio/flac' });
    expect(warnings).toEqual(["Node 12 produced unhandled output keys: ['gifs']."]);
  });

  it('takes data URIs and the no-output status', () => {
    const { outputs } = decodeWorkerOutput({
      images: [{ filename: 'a.jpg', type: 'base64', data: 'data:image/jpeg;base64,AQID' }],
    });
    expect(outputs[0]?.mime).toBe('image/jpeg');
    expect([...(outputs[0]?.data ?? [])]).toEqual([1, 2, 3]);
    expect(decodeWorkerOutput({ status: 'success_no_images', images: [] }).outputs).toEqual([]);
    expect(decodeWorkerOutput(null).outputs).toEqual([]);
  });

  it('refuses shapes that are not worker-comfyui output', () => {
    expect(() => decodeWorkerOutput('just a string')).toThrow(InvalidResponseError);
    expect(() => decodeWorkerOutput({ images: 'nope' })).toThrow(/worker-comfyui/);
    expect(() =>
      decodeWorkerOutput({ images: [{ filename: 'a.png', type: 'base64', data: '@@not base64@@' }] }),
    ).toThrow(/neither base64 nor a URL/);
  });

  it('round-trips any bytes through base64 (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), fc.boolean(), (bytes, asDataUri) => {
        const base64 = Buffer.from(bytes).toString('base64');
        const text = asDataUri ? `data:image/png;base64,${base64}` : base64;
        const decoded = decodeBase64(text);
        expect(decoded).toBeDefined();
        expect(Buffer.from(decoded?.bytes ?? []).equals(Buffer.from(bytes))).toBe(true);
      }),
    );
  });

  it('never throws anything but InvalidResponseError on arbitrary input (property)', () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        try {
          const { outputs } = decodeWorkerOutput(value);
          for (const output of outputs)
            expect(output.data !== undefined || output.url !== undefined).toBe(true);
        } catch (error) {
          expect(InvalidResponseError.isInstance(error)).toBe(true);
        }
      }),
    );
  });
});

describe('outputNodesByPrefix', () => {
  it('maps filename prefixes (without subfolders) to node ids', () => {
    expect(
      outputNodesByPrefix({
        '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'renders/hero' } },
        '10': { class_type: 'SaveAudio', inputs: { filename_prefix: 'voice' } },
        '3': { class_type: 'KSampler', inputs: { seed: 1 } },
      }),
    ).toEqual({ hero: '9', voice: '10' });
  });
});
