import { describe, expect, it } from 'vitest';
import { type ConformanceScenario, testProvider } from '../test/conformance';
import { startFakeComfyServer } from '../test/fake-comfy';
import { createSelfHosted } from './self-hosted';

const txt2img = (checkpoint = 'sd_xl_base_1.0.safetensors', sampler = 'KSampler') => ({
  '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: checkpoint } },
  '5': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
  '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a lighthouse at dusk', clip: ['4', 1] } },
  '7': { class_type: 'CLIPTextEncode', inputs: { text: 'blurry', clip: ['4', 1] } },
  '3': {
    class_type: sampler,
    inputs: {
      model: ['4', 0],
      seed: 42,
      steps: 20,
      cfg: 7,
      sampler_name: 'euler',
      scheduler: 'normal',
      positive: ['6', 0],
      negative: ['7', 0],
      latent_image: ['5', 0],
      denoise: 1,
    },
  },
  '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
  '9': { class_type: 'SaveImage', inputs: { images: ['8', 0], filename_prefix: 'ComfyUI' } },
});

const fastWatch = { pollIntervalMs: 20, socketPollIntervalMs: 100, missingChecks: 3 };

testProvider('self-hosted', async () => {
  const fake = await startFakeComfyServer({ stepMs: 2 });
  const provider = createSelfHosted({ servers: [fake.url], gpu: 'RTX4090-24GB', watch: fastWatch });
  return {
    provider,
    arrange(scenario: ConformanceScenario) {
      switch (scenario) {
        case 'success':
          fake.arrange({ type: 'succeed' });
          break;
        case 'execution-failure':
          fake.arrange({ type: 'fail', nodeId: '3', message: 'CUDA out of memory' });
          break;
        case 'long-running':
          fake.arrange({ type: 'run-until-cancelled' });
          break;
        case 'submit-retryable-error':
          fake.arrange({ type: 'http-error', status: 503 });
          break;
        case 'submit-fatal-error':
          // A node type no server has: preflight refuses it before a GPU is used.
          return { workflow: txt2img('sd_xl_base_1.0.safetensors', 'KSamplerFromAnotherPack') };
      }
      return { workflow: txt2img() };
    },
    close: () => fake.close(),
  };
});

describe('createSelfHosted', () => {
  it('refuses bad settings naming the option', () => {
    expect(() => createSelfHosted({ servers: [], gpu: 'RTX4090-24GB' })).toThrow(/"servers"/);
    expect(() => createSelfHosted({ servers: ['ftp://x'], gpu: 'RTX4090-24GB' })).toThrow(/servers\[0\]/);
    expect(() => createSelfHosted({ servers: ['http://x:8188'], gpu: 'NoSuchGPU' })).toThrow(/gpu/);
    const provider = createSelfHosted({
      servers: ['http://10.0.0.5:8188/', 'http://10.0.0.6:8188'],
      gpu: 'L4-24GB',
    });
    expect(provider.id).toBe('self-hosted:10.0.0.5:8188+1');
    expect(provider.gpu).toEqual({ type: 'L4-24GB', vramGb: 24 });
    expect(provider.pricing.usdPerSecond).toBeGreaterThan(0);
    expect(provider.limits?.maxConcurrency).toBe(4);
  });
});
