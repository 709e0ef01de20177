/**
 * What every benchmark server shares: its command line (`--port N`, `--deflate`), the one JSON line
 * it prints once listening (`{"port":N,...}`, read by bench/server.ts), and a clean exit on SIGTERM
 * or SIGINT (so `node --cpu-prof` writes its profile).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function argValue(name: string): string | undefined {
  const args = process.argv.slice(2);
  const index = args.indexOf(name);
  return index === -1 ? undefined : args[index + 1];
}

export function hasFlag(name: string): boolean {
  return process.argv.slice(2).includes(name);
}

/** `--port N` (default 0: any free port). */
export function portArg(): number {
  const port = Number(argValue('--port') ?? '0');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port must be 0-65535');
  return port;
}

/** The line bench/server.ts waits for. */
export function announce(port: number, extra: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ port, pid: process.pid, ...extra })}\n`);
}

export function exitOnSignals(): void {
  const exit = (): void => process.exit(0);
  process.on('SIGTERM', exit);
  process.on('SIGINT', exit);
}

/**
 * Broadcast servers: wait for a line `go K GAP_MS` on stdin, then broadcast K times, GAP_MS apart,
 * and print `{"clients":N,"times_ms":[...],"median_ms":M,"sync_median_ms":S}`. A broadcast is timed
 * from the call of `once` until the writes have all been issued: `once` does the synchronous part
 * (S: its own median), then everything queued in that turn runs (microtasks included: we await
 * setImmediate) before the clock stops.
 */
export function onBroadcastCommand(clients: () => number, once: (message: string) => void): void {
  let buffered = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (text: string) => {
    buffered += text;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      const match = /^go (\d+) (\d+)$/.exec(line);
      if (match !== null) void runBroadcasts(Number(match[1]), Number(match[2]), clients, once);
    }
  });
}

async function runBroadcasts(
  count: number,
  gapMs: number,
  clients: () => number,
  once: (message: string) => void,
): Promise<void> {
  const times: number[] = [];
  const syncTimes: number[] = [];
  const connected = clients();
  for (let i = 0; i < count; i++) {
    // 32 bytes of text, different each time.
    const message = `broadcast #${String(i).padStart(4, '0')} `.padEnd(32, '.');
    const start = process.hrtime.bigint();
    once(message);
    const returned = process.hrtime.bigint();
    await new Promise((resolve) => setImmediate(resolve));
    const end = process.hrtime.bigint();
    times.push(Number(end - start) / 1e6);
    syncTimes.push(Number(returned - start) / 1e6);
    await new Promise((resolve) => setTimeout(resolve, gapMs));
  }
  const round = (t: number): number => Math.round(t * 1000) / 1000;
  process.stdout.write(
    `${JSON.stringify({ clients: connected, times_ms: times.map(round), median_ms: round(median(times)), sync_median_ms: round(median(syncTimes)) })}\n`,
  );
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * Whether the runtime's node:http has websocketMask/websocketUnmask (Node 26 does): ws 8.23 then masks
 * with them, before bufferutil and whatever WS_NO_BUFFER_UTIL says.
 */
export function nativeMasking(): boolean {
  const http = createRequire(import.meta.url)('node:http') as { websocketUnmask?: unknown };
  return typeof http.websocketUnmask === 'function';
}

/** Whether ws's masking module (the instance its Receiver and Sender use) went to bufferutil. */
export function wsUsesBufferutil(): boolean {
  const require = createRequire(import.meta.url);
  const bufferUtil = require(join(dirname(wsEntry()), 'lib', 'buffer-util.js')) as {
    unmask: { toString(): string };
  };
  return bufferUtil.unmask.toString().includes('bufferUtil.unmask');
}

/**
 * The npm package ws, by its file (its ES module wrapper): Bun answers a bare `'ws'` with its own
 * built-in implementation, and the benchmark measures the package under every runtime.
 */
export function wsEntry(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules', 'ws', 'wrapper.mjs');
}
