/**
 * The chat CLI (src/cli/chat.ts) in its own process, as the scale-out tests run it: one per "host",
 * with or without workers and a Redis broker. Reads its port from its first line, keeps every line
 * it prints (connections are logged with the worker's pid and the client's address and port).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { whileAlive } from './alive.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export class ChatProcess {
  output = '';
  port = 0;
  private constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
  }

  /**
   * Start `npm run chat -- ARGS` (through tsx) and wait until it listens, however long a busy machine
   * takes; rejects with its output if it exits, or once it shows no sign of life (helpers/alive.ts).
   */
  static async start(args: string[]): Promise<ChatProcess> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/chat.ts', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chat = new ChatProcess(child);
    try {
      chat.port = Number((await chat.waitFor(/listening on ws:\/\/[^:]+:(\d+)\//))[1]);
    } catch (error) {
      // Not left running: its pipes would keep the test file's process alive after the test.
      child.kill('SIGKILL');
      throw error;
    }
    return chat;
  }

  /** Start a process expected to fail: resolves with its exit code and output (killed if it shows no sign of life). */
  static async run(args: string[]): Promise<{ code: number | null; output: string }> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/chat.ts', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chat = new ChatProcess(child);
    const exited = once(child, 'exit') as Promise<[number | null]>;
    const [code] = await whileAlive(child, exited, `the chat (${args.join(' ')}) to exit`, () => chat.output).catch(
      (error: unknown) => {
        child.kill('SIGKILL');
        throw error;
      },
    );
    return { code, output: chat.output };
  }

  /**
   * Wait until the output matches; rejects (with the output) if the process exits, or once it shows
   * no sign of life (helpers/alive.ts): a busy machine makes the wait longer, never a failure.
   */
  waitFor(pattern: RegExp): Promise<RegExpExecArray> {
    const output = (): string => this.output;
    return whileAlive(this.child, this.match(pattern), `the chat's output to match ${pattern}`, output).catch(
      (error: Error) => {
        throw error.message.includes(this.output) ? error : new Error(`${error.message}:\n${this.output}`);
      },
    );
  }

  private match(pattern: RegExp): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const match = pattern.exec(this.output);
        if (match === null) return false;
        cleanup();
        resolve(match);
        return true;
      };
      const onExit = (): void => {
        if (check()) return;
        cleanup();
        reject(
          new Error(`chat exited (${this.child.exitCode ?? this.child.signalCode}) before ${pattern}:\n${this.output}`),
        );
      };
      const cleanup = (): void => {
        this.child.stdout!.off('data', onData);
        this.child.stderr!.off('data', onData);
        this.child.off('exit', onExit);
      };
      const onData = (): void => void setImmediate(check);
      this.child.stdout!.on('data', onData);
      this.child.stderr!.on('data', onData);
      this.child.on('exit', onExit);
      if (this.child.exitCode !== null || this.child.signalCode !== null) onExit();
      else check();
    });
  }

  /** The pid of the process (worker) that logged the connection from this local port. */
  pidServing(localPort: number): number | null {
    // The latest such line: a port of a connection that is gone may be used again.
    const matches = [...this.output.matchAll(new RegExp(`^\\[(\\d+)\\] \\+ #\\d+ [^ ]+:${localPort} `, 'gm'))];
    return matches.length === 0 ? null : Number(matches[matches.length - 1]![1]);
  }

  /** Ask it to stop (SIGTERM: the graceful path) and wait for it to exit; SIGKILL after `ms`. */
  async stop(ms = 15_000): Promise<number | null> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    const [code] = (await exited) as [number | null];
    clearTimeout(timer);
    return code;
  }
}
