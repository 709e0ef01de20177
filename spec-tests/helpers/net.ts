/**
 * Helpers for the server conformance tests: a raw WebSocket client on node:net that writes exactly
 * the bytes a test wants and decodes what the server sends, plus small utilities to run servers.
 *
 * The raw client does its HTTP by hand (its own head parser, not src/http1.ts), masks its frames
 * with encodeFrame and reads the server's frames with a client-role Receiver, recording every event.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { CloseCode, Opcode } from '../../src/constants.js';
import type { ProtocolError } from '../../src/errors.js';
import { encodeFrame } from '../../src/frame.js';
import { Receiver, type Frame } from '../../src/receiver.js';
import { WebSocketServer, type ServerOptions, type UpgradeRequest } from '../../src/server.js';
import type { WebSocket } from '../../src/websocket.js';
import type { ClientOptions } from '../../src/client.js';
import { connect } from '../../src/websocket.js';

/** The example key of RFC 6455 §1.3 / §4.2.2 and the accept value it must produce. */
export const RFC_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
export const RFC_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

export const KiB = 1024;
export const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Small async utilities
// ---------------------------------------------------------------------------------------------

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolve with `promise`, or reject after `ms` with a message naming what was awaited. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Poll `predicate` every few ms until true; reject after `ms`. For state not exposed as events. */
export async function waitUntil(predicate: () => boolean, ms: number, what: string, every = 5): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(every);
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP requests, by hand
// ---------------------------------------------------------------------------------------------

export interface HandshakeSpec {
  method?: string;
  path?: string;
  /** The version in the request line. Default 'HTTP/1.1'. */
  httpVersion?: string;
  key?: string;
  /**
   * Headers, in order, replacing the defaults of the same name (case-insensitive); a null value
   * removes a default header. Defaults: Host, Upgrade, Connection, Sec-WebSocket-Key, Sec-WebSocket-Version.
   */
  headers?: Record<string, string | null>;
  /** Sec-WebSocket-Protocol value(s). */
  protocols?: string[];
}

/** A client opening handshake (RFC 6455 §4.1), as bytes. */
export function handshakeRequest(spec: HandshakeSpec = {}, host = '127.0.0.1'): Buffer {
  const defaults: [string, string][] = [
    ['Host', host],
    ['Upgrade', 'websocket'],
    ['Connection', 'Upgrade'],
    ['Sec-WebSocket-Key', spec.key ?? RFC_KEY],
    ['Sec-WebSocket-Version', '13'],
  ];
  if (spec.protocols !== undefined) defaults.push(['Sec-WebSocket-Protocol', spec.protocols.join(', ')]);
  const overrides = spec.headers ?? {};
  const lower = new Map(Object.entries(overrides).map(([name, value]) => [name.toLowerCase(), { name, value }]));
  const lines = [`${spec.method ?? 'GET'} ${spec.path ?? '/'} ${spec.httpVersion ?? 'HTTP/1.1'}`];
  for (const [name, value] of defaults) {
    const override = lower.get(name.toLowerCase());
    if (override === undefined) lines.push(`${name}: ${value}`);
    else {
      if (override.value !== null) lines.push(`${override.name}: ${override.value}`);
      lower.delete(name.toLowerCase());
    }
  }
  for (const { name, value } of lower.values()) if (value !== null) lines.push(`${name}: ${value}`);
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
}

export interface HttpResponse {
  statusLine: string;
  httpVersion: string;
  status: number;
  statusText: string;
  /** Lower-case names; repeated headers kept in order. */
  headers: Map<string, string[]>;
  /** The raw head, up to and including the blank line. */
  rawHead: string;
  /** The body (for a non-101 response: as much as arrived before the socket ended, or Content-Length bytes). */
  body: Buffer;
}

export function header(response: HttpResponse, name: string): string | undefined {
  const values = response.headers.get(name.toLowerCase());
  return values === undefined ? undefined : values.join(', ');
}

/** Parse a response head (independently of src/http1.ts). Throws on anything malformed. */
function parseResponse(head: string): Omit<HttpResponse, 'body'> {
  const lines = head.split('\r\n');
  const statusLine = lines[0]!;
  const match = /^(HTTP\/\d\.\d) (\d{3}) ?(.*)$/.exec(statusLine);
  if (match === null) throw new Error(`malformed status line: ${JSON.stringify(statusLine)}`);
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`malformed header line: ${JSON.stringify(line)}`);
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    const values = headers.get(name);
    if (values === undefined) headers.set(name, [value]);
    else values.push(value);
  }
  return { statusLine, httpVersion: match[1]!, status: Number(match[2]), statusText: match[3]!, headers, rawHead: head + '\r\n\r\n' };
}

// ---------------------------------------------------------------------------------------------
// The raw client
// ---------------------------------------------------------------------------------------------

export interface RawFrame {
  opcode: number;
  payload?: Uint8Array | string;
  /** Default true. */
  fin?: boolean;
  rsv1?: boolean;
  /** The masking key; default a fresh random one. null sends the frame unmasked. */
  maskKey?: Uint8Array | null;
}

/** Encode a frame as a client sends it: masked with a random key unless told otherwise. */
export function clientFrame(frame: RawFrame): Buffer {
  const payload = typeof frame.payload === 'string' ? Buffer.from(frame.payload) : frame.payload ?? Buffer.alloc(0);
  return encodeFrame({
    opcode: frame.opcode,
    payload,
    fin: frame.fin ?? true,
    rsv1: frame.rsv1 ?? false,
    maskKey: frame.maskKey === undefined ? randomBytes(4) : frame.maskKey,
  });
}

/** A close frame payload: code (if any) then the reason. */
export function closePayload(code?: number, reason = ''): Buffer {
  if (code === undefined) return Buffer.alloc(0);
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2);
  return payload;
}

export interface RawClientOptions {
  host?: string;
  /** Answer every ping with a pong carrying its payload. Default false: a raw client does only what it is told. */
  autoPong?: boolean;
  /** End our side of TCP as soon as the server ends its side. Default true. */
  endOnPeerEnd?: boolean;
  /** Keep a copy of every frame received (opcode, fin, payload). Default false. */
  recordFrames?: boolean;
}

export interface ReceivedMessage {
  data: Buffer;
  isBinary: boolean;
}

const openClients = new Set<RawClient>();

/** Destroy every raw client still open (for `after`/`afterEach` hooks). */
export function destroyRawClients(): void {
  for (const client of openClients) client.destroy();
}

export class RawClient extends EventEmitter {
  readonly socket: Socket;
  /** The response to our request, once its head has arrived. */
  response: HttpResponse | null = null;
  /** True once a 101 was received: later bytes are frames. */
  upgraded = false;

  readonly messages: ReceivedMessage[] = [];
  readonly pings: Buffer[] = [];
  readonly pongs: Buffer[] = [];
  readonly frames: { opcode: number; fin: boolean; rsv1: boolean; masked: boolean; payload: Buffer }[] = [];
  /** The close frame received, if any. */
  closeFrame: { code: number; reason: string; at: number } | null = null;
  /** Protocol errors found in the server's frames (a correct server causes none). */
  readonly protocolErrors: ProtocolError[] = [];
  /** Frame bytes received after the handshake. */
  bytesReceived = 0;
  /** Bytes received after a close frame (RFC 6455 §5.5.1: the server must send nothing after it). */
  bytesAfterClose = 0;

  /** The server ended its side of TCP (we saw EOF). */
  peerEnded = false;
  /** When the server's FIN arrived. */
  peerEndedAt = 0;
  /** We ended (or destroyed) our side. */
  weEnded = false;
  /** The server's FIN arrived before we ended or destroyed our side. */
  peerEndedFirst = false;
  /** The socket is fully closed. */
  closed = false;
  closedAt = 0;
  socketError: Error | null = null;

  private headBuffer = Buffer.alloc(0);
  private readonly receiver: Receiver;
  private readonly options: RawClientOptions;

  private constructor(socket: Socket, options: RawClientOptions) {
    super();
    this.setMaxListeners(0);
    this.socket = socket;
    this.options = options;
    this.receiver = new Receiver(
      { role: 'client', maxMessageSize: 1024 * MiB },
      {
        onMessage: (data, isBinary) => this.messages.push({ data: Buffer.from(data), isBinary }),
        onPing: (data) => {
          this.pings.push(Buffer.from(data));
          if (this.options.autoPong === true && this.closeFrame === null && !this.weEnded) {
            this.sendFrame({ opcode: Opcode.Pong, payload: data });
          }
        },
        onPong: (data) => this.pongs.push(Buffer.from(data)),
        onClose: (code, reason) => {
          this.closeFrame = { code, reason, at: Date.now() };
        },
        onError: (error) => this.protocolErrors.push(error),
        ...(options.recordFrames === true
          ? {
              onFrame: (frame: Frame) =>
                this.frames.push({ opcode: frame.opcode, fin: frame.fin, rsv1: frame.rsv1, masked: frame.masked, payload: Buffer.from(frame.payload) }),
            }
          : {}),
      },
    );
    openClients.add(this);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => {
      this.peerEnded = true;
      this.peerEndedAt = Date.now();
      if (!this.weEnded) this.peerEndedFirst = true;
      if (this.options.endOnPeerEnd !== false) this.end();
      this.emit('progress');
    });
    socket.on('error', (error) => {
      this.socketError ??= error;
      this.emit('progress');
    });
    socket.on('close', () => {
      this.closed = true;
      this.closedAt = Date.now();
      openClients.delete(this);
      this.emit('progress');
    });
  }

  /** Open a TCP connection (no handshake yet). */
  static async open(port: number, options: RawClientOptions = {}): Promise<RawClient> {
    const host = options.host ?? '127.0.0.1';
    const socket = netConnect({ port, host, allowHalfOpen: true });
    socket.setNoDelay(true);
    const client = new RawClient(socket, options);
    await withTimeout(once(socket, 'connect'), 2000, `TCP connect to ${host}:${port}`);
    return client;
  }

  /** Open a connection and complete a handshake; asserts the 101. `extra` bytes go in the same write as the request. */
  static async connect(port: number, spec: HandshakeSpec = {}, options: RawClientOptions = {}, extra?: Buffer): Promise<RawClient> {
    const client = await RawClient.open(port, options);
    const host = options.host ?? '127.0.0.1';
    const request = handshakeRequest(spec, host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
    client.write(extra === undefined ? request : Buffer.concat([request, extra]));
    const response = await client.readResponse();
    assert.equal(response.status, 101, `handshake refused: ${response.statusLine} ${response.body.toString()}`);
    return client;
  }

  private onData(chunk: Buffer): void {
    if (this.response === null) {
      this.headBuffer = Buffer.concat([this.headBuffer, chunk]);
      const end = this.headBuffer.indexOf('\r\n\r\n');
      if (end === -1) {
        this.emit('progress');
        return;
      }
      const head = this.headBuffer.subarray(0, end).toString('latin1');
      const rest = this.headBuffer.subarray(end + 4);
      this.headBuffer = Buffer.alloc(0);
      try {
        this.response = { ...parseResponse(head), body: Buffer.alloc(0) };
      } catch (error) {
        this.socketError = error as Error;
        this.emit('progress');
        return;
      }
      if (this.response.status === 101) {
        this.upgraded = true;
        if (rest.length > 0) this.onFrames(rest);
      } else {
        this.response.body = Buffer.from(rest);
      }
    } else if (this.upgraded) {
      this.onFrames(chunk);
    } else {
      this.response.body = Buffer.concat([this.response.body, chunk]);
    }
    this.emit('progress');
  }

  private onFrames(chunk: Buffer): void {
    this.bytesReceived += chunk.length;
    if (this.closeFrame !== null) {
      this.bytesAfterClose += chunk.length;
      return;
    }
    this.receiver.push(Buffer.from(chunk));
  }

  /** Wait until `predicate` holds (checked after every socket event); reject after `ms`. */
  until(predicate: () => boolean, ms = 3000, what = 'a condition'): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!predicate()) return;
        cleanup();
        resolve();
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${ms} ms waiting for ${what} (${this.describe()})`));
      }, ms);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('progress', check);
      };
      this.on('progress', check);
    });
  }

  /** A one-line summary of the state, for failure messages. */
  describe(): string {
    return (
      `response=${this.response?.statusLine ?? 'none'} messages=${this.messages.length} pings=${this.pings.length} ` +
      `pongs=${this.pongs.length} close=${this.closeFrame === null ? 'none' : `${this.closeFrame.code} "${this.closeFrame.reason}"`} ` +
      `errors=${this.protocolErrors.map((e) => e.message).join('; ') || 'none'} peerEnded=${this.peerEnded} closed=${this.closed}`
    );
  }

  /** The response head (and, for a refusal, its body as far as Content-Length or EOF). */
  async readResponse(ms = 3000): Promise<HttpResponse> {
    await this.until(() => this.response !== null || this.closed || this.socketError !== null, ms, 'the response head');
    const response = this.response;
    if (response === null) throw new Error(`no response: ${this.socketError?.message ?? 'connection closed'} (${this.describe()})`);
    if (response.status !== 101) {
      const length = Number(header(response, 'content-length') ?? NaN);
      await this.until(() => (Number.isFinite(length) && response.body.length >= length) || this.peerEnded || this.closed, ms, 'the response body');
    }
    return response;
  }

  write(bytes: Uint8Array | string): void {
    this.socket.write(bytes);
  }

  /** Write and resolve once the bytes are handed to the kernel. */
  writeAsync(bytes: Uint8Array | string): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(bytes, (error) => (error == null ? resolve() : reject(error))));
  }

  sendFrame(frame: RawFrame): void {
    this.socket.write(clientFrame(frame));
  }

  sendText(text: string | Buffer, fin = true): void {
    this.sendFrame({ opcode: Opcode.Text, payload: text, fin });
  }

  sendBinary(data: Uint8Array, fin = true): void {
    this.sendFrame({ opcode: Opcode.Binary, payload: data, fin });
  }

  sendContinuation(data: Uint8Array | string, fin: boolean): void {
    this.sendFrame({ opcode: Opcode.Continuation, payload: data, fin });
  }

  sendPing(payload: Uint8Array | string = ''): void {
    this.sendFrame({ opcode: Opcode.Ping, payload });
  }

  sendPong(payload: Uint8Array | string = ''): void {
    this.sendFrame({ opcode: Opcode.Pong, payload });
  }

  sendClose(code?: number, reason = ''): void {
    this.sendFrame({ opcode: Opcode.Close, payload: closePayload(code, reason) });
  }

  waitMessages(count: number, ms = 3000): Promise<ReceivedMessage[]> {
    return this.until(() => this.messages.length >= count, ms, `${count} message(s)`).then(() => this.messages);
  }

  /** Wait for the server's close frame. */
  async waitCloseFrame(ms = 3000): Promise<{ code: number; reason: string; at: number }> {
    await this.until(() => this.closeFrame !== null, ms, 'a close frame');
    return this.closeFrame!;
  }

  /** Wait for the server's FIN (or the socket's end by any means). */
  waitPeerEnd(ms = 3000): Promise<void> {
    return this.until(() => this.peerEnded || this.closed, ms, 'the end of the TCP connection from the server');
  }

  /** Wait until the socket is fully closed. Resolves with whether the server closed TCP first. */
  async waitClosed(ms = 3000): Promise<{ peerEndedFirst: boolean }> {
    await this.until(() => this.closed, ms, 'the socket to close');
    return { peerEndedFirst: this.peerEndedFirst };
  }

  /** Stop reading from the socket (the kernel buffers fill, TCP backpressure reaches the server). */
  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** Half-close: send our FIN. */
  end(): void {
    if (this.weEnded) return;
    this.weEnded = true;
    this.socket.end();
  }

  destroy(): void {
    this.weEnded = true;
    this.socket.destroy();
  }

  /** Abort with a TCP RST. */
  reset(): void {
    this.weEnded = true;
    this.socket.resetAndDestroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------

export interface CloseRecord {
  code: number;
  reason: string;
  wasClean: boolean;
  at: number;
}

/** Records every 'close' of a connection (a correct one fires exactly once). */
export function trackClose(ws: WebSocket): { closes: CloseRecord[]; closed: Promise<CloseRecord> } {
  const closes: CloseRecord[] = [];
  const closed = new Promise<CloseRecord>((resolve) => {
    ws.on('close', (code, reason, wasClean) => {
      const record = { code, reason, wasClean, at: Date.now() };
      closes.push(record);
      resolve(record);
    });
  });
  return { closes, closed };
}

export interface ServerConnection {
  ws: WebSocket;
  request: UpgradeRequest;
  closes: CloseRecord[];
  closed: Promise<CloseRecord>;
  errors: Error[];
}

export interface TestServer {
  wss: WebSocketServer;
  port: number;
  address: AddressInfo;
  url: string;
  /** Every connection so far, in order, with its close record. */
  connections: ServerConnection[];
  /** The next connection (already made ones first, in order). */
  nextConnection(ms?: number): Promise<ServerConnection>;
  /** The server side of a raw client's connection (matched by the client's local port). */
  connectionOf(client: RawClient, ms?: number): Promise<ServerConnection>;
  /** Destroy every raw client, then close the server gracefully with a short timeout. */
  close(): Promise<void>;
}

/**
 * Start a WebSocketServer on 127.0.0.1 with an ephemeral port. Connections get an 'error' listener
 * (recorded) and a close tracker; `echo` (default true) sends every message back as it came.
 */
export async function startServer(options: ServerOptions = {}, echo = true, host = '127.0.0.1'): Promise<TestServer> {
  const wss = new WebSocketServer(options);
  const connections: ServerConnection[] = [];
  const waiters: ((c: ServerConnection) => void)[] = [];
  let taken = 0;
  wss.on('connection', (ws, request) => {
    const errors: Error[] = [];
    ws.on('error', (error) => errors.push(error));
    const { closes, closed } = trackClose(ws);
    if (echo) ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    const connection = { ws, request, closes, closed, errors };
    connections.push(connection);
    const waiter = waiters.shift();
    if (waiter !== undefined) {
      taken++;
      waiter(connection);
    }
  });
  const address = await wss.listen(0, host);
  const hostText = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    wss,
    port: address.port,
    address,
    url: `ws://${hostText}:${address.port}/`,
    connections,
    nextConnection(ms = 3000) {
      if (taken < connections.length) return Promise.resolve(connections[taken++]!);
      return withTimeout(new Promise<ServerConnection>((resolve) => waiters.push(resolve)), ms, 'a server connection');
    },
    async connectionOf(client, ms = 3000) {
      const port = client.socket.localPort;
      const find = (): ServerConnection | undefined => connections.find((c) => c.request.remotePort === port);
      await waitUntil(() => find() !== undefined, ms, `the server connection of the client on port ${String(port)}`, 2);
      return find()!;
    },
    close: () => {
      // Raw clients do not answer close frames: drop them first rather than wait out the timeout.
      destroyRawClients();
      return withTimeout(wss.close(200), 5000, 'the server to close');
    },
  };
}

/**
 * Connect our own client (connect()) and find its server side: the one connection the server
 * admitted meanwhile (the server emits 'connection' before the client sees the 101). Not for
 * concurrent use.
 */
export async function connectPair(server: TestServer, options: ClientOptions = {}, path = ''): Promise<{ ws: WebSocket; connection: ServerConnection }> {
  const before = server.connections.length;
  const ws = await connect(server.url + path, options);
  assert.equal(server.connections.length, before + 1, 'exactly one new server connection');
  return { ws, connection: server.connections[before]! };
}

/** Assert a connection's 'close' fired exactly once with this code (and cleanliness, when given). */
export async function assertClosedOnce(connection: ServerConnection, code: number, wasClean?: boolean, ms = 3000): Promise<CloseRecord> {
  const record = await withTimeout(connection.closed, ms, `the server-side 'close' event (expected ${code})`);
  // Give a duplicate emission a chance to show up.
  await delay(20);
  assert.equal(connection.closes.length, 1, `'close' fired ${connection.closes.length} times`);
  assert.equal(record.code, code, `close code ${record.code}, expected ${code}`);
  if (wasClean !== undefined) assert.equal(record.wasClean, wasClean, `wasClean ${record.wasClean}, expected ${wasClean}`);
  return record;
}

/** Assert that a raw client still gets its messages echoed: the connection is unaffected. */
export async function assertEchoes(client: RawClient, text = `still here ${Math.random()}`): Promise<void> {
  const before = client.messages.length;
  client.sendText(text);
  await client.waitMessages(before + 1);
  const message = client.messages[before]!;
  assert.equal(message.isBinary, false);
  assert.equal(message.data.toString(), text);
}

export { CloseCode, Opcode };
