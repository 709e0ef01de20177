/**
 * WebSockets over HTTP/2 (RFC 8441) against WebSockets over HTTP/1.1, same server code, same client
 * code, cleartext both (h2c with prior knowledge against plain TCP), so the difference is the
 * carrier: one HTTP/2 session with a stream per WebSocket, or a TCP connection per WebSocket.
 *
 *   node --import tsx bench/http2.ts [--reps N] [--duration S] [--warmup S] [--idle N]
 *   (or `npm run bench -- http2 ...`)
 *
 *   C     100 WebSockets, 32 B messages, 8 in flight on each: echoed msgs/s (the server's scenario C),
 *         and the server's CPU time per echoed message
 *   idle  N idle WebSockets (default 2,000): server memory per WebSocket, RSS and live heap + buffers
 *
 * Each measurement gets a fresh server process (pinned to core 0 with taskset when it can) and a
 * fresh load process (core 1); HTTP/1.1 and HTTP/2 alternate, the first one rotating. The load
 * generator is our own client (it speaks both), so its cost is in both figures alike. Both run
 * src/ through tsx. Compare the ratios of one run, never absolute figures across runs.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createH2cServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WebSocketServer, connect, type WebSocket } from '../src/index.js';

type Carrier = 'http1' | 'http2';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SELF = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------------------------------------
// The server process: `--role server --carrier http1|http2`; prints {"port":N}; answers "memory".
// ---------------------------------------------------------------------------------------------

async function serve(carrier: Carrier): Promise<void> {
  const server = new WebSocketServer({ pingInterval: 0 });
  let echoed = 0;
  server.on('connection', (ws) =>
    ws.on('message', (data, isBinary) => {
      echoed++;
      ws.send(data, { binary: isBinary });
    }),
  );
  let port: number;
  if (carrier === 'http1') {
    port = (await server.listen(0, '127.0.0.1')).port;
  } else {
    const h2 = createH2cServer({ settings: { enableConnectProtocol: true } });
    h2.on('stream', (stream, headers) => server.handleHttp2Stream(stream, headers));
    await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
    port = (h2.address() as AddressInfo).port;
  }
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  process.stdin.setEncoding('utf8').on('data', (text: string) => {
    if (text.includes('cpu')) {
      const { user, system } = process.cpuUsage();
      process.stdout.write(`${JSON.stringify({ cpu: user + system, echoed })}\n`);
    }
    if (!text.includes('memory')) return;
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    gc?.();
    const usage = process.memoryUsage();
    const live = usage.heapUsed + usage.external + usage.arrayBuffers;
    process.stdout.write(`${JSON.stringify({ rss: usage.rss, live, clients: server.clients.size })}\n`);
  });
}

// ---------------------------------------------------------------------------------------------
// The load process: `--role load --carrier ... --port N --mode C|idle`; prints one JSON result.
// ---------------------------------------------------------------------------------------------

async function openAll(port: number, carrier: Carrier, count: number): Promise<WebSocket[]> {
  const url = `ws://127.0.0.1:${port}/`;
  const sockets: WebSocket[] = [];
  // In batches: 100 TCP handshakes (or streams) at a time.
  for (let at = 0; at < count; at += 100) {
    const batch = Math.min(100, count - at);
    sockets.push(
      ...(await Promise.all(Array.from({ length: batch }, () => connect(url, { http2: carrier === 'http2' })))),
    );
  }
  return sockets;
}

async function load(carrier: Carrier, port: number, mode: string, seconds: number, warmup: number, idle: number) {
  if (mode === 'idle') {
    const sockets = await openAll(port, carrier, idle);
    process.stdout.write(`${JSON.stringify({ open: sockets.length })}\n`);
    await new Promise(() => {});
  }
  const sockets = await openAll(port, carrier, 100);
  const payload = Buffer.alloc(32, 'x');
  let counting = false;
  let count = 0;
  for (const ws of sockets) {
    ws.on('message', () => {
      if (counting) count++;
      ws.send(payload, { binary: false });
    });
    for (let i = 0; i < 8; i++) ws.send(payload, { binary: false });
  }
  await new Promise((resolve) => setTimeout(resolve, warmup * 1000));
  process.stdout.write(`${JSON.stringify({ phase: 1 })}\n`);
  counting = true;
  const start = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const elapsed = (performance.now() - start) / 1000;
  counting = false;
  process.stdout.write(`${JSON.stringify({ rate: count / elapsed })}\n`);
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------------------------

const canPin = spawnSync('taskset', ['-c', '1', 'true'], { stdio: 'ignore' }).status === 0;

function child(core: number, args: string[]): ChildProcessWithoutNullStreams {
  const node = [process.execPath, '--expose-gc', '--import', 'tsx', SELF, ...args];
  const command = canPin ? ['taskset', '-c', String(core), ...node] : node;
  return spawn('bash', ['-c', 'ulimit -n 65536 2>/dev/null || ulimit -n hard; exec "$@"', 'bash', ...command], {
    cwd: ROOT,
  });
}

function nextJson(proc: ChildProcessWithoutNullStreams): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (text: Buffer): void => {
      buffered += text.toString();
      const newline = buffered.indexOf('\n');
      if (newline === -1) return;
      proc.stdout.off('data', onData);
      resolve(JSON.parse(buffered.slice(0, newline)) as Record<string, number>);
    };
    proc.stdout.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`child exited (${code})`)));
  });
}

async function measure(carrier: Carrier, mode: 'C' | 'idle', options: Options): Promise<Record<string, number>> {
  const server = child(0, ['--role', 'server', '--carrier', carrier]);
  const { port } = await nextJson(server);
  let before: Record<string, number> | null = null;
  if (mode === 'idle') {
    server.stdin.write('memory\n');
    before = await nextJson(server);
  }
  const loader = child(1, [
    ...['--role', 'load', '--carrier', carrier, '--port', String(port), '--mode', mode],
    ...['--duration', String(options.duration), '--warmup', String(options.warmup), '--idle', String(options.idle)],
  ]);
  let result = await nextJson(loader);
  if (mode === 'C') {
    // The server's CPU time per echoed message over the measured window: less at the mercy of a
    // busy machine than the rate (time the server waits for the CPU is not counted).
    server.stdin.write('cpu\n');
    const start = await nextJson(server);
    result = await nextJson(loader);
    server.stdin.write('cpu\n');
    const end = await nextJson(server);
    result['cpuPerMessage'] = (end['cpu']! - start['cpu']!) / (end['echoed']! - start['echoed']!);
  }
  if (mode === 'idle') {
    await new Promise((resolve) => setTimeout(resolve, 500));
    server.stdin.write('memory\n');
    const after = await nextJson(server);
    result['rssPerWs'] = (after['rss']! - before!['rss']!) / options.idle;
    result['livePerWs'] = (after['live']! - before!['live']!) / options.idle;
    result['clients'] = after['clients']!;
  }
  for (const proc of [loader, server]) {
    proc.kill('SIGKILL');
    if (proc.exitCode === null) await once(proc, 'exit');
  }
  return result;
}

interface Options {
  reps: number;
  duration: number;
  warmup: number;
  idle: number;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

export async function runHttp2Bench(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      reps: { type: 'string', default: '3' },
      duration: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      idle: { type: 'string', default: '2000' },
    },
    strict: false,
  });
  const options: Options = {
    reps: Number(values.reps),
    duration: Number(values.duration),
    warmup: Number(values.warmup),
    idle: Number(values.idle),
  };
  console.log(
    `node ${process.version}, ${canPin ? 'server on core 0, load on core 1' : 'NOT pinned'}; ` +
      `${options.reps} reps, ${options.duration} s after ${options.warmup} s warm-up; idle: ${options.idle} WebSockets`,
  );
  const rates: Record<Carrier, number[]> = { http1: [], http2: [] };
  const cpu: Record<Carrier, number[]> = { http1: [], http2: [] };
  const rss: Record<Carrier, number[]> = { http1: [], http2: [] };
  const live: Record<Carrier, number[]> = { http1: [], http2: [] };
  for (let rep = 0; rep < options.reps; rep++) {
    const order: Carrier[] = rep % 2 === 0 ? ['http1', 'http2'] : ['http2', 'http1'];
    for (const carrier of order) {
      const c = await measure(carrier, 'C', options);
      rates[carrier].push(c['rate']!);
      cpu[carrier].push(c['cpuPerMessage']!);
      const idle = await measure(carrier, 'idle', options);
      if (idle['clients'] !== options.idle) throw new Error(`only ${idle['clients']} idle WebSockets on the server`);
      rss[carrier].push(idle['rssPerWs']!);
      live[carrier].push(idle['livePerWs']!);
      console.log(
        `  rep ${rep + 1} ${carrier}: C ${Math.round(c['rate']!)} msgs/s, ${c['cpuPerMessage']!.toFixed(2)} µs server CPU/msg; idle ` +
          `${(idle['rssPerWs']! / 1024).toFixed(2)} KiB RSS, ${(idle['livePerWs']! / 1024).toFixed(2)} KiB live per WebSocket`,
      );
    }
  }
  const row = (label: string, h1: number, h2: number, unit: string, digits: number): string =>
    `| ${label} | ${h1.toFixed(digits)} ${unit} | ${h2.toFixed(digits)} ${unit} | ${(h2 / h1).toFixed(2)}x |`;
  console.log('\n| medians | 100 TCP connections (HTTP/1.1) | one HTTP/2 session | HTTP/2 / HTTP/1.1 |');
  console.log('|---|---|---|---|');
  console.log(row('C: 100 WebSockets, 32 B, 8 in flight', median(rates.http1), median(rates.http2), 'msgs/s', 0));
  console.log(row('C: server CPU per echoed message', median(cpu.http1), median(cpu.http2), 'µs', 2));
  const kib = (values: number[]): number => median(values) / 1024;
  console.log(row('idle, server RSS per WebSocket', kib(rss.http1), kib(rss.http2), 'KiB', 2));
  console.log(row('idle, live heap + buffers per WebSocket', kib(live.http1), kib(live.http2), 'KiB', 2));
}

// Run as a script: the driver, or one of its child roles.
if (process.argv[1] === SELF) {
  const { values } = parseArgs({
    options: {
      role: { type: 'string' },
      carrier: { type: 'string', default: 'http1' },
      port: { type: 'string' },
      mode: { type: 'string', default: 'C' },
      duration: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      idle: { type: 'string', default: '2000' },
      reps: { type: 'string' },
    },
    strict: false,
  });
  const carrier = values.carrier as Carrier;
  if (values.role === 'server') await serve(carrier);
  else if (values.role === 'load') {
    await load(
      carrier,
      Number(values.port),
      String(values.mode),
      Number(values.duration),
      Number(values.warmup),
      Number(values.idle),
    );
  } else await runHttp2Bench(process.argv.slice(2));
}
