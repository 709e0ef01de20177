/**
 * Scenario C's per-connection path without the kernel: what our code costs per message between a
 * stream's 'data' and the write of the replies, measured in CPU time (not wall time), so that the
 * figure says little about what else the machine is doing.
 *
 *   node --import tsx bench/echo-path.ts [--baseline REF] [--reps 7] [--conns 100] [--batch 8] [--size 32] [--read N]
 *
 * Each connection is a `stream.Duplex` handed to `server.handleSocket()` (the same server and echo
 * handler as bench/servers/ours.ts); its writes complete at once, like a socket whose kernel
 * buffer has room. Per round every connection receives one chunk of `batch` masked text frames of
 * `size` bytes, each frame with its own key (a fresh copy per push: a socket hands over a new
 * buffer per read, and the receiver unmasks in place), and must write back `batch` echoes; the
 * replies are checked byte for byte at the end of each run. Reported: CPU ns per echoed message,
 * the median over the reps, ours and (with --baseline) src/ at another commit, built the same way
 * and interleaved rep by rep. Each rep is a child process of its own.
 *
 *   node --import tsx bench/echo-path.ts --instructions [--baseline REF] [--reps 3] [--rounds 100]
 *
 * counts instructions instead of CPU time: each child runs under valgrind's callgrind twice, once
 * with `rounds` rounds and once with 4 times as many, and the difference over the extra messages is
 * the instructions per echoed message (start-up and the handshakes cancel out). Not as steady as it
 * looks: callgrind counts V8's compiler and GC threads too, and when optimized code arrives under
 * valgrind varies, so one source can count twice as many on another day (bench/RESULTS.md): take
 * several reps.
 * Needs valgrind; slow (a minute or more per child).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Duplex } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type * as Wsrfc from '../src/index.js';
import { buildBaseline, buildOurs } from './server.js';

const THIS_FILE = fileURLToPath(import.meta.url);

interface Shape {
  conns: number;
  batch: number;
  size: number;
  ms: number;
  /** Hand each push over in reads of at most this many bytes (0: one read), as a socket would a large one. */
  read: number;
  /** Run exactly this many rounds, no warm-up, instead of `ms` (instruction counts). */
  rounds?: number;
}

/** A text frame's first bytes (RFC 6455 §5.2): FIN and the opcode, then the length in 7, 16 or 64 bits. */
function lengthHeader(size: number, maskBit: number): Buffer {
  if (size < 126) return Buffer.from([0x81, maskBit | size]);
  if (size < 65536) return Buffer.from([0x81, maskBit | 126, size >> 8, size & 0xff]);
  const header = Buffer.from([0x81, maskBit | 127, 0, 0, 0, 0, 0, 0, 0, 0]);
  header.writeUIntBE(size, 4, 6);
  return header;
}

/** One chunk of `batch` masked text frames of `size` printable bytes (RFC 6455 §5.2, §5.3). */
function frames(batch: number, size: number): { wire: Buffer; payloads: Buffer[] } {
  const parts: Buffer[] = [];
  const payloads: Buffer[] = [];
  for (let i = 0; i < batch; i++) {
    const payload = Buffer.alloc(size, 0x61 + (i % 26));
    payloads.push(payload);
    const key = randomBytes(4);
    const header = lengthHeader(size, 0x80);
    const masked = Buffer.from(payload.map((byte, j) => byte ^ key[j & 3]!));
    parts.push(header, key, masked);
  }
  return { wire: Buffer.concat(parts), payloads };
}

function expectedEcho(payloads: Buffer[]): Buffer {
  return Buffer.concat(payloads.flatMap((p) => [lengthHeader(p.length, 0), p]));
}

async function child(entry: string, shape: Shape): Promise<void> {
  const { WebSocketServer } = (await import(pathToFileURL(entry).href)) as typeof Wsrfc;
  // Counting instructions, the ping loop is off: under valgrind a run outlasts its first ping.
  const server = new WebSocketServer(shape.rounds === undefined ? {} : { pingInterval: 0 });
  server.on('connection', (socket) => {
    socket.on('message', (data, isBinary) => {
      socket.send(data, { binary: isBinary });
    });
  });
  const { wire, payloads } = frames(shape.batch, shape.size);
  const echo = expectedEcho(payloads);
  const streams: Duplex[] = [];
  // A fresh copy per read: a socket hands over a new buffer each time, and the receiver unmasks in place.
  const push = (stream: Duplex): void => {
    if (shape.read <= 0) stream.push(Buffer.from(wire));
    else
      for (let at = 0; at < wire.length; at += shape.read) stream.push(Buffer.from(wire.subarray(at, at + shape.read)));
  };
  const received: Buffer[][] = [];
  let bytesOut = 0;
  const opened: Promise<void>[] = [];
  for (let c = 0; c < shape.conns; c++) {
    const out: Buffer[] = [];
    let kept = 0;
    received.push(out);
    let handshakeDone: () => void;
    opened.push(new Promise((resolve) => (handshakeDone = resolve)));
    let head = true;
    const stream = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        if (head) {
          head = false;
          handshakeDone();
        } else {
          bytesOut += chunk.length;
          if (kept < echo.length) {
            out.push(chunk);
            kept += chunk.length;
          }
        }
        callback();
      },
    });
    streams.push(stream);
    server.handleSocket(stream as never);
    const key = randomBytes(16).toString('base64');
    stream.push(
      `GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  }
  await Promise.all(opened);
  const runFor = async (ms: number): Promise<{ messages: number; cpuNs: number }> => {
    const start = process.cpuUsage();
    const began = Date.now();
    let rounds = 0;
    while (Date.now() - began < ms) {
      for (let r = 0; r < 50; r++) {
        for (const stream of streams) push(stream);
        rounds++;
      }
      // Let the writes' callbacks and anything deferred run, as the event loop would between reads.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const used = process.cpuUsage(start);
    return { messages: rounds * shape.conns * shape.batch, cpuNs: (used.user + used.system) * 1000 };
  };
  if (shape.rounds !== undefined) {
    for (let r = 0; r < shape.rounds; r++) {
      for (const stream of streams) push(stream);
      if (r % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
    }
    const expected = shape.rounds * shape.conns * echo.length;
    for (let turn = 0; turn < 1000 && bytesOut < expected; turn++)
      await new Promise((resolve) => setImmediate(resolve));
    process.stdout.write(`${JSON.stringify({ ok: bytesOut === expected, bytesOut, expectedBytes: expected })}\n`);
    process.exit(0);
  }
  await runFor(Math.min(500, shape.ms));
  bytesOut = 0;
  const { messages, cpuNs } = await runFor(shape.ms);
  const expectedBytes = messages * (echo.length / shape.batch);
  const sample = Buffer.concat(received[0]!).subarray(0, echo.length);
  const ok = bytesOut === expectedBytes && sample.equals(echo);
  process.stdout.write(
    `${JSON.stringify({ ok, messages, nsPerMessage: cpuNs / messages, bytesOut, expectedBytes })}\n`,
  );
  process.exit(0);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function parent(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      baseline: { type: 'string' },
      reps: { type: 'string', default: '7' },
      conns: { type: 'string', default: '100' },
      batch: { type: 'string', default: '8' },
      size: { type: 'string', default: '32' },
      read: { type: 'string', default: '0' },
      ms: { type: 'string', default: '2000' },
      instructions: { type: 'boolean', default: false },
      rounds: { type: 'string', default: '100' },
    },
  });
  const shape: Shape = {
    conns: Number(values.conns),
    batch: Number(values.batch),
    size: Number(values.size),
    read: Number(values.read),
    ms: Number(values.ms),
  };
  const impls: { name: string; entry: string }[] = [{ name: 'ours', entry: buildOurs() }];
  if (values.baseline !== undefined) {
    const base = buildBaseline(values.baseline);
    impls.push({ name: `ours @ ${base.ref}`, entry: base.entry });
  }
  const results = new Map<string, number[]>(impls.map((impl) => [impl.name, []]));
  const reps = Number(values.reps);
  if (values.instructions) return countInstructions(impls, shape, Number(values.rounds), reps);
  process.stdout.write(
    `echo path: ${shape.conns} streams, ${shape.batch} × ${shape.size} B text per push, ${shape.ms} ms per rep, ${reps} reps; CPU ns per message\n`,
  );
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? impls : [...impls].reverse();
    for (const impl of order) {
      const run = spawnSync(
        process.execPath,
        ['--import', 'tsx', THIS_FILE, '--child', impl.entry, JSON.stringify(shape)],
        { encoding: 'utf8' },
      );
      const line = run.stdout.trim().split('\n').pop() ?? '';
      let parsed: { ok: boolean; nsPerMessage: number } | null = null;
      try {
        parsed = JSON.parse(line) as { ok: boolean; nsPerMessage: number };
      } catch {
        parsed = null;
      }
      if (parsed === null || !parsed.ok) {
        process.stderr.write(`${impl.name}: rep ${rep + 1} failed: ${line} ${run.stderr.slice(-500)}\n`);
        return 1;
      }
      results.get(impl.name)!.push(parsed.nsPerMessage);
      process.stdout.write(`  rep ${rep + 1} ${impl.name.padEnd(16)} ${parsed.nsPerMessage.toFixed(0)} ns\n`);
    }
  }
  const first = median(results.get('ours')!);
  for (const [name, list] of results) {
    const m = median(list);
    process.stdout.write(
      `${name.padEnd(16)} median ${m.toFixed(0)} ns/msg${name === 'ours' ? '' : `  ours/this ${(first / m).toFixed(3)} (below 1: ours cheaper)`}\n`,
    );
  }
  return 0;
}

/** Instructions (callgrind's Ir) of one child running `rounds` rounds; throws if the echo was wrong. */
function childInstructions(entry: string, shape: Shape, rounds: number): number {
  const run = spawnSync(
    'valgrind',
    [
      '--tool=callgrind',
      '--callgrind-out-file=/dev/null',
      process.execPath,
      '--import',
      'tsx',
      THIS_FILE,
      '--child',
      entry,
      JSON.stringify({ ...shape, rounds }),
    ],
    { encoding: 'utf8' },
  );
  const collected = /Collected : (\d+)/.exec(run.stderr);
  const ok = run.stdout.includes('"ok":true');
  if (run.error !== undefined || collected === null || !ok) {
    throw new Error(
      `callgrind run failed (is valgrind installed?): ${run.error?.message ?? ''} ${run.stdout} ${run.stderr.slice(-500)}`,
    );
  }
  return Number(collected[1]);
}

function countInstructions(
  impls: { name: string; entry: string }[],
  shape: Shape,
  rounds: number,
  reps: number,
): number {
  const messages = 3 * rounds * shape.conns * shape.batch;
  process.stdout.write(
    `echo path: ${shape.conns} streams, ${shape.batch} × ${shape.size} B text per push; instructions per message ` +
      `(callgrind: ${4 * rounds} rounds minus ${rounds}), ${reps} reps\n`,
  );
  const results = new Map<string, number[]>(impls.map((impl) => [impl.name, []]));
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? impls : [...impls].reverse();
    for (const impl of order) {
      const perMessage =
        (childInstructions(impl.entry, shape, 4 * rounds) - childInstructions(impl.entry, shape, rounds)) / messages;
      results.get(impl.name)!.push(perMessage);
      process.stdout.write(`  rep ${rep + 1} ${impl.name.padEnd(16)} ${perMessage.toFixed(0)} instructions\n`);
    }
  }
  const first = median(results.get('ours')!);
  for (const [name, list] of results) {
    const m = median(list);
    process.stdout.write(
      `${name.padEnd(16)} median ${m.toFixed(0)} instructions/msg${name === 'ours' ? '' : `  ours/this ${(first / m).toFixed(3)}`}\n`,
    );
  }
  return 0;
}

if (process.argv[2] === '--child') await child(process.argv[3]!, JSON.parse(process.argv[4]!) as Shape);
else process.exitCode = await parent(process.argv.slice(2));
