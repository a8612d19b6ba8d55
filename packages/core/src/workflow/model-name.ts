import { UnsafeModelPathError } from '../spec/errors';

/**
 * File extensions ComfyUI loads model weights from. An input of an unknown node whose value
 * ends with one of these is reported as a (guessed) model.
 */
export const MODEL_FILE_EXTENSIONS: readonly string[] = [
  '.safetensors',
  '.ckpt',
  '.pt',
  '.pth',
  '.bin',
  '.gguf',
  '.sft',
  '.onnx',
];

const MODEL_FILE_PATTERN = /.\.(?:safetensors|ckpt|pt|pth|bin|gguf|sft|onnx)$/i;
const DRIVE_PREFIX = /^[A-Za-z]:/;
// Control characters other than NUL are refused too: no model file needs them and they
// confuse logs and shells.
function hasControlCharacter(name: string): boolean {
  for (let index = 0; index < name.length; index++) {
    const code = name.charCodeAt(index);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** Why a model name is unsafe, or undefined when it is safe. */
function unsafeReason(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'it is not a string';
  if (name.length === 0) return 'it is empty';
  if (name.includes('\u0000')) return 'it contains a NUL character';
  if (hasControlCharacter(name)) return 'it contains a control character';
  if (name.startsWith('/') || name.startsWith('\\')) return 'it is an absolute path';
  if (DRIVE_PREFIX.test(name)) return 'it starts with a drive prefix';
  for (const segment of name.split(/[\\/]/)) {
    if (segment === '..') return "it contains a '..' path segment";
  }
  return undefined;
}

/**
 * Whether a model or input file name stays inside its ComfyUI folder: not empty, no `..`
 * path segment, not absolute (`/x`, `\x`, `\\server\x`), no drive prefix (`C:`), no NUL or
 * other control character. Subfolders (`sdxl/base.safetensors`, `sdxl\base.safetensors`)
 * are fine. A `..` inside a file name (`model..v2.safetensors`) is not a path segment and is
 * accepted.
 *
 * @example isSafeModelName('sdxl/base.safetensors') // true
 * @example isSafeModelName('../../etc/passwd') // false
 */
export function isSafeModelName(name: unknown): name is string {
  return unsafeReason(name) === undefined;
}

/**
 * Throws `UnsafeModelPathError` unless {@link isSafeModelName} accepts the name. The model
 * disk cache calls this before it builds a path from a name.
 *
 * @example assertSafeModelName(ref.name); // then path.join(root, folder, ref.name) is safe
 */
export function assertSafeModelName(name: unknown, context: { jobId?: string } = {}): asserts name is string {
  const reason = unsafeReason(name);
  if (reason === undefined) return;
  const shown = typeof name === 'string' ? name : String(name);
  throw new UnsafeModelPathError({
    message:
      `Model name ${JSON.stringify(shown.replaceAll('\u0000', '\\0'))} is refused because ${reason}. ` +
      'Use a name relative to the ComfyUI model folder, such as "sdxl/base.safetensors".',
    modelName: shown,
    ...(context.jobId === undefined ? {} : { jobId: context.jobId }),
  });
}

/**
 * A model name with Windows separators turned into `/` (ComfyUI on Windows lists
 * `sdxl\base.safetensors` for what Linux lists as `sdxl/base.safetensors`).
 */
export function normalizeModelName(name: string): string {
  return name.includes('\\') ? name.replaceAll('\\', '/') : name;
}

/** Whether a value looks like a model file name (a string ending in a model extension). */
export function looksLikeModelFile(value: unknown): value is string {
  return typeof value === 'string' && MODEL_FILE_PATTERN.test(value);
}
