import {
  DescribeClustersCommand,
  DescribeServicesCommand,
  DescribeTasksCommand,
  ECSClient,
  ListTasksCommand,
  RunTaskCommand,
  StopTaskCommand,
  UpdateServiceCommand,
} from '@aws-sdk/client-ecs';
import { mockClient } from 'aws-sdk-client-mock';
import type { FakeEcs } from './test/fake-ecs';

/**
 * A real ECSClient whose `send` is replaced by aws-sdk-client-mock and routed to the fake
 * control plane, so tests can assert on call shapes (`mock.commandCalls(RunTaskCommand)`).
 * For tests only.
 */
export function mockEcsClient(fake: FakeEcs) {
  const client = new ECSClient({
    region: fake.region,
    credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test-secret' },
  });
  const mock = mockClient(client);
  // biome-ignore lint/suspicious/noExplicitAny: the fake answers every command with plain objects.
  const route = (operation: string) => (input: object) => fake.handle(operation, input as any) as any;
  mock.on(RunTaskCommand).callsFake(route('RunTask'));
  mock.on(DescribeTasksCommand).callsFake(route('DescribeTasks'));
  mock.on(ListTasksCommand).callsFake(route('ListTasks'));
  mock.on(StopTaskCommand).callsFake(route('StopTask'));
  mock.on(DescribeServicesCommand).callsFake(route('DescribeServices'));
  mock.on(UpdateServiceCommand).callsFake(route('UpdateService'));
  mock.on(DescribeClustersCommand).callsFake(route('DescribeClusters'));
  return { client, mock };
}
