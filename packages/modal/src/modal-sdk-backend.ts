import { ConfigurationError, LoadApiKeyError } from '@comfy-serverless/core';
import type {
  ModalAutoscalerSettings,
  ModalBackend,
  ModalCurrentStats,
  ModalDeploymentInfo,
  ModalMethodTarget,
  ModalPollResult,
} from './modal-backend';
import { isPollTimeout } from './modal-error';

/** The part of the SDK's `Function_` the adapter uses. */
export interface ModalSdkFunction {
  spawn(args?: unknown[], kwargs?: Record<string, unknown>): Promise<{ functionCallId: string }>;
  getCurrentStats(): Promise<{ backlog: number; numTotalRunners: number }>;
  updateAutoscaler(params: ModalAutoscalerSettings): Promise<ModalAutoscalerSettings>;
}

/** The part of the SDK's `FunctionCall` the adapter uses. */
export interface ModalSdkFunctionCall {
  get(params?: { timeoutMs?: number }): Promise<unknown>;
  cancel(params?: { terminateContainers?: boolean }): Promise<void>;
}

/**
 * The part of `modal`'s `ModalClient` (0.11) the adapter uses; a real `ModalClient` fits.
 * Declared here so that this package's types do not require `modal` to be installed.
 */
export interface ModalClientLike {
  cls: {
    fromName(
      app: string,
      name: string,
      params?: { environment?: string },
    ): Promise<{
      instance(parameters?: Record<string, unknown>): Promise<{ method(name: string): ModalSdkFunction }>;
    }>;
  };
  functionCalls: { fromId(functionCallId: string): Promise<ModalSdkFunctionCall> };
  apps?: {
    fromName(
      name: string,
      params?: { environment?: string },
    ): Promise<{
      info?(params?: { refresh?: boolean }): Promise<{ lifecycle?: { version?: number; deployedAt?: Date } }>;
    }>;
  };
  profile?: { tokenId?: string; tokenSecret?: string; oauthRefreshToken?: string };
  close?(): void;
}

/** The `modal` module, as far as the adapter needs it. */
export interface ModalSdkModule {
  ModalClient: new (params?: {
    tokenId?: string;
    tokenSecret?: string;
    environment?: string;
  }) => ModalClientLike;
}

/** Imports `modal` lazily; a missing package becomes a `ConfigurationError` saying what to install. */
export async function loadModalSdk(
  importer: () => Promise<unknown> = () => import('modal'),
): Promise<ModalSdkModule> {
  let module: unknown;
  try {
    module = await importer();
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    const missing =
      code === 'ERR_MODULE_NOT_FOUND' ||
      code === 'MODULE_NOT_FOUND' ||
      /Cannot find (package|module) ['"]?modal/.test(error instanceof Error ? error.message : '');
    throw new ConfigurationError({
      message: missing
        ? 'The Modal provider needs the `modal` package: install it with `npm install modal@^0.11` (the registry\'s "latest" tag is an unrelated package, so pin ^0.11), or pass a `client`.'
        : `Loading the \`modal\` package failed: ${error instanceof Error ? error.message : String(error)}. Reinstall modal@^0.11.`,
      cause: error,
    });
  }
  const candidate = module as Partial<ModalSdkModule> & { default?: Partial<ModalSdkModule> };
  const ModalClient = candidate.ModalClient ?? candidate.default?.ModalClient;
  if (typeof ModalClient !== 'function') {
    throw new ConfigurationError({
      message:
        "The installed `modal` package has no ModalClient: it is not Modal's SDK or it is too old. Install `modal@^0.11`.",
    });
  }
  return { ModalClient };
}

const CALL_HANDLE_LIMIT = 1000;

/** Options of `createModalSdkBackend`. */
export interface ModalSdkBackendOptions {
  /** An existing `ModalClient` (from `modal`); when absent, one is created on first use. */
  modalClient?: ModalClientLike;
  /** @default process.env.MODAL_TOKEN_ID, then the Modal profile (~/.modal.toml) */
  tokenId?: string;
  /** @default process.env.MODAL_TOKEN_SECRET, then the Modal profile */
  tokenSecret?: string;
  /** Modal environment for the client. */
  environment?: string;
  /** Where environment variables are read from, when first needed. @default process.env */
  env?: Record<string, string | undefined>;
  /** How `modal` is imported (tests replace it). @default () => import('modal') */
  importModal?: () => Promise<unknown>;
}

function resolveTokens(options: ModalSdkBackendOptions): { tokenId?: string; tokenSecret?: string } {
  const env = options.env ?? process.env;
  const tokenId = options.tokenId ?? env.MODAL_TOKEN_ID;
  const tokenSecret = options.tokenSecret ?? env.MODAL_TOKEN_SECRET;
  if ((tokenId === undefined) !== (tokenSecret === undefined)) {
    const missing =
      tokenId === undefined ? 'tokenId (or MODAL_TOKEN_ID)' : 'tokenSecret (or MODAL_TOKEN_SECRET)';
    throw new LoadApiKeyError({
      message: `Half a Modal token was given: set ${missing} as well. Tokens come in pairs from \`modal token new\`.`,
    });
  }
  return {
    ...(tokenId === undefined ? {} : { tokenId }),
    ...(tokenSecret === undefined ? {} : { tokenSecret }),
  };
}

function hasCredentials(client: ModalClientLike): boolean {
  // Clients without a profile (injected ones) are trusted to be configured.
  if (client.profile === undefined) return true;
  return Boolean(client.profile.tokenId || client.profile.oauthRefreshToken);
}

/**
 * A `ModalBackend` over Modal's real SDK (`modal@^0.11`), imported on first use. Tokens
 * come from the options, then `MODAL_TOKEN_ID`/`MODAL_TOKEN_SECRET`, then the Modal
 * profile, read when the first call is made; class handles are cached per app, class
 * and environment and looked up again after a not-found (a redeploy).
 */
export function createModalSdkBackend(options: ModalSdkBackendOptions = {}): ModalBackend {
  let clientPromise: Promise<ModalClientLike> | undefined;
  const methods = new Map<string, Promise<ModalSdkFunction>>();

  const getClient = (): Promise<ModalClientLike> => {
    if (options.modalClient !== undefined) return Promise.resolve(options.modalClient);
    clientPromise ??= (async () => {
      const tokens = resolveTokens(options);
      const sdk = await loadModalSdk(options.importModal);
      let client: ModalClientLike;
      try {
        client = new sdk.ModalClient({
          ...tokens,
          ...(options.environment === undefined ? {} : { environment: options.environment }),
        });
      } catch (error) {
        throw new ConfigurationError({
          message: `Creating the Modal client failed: ${error instanceof Error ? error.message : String(error)}. Check the Modal token settings.`,
        });
      }
      if (!hasCredentials(client)) {
        throw new LoadApiKeyError({
          message:
            'No Modal token found: pass tokenId and tokenSecret, set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET, or run `modal token new` to write a profile.',
        });
      }
      return client;
    })();
    // A failed creation is not cached, so that fixing the environment fixes the next call.
    clientPromise.catch(() => {
      clientPromise = undefined;
    });
    return clientPromise;
  };

  const methodKey = (target: ModalMethodTarget) =>
    JSON.stringify([target.environment ?? '', target.app, target.cls, target.method]);

  const getMethod = (target: ModalMethodTarget): Promise<ModalSdkFunction> => {
    const key = methodKey(target);
    let method = methods.get(key);
    if (method === undefined) {
      method = (async () => {
        const client = await getClient();
        const cls = await client.cls.fromName(
          target.app,
          target.cls,
          target.environment === undefined ? {} : { environment: target.environment },
        );
        const instance = await cls.instance();
        return instance.method(target.method);
      })();
      methods.set(key, method);
      method.catch(() => methods.delete(key));
    }
    return method;
  };

  /** Runs `task` on the method's function; after a not-found, looks the class up once more (a redeploy changes ids). */
  const withMethod = async <T>(target: ModalMethodTarget, task: (method: ModalSdkFunction) => Promise<T>) => {
    const method = await getMethod(target);
    try {
      return await task(method);
    } catch (error) {
      const name = (error as { name?: unknown } | null)?.name;
      const code = (error as { code?: unknown } | null)?.code;
      if (name !== 'NotFoundError' && code !== 5 && code !== 9) throw error;
      methods.delete(methodKey(target));
      return task(await getMethod(target));
    }
  };

  /** `fromId` is a round trip, so handles are kept for the calls being watched. */
  const handles = new Map<string, Promise<ModalSdkFunctionCall>>();
  const getCall = (callId: string): Promise<ModalSdkFunctionCall> => {
    let handle = handles.get(callId);
    if (handle === undefined) {
      handle = getClient().then((client) => client.functionCalls.fromId(callId));
      handles.set(callId, handle);
      handle.catch(() => handles.delete(callId));
      if (handles.size > CALL_HANDLE_LIMIT) {
        const oldest = handles.keys().next().value;
        if (oldest !== undefined) handles.delete(oldest);
      }
    }
    return handle;
  };

  const poll = async (callId: string, timeoutMs: number): Promise<ModalPollResult> => {
    const call = await getCall(callId);
    try {
      return { status: 'done', value: await call.get({ timeoutMs }) };
    } catch (error) {
      if (isPollTimeout(error)) return { status: 'pending' };
      throw error;
    }
  };

  return {
    async spawn(target, args) {
      const call = await withMethod(target, (method) => method.spawn(args));
      return call.functionCallId;
    },
    poll: (callId, pollOptions) => poll(callId, pollOptions.timeoutMs),
    async cancel(callId, cancelOptions) {
      const call = await getCall(callId);
      await call.cancel(
        cancelOptions?.terminateContainers === undefined
          ? {}
          : { terminateContainers: cancelOptions.terminateContainers },
      );
    },
    async call(target, args, callOptions) {
      const call = await withMethod(target, (method) => method.spawn(args));
      const result = await poll(call.functionCallId, callOptions?.timeoutMs ?? 300_000);
      handles.delete(call.functionCallId);
      if (result.status === 'pending') {
        await this.cancel(call.functionCallId).catch(() => {});
        const timeout = new Error(
          `${target.cls}.${target.method} did not answer within ${callOptions?.timeoutMs ?? 300_000} ms`,
        );
        timeout.name = 'TimeoutError';
        throw timeout;
      }
      return result.value;
    },
    async currentStats(target): Promise<ModalCurrentStats> {
      const stats = await withMethod(target, (method) => method.getCurrentStats());
      return { backlog: stats.backlog, runners: stats.numTotalRunners };
    },
    updateAutoscaler: (target, settings) =>
      withMethod(target, (method) => method.updateAutoscaler({ ...settings })),
    async deployment(target): Promise<ModalDeploymentInfo> {
      const client = await getClient();
      if (client.apps === undefined) return {};
      const app = await client.apps.fromName(
        target.app,
        target.environment === undefined ? {} : { environment: target.environment },
      );
      if (app.info === undefined) return {};
      const info = await app.info({ refresh: true });
      const lifecycle = info.lifecycle;
      return {
        ...(lifecycle?.version === undefined ? {} : { version: lifecycle.version }),
        ...(lifecycle?.deployedAt === undefined ? {} : { deployedAt: lifecycle.deployedAt.getTime() }),
      };
    },
    close() {
      if (options.modalClient !== undefined) return;
      void clientPromise?.then((client) => client.close?.()).catch(() => {});
      clientPromise = undefined;
      methods.clear();
      handles.clear();
    },
  };
}
