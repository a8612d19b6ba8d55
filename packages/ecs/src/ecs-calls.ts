import {
  type CapacityProviderStrategyItem,
  type Cluster,
  DescribeClustersCommand,
  DescribeServicesCommand,
  DescribeTasksCommand,
  ECSClient,
  type ECSClientConfig,
  type Failure,
  ListTasksCommand,
  type NetworkConfiguration,
  RunTaskCommand,
  type Service,
  StopTaskCommand,
  type Tag,
  type Task,
  type TaskOverride,
  UpdateServiceCommand,
} from '@aws-sdk/client-ecs';
import { type Clock, InvalidResponseError, withRetry } from '@comfy-serverless/core';
import { mapEcsError } from './ecs-error';

/** How our own retries run on top of the AWS SDK's (which already retries throttling). */
export interface EcsRetryOptions {
  /** Retries after the SDK gave up. @default 2 */
  retries?: number;
  /** @default 1000 */
  minDelayMs?: number;
  /** @default 20000 */
  maxDelayMs?: number;
  /** For reproducible tests. @default Math.random */
  random?: () => number;
}

/** Where the ECS client comes from: injected, or created on first use from region and credentials. */
export interface EcsClientSource {
  client?: ECSClient | undefined;
  region?: string | undefined;
  credentials?: ECSClientConfig['credentials'] | undefined;
}

/** Creates the ECS client on first use, never at import or construction. */
export function lazyEcsClient(source: EcsClientSource): () => ECSClient {
  let client = source.client;
  return () => {
    client ??= new ECSClient({
      ...(source.region === undefined ? {} : { region: source.region }),
      ...(source.credentials === undefined ? {} : { credentials: source.credentials }),
    });
    return client;
  };
}

/** The calls the adapter makes, each with typed errors and our retries on top of the SDK's. */
export interface EcsCalls {
  listTasks(
    filter: {
      serviceName?: string;
      startedBy?: string;
      family?: string;
      desiredStatus?: 'RUNNING' | 'STOPPED';
    },
    signal?: AbortSignal,
  ): Promise<string[]>;
  /** DescribeTasks in batches of 100; `failures[]` (`MISSING` for an unknown or just-created ARN) come back beside the tasks. */
  describeTasks(
    taskArns: string[],
    options?: { tags?: boolean; signal?: AbortSignal },
  ): Promise<{ tasks: Task[]; failures: Failure[] }>;
  runTask(
    input: {
      taskDefinition: string;
      capacityProviderStrategy?: CapacityProviderStrategyItem[];
      networkConfiguration?: NetworkConfiguration;
      overrides?: TaskOverride;
      startedBy: string;
      tags: Tag[];
      clientToken: string;
      group?: string;
    },
    context: { jobId?: string; signal?: AbortSignal },
  ): Promise<{ tasks: Task[]; failures: Failure[] }>;
  stopTask(taskArn: string, reason: string, signal?: AbortSignal): Promise<Task | undefined>;
  describeService(service: string, signal?: AbortSignal): Promise<{ service?: Service; failures: Failure[] }>;
  updateService(service: string, desiredCount: number, signal?: AbortSignal): Promise<Service | undefined>;
  describeCluster(signal?: AbortSignal): Promise<{ cluster?: Cluster; failures: Failure[] }>;
}

/** Settings of `createEcsCalls`. */
export interface EcsCallsSettings {
  getClient: () => ECSClient;
  cluster: string;
  region?: string | undefined;
  providerId?: string | undefined;
  clock: Clock;
  retry?: EcsRetryOptions | undefined;
}

function requireArray<T>(value: T[] | undefined, operation: string, field: string): T[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new InvalidResponseError({
      message: `ECS ${operation} answered with "${field}" that is not a list.`,
      issues: [`${field}: expected an array`],
    });
  }
  return value;
}

/** Wraps an ECS client in the calls the adapter needs. */
export function createEcsCalls(settings: EcsCallsSettings): EcsCalls {
  const { cluster, clock } = settings;
  const retry = settings.retry ?? {};

  const call = async <T>(
    operation: string,
    run: (client: ECSClient, signal: AbortSignal | undefined) => Promise<T>,
    context: { jobId?: string | undefined; signal?: AbortSignal | undefined } = {},
  ): Promise<T> => {
    const errorContext = {
      operation,
      cluster,
      ...(settings.region === undefined ? {} : { region: settings.region }),
      ...(settings.providerId === undefined ? {} : { providerId: settings.providerId }),
      ...(context.jobId === undefined ? {} : { jobId: context.jobId }),
    };
    return withRetry(
      async () => {
        try {
          return await run(settings.getClient(), context.signal);
        } catch (error) {
          if (context.signal?.aborted) throw context.signal.reason;
          throw mapEcsError(error, errorContext);
        }
      },
      {
        retries: retry.retries ?? 2,
        minDelayMs: retry.minDelayMs ?? 1_000,
        maxDelayMs: retry.maxDelayMs ?? 20_000,
        ...(retry.random ? { random: retry.random } : {}),
        clock,
        ...(context.signal ? { signal: context.signal } : {}),
      },
    );
  };

  const sendOptions = (signal: AbortSignal | undefined) => (signal ? { abortSignal: signal } : {});

  return {
    async listTasks(filter, signal) {
      const arns: string[] = [];
      let nextToken: string | undefined;
      do {
        const token = nextToken;
        const page = await call(
          'ListTasks',
          (client, callSignal) =>
            client.send(
              new ListTasksCommand({
                cluster,
                ...filter,
                ...(token === undefined ? {} : { nextToken: token }),
              }),
              sendOptions(callSignal),
            ),
          { signal },
        );
        arns.push(...requireArray(page.taskArns, 'ListTasks', 'taskArns'));
        nextToken = page.nextToken ?? undefined;
      } while (nextToken);
      return arns;
    },

    async describeTasks(taskArns, options = {}) {
      const tasks: Task[] = [];
      const failures: Failure[] = [];
      for (let start = 0; start < taskArns.length; start += 100) {
        const batch = taskArns.slice(start, start + 100);
        const page = await call(
          'DescribeTasks',
          (client, callSignal) =>
            client.send(
              new DescribeTasksCommand({
                cluster,
                tasks: batch,
                ...(options.tags ? { include: ['TAGS'] } : {}),
              }),
              sendOptions(callSignal),
            ),
          { signal: options.signal },
        );
        tasks.push(...requireArray(page.tasks, 'DescribeTasks', 'tasks'));
        failures.push(...requireArray(page.failures, 'DescribeTasks', 'failures'));
      }
      return { tasks, failures };
    },

    async runTask(input, context) {
      const answer = await call(
        'RunTask',
        (client, callSignal) =>
          client.send(new RunTaskCommand({ cluster, count: 1, ...input }), sendOptions(callSignal)),
        context,
      );
      return {
        tasks: requireArray(answer.tasks, 'RunTask', 'tasks'),
        failures: requireArray(answer.failures, 'RunTask', 'failures'),
      };
    },

    async stopTask(taskArn, reason, signal) {
      const answer = await call(
        'StopTask',
        (client, callSignal) =>
          client.send(
            new StopTaskCommand({ cluster, task: taskArn, reason: reason.slice(0, 255) }),
            sendOptions(callSignal),
          ),
        { signal },
      );
      return answer.task;
    },

    async describeService(service, signal) {
      const answer = await call(
        'DescribeServices',
        (client, callSignal) =>
          client.send(new DescribeServicesCommand({ cluster, services: [service] }), sendOptions(callSignal)),
        { signal },
      );
      const services = requireArray(answer.services, 'DescribeServices', 'services');
      const found = services.find((entry) => entry.serviceName === service || entry.serviceArn === service);
      return {
        ...(found === undefined ? {} : { service: found }),
        failures: requireArray(answer.failures, 'DescribeServices', 'failures'),
      };
    },

    async updateService(service, desiredCount, signal) {
      const answer = await call(
        'UpdateService',
        (client, callSignal) =>
          client.send(new UpdateServiceCommand({ cluster, service, desiredCount }), sendOptions(callSignal)),
        { signal },
      );
      return answer.service;
    },

    async describeCluster(signal) {
      const answer = await call(
        'DescribeClusters',
        (client, callSignal) =>
          client.send(new DescribeClustersCommand({ clusters: [cluster] }), sendOptions(callSignal)),
        { signal },
      );
      const clusters = requireArray(answer.clusters, 'DescribeClusters', 'clusters');
      return {
        ...(clusters[0] === undefined ? {} : { cluster: clusters[0] }),
        failures: requireArray(answer.failures, 'DescribeClusters', 'failures'),
      };
    },
  };
}
