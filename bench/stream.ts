/**
 * One huge message through an echo server: ours streaming it (`streamMessages`, each message sent
 * back as a stream as it arrives: the echo CLI's --stream), ours assembling it whole (maxMessageSize
 * raised), and `ws` assembling it whole (maxPayload raised), interleaved rep by rep in one run.
 *
 *   node --import tsx bench/stream.ts [--size MiB] [--reps N] [--impls ours-stream,ours-whole,ws-js,ws-bu]
 *
 * The client (this file with --client, a process of its own pinned to core 1; the server to core 0,
 * as in bench/server.ts) sends the message as one frame (a 64-bit length, masked, 1 MiB at a time),
 * reads the echo as it comes, and reports the time from the first byte sent to the last byte of the
 * echo: MB/s is the message's size over that round trip. The server's memory is its peak resident
 * set during the message (VmHWM, reset after a warm-up message), over where it started. Only the
 * ratios within one run mean something.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { buildOurs } from './server.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(BENCH_DIR);
const MiB = 1024 * 1024;

type Impl = 'ours-stream' | 'ours-whole' | 'ws-js' | 'ws-bu';
const LABEL: Record<Impl, string> = {
  'ours-stream': 'ours, streamed',
  'ours-whole': 'ours, whole (maxMessageSize raised)',
  'ws-js': 'ws (pure JS), whole (maxPayload raised)',
  'ws-bu': 'ws + bufferutil, whole (maxPayload raised)',
};

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/** Handshake, then resolve with the socket and whatever came after the 101's head. */
async function open(port: number): Promise<{ socket: Socket; rest: Buffer }> {
  const socket = netConnect({ port, host: '127.0.0.1' });
  socket.setNoDelay(true);
  const key = randomBytes(16).toString('base64');
  socket.write(
    `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  let head = Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.pause();
      if (!head.subarray(0, 12).toString('latin1').startsWith('HTTP/1.1 101'))
        return reject(new Error(`no 101: ${head.subarray(0, end).toString('latin1')}`));
      resolve({ socket, rest: head.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

/** Send `size` bytes as one masked binary frame; resolve with the echo's length and SHA-1, and the seconds taken. */
async function roundTrip(port: number, size: number): Promise<{ seconds: number; length: number; digest: string }> {
  const { socket, rest } = await open(port);
  const block = randomBytes(MiB);
  const sent = createHash('sha1');
  const key = randomBytes(4);
  // 1 MiB is a whole number of key cycles: the block masks the same every time.
  const masked = Buffer.from(block);
  for (let i = 0; i < masked.length; i++) masked[i] ^= key[i & 3]!;
  const head = Buffer.alloc(14);
  head[0] = 0x82;
  head[1] = 0x80 | 127;
  head.writeBigUInt64BE(BigInt(size), 2);
  key.copy(head, 10);

  const echo = createHash('sha1');
  let length = 0;
  const finished = new Promise<void>((resolve, reject) => {
    // Server frames are unmasked: a header, then its payload counted and hashed (pings and pongs
    // skipped), until the data frame with FIN ends.
    let pending = rest;
    let remaining = -1;
    let data = false;
    let fin = false;
    const read = (chunk: Buffer): void => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      for (;;) {
        if (remaining < 0) {
          if (pending.length < 2) return;
          const code = pending[1]! & 0x7f;
          const at = code === 126 ? 4 : code === 127 ? 10 : 2;
          if (pending.length < at) return;
          const opcode = pending[0]! & 0x0f;
          if (opcode === 0x8) return reject(new Error('closed by the server during the echo'));
          data = opcode < 0x8;
          fin = (pending[0]! & 0x80) !== 0;
          remaining = code === 126 ? pending.readUInt16BE(2) : code === 127 ? Number(pending.readBigUInt64BE(2)) : code;
          pending = pending.subarray(at);
        }
        const n = Math.min(remaining, pending.length);
        if (data && n > 0) {
          echo.update(pending.subarray(0, n));
          length += n;
        }
        remaining -= n;
        pending = pending.subarray(n);
        if (remaining > 0) return;
        remaining = -1;
        if (data && fin) return resolve();
      }
    };
    socket.on('data', read);
    socket.resume();
    socket.once('close', () => reject(new Error(`closed after ${length} bytes of the echo`)));
  });
  const started = performance.now();
  socket.write(head);
  for (let done = 0; done < size; done += MiB) {
    sent.update(block.subarray(0, Math.min(MiB, size - done)));
    const piece = masked.subarray(0, Math.min(MiB, size - done));
    if (!socket.write(piece)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  await finished;
  const seconds = (performance.now() - started) / 1000;
  socket.destroy();
  const digest = echo.digest('hex');
  if (digest !== sent.digest('hex')) throw new Error('the echo differs from the message');
  return { seconds, length, digest };
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

function status(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match === null ? NaN : Number(match[1]) * 1024;
}

function pinned(core: number, argv: string[]): string[] {
  const pin = cpus().length >= 2 && spawnSync('taskset', ['-c', '1', 'true']).status === 0;
  return pin ? ['taskset', '-c', String(core), ...argv] : argv;
}

function startServer(
  impl: Impl,
  size: number,
  entry: string,
): Promise<{ child: ChildProcess; port: number; pid: number }> {
  const limit = String(size + MiB);
  const script = join(BENCH_DIR, 'servers', impl.startsWith('ours') ? 'ours.ts' : 'ws.ts');
  const args =
    impl === 'ours-stream'
      ? ['--stream']
      : impl === 'ours-whole'
        ? ['--max-message-size', limit]
        : ['--max-payload', limit];
  const env: NodeJS.ProcessEnv = { ...process.env, WSRFC_BENCH_ENTRY: entry };
  if (impl === 'ws-js') env.WS_NO_BUFFER_UTIL = '1';
  else delete env.WS_NO_BUFFER_UTIL;
  const argv = pinned(0, [process.execPath, '--import', 'tsx', script, ...args]);
  const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      out += text;
      const line = out.split('\n').find((candidate) => candidate.startsWith('{'));
      if (line !== undefined) {
        const info = JSON.parse(line) as { port: number; pid: number };
        resolve({ child, port: info.port, pid: info.pid });
      }
    });
    child.once('exit', (code) => reject(new Error(`${impl} server exited with ${code}`)));
  });
}

/** Run the client in a process of its own (pinned), for `size` bytes. */
function runClient(port: number, size: number): Promise<{ seconds: number; length: number }> {
  const argv = pinned(1, [
    process.execPath,
    '--import',
    'tsx',
    fileURLToPath(import.meta.url),
    '--client',
    String(port),
    String(size),
  ]);
  const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (out += text));
  return new Promise((resolve, reject) =>
    child.once('exit', (code) => {
      const line = out.split('\n').find((candidate) => candidate.startsWith('{'));
      if (code !== 0 || line === undefined) reject(new Error(`the client exited with ${code}: ${out}`));
      else resolve(JSON.parse(line) as { seconds: number; length: number });
    }),
  );
}

interface Measured {
  impl: Impl;
  mbPerS: number;
  peakMiB: number;
}

async function measure(impl: Impl, size: number, entry: string): Promise<Measured> {
  const server = await startServer(impl, size, entry);
  try {
    // Warm up the same path, then measure from here.
    await runClient(server.port, 16 * MiB);
    const baseline = status(server.pid, 'VmRSS');
    writeFileSync(`/proc/${server.pid}/clear_refs`, '5');
    const { seconds, length } = await runClient(server.port, size);
    if (length !== size) throw new Error(`${impl}: an echo of ${length} bytes`);
    const peak = status(server.pid, 'VmHWM');
    return { impl, mbPerS: size / 1e6 / seconds, peakMiB: (peak - baseline) / MiB };
  } finally {
    server.child.kill('SIGTERM');
    await new Promise((resolve) => server.child.once('exit', resolve));
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export async function runStreamBench(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      size: { type: 'string', default: '1024' },
      reps: { type: 'string', default: '3' },
      impls: { type: 'string', default: 'ours-stream,ours-whole,ws-js,ws-bu' },
    },
    strict: false,
  });
  const size = Number(values.size) * MiB;
  const reps = Number(values.reps);
  const impls = String(values.impls).split(',') as Impl[];
  const entry = buildOurs();
  process.stdout.write(
    `a ${size / MiB} MiB message echoed, ${reps} reps, ${impls.length} servers interleaved (${process.version}, src/ built with tsc)\n`,
  );
  const results: Measured[] = [];
  for (let rep = 0; rep < reps; rep++) {
    // The first one rotates, so slow drift of a shared machine hits them alike.
    for (let i = 0; i < impls.length; i++) {
      const impl = impls[(i + rep) % impls.length]!;
      const measured = await measure(impl, size, entry);
      results.push(measured);
      process.stdout.write(
        `  rep ${rep + 1} ${LABEL[impl].padEnd(44)} ${measured.mbPerS.toFixed(1).padStart(8)} MB/s  peak +${measured.peakMiB.toFixed(1)} MiB\n`,
      );
    }
  }
  const of = (impl: Impl, key: 'mbPerS' | 'peakMiB'): number =>
    median(results.filter((result) => result.impl === impl).map((result) => result[key]));
  const streamed = impls.includes('ours-stream') ? 'ours-stream' : null;
  const rows = [
    `| server | MB/s (round trip) | peak RSS growth, MiB${streamed === null ? '' : ' | MB/s: streamed / this | memory: this / streamed'} |`,
    `|---|--:|--:|${streamed === null ? '' : '--:|--:|'}`,
  ];
  for (const impl of impls) {
    const ratios =
      streamed === null
        ? ''
        : ` ${(of(streamed, 'mbPerS') / of(impl, 'mbPerS')).toFixed(2)}× | ${(of(impl, 'peakMiB') / of(streamed, 'peakMiB')).toFixed(1)}× |`;
    rows.push(`| ${LABEL[impl]} | ${of(impl, 'mbPerS').toFixed(1)} | ${of(impl, 'peakMiB').toFixed(1)} |${ratios}`);
  }
  process.stdout.write(`\n${rows.join('\n')}\n`);
}

if (process.argv[2] === '--client') {
  const result = await roundTrip(Number(process.argv[3]), Number(process.argv[4]));
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} else if (process.argv[1] !== undefined && pathToFileURL(realpathSync(process.argv[1])).href === import.meta.url) {
  await runStreamBench(process.argv.slice(2));
}
