import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConfigurationError,
  InvalidArgumentError,
  InvalidResponseError,
  UnsafeModelPathError,
} from '../spec/errors';
import { createVirtualClock } from '../test/virtual-clock';
import { createDiskModelCache } from './disk-cache';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'disk-cache-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const fill = (size: number, value = 1) => Buffer.alloc(size, value);
/** A fetch that writes `data` to the temporary file it is given. */
const writing = (data: Buffer, calls: string[] = []) => ({
  sizeBytes: data.length,
  fetch: async (filePath: string) => {
    calls.push(filePath);
    await writeFile(filePath, data);
    return { bytesDownloaded: data.length };
  },
});

describe('createDiskModelCache', () => {
  it('validates its options at once', () => {
    expect(() => createDiskModelCache({ dir: '', maxBytes: 1 })).toThrow(InvalidArgumentError);
    expect(() => createDiskModelCache({ dir, maxBytes: 0 })).toThrow(/maxBytes/);
  });

  it("places models in ComfyUI's layout and refuses names that would escape it", () => {
    const cache = createDiskModelCache({ dir, maxBytes: 1000 });
    expect(cache.pathOf({ folder: 'loras', name: 'sdxl/style.safetensors' })).toBe(
      join(dir, 'loras', 'sdxl', 'style.safetensors'),
    );
    expect(cache.pathOf({ folder: 'loras', name: 'sdxl\\style.safetensors' })).toBe(
      join(dir, 'loras', 'sdxl', 'style.safetensors'),
    );
    for (const name of ['../../etc/passwd', '/etc/passwd', 'C:\\models\\x.safetensors', 'a\u0000b']) {
      expect(() => cache.pathOf({ folder: 'checkpoints', name })).toThrow(UnsafeModelPathError);
    }
    expect(() => cache.pathOf({ folder: '..', name: 'x.safetensors' })).toThrow(UnsafeModelPathError);
    expect(() => cache.pathOf({ folder: 'a/b', name: 'x.safetensors' })).toThrow(InvalidArgumentError);
    expect(() => cache.pathOf({ folder: null, name: 'x.safetensors' })).toThrow(/no folder/);
  });

  it('finds models already on disk, and ignores hidden partial downloads', async () => {
    await mkdir(join(dir, 'checkpoints', 'sdxl'), { recursive: true });
    await writeFile(join(dir, 'checkpoints', 'sdxl', 'base.safetensors'), fill(10));
    await mkdir(join(dir, '.partial', 'loras'), { recursive: true });
    await writeFile(join(dir, '.partial', 'loras', 'half.safetensors.part'), fill(5));
    const cache = createDiskModelCache({ dir, maxBytes: 1000 });
    expect(
      await cache.status([
        { folder: 'checkpoints', name: 'sdxl/base.safetensors' },
        { folder: 'loras', name: 'half.safetensors' },
      ]),
    ).toEqual({ 'checkpoints/sdxl/base.safetensors': 'present', 'loras/half.safetensors': 'absent' });
    expect((await cache.usage()).usedBytes).toBe(10);
  });

  it('downloads to a hidden temporary file and renames it into place when complete', async () => {
    const cache = createDiskModelCache({ dir, maxBytes: 1000 });
    const finalPath = join(dir, 'vae', 'ae.safetensors');
    let visibleDuringDownload = true;
    const result = await cache.ensure(
      { folder: 'vae', name: 'ae.safetensors' },
      {
        sizeBytes: 100,
        fetch: async (filePath) => {
          expect(filePath.startsWith(join(dir, '.partial'))).toBe(true);
          await writeFile(filePath, fill(100));
          visibleDuringDownload = await stat(finalPath).then(
            () => true,
            () => false,
          );
          return { bytesDownloaded: 100 };
        },
      },
    );
    expect(visibleDuringDownload).toBe(false);
    expect(result).toEqual({
      path: finalPath,
      sizeBytes: 100,
      hit: false,
      shared: false,
      bytesDownloaded: 100,
    });
    expect((await readFile(finalPath)).length).toBe(100);
    const again = await cache.ensure({ folder: 'vae', name: 'ae.safetensors' }, writing(fill(100)));
    expect(again.hit).toBe(true);
  });

  it('downloads a model once when several callers ask for it at the same time', async () => {
    const cache = createDiskModelCache({ dir, maxBytes: 1000 });
    const calls: string[] = [];
    const model = { folder: 'checkpoints', name: 'one.safetensors' };
    const results = await Promise.all([1, 2, 3].map(() => cache.ensure(model, writing(fill(50), calls))));
    expect(calls).toHaveLength(1);
    expect(results.filter((result) => result.shared)).toHaveLength(2);
    expect(new Set(results.map((result) => result.path)).size).toBe(1);
  });

  it('evicts the least recently used files to stay under maxBytes', async () => {
    const clock = createVirtualClock();
    const cache = createDiskModelCache({ dir, maxBytes: 250, clock });
    const a = { folder: 'loras', name: 'a.safetensors' };
    const b = { folder: 'loras', name: 'b.safetensors' };
    const c = { folder: 'loras', name: 'c.safetensors' };
    await cache.ensure(a, writing(fill(100)));
    clock.set(clock.now() + 1000);
    await cache.ensure(b, writing(fill(100)));
    clock.set(clock.now() + 1000);
    await cache.ensure(a, writing(fill(100))); // a is used again: b is now the oldest
    clock.set(clock.now() + 1000);
    await cache.ensure(c, writing(fill(100)));
    expect(await cache.status([a, b, c])).toEqual({
      'loras/a.safetensors': 'present',
      'loras/b.safetensors': 'absent',
      'loras/c.safetensors': 'present',
    });
    await expect(stat(join(dir, 'loras', 'b.safetensors'))).rejects.toThrow();
    expect((await cache.usage()).usedBytes).toBe(200);
  });

  it('never evicts a file in use, and says so when nothing can be evicted', async () => {
    const clock = createVirtualClock();
    const cache = createDiskModelCache({ dir, maxBytes: 250, clock });
    const a = { folder: 'loras', name: 'a.safetensors' };
    const b = { folder: 'loras', name: 'b.safetensors' };
    const c = { folder: 'loras', name: 'c.safetensors' };
    await cache.ensure(a, writing(fill(100)));
    clock.set(clock.now() + 1000);
    await cache.ensure(b, writing(fill(100)));
    const leaseA = await cache.acquire([a]);
    clock.set(clock.now() + 1000);
    await cache.ensure(c, writing(fill(100))); // a is older but held: b goes
    expect((await cache.status([a, b]))['loras/a.safetensors']).toBe('present');
    expect((await cache.status([a, b]))['loras/b.safetensors']).toBe('absent');
    expect(await cache.evict(a)).toBe(false);

    const leaseC = await cache.acquire([c]);
    const error = await cache.ensure(b, writing(fill(100))).catch((caught) => caught);
    expect(ConfigurationError.isInstance(error) && error.isRetryable).toBe(true);
    expect((error as Error).message).toContain('in use');
    leaseA.release();
    leaseA.release(); // twice is harmless
    await cache.ensure(b, writing(fill(100)));
    expect((await cache.status([a]))['loras/a.safetensors']).toBe('absent');
    expect((await cache.status([c]))['loras/c.safetensors']).toBe('present');
    leaseC.release();
  });

  it('refuses a model larger than the whole cache', async () => {
    const cache = createDiskModelCache({ dir, maxBytes: 100 });
    const error = await cache
      .ensure({ folder: 'checkpoints', name: 'big.safetensors' }, writing(fill(101)))
      .catch((caught) => caught);
    expect(ConfigurationError.isInstance(error) && !error.isRetryable).toBe(true);
    expect((error as Error).message).toContain('Raise maxBytes');
  });

  it('verifies sha256 when it is known and keeps nothing of a mismatch', async () => {
    const cache = createDiskModelCache({ dir, maxBytes: 1000 });
    const data = fill(64, 7);
    const good = createHash('sha256').update(data).digest('hex');
    const model = { folder: 'checkpoints', name: 'sum.safetensors' };
    const bad = await cache
      .ensure({ ...model, sha256: 'f'.repeat(64) }, writing(data))
      .catch((caught) => caught);
    expect(InvalidResponseError.isInstance(bad)).toBe(true);
    expect((await cache.status([model]))['checkpoints/sum.safetensors']).toBe('absent');
    await expect(stat(join(dir, '.partial', 'checkpoints', 'sum.safetensors.part'))).rejects.toThrow();
    const ok = await cache.ensure({ ...model, sha256: good.toUpperCase() }, writing(data));
    expect(ok.hit).toBe(false);
    expect((await cache.status([model]))['checkpoints/sum.safetensors']).toBe('present');
  });

  it('downloads afresh once when a resumed file fails its sha256', async () => {
    const cache = createDiskModelCache({ dir, maxBytes: 1000 });
    const data = fill(64, 9);
    const model = {
      folder: 'vae',
      name: 'resumed.safetensors',
      sha256: createHash('sha256').update(data).digest('hex'),
    };
    const partial = join(dir, '.partial', 'vae', 'resumed.safetensors.part');
    await mkdir(join(dir, '.partial', 'vae'), { recursive: true });
    await writeFile(partial, fill(64, 1));
    await writeFile(`${partial}.state.json`, '{}');
    const seen: boolean[] = [];
    const result = await cache.ensure(model, {
      sizeBytes: 64,
      fetch: async (filePath) => {
        const resumed = await stat(`${filePath}.state.json`).then(
          () => true,
          () => false,
        );
        seen.push(resumed);
        // A resumed download keeps the torn bytes; a fresh one writes the right ones.
        if (!resumed) await writeFile(filePath, data);
        return { bytesDownloaded: resumed ? 0 : 64 };
      },
    });
    expect(seen).toEqual([true, false]);
    expect(result.bytesDownloaded).toBe(64);
    expect((await readFile(join(dir, 'vae', 'resumed.safetensors'))).equals(data)).toBe(true);
  });

  it('leaves nothing visible when a download dies half way, for this process and the next', async () => {
    const cache = createDiskModelCache({ dir, maxBytes: 1000 });
    const model = { folder: 'unet', name: 'flux.safetensors' };
    await expect(
      cache.ensure(model, {
        sizeBytes: 100,
        fetch: async (filePath) => {
          await writeFile(filePath, fill(40));
          throw new Error('process killed');
        },
      }),
    ).rejects.toThrow('process killed');
    await expect(stat(join(dir, 'unet', 'flux.safetensors'))).rejects.toThrow();
    expect((await cache.usage()).reservedBytes).toBe(0);
    const restarted = createDiskModelCache({ dir, maxBytes: 1000 });
    expect(await restarted.status([model])).toEqual({ 'unet/flux.safetensors': 'absent' });
    // The partial file is still there for a resumable source to pick up.
    expect((await stat(join(dir, '.partial', 'unet', 'flux.safetensors.part'))).size).toBe(40);
  });

  it('notices a file removed behind its back and downloads it again', async () => {
    const cache = createDiskModelCache({ dir, maxBytes: 1000 });
    const model = { folder: 'loras', name: 'gone.safetensors' };
    await cache.ensure(model, writing(fill(10)));
    await rm(join(dir, 'loras', 'gone.safetensors'));
    const calls: string[] = [];
    const result = await cache.ensure(model, writing(fill(10), calls));
    expect(result.hit).toBe(false);
    expect(calls).toHaveLength(1);
  });
});
