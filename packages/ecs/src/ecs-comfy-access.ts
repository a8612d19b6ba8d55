import {
  type ComfyClient,
  createComfyClient,
  createSelfHosted,
  type ProviderV1,
  type SelfHostedSettings,
} from '@comfy-serverless/core';

/** The self-hosted settings the ECS provider passes through to each task's ComfyUI. */
export type ComfyPassThrough = Omit<SelfHostedSettings, 'servers' | 'id' | 'region' | 'maxConcurrency'>;

/** Reaches the ComfyUI servers inside tasks through core's self-hosted provider and client. */
export interface ComfyAccess {
  /** A self-hosted pool over these servers (least-loaded choice, preflight); cached while the set is the same. */
  pool(servers: string[]): ProviderV1;
  /** A self-hosted provider over one server, for watching, cancelling and health of one task. */
  single(server: string): ProviderV1;
  /** A raw ComfyUI client of one server (to read its queue). */
  client(server: string): ComfyClient;
  /** Forgets a server that is gone (its task stopped). */
  forget(server: string): void;
}

/** Creates the cache of self-hosted providers and clients the ECS provider delegates to. */
export function createComfyAccess(providerId: string, settings: ComfyPassThrough): ComfyAccess {
  const singles = new Map<string, ProviderV1>();
  const clients = new Map<string, ComfyClient>();
  let pooled: { key: string; provider: ProviderV1 } | undefined;

  const make = (servers: string[]) =>
    createSelfHosted({
      ...settings,
      servers,
      id: providerId,
      maxConcurrency: servers.length * 2,
    });

  return {
    pool(servers) {
      const key = [...servers].sort().join(' ');
      if (pooled?.key !== key) pooled = { key, provider: make(servers) };
      return pooled.provider;
    },
    single(server) {
      let provider = singles.get(server);
      if (provider === undefined) {
        provider = make([server]);
        singles.set(server, provider);
      }
      return provider;
    },
    client(server) {
      let client = clients.get(server);
      if (client === undefined) {
        client = createComfyClient({
          baseURL: server,
          providerId,
          ...(settings.clock ? { clock: settings.clock } : {}),
          ...(settings.headers ? { headers: settings.headers } : {}),
          ...(settings.fetch ? { fetch: settings.fetch } : {}),
          ...(settings.webSocket ? { webSocket: settings.webSocket } : {}),
        });
        clients.set(server, client);
      }
      return client;
    },
    forget(server) {
      singles.delete(server);
      clients.delete(server);
    },
  };
}
