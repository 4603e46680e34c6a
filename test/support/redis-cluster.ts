import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import IORedis, { Cluster, type ClusterOptions } from 'ioredis';
import { freePort } from './free-port';
import { TcpProxy } from './tcp-proxy';

const run = promisify(execFile);

/** One redis-server of the cluster: its real port, and the proxy port it announces to the others. */
export interface ClusterNode {
  port: number;
  /** redis-server's arguments, to start it again as it was. */
  args: string[];
  /** Nodes reach each other (replication, MIGRATE) through this proxy, so a test can slow those links down. */
  proxy: TcpProxy;
  process: ChildProcess;
}

/** Options of the cluster's nodes. */
export interface RedisClusterOptions {
  /** `cluster-node-timeout`: how long a silent master has before its replica is elected in its place. */
  nodeTimeoutMs?: number;
}

/** Whether nothing listens on `port` of 127.0.0.1 now. */
async function portIsFree(port: number): Promise<boolean> {
  const server = createServer();
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (listening) await new Promise((resolve) => server.close(resolve));
  return listening;
}

/** A port whose cluster bus port (port + 10000) is free too. */
async function freeClusterPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort();
    if (port + 10_000 < 65_536 && (await portIsFree(port + 10_000))) return port;
  }
  throw new Error('No free port P with P + 10000 free for the cluster bus');
}

/**
 * A Redis Cluster of the test's own: three masters with one replica each, on free ports, with nothing on
 * disk but its nodes.conf files in a temporary folder. Every node announces a proxy's port (its own
 * {@link TcpProxy}), so replication and slot migration go through links a test can slow down; clients
 * reach the nodes directly, through {@link client}'s `natMap`. `stop()` kills every process it started
 * and removes the folder.
 *
 * @example
 * const cluster = await RedisCluster.start();
 * const client = cluster.client();
 * await cluster.stop();
 */
export class RedisCluster {
  private constructor(
    readonly nodes: ClusterNode[],
    private readonly dir: string,
  ) {}

  static async start(options: RedisClusterOptions = {}): Promise<RedisCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'redis-cluster-'));
    const cluster = new RedisCluster([], dir);
    try {
      for (let index = 0; index < 6; index++) cluster.nodes.push(await cluster.startNode(options.nodeTimeoutMs ?? 2000));
      await Promise.all(cluster.nodes.map((node) => cluster.waitForPing(node.port)));
      await run('redis-cli', ['--cluster', 'create', ...cluster.nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '1', '--cluster-yes']);
      await cluster.waitUntilHealthy();
      await cluster.waitForReplicaLinks();
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  /** An ioredis Cluster client on these nodes; `options` add to (and win over) the test defaults. */
  client(options: ClusterOptions = {}): Cluster {
    const { nodes, natMap } = this.addresses();
    return new Cluster(nodes, { natMap, ...options });
  }

  /**
   * {@link client}, once it has loaded the slot map: a command without a key sent before then may go down a
   * connection to a startup node that ioredis is about to replace ("Connection is closed").
   */
  async readyClient(options: ClusterOptions = {}): Promise<Cluster> {
    const client = this.client(options);
    await new Promise<void>((resolve, reject) => {
      client.once('ready', resolve);
      client.once('error', reject);
    });
    return client;
  }

  /** Where a client starts, and how it reaches a node from the address the node announces. */
  addresses(): { nodes: Array<{ host: string; port: number }>; natMap: Record<string, { host: string; port: number }> } {
    return {
      nodes: this.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
      natMap: Object.fromEntries(this.nodes.map((node) => [`127.0.0.1:${node.proxy.port}`, { host: '127.0.0.1', port: node.port }])),
    };
  }

  /** The nodes that serve slots now, with their slot ranges and the replica that follows each. */
  async masters(): Promise<Array<{ node: ClusterNode; id: string; slots: Array<[number, number]>; replica?: ClusterNode }>> {
    const lines = (await this.command(this.liveNodes()[0].port, ['CLUSTER', 'NODES'])).trim().split('\n');
    const rows = lines.map((line) => line.split(' ')).filter((row) => !row[2].includes('fail'));
    const byId = new Map(rows.map((row) => [row[0], this.byAnnouncedAddress(row[1])]));
    return rows
      .filter((row) => row[2].includes('master') && row.length > 8)
      .map((row) => ({
        node: byId.get(row[0])!,
        id: row[0],
        // Ranges like 0-5460 or a single slot; entries in brackets are slots being migrated.
        slots: row
          .slice(8)
          .filter((range) => !range.startsWith('['))
          .map((range) => range.split('-').map(Number))
          .map(([low, high]) => [low, high ?? low] as [number, number]),
        replica: rows.filter((other) => other[3] === row[0]).map((other) => byId.get(other[0])!)[0],
      }));
  }

  /** SIGKILL: the node dies at once, with whatever it had not yet sent to its replica. */
  async kill(node: ClusterNode): Promise<void> {
    const child = node.process;
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  /**
   * Starts a node that was killed again, on its port and with its nodes.conf: it rejoins the cluster, and a
   * master whose replica took its place comes back as that replica (empty, it copies the new master's data).
   */
  async restart(node: ClusterNode): Promise<void> {
    node.process = spawn('redis-server', node.args, { stdio: 'ignore' });
    await this.waitForPing(node.port);
  }

  /** Until every live node reports `cluster_state:ok` and knows every slot. */
  async waitUntilHealthy(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const infos = await Promise.all(this.liveNodes().map((node) => this.command(node.port, ['CLUSTER', 'INFO']).catch(() => '')));
      if (infos.every((info) => info.includes('cluster_state:ok') && info.includes('cluster_slots_ok:16384'))) return;
      if (Date.now() > deadline) throw new Error(`The Redis Cluster did not reach cluster_state:ok in ${timeoutMs} ms:\n${infos.join('\n')}`);
      await sleep(100);
    }
  }

  /** Until every replica's link to its master is up: the failover tests count on a replica in sync. */
  async waitForReplicaLinks(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const masters = await this.masters();
      const links = await Promise.all(masters.map(({ replica }) => (replica ? this.command(replica.port, ['INFO', 'replication']) : Promise.resolve(''))));
      if (masters.length === 3 && links.every((info) => info.includes('master_link_status:up'))) return;
      if (Date.now() > deadline) throw new Error(`The replicas did not link to their masters in ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  /** Moves `slots` slots from one master to another with `redis-cli --cluster reshard` (MIGRATE, key by key). */
  async reshard(fromId: string, toId: string, slots: number): Promise<void> {
    const args = ['--cluster', 'reshard', `127.0.0.1:${this.liveNodes()[0].port}`, '--cluster-from', fromId, '--cluster-to', toId];
    await run('redis-cli', [...args, '--cluster-slots', String(slots), '--cluster-yes', '--cluster-pipeline', '10'], { maxBuffer: 64 * 1024 * 1024 });
  }

  /** Kills every node and proxy this cluster started, and removes its folder. */
  async stop(): Promise<void> {
    for (const node of this.nodes) {
      await this.kill(node);
      await node.proxy.stop();
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  liveNodes(): ClusterNode[] {
    return this.nodes.filter((node) => node.process.exitCode === null && node.process.signalCode === null);
  }

  /** One command on one node, by redis-cli, as text. */
  async command(port: number, args: string[]): Promise<string> {
    return (await run('redis-cli', ['-p', String(port), ...args])).stdout;
  }

  private byAnnouncedAddress(address: string): ClusterNode {
    const port = Number(address.split('@')[0].split(':')[1]);
    const node = this.nodes.find((candidate) => candidate.proxy.port === port);
    if (!node) throw new Error(`No node of this cluster announces ${address}`);
    return node;
  }

  private async startNode(nodeTimeoutMs: number): Promise<ClusterNode> {
    const port = await freeClusterPort();
    const proxy = await TcpProxy.open({ host: '127.0.0.1', port });
    const args = [
      ...['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir],
      ...['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', String(nodeTimeoutMs)],
      ...['--cluster-announce-ip', '127.0.0.1', '--cluster-announce-port', String(proxy.port), '--cluster-announce-bus-port', String(port + 10_000)],
      // A replica takes over however long it was cut off: the failover tests measure what that loses.
      ...['--cluster-replica-validity-factor', '0'],
    ];
    return { port, args, proxy, process: spawn('redis-server', args, { stdio: 'ignore' }) };
  }

  private async waitForPing(port: number): Promise<void> {
    for (let attempt = 0; attempt < 100; attempt++) {
      const client = new IORedis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      // A refused connection rejects connect() below, which retries; the same error as an event says nothing more.
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.ping();
        return;
      } catch {
        await sleep(50);
      } finally {
        client.disconnect();
      }
    }
    throw new Error(`redis-server did not start on port ${port}`);
  }
}
