import type {
  CapacityProviderStrategyItem,
  ECSClient,
  ECSClientConfig,
  NetworkConfiguration,
} from '@aws-sdk/client-ecs';
import {
  defaultGpuPrice,
  type GpuInput,
  type GpuSpec,
  type ImageDescriptor,
  InvalidArgumentError,
  type ProviderCallOptions,
  type ProviderPricing,
  type ProviderV1,
  resolveGpu,
  type SelfHostedSettings,
  systemClock,
} from '@comfy-serverless/core';
import { createEcsCalls, type EcsRetryOptions, lazyEcsClient } from './ecs-calls';
import { createComfyAccess } from './ecs-comfy-access';
import {
  optionalClock,
  optionalFunction,
  optionalNumber,
  optionalString,
  optionalStringRecord,
  requireString,
} from './ecs-options';
import { createServiceMode, type EcsServiceMember } from './ecs-service-mode';
import { defaultTaskUrl, type ResolveTaskUrl } from './ecs-task';
import { createTaskMode } from './ecs-task-mode';

/** Settings shared by both modes of `createEcs`. */
interface EcsCommonSettings {
  /** The cluster's name or ARN. */
  cluster: string;
  /** The AWS region; needed unless `client` is given. */
  region?: string;
  /** An ECS client to use; when left out, one is created on first use from `region` and `credentials`. */
  client?: ECSClient;
  /** Credentials for the client created on first use. @default the AWS SDK's default chain */
  credentials?: ECSClientConfig['credentials'];
  /** The GPU of each task: a known name (`'L4-24GB'`) or `{ type, vramGb }`. */
  gpu: GpuInput;
  /** What a second of one task costs (the instance's price). @default the GPU's default price */
  pricing?: ProviderPricing;
  /** @default `ecs:<cluster>/<service or task definition>` */
  id?: string;
  /** ComfyUI's port in the task. @default 8188 */
  port?: number;
  /**
   * Where ComfyUI in a task is reached. @default `http://<private IP of the task's ENI>:<port>`
   * (awsvpc network mode; the host must be in the same VPC or a peered one).
   */
  resolveTaskUrl?: ResolveTaskUrl;
  /** Our retries after the AWS SDK's own (which already retry throttling). */
  retry?: EcsRetryOptions;
  /** Sent with every request to ComfyUI (a proxy's auth). */
  headers?: Record<string, string>;
  fetch?: SelfHostedSettings['fetch'];
  webSocket?: SelfHostedSettings['webSocket'];
  clock?: SelfHostedSettings['clock'];
  /** How jobs are watched on ComfyUI (poll intervals, reconnects, stall timeout). */
  watch?: SelfHostedSettings['watch'];
  /** Check node types and models against the task's `/object_info` before queueing. @default true */
  preflight?: boolean;
  /** Return `temp` outputs (PreviewImage) too. @default false */
  includeTempOutputs?: boolean;
  /** Largest output file fetched. @default 512 MiB */
  maxOutputBytes?: number;
  /** A ComfyUI that does not answer a load or health check within this is skipped. @default 5000 */
  checkTimeoutMs?: number;
  /** What the image contains, for the router. */
  image?: ImageDescriptor;
  /** Typical time to start a task from nothing, for the router. @default 240000 in task mode, 0 in service mode */
  coldStartMs?: number;
}

/** Settings of `createEcs` in service mode: the tasks of a running service. */
export interface EcsServiceModeSettings extends EcsCommonSettings {
  mode: 'service';
  /** The service's name or ARN. */
  service: string;
  /** How long a reading of the service's tasks is used before ECS is asked again. @default 30000 */
  membershipTtlMs?: number;
  /** Jobs the dispatcher sends at once. @default 16 */
  maxConcurrency?: number;
}

/** Settings of `createEcs` in task mode: a task of its own per job, kept warm for a while. */
export interface EcsTaskModeSettings extends EcsCommonSettings {
  mode: 'task';
  /** The task definition (`family`, `family:revision` or ARN) of the ComfyUI GPU task. */
  taskDefinition: string;
  /** The GPU capacity provider(s), like `[{ capacityProvider: 'gpu-asg', weight: 1 }]`. @default the cluster's default strategy */
  capacityProviderStrategy?: CapacityProviderStrategyItem[];
  /** Subnets and security groups of the task (awsvpc). */
  networkConfiguration?: NetworkConfiguration;
  /** The container to override `command` and `environment` of. */
  containerName?: string;
  command?: string[];
  environment?: Record<string, string>;
  /** Tags put on every task, beside the job-id tag. */
  tags?: Record<string, string>;
  /** The RunTask `group`. */
  group?: string;
  /** How long a task may stay in PROVISIONING/PENDING before it is stopped and the job fails over. @default 600000 */
  provisioningTimeoutMs?: number;
  /** How long ComfyUI may take to answer once the task runs. @default 600000 */
  startupTimeoutMs?: number;
  /** How long a task with no job stays up for the next one before StopTask. @default 300000 */
  idleTimeoutMs?: number;
  /** Most tasks at once. @default 10 */
  maxTasks?: number;
  /** Time between DescribeTasks while a task starts. @default 5000 */
  pollIntervalMs?: number;
}

/** Settings of `createEcs`. */
export type EcsProviderSettings = EcsServiceModeSettings | EcsTaskModeSettings;

/** An ECS provider: a `ProviderV1` plus the adapter's own controls. */
export interface EcsProvider extends ProviderV1 {
  readonly platform: 'ecs';
  readonly mode: 'service' | 'task';
  /** Service mode: the tasks taking jobs now, read from ECS again. Task mode: the tasks this provider holds. */
  tasks(
    options?: ProviderCallOptions,
  ): Promise<Array<{ taskArn: string; url?: string; state?: string; jobId?: string }>>;
  /** Task mode: stops the tasks that run no job. Service mode: nothing to do. */
  close(): Promise<void>;
}

const DEFAULT_PORT = 8188;

/**
 * A provider that runs ComfyUI workflows on Amazon ECS tasks on GPU capacity (EC2 with the
 * GPU-optimised AMI; Fargate has no GPUs). Each job is bound to one task whose ComfyUI is
 * reached directly at the task's private IP, never through a load balancer, because a
 * job's `/prompt`, websocket and `/history` must reach the same ComfyUI.
 *
 * - `mode: 'service'`: the RUNNING tasks of a service are a pool (least-loaded first,
 *   through core's self-hosted provider); scale it with `createEcsServiceTarget`.
 * - `mode: 'task'`: RunTask per job on a capacity provider, followed to RUNNING under a
 *   provisioning deadline; warm tasks take further jobs until `idleTimeoutMs`.
 *
 * @example
 * const provider = createEcs({ mode: 'service', cluster: 'gpu', service: 'comfyui', region: 'us-east-1', gpu: 'L4-24GB' });
 */
export function createEcs(settings: EcsProviderSettings): EcsProvider {
  if (settings === null || typeof settings !== 'object') {
    throw new InvalidArgumentError({
      argument: 'settings',
      message: "createEcs needs { mode: 'service' | 'task', cluster, gpu, ... }.",
    });
  }
  if (settings.mode !== 'service' && settings.mode !== 'task') {
    throw new InvalidArgumentError({
      argument: 'mode',
      message: `"mode" must be 'service' (the tasks of a running ECS service) or 'task' (RunTask per job); got ${JSON.stringify((settings as { mode?: unknown }).mode)}.`,
    });
  }
  const cluster = requireString(settings.cluster, 'cluster', 'the ECS cluster name or ARN');
  const region = optionalString(settings.region, 'region');
  if (settings.client === undefined && region === undefined) {
    throw new InvalidArgumentError({
      argument: 'region',
      message: '"region" is needed when no "client" is given (like region: \'us-east-1\').',
    });
  }
  const gpu: GpuSpec = resolveGpu(settings.gpu);
  if (settings.pricing !== undefined && !(settings.pricing?.usdPerSecond >= 0)) {
    throw new InvalidArgumentError({
      argument: 'pricing.usdPerSecond',
      message: '"pricing.usdPerSecond" must be a number >= 0.',
    });
  }
  const pricing: ProviderPricing = settings.pricing ?? { usdPerSecond: defaultGpuPrice(gpu) ?? 0 };
  const port = optionalNumber(settings.port, 'port', { min: 1, max: 65_535, integer: true }) ?? DEFAULT_PORT;
  const resolveTaskUrl =
    optionalFunction<ResolveTaskUrl>(settings.resolveTaskUrl, 'resolveTaskUrl') ?? defaultTaskUrl;
  const clock = optionalClock(settings.clock) ?? systemClock;
  const coldStartMs = optionalNumber(settings.coldStartMs, 'coldStartMs', { min: 0 });
  const target =
    settings.mode === 'service'
      ? requireString(settings.service, 'service', 'the ECS service name or ARN')
      : requireString(
          settings.taskDefinition,
          'taskDefinition',
          'the task definition family, family:revision or ARN',
        );
  const id =
    optionalString(settings.id, 'id') ?? `ecs:${cluster.split('/').at(-1)}/${target.split('/').at(-1)}`;

  const calls = createEcsCalls({
    getClient: lazyEcsClient({ client: settings.client, region, credentials: settings.credentials }),
    cluster,
    region,
    providerId: id,
    clock,
    retry: settings.retry,
  });
  const access = createComfyAccess(id, {
    gpu,
    pricing,
    clock,
    ...(settings.headers ? { headers: settings.headers } : {}),
    ...(settings.fetch ? { fetch: settings.fetch } : {}),
    ...(settings.webSocket ? { webSocket: settings.webSocket } : {}),
    ...(settings.watch ? { watch: settings.watch } : {}),
    ...(settings.preflight === undefined ? {} : { preflight: settings.preflight }),
    ...(settings.includeTempOutputs === undefined ? {} : { includeTempOutputs: settings.includeTempOutputs }),
    ...(settings.maxOutputBytes === undefined ? {} : { maxOutputBytes: settings.maxOutputBytes }),
    ...(settings.checkTimeoutMs === undefined ? {} : { checkTimeoutMs: settings.checkTimeoutMs }),
    ...(settings.image === undefined ? {} : { image: settings.image }),
  });
  const common = {
    specificationVersion: 'v1' as const,
    id,
    platform: 'ecs' as const,
    ...(region === undefined ? {} : { region }),
    gpu,
    pricing,
    ...(settings.image === undefined ? {} : { image: settings.image }),
  };

  if (settings.mode === 'service') {
    const maxConcurrency =
      optionalNumber(settings.maxConcurrency, 'maxConcurrency', { min: 1, integer: true }) ?? 16;
    const service = createServiceMode({
      providerId: id,
      service: target,
      calls,
      access,
      clock,
      port,
      resolveTaskUrl,
      membershipTtlMs: optionalNumber(settings.membershipTtlMs, 'membershipTtlMs', { min: 0 }) ?? 30_000,
    });
    const provider: EcsProvider = {
      ...common,
      mode: 'service',
      limits: { maxConcurrency },
      coldStartMs: coldStartMs ?? 0,
      doSubmit: (request, options = {}) => service.submit(request, options),
      doWatch: (ref, options = {}) => service.watch(ref, options),
      doCancel: (ref, options = {}) => service.cancel(ref, options),
      doHealth: (options = {}) => service.health(options),
      doPreflight: (requirements, options = {}) => service.preflight(requirements, options),
      async tasks(options = {}) {
        const members: EcsServiceMember[] = await service.members(true, options.signal);
        return members.map((member) => ({ ...member }));
      },
      close: async () => {},
    };
    return provider;
  }

  const maxTasks = optionalNumber(settings.maxTasks, 'maxTasks', { min: 1, integer: true }) ?? 10;
  const capacityProviderStrategy = settings.capacityProviderStrategy;
  if (capacityProviderStrategy !== undefined) {
    if (!Array.isArray(capacityProviderStrategy) || capacityProviderStrategy.length === 0) {
      throw new InvalidArgumentError({
        argument: 'capacityProviderStrategy',
        message:
          '"capacityProviderStrategy" must be a non-empty list like [{ capacityProvider: \'gpu-asg\', weight: 1 }].',
      });
    }
    capacityProviderStrategy.forEach((item, index) => {
      requireString(
        item?.capacityProvider,
        `capacityProviderStrategy[${index}].capacityProvider`,
        'a capacity provider name',
      );
    });
  }
  const environment = optionalStringRecord(settings.environment, 'environment');
  const containerName = optionalString(settings.containerName, 'containerName');
  if ((environment !== undefined || settings.command !== undefined) && containerName === undefined) {
    throw new InvalidArgumentError({
      argument: 'containerName',
      message:
        '"containerName" is needed to override "command" or "environment" (the name of the ComfyUI container in the task definition).',
    });
  }
  const taskMode = createTaskMode({
    providerId: id,
    cluster,
    calls,
    access,
    clock,
    port,
    resolveTaskUrl,
    taskDefinition: target,
    capacityProviderStrategy: capacityProviderStrategy?.map((item) => ({ ...item })),
    networkConfiguration:
      settings.networkConfiguration === undefined
        ? undefined
        : structuredClone(settings.networkConfiguration),
    containerName,
    command: settings.command === undefined ? undefined : [...settings.command],
    environment,
    tags: optionalStringRecord(settings.tags, 'tags'),
    group: optionalString(settings.group, 'group'),
    provisioningTimeoutMs:
      optionalNumber(settings.provisioningTimeoutMs, 'provisioningTimeoutMs', { min: 0 }) ?? 600_000,
    startupTimeoutMs: optionalNumber(settings.startupTimeoutMs, 'startupTimeoutMs', { min: 0 }) ?? 600_000,
    idleTimeoutMs: optionalNumber(settings.idleTimeoutMs, 'idleTimeoutMs', { min: 0 }) ?? 300_000,
    maxTasks,
    pollIntervalMs: optionalNumber(settings.pollIntervalMs, 'pollIntervalMs', { min: 1 }) ?? 5_000,
    missingGraceMs: 60_000,
  });
  const provider: EcsProvider = {
    ...common,
    mode: 'task',
    limits: { maxConcurrency: maxTasks },
    coldStartMs: coldStartMs ?? 240_000,
    doSubmit: (request, options = {}) => taskMode.submit(request, options),
    doWatch: (ref, options = {}) => taskMode.watch(ref, options),
    doCancel: (ref, options = {}) => taskMode.cancel(ref, options),
    async doHealth(options = {}) {
      const { cluster: found, failures } = await calls.describeCluster(options.signal);
      return taskMode.health(
        found,
        failures.map((failure) => failure.reason ?? 'unknown'),
      );
    },
    doLookup: (jobId, options = {}) => taskMode.lookup(jobId, options),
    tasks: async () => taskMode.tasks(),
    close: () => taskMode.close(),
  };
  return provider;
}
