import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { CloseCode, Opcode, ReadyState } from '../protocol/constants.js';
import type { PerMessageDeflate } from './deflate-zlib.js';
import { ConnectionTimeoutError, InvalidStateError } from '../protocol/errors.js';
import { inflateBudget } from '../protocol/inflate-budget.js';
import { toPayload, type Data, type ResolvedConnectionOptions, type SendOptions } from '../protocol/options.js';
import { Protocol, type ProtocolHandler } from '../protocol/protocol.js';
import type { SendCallback } from '../protocol/sender.js';
import { sharedWheel, type WheelTarget } from './timer-wheel.js';
import { isUtf8Payload } from '../protocol/utf8.js';
import { MaskKeySource } from '../protocol/writer.js';
import { WRITE_COST, ownMemory, waitingWrite } from './write-cost.js';

/**
 * The driver of a WebSocket connection, server or client side: the thin layer between a stream
 * (a net.Socket, a tls.TLSSocket, any stream.Duplex) and the protocol state machine
 * (src/protocol/protocol.ts). The driver decides nothing about the protocol; it
 *
 * - moves bytes: stream `data` into `protocol.receive()`, the protocol's output into one stream
 *   write per turn of the event loop (replies to one read leave in one write);
 * - applies backpressure both ways: `send()` returns false past `highWaterMark` and `'drain'`
 *   follows; reading pauses while the write side, the application or an inflation is behind;
 * - keeps the deadlines on the shared timer wheel (the protocol says when to wake it; the write
 *   deadline is the driver's own, since only it sees the stream);
 * - ends or destroys the stream when the protocol says so, and reports the close exactly once.
 */

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

/** What the handshake agreed on, for the connection that takes the socket over. */
export interface Opened {
  /** A socket, or an HTTP/2 stream (RFC 8441). */
  socket: Duplex;
  /** The subprotocol the server chose, or ''. */
  protocol: string;
  /** The Sec-WebSocket-Extensions value agreed, or ''. */
  extensions: string;
  /** permessage-deflate, when agreed. */
  deflate: PerMessageDeflate | null;
  /** The 101's headers (lower-case names). */
  headers: Record<string, string>;
  /** Bytes that came after the 101's head: the server's first frames, possibly. */
  rest: Buffer;
}

/** How a server hands a stream whose handshake it completed to a new connection. */
export interface ServerSide {
  stream: Duplex;
  protocol: string;
  extensions: string;
  deflate: PerMessageDeflate | null;
  id: number;
  data: unknown;
  /** The server's registry, left (by id) when the connection closes. */
  registry: { delete(id: number): unknown };
}

// Why reading is paused: each reason is lifted on its own.
export const PAUSED_BY_APPLICATION = 1;
const PAUSED_BY_WRITES = 2;
export const PAUSED_BY_ITERATOR = 4;
const PAUSED_BY_INFLATE = 8;

/**
 * Output beyond a small write waits in the driver's backlog and goes to the stream in pieces of
 * this size, a window at a time: each completed write is progress the write deadline can see (the
 * stream API reports nothing finer than a completed write). The window starts small and doubles
 * while the stream takes whole windows at once (a fast peer: fewer, larger writes); the first
 * write that has to wait brings it back to the minimum (a slow peer: progress seen in small steps).
 */
const WRITE_PIECE_BYTES = 64 * 1024;
const WRITE_WINDOW_MIN = 128 * 1024;
const WRITE_WINDOW_MAX = 4 * 1024 * 1024;
/** Up to this many bytes in several pieces are joined into one buffer: one small copy, one system call. */
const WRITE_JOIN_BYTES = 16 * 1024;

/** One pool of random mask keys for every client connection of the process. */
const maskKeys = new MaskKeySource();

/** Connections with bytes queued outside the read loop, flushed together in one microtask. */
let dirty: Connection[] = [];

/** The write deadline's bookkeeping, made when a write has to wait on the peer. */
interface WriteWatch {
  /** Stream writes completed since the watch began. */
  done: number;
  /** `done` at the last check. */
  checkedDone: number;
  /** The last time the peer took bytes. */
  progressAt: number;
}

/** A piece of output not yet handed to the stream, and the send callbacks due once it is written. */
interface Pending {
  piece: Buffer;
  callbacks: SendCallback[] | null;
}

const kConnection = Symbol('wsrfc.connection');
type StreamWithConnection = Duplex & { [kConnection]?: Connection };

/** The driver: one per WebSocket, held in the WebSocket's private field. */
export class Connection implements ProtocolHandler, WheelTarget {
  wheelTick = 0;
  wheelIndex = 0;
  id = 0;
  protocolName = '';
  extensions = '';
  pausedBy = 0;
  private stream: Duplex | null = null;
  private core: Protocol | null = null;
  private deflate: PerMessageDeflate | null = null;
  private registry: ServerSide['registry'] | null = null;
  /** Client: aborts the handshake in progress. */
  private abortHandshake: (() => void) | null = null;
  private closed = false;
  /** Queued for the next microtask's flush. */
  flushQueued = false;
  private inReadLoop = false;
  private needDrain = false;
  private writeWatch: WriteWatch | null = null;
  /** Output taken from the protocol and not yet handed to the stream (see WRITE_PIECE_BYTES). */
  private backlog: Pending[] | null = null;
  private backlogHead = 0;
  private backlogBytes = 0;
  /** The protocol asked to end the stream while a backlog was waiting: end it once written. */
  private endWhenWritten = false;
  private writeWindow = WRITE_WINDOW_MIN;
  private onWriteDone: ((error?: Error | null) => void) | null = null;
  /** Stream writes not called back yet (write-cost.ts). */
  private writesWaiting = 0;

  constructor(
    /** The public object whose events the driver emits. */
    private readonly socket: EventEmitter<WebSocketEventMap>,
    private readonly config: ResolvedConnectionOptions,
  ) {}

  get readyState(): ReadyState {
    if (this.closed) return ReadyState.CLOSED;
    return this.core === null ? ReadyState.CONNECTING : this.core.state;
  }

  get bufferedAmount(): number {
    return (
      (this.core === null ? 0 : this.core.bufferedOutput) +
      this.backlogBytes +
      (this.stream === null ? 0 : this.stream.writableLength)
    );
  }

  /** What permessage-deflate agreed on this connection, or null (a publication groups by it). */
  get deflateParams(): PerMessageDeflate['params'] | null {
    return this.deflate?.params ?? null;
  }

  remote(field: 'remoteAddress' | 'remotePort'): unknown {
    return (this.stream as Partial<Record<typeof field, unknown>> | null)?.[field];
  }

  // ---------------------------------------------------------------------------------------------
  // Opening: a client's handshake, or a stream from the server
  // ---------------------------------------------------------------------------------------------

  /** Client: how to abort the handshake in progress (set by whoever started it). */
  connecting(abort: () => void): void {
    this.abortHandshake = abort;
  }

  /** Client: the handshake succeeded; run the connection over its stream. */
  opened({ socket, protocol, extensions, deflate, headers, rest }: Opened): void {
    this.abortHandshake = null;
    this.attach(socket, 'client', protocol, extensions, deflate);
    this.socket.emit('upgrade', headers);
    this.socket.emit('open');
    // Reading starts on a later turn: code after `await connect()` runs in a microtask after
    // 'open', and must get to attach its 'message' listener before frames that came with the 101.
    setImmediate(() => this.start(rest));
  }

  /** Client: the handshake failed. */
  failConnecting(error: Error): void {
    if (this.readyState !== ReadyState.CONNECTING) return;
    this.closed = true;
    this.abortHandshake = null;
    if (this.socket.listenerCount('error') > 0) this.socket.emit('error', error);
    this.socket.emit('close', CloseCode.Abnormal, '', false);
  }

  adopt(side: ServerSide): void {
    this.id = side.id;
    this.registry = side.registry;
    this.attach(side.stream, 'server', side.protocol, side.extensions, side.deflate);
  }

  /** Take over a stream whose handshake is done; nothing is read until `start()`. */
  private attach(
    stream: Duplex,
    role: 'server' | 'client',
    protocol: string,
    extensions: string,
    deflate: PerMessageDeflate | null,
  ): void {
    this.stream = stream;
    this.protocolName = protocol;
    this.extensions = extensions;
    this.deflate = deflate;
    const net = stream as Partial<{ setNoDelay(noDelay: boolean): void; setTimeout(ms: number): void }>;
    net.setNoDelay?.(true);
    net.setTimeout?.(0);
    // Listeners shared by every connection (they find theirs through the stream), so an idle
    // connection carries no closures. Paused first: a 'data' listener would start the flow.
    (stream as StreamWithConnection)[kConnection] = this;
    stream.pause();
    stream.on('data', onStreamData);
    stream.on('end', onStreamEnd);
    stream.on('close', onStreamClose);
    stream.on('error', onStreamError);
    this.core = new Protocol(role, this.config, this, Date.now(), {
      compression: deflate,
      inflateBudget,
      maskKeys: role === 'client' ? maskKeys : null,
    });
  }

  /** Start reading; `head` holds bytes that arrived with the end of the handshake. */
  start(head: Buffer): void {
    if (head.length > 0 && !this.closed) this.onData(head);
    if (this.pausedBy === 0 && this.stream !== null && !this.closed) this.stream.resume();
  }

  // ---------------------------------------------------------------------------------------------
  // The read loop
  // ---------------------------------------------------------------------------------------------

  onData(chunk: Buffer): void {
    const core = this.core!;
    this.inReadLoop = true;
    try {
      core.receive(chunk, Date.now());
    } finally {
      this.inReadLoop = false;
    }
    // Every reply the chunk produced (echoes, pongs) goes out in one write.
    if (core.hasOutput) this.flush();
    // A compressed frame is being inflated and input piles up behind it: stop reading meanwhile.
    if (core.bufferedInput > this.config.highWaterMark) this.pauseReading(PAUSED_BY_INFLATE);
  }

  onMessage(data: Buffer, isBinary: boolean): void {
    this.socket.emit('message', data, isBinary);
  }

  onPing(data: Buffer): void {
    this.socket.emit('ping', data);
  }

  onPong(data: Buffer): void {
    this.socket.emit('pong', data);
  }

  onInputResumed(): void {
    if ((this.pausedBy & PAUSED_BY_INFLATE) !== 0 && this.core!.bufferedInput <= this.config.highWaterMark) {
      this.resumeReading(PAUSED_BY_INFLATE);
    }
  }

  pauseReading(reason: number): void {
    if (this.pausedBy === 0) this.stream?.pause();
    this.pausedBy |= reason;
  }

  resumeReading(reason: number): void {
    if (this.pausedBy === 0) return;
    this.pausedBy &= ~reason;
    if (this.pausedBy === 0 && this.stream !== null && !this.closed) {
      this.core!.readingResumed(Date.now());
      this.stream.resume();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The write loop
  // ---------------------------------------------------------------------------------------------

  send(data: Data, options: SendOptions | undefined, callback: SendCallback | undefined): boolean {
    const core = this.core;
    if (core === null || !core.canSend) return this.refuse(callback);
    const payload = toPayload(data);
    const binary = options?.binary ?? typeof data !== 'string';
    // RFC 6455 §5.6: a text frame carries UTF-8. Strings always encode to valid UTF-8; buffers might not.
    if (!binary && typeof data !== 'string' && !isUtf8Payload(payload))
      throw new TypeError('a buffer sent as text must be valid UTF-8');
    const fragmentSize = options?.fragmentSize ?? this.config.fragmentSize;
    core.send(binary ? Opcode.Binary : Opcode.Text, payload, options?.compress !== false, fragmentSize, callback);
    return this.afterQueue();
  }

  sendControl(opcode: typeof Opcode.Ping | typeof Opcode.Pong, data: Data, callback: SendCallback | undefined): void {
    const core = this.core;
    if (core === null || !core.canSend) {
      this.refuse(callback);
      return;
    }
    core.sendControl(opcode, toPayload(data), callback);
    this.afterQueue();
  }

  sendFramed(frame: Buffer): boolean {
    const core = this.core;
    if (core === null || !core.canSend) return false;
    core.sendFramed(frame);
    return this.afterQueue();
  }

  private afterQueue(): boolean {
    const buffered = this.bufferedAmount;
    if (buffered > this.config.maxBufferedBytes) {
      // The peer reads slower than the application writes and the application did not stop at
      // `false`: drop it rather than let memory grow (1008: the peer broke our policy).
      this.core!.fail(
        CloseCode.PolicyViolation,
        'peer too slow: outgoing buffer limit exceeded',
        null,
        true,
        Date.now(),
      );
      return false;
    }
    if (buffered > this.config.highWaterMark) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  private refuse(callback: SendCallback | undefined): false {
    if (this.readyState === ReadyState.CONNECTING) throw new InvalidStateError('WebSocket is still connecting');
    if (callback !== undefined) {
      process.nextTick(callback, new InvalidStateError(`WebSocket is ${this.closed ? 'closed' : 'closing'}`));
    }
    return false;
  }

  onOutput(): void {
    // Inside the read loop the flush comes when the chunk is done; elsewhere, in a microtask, so
    // that everything sent in one turn of the event loop leaves in one write.
    if (this.inReadLoop || this.flushQueued) return;
    this.flushQueued = true;
    if (dirty.length === 0) queueMicrotask(flushDirty);
    dirty.push(this);
  }

  flush(): void {
    const stream = this.stream;
    const core = this.core;
    // Nothing more can be written once the stream is going; its 'close' fails the callbacks.
    if (stream === null || core === null || !core.hasOutput || stream.destroyed || stream.writableEnded) return;
    const pending = core.takeOutput();
    const callbacks = core.takeCallbacks();
    let total = 0;
    for (const buffer of pending) total += buffer.length;

    if (this.backlog === null && total <= WRITE_JOIN_BYTES) {
      // The common case (replies to one read, small messages): one write, now.
      const wasIdle = stream.writableLength === 0;
      // Behind a slow peer, this write waits: it must not keep alive more than it holds (write-cost.ts).
      const buffer = !wasIdle
        ? waitingWrite(pending, total)
        : pending.length === 1
          ? pending[0]!
          : Buffer.concat(pending, total);
      this.write(stream, buffer, callbacks);
      if (stream.writableLength > 0) this.behind(wasIdle);
      return;
    }
    // Large output, or output behind a backlog: in pieces, handed over a window at a time. Views,
    // not copies (unless they would keep far more alive than they hold: write-cost.ts).
    const backlog = (this.backlog ??= []);
    for (const buffer of ownMemory(pending, total)) {
      for (let at = 0; at < buffer.length; at += WRITE_PIECE_BYTES) {
        const piece =
          at === 0 && buffer.length <= WRITE_PIECE_BYTES ? buffer : buffer.subarray(at, at + WRITE_PIECE_BYTES);
        backlog.push({ piece, callbacks: null });
      }
    }
    if (callbacks !== null) backlog[backlog.length - 1]!.callbacks = callbacks;
    this.backlogBytes += total;
    this.pump();
  }

  /** Hand backlog pieces to the stream while it holds less than a window. */
  private pump(): void {
    const stream = this.stream!;
    const backlog = this.backlog;
    if (backlog === null || this.closed || stream.destroyed) return;
    const wasIdle = stream.writableLength === 0;
    do {
      // Corked, so the pieces of one window leave in one writev.
      stream.cork();
      while (this.backlogHead < backlog.length && stream.writableLength < this.writeWindow) {
        const next = backlog[this.backlogHead]!;
        backlog[this.backlogHead++] = undefined as unknown as Pending;
        this.backlogBytes -= next.piece.length;
        this.write(stream, next.piece, next.callbacks);
      }
      stream.uncork();
      // Taken whole at once: the next window may be larger, and goes now rather than a tick later.
      const taken = stream.writableLength === 0;
      this.writeWindow = taken ? Math.min(this.writeWindow * 2, WRITE_WINDOW_MAX) : WRITE_WINDOW_MIN;
      if (!taken || stream.destroyed) break;
    } while (this.backlogHead < backlog.length);
    if (this.backlogHead === backlog.length) {
      this.backlog = null;
      this.backlogHead = 0;
      if (this.endWhenWritten && !stream.writableEnded) stream.end();
    }
    if (stream.writableLength > 0 || this.backlog !== null) this.behind(wasIdle);
  }

  private write(stream: Duplex, buffer: Buffer, callbacks: SendCallback[] | null): void {
    // One callback per connection, made the first time it writes (the stream calls it without `this`).
    const onWriteDone = (this.onWriteDone ??= (error) => this.writeDone(error));
    this.writesWaiting++;
    if (callbacks === null) {
      stream.write(buffer, onWriteDone);
      return;
    }
    // Node calls back without an error for a write cut short by destroy(): only a write that
    // completed at once, or before the stream was destroyed, counts as sent.
    let handedOver = false;
    stream.write(buffer, (error?: Error | null): void => {
      onWriteDone(error);
      const failure =
        error ??
        (handedOver || !stream.destroyed
          ? undefined
          : new InvalidStateError('WebSocket closed before the data was sent'));
      for (const callback of callbacks) callback(failure);
    });
    handedOver = stream.writableLength === 0;
  }

  /** Bytes wait on the peer: watch the write deadline, and stop reading past the high-water mark. */
  private behind(wasIdle: boolean): void {
    const watch = (this.writeWatch ??= { done: 0, checkedDone: 0, progressAt: 0 });
    if (wasIdle || watch.progressAt === 0) watch.progressAt = Date.now();
    if (this.config.writeTimeout > 0) this.scheduleWriteCheck(Date.now());
    // The write side is behind: stop reading until it catches up, so memory stays bounded.
    if (this.stream!.writableLength + this.backlogBytes + this.waitingCost > this.config.highWaterMark)
      this.pauseReading(PAUSED_BY_WRITES);
  }

  /** Every completed stream write: progress for the write deadline, the next window, maybe the end of backpressure. */
  private writeDone(error?: Error | null): void {
    this.writesWaiting--;
    const watch = this.writeWatch;
    if (watch !== null && error == null) watch.done++;
    if (this.backlog !== null) this.pump();
    // Nothing waits on the peer any more: the watch is done.
    if (watch !== null && this.backlog === null && this.stream!.writableLength === 0) this.writeWatch = null;
    if (!this.needDrain && (this.pausedBy & PAUSED_BY_WRITES) === 0) return;
    if (this.bufferedAmount + this.waitingCost > this.config.highWaterMark) return;
    this.resumeReading(PAUSED_BY_WRITES);
    if (this.needDrain) {
      this.needDrain = false;
      if (this.readyState === ReadyState.OPEN) this.socket.emit('drain');
    }
  }

  /** What the writes waiting on the peer cost beyond their bytes: each write the stream or the backlog holds. */
  private get waitingCost(): number {
    const backlogged = this.backlog === null ? 0 : this.backlog.length - this.backlogHead;
    return (this.writesWaiting + backlogged) * WRITE_COST;
  }

  /** The stream closed with output still in the backlog: those sends failed. */
  private dropBacklog(): void {
    const backlog = this.backlog;
    if (backlog === null) return;
    this.backlog = null;
    this.backlogBytes = 0;
    const error = new InvalidStateError('WebSocket closed before the data was sent');
    for (let i = this.backlogHead; i < backlog.length; i++) {
      const callbacks = backlog[i]!.callbacks;
      if (callbacks !== null) for (const callback of callbacks) process.nextTick(callback, error);
    }
    this.backlogHead = 0;
  }

  // ---------------------------------------------------------------------------------------------
  // Deadlines
  // ---------------------------------------------------------------------------------------------

  onWake(at: number): void {
    if (!this.closed) sharedWheel.schedule(this, at);
  }

  /** Called by the timer wheel: the write deadline (ours), then the protocol's deadlines. */
  onWheel(now: number): void {
    const core = this.core;
    const stream = this.stream;
    if (this.closed || core === null || stream === null) return;
    const watch = this.writeWatch;
    const writeTimeout = this.config.writeTimeout;
    if (watch !== null && (stream.writableLength > 0 || this.backlog !== null) && writeTimeout > 0) {
      // Progress: a write completed (a piece of at most WRITE_PIECE_BYTES, or a small write).
      if (watch.done !== watch.checkedDone) watch.progressAt = now;
      watch.checkedDone = watch.done;
      if (now - watch.progressAt >= writeTimeout) {
        this.onError(new ConnectionTimeoutError('write', `peer accepted no data for ${writeTimeout} ms`));
        this.onDestroy();
        return;
      }
      this.scheduleWriteCheck(now);
    }
    core.timeout(now, this.pausedBy !== 0);
  }

  /** Check a few times per write deadline, so a stall is caught within a fifth of it. */
  private scheduleWriteCheck(now: number): void {
    sharedWheel.schedule(this, now + Math.max(this.config.writeTimeout / 5, 1));
  }

  // ---------------------------------------------------------------------------------------------
  // Closing: the protocol decides, the driver carries it out
  // ---------------------------------------------------------------------------------------------

  close(code: number | undefined, reason: string): void {
    if (this.readyState === ReadyState.CONNECTING) this.abortHandshake?.();
    else this.core?.close(code, reason, Date.now());
  }

  terminate(): void {
    if (this.readyState === ReadyState.CONNECTING) this.abortHandshake?.();
    else if (!this.closed) this.core?.terminate();
  }

  /** Write what is queued, then end our side of the stream; the peer's end (or a deadline) follows. */
  onEnd(): void {
    this.flush();
    const stream = this.stream;
    if (this.backlog !== null) this.endWhenWritten = true;
    else if (stream !== null && !stream.writableEnded) stream.end();
  }

  onDestroy(): void {
    this.flush();
    this.stream?.destroy();
  }

  onError(error: Error): void {
    if (this.socket.listenerCount('error') > 0) this.socket.emit('error', error);
  }

  onSendFailed(callbacks: SendCallback[]): void {
    const error = new InvalidStateError('WebSocket closed before the data was sent');
    for (const callback of callbacks) process.nextTick(callback, error);
  }

  onStreamEnd(): void {
    this.core?.receiveEnd();
  }

  /** The one place the connection ends: the stream is closed, whatever closed it. */
  onStreamClose(): void {
    if (this.closed) return;
    this.closed = true;
    sharedWheel.cancel(this);
    const stream = this.stream!;
    stream.off('data', onStreamData);
    stream.off('end', onStreamEnd);
    stream.off('close', onStreamClose);
    stream.off('error', onStreamError);
    // A late 'error' from a destroyed stream must not become an uncaught exception.
    stream.on('error', ignoreError);
    delete (stream as StreamWithConnection)[kConnection];
    this.onWriteDone = null;
    this.dropBacklog();
    const { code, reason, wasClean } = this.core!.streamClosed();
    this.deflate?.close();
    // Gone from the registry before anyone hears of the close (a 'close' listener may count clients).
    this.registry?.delete(this.id);
    this.registry = null;
    this.socket.emit('close', code, reason, wasClean);
  }
}

// Shared stream listeners: `this` is the stream, which knows its connection.
function onStreamData(this: StreamWithConnection, chunk: Buffer): void {
  this[kConnection]!.onData(chunk);
}
function onStreamEnd(this: StreamWithConnection): void {
  this[kConnection]!.onStreamEnd();
}
function onStreamClose(this: StreamWithConnection): void {
  this[kConnection]!.onStreamClose();
}
// A reset or a broken pipe: the 'close' that follows reports 1006.
function onStreamError(this: StreamWithConnection, error: Error): void {
  this[kConnection]!.onError(error);
}
function ignoreError(): void {}

function flushDirty(): void {
  const connections = dirty;
  dirty = [];
  for (const connection of connections) {
    connection.flushQueued = false;
    connection.flush();
  }
}
