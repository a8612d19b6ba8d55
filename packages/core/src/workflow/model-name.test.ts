import { describe, expect, it } from 'vitest';
import { UnsafeModelPathError } from '../spec/errors';
import { assertSafeModelName, isSafeModelName, looksLikeModelFile, normalizeModelName } from './model-name';

describe('isSafeModelName / assertSafeModelName', () => {
  it.each([
    'model.safetensors',
    'sdxl/base.safetensors',
    'sdxl\\base.safetensors',
    'a/b/c/d.gguf',
    'model..v2.safetensors',
    './local.ckpt',
  ])('accepts %s', (name) => {
    expect(isSafeModelName(name)).toBe(true);
    expect(() => assertSafeModelName(name)).not.toThrow();
  });

  it.each([
    ['', 'empty'],
    ['..', "'..' path segment"],
    ['../model.safetensors', "'..' path segment"],
    ['sdxl/../../etc/passwd', "'..' path segment"],
    ['sdxl\\..\\..\\x.ckpt', "'..' path segment"],
    ['/etc/passwd', 'absolute path'],
    ['\\\\server\\share\\x.ckpt', 'absolute path'],
    ['C:\\models\\x.ckpt', 'drive prefix'],
    ['c:x.ckpt', 'drive prefix'],
    ['a\u0000.safetensors', 'NUL'],
    ['a\n.safetensors', 'control character'],
  ])('refuses %j (%s)', (name, reason) => {
    expect(isSafeModelName(name)).toBe(false);
    let error: unknown;
    try {
      assertSafeModelName(name, { jobId: 'job-1' });
    } catch (caught) {
      error = caught;
    }
    expect(UnsafeModelPathError.isInstance(error)).toBe(true);
    const unsafe = error as UnsafeModelPathError;
    expect(unsafe.modelName).toBe(name);
    expect(unsafe.jobId).toBe('job-1');
    expect(unsafe.message).toContain(reason);
    expect(unsafe.message).toContain('relative to the ComfyUI model folder');
    expect(unsafe.message).not.toContain('\u0000');
  });

  it('refuses what is not a string', () => {
    expect(isSafeModelName(undefined)).toBe(false);
    expect(() => assertSafeModelName(42)).toThrow(UnsafeModelPathError);
  });
});

describe('normalizeModelName and looksLikeModelFile', () => {
  it('turns Windows separators into slashes', () => {
    expect(normalizeModelName('sdxl\\base\\x.safetensors')).toBe('sdxl/base/x.safetensors');
    expect(normalizeModelName('plain.ckpt')).toBe('plain.ckpt');
  });

  it('knows the model extensions, in any case', () => {
    expect(looksLikeModelFile('X.SAFETENSORS')).toBe(true);
    expect(looksLikeModelFile('w.pt')).toBe(true);
    expect(looksLikeModelFile('.pt')).toBe(false);
    expect(looksLikeModelFile('photo.png')).toBe(false);
    expect(looksLikeModelFile(3)).toBe(false);
  });
});
