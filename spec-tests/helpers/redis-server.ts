/**
 * A real Redis for the scale-out tests: Debian's `redis-server`, started on a free loopback port,
 * nothing saved to disk, stopped (and restartable on the same port) by the test. Where the binary is
 * missing, `redisMissing()` says why, for `t.skip`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect } from 'node:net';

const BINARY = process.env.REDIS_SERVER ?? 'redis-server';

/** Why the tests cannot run Redis here, or null when they can. */
export function redisMissing(): string | null {
  const probe = spawnSync(BINARY, ['--version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0)
    return `${BINARY} not found (Debian: apt-get install redis-server; .ci/run installs it)`;
  return null;
}

/** A free TCP port on 127.0.0.1: bind port 0, read it, close (Redis cannot be told to pick one). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  server.close();
  await once(server, 'close');
  return port;
}

async function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

export class RedisServer {
  private process: ChildProcess | null = null;
  output = '';

  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** One on a free port, not started yet (`restart()` starts it): for a test of Redis coming up late. */
  static async unstarted(): Promise<RedisServer> {
    return new RedisServer(await freePort());
  }

  /** Start on a free port (another port if someone took it meanwhile). */
  static async start(): Promise<RedisServer> {
    let lastError: Error | null = null;
    for (let attempt = 0; attempt < 5; attempt++) {
      const server = new RedisServer(await freePort());
      try {
        await server.restart();
        return server;
      } catch (error) {
        lastError = error as Error;
        await server.stop();
      }
    }
    throw lastError!;
  }

  /** (Re)start on the same port; resolves once it answers PING. */
  async restart(): Promise<void> {
    if (this.process !== null) throw new Error('redis-server already running');
    const child = spawn(
      BINARY,
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.process = child;
    child.stdout!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}): ${this.output}`);
      if (await answersPing(this.port)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`redis-server on port ${this.port} did not answer within 10 s: ${this.output}`);
  }

  /** Stop it (SIGKILL: a crash, nothing flushed) and wait for the process to go. */
  async stop(): Promise<void> {
    const child = this.process;
    this.process = null;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }
}

/** Send one command (inline form) to Redis and read its whole reply (for assertions on its state). */
export function redisCommand(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let reply = '';
    socket.setTimeout(3000, () => {
      socket.destroy();
      reject(new Error(`no reply to ${command}`));
    });
    socket.on('error', reject);
    socket.on('connect', () => socket.end(`${command}\r\nQUIT\r\n`));
    socket.on('data', (chunk) => (reply += chunk.toString('utf8')));
    socket.on('close', () => resolve(reply.replace(/\+OK\r\n$/, '')));
  });
}
