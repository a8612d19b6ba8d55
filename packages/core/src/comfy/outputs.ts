import type { OutputKind } from '../spec/job';
import { type ComfyHistoryOutputs, outputFileSchema } from './comfy-api';

/** One output listed in a history entry, before its bytes are fetched. */
export interface ComfyOutputItem {
  nodeId: string;
  kind: OutputKind;
  filename: string;
  mime: string;
  /** The key of the node's UI dict it came from (`images`, `gifs`, `video`, ...). */
  key: string;
  /** Where `/view` finds it; absent for text. */
  file?: { filename: string; subfolder: string; type: string };
  /** The content of a text output. */
  text?: string;
}

const MIME_BY_EXTENSION: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  gif: 'image/gif',
  bmp: 'image/bmp',
  tif: 'image/tiff',
  tiff: 'image/tiff',
  exr: 'image/x-exr',
  mp4: 'video/mp4',
  webm: 'video/webm',
  mov: 'video/quicktime',
  mkv: 'video/x-matroska',
  avi: 'video/x-msvideo',
  mp3: 'audio/mpeg',
  wav: 'audio/wav',
  flac: 'audio/flac',
  ogg: 'audio/ogg',
  opus: 'audio/opus',
  m4a: 'audio/mp4',
  txt: 'text/plain',
  json: 'application/json',
  glb: 'model/gltf-binary',
  gltf: 'model/gltf+json',
  obj: 'model/obj',
  safetensors: 'application/octet-stream',
};

/** The MIME type of a file name, from its extension. */
export function mimeOfFilename(filename: string): string {
  const extension = filename.split('.').pop()?.toLowerCase() ?? '';
  // An own-property lookup: a name ending in `.constructor` or `__proto__` is just a file.
  return Object.hasOwn(MIME_BY_EXTENSION, extension)
    ? MIME_BY_EXTENSION[extension]!
    : 'application/octet-stream';
}

function kindOfMime(mime: string): OutputKind {
  if (mime === 'image/gif') return 'gif';
  if (mime.startsWith('image/')) return 'image';
  if (mime.startsWith('video/')) return 'video';
  if (mime.startsWith('audio/')) return 'audio';
  if (mime.startsWith('text/')) return 'text';
  return 'file';
}

/** Video helper nodes store `format: "video/h264-mp4"` or `"image/gif"` beside each file. */
function mimeOfFormat(format: string | null | undefined): string | undefined {
  if (!format) return undefined;
  const [major, minor = ''] = format.split('/');
  if (major === 'video') return minor.includes('webm') ? 'video/webm' : 'video/mp4';
  if (major === 'image') return minor === 'gif' ? 'image/gif' : `image/${minor || 'png'}`;
  if (major === 'audio') return `audio/${minor || 'mpeg'}`;
  return undefined;
}

function kindForKey(key: string, mime: string): OutputKind {
  const byMime = kindOfMime(mime);
  switch (key) {
    case 'images':
      // An animated image saved by SaveAnimatedWEBP stays an image; a gif is a gif.
      return byMime === 'gif' || byMime === 'video' ? byMime : 'image';
    case 'gifs':
      // Video helper nodes list mp4 and webm under `gifs` too.
      return byMime === 'video' ? 'video' : 'gif';
    case 'video':
    case 'videos':
      return 'video';
    case 'audio':
    case 'audios':
      return 'audio';
    default:
      return byMime;
  }
}

/**
 * Lists every output of a history entry's `outputs`, keyed by node id: files under
 * `images`, `gifs`, `video`, `audio` and any other key whose items look like files, and
 * strings under `text`. Outputs of type `temp` (previews) are left out unless
 * `includeTemp` is set.
 */
export function listOutputs(
  outputs: ComfyHistoryOutputs,
  options: { includeTemp?: boolean } = {},
): ComfyOutputItem[] {
  const items: ComfyOutputItem[] = [];
  for (const [nodeId, ui] of Object.entries(outputs)) {
    if (ui === null || typeof ui !== 'object') continue;
    for (const [key, value] of Object.entries(ui)) {
      if (key === 'text') {
        const texts = Array.isArray(value) ? value : [value];
        texts.forEach((text, index) => {
          if (typeof text !== 'string') return;
          items.push({
            nodeId,
            kind: 'text',
            filename: `${nodeId}-text-${index}.txt`,
            mime: 'text/plain',
            key,
            text,
          });
        });
        continue;
      }
      if (!Array.isArray(value)) continue;
      for (const entry of value) {
        const parsed = outputFileSchema.safeParse(entry);
        if (!parsed.success || parsed.data.filename === '') continue;
        const type = parsed.data.type ?? 'output';
        if (type === 'temp' && !options.includeTemp) continue;
        const mime = mimeOfFormat(parsed.data.format) ?? mimeOfFilename(parsed.data.filename);
        items.push({
          nodeId,
          kind: kindForKey(key, mime),
          filename: parsed.data.filename,
          mime,
          key,
          file: { filename: parsed.data.filename, subfolder: parsed.data.subfolder ?? '', type },
        });
      }
    }
  }
  return items;
}
