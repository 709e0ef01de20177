import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { isUtf8 } from 'node:buffer';
import { buildClosePayload } from './close.js';
import { CloseCode, MAX_CLOSE_REASON_BYTES, Opcode, isValidApplicationCloseCode } from './constants.js';
import type { ProtocolError } from './errors.js';
import { Receiver, DEFAULT_MAX_MESSAGE_SIZE, type ReceiverHandler, type Role } from './receiver.js';
import { startClientHandshake, type ClientOptions } from './client.js';
import type { PerMessageDeflate } from './permessage-deflate.js';
import { sharedWheel, type WheelTarget } from './timer-wheel.js';
import { outgoingFrameDecoder, type FrameTracer } from './trace.js';
import { FrameQueue, MaskKeySource, toBuffer } from './writer.js';

/**
 * One WebSocket connection, server or client side: the thin layer between a socket and the
 * protocol core. It runs the three loops of the classic server design:
 *
 * - the read loop: socket bytes into the Receiver, messages out to the application, pings
 *   answered; reading stops while the application or the write side is behind;
 * - the write loop: an outbound queue flushed in one socket write per turn, with a high-water
 *   mark, a hard limit and a write deadline;
 * - the ping loop: a ping every `pingInterval`, and the connection dropped when nothing at all
 *   arrives for `pongTimeout`.
 *
 * And one close path: whatever ends the connection, `close` fires exactly once, and every timer and
 * listener is released.
 */

export const ReadyState = { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 } as const;
export type ReadyState = (typeof ReadyState)[keyof typeof ReadyState];

export interface ConnectionOptions {
  /** Largest message accepted, after reassembly (and decompression). Bigger ones close with 1009. Default 64 MiB. */
  maxMessageSize?: number;
  /** Largest frame payload accepted. Default: `maxMessageSize`. (The classic Go server used 512 bytes.) */
  maxFramePayload?: number;
  /** Milliseconds between pings; 0 turns the ping loop off. Default 54 000. */
  pingInterval?: number;
  /** Drop the connection when nothing (no pong, no frame) arrives for this long. Default 60 000. */
  pongTimeout?: number;
  /** Drop the connection when the peer accepts no bytes for this long while we have some to send. Default 10 000. */
  writeTimeout?: number;
  /** After sending a close frame, wait this long for the peer's close and the end of TCP. Default 5 000. */
  closeTimeout?: number;
  /** `send()` returns false and reading pauses while more than this many bytes wait to be sent. Default 1 MiB. */
  highWaterMark?: number;
  /** Past this many buffered outgoing bytes the peer is too slow: the connection closes with 1008. Default 128 MiB. */
  maxBufferedBytes?: number;
  /** Answer pings with pongs automatically (RFC 6455 §5.5.2). Default true. */
  autoPong?: boolean;
  /** Split outgoing messages into frames of at most this many payload bytes; 0 never splits. Default 0. */
  fragmentSize?: number;
  /** Called with every frame received and sent, decoded. For learning and debugging; slows things down. */
  trace?: FrameTracer | null;
}

export type ResolvedConnectionOptions = Required<ConnectionOptions>;

/** The defaults, in one table (also in the README). */
export const CONNECTION_DEFAULTS: Readonly<ResolvedConnectionOptions> = Object.freeze({
  maxMessageSize: DEFAULT_MAX_MESSAGE_SIZE,
  maxFramePayload: DEFAULT_MAX_MESSAGE_SIZE,
  pingInterval: 54_000,
  pongTimeout: 60_000,
  writeTimeout: 10_000,
  closeTimeout: 5_000,
  highWaterMark: 1024 * 1024,
  maxBufferedBytes: 128 * 1024 * 1024,
  autoPong: true,
  fragmentSize: 0,
  trace: null,
});

/** Objects made by resolveConnectionOptions (and only those) can be used as they are. */
const resolvedOptions = new WeakSet<object>();

export function resolveConnectionOptions(options: ConnectionOptions = {}): ResolvedConnectionOptions {
  if (resolvedOptions.has(options)) return options as ResolvedConnectionOptions;
  const resolved: ResolvedConnectionOptions = { ...CONNECTION_DEFAULTS };
  for (const key of Object.keys(CONNECTION_DEFAULTS) as (keyof ConnectionOptions)[]) {
    const value = options[key];
    if (value !== undefined) (resolved as Record<string, unknown>)[key] = value;
  }
  if (options.maxFramePayload === undefined) resolved.maxFramePayload = resolved.maxMessageSize;
  for (const key of ['maxMessageSize', 'maxFramePayload', 'pingInterval', 'pongTimeout', 'writeTimeout', 'closeTimeout', 'highWaterMark', 'maxBufferedBytes', 'fragmentSize'] as const) {
    const value = resolved[key];
    if (typeof value !== 'number' || !(value >= 0)) throw new RangeError(`option ${key} must be a number >= 0`);
  }
  if (resolved.trace !== null && typeof resolved.trace !== 'function') throw new TypeError('option trace must be a function or null');
  Object.freeze(resolved);
  resolvedOptions.add(resolved);
  return resolved;
}

export type SendCallback = (error?: Error) => void;

export interface SendOptions {
  /** Send as a binary message. Default: true for buffers, false for strings. */
  binary?: boolean;
  /**
   * Compress, when permessage-deflate was negotiated. Default true; messages under the
   * extension's `threshold` are sent uncompressed either way.
   */
  compress?: boolean;
  /** Split into frames of at most this many bytes (overrides the connection's `fragmentSize`). */
  fragmentSize?: number;
}

/** Anything `send()` takes. */
export type Data = string | Buffer | ArrayBuffer | ArrayBufferView;

export interface WebSocketEventMap {
  /** Client: the handshake succeeded; the connection is OPEN. */
  open: [];
  /** Client: the server's 101 response headers (lower-case names), just before 'open'. */
  upgrade: [headers: Record<string, string>];
  /** A complete message. Text messages are valid UTF-8; `data.toString()` decodes them. */
  message: [data: Buffer, isBinary: boolean];
  ping: [data: Buffer];
  pong: [data: Buffer];
  /** Exactly once per connection. `wasClean`: close frames were exchanged both ways (RFC 6455 §7.1.4). */
  close: [code: number, reason: string, wasClean: boolean];
  /** Protocol errors, socket errors and timeouts. Only emitted when a listener is attached. */
  error: [error: Error];
  /** The outgoing buffer has drained after `send()` returned false. */
  drain: [];
}

export interface Message {
  data: Buffer;
  isBinary: boolean;
}

/** Thrown for `send()` and friends used while the connection is still connecting (as in the browser API). */
export class InvalidStateError extends Error {
  override readonly name = 'InvalidStateError';
}

/** Why a connection was dropped without a clean close. */
export class ConnectionTimeoutError extends Error {
  override readonly name = 'ConnectionTimeoutError';
  constructor(
    readonly reason: 'pong' | 'write' | 'close',
    message: string,
  ) {
    super(message);
  }
}

// Why reading is paused: each reason can be lifted on its own.
const PAUSED_BY_APPLICATION = 1;
const PAUSED_BY_WRITES = 2;
const PAUSED_BY_ITERATOR = 4;
const PAUSED_BY_INFLATE = 8;

/**
 * A message waiting behind one being compressed (zlib is asynchronous; order must hold), or the
 * close frame waiting behind them all.
 */
interface StagedMessage {
  opcode: number;
  payload: Buffer;
  compress: boolean;
  fragmentSize: number;
  callback: SendCallback | undefined;
  /** Already framed (a broadcast): written as it is. */
  framed?: boolean;
}

/** Large writes are handed to the socket in pieces of this size, so write progress is visible. */
const WRITE_PIECE = 256 * 1024;

/**
 * Details of the closing handshake, made when it starts: most of a connection's life needs none of
 * them, and an idle connection should cost as little as possible.
 */
interface CloseDetails {
  /** When to give up on the close handshake and destroy the socket; 0 for never. */
  deadline: number;
  /** What the peer's close frame said, once received. */
  peerCode: number;
  peerReason: string;
  /** The code (1002, 1007, 1008, 1009, 1011) we failed the connection with, when we did. */
  failCode: number;
  failReason: string;
}

/** The write deadline's bookkeeping, made when a write has to wait on the peer. */
interface WriteWatch {
  /** Socket writes completed since the watch began. */
  done: number;
  /** `done`, and libuv's queue size, at the last check. */
  checkedDone: number;
  checkedQueue: number;
  /** The last time the peer took bytes. */
  progressAt: number;
}

/** permessage-deflate state, when negotiated: messages wait here, in order, while one is compressed. */
interface Compression {
  deflate: PerMessageDeflate;
  staged: StagedMessage[] | null;
  stagedBytes: number;
  compressing: boolean;
  /** TCP is to end once the staged messages (and the close frame behind them) are queued. */
  endWhenStaged: boolean;
}

/** One pool of random mask keys for every client connection of the process. */
const maskKeys = new MaskKeySource();

/** Connections with bytes queued outside the read loop, flushed together in one microtask. */
let dirty: WebSocket[] = [];

export class WebSocket extends EventEmitter<WebSocketEventMap> implements WheelTarget, ReceiverHandler {
  static readonly CONNECTING = ReadyState.CONNECTING;
  static readonly OPEN = ReadyState.OPEN;
  static readonly CLOSING = ReadyState.CLOSING;
  static readonly CLOSED = ReadyState.CLOSED;

  /** CONNECTING, OPEN, CLOSING or CLOSED, as in the WebSocket API. */
  readyState: ReadyState = ReadyState.CONNECTING;
  /** The subprotocol agreed in the handshake, or '' for none. */
  protocol = '';
  /** The extensions agreed in the handshake (the Sec-WebSocket-Extensions value), or ''. */
  extensions = '';
  /** Set by the server: a stable id for the registry, and what `verify` attached. */
  id = 0;
  data: unknown = undefined;

  private role: Role = 'server';
  private config: ResolvedConnectionOptions;
  private socket: Socket | null = null;
  /** The protocol core, made when the first bytes arrive (an idle connection has none). */
  private receiver: Receiver | null = null;

  // The write loop: frames waiting for the next flush (the queue is made on first use).
  private out: FrameQueue | null = null;
  private pendingCallbacks: SendCallback[] | null = null;
  private flushQueued = false;
  private inReadLoop = false;
  private needDrain = false;
  private pausedBy = 0;
  private writeWatch: WriteWatch | null = null;
  private onWriteDone: ((error?: Error | null) => void) | null = null;
  private traceOut: ((bytes: Buffer) => void) | null = null;
  private compression: Compression | null = null;

  // The ping loop and every other deadline, on the shared wheel.
  wheelTick = 0;
  wheelIndex = 0;
  private lastReceivedAt = 0;
  private nextPingAt = 0;

  // The close handshake (RFC 6455 §7), recorded from both sides.
  private closeSent = false;
  private closeReceived = false;
  private closing: CloseDetails | null = null;

  /** Client: the handshake in progress, to abort it. */
  private abortHandshake: (() => void) | null = null;
  /** Server: the registry to leave on close. */
  private registry: { delete(connection: WebSocket): void } | null = null;

  /**
   * A client connection to `address` (ws:// or wss://), offering `protocols`; events tell how it
   * goes ('open', or 'error' then 'close'). `connect()` is the promise-returning form.
   * (`address` null is how a server makes its connections.)
   */
  constructor(address: string | URL | null, protocols?: string | readonly string[], options: ClientOptions = {}) {
    super();
    this.config = resolveConnectionOptions(options);
    if (address !== null) {
      this.role = 'client';
      startClientHandshake(this, address, protocols ?? options.protocols ?? [], options);
    }
  }

  /** Bytes accepted by `send()` and not yet handed to the operating system. */
  get bufferedAmount(): number {
    return (
      (this.compression === null ? 0 : this.compression.stagedBytes) +
      (this.out === null ? 0 : this.out.length) +
      (this.socket === null ? 0 : this.socket.writableLength)
    );
  }

  /** Whether reading is paused (by `pause()`, by a slow async iterator, or by the write side). */
  get isPaused(): boolean {
    return this.pausedBy !== 0;
  }

  get remoteAddress(): string | undefined {
    return this.socket?.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.socket?.remotePort;
  }

  /**
   * @internal Take over a socket whose handshake is done. Nothing is read until `start()`, so the
   * owner can emit 'connection' or 'open' first and the application sees every message.
   */
  attach(socket: Socket, role: Role, protocol: string, extensions: string, deflate: PerMessageDeflate | null = null): void {
    const config = this.config;
    this.role = role;
    this.protocol = protocol;
    this.extensions = extensions;
    this.socket = socket;
    if (deflate !== null) this.compression = { deflate, staged: null, stagedBytes: 0, compressing: false, endWhenStaged: false };
    if (config.trace !== null) this.traceOut = outgoingFrameDecoder(role, config.trace);
    this.readyState = ReadyState.OPEN;

    socket.setNoDelay(true);
    socket.setTimeout(0);
    // Listeners shared by every connection (they find theirs through the socket), so an idle
    // connection carries no closures.
    (socket as SocketWithConnection)[kConnection] = this;
    // Explicitly paused first: adding a 'data' listener would otherwise start the flow, and
    // nothing may be read before `start()`.
    socket.pause();
    socket.on('data', WebSocket.socketOnData);
    socket.on('end', WebSocket.socketOnEnd);
    socket.on('close', WebSocket.socketOnClose);
    socket.on('error', WebSocket.socketOnError);

    const now = Date.now();
    this.lastReceivedAt = now;
    if (config.pingInterval > 0) {
      this.nextPingAt = now + config.pingInterval;
      this.scheduleWheel();
    }
  }

  /**
   * @internal Start reading. `head` holds bytes that arrived with the end of the handshake (the
   * first frames, possibly: a client may send them in the same segment as its request).
   */
  start(head: Buffer): void {
    if (head.length > 0 && this.readyState !== ReadyState.CLOSED) this.onSocketData(head);
    // The handshake code paused the socket to hold early frames until now.
    if (this.pausedBy === 0 && this.socket !== null) this.socket.resume();
  }

  // ---------------------------------------------------------------------------------------------
  // The read loop
  // ---------------------------------------------------------------------------------------------

  private static socketOnData(this: Socket, chunk: Buffer): void {
    (this as SocketWithConnection)[kConnection]!.onSocketData(chunk);
  }

  private static socketOnEnd(this: Socket): void {
    (this as SocketWithConnection)[kConnection]!.onSocketEnd();
  }

  private static socketOnClose(this: Socket): void {
    (this as SocketWithConnection)[kConnection]!.onSocketClose();
  }

  private static socketOnError(this: Socket, error: Error): void {
    (this as SocketWithConnection)[kConnection]!.onSocketError(error);
  }

  private onSocketData(chunk: Buffer): void {
    this.lastReceivedAt = Date.now();
    const receiver = this.receiver ?? this.createReceiver();
    this.inReadLoop = true;
    try {
      receiver.push(chunk);
    } finally {
      this.inReadLoop = false;
    }
    // Every reply the chunk produced (echoes, pongs) goes out in one write.
    if (this.out !== null && this.out.length !== 0) this.flush();
    // A compressed frame is being inflated and input piles up behind it: stop reading meanwhile.
    if (receiver.bufferedBytes > this.config.highWaterMark) this.pauseReading(PAUSED_BY_INFLATE);
  }

  private createReceiver(): Receiver {
    const config = this.config;
    this.receiver = new Receiver(
      {
        role: this.role,
        maxMessageSize: config.maxMessageSize,
        maxFramePayload: config.maxFramePayload,
        inflater: this.compression === null ? null : this.compression.deflate,
      },
      config.trace === null ? this : tracingHandler(this, config.trace),
    );
    return this.receiver;
  }

  /** @internal The receiver caught up after inflating. */
  onResumed(): void {
    if ((this.pausedBy & PAUSED_BY_INFLATE) !== 0 && this.receiver!.bufferedBytes <= this.config.highWaterMark) {
      this.resumeReading(PAUSED_BY_INFLATE);
    }
  }

  /** @internal The receiver's handler (see ReceiverHandler). */
  onMessage(data: Buffer, isBinary: boolean): void {
    this.emit('message', data, isBinary);
  }

  /** @internal The receiver's handler (see ReceiverHandler). */
  onPing(data: Buffer): void {
    // RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response,
    // unless it already received a Close frame. It SHOULD respond with Pong frame as soon as is
    // practical." The pong carries the ping's payload (§5.5.3).
    if (this.config.autoPong && this.readyState === ReadyState.OPEN) this.queueControl(Opcode.Pong, data);
    this.emit('ping', data);
  }

  /** @internal The receiver's handler (see ReceiverHandler). */
  onPong(data: Buffer): void {
    this.emit('pong', data);
  }

  /** RFC 6455 §5.5.1, §7.1.5: the peer's close frame. */
  /** @internal The receiver's handler (see ReceiverHandler). */
  onClose(code: number, reason: string): void {
    this.closeReceived = true;
    const details = this.closeDetails();
    details.peerCode = code;
    details.peerReason = reason;
    if (!this.closeSent) {
      // "If an endpoint receives a Close frame and did not previously send a Close frame, the endpoint
      // MUST send a Close frame in response." We echo its code and reason; an empty close gets an empty one.
      this.sendCloseFrame(code === CloseCode.NoStatusReceived ? undefined : code, reason);
    }
    this.readyState = ReadyState.CLOSING;
    this.startCloseDeadline();
    this.afterCloseHandshake();
  }

  /** RFC 6455 §7.1.7: "Fail the WebSocket Connection" with the code the core chose. */
  /** @internal The receiver's handler (see ReceiverHandler). */
  onError(error: ProtocolError): void {
    this.failConnection(error.closeCode, error.message, error);
  }

  // ---------------------------------------------------------------------------------------------
  // The write loop
  // ---------------------------------------------------------------------------------------------

  /**
   * Queue a message. Strings go as text, buffers as binary (unless `options.binary` says otherwise;
   * a buffer sent as text must be valid UTF-8). Returns false when more than `highWaterMark` bytes
   * are now waiting: stop sending until `'drain'`. The callback runs once the data is handed to the
   * operating system, or with an error if the connection closes first.
   */
  send(data: Data, options?: SendOptions | SendCallback, callback?: SendCallback): boolean {
    if (typeof options === 'function') {
      callback = options;
      options = undefined;
    }
    if (this.readyState !== ReadyState.OPEN || this.closeSent) return this.refuseSend(callback);
    const payload = toPayloadBuffer(data);
    const binary = options?.binary ?? typeof data !== 'string';
    // RFC 6455 §5.6: a text frame carries UTF-8. Strings always encode to valid UTF-8; buffers might not.
    if (!binary && typeof data !== 'string' && !isUtf8(payload)) {
      throw new TypeError('a buffer sent as text must be valid UTF-8');
    }
    const fragmentSize = options?.fragmentSize ?? this.config.fragmentSize;
    const opcode = binary ? Opcode.Binary : Opcode.Text;
    const compression = this.compression;
    if (compression !== null) {
      const compress = options?.compress !== false && payload.length >= compression.deflate.threshold;
      if (compress || compression.staged !== null) {
        // Behind a message being compressed, everything waits its turn.
        this.stage(compression, { opcode, payload, compress, fragmentSize, callback });
        return this.afterQueue(undefined);
      }
    }
    this.queue().message(opcode, payload, false, fragmentSize);
    return this.afterQueue(callback);
  }

  /**
   * The compression state while messages wait in it to be compressed (everything sent meanwhile
   * queues behind them, in order), or null.
   */
  private staging(): Compression | null {
    const compression = this.compression;
    return compression !== null && compression.staged !== null ? compression : null;
  }

  /** The outgoing frame queue, made on first use. A client masks every frame (RFC 6455 §5.3). */
  private queue(): FrameQueue {
    return (this.out ??= new FrameQueue(this.role === 'client' ? maskKeys : null));
  }

  private stage(compression: Compression, message: StagedMessage): void {
    (compression.staged ??= []).push(message);
    compression.stagedBytes += message.payload.length;
    this.drainStaged(compression);
  }

  /** Move staged messages to the write queue in order, compressing those that need it, one at a time. */
  private drainStaged(compression: Compression): void {
    const staged = compression.staged;
    while (staged !== null && staged.length > 0 && !compression.compressing) {
      const message = staged[0]!;
      if (message.compress) {
        compression.compressing = true;
        compression.deflate.deflate(message.payload, (compressed) => {
          compression.compressing = false;
          // Closed meanwhile: the close path already failed the callbacks.
          if (compression.staged !== staged) return;
          if (compressed === null) {
            this.failConnection(CloseCode.InternalError, 'compression failed', new Error('permessage-deflate: zlib failed to compress a message'));
            return;
          }
          staged.shift();
          compression.stagedBytes -= message.payload.length;
          // RFC 7692 §6: RSV1 on the first frame of a compressed message only.
          this.queueMessage(message, compressed, true);
          this.drainStaged(compression);
        });
        return;
      }
      staged.shift();
      compression.stagedBytes -= message.payload.length;
      this.queueMessage(message, message.payload, false);
    }
    if (staged !== null && staged.length === 0 && !compression.compressing) {
      compression.staged = null;
      if (compression.endWhenStaged) this.endTcp();
    }
  }

  private queueMessage(message: StagedMessage, payload: Buffer, compressed: boolean): void {
    const out = this.queue();
    if (message.framed === true) out.framed(payload);
    else if (message.opcode === Opcode.Close) out.control(Opcode.Close, payload);
    else out.message(message.opcode, payload, compressed, message.fragmentSize);
    if (message.callback !== undefined) (this.pendingCallbacks ??= []).push(message.callback);
    this.scheduleFlush();
  }

  /** Like `send()`, but returns a promise settled when the data has been handed to the operating system. */
  sendAsync(data: Data, options?: SendOptions): Promise<void> {
    return new Promise((resolve, reject) => {
      this.send(data, options ?? {}, (error) => (error === undefined ? resolve() : reject(error)));
    });
  }

  /** Send a ping (RFC 6455 §5.5.2); at most 125 bytes of payload. */
  ping(data: Data = EMPTY, callback?: SendCallback): void {
    if (this.readyState !== ReadyState.OPEN || this.closeSent) {
      this.refuseSend(callback);
      return;
    }
    this.queueControl(Opcode.Ping, toPayloadBuffer(data));
    this.afterQueue(callback);
  }

  /** Send an unsolicited pong (RFC 6455 §5.5.3: a heartbeat that expects no answer). */
  pong(data: Data = EMPTY, callback?: SendCallback): void {
    if (this.readyState !== ReadyState.OPEN || this.closeSent) {
      this.refuseSend(callback);
      return;
    }
    this.queueControl(Opcode.Pong, toPayloadBuffer(data));
    this.afterQueue(callback);
  }

  /**
   * @internal Queue bytes already framed (by `broadcast`, which frames a message once for every
   * connection). Returns false past the high-water mark, like `send()`.
   */
  sendFrame(frame: Buffer): boolean {
    if (this.readyState !== ReadyState.OPEN || this.closeSent) return false;
    const staging = this.staging();
    if (staging !== null) {
      // Behind messages being compressed, like any other message.
      this.stage(staging, { opcode: Opcode.Binary, payload: frame, compress: false, fragmentSize: 0, callback: undefined, framed: true });
    } else {
      this.queue().framed(frame);
    }
    return this.afterQueue(undefined);
  }

  private queueControl(opcode: number, payload: Buffer): void {
    this.queue().control(opcode, payload);
    this.scheduleFlush();
  }

  private afterQueue(callback: SendCallback | undefined): boolean {
    if (callback !== undefined) (this.pendingCallbacks ??= []).push(callback);
    const buffered = this.bufferedAmount;
    if (buffered > this.config.maxBufferedBytes) {
      // The peer reads slower than the application writes and the application did not stop at
      // `false`: drop it rather than let memory grow (1008: the peer broke our policy).
      this.failConnection(CloseCode.PolicyViolation, 'peer too slow: outgoing buffer limit exceeded', null, true);
      return false;
    }
    this.scheduleFlush();
    if (buffered > this.config.highWaterMark) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  private refuseSend(callback: SendCallback | undefined): false {
    if (this.readyState === ReadyState.CONNECTING) throw new InvalidStateError('WebSocket is still connecting');
    if (callback !== undefined) {
      const error = new InvalidStateError(`WebSocket is ${this.readyState === ReadyState.CLOSED ? 'closed' : 'closing'}`);
      process.nextTick(callback, error);
    }
    return false;
  }

  private scheduleFlush(): void {
    // Inside the read loop the flush comes when the chunk is done; elsewhere, in a microtask, so
    // that everything sent in one turn of the event loop leaves in one write.
    if (this.inReadLoop || this.flushQueued) return;
    this.flushQueued = true;
    if (dirty.length === 0) queueMicrotask(WebSocket.flushDirty);
    dirty.push(this);
  }

  private static flushDirty(): void {
    const connections = dirty;
    dirty = [];
    for (const connection of connections) {
      connection.flushQueued = false;
      connection.flush();
    }
  }

  private flush(): void {
    const socket = this.socket;
    const out = this.out;
    if (out === null || out.length === 0 || socket === null) return;
    if (socket.destroyed || socket.writableEnded) {
      // Nothing more can be written; the 'close' that is coming fails the callbacks.
      return;
    }
    const wasIdle = socket.writableLength === 0;
    const callbacks = this.pendingCallbacks;
    this.pendingCallbacks = null;
    const total = out.length;
    const pending = out.take();
    if (this.traceOut !== null) for (const buffer of pending) this.traceOut(buffer);

    // One callback per connection, made the first time it writes (the socket calls it without `this`).
    const onWriteDone = (this.onWriteDone ??= (error) => this.writeDone(error));
    // Node calls back without an error for a write cut short by destroy(): only a write that
    // completed at once, or before the socket was destroyed, counts as sent.
    let handedOver = false;
    const done =
      callbacks === null
        ? onWriteDone
        : (error?: Error | null) => {
            onWriteDone(error);
            const failure =
              error ?? (handedOver || !socket.destroyed ? undefined : new InvalidStateError('WebSocket closed before the data was sent'));
            for (const callback of callbacks) callback(failure);
          };

    if (pending.length === 1 && total <= WRITE_PIECE) {
      socket.write(pending[0]!, done);
    } else if (total <= 16 * 1024) {
      // A few small pieces: one small copy, one system call.
      socket.write(Buffer.concat(pending, total), done);
    } else {
      // Large payloads go as they are (no copy), in pieces so the write deadline sees progress;
      // corked, so the pieces leave in one writev.
      const pieces: Buffer[] = [];
      for (const buffer of pending) {
        if (buffer.length <= WRITE_PIECE) pieces.push(buffer);
        else for (let start = 0; start < buffer.length; start += WRITE_PIECE) pieces.push(buffer.subarray(start, start + WRITE_PIECE));
      }
      socket.cork();
      const last = pieces.length - 1;
      for (let i = 0; i < last; i++) socket.write(pieces[i]!, onWriteDone);
      socket.write(pieces[last]!, done);
      socket.uncork();
    }

    handedOver = socket.writableLength === 0;
    if (!handedOver) {
      // Bytes are waiting on the peer: watch the write deadline.
      const watch = (this.writeWatch ??= { done: 0, checkedDone: 0, checkedQueue: 0, progressAt: 0 });
      if (wasIdle || watch.progressAt === 0) watch.progressAt = Date.now();
      if (this.config.writeTimeout > 0) this.scheduleWheel();
      // The write side is behind: stop reading until it catches up, so memory stays bounded.
      if (socket.writableLength > this.config.highWaterMark) this.pauseReading(PAUSED_BY_WRITES);
    }
  }

  /** Every completed socket write: progress for the write deadline, and maybe the end of backpressure. */
  private writeDone(error?: Error | null): void {
    const watch = this.writeWatch;
    if (watch !== null && error == null) {
      watch.done++;
      // Nothing waits on the peer any more: the watch is done.
      if (this.socket!.writableLength === 0) this.writeWatch = null;
    }
    if (!this.needDrain && (this.pausedBy & PAUSED_BY_WRITES) === 0) return;
    if (this.bufferedAmount > this.config.highWaterMark) return;
    this.resumeReading(PAUSED_BY_WRITES);
    if (this.needDrain) {
      this.needDrain = false;
      if (this.readyState === ReadyState.OPEN) this.emit('drain');
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Flow control for the application
  // ---------------------------------------------------------------------------------------------

  /** Stop reading from the peer (TCP backpressure reaches it) until `resume()`. */
  pause(): void {
    this.pauseReading(PAUSED_BY_APPLICATION);
  }

  resume(): void {
    this.resumeReading(PAUSED_BY_APPLICATION);
  }

  private pauseReading(reason: number): void {
    if (this.pausedBy === 0 && this.socket !== null) this.socket.pause();
    this.pausedBy |= reason;
  }

  private resumeReading(reason: number): void {
    if (this.pausedBy === 0) return;
    this.pausedBy &= ~reason;
    if (this.pausedBy === 0 && this.socket !== null) {
      // Time spent paused by us is not the peer's silence.
      this.lastReceivedAt = Date.now();
      this.socket.resume();
    }
  }

  /**
   * `for await (const { data, isBinary } of connection)`: messages in order until the connection
   * closes. Reading pauses while more than `bufferLimit` messages wait for the loop.
   */
  async *messages(bufferLimit = 16): AsyncGenerator<Message, void, undefined> {
    const queue: Message[] = [];
    let wake: (() => void) | null = null;
    let ended = this.readyState === ReadyState.CLOSED;
    const onMessage = (data: Buffer, isBinary: boolean): void => {
      queue.push({ data, isBinary });
      if (queue.length >= bufferLimit) this.pauseReading(PAUSED_BY_ITERATOR);
      wake?.();
    };
    const onClose = (): void => {
      ended = true;
      wake?.();
    };
    this.on('message', onMessage);
    this.on('close', onClose);
    try {
      for (;;) {
        const next = queue.shift();
        if (next !== undefined) {
          if (queue.length < bufferLimit) this.resumeReading(PAUSED_BY_ITERATOR);
          yield next;
          continue;
        }
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    } finally {
      this.off('message', onMessage);
      this.off('close', onClose);
      this.resumeReading(PAUSED_BY_ITERATOR);
    }
  }

  [Symbol.asyncIterator](): AsyncGenerator<Message, void, undefined> {
    return this.messages();
  }

  // ---------------------------------------------------------------------------------------------
  // The ping loop and the deadlines
  // ---------------------------------------------------------------------------------------------

  /** @internal Called by the timer wheel: do whatever is due, then ask for the next wake-up. */
  onWheel(now: number): void {
    if (this.readyState === ReadyState.CLOSED || this.socket === null) return;
    const config = this.config;

    const closing = this.closing;
    if (closing !== null && closing.deadline !== 0 && now >= closing.deadline) {
      this.drop(new ConnectionTimeoutError('close', `no close handshake within ${config.closeTimeout} ms`));
      return;
    }

    const watch = this.writeWatch;
    if (watch !== null && this.socket.writableLength > 0 && config.writeTimeout > 0) {
      // Progress: a write completed, or the kernel took bytes of the one in flight.
      const queued = writeQueueSize(this.socket);
      if (watch.done !== watch.checkedDone || queued < watch.checkedQueue) watch.progressAt = now;
      watch.checkedDone = watch.done;
      watch.checkedQueue = queued;
      if (now - watch.progressAt >= config.writeTimeout) {
        this.drop(new ConnectionTimeoutError('write', `peer accepted no data for ${config.writeTimeout} ms`));
        return;
      }
    }

    if (config.pingInterval > 0 && this.readyState === ReadyState.OPEN) {
      if (this.pausedBy !== 0) this.lastReceivedAt = now;
      if (now - this.lastReceivedAt >= config.pongTimeout) {
        this.drop(new ConnectionTimeoutError('pong', `nothing received for ${config.pongTimeout} ms`));
        return;
      }
      if (now >= this.nextPingAt) {
        this.nextPingAt = now + config.pingInterval;
        if (!this.closeSent) this.queueControl(Opcode.Ping, EMPTY);
      }
    }
    this.scheduleWheel();
  }

  /** Ask the wheel for the earliest moment something may be due. */
  private scheduleWheel(): void {
    const config = this.config;
    let at = Infinity;
    if (this.closing !== null && this.closing.deadline !== 0) at = this.closing.deadline;
    if (this.socket !== null && this.socket.writableLength > 0 && config.writeTimeout > 0) {
      // Check a few times per deadline, so a stall is caught within a fifth of it.
      at = Math.min(at, Date.now() + Math.max(config.writeTimeout / 5, 1));
    }
    if (config.pingInterval > 0 && this.readyState === ReadyState.OPEN) {
      at = Math.min(at, this.nextPingAt, this.lastReceivedAt + config.pongTimeout);
    }
    if (at !== Infinity) sharedWheel.schedule(this, at);
  }

  // ---------------------------------------------------------------------------------------------
  // Closing
  // ---------------------------------------------------------------------------------------------

  /**
   * Start the closing handshake (RFC 6455 §7.1.2): send a close frame after whatever is queued, send
   * nothing more, wait up to `closeTimeout` for the peer's close and the end of TCP. Calling it again
   * does nothing. `code` is 1000 or 3000-4999 (or another code valid on the wire); `reason` at most
   * 123 bytes of UTF-8.
   */
  close(code?: number, reason = ''): void {
    if (code !== undefined && !isValidApplicationCloseCode(code)) {
      throw new RangeError(`invalid close code ${code} (RFC 6455 §7.4)`);
    }
    if (Buffer.byteLength(reason) > MAX_CLOSE_REASON_BYTES) {
      throw new RangeError(`close reason longer than ${MAX_CLOSE_REASON_BYTES} bytes`);
    }
    if (this.readyState === ReadyState.CONNECTING) {
      this.abortConnecting();
      return;
    }
    if (this.readyState !== ReadyState.OPEN || this.closeSent) return;
    this.sendCloseFrame(code, reason);
    this.readyState = ReadyState.CLOSING;
    this.startCloseDeadline();
    this.afterCloseHandshake();
  }

  /** Destroy the connection now, without a closing handshake. */
  terminate(): void {
    if (this.readyState === ReadyState.CONNECTING) {
      this.abortConnecting();
      return;
    }
    if (this.readyState === ReadyState.CLOSED) return;
    this.readyState = ReadyState.CLOSING;
    this.socket?.destroy();
  }

  private abortConnecting(): void {
    this.abortHandshake?.();
  }

  /** @internal The server registers the connection in its registry, which it leaves when it closes. */
  setRegistry(registry: { delete(connection: WebSocket): void }): void {
    this.registry = registry;
  }

  /** @internal The client handshake registers how to abort it. */
  setConnecting(abort: () => void): void {
    this.abortHandshake = abort;
  }

  /** @internal The client handshake failed: the connection never opened. */
  failConnecting(error: Error): void {
    if (this.readyState !== ReadyState.CONNECTING) return;
    this.readyState = ReadyState.CLOSED;
    this.abortHandshake = null;
    if (this.listenerCount('error') > 0) this.emit('error', error);
    this.emit('close', CloseCode.Abnormal, '', false);
  }

  private sendCloseFrame(code: number | undefined, reason: string): void {
    this.closeSent = true;
    const payload = buildClosePayload(code, code === undefined ? '' : reason);
    // RFC 6455 §5.5.1: the close frame comes after every message already sent, compressed ones included.
    const staging = this.staging();
    if (staging !== null) {
      this.stage(staging, { opcode: Opcode.Close, payload, compress: false, fragmentSize: 0, callback: undefined });
    } else {
      this.queueControl(Opcode.Close, payload);
    }
  }

  private closeDetails(): CloseDetails {
    return (this.closing ??= { deadline: 0, peerCode: CloseCode.Abnormal, peerReason: '', failCode: 0, failReason: '' });
  }

  private startCloseDeadline(): void {
    const details = this.closeDetails();
    if (details.deadline !== 0 || this.config.closeTimeout <= 0) return;
    details.deadline = Date.now() + this.config.closeTimeout;
    this.scheduleWheel();
  }

  /**
   * Once close frames have gone both ways, TCP ends. RFC 6455 §7.1.1: "the server SHOULD close the
   * underlying TCP connection first", so a server ends it now; a client waits for the server to
   * (until the close deadline).
   */
  private afterCloseHandshake(): void {
    if (!(this.closeSent && this.closeReceived)) return;
    if (this.role === 'server') this.endTcp();
  }

  /**
   * RFC 6455 §7.1.7: send a close frame with `code` (unless one was sent already) and close the TCP
   * connection. `dropNow` skips waiting for the frame to be read (the peer is not reading anyway).
   */
  private failConnection(code: number, message: string, error: Error | null, dropNow = false): void {
    if (this.readyState === ReadyState.CLOSED) return;
    const details = this.closeDetails();
    if (details.failCode === 0) {
      details.failCode = code;
      details.failReason = message;
    }
    if (error !== null && this.listenerCount('error') > 0) this.emit('error', error);
    // Failing: messages still waiting for compression are dropped, the close frame goes now.
    this.dropStaged();
    if (!this.closeSent) this.sendCloseFrame(code, truncateUtf8(message, MAX_CLOSE_REASON_BYTES));
    this.readyState = ReadyState.CLOSING;
    this.startCloseDeadline();
    if (dropNow) {
      this.flush();
      this.socket?.destroy();
    } else {
      this.endTcp();
    }
  }

  /** End our side of TCP after everything queued is written; the peer's FIN (or the deadline) completes it. */
  private endTcp(): void {
    const staging = this.staging();
    if (staging !== null) {
      staging.endWhenStaged = true;
      return;
    }
    this.flush();
    const socket = this.socket;
    if (socket !== null && !socket.writableEnded) socket.end();
  }

  /** Forget messages waiting for compression, failing their callbacks. */
  private dropStaged(): void {
    const compression = this.staging();
    if (compression === null) return;
    const staged = compression.staged!;
    compression.staged = null;
    compression.stagedBytes = 0;
    compression.compressing = false;
    const error = new InvalidStateError('WebSocket closed before the data was sent');
    for (const message of staged) if (message.callback !== undefined) process.nextTick(message.callback, error);
  }

  private drop(error: ConnectionTimeoutError): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
    if (this.readyState === ReadyState.CLOSED) return;
    this.readyState = ReadyState.CLOSING;
    this.socket?.destroy();
  }

  /**
   * The peer ended its side of TCP. After a close handshake that is the expected end (a client
   * waits for it, §7.1.1); before one, the connection is over anyway: end ours too (sockets from
   * a `node:http` server are half-open capable and would otherwise stay open).
   */
  private onSocketEnd(): void {
    this.endTcp();
  }

  private onSocketError(error: Error): void {
    // A reset or a broken pipe: the 'close' that follows reports 1006.
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  /** The one place the connection ends: the socket is closed, whatever closed it. */
  private onSocketClose(): void {
    if (this.readyState === ReadyState.CLOSED) return;
    this.readyState = ReadyState.CLOSED;
    sharedWheel.cancel(this);
    this.receiver?.destroy();
    const socket = this.socket!;
    socket.off('data', WebSocket.socketOnData);
    socket.off('end', WebSocket.socketOnEnd);
    socket.off('close', WebSocket.socketOnClose);
    socket.off('error', WebSocket.socketOnError);
    // A late 'error' from a destroyed socket must not become an uncaught exception.
    socket.on('error', ignoreError);
    delete (socket as SocketWithConnection)[kConnection];
    this.onWriteDone = null;
    this.traceOut = null;
    this.out?.clear();
    this.dropStaged();
    this.compression?.deflate.close();
    const callbacks = this.pendingCallbacks;
    this.pendingCallbacks = null;
    if (callbacks !== null) {
      const error = new InvalidStateError('WebSocket closed before the data was sent');
      for (const callback of callbacks) callback(error);
    }

    const wasClean = this.closeSent && this.closeReceived;
    let code: number;
    let reason: string;
    const details = this.closing;
    if (this.closeReceived && details !== null) {
      code = details.peerCode;
      reason = details.peerReason;
    } else if (details !== null && details.failCode !== 0) {
      code = details.failCode;
      reason = details.failReason;
    } else {
      // RFC 6455 §7.1.5: no close frame received: "The WebSocket Connection Close Code is considered to be 1006."
      code = CloseCode.Abnormal;
      reason = '';
    }
    // Gone from the registry before anyone hears of the close (a 'close' listener may count clients).
    this.registry?.delete(this);
    this.registry = null;
    this.emit('close', code, reason, wasClean);
  }
}

const EMPTY = Buffer.alloc(0);

const kConnection = Symbol('wsrfc.connection');
type SocketWithConnection = Socket & { [kConnection]?: WebSocket };

function ignoreError(): void {}

/** The receiver's handler when tracing: the connection itself, plus every incoming frame to the tracer. */
function tracingHandler(connection: WebSocket, trace: FrameTracer): ReceiverHandler {
  return {
    onMessage: (data, isBinary) => connection.onMessage(data, isBinary),
    onPing: (data) => connection.onPing(data),
    onPong: (data) => connection.onPong(data),
    onClose: (code, reason) => connection.onClose(code, reason),
    onError: (error) => connection.onError(error),
    onResumed: () => connection.onResumed(),
    onFrame: (frame) => trace({ ...frame, direction: 'in' }),
  };
}

function toPayloadBuffer(data: Data): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return toBuffer(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  throw new TypeError('data must be a string, a Buffer, an ArrayBuffer or a typed array');
}

/** Bytes the kernel has not taken yet from the write in flight (libuv's queue); 0 when unknown. */
function writeQueueSize(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { writeQueueSize?: unknown } })._handle;
  const size = handle?.writeQueueSize;
  return typeof size === 'number' ? size : 0;
}

/** Cut a string to at most `maxBytes` of UTF-8 without splitting a character. */
function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let result = '';
  let bytes = 0;
  for (const char of text) {
    const size = Buffer.byteLength(char);
    if (bytes + size > maxBytes) break;
    result += char;
    bytes += size;
  }
  return result;
}
