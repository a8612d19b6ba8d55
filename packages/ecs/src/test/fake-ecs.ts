import { randomUUID } from 'node:crypto';
import type { Clock } from '@comfy-serverless/core';
import { systemClock } from '@comfy-serverless/core';

/** An error shaped like the AWS SDK's service exceptions (`name`, `$fault`, `$metadata`). */
export class FakeEcsError extends Error {
  readonly $fault: 'client' | 'server';
  readonly $metadata: { httpStatusCode: number; requestId: string };
  constructor(name: string, message: string, status = 400) {
    super(message);
    this.name = name;
    this.$fault = status >= 500 ? 'server' : 'client';
    this.$metadata = { httpStatusCode: status, requestId: randomUUID() };
  }
}

/** Options of `createFakeEcs`. */
export interface FakeEcsOptions {
  /** Task timing runs on this clock. @default the system clock */
  clock?: Clock;
  /** @default 'us-east-1' */
  region?: string;
  /** @default '123456789012' */
  accountId?: string;
  /** Clusters that exist. @default ['gpu'] */
  clusters?: string[];
  /** Capacity providers associated with the clusters; a strategy naming another is refused. @default ['gpu-asg'] */
  capacityProviders?: string[];
  /** Task definition families that are registered; others are refused. @default any */
  taskDefinitions?: string[];
  /** Time a new task spends in PROVISIONING (waiting for an instance). @default 20 */
  provisioningMs?: number;
  /** Time in PENDING (pulling the image, starting the container). @default 20 */
  pendingMs?: number;
  /** Time in STOPPING after StopTask. @default 10 */
  stoppingMs?: number;
  /** ListTasks page size. @default 100 */
  pageSize?: number;
}

interface FakeTask {
  taskArn: string;
  clusterArn: string;
  taskDefinitionArn: string;
  family: string;
  group: string;
  startedBy: string | undefined;
  serviceName: string | undefined;
  tags: Array<{ key: string; value: string }>;
  ip: string;
  capacityProviderName: string | undefined;
  createdAt: number;
  /** When PROVISIONING ends; undefined while held by a capacity shortage. */
  provisionedAt: number | undefined;
  desiredStatus: 'RUNNING' | 'STOPPED';
  stopRequestedAt?: number;
  stopCode?: string;
  stoppedReason?: string;
  exitCode?: number;
  draining: boolean;
  overrides: unknown;
}

interface FakeService {
  serviceName: string;
  serviceArn: string;
  clusterArn: string;
  taskDefinition: string;
  desiredCount: number;
  status: 'ACTIVE' | 'DRAINING' | 'INACTIVE';
}

/** A call the fake received. */
export interface FakeEcsCall {
  operation: string;
  input: Record<string, unknown>;
}

/** A fake ECS control plane and its controls. */
export interface FakeEcs {
  readonly region: string;
  /** Every call received, in order. */
  readonly calls: FakeEcsCall[];
  /** Answers one ECS operation as ECS would (results carry `Date`s, as the SDK returns them). */
  handle(operation: string, input: Record<string, unknown>): Promise<Record<string, unknown>>;
  /**
   * Answers one request at the JSON wire level: `target` is the `X-Amz-Target` header
   * (`AmazonEC2ContainerServiceV20141113.RunTask`), `body` the JSON text. Errors come back
   * as HTTP 400/500 with `{ "__type", "message" }`; timestamps as epoch seconds.
   */
  handleWire(request: { target: string | null; body: string }): Promise<{
    status: number;
    headers: Record<string, string>;
    body: string;
  }>;
  /** Creates a service with `desiredCount` tasks. */
  createService(
    name: string,
    options?: { desiredCount?: number; taskDefinition?: string; cluster?: string },
  ): void;
  /** The next RunTask answers HTTP 200 with no task and these `failures[]`. */
  failNextRunTask(failures: Array<{ reason: string; detail?: string }>): void;
  /** The next `times` calls of `operation` fail with this error (`ThrottlingException`, `ServerException`, ...). */
  failNext(
    operation: string,
    error: { name: string; message?: string; status?: number },
    times?: number,
  ): void;
  /** While held, new tasks stay in PROVISIONING (a capacity shortage under managed scaling). */
  holdProvisioning(held: boolean): void;
  /** Stops a task as ECS would on its own (spot interruption, container exit). */
  stopTask(taskArn: string, options: { stopCode: string; reason?: string; exitCode?: number }): void;
  /** Marks a task as draining (desired STOPPED, DEACTIVATING) without stopping it yet. */
  drainTask(taskArn: string): void;
  /** Every task as DescribeTasks would show it now (with tags). */
  tasks(): Array<Record<string, unknown>>;
}

const TARGET_PREFIX = 'AmazonEC2ContainerServiceV20141113.';

function toWire(value: unknown): unknown {
  if (value instanceof Date) return value.getTime() / 1000;
  if (Array.isArray(value)) return value.map(toWire);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, entry]) => [key, toWire(entry)]));
  }
  return value;
}

/**
 * A fake Amazon ECS control plane for tests: clusters, services, and tasks that move
 * through PROVISIONING, PENDING, RUNNING, STOPPING and STOPPED on a clock, each with a
 * private IP on its ENI attachment. RunTask honours `clientToken`, the limits on `count`
 * and `startedBy`, capacity provider names, and can answer with `failures[]`; DescribeTasks
 * reports unknown ARNs as `MISSING`; ListTasks pages. Use `handle` behind aws-sdk-client-mock
 * or `handleWire` behind msw.
 *
 * @example
 * const ecs = createFakeEcs();
 * ecs.createService('comfyui', { desiredCount: 2 });
 * ecsMock.on(ListTasksCommand).callsFake((input) => ecs.handle('ListTasks', input));
 */
export function createFakeEcs(options: FakeEcsOptions = {}): FakeEcs {
  const clock = options.clock ?? systemClock;
  const region = options.region ?? 'us-east-1';
  const account = options.accountId ?? '123456789012';
  const clusterNames = options.clusters ?? ['gpu'];
  const capacityProviders = options.capacityProviders ?? ['gpu-asg'];
  const provisioningMs = options.provisioningMs ?? 20;
  const pendingMs = options.pendingMs ?? 20;
  const stoppingMs = options.stoppingMs ?? 10;
  const pageSize = options.pageSize ?? 100;
  const tasks = new Map<string, FakeTask>();
  const services = new Map<string, FakeService>();
  const tokens = new Map<string, Record<string, unknown>>();
  const failures = new Map<string, Array<{ name: string; message: string; status: number }>>();
  const runTaskFailures: Array<Array<{ reason: string; detail?: string }>> = [];
  const calls: FakeEcsCall[] = [];
  let held = false;
  let ipCounter = 0;

  const clusterArnOf = (name: string) => `arn:aws:ecs:${region}:${account}:cluster/${name}`;
  const resolveCluster = (value: unknown): string => {
    const name = typeof value === 'string' ? (value.split('/').at(-1) ?? value) : 'default';
    if (!clusterNames.includes(name))
      throw new FakeEcsError('ClusterNotFoundException', 'Cluster not found.');
    return clusterArnOf(name);
  };

  const statusOf = (task: FakeTask, now: number): string => {
    if (task.stopRequestedAt !== undefined) {
      return now - task.stopRequestedAt >= stoppingMs ? 'STOPPED' : 'STOPPING';
    }
    if (task.draining) return 'DEACTIVATING';
    if (task.provisionedAt === undefined || now < task.provisionedAt) return 'PROVISIONING';
    if (now < task.provisionedAt + pendingMs) return 'PENDING';
    return 'RUNNING';
  };

  const view = (task: FakeTask, withTags: boolean): Record<string, unknown> => {
    const now = clock.now();
    const lastStatus = statusOf(task, now);
    const attached = lastStatus !== 'PROVISIONING';
    return {
      taskArn: task.taskArn,
      clusterArn: task.clusterArn,
      taskDefinitionArn: task.taskDefinitionArn,
      group: task.group,
      ...(task.startedBy === undefined ? {} : { startedBy: task.startedBy }),
      lastStatus,
      desiredStatus: task.desiredStatus,
      launchType: 'EC2',
      ...(task.capacityProviderName === undefined ? {} : { capacityProviderName: task.capacityProviderName }),
      createdAt: new Date(task.createdAt),
      ...(lastStatus === 'RUNNING' && task.provisionedAt !== undefined
        ? { startedAt: new Date(task.provisionedAt + pendingMs) }
        : {}),
      ...(task.stopCode === undefined ? {} : { stopCode: task.stopCode }),
      ...(task.stoppedReason === undefined ? {} : { stoppedReason: task.stoppedReason }),
      ...(lastStatus === 'STOPPED' && task.stopRequestedAt !== undefined
        ? { stoppedAt: new Date(task.stopRequestedAt + stoppingMs) }
        : {}),
      attachments: [
        {
          id: `eni-attachment-${task.taskArn.split('/').at(-1)}`,
          type: 'ElasticNetworkInterface',
          status: attached ? 'ATTACHED' : 'PRECREATED',
          details: attached
            ? [
                { name: 'subnetId', value: 'subnet-0fake' },
                { name: 'networkInterfaceId', value: `eni-${task.ip.replace(/\./g, '')}` },
                { name: 'privateIPv4Address', value: task.ip },
              ]
            : [{ name: 'subnetId', value: 'subnet-0fake' }],
        },
      ],
      containers: [
        {
          name: 'comfyui',
          lastStatus: lastStatus === 'RUNNING' ? 'RUNNING' : lastStatus === 'STOPPED' ? 'STOPPED' : 'PENDING',
          ...(lastStatus === 'STOPPED' && task.exitCode !== undefined ? { exitCode: task.exitCode } : {}),
          gpuIds: attached ? ['GPU-fake-0'] : [],
        },
      ],
      ...(task.overrides === undefined ? {} : { overrides: task.overrides }),
      ...(withTags ? { tags: task.tags.map((tag) => ({ ...tag })) } : {}),
    };
  };

  const startTask = (input: {
    clusterArn: string;
    taskDefinition: string;
    group?: string | undefined;
    startedBy?: string | undefined;
    serviceName?: string | undefined;
    tags?: Array<{ key: string; value: string }>;
    capacityProviderName?: string | undefined;
    overrides?: unknown;
  }): FakeTask => {
    ipCounter += 1;
    const family = input.taskDefinition.split('/').at(-1)?.split(':')[0] ?? input.taskDefinition;
    const now = clock.now();
    const task: FakeTask = {
      taskArn: `arn:aws:ecs:${region}:${account}:task/${input.clusterArn.split('/').at(-1)}/${randomUUID().replace(/-/g, '')}`,
      clusterArn: input.clusterArn,
      taskDefinitionArn: `arn:aws:ecs:${region}:${account}:task-definition/${family}:1`,
      family,
      group: input.group ?? (input.serviceName ? `service:${input.serviceName}` : `family:${family}`),
      startedBy: input.startedBy,
      serviceName: input.serviceName,
      tags: input.tags ?? [],
      ip: `10.0.${Math.floor(ipCounter / 250) + 1}.${(ipCounter % 250) + 4}`,
      capacityProviderName: input.capacityProviderName,
      createdAt: now,
      provisionedAt: held ? undefined : now + provisioningMs,
      desiredStatus: 'RUNNING',
      draining: false,
      overrides: input.overrides,
    };
    tasks.set(task.taskArn, task);
    return task;
  };

  const requestStop = (task: FakeTask, stopCode: string, reason: string, exitCode?: number) => {
    if (task.stopRequestedAt !== undefined) return;
    task.desiredStatus = 'STOPPED';
    task.stopRequestedAt = clock.now();
    task.stopCode = stopCode;
    task.stoppedReason = reason;
    if (exitCode !== undefined) task.exitCode = exitCode;
  };

  const reconcile = (service: FakeService) => {
    const live = [...tasks.values()].filter(
      (task) => task.serviceName === service.serviceName && task.desiredStatus === 'RUNNING',
    );
    for (let index = live.length; index < service.desiredCount; index++) {
      startTask({
        clusterArn: service.clusterArn,
        taskDefinition: service.taskDefinition,
        serviceName: service.serviceName,
        startedBy: `ecs-svc/${service.serviceArn.length}${index}`,
        capacityProviderName: capacityProviders[0],
      });
    }
    for (const task of live.slice(service.desiredCount)) {
      requestStop(task, 'ServiceSchedulerInitiated', 'Scaling activity initiated by (deployment ecs-svc)');
    }
  };

  const findService = (clusterArn: string, value: unknown): FakeService | undefined => {
    const name = typeof value === 'string' ? (value.split('/').at(-1) ?? value) : '';
    const service = services.get(`${clusterArn}|${name}`);
    return service?.status === 'INACTIVE' ? undefined : service;
  };

  const serviceView = (service: FakeService) => {
    const now = clock.now();
    const own = [...tasks.values()].filter((task) => task.serviceName === service.serviceName);
    const running = own.filter(
      (task) => statusOf(task, now) === 'RUNNING' && task.desiredStatus === 'RUNNING',
    );
    const pending = own.filter((task) => ['PROVISIONING', 'PENDING'].includes(statusOf(task, now)));
    return {
      serviceName: service.serviceName,
      serviceArn: service.serviceArn,
      clusterArn: service.clusterArn,
      status: service.status,
      desiredCount: service.desiredCount,
      runningCount: running.length,
      pendingCount: pending.length,
      taskDefinition: service.taskDefinition,
      deployments: [
        {
          id: 'ecs-svc/1',
          status: 'PRIMARY',
          desiredCount: service.desiredCount,
          runningCount: running.length,
          pendingCount: pending.length,
        },
      ],
      events: [],
    };
  };

  const operations: Record<string, (input: Record<string, unknown>) => Record<string, unknown>> = {
    RunTask(input) {
      const clusterArn = resolveCluster(input['cluster']);
      const taskDefinition = input['taskDefinition'];
      if (typeof taskDefinition !== 'string' || taskDefinition === '') {
        throw new FakeEcsError('InvalidParameterException', 'taskDefinition can not be blank.');
      }
      const family = taskDefinition.split('/').at(-1)?.split(':')[0] ?? taskDefinition;
      if (options.taskDefinitions !== undefined && !options.taskDefinitions.includes(family)) {
        throw new FakeEcsError('ClientException', 'TaskDefinition not found.');
      }
      const count = (input['count'] as number | undefined) ?? 1;
      if (!Number.isInteger(count) || count < 1 || count > 10) {
        throw new FakeEcsError('InvalidParameterException', 'count must be between 1 and 10.');
      }
      const startedBy = input['startedBy'] as string | undefined;
      if (startedBy !== undefined && !/^[A-Za-z0-9_/-]{1,36}$/.test(startedBy)) {
        throw new FakeEcsError(
          'InvalidParameterException',
          'startedBy must be up to 36 letters, numbers, hyphens, forward slashes and underscores.',
        );
      }
      const token = input['clientToken'] as string | undefined;
      if (token !== undefined && token.length > 64) {
        throw new FakeEcsError('InvalidParameterException', 'clientToken can be at most 64 characters.');
      }
      const tags = (input['tags'] as Array<{ key: string; value: string }> | undefined) ?? [];
      for (const tag of tags) {
        if (!tag.key || tag.key.length > 128 || (tag.value ?? '').length > 256) {
          throw new FakeEcsError(
            'InvalidParameterException',
            'Tag keys are 1-128 characters, values up to 256.',
          );
        }
      }
      const strategy = input['capacityProviderStrategy'] as Array<{ capacityProvider: string }> | undefined;
      for (const item of strategy ?? []) {
        if (!capacityProviders.includes(item.capacityProvider)) {
          throw new FakeEcsError(
            'InvalidParameterException',
            'The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster.',
          );
        }
      }
      const tokenKey = token === undefined ? undefined : `${clusterArn}|${token}`;
      if (tokenKey !== undefined) {
        const previous = tokens.get(tokenKey);
        if (previous !== undefined) {
          const arns = previous['taskArns'] as string[];
          return {
            tasks: arns.flatMap((arn) => {
              const task = tasks.get(arn);
              return task ? [view(task, false)] : [];
            }),
            failures: previous['failures'] as unknown[],
          };
        }
      }
      const refused = runTaskFailures.shift();
      if (refused !== undefined) {
        const answer = {
          tasks: [],
          failures: refused.map((failure) => ({
            arn: `arn:aws:ecs:${region}:${account}:container-instance/${clusterArn.split('/').at(-1)}/fake`,
            ...failure,
          })),
        };
        if (tokenKey !== undefined) tokens.set(tokenKey, { taskArns: [], failures: answer.failures });
        return answer;
      }
      const started: FakeTask[] = [];
      for (let index = 0; index < count; index++) {
        started.push(
          startTask({
            clusterArn,
            taskDefinition,
            group: input['group'] as string | undefined,
            startedBy,
            tags,
            capacityProviderName: strategy?.[0]?.capacityProvider,
            overrides: input['overrides'],
          }),
        );
      }
      if (tokenKey !== undefined)
        tokens.set(tokenKey, { taskArns: started.map((task) => task.taskArn), failures: [] });
      return { tasks: started.map((task) => view(task, false)), failures: [] };
    },

    DescribeTasks(input) {
      const clusterArn = resolveCluster(input['cluster']);
      const requested = input['tasks'] as string[] | undefined;
      if (!Array.isArray(requested) || requested.length === 0) {
        throw new FakeEcsError('InvalidParameterException', 'Tasks cannot be empty.');
      }
      if (requested.length > 100) {
        throw new FakeEcsError('InvalidParameterException', 'Tasks cannot have more than 100 elements.');
      }
      const withTags = Array.isArray(input['include']) && (input['include'] as string[]).includes('TAGS');
      const found: Array<Record<string, unknown>> = [];
      const missing: Array<Record<string, unknown>> = [];
      for (const arn of requested) {
        const task =
          tasks.get(arn) ?? [...tasks.values()].find((candidate) => candidate.taskArn.endsWith(`/${arn}`));
        if (task === undefined || task.clusterArn !== clusterArn) missing.push({ arn, reason: 'MISSING' });
        else found.push(view(task, withTags));
      }
      return { tasks: found, failures: missing };
    },

    ListTasks(input) {
      const clusterArn = resolveCluster(input['cluster']);
      const desired = (input['desiredStatus'] as string | undefined) ?? 'RUNNING';
      const serviceName = input['serviceName'] as string | undefined;
      if (serviceName !== undefined && findService(clusterArn, serviceName) === undefined) {
        throw new FakeEcsError('ServiceNotFoundException', 'Service not found.');
      }
      const matching = [...tasks.values()].filter(
        (task) =>
          task.clusterArn === clusterArn &&
          task.desiredStatus === desired &&
          (serviceName === undefined || task.serviceName === serviceName.split('/').at(-1)) &&
          (input['startedBy'] === undefined || task.startedBy === input['startedBy']) &&
          (input['family'] === undefined || task.family === input['family']),
      );
      const start = typeof input['nextToken'] === 'string' ? Number(input['nextToken']) : 0;
      const size = Math.min(pageSize, (input['maxResults'] as number | undefined) ?? 100);
      const page = matching.slice(start, start + size);
      return {
        taskArns: page.map((task) => task.taskArn),
        ...(start + size < matching.length ? { nextToken: String(start + size) } : {}),
      };
    },

    StopTask(input) {
      const clusterArn = resolveCluster(input['cluster']);
      const arn = input['task'] as string;
      const task = tasks.get(arn);
      if (task === undefined || task.clusterArn !== clusterArn) {
        throw new FakeEcsError('InvalidParameterException', 'The referenced task was not found.');
      }
      const reason = (input['reason'] as string | undefined) ?? 'Task stopped by user';
      if (reason.length > 255) throw new FakeEcsError('InvalidParameterException', 'reason is too long.');
      requestStop(task, 'UserInitiated', reason);
      return { task: view(task, false) };
    },

    DescribeServices(input) {
      const clusterArn = resolveCluster(input['cluster']);
      const names = input['services'] as string[] | undefined;
      if (!Array.isArray(names) || names.length === 0 || names.length > 10) {
        throw new FakeEcsError('InvalidParameterException', 'services must name 1 to 10 services.');
      }
      const found: unknown[] = [];
      const missing: unknown[] = [];
      for (const name of names) {
        const service = findService(clusterArn, name);
        if (service === undefined) missing.push({ arn: name, reason: 'MISSING' });
        else found.push(serviceView(service));
      }
      return { services: found, failures: missing };
    },

    UpdateService(input) {
      const clusterArn = resolveCluster(input['cluster']);
      const service = findService(clusterArn, input['service']);
      if (service === undefined) throw new FakeEcsError('ServiceNotFoundException', 'Service not found.');
      if (service.status !== 'ACTIVE')
        throw new FakeEcsError('ServiceNotActiveException', 'Service was not ACTIVE.');
      const desired = input['desiredCount'];
      if (desired !== undefined) {
        if (typeof desired !== 'number' || !Number.isInteger(desired) || desired < 0) {
          throw new FakeEcsError('InvalidParameterException', 'desiredCount must be a whole number >= 0.');
        }
        service.desiredCount = desired;
        reconcile(service);
      }
      return { service: serviceView(service) };
    },

    DescribeClusters(input) {
      const names = (input['clusters'] as string[] | undefined) ?? ['default'];
      const found: unknown[] = [];
      const missing: unknown[] = [];
      for (const value of names) {
        const name = value.split('/').at(-1) ?? value;
        if (!clusterNames.includes(name)) {
          missing.push({ arn: value, reason: 'MISSING' });
          continue;
        }
        const arn = clusterArnOf(name);
        const now = clock.now();
        const own = [...tasks.values()].filter((task) => task.clusterArn === arn);
        found.push({
          clusterArn: arn,
          clusterName: name,
          status: 'ACTIVE',
          runningTasksCount: own.filter((task) => statusOf(task, now) === 'RUNNING').length,
          pendingTasksCount: own.filter((task) => ['PROVISIONING', 'PENDING'].includes(statusOf(task, now)))
            .length,
          capacityProviders: [...capacityProviders],
        });
      }
      return { clusters: found, failures: missing };
    },
  };

  const handle = async (operation: string, input: Record<string, unknown>) => {
    calls.push({ operation, input: structuredClone(input) });
    const queued = failures.get(operation);
    const injected = queued?.shift();
    if (injected !== undefined) throw new FakeEcsError(injected.name, injected.message, injected.status);
    const run = operations[operation];
    if (run === undefined)
      throw new FakeEcsError('UnknownOperationException', `The fake has no ${operation}.`);
    return run(input);
  };

  return {
    region,
    calls,
    handle,

    async handleWire(request) {
      const headers = { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() };
      if (request.target === null || !request.target.startsWith(TARGET_PREFIX)) {
        return {
          status: 400,
          headers,
          body: JSON.stringify({ __type: 'UnknownOperationException', message: 'Missing X-Amz-Target.' }),
        };
      }
      const operation = request.target.slice(TARGET_PREFIX.length);
      let input: Record<string, unknown>;
      try {
        input = request.body === '' ? {} : (JSON.parse(request.body) as Record<string, unknown>);
      } catch {
        return {
          status: 400,
          headers,
          body: JSON.stringify({ __type: 'SerializationException', message: 'Bad JSON.' }),
        };
      }
      try {
        return { status: 200, headers, body: JSON.stringify(toWire(await handle(operation, input))) };
      } catch (error) {
        const failure =
          error instanceof FakeEcsError ? error : new FakeEcsError('ServerException', String(error), 500);
        return {
          status: failure.$metadata.httpStatusCode,
          headers: { ...headers, 'x-amzn-errortype': failure.name },
          body: JSON.stringify({ __type: failure.name, message: failure.message }),
        };
      }
    },

    createService(name, serviceOptions = {}) {
      const clusterArn = resolveCluster(serviceOptions.cluster ?? clusterNames[0]);
      const service: FakeService = {
        serviceName: name,
        serviceArn: `arn:aws:ecs:${region}:${account}:service/${clusterArn.split('/').at(-1)}/${name}`,
        clusterArn,
        taskDefinition: serviceOptions.taskDefinition ?? 'comfyui-gpu',
        desiredCount: serviceOptions.desiredCount ?? 1,
        status: 'ACTIVE',
      };
      services.set(`${clusterArn}|${name}`, service);
      reconcile(service);
    },

    failNextRunTask(list) {
      runTaskFailures.push(list.map((failure) => ({ ...failure })));
    },

    failNext(operation, error, times = 1) {
      const queue = failures.get(operation) ?? [];
      for (let index = 0; index < times; index++) {
        queue.push({
          name: error.name,
          message: error.message ?? 'Rate exceeded',
          status: error.status ?? (error.name === 'ServerException' ? 500 : 400),
        });
      }
      failures.set(operation, queue);
    },

    holdProvisioning(value) {
      held = value;
      if (!value) {
        const now = clock.now();
        for (const task of tasks.values()) if (task.provisionedAt === undefined) task.provisionedAt = now;
      }
    },

    stopTask(taskArn, stop) {
      const task = tasks.get(taskArn);
      if (task === undefined) throw new Error(`The fake has no task ${taskArn}.`);
      requestStop(task, stop.stopCode, stop.reason ?? stop.stopCode, stop.exitCode);
      if (task.serviceName !== undefined) {
        const service = [...services.values()].find((entry) => entry.serviceName === task.serviceName);
        if (service !== undefined) reconcile(service);
      }
    },

    drainTask(taskArn) {
      const task = tasks.get(taskArn);
      if (task === undefined) throw new Error(`The fake has no task ${taskArn}.`);
      task.draining = true;
      task.desiredStatus = 'STOPPED';
    },

    tasks: () => [...tasks.values()].map((task) => view(task, true)),
  };
}
