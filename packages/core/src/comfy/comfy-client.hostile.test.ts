import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ComfyServerlessError, PayloadTooLargeError } from '../spec/errors';
import { sampleWorkflow } from '../test/fake-comfy';
import { createComfyClient } from './comfy-client';

// A ComfyUI server (or whatever answers at its address) that returns garbage: every client
// call ends with a value or a typed error, never a crash; huge files are refused while read.
// Each case makes a few calls: 1,000 cases in CI, FUZZ_RUNS/10 for the nightly-size run.
const RUNS = Math.max(1, Math.floor((Number.parseInt(process.env.FUZZ_RUNS ?? '', 10) || 10_000) / 10));
// A fixed seed keeps CI deterministic; FUZZ_SEED=random explores, FUZZ_SEED=<n> replays.
const SEED = process.env.FUZZ_SEED === 'random' ? undefined : Number(process.env.FUZZ_SEED ?? 20261126);
const settings = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };

const hostileJson = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom(null, true, 0, -1, '', 'ok', [], {}),
    fc.string(),
    fc.double(),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(
      fc.constantFrom(
        'prompt_id',
        'number',
        'node_errors',
        'error',
        'queue_running',
        'queue_pending',
        'outputs',
        'status',
        'prompt',
        'system',
        'devices',
        'name',
        'subfolder',
        'type',
        'input',
        'required',
        '__proto__',
      ),
      tie('value'),
      { maxKeys: 5 },
    ),
  ),
})).value;

/** An answer: JSON of any shape, text that is not JSON, or an error status. */
const answer = fc.record({
  status: fc.constantFrom(200, 200, 200, 400, 404, 500),
  body: fc.oneof(
    hostileJson.map((value) => JSON.stringify(value) ?? 'null'),
    fc.string(),
  ),
});

async function settle(call: () => Promise<unknown>): Promise<void> {
  try {
    await call();
  } catch (error) {
    if (!ComfyServerlessError.isInstance(error)) throw error;
  }
}

describe('ComfyUI client against hostile answers', () => {
  it(`gives a value or a typed error for every call, whatever the server answers (${RUNS} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(answer, async ({ status, body }) => {
        const client = createComfyClient({
          baseURL: 'http://127.0.0.1:1',
          fetch: async () => new Response(body, { status, headers: { 'content-type': 'application/json' } }),
        });
        await settle(() => client.queuePrompt(sampleWorkflow(), { promptId: 'p-1' }));
        await settle(() => client.getQueue());
        await settle(() => client.getHistory('p-1'));
        await settle(() => client.getObjectInfo());
        await settle(() => client.getSystemStats());
        await settle(() => client.listModels('checkpoints'));
        await settle(() => client.cancel('p-1'));
        await settle(() => client.uploadImage({ name: 'a.png', data: new Uint8Array([1, 2, 3]) }));
      }),
      settings,
    );
  }, 60_000);

  it('refuses a /view file over the limit while reading, without reading it all', async () => {
    const chunk = new Uint8Array(1024 * 1024);
    let pulled = 0;
    let cancelled = false;
    const client = createComfyClient({
      baseURL: 'http://127.0.0.1:1',
      maxOutputBytes: 8 * 1024 * 1024,
      fetch: async () =>
        new Response(
          new ReadableStream<Uint8Array>({
            pull(controller) {
              // 1 GiB if read to the end; made as it is read.
              if (pulled >= 1024 * 1024 * 1024) return controller.close();
              pulled += chunk.byteLength;
              controller.enqueue(chunk);
            },
            cancel() {
              cancelled = true;
            },
          }),
          { status: 200, headers: { 'content-type': 'image/png' } },
        ),
    });
    const error = await client.view({ filename: 'huge.png', type: 'output' }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(PayloadTooLargeError.isInstance(error)).toBe(true);
    expect(cancelled).toBe(true);
    expect(pulled).toBeLessThan(16 * 1024 * 1024);
  });
});
