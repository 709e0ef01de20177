import type { Duplex } from 'node:stream';
import { ReadyState } from '../protocol/constants.js';
import { InvalidStateError } from '../protocol/errors.js';
import { inflateBudget } from '../protocol/inflate-budget.js';
import { toPayload, type Data, type ResolvedConnectionOptions, type SendOptions } from '../protocol/options.js';
import { Protocol, type ProtocolEvent } from '../protocol/protocol.js';
import type { Opcode } from '../protocol/constants.js';
import type { OutgoingMessage, SendCallback } from '../protocol/sender.js';
import type { PerMessageDeflate } from './deflate-zlib.js';
import { Outbox } from './outbox.js';
import type { MessageSourceData, MessageStream, PieceSink } from './streams.js';
import { IncomingStreams, OutgoingStreams } from './streams.js';
import { sharedWheel, type WheelTarget } from './timer-wheel.js';

/**
 * The driver of a WebSocket connection, server or client side: the thin layer between a stream
 * (a net.Socket, a tls.TLSSocket, an HTTP/2 stream, any stream.Duplex) and the protocol state
 * machine (src/protocol/protocol.ts). Every protocol decision is the core's; the driver
 *
 * - hands the core what happened (bytes read, the stream's end, the time, the application's calls,
 *   zlib's results), then, in one place (`settle()`), takes what the core decided and carries it
 *   out: events to the application, bytes to the stream (replies to one read leave in one write),
 *   zlib jobs, the stream's end or destruction, the next wake-up;
 * - applies backpressure both ways: `send()` returns false past `highWaterMark` and `'drain'`
 *   follows; reading pauses while the write side, the application or an inflation is behind;
 * - keeps the deadlines on the shared timer wheel: the core's (it says when), and the write
 *   deadline, which only the driver can watch (it sees the stream), reported to the core as it passes;
 * - reports the close exactly once, with what the core says it reports.
 */

/** What a connection reports to its owner, the public WebSocket (src/websocket/websocket.ts). */
export interface ConnectionEventMap {
  /** A complete message. Text messages are valid UTF-8; `data.toString()` decodes them. */
  message: [data: Buffer, isBinary: boolean];
  /** `streamMessages`: a message begins, as a stream (src/driver/streams.ts); the next waits until it is read. */
  stream: [stream: MessageStream];
  ping: [data: Buffer];
  pong: [data: Buffer];
  /** Exactly once per connection. `wasClean`: close frames were exchanged both ways (RFC 6455 §7.1.4). */
  close: [code: number, reason: string, wasClean: boolean];
  /** Protocol errors, socket errors and timeouts. Only emitted when a listener is attached. */
  error: [error: Error];
  /** The outgoing buffer has drained after `send()` returned false. */
  drain: [];
}

/** Where a connection reports: the public WebSocket, an EventEmitter of (at least) these events. */
export interface ConnectionOwner {
  emit<K extends keyof ConnectionEventMap>(event: K, ...args: ConnectionEventMap[K]): boolean;
  listenerCount(event: 'error' | 'stream'): number;
}

/** What a client handshake agreed on, for the connection that takes the stream over. */
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
const PAUSED_BY_STREAM = 16;

/** Connections the application changed outside of `settle()`, settled together in one microtask. */
let dirty: Connection[] = [];

const kConnection = Symbol('wsrfc.connection');
type StreamWithConnection = Duplex & { [kConnection]?: Connection };

/** The driver: one per WebSocket, held in the WebSocket's private field. */
export class Connection implements WheelTarget, PieceSink {
  wheelTick = 0;
  wheelIndex = 0;
  id = 0;
  subprotocol = '';
  extensions = '';
  pausedBy = 0;
  private stream: Duplex | null = null;
  private core: Protocol | null = null;
  private deflate: PerMessageDeflate | null = null;
  private registry: ServerSide['registry'] | null = null;
  /** Client: aborts the handshake in progress. */
  private abortHandshake: (() => void) | null = null;
  private closed = false;
  /** Queued for the next microtask's settle. */
  settleQueued = false;
  /** Inside `settle()`: what the application does meanwhile is carried out before it returns. */
  private settling = false;
  /** The stream's end (or its destruction) was carried out. */
  private ended = false;
  /** The earliest wake-up asked of the wheel (Infinity: none). */
  private wakeAt = Infinity;
  private needDrain = false;
  /** The bytes taken from the core on their way into the stream (src/driver/outbox.ts). */
  private outbox: Outbox | null = null;
  /** `streamMessages`: the message streams being received (src/driver/streams.ts). */
  private incoming: IncomingStreams | null = null;
  /** Streamed sends (src/driver/streams.ts), made on the first. */
  private outgoing: OutgoingStreams | null = null;
  // zlib's callbacks, made on first use (a connection without compression makes none).
  private onInflated: ((data: Buffer) => boolean) | null = null;
  private onInflateDone: ((error: Error | null) => void) | null = null;
  private onDeflated: ((compressed: Buffer | null) => void) | null = null;

  constructor(
    /** The public object whose events the driver emits. */
    private readonly owner: ConnectionOwner,
    private readonly config: ResolvedConnectionOptions,
  ) {}

  get readyState(): ReadyState {
    if (this.closed) return ReadyState.CLOSED;
    return this.core === null ? ReadyState.CONNECTING : this.core.state;
  }

  get bufferedAmount(): number {
    return (this.core === null ? 0 : this.core.bufferedOutput) + this.unwritten;
  }

  /** Bytes taken from the core and not yet written by the stream. */
  private get unwritten(): number {
    return this.outbox === null ? 0 : this.outbox.unwritten;
  }

  /** Whether messages come as streams ('stream') rather than whole ('message'); see WebSocket. */
  get streamMessages(): boolean {
    return this.core === null ? this.config.streamMessages : this.core.streamMessages;
  }

  set streamMessages(on: boolean) {
    const core = this.core;
    if (core === null) throw new InvalidStateError('WebSocket is still connecting: set streamMessages in its options');
    core.streamMessages = on;
    if (on) this.incoming ??= new IncomingStreams(this.config.highWaterMark, () => this.changed());
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

  /**
   * Client: the handshake succeeded; the connection runs over its stream. Reading starts on a later
   * turn: code after `await connect()` runs in a microtask after 'open', and must get to attach its
   * 'message' listener before frames that came with the 101.
   */
  opened({ socket, protocol, extensions, deflate, rest }: Opened): void {
    this.abortHandshake = null;
    this.attach(socket, 'client', protocol, extensions, deflate);
    setImmediate(() => this.start(rest));
  }

  /** Client: the handshake failed. */
  failConnecting(error: Error): void {
    if (this.readyState !== ReadyState.CONNECTING) return;
    this.closed = true;
    this.abortHandshake = null;
    if (this.owner.listenerCount('error') > 0) this.owner.emit('error', error);
    this.owner.emit('close', 1006, '', false);
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
    subprotocol: string,
    extensions: string,
    deflate: PerMessageDeflate | null,
  ): void {
    this.stream = stream;
    this.subprotocol = subprotocol;
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
    this.core = new Protocol(role, this.config, Date.now(), { compression: deflate, inflateBudget });
    if (this.config.streamMessages) this.streamMessages = true;
    // The ping loop's first deadline, if any.
    this.settle();
  }

  /** Start reading; `head` holds bytes that arrived with the end of the handshake. */
  start(head: Buffer): void {
    if (head.length > 0 && !this.closed) this.onData(head);
    if (this.pausedBy === 0 && this.stream !== null && !this.closed) this.stream.resume();
  }

  // ---------------------------------------------------------------------------------------------
  // The one crossing back: what the core decided, carried out
  // ---------------------------------------------------------------------------------------------

  /**
   * Take everything the core decided since the last step and carry it out, in this order: the
   * events go to the application (whose calls meanwhile are carried out here too), zlib gets its
   * jobs, the bytes go to the stream in one write, the stream is destroyed or ended if the core
   * says so, and the wheel wakes us at the core's next deadline.
   */
  private settle(): void {
    const core = this.core;
    if (core === null || this.settling) return;
    this.settling = true;
    const incoming = this.incoming;
    try {
      for (;;) {
        // The application is behind on its message stream: the parse waits (see streams.ts).
        if (incoming !== null && incoming.holding && core.receiving) break;
        const event = core.nextEvent();
        if (event === null) break;
        this.deliver(event);
      }
    } finally {
      this.settling = false;
    }
    if (this.closed) return;
    if (incoming !== null) this.followReader(incoming.holding && core.receiving);
    if (this.deflate !== null) this.runJobs(core, this.deflate);
    if (core.hasOutput) this.flush(core);
    // Replies still waiting for zlib count too: compression does not wait on the peer, reading would.
    else if (core.pendingReplyBytes > this.config.highWaterMark) this.pauseReading(PAUSED_BY_WRITES);
    if (core.wantsDestroy) {
      this.stream!.destroy();
      return;
    }
    if (core.wantsEnd && !this.ended) this.end();
    const at = core.nextDeadline;
    if (at < this.wakeAt) this.wake(at);
  }

  private deliver(event: ProtocolEvent): void {
    switch (event.type) {
      case 'message':
        this.owner.emit('message', event.data, event.isBinary);
        break;
      case 'messageStart': {
        const stream = this.incoming!.start(event.isBinary);
        // Nobody to read it: discarded as it comes.
        if (this.owner.listenerCount('stream') > 0) this.owner.emit('stream', stream);
        else stream.resume();
        break;
      }
      case 'messageData':
        this.incoming!.data(event.data);
        break;
      case 'messageEnd':
        this.incoming!.end();
        break;
      case 'messageAbort':
        this.incoming!.abort(event.error);
        break;
      case 'ping':
        this.owner.emit('ping', event.data);
        break;
      case 'pong':
        this.owner.emit('pong', event.data);
        break;
      case 'error':
        if (this.owner.listenerCount('error') > 0) this.owner.emit('error', event.error);
        break;
      case 'sendFailed': {
        const error = new InvalidStateError('WebSocket closed before the data was sent');
        for (const callback of event.callbacks) process.nextTick(callback, error);
        break;
      }
    }
  }

  /**
   * After an application's call outside `settle()`: carry the change out in a microtask, so that
   * everything sent in one turn of the event loop leaves in one write; at once when the core wants
   * the stream destroyed (`terminate()`, or a peer too slow for what is sent).
   */
  private changed(): void {
    if (this.settling) return;
    if (this.core!.wantsDestroy) return this.settle();
    if (this.settleQueued) return;
    this.settleQueued = true;
    if (dirty.length === 0) queueMicrotask(settleDirty);
    dirty.push(this);
  }

  /** Called for the microtask of `changed()`. */
  settleNow(): void {
    this.settleQueued = false;
    this.settle();
  }

  /** zlib's jobs (RFC 7692 §7.2): inflate what the receiver waits on, compress what the sender staged. */
  private runJobs(core: Protocol, deflate: PerMessageDeflate): void {
    const inflate = core.takeInflateJob();
    if (inflate !== null) {
      const onData = (this.onInflated ??= (data) => {
        const more = this.core!.inflated(data);
        // A streamed message's output goes to its reader as it comes (which may pause zlib).
        if (!more || this.incoming !== null) this.settle();
        return more;
      });
      const done = (this.onInflateDone ??= (error) => {
        this.core!.inflateDone(error);
        this.settle();
        // The input held behind the inflation is parsed: read again, unless a new one holds it.
        if ((this.pausedBy & PAUSED_BY_INFLATE) !== 0 && this.core!.bufferedInput <= this.config.highWaterMark) {
          this.resumeReading(PAUSED_BY_INFLATE);
        }
      });
      deflate.inflate(inflate.payload, inflate.fin, onData, done);
    }
    const job = core.takeDeflateJob();
    if (job !== null) {
      deflate.deflate(
        job.payload,
        (this.onDeflated ??= (compressed) => {
          this.core!.deflated(compressed);
          this.settle();
        }),
        job.fin,
      );
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The read loop
  // ---------------------------------------------------------------------------------------------

  onData(chunk: Buffer): void {
    const core = this.core!;
    core.receive(chunk, Date.now());
    this.settle();
    // A compressed frame is being inflated and input piles up behind it: stop reading meanwhile.
    if (core.bufferedInput > this.config.highWaterMark) this.pauseReading(PAUSED_BY_INFLATE);
  }

  /** The reader of a message stream is behind (`holding`), or caught up: reading and inflating follow. */
  private followReader(holding: boolean): void {
    if (holding) this.pauseReading(PAUSED_BY_STREAM);
    else this.resumeReading(PAUSED_BY_STREAM);
    if (holding) this.deflate?.pauseInflate();
    else this.deflate?.resumeInflate();
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
    core.sendData(data, options, callback);
    return this.afterQueue(core);
  }

  /**
   * A message from a stream (src/driver/streams.ts): it takes its place now, its chunks go as they
   * come, after the streamed sends before it. The callback gets the source's error if it failed.
   */
  sendStream(source: MessageSourceData, options: SendOptions | undefined, callback: SendCallback | undefined): boolean {
    const core = this.core;
    if (core === null || !core.canSend) return this.refuse(callback);
    const fragmentSize = options?.fragmentSize ?? this.config.fragmentSize;
    (this.outgoing ??= new OutgoingStreams(this)).send(core, source, options, fragmentSize, (outcome) => {
      if (callback !== undefined) process.nextTick(callback, outcome.error);
      else if (outcome.sourceFailed && this.owner.listenerCount('error') > 0) this.owner.emit('error', outcome.error!);
    });
    return this.afterQueue(core);
  }

  /** PieceSink (streams.ts): the next piece of a streamed send. */
  piece(message: OutgoingMessage, opcode: number, payload: Buffer, fin: boolean): boolean {
    const core = this.core!;
    if (!core.sendPiece(message, opcode, payload, fin)) return false;
    core.limitBuffered(this.unwritten);
    this.changed();
    return true;
  }

  /** PieceSink: wait until no more than `highWaterMark` is buffered. */
  drained(): Promise<void> | null {
    if (this.closed || this.bufferedAmount + (this.outbox?.waitingCost ?? 0) <= this.config.highWaterMark) return null;
    return this.outgoing!.waitForDrain();
  }

  /** PieceSink: the source of a streamed send failed. */
  failed(message: OutgoingMessage): void {
    this.core!.messageFailed(message, Date.now());
    this.changed();
  }

  sendControl(opcode: typeof Opcode.Ping | typeof Opcode.Pong, data: Data, callback: SendCallback | undefined): void {
    const core = this.core;
    if (core === null || !core.canSend) {
      this.refuse(callback);
      return;
    }
    core.sendControl(opcode, toPayload(data), callback);
    this.afterQueue(core);
  }

  sendFramed(frame: Buffer): boolean {
    const core = this.core;
    if (core === null || !core.canSend) return false;
    core.sendFramed(frame);
    return this.afterQueue(core);
  }

  /** After the application queued something: the core's buffer limit, then the high-water mark. */
  private afterQueue(core: Protocol): boolean {
    const unwritten = this.unwritten;
    const withinLimit = core.limitBuffered(unwritten);
    this.changed();
    if (!withinLimit) return false;
    if (core.bufferedOutput + unwritten > this.config.highWaterMark) {
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

  /** The core's output into the stream; if it has to wait on the peer, the write deadline runs. */
  private flush(core: Protocol): void {
    // Made on the first write: an idle connection holds none.
    const outbox = (this.outbox ??= new Outbox(this.stream!, this));
    const output = core.takeOutput();
    if (!outbox.write(output, core.takeCallbacks(), core.takenReplyBytes)) return;
    if (this.config.writeTimeout > 0) this.scheduleWriteCheck(Date.now());
    // Replies to what was read wait on the peer: stop reading until they drain, so that a peer that
    // does not read cannot make reading cost memory (the waiting writes count what they cost beyond
    // their bytes: write-cost.ts). Only replies: output of the application's own initiative is
    // bounded by highWaterMark and maxBufferedBytes, and must not keep the peer's answers to it from
    // being read (an echoing peer that did the same would wait on us while we wait on it). A
    // streamed send is of the application's own pace: it adds a piece only at highWaterMark or below.
    if (this.repliesWaiting(core, outbox) > this.config.highWaterMark) this.pauseReading(PAUSED_BY_WRITES);
  }

  /** Replies to what was read not yet written: waiting in the core (zlib) or on the peer. */
  private repliesWaiting(core: Protocol, outbox: Outbox): number {
    return core.pendingReplyBytes + outbox.repliesWaiting;
  }

  /** Every completed stream write (the outbox tells): maybe the end of backpressure both ways. */
  written(): void {
    const outgoing = this.outgoing;
    if (!this.needDrain && (this.pausedBy & PAUSED_BY_WRITES) === 0 && (outgoing === null || !outgoing.waiting)) return;
    const outbox = this.outbox!;
    if (
      (this.pausedBy & PAUSED_BY_WRITES) !== 0 &&
      this.repliesWaiting(this.core!, outbox) <= this.config.highWaterMark
    )
      this.resumeReading(PAUSED_BY_WRITES);
    if (this.bufferedAmount + outbox.waitingCost > this.config.highWaterMark) return;
    outgoing?.drained();
    if (this.needDrain) {
      this.needDrain = false;
      if (this.readyState === ReadyState.OPEN) this.owner.emit('drain');
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Deadlines
  // ---------------------------------------------------------------------------------------------

  private wake(at: number): void {
    this.wakeAt = at;
    sharedWheel.schedule(this, at);
  }

  /** Called by the timer wheel: the write deadline (the driver's to watch), then the core's deadlines. */
  onWheel(now: number): void {
    this.wakeAt = Infinity;
    const core = this.core;
    const stream = this.stream;
    if (this.closed || core === null || stream === null) return;
    const writeTimeout = this.config.writeTimeout;
    const outbox = this.outbox;
    if (writeTimeout > 0 && outbox !== null && outbox.waiting) {
      if (outbox.stalledFor(now) >= writeTimeout) {
        core.writeTimedOut(now);
        return this.settle();
      }
      this.scheduleWriteCheck(now);
    }
    core.timeout(now, this.pausedBy !== 0);
    this.settle();
  }

  /** Check a few times per write deadline, so a stall is caught within a fifth of it. */
  private scheduleWriteCheck(now: number): void {
    const at = now + Math.max(this.config.writeTimeout / 5, 1);
    if (at < this.wakeAt) this.wake(at);
  }

  // ---------------------------------------------------------------------------------------------
  // Closing: the core decides, the driver carries it out
  // ---------------------------------------------------------------------------------------------

  close(code: number | undefined, reason: string): void {
    if (this.readyState === ReadyState.CONNECTING) this.abortHandshake?.();
    else if (this.core !== null && !this.closed) {
      this.core.close(code, reason, Date.now());
      this.changed();
    }
  }

  terminate(): void {
    if (this.readyState === ReadyState.CONNECTING) this.abortHandshake?.();
    else if (this.core !== null && !this.closed) {
      this.core.terminate();
      this.changed();
    }
  }

  /** End our side of the stream once what was handed to it is written; the peer's end (or a deadline) follows. */
  private end(): void {
    this.ended = true;
    if (this.outbox !== null) this.outbox.end();
    else if (!this.stream!.writableEnded) this.stream!.end();
  }

  onStreamError(error: Error): void {
    if (this.owner.listenerCount('error') > 0) this.owner.emit('error', error);
  }

  onStreamEnd(): void {
    this.core?.receiveEnd(Date.now());
    this.settle();
  }

  /** The one place the connection ends: the stream is closed, whatever closed it. */
  onStreamClose(): void {
    if (this.closed) return;
    this.closed = true;
    sharedWheel.cancel(this);
    this.wakeAt = Infinity;
    const stream = this.stream!;
    stream.off('data', onStreamData);
    stream.off('end', onStreamEnd);
    stream.off('close', onStreamClose);
    stream.off('error', onStreamError);
    // A late 'error' from a destroyed stream must not become an uncaught exception.
    stream.on('error', ignoreError);
    delete (stream as StreamWithConnection)[kConnection];
    this.outbox?.drop();
    this.outgoing?.drained();
    const core = this.core!;
    const { code, reason, wasClean } = core.streamClosed(Date.now());
    // What is left to tell (sends that will never be written) goes before the close.
    for (let event = core.nextEvent(); event !== null; event = core.nextEvent()) this.deliver(event);
    this.deflate?.close();
    // Gone from the registry before anyone hears of the close (a 'close' listener may count clients).
    this.registry?.delete(this.id);
    this.registry = null;
    this.owner.emit('close', code, reason, wasClean);
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
  this[kConnection]!.onStreamError(error);
}
function ignoreError(): void {}

function settleDirty(): void {
  const connections = dirty;
  dirty = [];
  for (const connection of connections) connection.settleNow();
}
