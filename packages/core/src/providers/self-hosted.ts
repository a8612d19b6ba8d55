import { createHash, randomUUID } from 'node:crypto';
import type { ComfyObjectInfo } from '../comfy/comfy-api';
import { type ComfyClient, createComfyClient } from '../comfy/comfy-client';
import type { WebSocketConstructor } from '../comfy/comfy-socket';
import type { WatchPromptOptions } from '../comfy/watch-prompt';
import { type FetchFunction, mayHaveBeenReceived } from '../http/request-json';
import type { Clock } from '../spec/clock';
import {
  ApiCallError,
  ComfyValidationError,
  InvalidArgumentError,
  InvalidResponseError,
  JobFailedError,
  SubmissionUnknownError,
  toComfyServerlessError,
} from '../spec/errors';
import type {
  ApiWorkflow,
  InputImage,
  JobOutput,
  ProviderJobEvent,
  ProviderJobRequest,
  RemoteJobRef,
  WorkflowRequirements,
} from '../spec/job';
import type {
  GpuSpec,
  ImageDescriptor,
  ProviderCallOptions,
  ProviderHealth,
  ProviderLimits,
  ProviderLookupOptions,
  ProviderPricing,
  ProviderV1,
} from '../spec/provider-v1';
import { systemClock } from '../util/clock';
import { defaultGpuPrice, type GpuInput, resolveGpu, safeDescribe } from '../util/gpu';
import { parseWorkflow, preflight } from '../workflow';

/** Settings of `createSelfHosted`. */
export interface SelfHostedSettings {
  /** Base URLs of the ComfyUI servers of the pool (`http://10.0.0.5:8188`). */
  servers: string[];
  /** The GPU each server has: a known name (`'RTX4090-24GB'`) or `{ type, vramGb }`. */
  gpu: GpuInput;
  /** What a second of one server costs. @default the GPU's default price, or 0 when unknown */
  pricing?: ProviderPricing;
  /** @default `self-hosted:<host of the first server>` */
  id?: string;
  region?: string;
  /** Sent with every request and websocket handshake (a reverse proxy's auth). */
  headers?: Record<string, string>;
  fetch?: FetchFunction;
  /** @default undici's WebSocket */
  webSocket?: WebSocketConstructor;
  clock?: Clock;
  /** How long a server's `/object_info` is trusted before it is read again. @default 300000 */
  objectInfoTtlMs?: number;
  /** Check node types and models against `/object_info` before submitting. @default true */
  preflight?: boolean;
  /** Return `temp` outputs (PreviewImage) too. @default false */
  includeTempOutputs?: boolean;
  /** Largest output file fetched. @default 512 MiB */
  maxOutputBytes?: number;
  /** Jobs the dispatcher should send at once. @default two per server */
  maxConcurrency?: number;
  /** How jobs are watched (poll intervals, reconnects, stall timeout). */
  watch?: Pick<
    WatchPromptOptions,
    | 'pollIntervalMs'
    | 'socketPollIntervalMs'
    | 'stallTimeoutMs'
    | 'reconnect'
    | 'missingChecks'
    | 'finishTimeoutMs'
  >;
  /** A server that does not answer a load or health check within this is skipped. @default 5000 */
  checkTimeoutMs?: number;
  /** What the servers contain, for the router; read from `/object_info` when left out. */
  image?: ImageDescriptor;
}

/** The journalled part of a self-hosted job: the server it runs on and the socket client id. */
interface SelfHostedRefData {
  server: string;
  clientId: string;
  submittedAt?: number;
}

function invalid(argument: string, message: string): never {
  throw new InvalidArgumentError({ argument, message });
}

function normaliseServer(value: unknown, index: number): string {
  if (typeof value !== 'string')
    invalid(`servers[${index}]`, `"servers[${index}]" must be a URL string; got ${safeDescribe(value)}.`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return invalid(
      `servers[${index}]`,
      `"servers[${index}]" is not a URL: ${JSON.stringify(value.slice(0, 80))}. Give it as http://host:8188.`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    invalid(`servers[${index}]`, `"servers[${index}]" must be an http(s) URL; got ${url.protocol}.`);
  if (url.username || url.password) {
    invalid(
      `servers[${index}]`,
      `"servers[${index}]" carries credentials in the URL; pass them as \`headers\` (an Authorization header) instead, so that they are never journalled or logged.`,
    );
  }
  return value.replace(/\/+$/, '');
}

function decodeImage(image: InputImage): Uint8Array {
  if (typeof image.data !== 'string') return image.data;
  const base64 = image.data.startsWith('data:') ? image.data.slice(image.data.indexOf(',') + 1) : image.data;
  return new Uint8Array(Buffer.from(base64, 'base64'));
}

/** A name for an uploaded input that does not collide with another job's file of the same name. */
function uploadName(jobId: string, name: string): string {
  const prefix = jobId.replace(/[^\w.-]/g, '_').slice(0, 48);
  return `${prefix}-${name.replace(/[\\/]/g, '_')}`;
}

/** A copy of the workflow whose inputs naming `from` name `to` instead (with or without ` [input]`). */
function renameInput(workflow: ApiWorkflow, renames: Map<string, string>): ApiWorkflow {
  const copy = structuredClone(workflow);
  for (const node of Object.values(copy)) {
    for (const [input, value] of Object.entries(node.inputs ?? {})) {
      if (typeof value !== 'string') continue;
      const bare = value.replace(/ \[input\]$/, '');
      const renamed = renames.get(bare);
      if (renamed !== undefined) node.inputs[input] = value === bare ? renamed : `${renamed} [input]`;
    }
  }
  return copy;
}

function readRef(ref: RemoteJobRef): SelfHostedRefData & { promptId: string } {
  const data = ref?.data as Partial<SelfHostedRefData> | undefined;
  if (
    typeof ref?.remoteId !== 'string' ||
    typeof data?.server !== 'string' ||
    typeof data.clientId !== 'string'
  ) {
    invalid(
      'ref',
      'This reference was not made by the self-hosted provider: it needs remoteId and data.server and data.clientId.',
    );
  }
  return {
    promptId: ref.remoteId,
    server: data.server,
    clientId: data.clientId,
    ...(typeof data.submittedAt === 'number' ? { submittedAt: data.submittedAt } : {}),
  };
}

/** A prompt id (UUID-shaped) fixed by provider, job and attempt. */
function promptIdFor(providerId: string, jobId: string, attempt: number): string {
  const hex = createHash('sha256').update(`${providerId}\u0000${jobId}\u0000${attempt}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** Whether two JSON values are equal, whatever the order of object keys. */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((item, index) => sameJson(item, b[index]));
  const aRecord = a as Record<string, unknown>;
  const bRecord = b as Record<string, unknown>;
  const keys = Object.keys(aRecord);
  return (
    keys.length === Object.keys(bRecord).length &&
    keys.every((key) => Object.hasOwn(bRecord, key) && sameJson(aRecord[key], bRecord[key]))
  );
}

/** After a submission failed without an answer, whether the server took it anyway. */
async function landed(client: ComfyClient, promptId: string, error: unknown): Promise<boolean> {
  const unanswered =
    ApiCallError.isInstance(error) && (error.statusCode === undefined || error.statusCode >= 500);
  if (!unanswered) return false;
  try {
    const queue = await client.getQueue();
    if ([...queue.running, ...queue.pending].some((item) => item.promptId === promptId)) return true;
    return (await client.getHistory(promptId)) !== undefined;
  } catch {
    return false;
  }
}

function withTimeout(signal: AbortSignal | undefined, ms: number): AbortSignal {
  const timeout = AbortSignal.timeout(ms);
  return signal ? AbortSignal.any([signal, timeout]) : timeout;
}

/**
 * A provider over ComfyUI servers you run yourself. Each job goes to the least-loaded
 * server (by its `/queue`), is preflighted against that server's cached `/object_info`
 * (read again on a miss), has its input images uploaded, and is watched over the
 * websocket with `/history` polling as the fallback. The journalled reference names the
 * server, so a job is watched and cancelled on the server that runs it, also from a new
 * process. Health comes from `/queue` and `/system_stats`.
 *
 * @example
 * const provider = createSelfHosted({ servers: ['http://10.0.0.5:8188', 'http://10.0.0.6:8188'], gpu: 'RTX4090-24GB' });
 */
export function createSelfHosted(settings: SelfHostedSettings): ProviderV1 {
  if (settings === null || typeof settings !== 'object')
    invalid('settings', 'createSelfHosted needs { servers, gpu }.');
  if (!Array.isArray(settings.servers) || settings.servers.length === 0) {
    invalid(
      'servers',
      `"servers" must be a non-empty list of ComfyUI base URLs; got ${safeDescribe(settings.servers)}.`,
    );
  }
  const servers = [...new Set(settings.servers.map(normaliseServer))];
  const gpu: GpuSpec = resolveGpu(settings.gpu);
  if (settings.pricing !== undefined && !(settings.pricing?.usdPerSecond >= 0)) {
    invalid(
      'pricing.usdPerSecond',
      `"pricing.usdPerSecond" must be a number >= 0; got ${safeDescribe(settings.pricing?.usdPerSecond)}.`,
    );
  }
  const pricing: ProviderPricing = settings.pricing ?? { usdPerSecond: defaultGpuPrice(gpu) ?? 0 };
  if (
    settings.maxConcurrency !== undefined &&
    !(Number.isInteger(settings.maxConcurrency) && settings.maxConcurrency > 0)
  ) {
    invalid(
      'maxConcurrency',
      `"maxConcurrency" must be a positive integer; got ${safeDescribe(settings.maxConcurrency)}.`,
    );
  }
  const firstHost = new URL(servers[0]!).host;
  const id = settings.id ?? `self-hosted:${firstHost}${servers.length > 1 ? `+${servers.length - 1}` : ''}`;
  const clock = settings.clock ?? systemClock;
  const objectInfoTtlMs = settings.objectInfoTtlMs ?? 300_000;
  const checkTimeoutMs = settings.checkTimeoutMs ?? 5_000;
  const usePreflight = settings.preflight ?? true;
  const clients = new Map<string, ComfyClient>();
  const objectInfoCache = new Map<string, { value: ComfyObjectInfo; readAt: number }>();
  const recentSubmits = new Map<string, number>();
  let roundRobin = 0;

  const clientFor = (server: string): ComfyClient => {
    let client = clients.get(server);
    if (client === undefined) {
      client = createComfyClient({
        baseURL: server,
        providerId: id,
        clock,
        ...(settings.headers ? { headers: settings.headers } : {}),
        ...(settings.fetch ? { fetch: settings.fetch } : {}),
        ...(settings.webSocket ? { webSocket: settings.webSocket } : {}),
        ...(settings.maxOutputBytes ? { maxOutputBytes: settings.maxOutputBytes } : {}),
      });
      clients.set(server, client);
    }
    return client;
  };

  const objectInfoOf = async (server: string, refresh: boolean, signal?: AbortSignal) => {
    const cached = objectInfoCache.get(server);
    if (cached && !refresh && clock.now() - cached.readAt < objectInfoTtlMs) return cached.value;
    const value = await clientFor(server).getObjectInfo(signal ? { signal } : {});
    objectInfoCache.set(server, { value, readAt: clock.now() });
    return value;
  };

  /** Servers that answer, least loaded first, with the queue each showed. */
  const rankServers = async (signal?: AbortSignal) => {
    const start = roundRobin++;
    const loads = await Promise.all(
      servers.map(async (server, index) => {
        try {
          const queue = await clientFor(server).getQueue({ signal: withTimeout(signal, checkTimeoutMs) });
          return { server, index, queue, load: queue.running.length + queue.pending.length };
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          return { server, index, load: Number.POSITIVE_INFINITY, error };
        }
      }),
    );
    const up = loads.flatMap((entry) =>
      entry.queue === undefined ? [] : [{ ...entry, queue: entry.queue }],
    );
    if (up.length === 0) {
      const first = loads[0]?.error;
      throw new ApiCallError({
        message: `None of the ${servers.length} ComfyUI server(s) of ${id} answered /queue${first instanceof Error ? ` (${first.message})` : ''}. Check that they are running and reachable.`,
        url: `${servers[0]}/queue`,
        isRetryable: true,
        providerId: id,
      });
    }
    const rotation = (index: number) =>
      (((index - start) % servers.length) + servers.length) % servers.length;
    // Ties go round-robin, so a burst does not pile onto one server before its queue shows it.
    return up.sort(
      (a, b) =>
        a.load + (recentSubmits.get(a.server) ?? 0) - (b.load + (recentSubmits.get(b.server) ?? 0)) ||
        rotation(a.index) - rotation(b.index),
    );
  };

  /**
   * Prompts sent whose answer never came back, by prompt id, with the server they went to:
   * until that server has been checked, the prompt may be there, and a retry must not put
   * it anywhere else.
   */
  const unanswered = new Map<string, string>();

  const unknownSubmission = (request: { jobId: string }, server: string, cause?: unknown) =>
    new SubmissionUnknownError({
      message: `The prompt of job ${request.jobId} was sent to ${server}, whose answer was lost, and that server cannot be checked now: it may be running the job there.`,
      ...(cause === undefined ? {} : { cause }),
      providerId: id,
      jobId: request.jobId,
    });

  /**
   * An earlier submission of this job and attempt with the same workflow, still queued or
   * already in a server's history: a retry after a lost answer must not run it again.
   */
  const findEarlierSubmission = async (
    ranked: Awaited<ReturnType<typeof rankServers>>,
    promptId: string,
    prompt: ApiWorkflow,
    signal?: AbortSignal,
  ): Promise<{ server: string; clientId: string } | undefined> => {
    for (const entry of ranked) {
      const found = [...entry.queue.running, ...entry.queue.pending].find(
        (item) => item.promptId === promptId,
      );
      const clientId = found?.extraData?.['client_id'];
      if (typeof clientId === 'string' && sameJson(found?.prompt, prompt))
        return { server: entry.server, clientId };
    }
    const inHistory = await Promise.all(
      ranked.map(async (entry) => {
        try {
          const history = await clientFor(entry.server).getHistory(promptId, {
            signal: withTimeout(signal, checkTimeoutMs),
          });
          const queued = Array.isArray(history?.prompt) ? history.prompt : undefined;
          const extraData = queued?.[3] as Record<string, unknown> | undefined;
          const clientId = extraData?.['client_id'];
          return typeof clientId === 'string' && sameJson(queued?.[2], prompt)
            ? { server: entry.server, clientId }
            : undefined;
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          // Not being able to look is "not there" only for a server the prompt never went to.
          if (unanswered.get(promptId) === entry.server)
            throw unknownSubmission({ jobId: promptId }, entry.server, error);
          return undefined;
        }
      }),
    );
    return inHistory.find((found) => found !== undefined);
  };

  /** Where a prompt is, by asking every server's queue and history; throws when a server cannot be asked. */
  const locatePrompt = async (
    promptId: string,
    signal?: AbortSignal,
  ): Promise<{ server: string; clientId: string } | undefined> => {
    const found = await Promise.all(
      servers.map(async (server) => {
        const client = clientFor(server);
        const queue = await client.getQueue({ signal: withTimeout(signal, checkTimeoutMs) });
        const queued = [...queue.running, ...queue.pending].find((item) => item.promptId === promptId);
        const queuedClient = queued?.extraData?.['client_id'];
        if (typeof queuedClient === 'string') return { server, clientId: queuedClient };
        const history = await client.getHistory(promptId, { signal: withTimeout(signal, checkTimeoutMs) });
        const entry = Array.isArray(history?.prompt) ? history.prompt : undefined;
        const historyClient = (entry?.[3] as Record<string, unknown> | undefined)?.['client_id'];
        return typeof historyClient === 'string' ? { server, clientId: historyClient } : undefined;
      }),
    );
    return found.find((entry) => entry !== undefined);
  };

  /**
   * The server to run on: the least loaded that passes preflight. A server whose
   * `/object_info` cannot be read is still a candidate (ComfyUI validates on submit).
   */
  const choose = async (
    request: ProviderJobRequest,
    workflow: ApiWorkflow,
    ranked: string[],
    signal?: AbortSignal,
  ) => {
    if (!usePreflight) return ranked[0]!;
    let best: { server: string; result: ReturnType<typeof preflight> } | undefined;
    let unchecked: string | undefined;
    for (const server of ranked) {
      let info: ComfyObjectInfo;
      try {
        info = await objectInfoOf(server, false, signal);
      } catch {
        if (signal?.aborted) throw signal.reason;
        unchecked ??= server;
        continue;
      }
      let result = preflight(workflow, info);
      if (!result.ok) {
        // A miss may be a model added since the cache was filled: read again once.
        try {
          result = preflight(workflow, await objectInfoOf(server, true, signal));
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          if (!ApiCallError.isInstance(error) && !InvalidResponseError.isInstance(error)) throw error;
        }
      }
      if (result.ok) return server;
      if (best === undefined || result.nodeErrors.length < best.result.nodeErrors.length)
        best = { server, result };
    }
    if (unchecked !== undefined || best === undefined) return unchecked ?? ranked[0]!;
    throw new ComfyValidationError({
      message: `${best.result.message ?? 'The servers lack what the workflow needs.'} (checked ${ranked.length} server(s) of ${id})`,
      type: best.result.type ?? 'invalid_prompt',
      nodeErrors: best.result.nodeErrors,
      providerId: id,
      jobId: request.jobId,
    });
  };

  const provider: ProviderV1 = {
    specificationVersion: 'v1',
    id,
    platform: 'self-hosted',
    ...(settings.region === undefined ? {} : { region: settings.region }),
    gpu,
    pricing,
    // ComfyUI refuses uploads over its --max-upload-size, 100 MB unless changed.
    limits: {
      maxConcurrency: settings.maxConcurrency ?? servers.length * 2,
      maxPayloadBytes: 100 * 1024 * 1024,
    } satisfies ProviderLimits,
    coldStartMs: 0,
    ...(settings.image === undefined ? {} : { image: settings.image }),

    async doLookup(jobId: string, options: ProviderLookupOptions = {}) {
      const promptId = promptIdFor(id, jobId, options.attempt ?? 1);
      try {
        const found = await locatePrompt(promptId, options.signal);
        unanswered.delete(promptId);
        if (found === undefined) return undefined;
        const data: SelfHostedRefData = { ...found, submittedAt: clock.now() };
        return { remoteId: promptId, data: { ...data } };
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        // A server that cannot be asked leaves the answer open: worth asking again.
        const typed = toComfyServerlessError(error, { providerId: id, jobId });
        throw typed.isRetryable
          ? typed
          : new ApiCallError({
              message: `Could not check the ComfyUI servers of ${id} for job ${jobId}: ${typed.message}`,
              url: servers[0]!,
              isRetryable: true,
              providerId: id,
              jobId,
            });
      }
    },

    async doSubmit(request, options: ProviderCallOptions = {}) {
      const { signal } = options;
      try {
        const workflow = parseWorkflow(request.workflow);
        // The same job and attempt always get the same prompt id, so a submission that
        // landed before its answer was lost is found again instead of run twice (on
        // servers that keep a client-chosen prompt id).
        const promptId = promptIdFor(id, request.jobId, request.attempt);
        const sentTo = unanswered.get(promptId);
        let ranked: Awaited<ReturnType<typeof rankServers>>;
        try {
          ranked = await rankServers(signal);
        } catch (error) {
          // No server answering says nothing about the one that may hold the prompt.
          if (sentTo !== undefined && !signal?.aborted) throw unknownSubmission(request, sentTo, error);
          throw error;
        }
        if (sentTo !== undefined && !ranked.some((entry) => entry.server === sentTo)) {
          throw unknownSubmission(request, sentTo);
        }
        const expectedNames = new Map(
          (request.images ?? []).map((image) => [image.name, uploadName(request.jobId, image.name)]),
        );
        const expectedPrompt = expectedNames.size > 0 ? renameInput(workflow, expectedNames) : workflow;
        const earlier = await findEarlierSubmission(ranked, promptId, expectedPrompt, signal);
        unanswered.delete(promptId);
        if (earlier !== undefined) {
          const data: SelfHostedRefData = { ...earlier, submittedAt: clock.now() };
          return { remoteId: promptId, data: { ...data } };
        }
        const server = await choose(
          request,
          workflow,
          ranked.map((entry) => entry.server),
          signal,
        );
        const client = clientFor(server);
        const renames = new Map<string, string>();
        for (const image of request.images ?? []) {
          const name = uploadName(request.jobId, image.name);
          const uploaded = await client.uploadImage({
            name,
            data: decodeImage(image),
            ...(image.mime ? { mime: image.mime } : {}),
            ...(signal ? { signal } : {}),
          });
          renames.set(
            image.name,
            uploaded.subfolder ? `${uploaded.subfolder}/${uploaded.name}` : uploaded.name,
          );
        }
        const prompt = renames.size > 0 ? renameInput(workflow, renames) : workflow;
        const clientId = `comfy-serverless-${randomUUID()}`;
        const submittedAt = clock.now();
        let remoteId: string;
        unanswered.set(promptId, server);
        try {
          ({ promptId: remoteId } = await client.queuePrompt(prompt, {
            clientId,
            promptId,
            extraData: { comfy_serverless_job_id: request.jobId },
            jobId: request.jobId,
            ...(signal ? { signal } : {}),
          }));
        } catch (error) {
          if (signal?.aborted || !(await landed(client, promptId, error))) {
            // A refusal (an answer ComfyUI gave) means it is not there; a lost answer may hide it.
            if (!mayHaveBeenReceived(error)) unanswered.delete(promptId);
            throw error;
          }
          remoteId = promptId;
        }
        unanswered.delete(promptId);
        recentSubmits.set(server, (recentSubmits.get(server) ?? 0) + 1);
        clock.setTimeout(() => {
          const count = (recentSubmits.get(server) ?? 1) - 1;
          if (count <= 0) recentSubmits.delete(server);
          else recentSubmits.set(server, count);
        }, 2_000);
        const data: SelfHostedRefData = { server, clientId, submittedAt };
        return { remoteId, data: { ...data } };
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        throw toComfyServerlessError(error, { providerId: id, jobId: request.jobId });
      }
    },

    async *doWatch(ref, options: ProviderCallOptions = {}): AsyncGenerator<ProviderJobEvent> {
      const { promptId, server, clientId, submittedAt } = readRef(ref);
      const client = clientFor(server);
      let startedAt: number | undefined;
      for await (const event of client.watch(promptId, {
        clientId,
        ...(settings.watch ?? {}),
        ...(options.signal ? { signal: options.signal } : {}),
      })) {
        switch (event.type) {
          case 'queued':
            yield { type: 'queued', position: event.position };
            break;
          case 'started': {
            startedAt = clock.now();
            const queuedMs = submittedAt === undefined ? undefined : Math.max(0, startedAt - submittedAt);
            yield { type: 'started', workerId: server, ...(queuedMs === undefined ? {} : { queuedMs }) };
            break;
          }
          case 'progress':
            yield {
              type: 'progress',
              fraction: event.fraction,
              ...(event.value === undefined ? {} : { value: event.value }),
              ...(event.max === undefined ? {} : { max: event.max }),
              ...(event.nodeId === undefined ? {} : { nodeId: event.nodeId }),
            };
            break;
          case 'preview':
            yield {
              type: 'preview',
              mime: event.mime,
              data: event.data,
              ...(event.nodeId === undefined ? {} : { nodeId: event.nodeId }),
            };
            break;
          case 'completed': {
            let outputs: JobOutput[];
            try {
              outputs = await client.fetchOutputs(event.outputs, {
                ...(settings.includeTempOutputs ? { includeTemp: true } : {}),
                ...(options.signal ? { signal: options.signal } : {}),
              });
            } catch (error) {
              if (options.signal?.aborted) throw options.signal.reason;
              const typed = toComfyServerlessError(error, { providerId: id });
              // A retryable failure breaks only the watch: watching again fetches again.
              if (typed.isRetryable) throw typed;
              yield {
                type: 'failed',
                error: new JobFailedError({
                  message: `The job finished but its outputs could not be fetched from ${server}: ${typed.message}`,
                  cause: typed,
                  providerId: id,
                }),
                executionStarted: true,
              };
              return;
            }
            for (const output of outputs) yield { type: 'output', output };
            const executionMs =
              event.executionMs ??
              (startedAt === undefined ? undefined : Math.max(0, clock.now() - startedAt));
            yield {
              type: 'completed',
              outputs,
              timing: {
                ...(executionMs === undefined ? {} : { executionMs }),
                ...(submittedAt !== undefined && startedAt !== undefined
                  ? { queuedMs: Math.max(0, startedAt - submittedAt) }
                  : {}),
              },
              ...(executionMs === undefined ? {} : { gpuSeconds: executionMs / 1000 }),
            };
            return;
          }
          case 'failed': {
            const error = toComfyServerlessError(event.error, { providerId: id });
            yield { type: 'failed', error, executionStarted: event.executionStarted };
            return;
          }
          case 'cancelled':
            yield { type: 'cancelled' };
            return;
          default:
            break;
        }
      }
    },

    async doCancel(ref, options: ProviderCallOptions = {}) {
      const { promptId, server } = readRef(ref);
      try {
        await clientFor(server).cancel(promptId, options.signal ? { signal: options.signal } : {});
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        throw toComfyServerlessError(error, { providerId: id });
      }
    },

    async doHealth(options: ProviderCallOptions = {}): Promise<ProviderHealth> {
      const signal = withTimeout(options.signal, checkTimeoutMs);
      const results = await Promise.all(
        servers.map(async (server) => {
          const client = clientFor(server);
          try {
            const [queue, stats] = await Promise.all([
              client.getQueue({ signal }),
              client.getSystemStats({ signal }),
            ]);
            return { server, queue, devices: stats.devices?.length ?? 0 };
          } catch (error) {
            return { server, error: error instanceof Error ? error.message : String(error) };
          }
        }),
      );
      let queued = 0;
      let running = 0;
      let idle = 0;
      let busy = 0;
      const down: string[] = [];
      for (const result of results) {
        if (!('queue' in result) || result.queue === undefined) {
          down.push(`${result.server}: ${result.error}`);
          continue;
        }
        queued += result.queue.pending.length;
        running += result.queue.running.length;
        if (result.queue.running.length > 0) busy += 1;
        else idle += 1;
      }
      const upCount = servers.length - down.length;
      return {
        status: upCount === servers.length ? 'healthy' : upCount > 0 ? 'degraded' : 'unhealthy',
        queued,
        running,
        idleWorkers: idle,
        busyWorkers: busy,
        maxWorkers: servers.length,
        ...(down.length
          ? {
              message: `${down.length} of ${servers.length} server(s) do not answer: ${down.join('; ').slice(0, 500)}`,
            }
          : {}),
        checkedAt: clock.now(),
      };
    },

    async doPreflight(requirements: WorkflowRequirements, options: ProviderCallOptions = {}) {
      const results = await Promise.all(
        servers.map(async (server) => {
          try {
            let result = preflight(requirements, await objectInfoOf(server, false, options.signal));
            if (!result.ok)
              result = preflight(requirements, await objectInfoOf(server, true, options.signal));
            return result;
          } catch {
            if (options.signal?.aborted) throw options.signal.reason;
            return undefined;
          }
        }),
      );
      const answered = results.filter((result) => result !== undefined);
      if (answered.length === 0) {
        throw new ApiCallError({
          message: `None of the ComfyUI server(s) of ${id} answered /object_info; preflight could not run. Check that they are up.`,
          url: `${servers[0]}/object_info`,
          isRetryable: true,
          providerId: id,
        });
      }
      const best = answered.reduce((a, b) =>
        a.missingModels.length + a.missingNodeTypes.length <=
        b.missingModels.length + b.missingNodeTypes.length
          ? a
          : b,
      );
      return {
        ok: best.ok,
        missingModels: [
          ...new Set(
            best.missingModels.map((model) => (model.folder ? `${model.folder}/${model.name}` : model.name)),
          ),
        ],
        missingNodeTypes: best.missingNodeTypes,
      };
    },
  };
  return provider;
}
