/**
 * Server benchmark: our WebSocket server against `ws` (pure JS, and with its native bufferutil
 * addon) and a raw TCP echo server in Node, under load from a separate process.
 *
 *   node --import tsx bench/server.ts [--only A,B,...] [--reps N] [--wsload PATH] [--warmup S] [--duration S]
 *                                     [--idle-conns N] [--deflate-idle-conns N] [--json FILE] [--profile DIR]
 *                                     [--tools node,wsload] [--ours-from build|src] [--baseline REF] [--impls LIST]
 *   env: BENCH_REPS (3), BENCH_WARMUP (1 s), BENCH_DURATION (3 s), WSLOAD (a wsload binary)
 *   (`main(args)` is exported for bench/run.ts; --help lists the options.)
 *
 * Scenarios (the load generator's arguments; bench/loadgen.ts and the C load generator wsload take the same):
 *   A  latency             -c 1 -w 1 -s 32            p50 / p99 µs
 *   B  small pipelined     -c 1 -w 128 -s 32          msgs/s
 *   C  many connections    -c 100 -w 8 -s 32          msgs/s
 *   D  64 KiB binary       -c 1 -w 4 -s 64K -b        MB/s
 *   E  1 MiB binary        -c 1 -w 2 -s 1M -b         MB/s
 *   F  idle memory         10,000 idle connections    KiB per connection of server RSS
 *   Fz idle memory, permessage-deflate   1,000 connections, each offering what browsers offer
 *                          (`permessage-deflate; client_max_window_bits`: context takeover both ways)
 *                          and echoing one compressed 4 KiB JSON-like message before going idle, so
 *                          the server holds an inflater and a deflater for each   KiB per connection
 *   broadcast              one 32 B text message to 10,000 connections, 20 times; server-side ms (median)
 *   deflate                permessage-deflate echo of 4 KiB JSON-like text, -c 1 -w 16   msgs/s
 *
 * Implementations: ours (bench/servers/ours.ts; by default running a fresh `tsc` build of src/, made
 * at the start into node_modules/.cache/wsrfc-bench/, because tsx's transform adds ~256 bytes to
 * every named closure and would be measured too), ws with WS_NO_BUFFER_UTIL=1 ("ws (pure JS)"), ws
 * with bufferutil, and "raw": a `net` echo server for A-E, a hand-rolled handshake plus plain
 * sockets for F and broadcast (the floor for any Node server; none for deflate and Fz). Servers:
 * bench/servers/*.ts. With --baseline REF, "ours @ REF" too: the same echo server running a tsc
 * build of src/ as it was at git commit REF, so a change is measured against its parent in one run.
 *
 * Every measurement gets a fresh server process, pinned to core 0 (`taskset -c 0`), and a fresh
 * load generator (bench/loadgen.ts, or wsload with --wsload), pinned to core 1; both started through
 * `bash -c 'ulimit -n ...; exec ...'` for enough file descriptors. Within a scenario the
 * implementations are interleaved, one repetition after another, with the first one rotating from
 * repetition to repetition, so slow drift of a shared machine hits them alike. The tables show
 * medians over the repetitions, and ratios of medians measured in the same run: compare ratios,
 * never absolute figures from different runs.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { benchRuntime, type BenchRuntime } from './runtime.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(BENCH_DIR);

type Impl = 'ours' | 'base' | 'ws-js' | 'ws-bu' | 'uws' | 'raw';
const IMPL_LABEL: Record<Impl, string> = {
  ours: 'ours',
  base: 'ours @ baseline',
  'ws-js': 'ws (pure JS)',
  'ws-bu': 'ws + bufferutil',
  uws: 'uWebSockets.js',
  raw: 'raw TCP (Node)',
};
const ALL_IMPLS: Impl[] = ['ours', 'ws-js', 'ws-bu', 'raw'];
/** A-F also run uWebSockets.js when it can be installed (an optional peer: see prepareUws). */
const ECHO_IMPLS: Impl[] = ['ours', 'ws-js', 'ws-bu', 'uws', 'raw'];
const WS_IMPLS: Impl[] = ['ours', 'ws-js', 'ws-bu'];

type Kind = 'echo' | 'idle' | 'deflate-idle' | 'broadcast' | 'deflate';
type Tool = 'node' | 'wsload';

interface Metric {
  key: string;
  label: string;
  lowerIsBetter: boolean;
  digits: number;
}

interface Scenario {
  id: string;
  title: string;
  kind: Kind;
  /** Echo arguments (-c -w -s [-b]), the same for both load generators. */
  echoArgs: string[];
  impls: Impl[];
  metrics: Metric[];
  /** wsload can run it. */
  wsload: boolean;
}

const MSGS: Metric = { key: 'msgs_per_s', label: 'msgs/s', lowerIsBetter: false, digits: 0 };
const MBS: Metric = { key: 'mbytes_per_s', label: 'MB/s', lowerIsBetter: false, digits: 1 };

const KIB_PER_CONN: Metric = {
  key: 'kib_per_conn',
  label: 'KiB/conn (lower is better)',
  lowerIsBetter: true,
  digits: 2,
};

function scenarios(idleConns: number, deflateIdleConns: number): Scenario[] {
  return [
    {
      id: 'A',
      title: 'A latency',
      kind: 'echo',
      echoArgs: ['-c', '1', '-w', '1', '-s', '32'],
      impls: ECHO_IMPLS,
      metrics: [
        { key: 'p50_us', label: 'p50 µs (lower is better)', lowerIsBetter: true, digits: 1 },
        { key: 'p99_us', label: 'p99 µs (lower is better)', lowerIsBetter: true, digits: 1 },
        MSGS,
      ],
      wsload: true,
    },
    {
      id: 'B',
      title: 'B small pipelined',
      kind: 'echo',
      echoArgs: ['-c', '1', '-w', '128', '-s', '32'],
      impls: ECHO_IMPLS,
      metrics: [MSGS],
      wsload: true,
    },
    {
      id: 'C',
      title: 'C many connections',
      kind: 'echo',
      echoArgs: ['-c', '100', '-w', '8', '-s', '32'],
      impls: ECHO_IMPLS,
      metrics: [MSGS],
      wsload: true,
    },
    {
      id: 'D',
      title: 'D 64 KiB binary',
      kind: 'echo',
      echoArgs: ['-c', '1', '-w', '4', '-s', '64K', '-b'],
      impls: ECHO_IMPLS,
      metrics: [MBS],
      wsload: true,
    },
    {
      id: 'E',
      title: 'E 1 MiB binary',
      kind: 'echo',
      echoArgs: ['-c', '1', '-w', '2', '-s', '1M', '-b'],
      impls: ECHO_IMPLS,
      metrics: [MBS],
      wsload: true,
    },
    {
      id: 'F',
      title: `F idle memory (${idleConns} conns)`,
      kind: 'idle',
      echoArgs: ['-c', String(idleConns)],
      impls: ECHO_IMPLS,
      metrics: [KIB_PER_CONN],
      wsload: true,
    },
    {
      id: 'Fz',
      title: `Fz idle memory, permessage-deflate (${deflateIdleConns} conns)`,
      kind: 'deflate-idle',
      echoArgs: ['-c', String(deflateIdleConns)],
      impls: WS_IMPLS,
      metrics: [KIB_PER_CONN],
      wsload: false,
    },
    {
      id: 'broadcast',
      title: `broadcast (32 B to ${idleConns} conns)`,
      kind: 'broadcast',
      echoArgs: ['-c', String(idleConns)],
      impls: ALL_IMPLS,
      metrics: [{ key: 'median_ms', label: 'ms per broadcast (lower is better)', lowerIsBetter: true, digits: 2 }],
      wsload: false,
    },
    {
      id: 'deflate',
      title: 'deflate (4 KiB JSON, -w 16)',
      kind: 'deflate',
      echoArgs: ['-c', '1', '-w', '16', '-s', '4K'],
      impls: WS_IMPLS,
      metrics: [MSGS, { key: 'mbytes_per_s', label: 'MB/s (uncompressed)', lowerIsBetter: false, digits: 1 }],
      wsload: false,
    },
  ];
}

const BROADCAST_COUNT = 20;
const BROADCAST_GAP_MS = 100;

interface Settings {
  reps: number;
  warmup: number;
  duration: number;
  only: Set<string> | null;
  wsload: string | null;
  pinned: boolean;
  fdLimit: number;
  idleConns: number;
  /** Connections for Fz (each holds ~300 KiB of zlib state). */
  deflateIdleConns: number;
  profileDir: string | null;
  jsonFile: string | null;
  tools: Tool[];
  /** Our server from a fresh tsc build of src/ (its index.js), or null: from src/ through tsx. */
  oursEntry: string | null;
  /** --baseline: a tsc build of src/ at that commit (its index.js), measured as 'base'. */
  baseline: { ref: string; entry: string } | null;
  /** --impls: only these implementations (null: all of each scenario's). */
  impls: Set<Impl> | null;
  /** uWebSockets.js's addon for this Node (see prepareUws), or null where it could not be had. */
  uws: string | null;
  /** --runtime: what runs the servers (the load generator stays on this Node). */
  runtime: BenchRuntime;
}

/** One measurement: the load generator's JSON (plus the server's, for broadcast). */
interface Measurement {
  scenario: string;
  impl: Impl;
  tool: Tool;
  rep: number;
  ok: boolean;
  problem: string;
  values: Record<string, number | null>;
  /** CPU busy on the two cores beyond what server and load generator used (other tenants), in %. */
  otherLoad: number | null;
  serverCpu: number | null;
  clientCpu: number | null;
  /** More to show in the per-measurement listing. */
  extra: string;
  raw: unknown;
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

const ULIMIT = 'ulimit -n 65536 2>/dev/null || ulimit -n hard';

/** The command that runs `argv` with a raised fd limit, pinned to `core` when pinning works. */
function wrap(settings: Settings, core: number, argv: string[]): string[] {
  const pin = settings.pinned ? ['taskset', '-c', String(core)] : [];
  return ['bash', '-c', `${ULIMIT}; exec "$@"`, 'bench', ...pin, ...argv];
}

/** Lines of a stream, awaitable one at a time. */
class Lines {
  private buffered = '';
  private readonly queue: string[] = [];
  private waiter: (() => void) | null = null;
  private ended = false;
  readonly all: string[] = [];

  constructor(stream: Readable) {
    stream.setEncoding('utf8');
    stream.on('data', (text: string) => {
      this.buffered += text;
      let newline: number;
      while ((newline = this.buffered.indexOf('\n')) !== -1) {
        const line = this.buffered.slice(0, newline);
        this.buffered = this.buffered.slice(newline + 1);
        this.queue.push(line);
        this.all.push(line);
      }
      this.wake();
    });
    stream.on('end', () => {
      if (this.buffered !== '') {
        this.queue.push(this.buffered);
        this.all.push(this.buffered);
        this.buffered = '';
      }
      this.ended = true;
      this.wake();
    });
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }

  /** The next line matching `pattern`, or null at the end of the stream or after `timeoutMs`. */
  async next(pattern: RegExp, timeoutMs: number): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.queue.length > 0) {
        const line = this.queue.shift()!;
        if (pattern.test(line)) return line;
      }
      const left = deadline - Date.now();
      if (this.ended || left <= 0) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

interface Running {
  child: ChildProcessWithoutNullStreams;
  stdout: Lines;
  stderr: Lines;
  exited: Promise<number | null>;
}

function start(argv: string[], env: NodeJS.ProcessEnv): Running {
  const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? (signal === null ? null : -1)));
    child.on('error', () => resolve(null));
  });
  return { child, stdout: new Lines(child.stdout), stderr: new Lines(child.stderr), exited };
}

async function stop(running: Running, graceMs = 5000): Promise<void> {
  if (running.child.exitCode !== null || running.child.signalCode !== null) return;
  running.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const killed = await Promise.race([
    running.exited.then(() => false),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs))),
  ]);
  clearTimeout(timer);
  if (killed) {
    running.child.kill('SIGKILL');
    await running.exited;
  }
}

interface ServerProcess extends Running {
  port: number;
  pid: number;
}

function serverScript(impl: Impl, kind: Kind): string {
  // F and broadcast: the raw column is the floor, a hand-rolled handshake then plain sockets.
  if (impl === 'raw' && (kind === 'broadcast' || kind === 'idle')) return 'raw-ws.ts';
  // Fz runs the echo servers with --deflate: each connection echoes its one message.
  const mine = impl === 'ours' || impl === 'base';
  if (kind === 'broadcast') return mine ? 'ours-broadcast.ts' : 'ws-broadcast.ts';
  if (impl === 'uws') return 'uws.ts';
  return mine ? 'ours.ts' : impl === 'raw' ? 'raw.ts' : 'ws.ts';
}

async function startServer(
  settings: Settings,
  scenario: Scenario,
  impl: Impl,
  profileName: string,
): Promise<ServerProcess> {
  const env = { ...process.env };
  if (impl === 'ws-js') env.WS_NO_BUFFER_UTIL = '1';
  else delete env.WS_NO_BUFFER_UTIL;
  const entry = impl === 'base' ? settings.baseline!.entry : settings.oursEntry;
  if (entry !== null) env.WSRFC_BENCH_ENTRY = entry;
  else delete env.WSRFC_BENCH_ENTRY;
  if (settings.uws !== null) env.WSRFC_BENCH_UWS = settings.uws;
  // One directory per measurement: Node writes a profile per thread (tsx's loader runs in a worker).
  const profile =
    settings.profileDir === null ? [] : ['--cpu-prof', '--cpu-prof-dir', join(settings.profileDir, profileName)];
  const args = scenario.kind === 'deflate' || scenario.kind === 'deflate-idle' ? ['--deflate'] : [];
  const script = join(BENCH_DIR, 'servers', serverScript(impl, scenario.kind));
  const running = start(wrap(settings, 0, [...settings.runtime.command(script, profile), ...args]), env);
  const line = await running.stdout.next(/^\{/, 30_000);
  if (line === null) {
    await stop(running);
    throw new Error(`${impl} server did not start: ${running.stderr.all.slice(-5).join(' | ')}`);
  }
  const info = JSON.parse(line) as {
    port: number;
    pid: number;
    bufferutil?: boolean;
    nativeMasking?: boolean;
    entry?: string;
  };
  if ((impl === 'ours' || impl === 'base') && info.entry !== (entry ?? 'src (tsx)')) {
    await stop(running);
    throw new Error(`${impl}: the server loaded ${info.entry}, not ${entry ?? 'src (tsx)'}`);
  }
  // ws decides at load time; make sure it did what the name says.
  if ((impl === 'ws-js' && info.bufferutil !== false) || (impl === 'ws-bu' && info.bufferutil !== true)) {
    await stop(running);
    const why = info.nativeMasking === true ? " (it masks with node:http's websocketMask on this runtime)" : '';
    throw new Error(`${impl}: ws ${info.bufferutil ? 'did' : 'did not'} load bufferutil${why}`);
  }
  return { ...running, port: info.port, pid: info.pid };
}

// ---------------------------------------------------------------------------------------------
// One measurement
// ---------------------------------------------------------------------------------------------

function loadgenArgs(settings: Settings, scenario: Scenario, server: ServerProcess, tool: Tool): string[] {
  const warmup = String(settings.warmup);
  const duration = String(settings.duration);
  const pid = String(server.pid);
  if (tool === 'wsload') {
    if (scenario.kind === 'idle')
      return [
        '-q',
        '-m',
        'idle',
        ...scenario.echoArgs,
        '-d',
        duration,
        '-p',
        pid,
        '127.0.0.1',
        String(server.port),
        '/',
      ];
    return ['-q', ...scenario.echoArgs, '-W', warmup, '-d', duration, '-p', pid, '127.0.0.1', String(server.port), '/'];
  }
  const common = ['--port', String(server.port), '-p', pid, '-q'];
  switch (scenario.kind) {
    case 'idle':
      return ['-m', 'idle', ...scenario.echoArgs, '-d', duration, '--settle', '1', ...common];
    case 'deflate-idle':
      return ['-m', 'deflate-idle', ...scenario.echoArgs, '-s', '4K', '-d', duration, '--settle', '1', ...common];
    case 'broadcast':
      return [
        '-m',
        'broadcast',
        ...scenario.echoArgs,
        '-s',
        '32',
        '--expect',
        String(BROADCAST_COUNT),
        '-d',
        '60',
        ...common,
      ];
    case 'deflate':
      return ['-m', 'deflate', ...scenario.echoArgs, '-W', warmup, '-d', duration, ...common];
    default:
      return ['-m', 'echo', ...scenario.echoArgs, '-W', warmup, '-d', duration, ...common];
  }
}

/** What a broadcast server prints. */
interface BroadcastResult {
  clients: number;
  median_ms: number;
  sync_median_ms: number;
  times_ms: number[];
}

async function measure(
  settings: Settings,
  scenario: Scenario,
  impl: Impl,
  tool: Tool,
  rep: number,
): Promise<Measurement> {
  const measurement: Measurement = {
    scenario: scenario.id,
    impl,
    tool,
    rep,
    ok: false,
    problem: '',
    values: {},
    otherLoad: null,
    serverCpu: null,
    clientCpu: null,
    extra: '',
    raw: null,
  };
  let server: ServerProcess;
  try {
    server = await startServer(settings, scenario, impl, `${scenario.id}-${impl}-${tool}-${rep}`);
  } catch (error) {
    measurement.problem = (error as Error).message;
    return measurement;
  }
  try {
    let args = loadgenArgs(settings, scenario, server, tool);
    // A-E against the raw echo server: both load generators have a raw TCP mode (F and broadcast
    // talk WebSocket to the raw floor server).
    if (impl === 'raw' && scenario.kind === 'echo')
      args = tool === 'wsload' ? ['--raw', ...args] : args.map((arg) => (arg === 'echo' ? 'raw' : arg));
    const argv =
      tool === 'wsload'
        ? [settings.wsload!, ...args]
        : [process.execPath, '--import', 'tsx', join(BENCH_DIR, 'loadgen.ts'), ...args];
    const env = { ...process.env };
    delete env.WS_NO_BUFFER_UTIL;
    const load = start(wrap(settings, 1, argv), env);
    const limitMs = (settings.warmup + settings.duration + 90) * 1000;
    let serverResult: BroadcastResult | null = null;
    if (scenario.kind === 'broadcast') {
      const ready = await load.stderr.next(/^READY \d+/, limitMs);
      if (ready !== null) {
        server.child.stdin.write(`go ${BROADCAST_COUNT} ${BROADCAST_GAP_MS}\n`);
        const line = await server.stdout.next(/^\{/, limitMs);
        if (line !== null) serverResult = JSON.parse(line) as BroadcastResult;
      }
    }
    const timer = setTimeout(() => load.child.kill('SIGKILL'), limitMs);
    const code = await load.exited;
    clearTimeout(timer);
    const last = [...load.stdout.all].reverse().find((line) => line.startsWith('{'));
    if (last === undefined) {
      measurement.problem = `load generator exited with ${code} and no result: ${load.stderr.all.slice(-3).join(' | ')}`;
      return measurement;
    }
    const result = JSON.parse(last) as Record<string, unknown>;
    measurement.raw = serverResult === null ? result : { load: result, server: serverResult };
    const number = (key: string): number | null => (typeof result[key] === 'number' ? (result[key] as number) : null);
    for (const metric of scenario.metrics) measurement.values[metric.key] = number(metric.key);
    if (scenario.kind === 'idle' && tool === 'wsload') {
      // wsload reports (after - before) / open; we use RSS once all are open, like our load generator.
      const before = number('server_rss_before_kb');
      const open = number('server_rss_open_kb');
      const count = number('open');
      measurement.values.kib_per_conn = before !== null && open !== null && count ? (open - before) / count : null;
    }
    if (scenario.kind === 'broadcast') {
      measurement.values.median_ms = serverResult?.median_ms ?? null;
      if (serverResult !== null)
        measurement.extra = ` (call returned after ${serverResult.sync_median_ms.toFixed(2)} ms)`;
    }
    if (scenario.kind === 'idle' || scenario.kind === 'deflate-idle') {
      const end = number('kib_per_conn_end');
      const open = number('open_s');
      const echoed = number('echoed_s');
      measurement.extra =
        ` (${open === null ? `wall ${number('wall_s')} s` : `open in ${open} s`}${echoed === null ? '' : `, echoed in ${echoed} s`}` +
        `${end === null ? '' : `; at the end of the hold ${end.toFixed(2)}`})`;
    }
    measurement.serverCpu = number('server_cpu_pct');
    measurement.clientCpu = number('client_cpu_pct');
    const busy = result.cpu_busy_pct;
    if (
      Array.isArray(busy) &&
      busy.length >= 2 &&
      measurement.serverCpu !== null &&
      measurement.clientCpu !== null &&
      settings.pinned
    ) {
      measurement.otherLoad =
        Math.max(0, (busy[0] as number) - measurement.serverCpu) +
        Math.max(0, (busy[1] as number) - measurement.clientCpu);
    }
    const errors = number('errors') ?? 0;
    const problems: string[] = [];
    if (errors > 0) problems.push(`${errors} load generator error(s): ${JSON.stringify(result.error_detail)}`);
    if (number('open') !== Number(scenario.echoArgs[1]))
      problems.push(`only ${number('open')} of ${scenario.echoArgs[1]} connections opened`);
    if (scenario.kind === 'broadcast') {
      if (serverResult === null) problems.push('no result from the broadcast server');
      else if (serverResult.clients !== Number(scenario.echoArgs[1]))
        problems.push(`the server saw ${serverResult.clients} clients`);
      if (number('received') !== number('expected'))
        problems.push(`received ${number('received')} of ${number('expected')} broadcast messages`);
    }
    if (scenario.kind === 'deflate' && tool === 'node' && number('compressed_replies') === 0)
      problems.push('the server compressed no reply');
    if (scenario.kind === 'deflate-idle') {
      if (number('echoed') !== number('open'))
        problems.push(`only ${number('echoed')} of ${number('open')} connections got their echo`);
      // Both servers compress a 4 KiB reply (threshold 1024): an uncompressed one would mean no deflater was made.
      if (number('compressed_replies') !== number('echoed'))
        problems.push(`${number('compressed_replies')} of ${number('echoed')} replies compressed`);
      if (typeof result.negotiated === 'string') measurement.extra += ` [${result.negotiated}]`;
    }
    for (const metric of scenario.metrics)
      if (measurement.values[metric.key] === null) problems.push(`no ${metric.key}`);
    measurement.problem = problems.join('; ');
    measurement.ok = problems.length === 0;
    return measurement;
  } finally {
    await stop(server);
  }
}

// ---------------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------------

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function format(value: number | null, digits: number): string {
  if (value === null) return '–';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

type Medians = Map<string, Map<Impl, Map<string, number | null>>>;

function mediansOf(results: Measurement[], list: Scenario[]): Medians {
  const medians: Medians = new Map();
  for (const scenario of list) {
    const byImpl = new Map<Impl, Map<string, number | null>>();
    for (const impl of scenario.impls) {
      const mine = results.filter((m) => m.scenario === scenario.id && m.impl === impl && m.ok);
      const values = new Map<string, number | null>();
      for (const metric of scenario.metrics) {
        values.set(
          metric.key,
          median(mine.map((m) => m.values[metric.key]).filter((v): v is number => v !== null && v !== undefined)),
        );
      }
      byImpl.set(impl, values);
    }
    medians.set(scenario.id, byImpl);
  }
  return medians;
}

function ratio(a: number | null | undefined, b: number | null | undefined): string {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return '–';
  return `${(a / b).toFixed(2)}×`;
}

function table(results: Measurement[], list: Scenario[], medians: Medians, baseline: string | null): string {
  // Columns for what ran: the baseline and uWebSockets.js only when they were measured.
  const shown = (impl: Impl): boolean => list.some((scenario) => scenario.impls.includes(impl));
  const others = (['base', 'ws-js', 'ws-bu', 'uws', 'raw'] as Impl[]).filter(shown);
  const SHORT: Record<Impl, string> = {
    ours: 'ours',
    base: 'base',
    'ws-js': 'ws-js',
    'ws-bu': 'ws+bu',
    uws: 'uws',
    raw: 'raw',
  };
  const label = (impl: Impl): string =>
    impl === 'base' && baseline !== null ? `ours @ ${baseline}` : IMPL_LABEL[impl];
  const rows = [
    `| scenario | metric | ours | ${others.map(label).join(' | ')} | ${others.map((impl) => `ours/${SHORT[impl]}`).join(' | ')} |`,
    `|---|---|--:|${others.map(() => '--:|').join('')}${others.map(() => '--:|').join('')}`,
  ];
  for (const scenario of list) {
    const byImpl = medians.get(scenario.id)!;
    for (const metric of scenario.metrics) {
      const get = (impl: Impl): number | null | undefined => byImpl.get(impl)?.get(metric.key);
      const cell = (impl: Impl): string => {
        if (!scenario.impls.includes(impl)) return '';
        const runs = results.filter((m) => m.scenario === scenario.id && m.impl === impl);
        const failed = runs.filter((m) => !m.ok).length;
        return format(get(impl) ?? null, metric.digits) + (failed > 0 ? ` (${failed}/${runs.length} failed)` : '');
      };
      const rel = (impl: Impl): string => (scenario.impls.includes(impl) ? ratio(get('ours'), get(impl)) : '');
      rows.push(
        `| ${scenario.title} | ${metric.label} | ${cell('ours')} | ${others.map(cell).join(' | ')} | ${others.map(rel).join(' | ')} |`,
      );
    }
  }
  rows.push(
    '',
    'raw TCP (Node): in A-E a plain `net` echo server (the load generator in raw mode: no handshake, no framing); in F and',
    'broadcast a hand-rolled handshake, then plain sockets and one pre-built frame written to each (bench/servers/raw-ws.ts):',
    'the floor for any Node server. Ratios: ours divided by the other; for "lower is better" metrics below 1 is better.',
  );
  return rows.join('\n');
}

interface Target {
  scenario: string;
  text: string;
  /** The measured figure, as the target states it, and whether it is met. */
  check(get: (impl: Impl, key: string) => number | null | undefined): { measured: string; met: boolean | null };
}

const TARGETS: Target[] = [
  ...['B', 'C'].map((id): Target => ({
    scenario: id,
    text: `${id}: msgs/s ≥ 2.5 × ws (pure JS)`,
    check: (get) => speedup(get('ours', 'msgs_per_s'), get('ws-js', 'msgs_per_s'), 2.5),
  })),
  ...['D', 'E'].map((id): Target => ({
    scenario: id,
    text: `${id}: MB/s ≥ ws + bufferutil`,
    check: (get) => speedup(get('ours', 'mbytes_per_s'), get('ws-bu', 'mbytes_per_s'), 1),
  })),
  {
    scenario: 'F',
    text: 'F: KiB/conn ≤ ws (pure JS)',
    check: (get) => speedup(get('ws-js', 'kib_per_conn'), get('ours', 'kib_per_conn'), 1, 'ws/ours'),
  },
  {
    scenario: 'Fz',
    text: 'Fz: KiB/conn ≤ ws (pure JS)',
    check: (get) => speedup(get('ws-js', 'kib_per_conn'), get('ours', 'kib_per_conn'), 1, 'ws/ours'),
  },
  {
    scenario: 'A',
    text: 'A: p50 ≤ 1.10 × raw Node TCP echo',
    check: (get) => slowdown(get('ours', 'p50_us'), get('raw', 'p50_us'), 1.1),
  },
  {
    scenario: 'A',
    text: 'A: p99 ≤ 1.10 × raw Node TCP echo',
    check: (get) => slowdown(get('ours', 'p99_us'), get('raw', 'p99_us'), 1.1),
  },
  {
    scenario: 'broadcast',
    text: 'broadcast: ≥ 3 × faster than ws (pure JS) loop',
    check: (get) => speedup(get('ws-js', 'median_ms'), get('ours', 'median_ms'), 3, 'ws/ours'),
  },
  {
    scenario: 'broadcast',
    text: 'broadcast: ≥ 3 × faster than ws + bufferutil loop',
    check: (get) => speedup(get('ws-bu', 'median_ms'), get('ours', 'median_ms'), 3, 'ws/ours'),
  },
  {
    scenario: 'deflate',
    text: 'deflate: msgs/s ≥ ws (pure JS), same settings',
    check: (get) => speedup(get('ours', 'msgs_per_s'), get('ws-js', 'msgs_per_s'), 1),
  },
  {
    scenario: 'deflate',
    text: 'deflate: msgs/s ≥ ws + bufferutil, same settings',
    check: (get) => speedup(get('ours', 'msgs_per_s'), get('ws-bu', 'msgs_per_s'), 1),
  },
];

function speedup(
  a: number | null | undefined,
  b: number | null | undefined,
  atLeast: number,
  what = 'ours/ws',
): { measured: string; met: boolean | null } {
  if (a == null || b == null || b === 0) return { measured: '–', met: null };
  return { measured: `${what} = ${(a / b).toFixed(2)}×`, met: a / b >= atLeast };
}

function slowdown(
  a: number | null | undefined,
  b: number | null | undefined,
  atMost: number,
): { measured: string; met: boolean | null } {
  if (a == null || b == null || b === 0) return { measured: '–', met: null };
  return { measured: `ours/raw = ${(a / b).toFixed(2)}×`, met: a / b <= atMost };
}

function targetTable(list: Scenario[], medians: Medians): string {
  const ids = new Set(list.map((s) => s.id));
  const rows = ['| target | measured | met |', '|---|--:|:-:|'];
  for (const target of TARGETS) {
    if (!ids.has(target.scenario)) continue;
    const byImpl = medians.get(target.scenario)!;
    const { measured, met } = target.check((impl, key) => byImpl.get(impl)?.get(key));
    rows.push(`| ${target.text} | ${measured} | ${met === null ? '?' : met ? 'yes' : '**no**'} |`);
  }
  return rows.join('\n');
}

function details(results: Measurement[], list: Scenario[]): string {
  const lines: string[] = [];
  for (const scenario of list) {
    for (const impl of scenario.impls) {
      const mine = results.filter((m) => m.scenario === scenario.id && m.impl === impl);
      if (mine.length === 0) continue;
      const parts = mine.map((m) => {
        const values = scenario.metrics.map((metric) => format(m.values[metric.key] ?? null, metric.digits)).join('/');
        const cpu = m.serverCpu === null ? '' : ` srv ${Math.round(m.serverCpu)}% gen ${Math.round(m.clientCpu ?? 0)}%`;
        const other = m.otherLoad === null ? '' : ` other ${Math.round(m.otherLoad)}%`;
        return `${values}${m.extra}${cpu}${other}${m.ok ? '' : ` FAILED (${m.problem})`}`;
      });
      lines.push(`  ${scenario.id.padEnd(9)} ${IMPL_LABEL[impl].padEnd(16)} ${parts.join(' | ')}`);
    }
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Profiles
// ---------------------------------------------------------------------------------------------

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/**
 * The functions with the most self time in a .cpuprofile, as lines of text, and the busy time in
 * µs. The first `skipMs` are left out: process start-up and module loading, before any load.
 */
export function summarizeProfile(file: string, top = 15, skipMs = 1000): { lines: string[]; busy: number } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  let total = 0;
  let elapsed = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!);
    const delta = profile.timeDeltas[i] ?? 0;
    elapsed += delta;
    if (node === undefined || elapsed < skipMs * 1000) continue;
    const frame = node.callFrame;
    const where = frame.url === '' ? '' : ` ${frame.url.replace(`file://${ROOT}/`, '')}:${frame.lineNumber + 1}`;
    const key = `${frame.functionName || '(anonymous)'}${where}`;
    self.set(key, (self.get(key) ?? 0) + delta);
    total += delta;
  }
  const busy = total - (self.get('(idle)') ?? 0);
  const ranked = [...self.entries()]
    .filter(([key]) => key !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, top);
  const lines = [
    `busy ${(busy / 1e3).toFixed(0)} ms of ${(total / 1e3).toFixed(0)} ms sampled (after the first ${skipMs} ms); self time as % of busy:`,
    ...ranked.map(([key, time]) => `  ${((time / busy) * 100).toFixed(1).padStart(5)}%  ${key}`),
  ];
  return { lines, busy };
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

const USAGE = `usage: node --import tsx bench/server.ts [options]
  --only LIST        scenarios to run, comma-separated: A,B,C,D,E,F,Fz,broadcast,deflate (default: all)
  --reps N           repetitions (default: env BENCH_REPS or 3)
  --warmup S         warm-up seconds (default: env BENCH_WARMUP or 1; the shared README's standard is 2)
  --duration S       measured seconds, and idle hold time (default: env BENCH_DURATION or 3; standard 5)
  --wsload PATH      also run the scenarios wsload supports (A-F) with this binary (default: env WSLOAD)
  --idle-conns N     connections for F and broadcast (default 10000, less if the fd limit is lower)
  --deflate-idle-conns N   connections for Fz (default 1000; each costs the server ~300 KiB of zlib state)
  --json FILE        also write every measurement to FILE
  --profile DIR      run the servers with node --cpu-prof into DIR and summarize the profiles at the end
  --tools LIST       load generators to use: node, wsload or node,wsload (default: node, plus wsload when given)
  --ours-from WHAT   build (default): our server runs a fresh tsc build of src/ (tsconfig.build.json, into
                     node_modules/.cache/wsrfc-bench/), as the package ships; src: src/ through tsx, whose
                     transform (esbuild keepNames) adds ~256 B to every named closure
  --baseline REF     also measure "ours @ REF": src/ as it was at git commit REF, built the same way, beside
                     ours in every scenario (a change against its parent, in one run)
  --impls LIST       only these implementations: ours,base,ws-js,ws-bu,uws,raw (default: all)
  --runtime R        run the servers (ours, ws, raw) on R: node (default), a name from scripts/runtimes.json
                     (node22, node24, node26, bun, deno; installed by node scripts/install-runtimes.mjs) or a
                     path to a node, bun or deno binary; the load generator stays on this Node
`;

function numberSetting(flag: string | undefined, env: string | undefined, fallback: number, name: string): number {
  const text = flag ?? env;
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!(value > 0)) throw new Error(`${name} must be a number > 0`);
  return value;
}

const CACHE = join(ROOT, 'node_modules', '.cache', 'wsrfc-bench');

/** Compile src/ (of `tree`) with the project's tsc and build config into a scratch folder; returns its index.js. */
export function buildOurs(tree = ROOT, out = join(CACHE, 'dist')): string {
  rmSync(out, { recursive: true, force: true });
  const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
  const result = spawnSync(
    tsc,
    [
      '-p',
      join(tree, 'tsconfig.build.json'),
      '--outDir',
      out,
      '--declaration',
      'false',
      '--declarationMap',
      'false',
      '--sourceMap',
      'false',
    ],
    {
      cwd: tree,
      encoding: 'utf8',
    },
  );
  if (result.status !== 0)
    throw new Error(`building ${tree}/src failed (use --ours-from src to skip it): ${result.stdout}${result.stderr}`);
  // node_modules/ ends the search for a package scope: say that these files are ES modules.
  writeFileSync(join(out, 'package.json'), '{"type":"module"}\n');
  return join(out, 'index.js');
}

/** src/ and its build config as they were at git commit `ref`, built like ours. */
export function buildBaseline(ref: string): { ref: string; entry: string } {
  const sha = spawnSync('git', ['rev-parse', '--short', `${ref}^{commit}`], { cwd: ROOT, encoding: 'utf8' });
  if (sha.status !== 0) throw new Error(`--baseline: no such commit: ${ref}`);
  const short = sha.stdout.trim();
  const tree = join(CACHE, `baseline-${short}`);
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  const archive = spawnSync(
    'bash',
    ['-c', `git archive "$1" src tsconfig.json tsconfig.build.json | tar -x -C "$2"`, 'archive', short, tree],
    { cwd: ROOT, encoding: 'utf8' },
  );
  if (archive.status !== 0) throw new Error(`--baseline: git archive failed: ${archive.stderr}`);
  return { ref: short, entry: buildOurs(tree, join(tree, 'dist')) };
}

/** uWebSockets.js as published on npm for Node 20 on Linux x64: a republished build with the addons. */
const UWS_PACKAGE = '@trufflesuite/uws-js-unofficial';
const UWS_VERSION = '20.30.0-unofficial.0';

/**
 * uWebSockets.js is an optional peer of the benchmark, never a dependency of the repository: it is
 * installed into the benchmark's cache the first time (from the npm registry, install scripts off),
 * and its addon for this Node's ABI is loaded directly (the package would fall back to a `ws`-based
 * imitation where the addon does not load, and that is not what we want to measure). Returns the
 * addon's path, or a reason why it is not available.
 */
function prepareUws(): { addon: string } | { reason: string } {
  const prefix = join(CACHE, `uws-${UWS_VERSION}`);
  const packageDir = join(prefix, 'node_modules', ...UWS_PACKAGE.split('/'));
  if (process.platform !== 'linux' || process.arch !== 'x64')
    return { reason: `${UWS_PACKAGE} carries its addons for linux-x64 here, not ${process.platform}-${process.arch}` };
  if (!existsSync(join(packageDir, 'package.json'))) {
    mkdirSync(prefix, { recursive: true });
    const install = spawnSync(
      'npm',
      [
        'install',
        '--no-save',
        '--no-package-lock',
        '--ignore-scripts',
        '--no-audit',
        '--no-fund',
        '--omit=dev',
        '--prefix',
        prefix,
        `${UWS_PACKAGE}@${UWS_VERSION}`,
      ],
      { encoding: 'utf8', timeout: 180_000 },
    );
    if (install.status !== 0)
      return {
        reason: `npm install ${UWS_PACKAGE}@${UWS_VERSION} failed: ${(install.stderr || String(install.error)).trim().split('\n').pop()}`,
      };
  }
  const addon = join(
    packageDir,
    'binaries',
    `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`,
  );
  if (!existsSync(addon))
    return {
      reason: `${UWS_PACKAGE}@${UWS_VERSION} has no addon for Node ABI ${process.versions.modules} (${process.version})`,
    };
  const load = spawnSync(process.execPath, ['-e', 'require(process.argv[1]).App()', addon], { encoding: 'utf8' });
  if (load.status !== 0) return { reason: `its addon does not load: ${load.stderr.trim().split('\n')[0]}` };
  return { addon };
}

function wsVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules', 'ws', 'package.json'), 'utf8')) as { version: string })
      .version;
  } catch {
    return '?';
  }
}

function detectPinning(): boolean {
  if (cpus().length < 2) return false;
  const result = spawnSync('taskset', ['-c', '1', 'true'], { stdio: 'ignore' });
  return result.status === 0;
}

function detectFdLimit(): number {
  const result = spawnSync('bash', ['-c', `${ULIMIT}; ulimit -n`], { encoding: 'utf8' });
  const value = Number(result.stdout?.trim());
  return Number.isFinite(value) && value > 0 ? value : 1024;
}

export async function main(args: string[]): Promise<number> {
  let settings: Settings;
  try {
    const { values } = parseArgs({
      args,
      options: {
        only: { type: 'string' },
        reps: { type: 'string' },
        warmup: { type: 'string' },
        duration: { type: 'string' },
        wsload: { type: 'string' },
        'idle-conns': { type: 'string' },
        'deflate-idle-conns': { type: 'string' },
        json: { type: 'string' },
        profile: { type: 'string' },
        'ours-from': { type: 'string', default: 'build' },
        baseline: { type: 'string' },
        impls: { type: 'string' },
        runtime: { type: 'string' },
        tools: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    const reps = numberSetting(values.reps, process.env.BENCH_REPS, 3, '--reps');
    if (!Number.isInteger(reps)) throw new Error('--reps must be a whole number');
    const fdLimit = detectFdLimit();
    const wanted = numberSetting(values['idle-conns'], undefined, 10_000, '--idle-conns');
    const wantedDeflate = numberSetting(values['deflate-idle-conns'], undefined, 1_000, '--deflate-idle-conns');
    settings = {
      reps,
      warmup: numberSetting(values.warmup, process.env.BENCH_WARMUP, 1, '--warmup'),
      duration: numberSetting(values.duration, process.env.BENCH_DURATION, 3, '--duration'),
      only:
        values.only === undefined
          ? null
          : new Set(
              values.only
                .split(',')
                .map((s) => s.trim().toLowerCase())
                .filter((s) => s !== ''),
            ),
      wsload: values.wsload ?? (process.env.WSLOAD || null),
      pinned: detectPinning(),
      fdLimit,
      idleConns: Math.min(Math.floor(wanted), fdLimit - 100),
      deflateIdleConns: Math.min(Math.floor(wantedDeflate), fdLimit - 100),
      profileDir: values.profile === undefined ? null : resolve(values.profile),
      jsonFile: values.json ?? null,
      oursEntry: null,
      baseline: null,
      impls: null,
      uws: null,
      tools: ['node', 'wsload'],
      runtime: benchRuntime(values.runtime),
    };
    IMPL_LABEL.raw = `raw TCP (${{ node: 'Node', bun: 'Bun', deno: 'Deno' }[settings.runtime.kind]})`;
    if (settings.runtime.kind !== 'node' && settings.profileDir !== null)
      throw new Error('--profile needs node servers (--cpu-prof)');
    if (values.impls !== undefined) {
      const impls = values.impls.split(',').map((name) => name.trim());
      for (const name of impls) if (!(name in IMPL_LABEL)) throw new Error(`--impls: unknown implementation ${name}`);
      settings.impls = new Set(impls as Impl[]);
    }
    if (values.tools !== undefined) {
      const tools = values.tools.split(',').map((t) => t.trim());
      if (tools.some((t) => t !== 'node' && t !== 'wsload')) throw new Error('--tools: node and/or wsload');
      settings.tools = tools as Tool[];
    }
    if (values['ours-from'] === 'build') settings.oursEntry = buildOurs();
    else if (values['ours-from'] !== 'src') throw new Error('--ours-from must be build or src');
    if (values.baseline !== undefined) {
      settings.baseline = buildBaseline(values.baseline);
      IMPL_LABEL.base = `ours @ ${settings.baseline.ref}`;
    }
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }

  const every = scenarios(settings.idleConns, settings.deflateIdleConns).map((scenario) => {
    // The baseline runs wherever ours does, beside it; --impls keeps only what was asked for.
    let impls =
      settings.baseline === null
        ? scenario.impls
        : scenario.impls.flatMap((impl): Impl[] => (impl === 'ours' ? ['ours', 'base'] : [impl]));
    if (settings.impls !== null) impls = impls.filter((impl) => settings.impls!.has(impl));
    return { ...scenario, impls };
  });
  const list = settings.only === null ? every : every.filter((s) => settings.only!.has(s.id.toLowerCase()));
  if (settings.only !== null) {
    const unknown = [...settings.only].filter((id) => !every.some((s) => s.id.toLowerCase() === id));
    if (unknown.length > 0) {
      process.stderr.write(`unknown scenario(s): ${unknown.join(', ')}\n${USAGE}`);
      return 2;
    }
  }
  // uWebSockets.js when a scenario to run has it and it can be had; otherwise say why and go on.
  let uwsNote: string | null = null;
  if (list.some((scenario) => scenario.impls.includes('uws'))) {
    // Its addons are built per Node ABI: measured only where the servers run on this Node.
    const uws =
      settings.runtime.binary === process.execPath
        ? prepareUws()
        : { reason: `its addon is for Node ${process.version}'s ABI; the servers run on ${settings.runtime.version}` };
    if ('addon' in uws) {
      settings.uws = uws.addon;
      uwsNote = `uWebSockets.js: ${UWS_PACKAGE}@${UWS_VERSION}, its addon loaded directly (${uws.addon.replace(`${ROOT}/`, '')})`;
    } else {
      for (const scenario of list) scenario.impls = scenario.impls.filter((impl) => impl !== 'uws');
      uwsNote = `uWebSockets.js: not measured: ${uws.reason}`;
    }
  }
  if (settings.wsload !== null && !(existsSync(settings.wsload) && statSync(settings.wsload).isFile())) {
    process.stderr.write(`--wsload: no such file: ${settings.wsload}\n`);
    return 2;
  }
  if (settings.profileDir !== null) mkdirSync(settings.profileDir, { recursive: true });

  const say = (text: string): void => void process.stdout.write(`${text}\n`);
  const began = Date.now();
  say(
    `server benchmark: ${list.map((s) => s.id).join(', ')}; ${settings.reps} reps, warm-up ${settings.warmup} s, measured ${settings.duration} s; load from node ${process.version}, servers on ${settings.runtime.version}; ${cpus().length} CPUs`,
  );
  say(
    settings.pinned
      ? 'pinning: server on core 0 (taskset -c 0), load generator on core 1 (taskset -c 1)'
      : 'pinning: NOT pinned (taskset missing or fewer than 2 CPUs): server and load generator share the CPUs',
  );
  say(
    `ours: ${settings.oursEntry === null ? 'src/ through tsx' : `a fresh tsc build of src/ (${settings.oursEntry.replace(`${ROOT}/`, '')})`}; ws ${wsVersion()}`,
  );
  if (settings.baseline !== null)
    say(
      `baseline: src/ at ${settings.baseline.ref}, built the same way (${settings.baseline.entry.replace(`${ROOT}/`, '')})`,
    );
  say(
    `fd limit for server and load generator: ${settings.fdLimit}${settings.idleConns < 10_000 ? ` (so F and broadcast use ${settings.idleConns} connections, not 10000)` : ''}`,
  );
  say(`Fz: ${settings.deflateIdleConns} connections (--deflate-idle-conns)`);
  if (uwsNote !== null) say(uwsNote);
  if (settings.wsload === null)
    say('wsload: skipped (pass --wsload PATH or set WSLOAD to also run A-F with the C load generator)');

  const tools: Tool[] = settings.tools.filter((tool) => tool === 'node' || settings.wsload !== null);
  if (tools.length === 0) {
    process.stderr.write('--tools wsload needs --wsload PATH (or WSLOAD)\n');
    return 2;
  }
  const results: Measurement[] = [];
  for (const tool of tools) {
    const mine = tool === 'node' ? list : list.filter((s) => s.wsload);
    if (mine.length === 0) continue;
    say(`\n--- load generator: ${tool === 'node' ? 'bench/loadgen.ts (Node)' : `wsload (${settings.wsload})`}`);
    for (const scenario of mine) {
      for (let rep = 0; rep < settings.reps; rep++) {
        // Interleaved, the first implementation rotating from one repetition to the next.
        const order = scenario.impls.map((_, i) => scenario.impls[(i + rep) % scenario.impls.length]!);
        for (const impl of order) {
          const t0 = Date.now();
          const measurement = await measure(settings, scenario, impl, tool, rep);
          results.push(measurement);
          const took = ((Date.now() - t0) / 1000).toFixed(1);
          const shown = scenario.metrics
            .map((m) => `${m.key}=${format(measurement.values[m.key] ?? null, m.digits)}`)
            .join(' ');
          say(
            `  ${scenario.id} rep ${rep + 1}/${settings.reps} ${IMPL_LABEL[impl].padEnd(16)} ${shown}  (${took} s)${measurement.ok ? '' : `  FAILED: ${measurement.problem}`}`,
          );
        }
      }
    }
  }

  const elapsed = (Date.now() - began) / 1000;
  for (const tool of tools) {
    const mine = results.filter((m) => m.tool === tool);
    const scenariosRun = list.filter((s) => mine.some((m) => m.scenario === s.id));
    if (scenariosRun.length === 0) continue;
    const medians = mediansOf(mine, scenariosRun);
    say(
      `\n### Load generator: ${tool === 'node' ? 'bench/loadgen.ts (Node)' : 'wsload (C)'} — medians of ${settings.reps} interleaved reps\n`,
    );
    say(table(mine, scenariosRun, medians, settings.baseline?.ref ?? null));
    say('\nTargets:\n');
    say(targetTable(scenariosRun, medians));
    say(
      '\nEvery measurement (metrics as in the table; srv/gen: CPU of server and load generator in the measured window; other: CPU the two cores spent on other processes):',
    );
    say(details(mine, scenariosRun));
    const noisy = mine.filter((m) => m.otherLoad !== null && m.otherLoad > 20).length;
    if (noisy > 0)
      say(
        `warning: in ${noisy} measurement(s) other processes used more than 20 % of a core: the machine was busy, figures are noisy`,
      );
  }
  say(`\ntotal time: ${Math.floor(elapsed / 60)} min ${Math.round(elapsed % 60)} s`);

  if (settings.jsonFile !== null) {
    writeFileSync(
      settings.jsonFile,
      JSON.stringify(
        { settings: { ...settings, only: settings.only === null ? null : [...settings.only] }, elapsed, results },
        null,
        1,
      ),
    );
    say(`measurements written to ${settings.jsonFile}`);
  }
  if (settings.profileDir !== null) {
    for (const name of readdirSync(settings.profileDir).sort()) {
      const dir = join(settings.profileDir, name);
      if (!statSync(dir).isDirectory()) continue;
      // The main thread's profile: the one with the most busy samples.
      let best: { file: string; lines: string[]; busy: number } | null = null;
      for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
        try {
          const summary = summarizeProfile(join(dir, file));
          if (best === null || summary.busy > best.busy) best = { file, ...summary };
        } catch (error) {
          say(`\nprofile ${name}/${file} unreadable: ${(error as Error).message}`);
        }
      }
      if (best !== null) say(`\nprofile ${name}/${best.file}\n${best.lines.join('\n')}`);
    }
  }
  return results.every((m) => m.ok) ? 0 : 1;
}

// Run when executed directly (node --import tsx bench/server.ts), not when imported by bench/run.ts.
if (process.argv[1] !== undefined && pathToFileURL(realpathSync(process.argv[1])).href === import.meta.url) {
  process.exitCode = await main(process.argv.slice(2));
}
