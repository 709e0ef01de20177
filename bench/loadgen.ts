/**
 * A load generator for WebSocket (RFC 6455) echo servers, in Node, on raw TCP (node:net), with a
 * hand-written client handshake and frame parser. It is its own process: bench/server.ts runs it
 * pinned to the core the server is not on.
 *
 *   node --import tsx bench/loadgen.ts --port PORT [options]
 *
 * Modes (-m):
 *   echo       N connections (-c), each keeping W messages (-w) of S bytes (-s, K/M suffixes) in
 *              flight; text (printable ASCII) or binary (-b). Frames come from a pool built before
 *              the run, each payload masked with its own random key (so masking costs nothing while
 *              measuring); consecutive messages use different pool entries. Every echo's opcode and
 *              length is checked, and its content too with --verify (the default up to 4 KiB).
 *   raw        plain TCP, no handshake, no framing: a "message" is S bytes; round trips are counted
 *              by bytes received (for a raw TCP echo server, the baseline).
 *   deflate    like echo, offering permessage-deflate with client_no_context_takeover, so every
 *              pooled message is compressed on its own before the run (RSV1 set). Replies are
 *              counted by complete messages (FIN) without inflating them (the first reply of each
 *              connection is inflated once, as a sanity check). Payload: JSON-like text, 4 KiB default.
 *   idle       open N connections (at most --max-pending connecting at once), hold them -d seconds
 *              answering pings; with -p PID, the server's VmRSS before connecting, once all are open
 *              and --settle seconds have passed, and at the end; KiB per connection from the first two.
 *   deflate-idle  idle memory with permessage-deflate on: like idle, but every connection offers
 *              what browsers offer (`permessage-deflate; client_max_window_bits`: context takeover
 *              on both sides), sends one compressed JSON-like message of S bytes (4 KiB default) as
 *              soon as it is open, and waits for its echo (a complete message, compressed or not),
 *              so the server has made and used both zlib streams of every connection. The message
 *              is the first on a fresh compression context, so it is compressed before the run like
 *              deflate's. VmRSS is read once every connection has its echo and --settle seconds
 *              have passed (and at the end of the -d hold).
 *   broadcast  open N connections, print "READY n" on stderr, then count the text messages of S
 *              bytes every connection receives until each has --expect of them (or -d seconds pass).
 *
 * Echo, raw and deflate warm up for -W seconds, then measure for -d seconds: messages whose echo
 * completed in that window, divided by its measured length. Latency runs from the moment a message
 * is queued for sending (the time of the read that completed the previous echo on that connection,
 * or the start) to the read that completes its echo, in a log-linear histogram (< 0.4 % error).
 * With W > 1 this includes queueing behind the other messages in flight.
 *
 * Output: one JSON line on stdout; diagnostics on stderr. Exit status 0, 3 when errors > 0,
 * 1 on bad usage or when nothing could connect.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { constants as zlibConstants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { WEBSOCKET_GUID as GUID } from '../src/protocol/constants.js';

type Mode = 'echo' | 'raw' | 'deflate' | 'idle' | 'deflate-idle' | 'broadcast';

interface Config {
  mode: Mode;
  host: string;
  port: number;
  path: string;
  conns: number;
  window: number;
  size: number;
  binary: boolean;
  warmup: number;
  duration: number;
  pid: number;
  verify: boolean;
  maxPending: number;
  settle: number;
  expect: number;
  connectTimeout: number;
  closeTimeout: number;
  quiet: boolean;
}

const USAGE = `usage: node --import tsx bench/loadgen.ts --port PORT [options]
  -m, --mode MODE        echo (default) | raw | deflate | idle | deflate-idle | broadcast
      --host HOST        default 127.0.0.1
      --port PORT        the server's port (required)
      --path PATH        request target (default /)
  -c, --conns N          connections (default 1)
  -w, --window W         messages in flight per connection (default 1)
  -s, --size S           payload bytes, K/M suffix = KiB/MiB (default 32; deflate, deflate-idle: 4K)
  -b, --binary           binary messages (default: text)
  -W, --warmup SEC       warm-up seconds (default 1)
  -d, --duration SEC     measured seconds; idle: hold time; broadcast: time limit (default 3)
  -p, --pid PID          the server's pid: its CPU% (echo) or VmRSS (idle)
      --verify           check the content of every echo (default up to 4 KiB payloads)
      --no-verify        check length and opcode only
      --max-pending N    connects and handshakes in progress at once (default 256)
      --settle SEC       idle: wait this long after the last handshake (deflate-idle: the last echo)
                         before reading VmRSS (default 1)
      --expect K         broadcast: messages every connection must receive (default 20)
      --connect-timeout SEC / --close-timeout SEC   (default 30 / 2)
  -q, --quiet            no diagnostics on stderr
`;

function parseSize(text: string): number {
  const match = /^(\d+)([kKmM]?)$/.exec(text);
  if (match === null) throw new Error(`bad size: ${text}`);
  const unit = match[2]!.toLowerCase();
  return Number(match[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 * 1024 : 1);
}

/** Modes that negotiate permessage-deflate and send pre-compressed JSON-like text. */
function isDeflate(mode: Mode): boolean {
  return mode === 'deflate' || mode === 'deflate-idle';
}

function parseConfig(argv: string[]): Config {
  const { values } = parseArgs({
    args: argv,
    options: {
      mode: { type: 'string', short: 'm', default: 'echo' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      path: { type: 'string', default: '/' },
      conns: { type: 'string', short: 'c', default: '1' },
      window: { type: 'string', short: 'w', default: '1' },
      size: { type: 'string', short: 's' },
      binary: { type: 'boolean', short: 'b', default: false },
      warmup: { type: 'string', short: 'W', default: '1' },
      duration: { type: 'string', short: 'd', default: '3' },
      pid: { type: 'string', short: 'p', default: '0' },
      verify: { type: 'boolean' },
      'no-verify': { type: 'boolean' },
      'max-pending': { type: 'string', default: '256' },
      settle: { type: 'string', default: '1' },
      expect: { type: 'string', default: '20' },
      'connect-timeout': { type: 'string', default: '30' },
      'close-timeout': { type: 'string', default: '2' },
      quiet: { type: 'boolean', short: 'q', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const mode = values.mode as Mode;
  if (!['echo', 'raw', 'deflate', 'idle', 'deflate-idle', 'broadcast'].includes(mode))
    throw new Error(`unknown mode ${mode}`);
  if (values.port === undefined) throw new Error('--port is required');
  const size = parseSize(values.size ?? (isDeflate(mode) ? '4K' : '32'));
  const config: Config = {
    mode,
    host: values.host!,
    port: Number(values.port),
    path: values.path!,
    conns: Number(values.conns),
    window: Number(values.window),
    size,
    binary: values.binary! && !isDeflate(mode) && mode !== 'broadcast',
    warmup: Number(values.warmup),
    duration: Number(values.duration),
    pid: Number(values.pid),
    verify: values['no-verify'] ? false : (values.verify ?? size <= 4096),
    maxPending: Number(values['max-pending']),
    settle: Number(values.settle),
    expect: Number(values.expect),
    connectTimeout: Number(values['connect-timeout']),
    closeTimeout: Number(values['close-timeout']),
    quiet: values.quiet!,
  };
  for (const key of ['port', 'conns', 'window', 'maxPending', 'expect'] as const) {
    if (!Number.isInteger(config[key]) || config[key] < 1) throw new Error(`--${key} must be a whole number >= 1`);
  }
  for (const key of ['warmup', 'duration', 'settle', 'connectTimeout', 'closeTimeout'] as const) {
    if (!(config[key] >= 0)) throw new Error(`--${key} must be a number >= 0`);
  }
  if (!(config.size >= 1)) throw new Error('--size must be >= 1');
  return config;
}

// ---------------------------------------------------------------------------------------------
// Measurement helpers
// ---------------------------------------------------------------------------------------------

/**
 * Log-linear histogram of nanoseconds: values below 2^SUB exactly, above that 2^SUB buckets per
 * power of two (relative error below 1/2^SUB = 0.4 %). Bounded memory whatever the run length.
 */
const SUB = 8;
const SUB_COUNT = 1 << SUB;
class Histogram {
  readonly counts = new Float64Array((48 - SUB + 1) * SUB_COUNT);
  total = 0;

  record(ns: number): void {
    const v = ns < 0 ? 0 : Math.floor(ns);
    let index: number;
    if (v < SUB_COUNT) index = v;
    else {
      const exponent = v < 0x100000000 ? 31 - Math.clz32(v) : Math.min(47, Math.floor(Math.log2(v)));
      const shift = exponent - SUB;
      index = (shift + 1) * SUB_COUNT + (Math.floor(v / 2 ** shift) - SUB_COUNT);
      if (index >= this.counts.length) index = this.counts.length - 1;
    }
    this.counts[index]!++;
    this.total++;
  }

  /** The middle of a bucket's range. */
  private value(index: number): number {
    if (index < SUB_COUNT) return index;
    const shift = Math.floor(index / SUB_COUNT) - 1;
    const low = (SUB_COUNT + (index % SUB_COUNT)) * 2 ** shift;
    return low + (2 ** shift - 1) / 2;
  }

  quantile(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return this.value(i);
    }
    return this.value(this.counts.length - 1);
  }

  mean(): number {
    if (this.total === 0) return 0;
    let sum = 0;
    for (let i = 0; i < this.counts.length; i++) if (this.counts[i] !== 0) sum += this.counts[i]! * this.value(i);
    return sum / this.total;
  }

  max(): number {
    for (let i = this.counts.length - 1; i >= 0; i--) if (this.counts[i] !== 0) return this.value(i);
    return 0;
  }
}

const T0 = process.hrtime.bigint();
/** Nanoseconds since start, as a double (exact for 104 days). */
function nowNs(): number {
  return Number(process.hrtime.bigint() - T0);
}

function readRssKiB(pid: number): number {
  if (pid <= 0) return 0;
  try {
    const match = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? 0 : Number(match[1]);
  } catch {
    return 0;
  }
}

/** utime + stime of a process, in clock ticks (1/100 s on Linux). */
function readProcTicks(pid: number): number | null {
  if (pid <= 0) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of /proc/PID/stat; fields[0] here is field 3.
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}

/** Per CPU: [busy, total] ticks (Linux /proc/stat). */
function readCpuTicks(): [number, number][] {
  try {
    const out: [number, number][] = [];
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      if (!/^cpu\d+ /.test(line)) continue;
      const v = line.trim().split(/\s+/).slice(1).map(Number);
      const total = v.reduce((a, b) => a + b, 0);
      const idle = (v[3] ?? 0) + (v[4] ?? 0);
      out.push([total - idle, total]);
    }
    return out;
  } catch {
    return [];
  }
}

interface CpuSnapshot {
  at: number;
  server: number | null;
  client: NodeJS.CpuUsage;
  cpus: [number, number][];
}

function cpuSnapshot(pid: number): CpuSnapshot {
  return { at: nowNs(), server: readProcTicks(pid), client: process.cpuUsage(), cpus: readCpuTicks() };
}

// ---------------------------------------------------------------------------------------------
// Payloads and frames, built before the run
// ---------------------------------------------------------------------------------------------

interface PoolEntry {
  /** The payload as the application sent it (what an echo must carry). */
  plain: Buffer;
  /** What goes on the wire: a masked frame, or the payload itself in raw mode. */
  wire: Buffer;
}

/** A masked client frame (RFC 6455 §5.2, §5.3) with a fresh random key. */
function maskedFrame(firstByte: number, payload: Buffer): Buffer {
  const length = payload.length;
  const extra = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const frame = Buffer.allocUnsafe(2 + extra + 4 + length);
  frame[0] = firstByte;
  if (extra === 0) frame[1] = 0x80 | length;
  else if (extra === 2) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  const key = randomBytes(4);
  const start = 2 + extra + 4;
  key.copy(frame, start - 4);
  for (let i = 0; i < length; i++) frame[start + i] = payload[i]! ^ key[i & 3]!;
  return frame;
}

/** A JSON-like document of exactly `size` bytes (ASCII), different for every `seed`. */
function jsonPayload(seed: number, size: number): Buffer {
  const names = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];
  const parts: string[] = [];
  let length = 1;
  for (let i = 0; length < size; i++) {
    const id = seed * 1000 + i;
    const name = names[(seed + i) % names.length]!;
    const item =
      `{"id":${id},"name":"${name}","email":"${name}.${id}@example.com","active":${(id & 1) === 0},` +
      `"score":${((id * 7919) % 10000) / 100},"tags":["user","${i % 3 === 0 ? 'admin' : 'member'}"],"updated":"2024-0${1 + (i % 9)}-1${i % 10}T12:00:00Z"}`;
    parts.push(item);
    length += item.length + 1;
  }
  const text = `[${parts.join(',')}]`;
  return Buffer.from(text.length >= size ? text.slice(0, size) : text.padEnd(size, ' '), 'latin1');
}

function buildPool(config: Config): PoolEntry[] {
  const budget = 32 * 1024 * 1024;
  const count = Math.max(4, Math.min(64, Math.floor(budget / (config.size + 14))));
  const pool: PoolEntry[] = [];
  for (let e = 0; e < count; e++) {
    let plain: Buffer;
    if (isDeflate(config.mode)) plain = jsonPayload(e, config.size);
    else if (config.binary) plain = randomBytes(config.size);
    else {
      // Printable ASCII (valid UTF-8), different for each pool entry.
      plain = Buffer.allocUnsafe(config.size);
      for (let j = 0; j < config.size; j++) plain[j] = 33 + ((j * 31 + e * 17 + (j >> 8)) % 94);
    }
    let wire: Buffer;
    if (config.mode === 'raw') wire = plain;
    else if (isDeflate(config.mode)) {
      // RFC 7692 §7.2.1: compress, flush, drop the final 00 00 ff ff; RSV1 on the (only) frame.
      const compressed = deflateRawSync(plain, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
      const tail = compressed.subarray(compressed.length - 4);
      if (!tail.equals(DEFLATE_TAIL)) throw new Error('deflateRawSync output does not end with 00 00 ff ff');
      wire = maskedFrame(0x80 | 0x40 | 0x01, compressed.subarray(0, compressed.length - 4));
    } else wire = maskedFrame(0x80 | (config.binary ? 0x02 : 0x01), plain);
    pool.push({ plain, wire });
  }
  return pool;
}

const DEFLATE_TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

// ---------------------------------------------------------------------------------------------
// The run's shared state
// ---------------------------------------------------------------------------------------------

const ERROR_KINDS = [
  'connect',
  'handshake',
  'bad_len',
  'bad_content',
  'bad_opcode',
  'protocol',
  'server_close',
  'eof',
  'io',
  'unexpected',
  'timeout',
] as const;
type ErrorKind = (typeof ERROR_KINDS)[number];

const PHASE_CONNECT = 0;
const PHASE_WARMUP = 1;
const PHASE_MEASURE = 2;
const PHASE_DONE = 3;

class Run {
  readonly errors: Record<ErrorKind, number> = Object.fromEntries(ERROR_KINDS.map((k) => [k, 0])) as Record<
    ErrorKind,
    number
  >;
  readonly histogram = new Histogram();
  phase = PHASE_CONNECT;
  /** Echoes completed (all phases). */
  completed = 0;
  dataFrames = 0;
  pings = 0;
  compressedReplies = 0;
  /** Deflate-idle: connections whose one message has come back. */
  echoed = 0;
  /** Deflate modes: the first Sec-WebSocket-Extensions response seen (what the server agreed to). */
  negotiated: string | null = null;
  closeOk = 0;
  closeTimeout = 0;
  open = 0;
  /** Broadcast: connections that have received every expected message. */
  satisfied = 0;
  readonly expectedOpcode: number;
  readonly pool: PoolEntry[];

  constructor(readonly config: Config) {
    this.expectedOpcode = config.binary ? 0x02 : 0x01;
    this.pool = config.mode === 'idle' || config.mode === 'broadcast' ? [] : buildPool(config);
  }

  error(kind: ErrorKind, detail: string): void {
    if (this.errors[kind]++ < 3 && !this.config.quiet) process.stderr.write(`loadgen: ${kind}: ${detail}\n`);
  }

  get errorCount(): number {
    let total = 0;
    for (const kind of ERROR_KINDS) total += this.errors[kind];
    return total;
  }
}

// Connection states.
const ST_CONNECTING = 0;
const ST_HANDSHAKE = 1;
const ST_OPEN = 2;
const ST_CLOSING = 3;
const ST_CLOSED = 4;

const CLOSE_1000 = Buffer.from([0x03, 0xe8]);

class Connection {
  state = ST_CONNECTING;
  private readonly socket: Socket;
  private readonly key = randomBytes(16).toString('base64');
  private head: Buffer | null = null;
  private settledCallback: ((ok: boolean) => void) | null;
  private closedCallback: (() => void) | null = null;

  // The frame parser.
  private readonly header = Buffer.allocUnsafe(14);
  private headerHave = 0;
  private inPayload = false;
  private payloadLeft = 0;
  private frameOpcode = 0;
  private frameFin = false;
  private control: Buffer[] = [];
  private messageActive = false;
  private messageLength = 0;
  private messageBad = false;
  private messageRsv1 = false;
  /** Deflate mode: the first reply's payload, inflated once as a sanity check. */
  private firstReply: Buffer[] | null = null;

  // Echo bookkeeping.
  private sendSeq = 0;
  private recvSeq = 0;
  private readonly poolStart: number;
  private readonly sendTimes: Float64Array;
  /** Deflate-idle: the one message has come back. */
  private echoed = false;
  private out: Buffer[] = [];
  private outBytes = 0;
  /** Broadcast: messages received. */
  received = 0;

  constructor(
    private readonly run: Run,
    index: number,
    onSettled: (ok: boolean) => void,
  ) {
    const config = run.config;
    this.settledCallback = onSettled;
    this.poolStart = run.pool.length === 0 ? 0 : (index * 7) % run.pool.length;
    this.sendTimes = new Float64Array(
      config.mode === 'idle' || config.mode === 'deflate-idle' || config.mode === 'broadcast' ? 1 : config.window,
    );
    if (isDeflate(config.mode) && config.verify) this.firstReply = [];
    const socket = netConnect({ host: config.host, port: config.port });
    this.socket = socket;
    socket.on('connect', () => this.onConnect());
    socket.on(
      'data',
      config.mode === 'raw' ? (chunk: Buffer) => this.onRawData(chunk) : (chunk: Buffer) => this.onData(chunk),
    );
    socket.on('error', (error: Error) => this.onError(error));
    socket.on('close', () => this.onClose());
  }

  private settle(ok: boolean): void {
    const callback = this.settledCallback;
    this.settledCallback = null;
    if (callback !== null) callback(ok);
  }

  private onConnect(): void {
    const config = this.run.config;
    this.socket.setNoDelay(true);
    if (config.mode === 'raw') {
      this.state = ST_OPEN;
      this.settle(true);
      return;
    }
    this.state = ST_HANDSHAKE;
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    // deflate: every pooled message is compressed on its own, so we promise a fresh context each time.
    // deflate-idle: what browsers offer (context takeover on both sides); it sends one message only.
    const extension =
      config.mode === 'deflate'
        ? 'Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n'
        : config.mode === 'deflate-idle'
          ? 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n'
          : '';
    this.socket.write(
      `GET ${config.path} HTTP/1.1\r\nHost: ${host}:${config.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\n${extension}\r\n`,
    );
  }

  /** Fail this connection: count the error, drop the socket. */
  fail(kind: ErrorKind, detail: string): false {
    this.run.error(kind, detail);
    if (this.state === ST_CONNECTING || this.state === ST_HANDSHAKE) this.settle(false);
    this.state = ST_CLOSED;
    this.socket.destroy();
    return false;
  }

  private onError(error: Error): void {
    if (this.state === ST_CLOSED) return;
    this.fail(this.state === ST_CONNECTING ? 'connect' : 'io', error.message);
  }

  private onClose(): void {
    const was = this.state;
    this.state = ST_CLOSED;
    if (was === ST_CONNECTING || was === ST_HANDSHAKE) {
      this.run.error(was === ST_CONNECTING ? 'connect' : 'handshake', 'closed before the handshake completed');
      this.settle(false);
    } else if (was === ST_OPEN) {
      this.run.error('eof', 'the server closed the connection');
    }
    const callback = this.closedCallback;
    this.closedCallback = null;
    if (callback !== null) callback();
  }

  // -------------------------------------------------------------------------------------------
  // The handshake (RFC 6455 §4.1)
  // -------------------------------------------------------------------------------------------

  private onHandshakeData(chunk: Buffer): void {
    const head = this.head === null ? chunk : Buffer.concat([this.head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end === -1) {
      if (head.length > 16384) this.fail('handshake', 'response head too long');
      else this.head = head;
      return;
    }
    this.head = null;
    const lines = head.subarray(0, end).toString('latin1').split('\r\n');
    if (!/^HTTP\/1\.1 101(?: |$)/.test(lines[0]!)) {
      this.fail('handshake', `unexpected status line: ${lines[0]}`);
      return;
    }
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
    }
    const expected = createHash('sha1')
      .update(this.key + GUID)
      .digest('base64');
    if ((headers.get('upgrade') ?? '').toLowerCase() !== 'websocket') {
      this.fail('handshake', 'no Upgrade: websocket');
      return;
    }
    if (
      !(headers.get('connection') ?? '')
        .toLowerCase()
        .split(',')
        .some((token) => token.trim() === 'upgrade')
    ) {
      this.fail('handshake', 'no Connection: upgrade');
      return;
    }
    if (headers.get('sec-websocket-accept') !== expected) {
      this.fail('handshake', `bad Sec-WebSocket-Accept: ${headers.get('sec-websocket-accept')}`);
      return;
    }
    if (headers.has('sec-websocket-protocol')) {
      this.fail('handshake', 'a subprotocol nobody asked for');
      return;
    }
    const extensions = headers.get('sec-websocket-extensions');
    if (isDeflate(this.run.config.mode)) {
      this.run.negotiated ??= extensions ?? null;
      const params = (extensions ?? '').split(';').map((p) => p.trim());
      if (params[0] !== 'permessage-deflate' || (extensions ?? '').includes(',')) {
        this.fail('handshake', `permessage-deflate not accepted: ${extensions}`);
        return;
      }
      // Our pre-compressed frames use a 15-bit window: a smaller client window would be a violation.
      const clientBits = params.find((p) => p.startsWith('client_max_window_bits'));
      if (clientBits !== undefined && clientBits !== 'client_max_window_bits=15') {
        this.fail('handshake', `cannot honour ${clientBits}`);
        return;
      }
    } else if (extensions !== undefined) {
      this.fail('handshake', `an extension nobody asked for: ${extensions}`);
      return;
    }
    this.state = ST_OPEN;
    this.settle(true);
    const rest = head.subarray(end + 4);
    if (rest.length > 0) this.parse(rest, nowNs());
    if (this.run.config.mode === 'deflate-idle' && this.state === ST_OPEN) {
      // The one message, sent as soon as the connection is open.
      this.queueNext(nowNs());
      this.flush();
    }
  }

  // -------------------------------------------------------------------------------------------
  // Frames from the server
  // -------------------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.state === ST_HANDSHAKE) {
      this.onHandshakeData(chunk);
      return;
    }
    if (this.state !== ST_OPEN && this.state !== ST_CLOSING) return;
    this.parse(chunk, nowNs());
    if (this.out.length !== 0) this.flush();
  }

  /** The incremental parser: headers may split across reads, payloads across many. */
  private parse(chunk: Buffer, now: number): void {
    const length = chunk.length;
    let pos = 0;
    while (pos < length) {
      if (!this.inPayload) {
        if (this.headerHave === 0 && length - pos >= 2) {
          const need = headerSize(chunk[pos + 1]!);
          if (length - pos >= need) {
            pos += need;
            if (!this.onHeader(chunk, pos - need, now)) return;
            continue;
          }
        }
        // The header is split across reads: gather it byte by byte.
        while (pos < length) {
          this.header[this.headerHave++] = chunk[pos++]!;
          if (this.headerHave >= 2 && this.headerHave === headerSize(this.header[1]!)) {
            this.headerHave = 0;
            if (!this.onHeader(this.header, 0, now)) return;
            break;
          }
        }
        continue;
      }
      const take = Math.min(this.payloadLeft, length - pos);
      this.onPayload(chunk, pos, take);
      pos += take;
      this.payloadLeft -= take;
      if (this.payloadLeft === 0) {
        this.inPayload = false;
        if (!this.endFrame(now)) return;
      }
    }
  }

  private onHeader(buffer: Buffer, offset: number, now: number): boolean {
    const run = this.run;
    const b0 = buffer[offset]!;
    const b1 = buffer[offset + 1]!;
    const fin = (b0 & 0x80) !== 0;
    const rsv = b0 & 0x70;
    const opcode = b0 & 0x0f;
    // RFC 6455 §5.1: "A server MUST NOT mask any frames that it sends to the client."
    if ((b1 & 0x80) !== 0) return this.fail('protocol', 'masked server frame');
    let length = b1 & 0x7f;
    if (length === 126) length = buffer.readUInt16BE(offset + 2);
    else if (length === 127) length = buffer.readUInt32BE(offset + 2) * 2 ** 32 + buffer.readUInt32BE(offset + 6);
    if (opcode >= 0x08) {
      if (!fin || length > 125 || rsv !== 0 || opcode > 0x0a)
        return this.fail('protocol', `bad control frame (opcode ${opcode})`);
      this.control = [];
    } else if (opcode === 0x00) {
      if (!this.messageActive) return this.fail('protocol', 'continuation frame outside a message');
      if (rsv !== 0) return this.fail('protocol', 'RSV bits on a continuation frame');
    } else if (opcode === 0x01 || opcode === 0x02) {
      if (this.messageActive) return this.fail('protocol', 'new message inside a fragmented one');
      // RFC 7692 §6: RSV1 marks a compressed message, only where the extension was agreed.
      if (rsv !== 0 && !(isDeflate(run.config.mode) && rsv === 0x40)) return this.fail('protocol', 'RSV bits set');
      this.messageActive = true;
      this.messageLength = 0;
      this.messageBad = false;
      this.messageRsv1 = rsv !== 0;
      if (opcode !== run.expectedOpcode) {
        run.error('bad_opcode', `opcode ${opcode}, expected ${run.expectedOpcode}`);
        this.messageBad = true;
      }
    } else {
      return this.fail('protocol', `reserved opcode ${opcode}`);
    }
    this.frameOpcode = opcode;
    this.frameFin = fin;
    this.payloadLeft = length;
    if (length === 0) return this.endFrame(now);
    this.inPayload = true;
    return true;
  }

  private onPayload(chunk: Buffer, pos: number, take: number): void {
    if (this.frameOpcode >= 0x08) {
      this.control.push(chunk.subarray(pos, pos + take));
      return;
    }
    const run = this.run;
    const config = run.config;
    if (config.mode === 'echo' && config.verify && !this.messageBad) {
      const expected = run.pool[(this.poolStart + this.recvSeq) % run.pool.length]!.plain;
      const at = this.messageLength;
      if (at + take > expected.length) {
        run.error('bad_len', `echo longer than ${expected.length} bytes`);
        this.messageBad = true;
      } else if (expected.compare(chunk, pos, pos + take, at, at + take) !== 0) {
        run.error('bad_content', `echo #${this.recvSeq} differs from what was sent`);
        this.messageBad = true;
      }
    } else if (this.firstReply !== null) {
      this.firstReply.push(Buffer.from(chunk.subarray(pos, pos + take)));
    }
    this.messageLength += take;
  }

  private endFrame(now: number): boolean {
    const opcode = this.frameOpcode;
    if (opcode >= 0x08)
      return this.onControl(opcode, this.control.length === 1 ? this.control[0]! : Buffer.concat(this.control));
    if (!this.frameFin) return true;
    // A complete message.
    const run = this.run;
    const config = run.config;
    this.messageActive = false;
    run.dataFrames++;
    switch (config.mode) {
      case 'echo':
        if (!this.messageBad && this.messageLength !== config.size)
          run.error('bad_len', `echo of ${this.messageLength} bytes, sent ${config.size}`);
        this.complete(now);
        return true;
      case 'deflate':
        if (this.messageRsv1) run.compressedReplies++;
        if (this.firstReply !== null) this.checkFirstReply();
        this.complete(now);
        return true;
      case 'deflate-idle':
        if (this.echoed) {
          run.error('unexpected', 'a second data message on an idle connection');
          return true;
        }
        if (this.messageRsv1) run.compressedReplies++;
        if (this.firstReply !== null) this.checkFirstReply();
        this.echoed = true;
        this.recvSeq++;
        run.echoed++;
        return true;
      case 'broadcast':
        if (this.messageLength !== config.size)
          run.error('bad_len', `broadcast message of ${this.messageLength} bytes, expected ${config.size}`);
        this.received++;
        if (this.received === config.expect) run.satisfied++;
        else if (this.received > config.expect) run.error('unexpected', 'more broadcast messages than expected');
        return true;
      default:
        run.error('unexpected', 'a data message on an idle connection');
        return true;
    }
  }

  /** Deflate modes: the server compresses with context takeover, so only its first reply inflates on its own. */
  private checkFirstReply(): void {
    const parts = this.firstReply!;
    this.firstReply = null;
    const run = this.run;
    const expected = run.pool[(this.poolStart + this.recvSeq) % run.pool.length]!.plain;
    const body = Buffer.concat(parts);
    let inflated: Buffer;
    try {
      inflated = this.messageRsv1
        ? inflateRawSync(Buffer.concat([body, DEFLATE_TAIL]), { finishFlush: zlibConstants.Z_SYNC_FLUSH })
        : body;
    } catch (error) {
      run.error('bad_content', `first reply does not inflate: ${(error as Error).message}`);
      return;
    }
    if (!inflated.equals(expected)) run.error('bad_content', 'first reply differs from what was sent after inflation');
  }

  private onControl(opcode: number, payload: Buffer): boolean {
    const run = this.run;
    if (opcode === 0x09) {
      // RFC 6455 §5.5.2: answer a ping with a pong carrying its payload.
      run.pings++;
      if (this.state === ST_OPEN) {
        this.out.push(maskedFrame(0x80 | 0x0a, payload));
        this.outBytes += payload.length + 6;
        this.flush();
      }
      return true;
    }
    if (opcode === 0x0a) return true;
    // A close frame.
    if (this.state === ST_CLOSING) {
      run.closeOk++;
      return true;
    }
    this.state = ST_CLOSED;
    this.run.error(
      'server_close',
      `the server closed with ${payload.length >= 2 ? payload.readUInt16BE(0) : 'no code'}`,
    );
    this.socket.destroy();
    return false;
  }

  // -------------------------------------------------------------------------------------------
  // Raw TCP: a "message" is `size` bytes
  // -------------------------------------------------------------------------------------------

  private onRawData(chunk: Buffer): void {
    if (this.state !== ST_OPEN && this.state !== ST_CLOSING) return;
    const run = this.run;
    const config = run.config;
    const size = config.size;
    const now = nowNs();
    let pos = 0;
    while (pos < chunk.length) {
      const take = Math.min(size - this.messageLength, chunk.length - pos);
      if (config.verify && !this.messageBad) {
        const expected = run.pool[(this.poolStart + this.recvSeq) % run.pool.length]!.plain;
        if (expected.compare(chunk, pos, pos + take, this.messageLength, this.messageLength + take) !== 0) {
          run.error('bad_content', `echo #${this.recvSeq} differs from what was sent`);
          this.messageBad = true;
        }
      }
      pos += take;
      this.messageLength += take;
      if (this.messageLength === size) {
        this.messageLength = 0;
        this.messageBad = false;
        this.complete(now);
      }
    }
    if (this.out.length !== 0) this.flush();
  }

  // -------------------------------------------------------------------------------------------
  // Sending
  // -------------------------------------------------------------------------------------------

  /** An echo completed: record its latency, send the next message. */
  private complete(now: number): void {
    const run = this.run;
    if (this.recvSeq >= this.sendSeq) {
      run.error('unexpected', 'an echo of a message never sent');
      return;
    }
    if (run.phase === PHASE_MEASURE) run.histogram.record(now - this.sendTimes[this.recvSeq % this.sendTimes.length]!);
    this.recvSeq++;
    run.completed++;
    if (run.phase === PHASE_WARMUP || run.phase === PHASE_MEASURE) this.queueNext(now);
  }

  private queueNext(now: number): void {
    const pool = this.run.pool;
    const wire = pool[(this.poolStart + this.sendSeq) % pool.length]!.wire;
    this.sendTimes[this.sendSeq % this.sendTimes.length] = now;
    this.sendSeq++;
    this.out.push(wire);
    this.outBytes += wire.length;
  }

  /** The run starts: fill the window. */
  start(now: number): void {
    if (this.state !== ST_OPEN) return;
    for (let i = 0; i < this.run.config.window; i++) this.queueNext(now);
    this.flush();
  }

  /** Everything queued while handling one read goes out in one write. */
  private flush(): void {
    const out = this.out;
    const bytes = this.outBytes;
    this.out = [];
    this.outBytes = 0;
    if (this.state === ST_CLOSED) return;
    if (out.length === 1) this.socket.write(out[0]!);
    else if (bytes <= 64 * 1024) this.socket.write(Buffer.concat(out, bytes));
    else {
      this.socket.cork();
      for (const buffer of out) this.socket.write(buffer);
      this.socket.uncork();
    }
  }

  /** The end: a close frame (1000), or a half-close in raw mode; resolves when the socket is gone. */
  close(): Promise<void> {
    if (this.state === ST_CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.closedCallback = resolve;
      if (this.state !== ST_OPEN) {
        this.state = ST_CLOSED;
        this.socket.destroy();
        return;
      }
      this.state = ST_CLOSING;
      if (this.run.config.mode === 'raw') this.socket.end();
      else {
        this.socket.write(maskedFrame(0x88, CLOSE_1000));
        // The server ends TCP after the close handshake (RFC 6455 §7.1.1); we end ours then (allowHalfOpen is off).
      }
    });
  }

  destroy(): void {
    if (this.state === ST_CLOSED) return;
    this.state = ST_CLOSED;
    this.socket.destroy();
  }
}

/** Bytes in a frame header, from its second byte (a server's frames carry no mask key; a masked one is refused later). */
function headerSize(b1: number): number {
  const length = b1 & 0x7f;
  return 2 + (length === 126 ? 2 : length === 127 ? 8 : 0) + ((b1 & 0x80) !== 0 ? 4 : 0);
}

// ---------------------------------------------------------------------------------------------
// Phases
// ---------------------------------------------------------------------------------------------

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Open every connection, at most `maxPending` connecting or shaking hands at a time. */
function openAll(run: Run): Promise<Connection[]> {
  const config = run.config;
  const connections: Connection[] = [];
  return new Promise((resolve) => {
    let started = 0;
    let settled = 0;
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      resolve(connections);
    };
    const timer = setTimeout(() => {
      for (const connection of connections) {
        if (connection.state === ST_CONNECTING || connection.state === ST_HANDSHAKE)
          connection.fail('timeout', 'connect or handshake timed out');
      }
      finish();
    }, config.connectTimeout * 1000);
    const next = (): void => {
      while (started < config.conns && started - settled < config.maxPending) {
        const index = started++;
        connections.push(
          new Connection(run, index, (ok) => {
            settled++;
            if (ok) run.open++;
            if (settled === config.conns) finish();
            else next();
          }),
        );
      }
    };
    next();
  });
}

async function closeAll(run: Run, connections: Connection[]): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), run.config.closeTimeout * 1000);
  });
  const all = Promise.all(connections.map((c) => c.close())).then(() => true);
  const clean = await Promise.race([all, timeout]);
  clearTimeout(timer);
  if (!clean) {
    for (const connection of connections) {
      if (connection.state !== ST_CLOSED) {
        run.closeTimeout++;
        connection.destroy();
      }
    }
  }
}

function round(value: number, digits = 1): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

async function runEcho(run: Run): Promise<Record<string, unknown>> {
  const config = run.config;
  const connections = await openAll(run);
  if (run.open === 0) return {};
  const startAt = nowNs();
  run.phase = PHASE_WARMUP;
  for (const connection of connections) connection.start(startAt);

  await sleep(config.warmup * 1000);
  run.phase = PHASE_MEASURE;
  const before = cpuSnapshot(config.pid);
  const completedBefore = run.completed;
  await sleep(config.duration * 1000);
  const completedAfter = run.completed;
  const after = cpuSnapshot(config.pid);
  run.phase = PHASE_DONE;

  const seconds = (after.at - before.at) / 1e9;
  const messages = completedAfter - completedBefore;
  const rate = messages / seconds;
  const histogram = run.histogram;
  const result: Record<string, unknown> = {
    window: config.window,
    size: config.size,
    binary: config.binary,
    verify: config.verify,
    warmup: config.warmup,
    duration: round(seconds, 3),
    msgs: messages,
    msgs_per_s: round(rate),
    mbytes_per_s: round((rate * config.size) / 1e6, 2),
    mean_us: round(histogram.mean() / 1e3),
    p50_us: round(histogram.quantile(0.5) / 1e3),
    p90_us: round(histogram.quantile(0.9) / 1e3),
    p99_us: round(histogram.quantile(0.99) / 1e3),
    p999_us: round(histogram.quantile(0.999) / 1e3),
    max_us: round(histogram.max() / 1e3),
  };
  if (config.mode === 'deflate') result.compressed_replies = run.compressedReplies;
  Object.assign(result, cpuFields(before, after));
  await closeAll(run, connections);
  return result;
}

function cpuFields(before: CpuSnapshot, after: CpuSnapshot): Record<string, unknown> {
  const seconds = (after.at - before.at) / 1e9;
  const fields: Record<string, unknown> = {};
  if (before.server !== null && after.server !== null)
    fields.server_cpu_pct = round(((after.server - before.server) / 100 / seconds) * 100);
  const client = after.client.user + after.client.system - before.client.user - before.client.system;
  fields.client_cpu_pct = round((client / 1e6 / seconds) * 100);
  if (before.cpus.length > 0 && before.cpus.length === after.cpus.length) {
    fields.cpu_busy_pct = before.cpus.map(([busy, total], i) => {
      const [busy2, total2] = after.cpus[i]!;
      return total2 > total ? round(((busy2 - busy) / (total2 - total)) * 100) : 0;
    });
  }
  return fields;
}

async function runIdle(run: Run): Promise<Record<string, unknown>> {
  const config = run.config;
  const rssBefore = readRssKiB(config.pid);
  const started = nowNs();
  const connections = await openAll(run);
  const openSeconds = (nowNs() - started) / 1e9;
  if (!config.quiet) process.stderr.write(`READY ${run.open}\n`);
  run.phase = PHASE_DONE;
  await sleep(config.settle * 1000);
  const rssOpen = readRssKiB(config.pid);
  await sleep(config.duration * 1000);
  const rssAfter = readRssKiB(config.pid);
  await closeAll(run, connections);
  return {
    duration: config.duration,
    settle: config.settle,
    open_s: round(openSeconds, 2),
    server_rss_before_kb: rssBefore,
    server_rss_open_kb: rssOpen,
    server_rss_after_kb: rssAfter,
    kib_per_conn: run.open > 0 && rssBefore > 0 ? round((rssOpen - rssBefore) / run.open, 2) : null,
    kib_per_conn_end: run.open > 0 && rssBefore > 0 ? round((rssAfter - rssBefore) / run.open, 2) : null,
  };
}

/**
 * Deflate-idle: open every connection (each sends its one message once open), wait until every
 * open connection has its echo (at most --connect-timeout seconds after the last handshake), then
 * as idle: VmRSS after --settle seconds, hold -d seconds, VmRSS again.
 */
async function runDeflateIdle(run: Run): Promise<Record<string, unknown>> {
  const config = run.config;
  const rssBefore = readRssKiB(config.pid);
  const started = nowNs();
  const connections = await openAll(run);
  const openSeconds = (nowNs() - started) / 1e9;
  const deadline = Date.now() + config.connectTimeout * 1000;
  // An error (a connection lost, a bad reply) means some echo may never come: stop waiting.
  while (run.echoed < run.open && Date.now() < deadline && run.errorCount === 0) await sleep(10);
  const echoSeconds = (nowNs() - started) / 1e9;
  if (run.echoed < run.open) run.error('timeout', `${run.echoed} of ${run.open} connections got their echo`);
  if (!config.quiet) process.stderr.write(`READY ${run.open}\n`);
  run.phase = PHASE_DONE;
  await sleep(config.settle * 1000);
  const rssEchoed = readRssKiB(config.pid);
  await sleep(config.duration * 1000);
  const rssAfter = readRssKiB(config.pid);
  await closeAll(run, connections);
  return {
    size: config.size,
    duration: config.duration,
    settle: config.settle,
    negotiated: run.negotiated,
    open_s: round(openSeconds, 2),
    echoed_s: round(echoSeconds, 2),
    echoed: run.echoed,
    compressed_replies: run.compressedReplies,
    server_rss_before_kb: rssBefore,
    server_rss_open_kb: rssEchoed,
    server_rss_after_kb: rssAfter,
    kib_per_conn: run.open > 0 && rssBefore > 0 ? round((rssEchoed - rssBefore) / run.open, 2) : null,
    kib_per_conn_end: run.open > 0 && rssBefore > 0 ? round((rssAfter - rssBefore) / run.open, 2) : null,
  };
}

async function runBroadcast(run: Run): Promise<Record<string, unknown>> {
  const config = run.config;
  const connections = await openAll(run);
  // The orchestrator waits for this line before telling the server to broadcast.
  process.stderr.write(`READY ${run.open}\n`);
  run.phase = PHASE_DONE;
  const deadline = Date.now() + config.duration * 1000;
  while (run.satisfied < run.open && Date.now() < deadline && run.errorCount === 0) await sleep(20);
  // A moment for anything extra to show up.
  await sleep(100);
  let received = 0;
  for (const connection of connections) received += connection.received;
  const expected = run.open * config.expect;
  if (received < expected) run.error('timeout', `received ${received} of ${expected} broadcast messages`);
  await closeAll(run, connections);
  return { expect: config.expect, size: config.size, received, expected, complete_clients: run.satisfied };
}

export async function runLoad(argv: string[]): Promise<number> {
  let config: Config;
  try {
    config = parseConfig(argv);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}`);
    return 1;
  }
  const run = new Run(config);
  const wall = nowNs();
  let fields: Record<string, unknown>;
  if (config.mode === 'idle') fields = await runIdle(run);
  else if (config.mode === 'deflate-idle') fields = await runDeflateIdle(run);
  else if (config.mode === 'broadcast') fields = await runBroadcast(run);
  else fields = await runEcho(run);
  const errors = run.errorCount;
  const result = {
    mode: config.mode,
    transport: config.mode === 'raw' ? 'raw' : 'ws',
    conns: config.conns,
    open: run.open,
    ...fields,
    data_frames: run.dataFrames,
    pings: run.pings,
    close_ok: run.closeOk,
    close_timeout: run.closeTimeout,
    wall_s: round((nowNs() - wall) / 1e9, 2),
    errors,
    error_detail: run.errors,
  };
  await new Promise<void>((resolve) => process.stdout.write(`${JSON.stringify(result)}\n`, () => resolve()));
  if (run.open === 0) return 1;
  return errors > 0 ? 3 : 0;
}

// Run when executed directly (node --import tsx bench/loadgen.ts ...), not when imported.
if (process.argv[1] !== undefined && pathToFileURL(realpathSync(process.argv[1])).href === import.meta.url) {
  const code = await runLoad(process.argv.slice(2));
  process.exit(code);
}
