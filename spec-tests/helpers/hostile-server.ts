/**
 * A raw TCP server that plays a WebSocket server, possibly a hostile one, for the client tests.
 *
 * It reads the client's request head with its own small parser (independent of src/http1.ts),
 * answers with whatever the test asks for (a correct 101 by default, with the accept key computed
 * here, or arbitrary bytes, or nothing at all), then lets the test send arbitrary frames (well
 * formed through `encodeFrame`, or odd ones built byte by byte by `rawFrame`, or any raw bytes).
 * Everything the client sends after the handshake goes through a `Receiver` in the server role,
 * which fails on any unmasked frame: so every test that uses it also checks the client masks.
 */
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { encodeFrame } from '../../src/frame.js';
import { ProtocolError } from '../../src/errors.js';
import { Receiver, type Frame } from '../../src/receiver.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** RFC 6455 §4.2.2: base64(SHA-1(key + GUID)), computed here rather than with the library's own. */
export function computeAccept(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}

/** The client's request, as this server read it. */
export interface ClientRequest {
  /** The whole head, with its final blank line. */
  raw: Buffer;
  /** The head as Latin-1 text. */
  text: string;
  requestLine: string;
  method: string;
  target: string;
  version: string;
  /** Header lines in order, names as sent. */
  headerLines: [string, string][];
  /** Lower-cased names; repeated headers keep every value. */
  headers: Map<string, string[]>;
  /** The single value of a header (values joined with ", " when repeated), or undefined. */
  header(name: string): string | undefined;
  /** Sec-WebSocket-Key, if sent. */
  key: string | undefined;
}

export function parseClientRequest(raw: Buffer): ClientRequest {
  const text = raw.toString('latin1');
  const lines = text.split('\r\n');
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const requestLine = lines[0] ?? '';
  const [method = '', target = '', version = ''] = requestLine.split(' ');
  const headerLines: [string, string][] = [];
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).trim();
    headerLines.push([name, value]);
    const key = name.toLowerCase();
    const values = headers.get(key);
    if (values === undefined) headers.set(key, [value]);
    else values.push(value);
  }
  const header = (name: string): string | undefined => headers.get(name.toLowerCase())?.join(', ');
  return { raw, text, requestLine, method, target, version, headerLines, headers, header, key: header('sec-websocket-key') };
}

export interface AcceptOptions {
  /** Replace the computed Sec-WebSocket-Accept value. */
  accept?: string;
  /** Leave these out of the default headers. */
  omit?: readonly ('upgrade' | 'connection' | 'accept')[];
  /** Extra header lines, in order. */
  headers?: readonly [string, string][];
  /** The status line (default `HTTP/1.1 101 Switching Protocols`). */
  statusLine?: string;
  /** Override the Upgrade / Connection values. */
  upgrade?: string;
  connection?: string;
}

/** A 101 response for `request`: correct unless the options say otherwise. */
export function acceptResponse(request: ClientRequest, options: AcceptOptions = {}): Buffer {
  const omit = new Set(options.omit ?? []);
  const lines = [options.statusLine ?? 'HTTP/1.1 101 Switching Protocols'];
  if (!omit.has('upgrade')) lines.push(`Upgrade: ${options.upgrade ?? 'websocket'}`);
  if (!omit.has('connection')) lines.push(`Connection: ${options.connection ?? 'Upgrade'}`);
  if (!omit.has('accept')) lines.push(`Sec-WebSocket-Accept: ${options.accept ?? computeAccept(request.key ?? '')}`);
  for (const [name, value] of options.headers ?? []) lines.push(`${name}: ${value}`);
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
}

/** A complete HTTP response with a body (for refusals). */
export function httpResponse(status: number, reason: string, body: string, headers: readonly [string, string][] = []): Buffer {
  const bodyBytes = Buffer.from(body, 'utf8');
  const lines = [`HTTP/1.1 ${status} ${reason}`, ...headers.map(([n, v]) => `${n}: ${v}`)];
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), bodyBytes]);
}

/** Everything about one frame header, including what a well-behaved encoder never writes. */
export interface RawFrameSpec {
  fin?: boolean;
  rsv1?: boolean;
  rsv2?: boolean;
  rsv3?: boolean;
  opcode: number;
  payload?: Uint8Array | string;
  /** Set: the MASK bit and this key are written and the payload is masked with it. */
  maskKey?: Uint8Array | null;
  /** Force the length encoding: 7-bit, 16-bit or 64-bit. Default: the minimal one. */
  lengthEncoding?: 7 | 16 | 64;
  /** Write this length instead of the payload's (for lying headers, like a 64-bit length with its top bit set). */
  declaredLength?: bigint | number;
}

/** An independent frame encoder, byte by byte (RFC 6455 §5.2). */
export function rawFrame(spec: RawFrameSpec): Buffer {
  const payload = typeof spec.payload === 'string' ? Buffer.from(spec.payload, 'utf8') : Buffer.from(spec.payload ?? []);
  const length = BigInt(spec.declaredLength ?? payload.length);
  const encoding = spec.lengthEncoding ?? (length < 126n ? 7 : length <= 0xffffn ? 16 : 64);
  const maskKey = spec.maskKey ?? null;
  const bytes: number[] = [];
  bytes.push((spec.fin === false ? 0 : 0x80) | (spec.rsv1 ? 0x40 : 0) | (spec.rsv2 ? 0x20 : 0) | (spec.rsv3 ? 0x10 : 0) | (spec.opcode & 0x0f));
  const maskBit = maskKey === null ? 0 : 0x80;
  if (encoding === 7) {
    bytes.push(maskBit | Number(length & 0x7fn));
  } else if (encoding === 16) {
    bytes.push(maskBit | 126, Number((length >> 8n) & 0xffn), Number(length & 0xffn));
  } else {
    bytes.push(maskBit | 127);
    for (let shift = 56n; shift >= 0n; shift -= 8n) bytes.push(Number((length >> shift) & 0xffn));
  }
  if (maskKey !== null) bytes.push(...maskKey);
  const body = Buffer.from(payload);
  if (maskKey !== null) for (let i = 0; i < body.length; i++) body[i]! ^= maskKey[i & 3]!;
  return Buffer.concat([Buffer.from(bytes), body]);
}

/** A close frame payload: code (unless undefined) then the reason bytes. */
export function closePayload(code?: number, reason: string | Uint8Array = ''): Buffer {
  if (code === undefined) return Buffer.alloc(0);
  const head = Buffer.alloc(2);
  head.writeUInt16BE(code, 0);
  return Buffer.concat([head, typeof reason === 'string' ? Buffer.from(reason, 'utf8') : Buffer.from(reason)]);
}

export interface ReceivedMessage {
  data: Buffer;
  isBinary: boolean;
}

export interface ReceivedClose {
  code: number;
  reason: string;
  /** When the close frame was decoded (ms, performance.now()). */
  at: number;
}

/**
 * One client connection as the hostile server sees it. Everything the client sends is recorded;
 * promises resolve when things happen.
 */
export class HostilePeer extends EventEmitter {
  readonly frames: Frame[] = [];
  readonly messages: ReceivedMessage[] = [];
  readonly pings: Buffer[] = [];
  readonly pongs: Buffer[] = [];
  readonly closes: ReceivedClose[] = [];
  readonly protocolErrors: ProtocolError[] = [];
  /** Bytes that arrived after the request head (raw, as sent: masked). */
  readonly rawAfterHead: Buffer[] = [];
  /** Set when the client half-closed (its FIN arrived), in performance.now() ms. */
  endedAt: number | null = null;
  /** Set when the socket closed, in performance.now() ms. */
  closedAt: number | null = null;
  /** Set when this side called `end()` or `destroy()`. */
  serverClosedAt: number | null = null;
  /** The request, once its head arrived. */
  request: ClientRequest | null = null;

  readonly ended: Promise<number>;
  readonly closed: Promise<number>;
  readonly closeFrame: Promise<ReceivedClose>;
  readonly requestReceived: Promise<ClientRequest>;

  private receiver: Receiver | null = null;
  private headBuffer = Buffer.alloc(0);
  private messageWaiters: ((message: ReceivedMessage) => void)[] = [];
  private messageCursor = 0;

  constructor(readonly socket: Socket) {
    super();
    this.ended = new Promise((resolve) => this.once('end', resolve));
    this.closed = new Promise((resolve) => this.once('socketClose', resolve));
    this.closeFrame = new Promise((resolve) => this.once('closeFrame', resolve));
    this.requestReceived = new Promise((resolve) => this.once('request', resolve));
    // Every promise may be left unobserved by a test; never let one become an unhandled rejection.
    socket.on('error', (error) => this.emit('socketError', error));
    socket.on('end', () => {
      this.endedAt = performance.now();
      this.emit('end', this.endedAt);
    });
    socket.on('close', () => {
      this.closedAt = performance.now();
      this.emit('socketClose', this.closedAt);
    });
  }

  /** Start decoding the client's frames (after our response); `rest` are bytes that came with the head. */
  startDecoding(maxMessageSize = 64 * 1024 * 1024): void {
    if (this.receiver !== null) return;
    this.receiver = new Receiver(
      { role: 'server', maxMessageSize },
      {
        onMessage: (data, isBinary) => {
          const message = { data: Buffer.from(data), isBinary };
          this.messages.push(message);
          this.emit('message', message);
          const waiter = this.messageWaiters.shift();
          if (waiter !== undefined) {
            this.messageCursor++;
            waiter(message);
          }
        },
        onPing: (data) => {
          this.pings.push(Buffer.from(data));
          this.emit('ping', Buffer.from(data));
        },
        onPong: (data) => {
          this.pongs.push(Buffer.from(data));
          this.emit('pong', Buffer.from(data));
        },
        onClose: (code, reason) => {
          const close = { code, reason, at: performance.now() };
          this.closes.push(close);
          this.emit('closeFrame', close);
        },
        onError: (error) => {
          this.protocolErrors.push(error);
          this.emit('protocolError', error);
        },
        onFrame: (frame) => {
          this.frames.push({ ...frame, payload: Buffer.from(frame.payload) });
          this.emit('frame', frame);
        },
      },
    );
  }

  /** @internal Bytes from the socket. Returns the request head once complete. */
  onBytes(chunk: Buffer): void {
    if (this.request === null) {
      this.headBuffer = Buffer.concat([this.headBuffer, chunk]);
      const end = this.headBuffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.headBuffer.subarray(0, end + 4);
      const rest = this.headBuffer.subarray(end + 4);
      this.headBuffer = Buffer.alloc(0);
      this.request = parseClientRequest(Buffer.from(head));
      this.emit('request', this.request);
      if (rest.length > 0) this.onBytes(Buffer.from(rest));
      return;
    }
    this.rawAfterHead.push(Buffer.from(chunk));
    // The receiver unmasks in place: give it its own copy.
    this.receiver?.push(Buffer.from(chunk));
  }

  /** The next message not yet returned by this method (in arrival order). */
  nextMessage(): Promise<ReceivedMessage> {
    if (this.messageCursor < this.messages.length) return Promise.resolve(this.messages[this.messageCursor++]!);
    return new Promise((resolve) => this.messageWaiters.push(resolve));
  }

  /** Write raw bytes. */
  send(bytes: Uint8Array | string): void {
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.write(bytes);
  }

  /** Write a frame through the library's encoder (`maskKey` set makes it a masked frame). */
  sendFrame(opcode: number, payload: Uint8Array | string = '', options: { fin?: boolean; rsv1?: boolean; maskKey?: Uint8Array | null } = {}): void {
    const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
    this.send(encodeFrame({ opcode, payload: bytes, fin: options.fin ?? true, rsv1: options.rsv1 ?? false, maskKey: options.maskKey ?? null }));
  }

  sendRaw(spec: RawFrameSpec): void {
    this.send(rawFrame(spec));
  }

  /** Half-close (send FIN). */
  end(): void {
    this.serverClosedAt ??= performance.now();
    if (!this.socket.destroyed) this.socket.end();
  }

  destroy(): void {
    this.serverClosedAt ??= performance.now();
    this.socket.destroy();
  }
}

/** What to answer a request with: bytes, or null to never answer. */
export type Responder = (request: ClientRequest, peer: HostilePeer) => Uint8Array | string | null;

export interface HostileServerOptions {
  /** Default: a correct 101 for the request. */
  respond?: Responder;
  /** Decode the client's frames after the response (default: when the response is a 101). */
  decode?: boolean;
  host?: string;
  /** Called once the response is written: the test's script for this connection. */
  onPeer?: (peer: HostilePeer) => void;
}

export class HostileServer {
  readonly peers: HostilePeer[] = [];
  private readonly waiters: ((peer: HostilePeer) => void)[] = [];
  private handed = 0;

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
  ) {}

  /** Listen on an ephemeral loopback port. */
  static async start(options: HostileServerOptions = {}): Promise<HostileServer> {
    const host = options.host ?? '127.0.0.1';
    let self: HostileServer | null = null;
    const server = createServer((socket) => self!.accept(socket, options));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    self = new HostileServer(server, host, (server.address() as AddressInfo).port);
    return self;
  }

  /** A ws:// URL to this server (IPv6 hosts bracketed). */
  url(path = '/'): string {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `ws://${host}:${this.port}${path}`;
  }

  /** The next connection whose request head has been read (in arrival order). */
  nextPeer(): Promise<HostilePeer> {
    const ready = this.peers.filter((peer) => peer.request !== null);
    if (this.handed < ready.length) return Promise.resolve(ready[this.handed++]!);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Destroy every connection and stop listening. */
  async close(): Promise<void> {
    for (const peer of this.peers) peer.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket, options: HostileServerOptions): void {
    const peer = new HostilePeer(socket);
    this.peers.push(peer);
    peer.on('request', (request: ClientRequest) => {
      const response = options.respond === undefined ? acceptResponse(request) : options.respond(request, peer);
      if (response !== null) {
        const bytes = typeof response === 'string' ? Buffer.from(response, 'latin1') : Buffer.from(response);
        const isUpgrade = bytes.subarray(0, 12).toString('latin1') === 'HTTP/1.1 101';
        if (options.decode ?? isUpgrade) peer.startDecoding();
        socket.write(bytes);
      }
      options.onPeer?.(peer);
      const waiter = this.waiters.shift();
      if (waiter !== undefined) {
        this.handed++;
        waiter(peer);
      }
    });
    socket.on('data', (chunk: Buffer) => peer.onBytes(chunk));
  }
}

/** A fresh random 4-byte key (for the masked frames a hostile server must never send). */
export function randomMaskKey(): Buffer {
  return randomBytes(4);
}

/** Resolve after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reject when `promise` takes longer than `ms` (so a test fails with a message instead of hanging). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
