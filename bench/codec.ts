/**
 * Codec benchmark: our frame parser and frame writer against the `ws` package's, without sockets.
 *
 *   npm run bench -- codec                 (or: node --import tsx bench/codec.ts)
 *   env: BENCH_REPS=5  BENCH_TIME_MS=1000  BENCH_WARMUP_MS=250   (the defaults)
 *
 * Parser: a stream of masked binary frames of one payload size (32 B, 1 KiB, 64 KiB, 1 MiB), each
 * with its own random masking key, cut into 64 KiB chunks (what a socket typically hands over),
 * pushed into the parser. Measured: parse + unmask + message delivery, in MB/s of input (wire
 * bytes, 1 MB = 10^6 bytes) and messages per second.
 * Writer: one message per frame, encoded as a server frame (unmasked) and as a client frame (masked
 * with a fresh random key into a copy: the application's buffer is never modified), in frames/s.
 *
 * Implementations: ours (src/), ws's Receiver/Sender in pure JS (WS_NO_BUFFER_UTIL=1), and ws with
 * the native `bufferutil` masking addon. ws decides at load time whether to use bufferutil, so
 * every measurement runs in a child process of its own, which warms up, measures for about
 * BENCH_TIME_MS and prints one JSON line:
 *
 *   node --import tsx bench/codec.ts --child parse <ours|ws-js|ws-bufferutil> <32|1024|65536|1048576>
 *   node --import tsx bench/codec.ts --child write <ours|ws-js|ws-bufferutil>   (all 8 writer workloads)
 *
 * (run by hand, ws-js needs WS_NO_BUFFER_UTIL=1 in the environment; the child checks that ws masks
 * the way its name says. BENCH_WRITE_ONLY=masked:32,unmasked:1024 limits a writer child to some
 * workloads, for profiling with --cpu-prof.)
 *
 * The parent runs the children one at a time (the machine has 2 cores; concurrent children would
 * disturb each other), interleaving the implementations for each workload and rotating which one
 * goes first from one repetition to the next, so slow drift of the machine hits all of them alike.
 * It reports medians, and warns about runs during which other processes used the CPU.
 */
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { Opcode } from '../src/protocol/constants.js';
import { Receiver } from '../src/protocol/receiver.js';
import { FrameQueue, MaskKeySource } from '../src/protocol/writer.js';

const THIS_FILE = fileURLToPath(import.meta.url);
const REPO_ROOT = resolve(dirname(THIS_FILE), '..');

const SIZES = [32, 1024, 64 * 1024, 1024 * 1024] as const;
/** What a socket typically delivers per 'data' event (the default read buffer size). */
const CHUNK_SIZE = 64 * 1024;
/** Bytes of input per pass over the pre-built stream (at least two frames). */
const PASS_BYTES = 2 * 1024 * 1024;
/** Chunks restored and pushed per timed slice: 512 KiB, which stays in the 1 MiB L2 cache. */
const CHUNKS_PER_SLICE = 8;
const MAX_MESSAGE_SIZE = 64 * 1024 * 1024;

const IMPLS = ['ours', 'ws-js', 'ws-bufferutil'] as const;
type Impl = (typeof IMPLS)[number];
type WriteMode = 'unmasked' | 'masked';

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return value;
}

const TIME_MS = envNumber('BENCH_TIME_MS', 1000);
const WARMUP_MS = envNumber('BENCH_WARMUP_MS', 250);

// ---------------------------------------------------------------------------------------------
// The ws package, typed by hand: @types/ws does not describe its Receiver and Sender classes.

interface WsReceiver {
  write(chunk: Buffer): boolean;
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
}

interface WsFrameOptions {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
}

interface WsModule {
  Receiver: new (options: { isServer: boolean; maxPayload: number; skipUTF8Validation: boolean }) => WsReceiver;
  Sender: { frame(data: Buffer, options: WsFrameOptions): Buffer[] };
}

/**
 * Load ws in a child, and check that it masks the way the implementation's name says: with
 * bufferutil unless WS_NO_BUFFER_UTIL was set before ws was loaded (the parent sets it).
 */
function loadWs(impl: Impl): WsModule {
  const require = createRequire(import.meta.url);
  const ws = require('ws') as WsModule;
  // The module ws's Receiver and Sender use (same resolved file, so the same instance).
  const bufferUtil = require(join(dirname(require.resolve('ws')), 'lib', 'buffer-util.js')) as {
    mask: (...args: unknown[]) => void;
    unmask: (...args: unknown[]) => void;
  };
  const native =
    bufferUtil.unmask.toString().includes('bufferUtil.unmask') &&
    bufferUtil.mask.toString().includes('bufferUtil.mask');
  if (impl === 'ws-bufferutil') {
    const addon = require('bufferutil') as { unmask: () => void };
    if (!native || !addon.unmask.toString().includes('[native code]')) {
      throw new Error('ws-bufferutil: ws is not using the native bufferutil addon');
    }
  } else if (native) {
    throw new Error('ws-js: ws loaded bufferutil although WS_NO_BUFFER_UTIL is set');
  }
  return ws;
}

// ---------------------------------------------------------------------------------------------
// Test data, built by hand here so that it does not depend on either implementation's writer.

/** Payload byte `i`: a pattern that the message checks below can recognize after unmasking. */
function patternByte(i: number): number {
  return (i * 131 + 17) & 0xff;
}

function makePayload(size: number): Buffer {
  const payload = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) payload[i] = patternByte(i);
  return payload;
}

function headerSize(length: number, masked: boolean): number {
  return (length < 126 ? 2 : length <= 0xffff ? 4 : 10) + (masked ? 4 : 0);
}

/** A stream of `frames` masked, final, binary frames of `size` bytes each, with random keys. */
function buildMaskedStream(size: number, frames: number): Buffer {
  const frameLength = headerSize(size, true) + size;
  const stream = Buffer.allocUnsafe(frames * frameLength);
  const payload = makePayload(size);
  const keys = Buffer.allocUnsafe(4 * frames);
  randomFillSync(keys);
  let at = 0;
  for (let f = 0; f < frames; f++) {
    stream[at++] = 0x82; // FIN, binary
    if (size < 126) {
      stream[at++] = 0x80 | size;
    } else if (size <= 0xffff) {
      stream[at++] = 0x80 | 126;
      stream.writeUInt16BE(size, at);
      at += 2;
    } else {
      stream[at++] = 0x80 | 127;
      stream.writeUInt32BE(Math.floor(size / 2 ** 32), at);
      stream.writeUInt32BE(size >>> 0, at + 4);
      at += 8;
    }
    // ws skips unmasking for an all-zero key; we never generate one, so every parser does the work.
    if ((keys[4 * f]! | keys[4 * f + 1]! | keys[4 * f + 2]! | keys[4 * f + 3]!) === 0) keys[4 * f] = 1;
    const key = keys.subarray(4 * f, 4 * f + 4);
    stream.set(key, at);
    at += 4;
    for (let i = 0; i < size; i++) stream[at + i] = payload[i]! ^ key[i & 3]!;
    at += size;
  }
  if (at !== stream.length) throw new Error('stream size mismatch');
  return stream;
}

/** Decode one frame written by a writer under test and check it against the payload sent. */
function checkEncodedFrame(parts: Buffer[], payload: Buffer, masked: boolean, who: string): void {
  const frame = Buffer.concat(parts);
  const fail = (what: string): never => {
    throw new Error(`${who}: bad frame (${what})`);
  };
  if (frame[0] !== 0x82) fail('first byte');
  if (((frame[1]! & 0x80) !== 0) !== masked) fail('MASK bit');
  const code = frame[1]! & 0x7f;
  let at = 2;
  let length = code;
  if (code === 126) {
    length = frame.readUInt16BE(2);
    at = 4;
  } else if (code === 127) {
    length = frame.readUInt32BE(2) * 2 ** 32 + frame.readUInt32BE(6);
    at = 10;
  }
  if (length !== payload.length || headerSize(length, masked) !== at + (masked ? 4 : 0)) fail('length');
  const key = masked ? frame.subarray(at, at + 4) : null;
  if (key !== null) at += 4;
  if (frame.length !== at + length) fail('frame size');
  for (let i = 0; i < length; i++) {
    if ((frame[at + i]! ^ (key === null ? 0 : key[i & 3]!)) !== payload[i]) fail(`payload byte ${i}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Child: parser

interface ParseResult {
  workload: 'parse';
  impl: Impl;
  size: number;
  frames: number;
  wireBytes: number;
  seconds: number;
  mbps: number;
  fps: number;
}

/** Something that takes a chunk of input (and owns it from then on). */
type Feed = (chunk: Buffer) => void;

async function parseChild(impl: Impl, size: number): Promise<ParseResult> {
  const frameLength = headerSize(size, true) + size;
  const framesPerPass = Math.max(2, Math.ceil(PASS_BYTES / frameLength));
  const pristine = buildMaskedStream(size, framesPerPass);
  const passBytes = pristine.length;
  // The parsers unmask in place, so each pass gets the pristine bytes copied back into this
  // working buffer first. The copy is made outside the timed region, a slice of 8 chunks (512 KiB)
  // at a time just before the slice is pushed, so the input is as warm in cache as data fresh
  // from a socket read, and is identical for every implementation. Only the push calls are timed.
  const work = Buffer.allocUnsafeSlow(passBytes);
  const chunkCount = Math.ceil(passBytes / CHUNK_SIZE);

  // Every message is counted and spot-checked (length, type, first and last byte unmasked),
  // so no implementation can skip work or deliver garbage unnoticed.
  const first = patternByte(0);
  const last = patternByte(size - 1);
  let delivered = 0;
  let bad = 0;
  const onMessage = (data: Buffer, isBinary: boolean): void => {
    if (!isBinary || data.length !== size || data[0] !== first || data[size - 1] !== last) bad++;
    delivered++;
  };

  let feed: Feed;
  if (impl === 'ours') {
    const receiver = new Receiver(
      { role: 'server', maxMessageSize: MAX_MESSAGE_SIZE, maxFramePayload: MAX_MESSAGE_SIZE },
      {
        onMessage,
        onPing: () => bad++,
        onPong: () => bad++,
        onClose: () => bad++,
        onError: (error) => {
          throw error;
        },
      },
    );
    feed = (chunk) => receiver.push(chunk);
  } else {
    const ws = loadWs(impl);
    // maxPayload 0: no limit (ours has a 64 MiB one, checked the same way: per frame header).
    // ws's Receiver is a Writable; ws itself feeds it with receiver.write(chunk) from the socket's
    // 'data' handler, so that is what is measured. It parses synchronously inside write().
    const receiver = new ws.Receiver({ isServer: true, maxPayload: 0, skipUTF8Validation: false });
    receiver.on('message', onMessage);
    receiver.on('error', (error) => {
      throw error;
    });
    feed = (chunk) => receiver.write(chunk);
  }

  let passes = 0;
  /** One pass over the stream; returns the nanoseconds spent inside the parser. */
  const pass = (): number => {
    let ns = 0n;
    const slice: Buffer[] = [];
    for (let c = 0; c < chunkCount; c += CHUNKS_PER_SLICE) {
      const start = c * CHUNK_SIZE;
      const end = Math.min(passBytes, (c + CHUNKS_PER_SLICE) * CHUNK_SIZE);
      pristine.copy(work, start, start, end);
      slice.length = 0;
      for (let s = start; s < end; s += CHUNK_SIZE) slice.push(work.subarray(s, Math.min(end, s + CHUNK_SIZE)));
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < slice.length; i++) feed(slice[i]!);
      ns += process.hrtime.bigint() - t0;
    }
    passes++;
    // The stream ends on a frame boundary: every frame of the pass must have been delivered.
    if (delivered !== passes * framesPerPass || bad !== 0) {
      throw new Error(`${impl}: ${delivered} messages delivered (${bad} wrong), expected ${passes * framesPerPass}`);
    }
    return Number(ns);
  };

  // Warm-up: the same loop, untimed, until the JIT has settled.
  const warmupEnd = performance.now() + WARMUP_MS;
  for (let i = 0; i < 3 || performance.now() < warmupEnd; i++) {
    pass();
    await nextTurn(); // let Writable's deferred callbacks run, as they would between socket reads
  }

  const framesBefore = delivered;
  let ns = 0;
  let timedPasses = 0;
  while (ns < TIME_MS * 1e6) {
    ns += pass();
    timedPasses++;
    await nextTurn();
  }
  const frames = delivered - framesBefore;
  if (frames !== timedPasses * framesPerPass) throw new Error('frame count mismatch');
  const seconds = ns / 1e9;
  const wireBytes = timedPasses * passBytes;
  return {
    workload: 'parse',
    impl,
    size,
    frames,
    wireBytes,
    seconds,
    mbps: wireBytes / seconds / 1e6,
    fps: frames / seconds,
  };
}

// ---------------------------------------------------------------------------------------------
// Child: writer

interface WriteWorkloadResult {
  mode: WriteMode;
  size: number;
  frames: number;
  seconds: number;
  fps: number;
  /** Payload bytes per second, in MB/s. */
  mbps: number;
}

interface WriteResult {
  workload: 'write';
  impl: Impl;
  results: WriteWorkloadResult[];
}

/** Encode `n` frames of one payload; returns the number of bytes produced (checked by the caller). */
type EncodeBatch = (n: number) => number;

const WRITE_MODES: readonly WriteMode[] = ['unmasked', 'masked'];

/**
 * Both modes and all four sizes in one process: eight small workloads of ~BENCH_TIME_MS/8 each,
 * which keeps the number of child processes (and the run time) down. Every implementation gets
 * the same treatment: the same warm-up over all eight, then the same order of measurement.
 */
function writeChild(impl: Impl): WriteResult {
  const payloads = SIZES.map((size) => {
    const payload = Buffer.allocUnsafe(size);
    randomFillSync(payload);
    return payload;
  });

  // Each implementation produces, per frame, a fresh array of buffers ready for socket.writev():
  // ws's Sender.frame returns one; ours is what a connection does, a FrameQueue that is given the
  // message and then emptied (take()), as a flush would.
  let encode: (payload: Buffer, masked: boolean) => Buffer[];
  if (impl === 'ours') {
    // The library shares one MaskKeySource among client connections; here one serves the run.
    const serverQueue = new FrameQueue(null);
    const clientQueue = new FrameQueue(new MaskKeySource());
    encode = (payload, masked) => {
      const queue = masked ? clientQueue : serverQueue;
      queue.message(Opcode.Binary, payload, false);
      return queue.take();
    };
  } else {
    const { Sender } = loadWs(impl);
    // What ws's Sender.send() passes for a binary message: readOnly true means "the caller's
    // buffer must not be masked in place", so a masked frame is copied and masked into one new
    // buffer, as ours does. (send() builds this object per call; here it is built once.)
    const unmaskedOptions: WsFrameOptions = { fin: true, rsv1: false, opcode: 2, mask: false, readOnly: true };
    const maskedOptions: WsFrameOptions = { ...unmaskedOptions, mask: true };
    encode = (payload, masked) => Sender.frame(payload, masked ? maskedOptions : unmaskedOptions);
  }

  // BENCH_WRITE_ONLY=masked:32,unmasked:1024 limits a child to some workloads (for profiling).
  const only = process.env.BENCH_WRITE_ONLY?.split(',')
    .map((w) => w.trim())
    .filter((w) => w !== '');
  const workloads = WRITE_MODES.flatMap((mode) =>
    SIZES.map((size, s) => {
      const masked = mode === 'masked';
      const payload = payloads[s]!;
      checkEncodedFrame(encode(payload, masked), payload, masked, impl);
      // Summing the lengths of the returned buffers keeps every result alive long enough to be used.
      const batch: EncodeBatch = (n) => {
        let bytes = 0;
        for (let i = 0; i < n; i++) {
          const parts = encode(payload, masked);
          for (let j = 0; j < parts.length; j++) bytes += parts[j]!.length;
        }
        return bytes;
      };
      return { mode, size, batch, frameBytes: headerSize(size, masked) + size, batchSize: 1 };
    }),
  ).filter((w) => only === undefined || only.length === 0 || only.includes(`${w.mode}:${w.size}`));
  if (workloads.length === 0)
    throw new Error(`BENCH_WRITE_ONLY matches no workload (use e.g. masked:32,unmasked:65536)`);

  // Warm-up: all workloads in turn, growing each one's batch until it takes at least a
  // millisecond, so the clock is read rarely.
  const warmupEnd = performance.now() + WARMUP_MS;
  while (performance.now() < warmupEnd) {
    for (const w of workloads) {
      const t0 = performance.now();
      const bytes = w.batch(w.batchSize);
      if (bytes !== w.batchSize * w.frameBytes) throw new Error(`${impl}: wrong byte count`);
      if (performance.now() - t0 < 1) w.batchSize *= 2;
    }
  }

  const budget = (TIME_MS / workloads.length) * 1e6;
  const results = workloads.map((w) => {
    let ns = 0;
    let frames = 0;
    let bytes = 0;
    while (ns < budget) {
      const t0 = process.hrtime.bigint();
      bytes += w.batch(w.batchSize);
      ns += Number(process.hrtime.bigint() - t0);
      frames += w.batchSize;
    }
    if (bytes !== frames * w.frameBytes) throw new Error(`${impl}: wrong byte count`);
    const seconds = ns / 1e9;
    return {
      mode: w.mode,
      size: w.size,
      frames,
      seconds,
      fps: frames / seconds,
      mbps: (frames * w.size) / seconds / 1e6,
    };
  });
  return { workload: 'write', impl, results };
}

async function childMain(args: string[]): Promise<void> {
  const [workload, impl, arg] = args;
  if (!IMPLS.includes(impl as Impl)) throw new Error(`unknown implementation ${impl}`);
  let result: ParseResult | WriteResult;
  if (workload === 'parse') {
    const size = Number(arg);
    if (!SIZES.includes(size as (typeof SIZES)[number])) throw new Error(`unknown size ${arg}`);
    result = await parseChild(impl as Impl, size);
  } else if (workload === 'write' && arg === undefined) {
    result = writeChild(impl as Impl);
  } else {
    throw new Error(`usage: codec.ts --child parse <impl> <size> | --child write <impl>`);
  }
  const cpu = process.cpuUsage();
  process.stdout.write(`${JSON.stringify({ ...result, cpuSeconds: (cpu.user + cpu.system) / 1e6 })}\n`);
}

// ---------------------------------------------------------------------------------------------
// Parent

function runChild(args: string[], impl: Impl): Promise<unknown> {
  const env = { ...process.env };
  delete env.BENCH_WRITE_ONLY; // for profiling single children only: the tables need every workload
  if (impl === 'ws-js') env.WS_NO_BUFFER_UTIL = '1';
  else delete env.WS_NO_BUFFER_UTIL;
  const cpuBefore = machineCpuTimes();
  const startedAt = performance.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', THIS_FILE, '--child', ...args], {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (data: string) => (stdout += data));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) return reject(new Error(`child ${args.join(' ')} exited with ${signal ?? code}`));
      const line = stdout.trim().split('\n').pop() ?? '';
      const seconds = (performance.now() - startedAt) / 1000;
      try {
        const result = JSON.parse(line) as { cpuSeconds: number; otherCores: number | null };
        // What the rest of the machine used meanwhile, in cores (the child itself uses about one).
        const cores = coresBusy(cpuBefore, machineCpuTimes());
        result.otherCores = cores === null ? null : Math.max(0, cores - result.cpuSeconds / seconds);
        resolvePromise(result);
      } catch {
        reject(new Error(`child ${args.join(' ')} printed no result: ${stdout}`));
      }
    });
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Half the range, relative to the median: how far the runs were from each other. */
function spread(values: number[]): number {
  return (Math.max(...values) - Math.min(...values)) / 2 / median(values);
}

function sizeLabel(size: number): string {
  return size >= 1024 * 1024 ? `${size / 1024 / 1024} MiB` : size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
}

function fmtRate(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}

function fmtMBps(n: number): string {
  return n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

function fmtRatio(n: number): string {
  return `${n.toFixed(2)}x`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/**
 * CPU time counters of the whole machine (Linux: /proc/stat), or null where they cannot be read.
 * Used to notice other processes competing for the CPU (a load test, a build): on a 2-core machine
 * they skew a benchmark more than anything in the code under test does.
 */
function machineCpuTimes(): { busy: number; total: number } | null {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    return { busy: total - fields[3]! - (fields[4] ?? 0), total }; // all but idle and iowait
  } catch {
    return null;
  }
}

/** Cores' worth of CPU used on the machine between two samples taken `seconds` apart. */
function coresBusy(
  before: ReturnType<typeof machineCpuTimes>,
  after: ReturnType<typeof machineCpuTimes>,
): number | null {
  if (before === null || after === null || after.total === before.total) return null;
  return ((after.busy - before.busy) / (after.total - before.total)) * availableParallelism();
}

/** Cores' worth of CPU used by other processes above which a run is reported as disturbed. */
const OTHER_LOAD_LIMIT = 0.15;

const SHORT: Record<Impl, string> = { ours: 'ours', 'ws-js': 'ws-js', 'ws-bufferutil': 'ws+bu' };

export interface CodecBenchOptions {
  /** Repetitions of every measurement; the table shows medians. Default: env BENCH_REPS or 5. */
  reps?: number;
  log?: (line: string) => void;
}

export async function runCodecBench(options: CodecBenchOptions = {}): Promise<void> {
  const reps = options.reps ?? Math.round(envNumber('BENCH_REPS', 5));
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const startedAt = performance.now();

  interface Job {
    key: string;
    impl: Impl;
    args: string[];
  }
  // Workloads in order; for each, the implementations to interleave.
  const groups: Job[][] = [];
  for (const size of SIZES) {
    groups.push(IMPLS.map((impl) => ({ key: `parse/${size}/${impl}`, impl, args: ['parse', impl, String(size)] })));
  }
  groups.push(IMPLS.map((impl) => ({ key: `write/${impl}`, impl, args: ['write', impl] })));

  const idleBefore = machineCpuTimes();
  await new Promise((r) => setTimeout(r, 500));
  const busyBefore = coresBusy(idleBefore, machineCpuTimes());
  if (busyBefore !== null && busyBefore > OTHER_LOAD_LIMIT) {
    log(`warning: other processes are using ${busyBefore.toFixed(2)} cores; they will skew the results`);
  }
  /** Runs during which other processes used the CPU noticeably. */
  const disturbed: string[] = [];

  const parse = new Map<string, ParseResult[]>();
  const write = new Map<string, WriteResult[]>();
  const total = reps * groups.reduce((n, g) => n + g.length, 0);
  let done = 0;
  log(`codec bench: ${total} child runs (${reps} reps, ~${TIME_MS} ms measured each, ${WARMUP_MS} ms warm-up)`);
  for (let rep = 0; rep < reps; rep++) {
    for (const group of groups) {
      for (let k = 0; k < group.length; k++) {
        const job = group[(k + rep) % group.length]!;
        const result = (await runChild(job.args, job.impl)) as ParseResult | WriteResult;
        done++;
        const other = (result as { otherCores?: number | null }).otherCores;
        if (other != null && other > OTHER_LOAD_LIMIT)
          disturbed.push(`${job.key} (rep ${rep + 1}): ${other.toFixed(2)} cores`);
        if (result.workload === 'parse') {
          parse.set(job.key, [...(parse.get(job.key) ?? []), result]);
          log(
            `  [${done}/${total}] rep ${rep + 1} parse ${sizeLabel(result.size)} ${job.impl}: ${fmtMBps(result.mbps)} MB/s, ${fmtRate(result.fps)} frames/s`,
          );
        } else {
          write.set(job.key, [...(write.get(job.key) ?? []), result]);
          const summary = result.results
            .map((r) => `${r.mode === 'masked' ? 'm' : 'u'}${sizeLabel(r.size).replace(' ', '')} ${fmtRate(r.fps)}`)
            .join(', ');
          log(`  [${done}/${total}] rep ${rep + 1} write ${job.impl} (frames/s): ${summary}`);
        }
      }
    }
  }

  const out: string[] = [];
  out.push('');
  out.push(`Parser: masked binary frames in 64 KiB chunks, parse + unmask + deliver. Medians of ${reps} runs.`);
  out.push(
    'MB/s = input (wire) bytes / s, 1 MB = 10^6 B; spread = half the range of the runs / median, worst of the three.',
  );
  const targets: string[] = [];
  const parseRows = SIZES.map((size) => {
    const runs = IMPLS.map((impl) => parse.get(`parse/${size}/${impl}`) ?? []);
    const mbps = runs.map((r) => median(r.map((x) => x.mbps)));
    const fps = runs.map((r) => median(r.map((x) => x.fps)));
    const worstSpread = Math.max(...runs.map((r) => spread(r.map((x) => x.mbps))));
    const vsJs = mbps[0]! / mbps[1]!;
    const vsBu = mbps[0]! / mbps[2]!;
    if (size === 32)
      targets.push(
        `parser ${sizeLabel(size)}: ours/ws-js = ${fmtRatio(vsJs)} (target >= 1.50x) ${vsJs >= 1.5 ? 'met' : 'MISSED'}`,
      );
    if (size >= 64 * 1024)
      targets.push(
        `parser ${sizeLabel(size)}: ours/ws+bu = ${fmtRatio(vsBu)} (target >= 1.00x) ${vsBu >= 1 ? 'met' : 'MISSED'}`,
      );
    return [
      sizeLabel(size),
      ...IMPLS.flatMap((_, i) => [fmtMBps(mbps[i]!), fmtRate(fps[i]!)]),
      fmtRatio(vsJs),
      fmtRatio(vsBu),
      `${(worstSpread * 100).toFixed(1)}%`,
    ];
  });
  out.push(
    table(
      [
        'size',
        ...IMPLS.flatMap((impl) => [`${SHORT[impl]} MB/s`, `${SHORT[impl]} fr/s`]),
        'ours/ws-js',
        'ours/ws+bu',
        'spread',
      ],
      parseRows,
    ),
  );

  const writeTable = (mode: WriteMode, impls: readonly Impl[]): void => {
    out.push('');
    out.push(
      mode === 'unmasked'
        ? `Writer, server frames (unmasked), one binary message per frame. Medians of ${reps} runs. MB/s = payload bytes / s.`
        : `Writer, client frames (masked into a copy, fresh random key per frame). Medians of ${reps} runs. MB/s = payload bytes / s.`,
    );
    const rows = SIZES.map((size) => {
      const runs = impls.map((impl) =>
        (write.get(`write/${impl}`) ?? []).map((r) => r.results.find((x) => x.mode === mode && x.size === size)!),
      );
      const fps = runs.map((r) => median(r.map((x) => x.fps)));
      const mbps = runs.map((r) => median(r.map((x) => x.mbps)));
      const worstSpread = Math.max(...runs.map((r) => spread(r.map((x) => x.fps))));
      return [
        sizeLabel(size),
        ...impls.flatMap((_, i) => [fmtRate(fps[i]!), fmtMBps(mbps[i]!)]),
        ...impls.slice(1).map((_, i) => fmtRatio(fps[0]! / fps[i + 1]!)),
        `${(worstSpread * 100).toFixed(1)}%`,
      ];
    });
    out.push(
      table(
        [
          'size',
          ...impls.flatMap((impl) => [`${SHORT[impl]} fr/s`, `${SHORT[impl]} MB/s`]),
          ...impls.slice(1).map((impl) => `ours/${SHORT[impl]}`),
          'spread',
        ],
        rows,
      ),
    );
  };
  writeTable('unmasked', IMPLS);
  out.push('(Unmasked frames never reach the masking code: ws-js and ws+bu run the same code, a check on the noise.)');
  writeTable('masked', IMPLS);

  out.push('');
  out.push('Targets:');
  for (const t of targets) out.push(`  ${t}`);
  if (disturbed.length > 0) {
    out.push('');
    out.push(
      `Warning: other processes used more than ${OTHER_LOAD_LIMIT} cores during ${disturbed.length} of ${total} runs ` +
        '(medians damp this; rerun on a quiet machine to be sure):',
    );
    const shown = disturbed.slice(0, 8);
    for (const d of shown) out.push(`  ${d}`);
    if (disturbed.length > shown.length) out.push(`  ... and ${disturbed.length - shown.length} more`);
  }
  out.push(`(codec bench took ${((performance.now() - startedAt) / 1000).toFixed(0)} s)`);
  process.stdout.write(`${out.join('\n')}\n`);
}

const isMain = process.argv[1] !== undefined && pathToFileURL(resolve(process.argv[1])).href === import.meta.url;
if (isMain) {
  const args = process.argv.slice(2);
  if (args[0] === '--child') await childMain(args.slice(1));
  else await runCodecBench();
}
