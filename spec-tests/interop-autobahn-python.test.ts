/**
 * Interoperability with autobahn-python (Debian: python3-autobahn), the library Autobahn|Testsuite
 * is built on, for permessage-deflate (RFC 7692): its client against our server, our client against
 * its server, with every negotiation parameter it supports, declined offers, and its limits.
 *
 * Why: Autobahn|Testsuite once failed all 216 compression cases against our echo server. autobahn
 * offers `client_no_context_takeover` to say it *can* drop its context, and keeps it unless the
 * response says so; our server read the offer as a promise (RFC 7692 §7.1.1.2 calls it a hint),
 * dropped its inflater's window after each message, and closed with 1002 "invalid distance too far
 * back" at the first back-reference into an earlier message. Our own tests shared that reading.
 *
 * So every connection here sends a few hundred text and binary messages, 0 B to 1 MiB, in which
 * later messages repeat pieces of earlier ones: a compressor that keeps its context refers back into
 * previous messages. Whoever sends a message checks its echo byte for byte (the Python side its own,
 * in helpers/autobahn-python-peer.py, which reports one JSON line per connection; this side its own).
 * Both sides' view of the negotiated Sec-WebSocket-Extensions is checked, and each connection ends
 * with a clean 1000 close, started by either side.
 *
 * Python is found through $PYTHON, then /usr/bin/python3; the first that can import autobahn is
 * used. Without one the tests are skipped, saying why.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import {
  WebSocketServer,
  connect,
  HandshakeError,
  type PerMessageDeflateOptions,
  type WebSocket,
} from '../src/index.js';
import { whileAlive } from './helpers/alive.js';
import { waitUntil, withTimeout } from './helpers/library.js';
import { findPython, pythonOrSkip, runPython } from './helpers/python.js';

const PEER = fileURLToPath(new URL('./helpers/autobahn-python-peer.py', import.meta.url));
const CLOSE_REQUEST = 'please close';
const BATCH = 16;

interface Facts {
  version: string;
  zlib: string;
  window_sizes: number[];
  default_offer: string;
  offer_8: string | null;
  accept_8: string | null;
  parse_offer_8: string | null;
  parse_response_8: string | null;
  zlib_compress_8: string | null;
  zlib_decompress_8: string | null;
}

const probe = findPython(PEER, 'facts', 'autobahn', 'python3-autobahn');
const found: { python: string; facts: Facts } | { python: null; why: string } =
  probe.python === null ? probe : { python: probe.python, facts: JSON.parse(probe.output) as Facts };

function skipWithoutPython(t: { skip(message: string): void }): string | null {
  return pythonOrSkip(t, probe);
}

// ---------------------------------------------------------------------------------------------
// What a response header agrees (RFC 7692 §7.1), read here independently of src/
// ---------------------------------------------------------------------------------------------

interface Agreement {
  serverResets: boolean;
  clientResets: boolean;
  serverBits: number;
  clientBits: number;
}

/** §7.1.1: a side drops its context only when the response says so; §7.1.2: no window said is 15. */
function agreement(response: string): Agreement {
  const params = new Map(
    response
      .split(';')
      .slice(1)
      .map((param) => param.trim().split('=') as [string, string | undefined]),
  );
  return {
    serverResets: params.has('server_no_context_takeover'),
    clientResets: params.has('client_no_context_takeover'),
    serverBits: Number(params.get('server_max_window_bits') ?? 15),
    clientBits: Number(params.get('client_max_window_bits') ?? 15),
  };
}

/**
 * The probes (first messages of every connection): fresh random bytes, then the same again. With
 * the compressor's context kept and its window reaching back, the repeat compresses to a few bytes;
 * otherwise to about its own size. zlib finds matches up to 2^bits - 262 bytes back.
 */
function probeReferenced(sizes: [number, number][], plainSize: number): boolean {
  const pair = sizes.filter(([, plain]) => plain === plainSize);
  assert.ok(pair.length >= 2, `two compressed probes of ${plainSize} B in ${JSON.stringify(sizes)}`);
  const [first, repeat] = [pair[0]![0], pair[1]![0]];
  if (repeat < first / 4) return true;
  assert.ok(
    repeat > first * 0.8,
    `a repeated ${plainSize}-byte probe is either referenced or not (${first} then ${repeat} B)`,
  );
  return false;
}

/** One line on what a connection carried, for the test output. */
function summary(messages: number, compression: CompressionReport | null | undefined): string {
  if (compression === null || compression === undefined) return `${messages} messages, none compressed`;
  const probes = (sizes: [number, number][]): string =>
    sizes
      .slice(0, 2)
      .map(([compressed, plain]) => `${plain}->${compressed}`)
      .join(', ');
  const strict =
    compression.strict === null
      ? ''
      : `; ${compression.strict.strict_bytes} B re-inflated strictly with ${compression.strict.bits} bits`;
  return (
    `${messages} messages; autobahn compressed ${compression.sent_compressed} (probes ${probes(compression.sent_first)}), ` +
    `received ${compression.received_compressed} compressed (probes ${probes(compression.received_first.filter(([, plain]) => plain === 1100))})${strict}`
  );
}

function reaches(bits: number, distance: number): boolean {
  return (1 << bits) - 262 >= distance;
}

// ---------------------------------------------------------------------------------------------
// Our side's messages (the Python side has its own generator)
// ---------------------------------------------------------------------------------------------

/** xorshift32: deterministic, so a failure names a message that the next run sends again. */
class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 1;
  }
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 2 ** 32;
  }
  int(low: number, high: number): number {
    return low + Math.floor(this.next() * (high - low + 1));
  }
  bytes(size: number): Buffer {
    const out = Buffer.allocUnsafe(size);
    for (let i = 0; i < size; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }
}

// One- to four-byte UTF-8 sequences.
const ALPHABET = [...'abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOP0123456789.,;:-éßñüøç€中文字𝄞😀'];

/**
 * Messages built from runs of fresh content and copies of pieces of earlier messages (of the same
 * kind) from a few bytes to 64 KiB back, so that a compressor keeping its context finds them.
 */
class MessageStream {
  private binaryHistory = Buffer.alloc(0);
  private textHistory = '';
  constructor(private readonly random: Random) {}

  private distance(available: number): number {
    return 1 + Math.floor(this.random.next() ** 3 * (available - 1));
  }

  binary(size: number): Buffer {
    const parts: Buffer[] = [];
    let length = 0;
    while (length < size) {
      const take = Math.min(size - length, this.random.int(3, 300));
      const history = this.binaryHistory;
      let part: Buffer;
      if (history.length > 0 && this.random.next() < 0.6) {
        const start = history.length - this.distance(history.length);
        part = history.subarray(start, start + take);
      } else {
        part = this.random.bytes(take);
      }
      parts.push(part);
      length += part.length;
    }
    const data = Buffer.concat(parts).subarray(0, size);
    this.binaryHistory = Buffer.from(Buffer.concat([this.binaryHistory, data]).subarray(-65536));
    return data;
  }

  text(size: number): string {
    const parts: string[] = [];
    let bytes = 0;
    while (bytes < size) {
      const take = this.random.int(3, 200);
      const history = this.textHistory;
      let part: string;
      if (history.length > 0 && this.random.next() < 0.6) {
        let start = history.length - this.distance(history.length);
        let end = Math.min(start + take, history.length);
        // Never split a surrogate pair.
        if (start > 0 && /[\udc00-\udfff]/.test(history[start]!)) start--;
        if (end < history.length && /[\ud800-\udbff]/.test(history[end - 1]!)) end++;
        part = history.slice(start, end);
      } else {
        part = Array.from({ length: take }, () => ALPHABET[this.random.int(0, ALPHABET.length - 1)]).join('');
      }
      const partBytes = Buffer.byteLength(part);
      if (bytes + partBytes > size) {
        // The last part, cut at a character boundary so the message is at most `size` bytes.
        let cut = '';
        for (const char of part) {
          const charBytes = Buffer.byteLength(char);
          if (bytes + charBytes > size) break;
          cut += char;
          bytes += charBytes;
        }
        parts.push(cut);
        break;
      }
      parts.push(part);
      bytes += partBytes;
    }
    const text = parts.join('');
    this.textHistory = (this.textHistory + text).slice(-32768);
    if (/^[\udc00-\udfff]/.test(this.textHistory)) this.textHistory = this.textHistory.slice(1);
    return text;
  }
}

type Outgoing = { binary: true; data: Buffer } | { binary: false; data: string };

/** One connection's messages: probes, boundary sizes, many small, some medium, a few large. */
function schedule(seed: number, big: boolean): Outgoing[] {
  const random = new Random(seed);
  const stream = new MessageStream(new Random(seed + 1));
  const out: Outgoing[] = [];
  for (const size of [200, 1100]) {
    const probe = random.bytes(size);
    out.push({ binary: true, data: probe }, { binary: true, data: probe });
  }
  const middle: [boolean, number][] = [];
  for (const size of [0, 1, 2, 125, 126, 127, 128, 1023, 1024, 1025, 65535, 65536, 65537])
    middle.push([false, size], [true, size]);
  for (let i = 0; i < 220; i++) middle.push([random.next() < 0.5, random.int(1, 700)]);
  for (let i = 0; i < 50; i++) middle.push([random.next() < 0.5, random.int(700, 20_000)]);
  for (let i = 0; i < 4; i++) middle.push([random.next() < 0.5, random.int(100_000, 300_000)]);
  if (big) middle.push([false, 1 << 20], [true, 1 << 20]);
  for (let i = middle.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    [middle[i], middle[j]] = [middle[j]!, middle[i]!];
  }
  for (let i = 0; i < 20; i++) middle.push([random.next() < 0.5, random.int(1, 700)]);
  for (const [binary, size] of middle) {
    out.push(binary ? { binary: true, data: stream.binary(size) } : { binary: false, data: stream.text(size) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reports from the Python side
// ---------------------------------------------------------------------------------------------

interface PythonClose {
  was_clean: boolean;
  code: number;
  reason: string;
}

interface PmceParams {
  server_no_context_takeover: boolean;
  client_no_context_takeover: boolean;
  server_max_window_bits: number;
  client_max_window_bits: number;
}

interface CompressionReport {
  sent_compressed: number;
  received_compressed: number;
  sent_first: [number, number][];
  received_first: [number, number][];
  strict: { bits: number; strict_bytes: number; error: string | null } | null;
}

interface ClientReport {
  name: string;
  error?: string;
  request_extensions: string | null;
  opened: boolean;
  response_extensions: string | null;
  pmce: PmceParams | null;
  sent?: number;
  echoed?: number;
  mismatch?: string | null;
  compression?: CompressionReport | null;
  close: PythonClose;
}

interface ServerReport {
  id: string | null;
  offered: string | null;
  opened: boolean;
  response?: string;
  pmce?: PmceParams | null;
  messages: number;
  compression: CompressionReport | null;
  close: PythonClose;
}

function pmceOf(agreed: Agreement): PmceParams {
  return {
    server_no_context_takeover: agreed.serverResets,
    client_no_context_takeover: agreed.clientResets,
    server_max_window_bits: agreed.serverBits,
    client_max_window_bits: agreed.clientBits,
  };
}

/** A window below 15 is re-inflated strictly by the Python side; nothing may reach past it. */
function assertStrictWindow(compression: CompressionReport, bits: number): void {
  if (bits === 15) {
    assert.equal(compression.strict, null);
    return;
  }
  assert.ok(compression.strict !== null, `a strict ${bits}-bit inflater ran`);
  assert.equal(compression.strict.bits, bits);
  assert.equal(compression.strict.error, null, `what was sent inflates with a ${1 << bits}-byte window`);
  assert.ok(
    compression.strict.strict_bytes > 100_000,
    `enough bytes inflated one output byte at a time (${compression.strict.strict_bytes})`,
  );
}

// ---------------------------------------------------------------------------------------------
// autobahn-python client -> our server
// ---------------------------------------------------------------------------------------------

/** Our servers, one per configuration: like the echo CLI (src/cli/echo.ts), with deflate options. */
const SERVERS = {
  default: true,
  serverNoContextTakeover: { serverNoContextTakeover: true },
  serverMaxWindowBits10: { serverMaxWindowBits: 10 },
  clientMaxWindowBits9: { clientMaxWindowBits: 9 },
  clientNoContextTakeover: { clientNoContextTakeover: true },
  serverMaxWindowBits8: { serverMaxWindowBits: 8 },
  clientMaxWindowBits8: { clientMaxWindowBits: 8 },
  off: false,
} satisfies Record<string, boolean | PerMessageDeflateOptions>;

interface ClientScenario {
  name: string;
  title: string;
  server: keyof typeof SERVERS;
  /** PerMessageDeflateOffer's keyword arguments, or a header written out ({ raw }), or no offer. */
  offer: Record<string, boolean | number> | { raw: string } | null;
  /** What autobahn sends. */
  offered: string;
  /** What our server must answer; null: no extension. */
  response: string | null;
  /** autobahn fails the handshake, for this reason. */
  refused?: RegExp;
  allow8?: boolean;
  big?: boolean;
  closeBy: 'python' | 'node';
}

const DEFAULT_OFFER = 'permessage-deflate; client_no_context_takeover; client_max_window_bits';
const BARE = { accept_no_context_takeover: false, accept_max_window_bits: false };

const CLIENT_SCENARIOS: ClientScenario[] = [
  {
    name: 'default-offer',
    title: "its default offer (Autobahn|Testsuite's): client_no_context_takeover is said back, so it drops its context",
    server: 'default',
    offer: {},
    offered: DEFAULT_OFFER,
    response: 'permessage-deflate; client_no_context_takeover',
    big: true,
    closeBy: 'python',
  },
  {
    name: 'bare-offer',
    title: 'a bare offer: both sides keep their context',
    server: 'default',
    offer: BARE,
    offered: 'permessage-deflate',
    response: 'permessage-deflate',
    big: true,
    closeBy: 'node',
  },
  {
    name: 'accept-max-window-bits',
    title: 'client_max_window_bits alone: we limit nothing, so we say nothing',
    server: 'default',
    offer: { accept_no_context_takeover: false },
    offered: 'permessage-deflate; client_max_window_bits',
    response: 'permessage-deflate',
    closeBy: 'python',
  },
  {
    name: 'accept-no-context-takeover',
    title: 'client_no_context_takeover alone',
    server: 'default',
    offer: { accept_max_window_bits: false },
    offered: 'permessage-deflate; client_no_context_takeover',
    response: 'permessage-deflate; client_no_context_takeover',
    closeBy: 'node',
  },
  {
    name: 'request-no-context-takeover',
    title: 'request_no_context_takeover: server_no_context_takeover accepted',
    server: 'default',
    offer: { request_no_context_takeover: true },
    offered: `${DEFAULT_OFFER}; server_no_context_takeover`,
    response: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
    big: true,
    closeBy: 'python',
  },
  ...[9, 10, 11, 12, 13, 14, 15].map((bits): ClientScenario => ({
    name: `request-max-window-bits-${bits}`,
    title: `request_max_window_bits=${bits}: server_max_window_bits=${bits} accepted and kept to`,
    server: 'default',
    offer: { request_max_window_bits: bits },
    offered: `${DEFAULT_OFFER}; server_max_window_bits=${bits}`,
    response: `permessage-deflate; client_no_context_takeover; server_max_window_bits=${bits}`,
    big: bits === 9,
    closeBy: bits % 2 === 0 ? 'node' : 'python',
  })),
  {
    name: 'all-limits',
    title: 'every parameter at once, against a server that limits the client window too',
    server: 'clientMaxWindowBits9',
    offer: { request_no_context_takeover: true, request_max_window_bits: 9 },
    offered: `${DEFAULT_OFFER}; server_no_context_takeover; server_max_window_bits=9`,
    response:
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9',
    closeBy: 'node',
  },
  {
    name: 'server-no-context-takeover',
    title: 'a server with serverNoContextTakeover says server_no_context_takeover unasked',
    server: 'serverNoContextTakeover',
    offer: {},
    offered: DEFAULT_OFFER,
    response: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
    big: true,
    closeBy: 'python',
  },
  {
    name: 'server-max-window-bits-10',
    title: 'a server with serverMaxWindowBits 10 says server_max_window_bits=10 unasked, and keeps to it',
    server: 'serverMaxWindowBits10',
    offer: {},
    offered: DEFAULT_OFFER,
    response: 'permessage-deflate; client_no_context_takeover; server_max_window_bits=10',
    closeBy: 'node',
  },
  {
    name: 'client-max-window-bits-9',
    title: 'a server with clientMaxWindowBits 9 limits the client, which compresses with 9 bits',
    server: 'clientMaxWindowBits9',
    offer: {},
    offered: DEFAULT_OFFER,
    response: 'permessage-deflate; client_no_context_takeover; client_max_window_bits=9',
    big: true,
    closeBy: 'python',
  },
  {
    name: 'client-max-window-bits-9-context-kept',
    title:
      'a server with clientMaxWindowBits 9 and a client that keeps its context: references within 512 bytes across messages',
    server: 'clientMaxWindowBits9',
    offer: { accept_no_context_takeover: false },
    offered: 'permessage-deflate; client_max_window_bits',
    response: 'permessage-deflate; client_max_window_bits=9',
    closeBy: 'node',
  },
  {
    name: 'client-max-window-bits-not-offered',
    title:
      'a server with clientMaxWindowBits 9 must not say client_max_window_bits to a client that did not offer it (§7.1.2.2)',
    server: 'clientMaxWindowBits9',
    offer: { accept_max_window_bits: false },
    offered: 'permessage-deflate; client_no_context_takeover',
    response: 'permessage-deflate; client_no_context_takeover',
    closeBy: 'node',
  },
  {
    name: 'client-no-context-takeover',
    title: 'a server with clientNoContextTakeover tells a client that did not offer it to drop its context',
    server: 'clientNoContextTakeover',
    offer: BARE,
    offered: 'permessage-deflate',
    response: 'permessage-deflate; client_no_context_takeover',
    closeBy: 'python',
  },
  {
    name: 'declined-invalid-value',
    title: 'an offer with an invalid value (server_max_window_bits=16) is declined: no extension, nothing compressed',
    server: 'default',
    offer: { raw: 'permessage-deflate; server_max_window_bits=16' },
    offered: 'permessage-deflate; server_max_window_bits=16',
    response: null,
    closeBy: 'node',
  },
  {
    name: 'deflate-off',
    title: 'a server with perMessageDeflate off declines: no extension, nothing compressed',
    server: 'off',
    offer: {},
    offered: DEFAULT_OFFER,
    response: null,
    big: true,
    closeBy: 'python',
  },
  // RFC 7692 §7.1.2 allows windows of 8 to 15 bits; autobahn allows 9 to 15 and fails the
  // handshake on a response that says 8. Our server says what it is configured to.
  {
    name: 'server-max-window-bits-8',
    title:
      'a server with serverMaxWindowBits 8: autobahn refuses the response (it allows 9-15), and our side closes with 1006',
    server: 'serverMaxWindowBits8',
    offer: {},
    offered: DEFAULT_OFFER,
    response: 'permessage-deflate; client_no_context_takeover; server_max_window_bits=8',
    refused: /illegal extension parameter value '8' for parameter 'server_max_window_bits'/,
    closeBy: 'python',
  },
  {
    name: 'client-max-window-bits-8',
    title: 'a server with clientMaxWindowBits 8: autobahn refuses the response, and our side closes with 1006',
    server: 'clientMaxWindowBits8',
    offer: {},
    offered: DEFAULT_OFFER,
    response: 'permessage-deflate; client_no_context_takeover; client_max_window_bits=8',
    refused: /illegal extension parameter value '8' for parameter 'client_max_window_bits'/,
    closeBy: 'python',
  },
  {
    name: 'request-max-window-bits-8',
    title:
      'with 8 let through (autobahn patched): what we send with server_max_window_bits=8 inflates with a 256-byte window',
    server: 'default',
    offer: { request_max_window_bits: 8 },
    offered: `${DEFAULT_OFFER}; server_max_window_bits=8`,
    response: 'permessage-deflate; client_no_context_takeover; server_max_window_bits=8',
    allow8: true,
    closeBy: 'node',
  },
];

/**
 * The same against a streaming echo (`streamMessages`, each message sent back as a stream, as the
 * echo CLI's --stream does): every message crosses as pieces both ways, compressed as one DEFLATE
 * stream across its fragments. Python closes (a request to close would have to be read whole).
 */
const STREAMED_CLIENT_SCENARIOS: ClientScenario[] = [
  'default-offer',
  'bare-offer',
  'request-no-context-takeover',
  'server-max-window-bits-10',
  'client-max-window-bits-9',
  'deflate-off',
].map((name) => {
  const scenario = CLIENT_SCENARIOS.find((candidate) => candidate.name === name)!;
  return { ...scenario, name: `${name}@stream`, title: `${scenario.title} (streamed echo)`, closeBy: 'python' };
});

interface ServerSideRecord {
  extensions: string;
  messages: number;
  close: [number, string, boolean] | null;
}

describe('interop: autobahn-python client against our server (RFC 7692)', () => {
  const servers = new Map<string, WebSocketServer>();
  const records = new Map<string, ServerSideRecord>();
  const reports = new Map<string, ClientReport>();
  let runError: Error | null = null;
  let child: ChildProcess | undefined;

  before(async () => {
    if (found.python === null) return;
    const ports: Record<string, number> = {};
    for (const [name, perMessageDeflate] of Object.entries(SERVERS)) {
      const server = new WebSocketServer({ perMessageDeflate, pingInterval: 0 });
      server.on('connection', (connection, request) => {
        const id = new URL(request.url, 'http://x').searchParams.get('id') ?? '?';
        const record: ServerSideRecord = { extensions: connection.extensions, messages: 0, close: null };
        records.set(id, record);
        connection.streamMessages = id.endsWith('@stream');
        connection.on('stream', (stream) => {
          record.messages++;
          connection.send(stream, { binary: stream.isBinary });
        });
        connection.on('message', (data, isBinary) => {
          record.messages++;
          if (!isBinary && data.toString() === CLOSE_REQUEST) connection.close(1000, 'bye from node');
          else connection.send(data, { binary: isBinary });
        });
        connection.on('close', (code, reason, wasClean) => (record.close = [code, reason, wasClean]));
      });
      ports[name] = (await server.listen(0, '127.0.0.1')).port;
      servers.set(name, server);
    }
    const plan = [...CLIENT_SCENARIOS, ...STREAMED_CLIENT_SCENARIOS].map((scenario, index) => ({
      name: scenario.name,
      url: `ws://127.0.0.1:${ports[scenario.server]}/?id=${scenario.name}`,
      offer: scenario.offer,
      allow8: scenario.allow8 ?? false,
      big: scenario.big ?? false,
      close_by: scenario.closeBy,
      seed: 1000 + index,
    }));
    try {
      const output = await runPython(
        found.python,
        PEER,
        ['client', JSON.stringify(plan)],
        (process) => (child = process),
      );
      for (const line of output.split('\n').filter((text) => text.startsWith('{'))) {
        const report = JSON.parse(line) as ClientReport;
        reports.set(report.name, report);
      }
      await waitUntil(
        () => [...servers.values()].every((server) => server.clients.size === 0),
        10_000,
        'every connection to end on our side',
      );
    } catch (error) {
      runError = error as Error;
    }
  });

  after(async () => {
    child?.kill('SIGKILL');
    await Promise.all([...servers.values()].map((server) => server.close()));
  });

  it('autobahn-python allows windows of 9 to 15 bits only; zlib can inflate with 8 but not compress with it', (t) => {
    if (skipWithoutPython(t) === null || found.python === null) return;
    const facts = found.facts;
    t.diagnostic(`autobahn ${facts.version}, zlib ${facts.zlib}`);
    assert.deepEqual(facts.window_sizes, [9, 10, 11, 12, 13, 14, 15]);
    assert.equal(facts.default_offer, DEFAULT_OFFER);
    assert.match(facts.offer_8 ?? '', /invalid value 8 for request_max_window_bits/);
    assert.match(facts.accept_8 ?? '', /invalid value 8 for request_max_window_bits/);
    // As a server it fails the handshake (HTTP 400) on an offer of 8, where RFC 7692 §7 says decline.
    assert.match(facts.parse_offer_8 ?? '', /illegal extension parameter value '8'/);
    assert.match(facts.parse_response_8 ?? '', /illegal extension parameter value '8'/);
    // Why our compressor never uses an 8-bit window (it sends Huffman codes only instead).
    assert.match(facts.zlib_compress_8 ?? '', /ValueError/);
    assert.equal(facts.zlib_decompress_8, null);
  });

  for (const scenario of [...CLIENT_SCENARIOS, ...STREAMED_CLIENT_SCENARIOS]) {
    it(`${scenario.name}: ${scenario.title}`, (t) => {
      if (skipWithoutPython(t) === null) return;
      if (runError !== null) throw runError;
      const report = reports.get(scenario.name);
      assert.ok(report !== undefined, `a report for ${scenario.name}`);
      assert.equal(report.error, undefined, report.error);
      const ours = records.get(scenario.name);
      assert.ok(ours !== undefined, 'our server saw the connection');
      assert.equal(report.request_extensions, scenario.offered);
      // Both sides see the same Sec-WebSocket-Extensions.
      const checkExtensions = (): void => {
        assert.equal(report.response_extensions, scenario.response);
        assert.equal(ours.extensions, scenario.response ?? '');
      };

      if (scenario.refused !== undefined) {
        checkExtensions();
        assert.equal(report.opened, false);
        assert.equal(report.close.code, 1006);
        assert.equal(report.close.was_clean, false);
        assert.match(report.close.reason, scenario.refused);
        // autobahn drops the TCP connection: our side sees an abnormal closure, and nothing is left.
        assert.equal(ours.close?.[0], 1006);
        assert.equal(ours.close?.[2], false);
        assert.equal(ours.messages, 0);
        return;
      }

      assert.equal(report.opened, true);
      t.diagnostic(summary(report.sent ?? 0, report.compression));
      // First what a user sees: every message echoed, or the connection failed (and how).
      const closed = `closed with ${report.close.code} "${report.close.reason}"`;
      assert.equal(
        report.mismatch,
        null,
        `${report.mismatch} (after ${report.echoed} echoes, response "${report.response_extensions}", ${closed})`,
      );
      assert.ok(report.sent! >= 300, `hundreds of messages (${report.sent})`);
      assert.equal(report.echoed, report.sent);
      assert.equal(ours.messages, report.sent! + (scenario.closeBy === 'node' ? 1 : 0));

      // A clean 1000 close, whichever side started it, seen by both. Each side reports the close
      // frame it received: we echo the code and reason; autobahn answers with a bare 1000.
      const reason = scenario.closeBy === 'python' ? 'bye from python' : 'bye from node';
      assert.deepEqual(report.close, { was_clean: true, code: 1000, reason });
      assert.deepEqual(ours.close, [1000, scenario.closeBy === 'python' ? reason : '', true]);
      checkExtensions();

      if (scenario.response === null) {
        assert.equal(report.pmce, null);
        assert.equal(report.compression, null);
        return;
      }
      const agreed = agreement(scenario.response);
      // autobahn's state follows the response (not its own offer).
      assert.deepEqual(report.pmce, pmceOf(agreed));
      const compression = report.compression!;
      assert.equal(compression.sent_compressed, report.sent, 'autobahn compresses every message');
      assert.ok(compression.received_compressed > 0, 'our server compressed some echoes');
      // autobahn's compressor (client to server): context kept unless the response says not.
      assert.equal(
        probeReferenced(compression.sent_first, 200),
        !agreed.clientResets && reaches(agreed.clientBits, 200),
        'autobahn refers back into earlier messages exactly when allowed',
      );
      // Ours (server to client): the same, within our window (with 8 bits, no references at all).
      assert.equal(
        probeReferenced(compression.received_first, 1100),
        !agreed.serverResets && agreed.serverBits > 8 && reaches(agreed.serverBits, 1100),
        'our server refers back into earlier messages exactly when allowed',
      );
      assertStrictWindow(compression, agreed.serverBits);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Our client -> autobahn-python server
// ---------------------------------------------------------------------------------------------

interface ServerScenario {
  name: string;
  title: string;
  /** Our client's perMessageDeflate option. */
  client: boolean | PerMessageDeflateOptions;
  /** How autobahn's server answers (see EchoServer.onConnect in the peer). */
  query: string;
  /** What our client offers. */
  offered: string | null;
  /** autobahn's answer, which our client must accept; null: no extension. */
  response: string | null;
  /** autobahn refuses the handshake (HTTP 400). */
  refused?: RegExp;
  /** Our client refuses autobahn's response (and fails the connection). */
  weRefuse?: RegExp;
  /** autobahn's own compressor where it differs from what it said (it may reset or use a smaller window silently). */
  autobahnCompressor?: { resets: boolean; bits: number };
  /** Our compressor where it differs from the response (we offered a limit or a reset, the response did not repeat it). */
  ourCompressor?: { resets: boolean; bits: number };
  big?: boolean;
  closeBy: 'python' | 'node';
}

const OUR_DEFAULT_OFFER = 'permessage-deflate; client_max_window_bits';

const SERVER_SCENARIOS: ServerScenario[] = [
  {
    name: 'accept-default',
    title: 'autobahn accepts our default offer as it is',
    client: true,
    query: '',
    offered: OUR_DEFAULT_OFFER,
    response: 'permessage-deflate',
    big: true,
    closeBy: 'node',
  },
  {
    name: 'accept-request-no-context-takeover',
    title: 'autobahn asks us to drop our context (request_no_context_takeover), and we do',
    client: true,
    query: 'rnct=1',
    offered: OUR_DEFAULT_OFFER,
    response: 'permessage-deflate; client_no_context_takeover',
    big: true,
    closeBy: 'python',
  },
  {
    name: 'accept-request-max-window-bits-9',
    title: 'autobahn limits our window to 9 bits (request_max_window_bits), and we keep to it',
    client: true,
    query: 'rmwb=9',
    offered: OUR_DEFAULT_OFFER,
    response: 'permessage-deflate; client_max_window_bits=9',
    closeBy: 'node',
  },
  {
    name: 'accept-request-max-window-bits-12-no-context-takeover',
    title: 'autobahn limits our window to 12 bits and asks us to drop our context',
    client: true,
    query: 'rmwb=12&rnct=1',
    offered: OUR_DEFAULT_OFFER,
    response: 'permessage-deflate; client_no_context_takeover; client_max_window_bits=12',
    closeBy: 'python',
  },
  {
    name: 'accept-no-context-takeover-silently',
    title: 'autobahn drops its own context without saying so (no_context_takeover)',
    client: true,
    query: 'nct=1',
    offered: OUR_DEFAULT_OFFER,
    response: 'permessage-deflate',
    autobahnCompressor: { resets: true, bits: 15 },
    closeBy: 'node',
  },
  {
    name: 'accept-window-bits-9-silently',
    title: 'autobahn compresses with a 9-bit window without saying so (window_bits)',
    client: true,
    query: 'wb=9',
    offered: OUR_DEFAULT_OFFER,
    response: 'permessage-deflate',
    autobahnCompressor: { resets: false, bits: 9 },
    closeBy: 'python',
  },
  {
    name: 'client-server-no-context-takeover',
    title: 'our client asks for server_no_context_takeover; autobahn accepts',
    client: { serverNoContextTakeover: true },
    query: '',
    offered: 'permessage-deflate; server_no_context_takeover; client_max_window_bits',
    response: 'permessage-deflate; server_no_context_takeover',
    big: true,
    closeBy: 'node',
  },
  {
    name: 'client-server-max-window-bits-10',
    title: 'our client asks for server_max_window_bits=10; autobahn accepts and keeps to it',
    client: { serverMaxWindowBits: 10 },
    query: '',
    offered: 'permessage-deflate; server_max_window_bits=10; client_max_window_bits',
    response: 'permessage-deflate; server_max_window_bits=10',
    closeBy: 'python',
  },
  {
    name: 'client-server-max-window-bits-11-smaller',
    title: 'our client asks for server_max_window_bits=11; autobahn says 11 and uses 9',
    client: { serverMaxWindowBits: 11 },
    query: 'wb=9',
    offered: 'permessage-deflate; server_max_window_bits=11; client_max_window_bits',
    response: 'permessage-deflate; server_max_window_bits=11',
    autobahnCompressor: { resets: false, bits: 9 },
    closeBy: 'node',
  },
  {
    name: 'client-no-context-takeover',
    title:
      'our client offers client_no_context_takeover; autobahn does not say it back, and we drop our context anyway',
    client: { clientNoContextTakeover: true },
    query: '',
    offered: 'permessage-deflate; client_no_context_takeover; client_max_window_bits',
    response: 'permessage-deflate',
    ourCompressor: { resets: true, bits: 15 },
    closeBy: 'python',
  },
  {
    name: 'client-max-window-bits-10',
    title: 'our client offers client_max_window_bits=10; autobahn ignores the value, we keep to it',
    client: { clientMaxWindowBits: 10 },
    query: '',
    offered: 'permessage-deflate; client_max_window_bits=10',
    response: 'permessage-deflate',
    ourCompressor: { resets: false, bits: 10 },
    closeBy: 'node',
  },
  {
    // §7.1.2.2: the server "may either ignore this value or use" it; autobahn ignores it and
    // answers with its own limit, larger than our offer. Our client keeps to its offered 11, which
    // is within both limits, and autobahn's strict inflater checks that it did.
    name: 'client-max-window-bits-11-answered-13',
    title: 'our client offers client_max_window_bits=11, autobahn answers 13: our client keeps to 11',
    client: { clientMaxWindowBits: 11 },
    query: 'rmwb=13',
    offered: 'permessage-deflate; client_max_window_bits=11',
    response: 'permessage-deflate; client_max_window_bits=13',
    ourCompressor: { resets: false, bits: 11 },
    closeBy: 'node',
  },
  {
    name: 'all-limits',
    title: 'every parameter at once, both ways',
    client: { serverNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 9 },
    query: 'rmwb=9&rnct=1',
    offered: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9',
    response:
      'permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_no_context_takeover; client_max_window_bits=9',
    closeBy: 'python',
  },
  {
    name: 'declined',
    title: 'autobahn declines (its accept function returns None): no extension, nothing compressed',
    client: true,
    query: 'accept=none',
    offered: OUR_DEFAULT_OFFER,
    response: null,
    big: true,
    closeBy: 'node',
  },
  {
    name: 'not-offered',
    title: 'our client with perMessageDeflate off offers nothing',
    client: false,
    query: '',
    offered: null,
    response: null,
    closeBy: 'python',
  },
  // autobahn's server fails the handshake with 400 on a window of 8 in an offer (RFC 7692 §7 says
  // to decline an offer it does not accept; 8 is valid there anyway).
  {
    name: 'client-max-window-bits-8',
    title: 'our client offers client_max_window_bits=8: autobahn refuses the handshake with 400',
    client: { clientMaxWindowBits: 8 },
    query: '',
    offered: 'permessage-deflate; client_max_window_bits=8',
    response: null,
    refused: /illegal extension parameter value '8' for parameter 'client_max_window_bits'/,
    closeBy: 'node',
  },
  {
    name: 'server-max-window-bits-8',
    title: 'our client asks for server_max_window_bits=8: autobahn refuses the handshake with 400',
    client: { serverMaxWindowBits: 8 },
    query: '',
    offered: 'permessage-deflate; server_max_window_bits=8; client_max_window_bits',
    response: null,
    refused: /illegal extension parameter value '8' for parameter 'server_max_window_bits'/,
    closeBy: 'node',
  },
  {
    name: 'accept-request-max-window-bits-8',
    title:
      'with 8 let through (autobahn patched): what we send with client_max_window_bits=8 inflates with a 256-byte window',
    client: true,
    query: 'rmwb=8&allow8=1',
    offered: OUR_DEFAULT_OFFER,
    response: 'permessage-deflate; client_max_window_bits=8',
    closeBy: 'python',
  },
];

describe('interop: our client against an autobahn-python server (RFC 7692)', () => {
  let child: ChildProcess | undefined;
  let port = 0;
  const reports = new Map<string, ServerReport>();
  const waiting = new Map<string, (report: ServerReport) => void>();

  before(async () => {
    if (found.python === null) return;
    const serverProcess = spawn(found.python, [PEER, 'server'], {
      stdio: ['ignore', 'pipe', 'inherit'],
      cwd: tmpdir(),
    });
    child = serverProcess;
    port = await whileAlive(
      serverProcess,
      new Promise<number>((resolve, reject) => {
        let pending = '';
        serverProcess.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          pending += chunk;
          let newline: number;
          while ((newline = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, newline);
            pending = pending.slice(newline + 1);
            const listening = /^listening (\d+)$/.exec(line);
            if (listening) resolve(Number(listening[1]));
            else if (line.startsWith('{')) {
              const report = JSON.parse(line) as ServerReport;
              reports.set(report.id ?? '?', report);
              waiting.get(report.id ?? '?')?.(report);
            }
          }
        });
        serverProcess.on('exit', (code) => reject(new Error(`the autobahn server exited with ${code}`)));
      }),
      'the autobahn server to listen',
    );
  });

  after(() => {
    child?.kill('SIGKILL');
  });

  function reportOf(id: string): Promise<ServerReport> {
    const done = reports.get(id);
    if (done !== undefined) return Promise.resolve(done);
    return withTimeout(
      new Promise((resolve) => waiting.set(id, resolve)),
      20_000,
      `the autobahn server's report on ${id}`,
    );
  }

  // Our client streaming both ways (`streamMessages`, and each message sent as three pieces: text cut
  // anywhere, even inside a character) for some of them: one DEFLATE stream across each message's fragments.
  const streamed = ['accept-default', 'client-server-no-context-takeover', 'client-max-window-bits-10', 'declined'];
  const runs = [
    ...SERVER_SCENARIOS.map((scenario) => ({ scenario, streaming: false })),
    ...streamed.map((name) => ({
      scenario: SERVER_SCENARIOS.find((candidate) => candidate.name === name)!,
      streaming: true,
    })),
  ];
  runs.forEach(({ scenario, streaming }, index) => {
    const name = streaming ? `${scenario.name}@stream` : scenario.name;
    it(`${name}: ${scenario.title}${streaming ? ' (streamed both ways)' : ''}`, { timeout: 60_000 }, async (t) => {
      if (skipWithoutPython(t) === null) return;
      const url = `ws://127.0.0.1:${port}/?id=${name}${scenario.query === '' ? '' : `&${scenario.query}`}`;
      const options = {
        perMessageDeflate: scenario.client,
        pingInterval: 0,
        handshakeTimeout: 20_000,
        streamMessages: streaming,
      };

      if (scenario.refused !== undefined) {
        const error = await connect(url, options).then(
          () => null,
          (failure: unknown) => failure,
        );
        assert.ok(error instanceof HandshakeError, `the handshake fails (${String(error)})`);
        assert.equal(error.status, 400);
        const report = await reportOf(name);
        assert.equal(report.offered, scenario.offered);
        assert.equal(report.opened, false);
        assert.match(String((error as Error).message) + ' ' + report.close.reason, scenario.refused);
        return;
      }

      if (scenario.weRefuse !== undefined) {
        const error = await connect(url, options).then(
          () => null,
          (failure: unknown) => failure,
        );
        assert.ok(error instanceof HandshakeError, `the handshake fails (${String(error)})`);
        assert.match(error.message, scenario.weRefuse);
        const report = await reportOf(name);
        assert.equal(report.offered, scenario.offered);
        assert.equal(report.response, scenario.response);
        // autobahn had opened; it sees the TCP connection end without a close handshake.
        assert.equal(report.opened, true);
        assert.equal(report.messages, 0);
        assert.equal(report.close.was_clean, false);
        return;
      }

      const ws: WebSocket = await connect(url, options);
      const replies: ([Buffer, boolean] | null)[] = [];
      let wake = (): void => {};
      ws.on('message', (data, isBinary) => {
        replies.push([data, isBinary]);
        wake();
      });
      ws.on('stream', (stream) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          replies.push([Buffer.concat(chunks), stream.isBinary]);
          wake();
        });
      });
      const closed = new Promise<[number, string, boolean]>((resolve) =>
        ws.once('close', (code, reason, wasClean) => {
          replies.push(null);
          wake();
          resolve([code, reason, wasClean]);
        }),
      );
      const reply = async (): Promise<[Buffer, boolean] | null> => {
        while (replies.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        return replies.shift()!;
      };

      // Our side of the negotiated extensions.
      assert.equal(ws.extensions, scenario.response ?? '');

      const messages = schedule(2000 + index, scenario.big ?? false);
      for (let first = 0; first < messages.length; first += BATCH) {
        const batch = messages.slice(first, first + BATCH);
        for (const message of batch) {
          if (!streaming) ws.send(message.data, { binary: message.binary });
          else ws.send(thirds(Buffer.from(message.data)), { binary: message.binary });
        }
        for (const [offset, message] of batch.entries()) {
          const got = await withTimeout(reply(), 30_000, `the echo of message ${first + offset}`);
          const expected = message.binary ? message.data : Buffer.from(message.data);
          const what = `message ${first + offset} (${message.binary ? 'binary' : 'text'}, ${expected.length} B)`;
          assert.ok(got !== null, `connection closed while waiting for the echo of ${what}`);
          assert.equal(got[1], message.binary, `the echo of ${what} keeps its type`);
          assert.ok(got[0].equals(expected), `the echo of ${what} is byte for byte the same`);
        }
      }

      // A clean 1000 close, whichever side started it, seen by both (each reports the close frame
      // it received: autobahn answers ours with a bare 1000, we echo its code and reason).
      if (scenario.closeBy === 'node') ws.close(1000, 'bye from node');
      else ws.send(CLOSE_REQUEST);
      const reason = scenario.closeBy === 'node' ? 'bye from node' : 'bye from python';
      assert.deepEqual(await withTimeout(closed, 20_000, "our client's 'close'"), [
        1000,
        scenario.closeBy === 'node' ? '' : reason,
        true,
      ]);

      const report = await reportOf(name);
      t.diagnostic(summary(messages.length, report.compression));
      assert.equal(report.offered, scenario.offered);
      assert.equal(report.opened, true);
      assert.equal(report.response ?? null, scenario.response);
      assert.equal(report.messages, messages.length + (scenario.closeBy === 'python' ? 1 : 0));
      assert.deepEqual(report.close, { was_clean: true, code: 1000, reason });

      if (scenario.response === null) {
        assert.equal(report.pmce, null);
        assert.equal(report.compression, null);
        return;
      }
      const agreed = agreement(scenario.response);
      const theirs = scenario.autobahnCompressor ?? { resets: agreed.serverResets, bits: agreed.serverBits };
      const ourCompressor = scenario.ourCompressor ?? { resets: agreed.clientResets, bits: agreed.clientBits };
      // autobahn's state: what it said for our direction, what it does for its own.
      assert.deepEqual(report.pmce, {
        server_no_context_takeover: theirs.resets,
        client_no_context_takeover: agreed.clientResets,
        server_max_window_bits: theirs.bits,
        client_max_window_bits: agreed.clientBits,
      });
      const compression = report.compression!;
      assert.ok(compression.received_compressed > 0, 'our client compressed some messages');
      assert.equal(compression.sent_compressed, messages.length, 'autobahn compresses every echo');
      assert.equal(
        probeReferenced(compression.sent_first, 200),
        !theirs.resets && reaches(theirs.bits, 200),
        'autobahn refers back into earlier messages exactly when it keeps its context',
      );
      assert.equal(
        probeReferenced(compression.received_first, 1100),
        !ourCompressor.resets && ourCompressor.bits > 8 && reaches(ourCompressor.bits, 1100),
        'our client refers back into earlier messages exactly when allowed',
      );
      assertStrictWindow(compression, agreed.clientBits);
    });
  });
});

/** A message's bytes in three pieces (a streamed send's fragments), cut anywhere. */
function thirds(bytes: Buffer): Buffer[] {
  const third = Math.ceil(bytes.length / 3);
  return [bytes.subarray(0, third), bytes.subarray(third, 2 * third), bytes.subarray(2 * third)];
}
