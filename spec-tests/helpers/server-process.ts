/**
 * Our echo server in a process of its own (echo-server-process.ts), on Node, Bun or Deno, seen from
 * outside: its resident memory and CPU time from /proc, and what it answers about itself (live
 * memory after a full garbage collection, its sockets, its connections). For
 * hostile-peers.ts (the tests) and bench/hostile-memory.ts (the measurements).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { connect, type ServerOptions } from '../../src/index.js';
import { QUIET_MS, whileAlive } from './alive.js';
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

/** What the server process reports about its connections and sockets (echo-server-process.ts). */
export interface State {
  clients: number;
  /** Connections that stopped reading. */
  paused: number;
  /** The most bytes queued on one connection (its bufferedAmount). */
  maxBuffered: number;
  /** TCP sockets still open, and the bytes read from them. */
  open: number;
  openBytesRead: number;
  /** Sockets closed so far, and the most read from one of them. */
  closed: number;
  maxBytesRead: number;
  /** How many sockets got each first line written to them (a status line, '' for none). */
  answers: Record<string, number>;
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
  port = 0;
  pid = 0;
  /** Lines printed and not asked for yet, and the questions waiting for theirs (one line per question, in order). */
  private readonly lines: string[] = [];
  private readonly waiters: { resolve: (line: string) => void; reject: (error: Error) => void }[] = [];
  private exited: Error | null = null;

  private constructor(readonly child: ChildProcessWithoutNullStreams) {}

  static async start(runtime: ServerRuntime, options: ServerOptions): Promise<ServerProcess> {
    const args = [JSON.stringify(options), ...(runtime.library === undefined ? [] : [runtime.library()])];
    const [command, argv] = runtime.command(SCRIPT, args);
    const child = spawn(command, argv, { stdio: ['pipe', 'pipe', 'pipe'], env: runtime.env ?? process.env });
    running.add(child);
    const server = new ServerProcess(child);
    let buffered = '';
    let errors = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (errors += text));
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      buffered += text;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        const waiter = server.waiters.shift();
        if (waiter !== undefined) waiter.resolve(line);
        else server.lines.push(line);
      }
    });
    child.on('exit', (code) => {
      running.delete(child);
      server.exited = new Error(`the server process exited with ${code}: ${errors}`);
      for (const waiter of server.waiters.splice(0)) waiter.reject(server.exited);
    });
    // A runtime's cold start on a busy machine takes what it takes, while it shows signs of life.
    const first = await whileAlive(child, server.nextLine(), 'the server process to listen', () => errors.length);
    ({ port: server.port, pid: server.pid } = JSON.parse(first) as { port: number; pid: number });
    return server;
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }

  private nextLine(): Promise<string> {
    if (this.lines.length > 0) return Promise.resolve(this.lines.shift()!);
    if (this.exited !== null) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /**
   * Ask the server process something over its stdin; its answer is the next line it prints. A
   * server that many peers keep busy may take long to get to it on a loaded machine: the wait
   * lasts while the process shows signs of life.
   */
  async ask<T>(question: 'state' | 'memory'): Promise<T> {
    this.child.stdin.write(`${question}\n`);
    return JSON.parse(await whileAlive(this.child, this.nextLine(), `the answer to "${question}"`)) as T;
  }

  state(): Promise<State> {
    return this.ask<State>('state');
  }

  /** Live memory (after a full garbage collection), and what the server's sockets hold. */
  memory(): Promise<Memory> {
    return this.ask<Memory>('memory');
  }

  /**
   * Until `done` holds for the server's state (and for ours: `local` is part of what counts as
   * progress). `check` runs on every state seen, to fail at once on what must never happen. Fails
   * only when neither state changes for QUIET_MS: a slow machine makes it wait longer, never fail.
   */
  async until(
    what: string,
    done: (state: State) => boolean,
    { check, local }: { check?: (state: State) => void; local?: () => unknown } = {},
  ): Promise<State> {
    let last = '';
    let changedAt = Date.now();
    for (;;) {
      const state = await this.state();
      check?.(state);
      if (done(state)) return state;
      const seen = JSON.stringify([state, local?.()]);
      if (seen !== last) [last, changedAt] = [seen, Date.now()];
      assert.ok(Date.now() - changedAt < QUIET_MS, `nothing changed for ${QUIET_MS} ms waiting for ${what}: ${seen}`);
      await delay(20);
    }
  }

  /** Warm the server up (code compiled, first buffers made), so the baseline is not its cold start. */
  async warmUp(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      const ws = await whileAlive(this.child, connect(`ws://127.0.0.1:${this.port}/`), 'a warm-up connection');
      const echoed = new Promise<Buffer>((resolve) => ws.once('message', resolve));
      ws.send(Buffer.alloc(200 * KiB, 7));
      await whileAlive(this.child, echoed, 'a warm-up echo');
      const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
      ws.close(1000);
      await withTimeout(closed, QUIET_MS, 'a warm-up close');
    }
    await this.until('the warm-up connections to be gone', (state) => state.open === 0 && state.clients === 0);
  }

  /** While `during` runs: the peak growth of the resident set over its value before, and the CPU time used. */
  async peakGrowth(during: () => Promise<void>): Promise<{ growth: number; cpu: number }> {
    const baseline = rss(this.pid);
    const cpu = cpuSeconds(this.pid);
    let peak = baseline;
    const timer = setInterval(() => {
      // The process may be gone if the test failed meanwhile; the test reports that, not this.
      if (existsSync(`/proc/${this.pid}/status`)) peak = Math.max(peak, rss(this.pid));
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
    const ws = await whileAlive(this.child, connect(`ws://127.0.0.1:${this.port}/`), 'a fresh client to connect');
    const echoed = new Promise<Buffer>((resolve) => ws.once('message', resolve));
    ws.send('still serving');
    assert.equal((await whileAlive(this.child, echoed, 'the echo')).toString(), 'still serving');
    ws.terminate();
  }
}
