/**
 * Helpers for the permessage-deflate (RFC 7692) tests: payload builders on node:zlib, a strict
 * independent checker of what a compressor put on the wire, a raw client and a hostile raw server
 * on node:net (their own HTTP and frame code, independent of src/), servers and clients of the
 * library with a frame trace, and data generators.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { constants as zc, deflateRawSync, inflateRawSync } from 'node:zlib';
import type { ClientOptions } from '../../src/client.js';
import { openClient } from '../../src/websocket.js';
import { WebSocketServer, type ServerOptions } from '../../src/server.js';
import type { TracedFrame } from '../../src/trace.js';
import type { WebSocket } from '../../src/websocket.js';

import { rawFrame } from './core.js';
import { KiB, MiB, waitUntil, withTimeout } from './net.js';

export { KiB, MiB, delay, waitUntil, withTimeout } from './net.js';
/** RFC 7692 §7.2.1: the bytes a sync flush ends with, removed by the sender. */
export const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

// ---------------------------------------------------------------------------------------------
// Compressed payloads, built with node:zlib directly
// ---------------------------------------------------------------------------------------------

/** RFC 7692 §7.2.1: DEFLATE with a sync flush, the trailing 00 00 ff ff removed. */
export function deflatePayload(data: Uint8Array, options: { windowBits?: number; level?: number } = {}): Buffer {
  const out = deflateRawSync(data, { finishFlush: zc.Z_SYNC_FLUSH, windowBits: options.windowBits ?? 15, level: options.level ?? 6 });
  assertTail(out);
  return out.subarray(0, out.length - 4);
}

function assertTail(out: Buffer): void {
  if (out.length < 4 || !out.subarray(out.length - 4).equals(TAIL)) throw new Error('zlib output does not end with 00 00 ff ff');
}

/**
 * Inflate what a peer sent with a strictly sized window: `windowBits` exactly (8 included), and
 * tiny output chunks, so a back-reference further than the window (plus 64 bytes at most) fails
 * with "invalid distance too far back" instead of being served from zlib's output buffer.
 * `messages` are compressed message payloads (tails removed); with context takeover they form one
 * stream, without it each starts from an empty window. Returns the plaintexts, concatenated.
 */
export function strictInflate(messages: readonly Buffer[], windowBits: number, contextTakeover: boolean): Buffer {
  const opts = { windowBits, chunkSize: 64, finishFlush: zc.Z_SYNC_FLUSH };
  if (messages.length === 0) return Buffer.alloc(0);
  if (!contextTakeover) return Buffer.concat(messages.map((m) => inflateRawSync(Buffer.concat([m, TAIL]), opts)));
  return inflateRawSync(Buffer.concat(messages.flatMap((m) => [m, TAIL])), opts);
}

/**
 * A deflate bomb: `total` bytes of zeros (a multiple of 1 MiB) as one compressed message payload,
 * built without a `total`-byte buffer. The first MiB is compressed normally; every further MiB is
 * compressed against a dictionary of zeros, so its back-references land in the zeros already
 * output, and the segments (each ending in a byte-aligned sync flush) form one valid stream.
 */
export function zeroBomb(total: number): Buffer {
  const block = Buffer.alloc(MiB);
  const first = deflateRawSync(block, { level: 9, finishFlush: zc.Z_SYNC_FLUSH });
  const next = deflateRawSync(block, { level: 9, finishFlush: zc.Z_SYNC_FLUSH, dictionary: Buffer.alloc(32 * KiB) });
  const parts = [first];
  for (let done = MiB; done < total; done += MiB) parts.push(next);
  const bomb = Buffer.concat(parts);
  assertTail(bomb);
  return bomb.subarray(0, bomb.length - 4);
}

// ---------------------------------------------------------------------------------------------
// Frames, encoded and decoded independently of src/
// ---------------------------------------------------------------------------------------------

export interface FrameSpec {
  opcode: number;
  payload?: Uint8Array | string;
  fin?: boolean;
  rsv1?: boolean;
  rsv2?: boolean;
  rsv3?: boolean;
  /** Default true (a client's frame). */
  masked?: boolean;
}

/** One frame, by hand (spec-tests/helpers/core.ts); a client's frames get a fresh random key. */
export function encode(spec: FrameSpec): Buffer {
  const { masked, ...fields } = spec;
  return rawFrame({ ...fields, mask: (masked ?? true) ? randomBytes(4) : null });
}

export interface WireFrame {
  fin: boolean;
  rsv1: boolean;
  rsv2: boolean;
  rsv3: boolean;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/** An incremental frame decoder (unmasks masked frames). */
export class FrameDecoder {
  private buffer: Buffer = Buffer.alloc(0);
  readonly frames: WireFrame[] = [];

  push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      const masked = (b[1]! & 0x80) !== 0;
      let n = b[1]! & 0x7f;
      let at = 2;
      if (n === 126) {
        if (b.length < 4) return;
        n = b.readUInt16BE(2);
        at = 4;
      } else if (n === 127) {
        if (b.length < 10) return;
        n = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      const keyAt = at;
      if (masked) at += 4;
      if (b.length < at + n) return;
      const payload = Buffer.from(b.subarray(at, at + n));
      if (masked) for (let i = 0; i < n; i++) payload[i]! ^= b[keyAt + (i & 3)]!;
      this.frames.push({
        fin: (b[0]! & 0x80) !== 0,
        rsv1: (b[0]! & 0x40) !== 0,
        rsv2: (b[0]! & 0x20) !== 0,
        rsv3: (b[0]! & 0x10) !== 0,
        opcode: b[0]! & 0x0f,
        masked,
        payload,
      });
      this.buffer = b.subarray(at + n);
    }
  }
}

export function closeCodeOf(frame: WireFrame): number | undefined {
  return frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : undefined;
}

// ---------------------------------------------------------------------------------------------
// HTTP heads by hand
// ---------------------------------------------------------------------------------------------

export interface Head {
  startLine: string;
  status: number;
  /** Lower-case names, repeated fields kept. */
  headers: Map<string, string[]>;
}

function parseHead(text: string): Head {
  const lines = text.split('\r\n');
  const startLine = lines[0]!;
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers.set(name, [...(headers.get(name) ?? []), value]);
  }
  const match = /^HTTP\/1\.1 (\d{3})/.exec(startLine);
  return { startLine, status: match === null ? 0 : Number(match[1]), headers };
}

function acceptFor(key: string): string {
  return createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
}

// ---------------------------------------------------------------------------------------------
// The raw client
// ---------------------------------------------------------------------------------------------

const rawClients = new Set<RawClient>();

export class RawClient {
  readonly decoder = new FrameDecoder();
  head: Head | null = null;
  ended = false;
  closed = false;
  private headBuffer: Buffer = Buffer.alloc(0);
  private readonly closedPromise: Promise<void>;

  private constructor(readonly socket: Socket) {
    rawClients.add(this);
    socket.on('error', () => {});
    socket.on('end', () => {
      this.ended = true;
      // A raw client ends its side too once the server ended (after its close frame).
      if (!socket.destroyed) socket.end();
    });
    this.closedPromise = new Promise((resolve) =>
      socket.on('close', () => {
        this.closed = true;
        rawClients.delete(this);
        resolve();
      }),
    );
    socket.on('data', (chunk: Buffer) => {
      if (this.head !== null) {
        this.decoder.push(chunk);
        return;
      }
      this.headBuffer = Buffer.concat([this.headBuffer, chunk]);
      const end = this.headBuffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      this.head = parseHead(this.headBuffer.subarray(0, end).toString('latin1'));
      const rest = this.headBuffer.subarray(end + 4);
      this.headBuffer = Buffer.alloc(0);
      if (rest.length > 0) this.decoder.push(rest);
    });
  }

  /** Connect and send a handshake with these extra header lines ("Name: value"). Resolves once the response head is in. */
  static async open(port: number, headerLines: readonly string[] = []): Promise<RawClient> {
    const socket = netConnect({ host: '127.0.0.1', port });
    const client = new RawClient(socket);
    const key = randomBytes(16).toString('base64');
    const request = [
      'GET / HTTP/1.1',
      `Host: 127.0.0.1:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${key}`,
      'Sec-WebSocket-Version: 13',
      ...headerLines,
    ];
    socket.write(request.join('\r\n') + '\r\n\r\n');
    await withTimeout(waitUntil(() => client.head !== null || client.closed, 2000, 'the response head'), 2500, 'the response head');
    if (client.head === null) throw new Error('connection closed before a response head');
    if (client.head.status === 101) {
      const accept = client.head.headers.get('sec-websocket-accept')?.[0];
      if (accept !== acceptFor(key)) throw new Error('bad Sec-WebSocket-Accept from the server under test');
    }
    return client;
  }

  header(name: string): string | undefined {
    return this.head?.headers.get(name.toLowerCase())?.join(', ');
  }

  send(...frames: FrameSpec[]): void {
    this.socket.write(Buffer.concat(frames.map(encode)));
  }

  get frames(): WireFrame[] {
    return this.decoder.frames;
  }

  /** The server's close frame, once it arrived. */
  closeFrame(): WireFrame | undefined {
    return this.frames.find((f) => f.opcode === OP.CLOSE);
  }

  async waitForClose(ms = 3000): Promise<number | undefined> {
    await waitUntil(() => this.closeFrame() !== undefined || this.closed, ms, 'a close frame from the server');
    const frame = this.closeFrame();
    if (frame === undefined) throw new Error('the server closed TCP without a close frame');
    return closeCodeOf(frame);
  }

  async waitForFrames(count: number, ms = 3000): Promise<WireFrame[]> {
    await waitUntil(() => this.frames.length >= count || this.closed, ms, `${count} frames from the server`);
    return this.frames;
  }

  whenClosed(): Promise<void> {
    return this.closedPromise;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function destroyRawClients(): void {
  for (const client of rawClients) client.destroy();
}

// ---------------------------------------------------------------------------------------------
// A hostile raw server: answers the handshake with whatever a test wants
// ---------------------------------------------------------------------------------------------

export interface HostileServer {
  port: number;
  url: string;
  /** The request heads received. */
  requests: Head[];
  close(): Promise<void>;
}

/**
 * `answer` gives the extra header lines of the 101 (after Upgrade, Connection and a correct
 * Sec-WebSocket-Accept); `then` runs on the socket after the 101 is written.
 */
export async function hostileServer(answer: (request: Head) => string[], then?: (socket: Socket, request: Head) => void): Promise<HostileServer> {
  const sockets = new Set<Socket>();
  const requests: Head[] = [];
  const server: NetServer = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffer = Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      const request = parseHead(buffer.subarray(0, end).toString('latin1'));
      requests.push(request);
      const key = request.headers.get('sec-websocket-key')?.[0] ?? '';
      const lines = ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${acceptFor(key)}`, ...answer(request)];
      socket.write(lines.join('\r\n') + '\r\n\r\n');
      // Keep reading (and discarding) so the client's writes never block.
      socket.on('data', () => {});
      then?.(socket, request);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `ws://127.0.0.1:${port}/`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// The library under test: an echo server, traced clients
// ---------------------------------------------------------------------------------------------

export interface TestServer {
  wss: WebSocketServer;
  port: number;
  url: string;
  /** Server-side connections, in order of arrival. */
  connections: WebSocket[];
  close(): Promise<void>;
}

/** A server on 127.0.0.1 with an ephemeral port. `onConnection` defaults to an echo. */
export async function startServer(options: ServerOptions, onConnection: (ws: WebSocket) => void = echo): Promise<TestServer> {
  const wss = new WebSocketServer({ pingInterval: 0, closeTimeout: 1000, ...options });
  const connections: WebSocket[] = [];
  wss.on('connection', (ws) => {
    connections.push(ws);
    ws.on('error', () => {});
    onConnection(ws);
  });
  wss.on('error', () => {});
  const address = await wss.listen(0, '127.0.0.1');
  return {
    wss,
    port: address.port,
    url: `ws://127.0.0.1:${address.port}/`,
    connections,
    close: async () => {
      // Raw clients of the test go first: the server need not wait for them to answer its close.
      destroyRawClients();
      await wss.close(500);
    },
  };
}

export function echo(ws: WebSocket): void {
  ws.on('message', (data, isBinary) => {
    if (ws.readyState === 1) ws.send(data, { binary: isBinary });
  });
}

export interface CloseInfo {
  code: number;
  reason: string;
  wasClean: boolean;
}

export interface Received {
  data: Buffer;
  isBinary: boolean;
}

export interface TracedClient {
  ws: WebSocket;
  /** Every frame in and out, as the `trace` option reports them (payloads copied). */
  frames: TracedFrame[];
  /** Every message received, from the very first (listeners attached before the handshake). */
  messages: Received[];
  /** The 'close' event. */
  closed: Promise<CloseInfo>;
}

/** A client of the library, traced, with messages and the close recorded from the start. */
export async function tracedClient(url: string, options: ClientOptions = {}): Promise<TracedClient> {
  const frames: TracedFrame[] = [];
  const messages: Received[] = [];
  const ws = openClient(url, {
    pingInterval: 0,
    closeTimeout: 1000,
    ...options,
    trace: (frame) => frames.push({ ...frame, payload: Buffer.from(frame.payload) }),
  });
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => messages.push({ data: Buffer.from(data), isBinary }));
  const closed = new Promise<CloseInfo>((resolve) => ws.once('close', (code, reason, wasClean) => resolve({ code, reason, wasClean })));
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      void closed.then(({ code }) => reject(new Error(`closed (${code}) before opening`)));
    }),
    3000,
    'the client to open',
  );
  return { ws, frames, messages, closed };
}

/** Wait until `client` has received `n` messages in all; reject if it closes first or after `ms`. */
export async function received(client: TracedClient, n: number, ms = 5000): Promise<Received[]> {
  let closed: CloseInfo | null = null;
  void client.closed.then((info) => (closed = info));
  await waitUntil(() => client.messages.length >= n || closed !== null, ms, `${n} messages (got ${client.messages.length})`);
  if (client.messages.length < n) throw new Error(`connection closed (${closed!.code}) after ${client.messages.length} of ${n} messages`);
  return client.messages.slice(0, n);
}

/** Resolve with the next `n` messages of `ws`; reject if it closes first or after `ms`. */
export function nextMessages(ws: WebSocket, n: number, ms = 5000): Promise<Received[]> {
  const got: Received[] = [];
  if (n === 0) return Promise.resolve(got);
  return withTimeout(
    new Promise<Received[]>((resolve, reject) => {
      const onMessage = (data: Buffer, isBinary: boolean): void => {
        got.push({ data: Buffer.from(data), isBinary });
        if (got.length === n) {
          cleanup();
          resolve(got);
        }
      };
      const onClose = (code: number): void => {
        cleanup();
        reject(new Error(`connection closed (${code}) after ${got.length} of ${n} messages`));
      };
      const cleanup = (): void => {
        ws.off('message', onMessage);
        ws.off('close', onClose);
      };
      ws.on('message', onMessage);
      ws.on('close', onClose);
    }),
    ms,
    `${n} messages`,
  );
}

export function closeEvent(ws: WebSocket, ms = 3000): Promise<CloseInfo> {
  if (ws.readyState === 3) return Promise.reject(new Error('already closed'));
  return withTimeout(
    new Promise((resolve) => ws.once('close', (code, reason, wasClean) => resolve({ code, reason, wasClean }))),
    ms,
    'the close event',
  );
}

// ---------------------------------------------------------------------------------------------
// Wire checks on a trace
// ---------------------------------------------------------------------------------------------

export interface WireMessage {
  opcode: number;
  compressed: boolean;
  frames: TracedFrame[];
  /** The payload as sent (compressed bytes for a compressed message). */
  payload: Buffer;
}

/** Group traced data frames of one direction into messages; control frames are returned apart. */
export function wireMessages(frames: readonly TracedFrame[], direction: 'in' | 'out'): { messages: WireMessage[]; controls: TracedFrame[] } {
  const messages: WireMessage[] = [];
  const controls: TracedFrame[] = [];
  let open: TracedFrame[] | null = null;
  for (const frame of frames) {
    if (frame.direction !== direction) continue;
    if ((frame.opcode & 0x8) !== 0) {
      controls.push(frame);
      continue;
    }
    if (frame.opcode !== OP.CONT) open = [];
    if (open === null) throw new Error('continuation frame with no message open in the trace');
    open.push(frame);
    if (frame.fin) {
      messages.push({ opcode: open[0]!.opcode, compressed: open[0]!.rsv1, frames: open, payload: Buffer.concat(open.map((f) => f.payload)) });
      open = null;
    }
  }
  return { messages, controls };
}

/** Negotiated parameters as read back from a Sec-WebSocket-Extensions response value. */
export function negotiated(extensions: string): { serverNoContextTakeover: boolean; clientNoContextTakeover: boolean; serverBits: number; clientBits: number } {
  const params = new Map<string, string | true>();
  const parts = extensions.split(';').map((s) => s.trim());
  if (parts[0] !== 'permessage-deflate') throw new Error(`not permessage-deflate: ${extensions}`);
  for (const part of parts.slice(1)) {
    const [name, value] = part.split('=').map((s) => s.trim());
    params.set(name!, value === undefined ? true : value.replace(/^"|"$/g, ''));
  }
  const bits = (name: string): number => (params.has(name) ? Number(params.get(name)) : 15);
  return {
    serverNoContextTakeover: params.has('server_no_context_takeover'),
    clientNoContextTakeover: params.has('client_no_context_takeover'),
    serverBits: bits('server_max_window_bits'),
    clientBits: bits('client_max_window_bits'),
  };
}

// ---------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------

/** A small deterministic PRNG (xorshift32), for reproducible content. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

export function randomBuffer(n: number, rng: () => number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) out.writeUInt32LE(rng(), i);
  for (; i < n; i++) out[i] = rng() & 0xff;
  return out;
}

const WORDS = ['the', 'quick', 'brown', 'fox', 'jumps', 'over', 'lazy', 'dog', 'héllo', 'wörld', '€uro', '日本語', 'κόσμε', '😀', 'deflate', 'window', 'frame'];

/** Cut valid UTF-8 to at most n bytes on a character boundary, then pad with ASCII to exactly n. */
function toExactUtf8(text: Buffer, n: number): Buffer {
  let end = Math.min(n, text.length);
  while (end > 0 && end < text.length && (text[end]! & 0xc0) === 0x80) end--;
  const out = Buffer.alloc(n, 0x61);
  text.copy(out, 0, 0, end);
  return out;
}

/**
 * Compressible content of exactly n bytes, valid UTF-8: words, plus blocks of random letters
 * repeated at distances from ~200 B to ~20 KiB, so every window size matters.
 */
export function compressible(n: number, rng: () => number): Buffer {
  const letters = (size: number): string => {
    let s = '';
    for (let i = 0; i < size; i++) s += String.fromCharCode(97 + (rng() % 26));
    return s;
  };
  const blocks = [200, 700, 3000, 20000].map(letters);
  const parts: string[] = [];
  let bytes = 0;
  while (bytes < n) {
    const pick = rng() % 6;
    const piece = pick < 4 ? blocks[pick]! : WORDS[rng() % WORDS.length]! + ' ';
    parts.push(piece);
    bytes += Buffer.byteLength(piece);
  }
  return toExactUtf8(Buffer.from(parts.join('')), n);
}

/** Random valid UTF-8 of exactly n bytes (1- to 4-byte characters, no surrogates). */
export function randomText(n: number, rng: () => number): Buffer {
  const out = Buffer.alloc(n);
  let at = 0;
  while (at < n) {
    const room = n - at;
    const size = Math.min(room, 1 + (rng() % 4));
    let cp: number;
    if (size === 1) cp = rng() % 0x80;
    else if (size === 2) cp = 0x80 + (rng() % (0x800 - 0x80));
    else if (size === 3) {
      cp = 0x800 + (rng() % (0x10000 - 0x800));
      if (cp >= 0xd800 && cp <= 0xdfff) cp -= 0x800;
    } else cp = 0x10000 + (rng() % (0x110000 - 0x10000));
    at += out.write(String.fromCodePoint(cp), at);
  }
  return out;
}
