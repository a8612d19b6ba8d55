// The quickstart: 20 ComfyUI workflows dispatched across two serverless GPU pools with
// different prices and cold starts, then a report of where each job ran, how long it
// waited and what it cost.
//
// The two pools are SIMULATED (no account, no GPU, no network): they queue jobs, start
// workers with a cold start, bill per second and return a placeholder PNG. Time runs 40x
// faster than real time so the demo takes seconds; every figure printed is in simulated
// time. Set COMFYUI_URL to send the same workflows to a real ComfyUI server instead.
import {
  createDispatcher,
  createSelfHosted,
  formatPerformanceReport,
  type JobResult,
  type ProviderV1,
} from '@comfy-serverless/core';
import {
  createAcceleratedClock,
  createSimulatedProvider,
  type SimulatedProvider,
} from '@comfy-serverless/core/test';
import { createAutoscaler, createTargetTrackingPolicy } from '@comfy-serverless/scaler';

const SPEEDUP = 40;
const JOBS = 20;

/** SDXL text-to-image in ComfyUI's API format (what "Save (API format)" exports). */
const workflow = {
  '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd_xl_base_1.0.safetensors' } },
  '5': { class_type: 'EmptyLatentImage', inputs: { width: 1024, height: 1024, batch_size: 1 } },
  '6': {
    class_type: 'CLIPTextEncode',
    inputs: { text: 'a lighthouse at dusk', clip: ['4', 1] },
    _meta: { title: 'Positive Prompt' },
  },
  '7': { class_type: 'CLIPTextEncode', inputs: { text: 'blurry, low quality', clip: ['4', 1] } },
  '3': {
    class_type: 'KSampler',
    inputs: {
      model: ['4', 0],
      positive: ['6', 0],
      negative: ['7', 0],
      latent_image: ['5', 0],
      seed: 42,
      steps: 25,
      cfg: 7,
      sampler_name: 'dpmpp_2m',
      scheduler: 'karras',
      denoise: 1,
    },
  },
  '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
  '9': { class_type: 'SaveImage', inputs: { images: ['8', 0], filename_prefix: 'quickstart' } },
};

const prompts = [
  'a lighthouse at dusk',
  'a fox in fresh snow',
  'a tram in Lisbon at noon',
  'a cabin under the aurora',
  'a koi pond in the rain',
];

/** A small deterministic random source, so that every run of the demo is the same. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function percentile(values: number[], quantile: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(quantile * sorted.length) - 1)]!;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const usd = (value: number) => `$${value.toFixed(4)}`;

async function main(): Promise<void> {
  const comfyUrl = process.env.COMFYUI_URL;
  const random = seededRandom(7);
  const clock = comfyUrl ? undefined : createAcceleratedClock(SPEEDUP);
  let simulated: SimulatedProvider[] = [];
  let providers: ProviderV1[];
  if (comfyUrl) {
    console.log(`Using the real ComfyUI server at ${comfyUrl} (COMFYUI_URL).`);
    providers = [createSelfHosted({ servers: [comfyUrl], gpu: process.env.COMFYUI_GPU ?? 'RTX4090-24GB' })];
  } else {
    console.log('Both GPU pools below are SIMULATED: no account, GPU or network is used.');
    console.log(
      `Simulated time runs ${SPEEDUP}x faster than real time; all figures are simulated seconds.\n`,
    );
    simulated = [
      createSimulatedProvider({
        id: 'budget-l4',
        gpu: 'L4-24GB',
        workers: { min: 0, max: 3 },
        coldStartMs: () => 20_000 + random() * 10_000,
        executionMs: () => 18_000 + random() * 8_000,
        idleTimeoutMs: 30_000,
        random,
        ...(clock ? { clock } : {}),
      }),
      createSimulatedProvider({
        id: 'fast-h100',
        gpu: 'H100-80GB',
        workers: { min: 1, max: 4 },
        coldStartMs: () => 6_000 + random() * 4_000,
        executionMs: () => 6_000 + random() * 3_000,
        idleTimeoutMs: 30_000,
        random,
        ...(clock ? { clock } : {}),
      }),
    ];
    providers = simulated;
  }

  const dispatcher = createDispatcher({ providers, ...(clock ? { clock } : {}) });

  // Scaling: a target-tracking policy aiming at 95 % of jobs waiting at most 30 s sets the
  // budget pool's warm workers and idle timeout every 15 simulated seconds. The H100 pool
  // keeps its one warm worker for interactive jobs and is left alone.
  const scalingActions: string[] = [];
  const autoscaler =
    simulated.length === 0
      ? undefined
      : createAutoscaler({
          policy: createTargetTrackingPolicy({ objective: { waitMs: 30_000, quantile: 0.95 } }),
          targets: [simulated[0]!.target],
          dispatcher,
          intervalMs: 15_000,
          ...(clock ? { clock } : {}),
        });
  autoscaler?.on('scale:applied', ({ targetId, settings }) => {
    scalingActions.push(`${targetId.replace(':pool', '')} ${JSON.stringify(settings)}`);
  });
  autoscaler?.start();
  const wallStart = Date.now();
  const results: JobResult[] = [];
  const failures: string[] = [];
  const jobs: Promise<void>[] = [];
  console.log('job            kind         provider     waited      ran  cost');
  for (let index = 0; index < JOBS; index++) {
    const jobId = `quickstart-${String(index + 1).padStart(2, '0')}`;
    const prompt = prompts[index % prompts.length]!;
    // Every fourth job is interactive: someone is waiting for it, so it gets a latency
    // budget and the router may pay more for a warm, fast GPU.
    const interactive = index % 4 === 3;
    jobs.push(
      dispatcher
        .runWorkflow(workflow, {
          jobId,
          inputs: { 'Positive Prompt.text': prompt, '3.seed': index },
          timeoutMs: 600_000,
          ...(interactive ? { latencyBudgetMs: 30_000 } : {}),
        })
        .then(
          (result) => {
            results.push(result);
            console.log(
              `${jobId}  ${(interactive ? 'interactive' : 'batch').padEnd(11)}  ${result.providerId.padEnd(10)}  ${seconds(result.timing.queuedMs).padStart(7)}  ${seconds(result.timing.executionMs).padStart(7)}  ${usd(result.cost.usd)}`,
            );
          },
          (error: unknown) => {
            failures.push(`${jobId}: ${(error as Error).message}`);
            console.log(`${jobId}  failed: ${(error as Error).message}`);
          },
        ),
    );
    // Arrivals a few simulated seconds apart, in bursts, as a web backend sees them.
    const gapMs = index % 7 === 6 ? 60_000 : random() * 6_000;
    // Against a real server the same pace is compressed too, so the demo stays short.
    await new Promise((resolve) => setTimeout(resolve, gapMs / SPEEDUP));
  }
  await Promise.all(jobs);
  await autoscaler?.stop();

  console.log(`\nScaling: ${scalingActions.length} change(s) applied by the autoscaler`);
  for (const action of scalingActions.slice(0, 6)) console.log(`  ${action}`);
  if (scalingActions.length > 6) console.log(`  ... and ${scalingActions.length - 6} more`);

  console.log('\nSummary by provider');
  console.log('provider     jobs   p50 latency   p95 latency   job cost    billed (incl. cold start + idle)');
  const byProvider = new Map<string, JobResult[]>();
  for (const result of results)
    byProvider.set(result.providerId, [...(byProvider.get(result.providerId) ?? []), result]);
  let totalCost = 0;
  let totalBilled = 0;
  for (const provider of providers) {
    const own = byProvider.get(provider.id) ?? [];
    const latencies = own.map((result) => result.timing.totalMs);
    const cost = own.reduce((sum, result) => sum + result.cost.usd, 0);
    const billed = simulated.find((pool) => pool.id === provider.id)?.stats().usdBilled;
    totalCost += cost;
    totalBilled += billed ?? 0;
    console.log(
      `${provider.id.padEnd(11)}  ${String(own.length).padStart(4)}   ${seconds(percentile(latencies, 0.5)).padStart(11)}   ${seconds(percentile(latencies, 0.95)).padStart(11)}   ${usd(cost).padStart(8)}   ${billed === undefined ? 'n/a' : usd(billed)}`,
    );
  }
  const allLatencies = results.map((result) => result.timing.totalMs);
  console.log(
    `${'total'.padEnd(11)}  ${String(results.length).padStart(4)}   ${seconds(percentile(allLatencies, 0.5)).padStart(11)}   ${seconds(percentile(allLatencies, 0.95)).padStart(11)}   ${usd(totalCost).padStart(8)}   ${simulated.length ? usd(totalBilled) : 'n/a'}`,
  );
  console.log(
    `\nThe dispatcher's own report (dispatcher.report()):\n${formatPerformanceReport(dispatcher.report())}`,
  );
  console.log(
    `\n${results.length} completed, ${failures.length} failed, in ${((Date.now() - wallStart) / 1000).toFixed(1)} s of real time.`,
  );
  if (failures.length > 0) process.exitCode = 1;
}

await main();
