/**
 * The `wsrfc` command in a child process, for spec-tests/cli-*.test.ts: run it from source, wait for
 * what it prints and for its exit; the test peer (helpers/peer/) as the server it connects to; and
 * the checks every case makes (no stack trace, every frame masked).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RawServer, type ServerPeer } from './peer/index.js';
import { QUIET_MS, whileAlive } from './alive.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/**
 * Upper bound for the test peer's waits on the program (a pong, a message): never waited out when
 * things work. Waits on the program itself last while it shows signs of life (helpers/alive.ts).
 */
export const PROGRAM_MS = QUIET_MS;

export interface Run {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Wait until stdout (or stderr) matches. */
  waitFor(pattern: RegExp, stream?: 'stdout' | 'stderr'): Promise<RegExpMatchArray>;
  /** The exit status and everything printed, once the program exited by itself. */
  finished(): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

const children: ChildProcess[] = [];
const servers: RawServer[] = [];

/** For afterEach: close the test peers' servers. */
export async function closeServers(): Promise<void> {
  for (const server of servers.splice(0)) await server.close();
}

/** For after: kill what is still running. */
export function killChildren(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/**
 * `wsrfc ARGS` from source. `input`: what stdin carries, then its end; undefined leaves stdin open
 * (the test writes to `child.stdin` and ends it); null connects stdin to nothing.
 */
export function wsrfc(args: string[], input?: string | null, file = 'src/cli/wsrfc.ts'): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
    cwd: ROOT,
    stdio: [input === null ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  if (typeof input === 'string') child.stdin!.end(input);
  const text = { stdout: '', stderr: '' };
  const listeners = new Set<() => void>();
  for (const stream of ['stdout', 'stderr'] as const) {
    child[stream]!.setEncoding('utf8').on('data', (chunk: string) => {
      text[stream] += chunk;
      for (const listener of listeners) listener();
    });
  }
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const output = (): number => text.stdout.length + text.stderr.length;
  const describe = (): string => `stdout: ${JSON.stringify(text.stdout)}, stderr: ${JSON.stringify(text.stderr)}`;
  return {
    child,
    stdout: () => text.stdout,
    stderr: () => text.stderr,
    waitFor: (pattern, stream = 'stdout') =>
      whileAlive(
        child,
        new Promise<RegExpMatchArray>((resolve, reject) => {
          const check = (): void => {
            const match = text[stream].match(pattern);
            if (match !== null) {
              listeners.delete(check);
              resolve(match);
            }
          };
          listeners.add(check);
          void exit.then(() => {
            check();
            if (listeners.delete(check)) reject(new Error(`exited before printing ${pattern}; ${describe()}`));
          });
          check();
        }),
        `${pattern} on ${stream}`,
        output,
      ).catch((error: unknown) => {
        throw new Error(`${(error as Error).message} (${describe()})`);
      }),
    finished: async () => {
      const code = await whileAlive(child, exit, `wsrfc ${args.join(' ')} to exit`, output).catch((error: unknown) => {
        throw new Error(`${(error as Error).message} (${describe()})`);
      });
      return { code, stdout: text.stdout, stderr: text.stderr };
    },
  };
}

/** The test peer as a server that plays the server's part of the closing handshake (RFC 6455 §5.5.1, §7.1.1). */
export async function peerServer(options: Parameters<typeof RawServer.start>[0] = {}): Promise<RawServer> {
  const server = await RawServer.start({
    ...options,
    onPeer: (peer) => {
      // Answer a close with the same code, then end TCP first, as a server does.
      peer.on('closeFrame', (close: { code: number; reason: string }) => {
        if (!peer.closeSent) peer.sendClose(close.code === 1005 ? undefined : close.code, close.reason);
        peer.end();
      });
      options.onPeer?.(peer);
    },
  });
  servers.push(server);
  return server;
}

/** No stack trace: the program said what went wrong in a sentence. */
export function assertNoStack(stderr: string): void {
  assert.doesNotMatch(stderr, /^\s+at /m, `a stack trace on stderr: ${stderr}`);
}

export function assertMasked(peer: ServerPeer): void {
  assert.deepEqual(peer.protocolErrors, [], 'the peer saw nothing RFC 6455 forbids (every frame masked, §5.1)');
  assert.ok(
    peer.frames.every((frame) => frame.masked),
    'every frame from the client is masked',
  );
}

/** `text` as a regular expression that matches it literally. */
export function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
