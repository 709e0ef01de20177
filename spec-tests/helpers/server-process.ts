/**
 * Our echo server in a process of its own (echo-server-process.ts), on Node, Bun or Deno, seen from
 * outside: its resident memory and CPU time from /proc, and what it answers about itself (live
 * memory after a full garbage collection, its sockets, its connections). For
 * hostile-peers.ts (the tests) and bench/hostile-memory.ts (the measurements).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { connect, type ServerOptions } from '../../src/index.js';
import { delay, KiB, MiB, withTimeout } from './peer/wait.js';

const SCRIPT = fileURLToPath(new URL('./echo-server-process.ts', import.meta.url));

export type RuntimeKind = 'node' | 'bun' | 'deno';

/** How to run the server process under a runtime. */
export interface ServerRuntime {
  kind: RuntimeKind;
  label: string;
  /** The command line that runs a TypeScript file with a forced garbage collection available. */
  command(script: string, args: string[]): [string, string[]];
  /** The file the server takes the library from (a packed package's dist/index.js); src/ by default. */
  library?: () => string;
  env?: NodeJS.ProcessEnv;
}

/** This Node, the library from src/ through tsx. */
export const THIS_NODE: ServerRuntime = {
  kind: 'node',
  label: `Node ${process.versions.node}`,
  command: (script, args) => [process.execPath, ['--expose-gc', '--import', 'tsx', script, ...args]],
};

/** Why the memory of a process cannot be read here, or null. */
export const unsupported = ((): string | null => {
  try {
    readFileSync('/proc/self/status');
    return null;
  } catch {
    return 'needs /proc to read the server process memory (Linux)';
  }
})();

export function rss(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match![1]) * 1024;
}

/** CPU seconds the process has used (user and system). */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

export interface Memory {
  /** Reachable after a full garbage collection: the JavaScript heap and buffers. */
  live: number;
  rss: number;
  /** What the server's sockets hold read and not delivered, and written and not sent. */
  readable: number;
  writable: number;
  /** What the connections have queued for their peers, the sockets' part included (bufferedAmount). */
  buffered: number;
}

export interface State {
  clients: number;
  sockets: number;
  /** Sockets the server stopped reading from. */
  paused: number;
  /** Why connections ended: close codes and errors, counted. */
  ended: Record<string, number>;
}

const running = new Set<ChildProcessWithoutNullStreams>();

/** Kill every server process still running (the tests' `after`). */
export function stopServers(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

export class ServerProcess {
  readonly lines: string[] = [];
  port = 0;
  pid = 0;

  private constructor(readonly child: ChildProcessWithoutNullStreams) {}

  static async start(runtime: ServerRuntime, options: ServerOptions): Promise<ServerProcess> {
    const args = [JSON.stringify(options), ...(runtime.library === undefined ? [] : [runtime.library()])];
    const [command, argv] = runtime.command(SCRIPT, args);
    const child = spawn(command, argv, { stdio: ['pipe', 'pipe', 'pipe'], env: runtime.env ?? process.env });
    running.add(child);
    child.on('exit', () => running.delete(child));
    const server = new ServerProcess(child);
    let buffered = '';
    let errors = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (errors += text));
    const first = new Promise<{ port: number; pid: number }>((resolve, reject) => {
      child.stdout.setEncoding('utf8').on('data', (text: string) => {
        buffered += text;
        let newline: number;
        while ((newline = buffered.indexOf('\n')) !== -1) {
          server.lines.push(buffered.slice(0, newline));
          buffered = buffered.slice(newline + 1);
          if (server.lines.length === 1) resolve(JSON.parse(server.lines[0]!) as { port: number; pid: number });
        }
      });
      child.on('exit', (code) => reject(new Error(`the server process exited with ${code}: ${errors}`)));
    });
    ({ port: server.port, pid: server.pid } = await withTimeout(first, 30_000, 'the server process to listen'));
    return server;
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }

  /** Ask the server process something over its stdin; its answer is the next line it prints. */
  async ask<T>(question: string): Promise<T> {
    const before = this.lines.length;
    this.child.stdin.write(`${question}\n`);
    // (A server that many peers keep busy may take seconds to get to it on a loaded machine.)
    for (let i = 0; i < 6000 && this.lines.length === before; i++) await delay(10);
    assert.ok(this.lines.length > before, `the server process did not answer "${question}"`);
    return JSON.parse(this.lines.at(-1)!) as T;
  }

  async clients(): Promise<number> {
    return (await this.state()).clients;
  }

  state(): Promise<State> {
    return this.ask<State>('clients');
  }

  /** Live memory (after a full garbage collection), and what the server's sockets hold. */
  memory(): Promise<Memory> {
    return this.ask<Memory>('memory');
  }

  /** The most read from one of the sockets closed so far, and how many closed. */
  read(): Promise<{ closed: number; maxBytesRead: number }> {
    return this.ask('read');
  }

  /** Warm the server up (code compiled, first buffers made), so the baseline is not its cold start. */
  async warmUp(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      const ws = await connect(`ws://127.0.0.1:${this.port}/`);
      const echoed = new Promise<Buffer>((resolve) => ws.once('message', resolve));
      ws.send(Buffer.alloc(200 * KiB, 7));
      await withTimeout(echoed, 10_000, 'a warm-up echo');
      const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
      ws.close(1000);
      await closed;
    }
    await delay(200);
  }

  /** While `during` runs: the peak growth of the resident set over its value before, and the CPU time used. */
  async peakGrowth(during: () => Promise<void>): Promise<{ growth: number; cpu: number }> {
    const baseline = rss(this.pid);
    const cpu = cpuSeconds(this.pid);
    let peak = baseline;
    const timer = setInterval(() => {
      // (The process may be gone by the last tick.)
      if (this.child.exitCode === null) peak = Math.max(peak, rss(this.pid));
    }, 10);
    try {
      await during();
    } finally {
      clearInterval(timer);
    }
    return { growth: Math.max(peak, rss(this.pid)) - baseline, cpu: cpuSeconds(this.pid) - cpu };
  }

  /** A fresh client still gets its echo: the server is not stuck behind a hostile crowd. */
  async assertServes(): Promise<void> {
    const ws = await withTimeout(connect(`ws://127.0.0.1:${this.port}/`), 10_000, 'a fresh client to connect');
    const echoed = new Promise<Buffer>((resolve) => ws.once('message', resolve));
    ws.send('still serving');
    assert.equal((await withTimeout(echoed, 10_000, 'the echo')).toString(), 'still serving');
    ws.terminate();
  }
}
