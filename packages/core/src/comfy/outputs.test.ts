import { describe, expect, it } from 'vitest';
import { listOutputs, mimeOfFilename } from './outputs';

describe('listOutputs', () => {
  const outputs = {
    '9': { images: [{ filename: 'a.png', subfolder: '', type: 'output' }] },
    '10': { images: [{ filename: 'preview.png', subfolder: '', type: 'temp' }] },
    '11': {
      gifs: [
        { filename: 'clip.mp4', subfolder: '', type: 'output', format: 'video/h264-mp4' },
        { filename: 'loop.gif', subfolder: '', type: 'output', format: 'image/gif' },
      ],
    },
    '12': { video: [{ filename: 'v.webm', subfolder: 'video', type: 'output' }] },
    '13': { audio: [{ filename: 'a.flac', subfolder: 'audio', type: 'output' }] },
    '14': { text: ['hello', 'world'] },
    '15': { meshes: [{ filename: 'model.glb', subfolder: '3d', type: 'output' }], animated: [true] },
    '16': { images: [{ filename: 'anim.webp', subfolder: '', type: 'output' }], animated: [true] },
  };

  it('lists every kind, with unknown file keys passed through', () => {
    const items = listOutputs(outputs);
    const summary = items.map((item) => [item.nodeId, item.kind, item.filename, item.mime]);
    expect(summary).toEqual(
      expect.arrayContaining([
        ['9', 'image', 'a.png', 'image/png'],
        ['11', 'video', 'clip.mp4', 'video/mp4'],
        ['11', 'gif', 'loop.gif', 'image/gif'],
        ['12', 'video', 'v.webm', 'video/webm'],
        ['13', 'audio', 'a.flac', 'audio/flac'],
        ['14', 'text', '14-text-0.txt', 'text/plain'],
        ['14', 'text', '14-text-1.txt', 'text/plain'],
        ['15', 'file', 'model.glb', 'model/gltf-binary'],
        ['16', 'image', 'anim.webp', 'image/webp'],
      ]),
    );
    expect(items.find((item) => item.nodeId === '14')?.text).toBe('hello');
    expect(items.find((item) => item.filename === 'v.webm')?.file).toEqual({
      filename: 'v.webm',
      subfolder: 'video',
      type: 'output',
    });
  });

  it('leaves temp outputs out unless asked', () => {
    expect(listOutputs(outputs).some((item) => item.filename === 'preview.png')).toBe(false);
    expect(listOutputs(outputs, { includeTemp: true }).some((item) => item.filename === 'preview.png')).toBe(
      true,
    );
  });

  it('ignores entries that are not files', () => {
    expect(listOutputs({ '1': { images: [null, 3, { nope: 1 }], animated: [true] } })).toEqual([]);
  });

  it('names MIME types by extension', () => {
    expect(mimeOfFilename('X.JPG')).toBe('image/jpeg');
    expect(mimeOfFilename('noext')).toBe('application/octet-stream');
  });
});
