import { buildClosePayload, truncateUtf8 } from './close.js';
import { CloseCode, MAX_CLOSE_REASON_BYTES, Opcode, ReadyState } from './constants.js';
import { ConnectionTimeoutError, MessageAbortedError, type ProtocolError } from './errors.js';
import type { CloseReport, Closing, ProtocolEvent, ProtocolSetup } from './events.js';
import type { InflateBudget } from './inflate-budget.js';
import { toPayload, type Data, type ResolvedConnectionOptions, type SendOptions } from './options.js';
import { Receiver, type InflateJob, type Role } from './receiver.js';
import type { DeflateJob, OutgoingMessage } from './sender.js';
import { Sender, type SendCallback, type SenderCompression, type SenderEvents } from './sender.js';
import { EventQueue, type DeferredEffects } from './event-queue.js';
import { outgoingFrameDecoder, tracingHandler } from './trace.js';
import { isUtf8Payload } from './utf8.js';
import { MaskKeySource } from './writer.js';

/**
 * One WebSocket connection's protocol, from the end of the opening handshake to the end of TCP, as
 * a state machine with no socket, no timer and no clock. Its driver (src/driver/connection.ts over
 * a node:stream, src/driver/web-streams.ts over WHATWG streams) feeds it what happened, then takes,
 * in one place, everything it decided:
 *
 *     on bytes from the stream:  receive(bytes, now)      (also: receiveEnd, timeout, send, close, ...)
 *     then, once:                nextEvent() until null   messages, pings, pongs, errors, for the application
 *                                takeOutput()             bytes to write, in order (takeCallbacks(): who waits on them)
 *                                takenReplyBytes          how many reply to what was read (reading pauses on those)
 *                                wantsDestroy / wantsEnd  destroy the stream now / end it after the write
 *                                takeInflateJob(), takeDeflateJob()   zlib work, whose results come back in
 *                                nextDeadline             when to call timeout(now) at the latest
 *     on the stream's close:     streamClosed(now)        what the close reports (code, reason, wasClean)
 *
 * Every decision of RFC 6455 §5.5 and §7 is made here and returned as data; the driver carries it
 * out and never asks back. The receiver (parsing, §5.2-§5.6) and the sender (ordering, §5.4,
 * §5.5.1) are this machine's two halves. Time comes in as an argument (`now`, in ms).
 */

export type { CloseReport, ProtocolEvent, ProtocolSetup } from './events.js';

const EMPTY = Buffer.alloc(0);

/**
 * RFC 6455 §5.3: a client masks every frame with a fresh key "derived from a strong source of
 * entropy". One pool for every client connection of the process; nobody can pass another.
 */
let clientMaskKeys: MaskKeySource | null = null;

export class Protocol implements SenderEvents, DeferredEffects {
  /** OPEN, CLOSING or CLOSED (§7.1.3, §7.1.4). */
  state: ReadyState = ReadyState.OPEN;
  /** We sent a close frame (§5.5.1: nothing but control frames may follow it). */
  closeSent = false;
  /** The peer's close frame arrived (nothing after it is read). */
  closeReceived = false;

  private closing: Closing | null = null;
  /** The latest time the driver told us of. */
  private now: number;
  private lastReceivedAt: number;
  private nextPingAt = 0;
  /** The stream is to end once everything queued (the close frame last) is written. */
  private endRequested = false;
  /** The stream is to be destroyed now. */
  private destroyRequested = false;
  private streaming: boolean;
  /** Nothing more is read: the connection failed (§7.1.7) or the stream is gone. */
  private inputEnded = false;
  /** The events for the driver and the effects of frames read ahead, in order. */
  private readonly queue: EventQueue = new EventQueue(this);
  /** The application holds an event: what it sends now replies to what was read (`takenReplyBytes`). */
  private answering = false;
  private receiver: Receiver | null = null;
  private sender: Sender | null = null;
  private traceOut: ((bytes: Buffer) => void) | null = null;
  // What the setup lends, kept as fields (an idle connection should cost as few objects as possible).
  private readonly compression: SenderCompression | null;
  private readonly inflateBudget: InflateBudget | null;

  constructor(
    readonly role: Role,
    private readonly config: ResolvedConnectionOptions,
    now: number,
    setup: ProtocolSetup = {},
  ) {
    if (role !== 'server' && role !== 'client') throw new TypeError(`role must be 'server' or 'client'`);
    this.compression = setup.compression ?? null;
    this.inflateBudget = setup.inflateBudget ?? null;
    this.now = now;
    this.lastReceivedAt = now;
    this.streaming = config.streamMessages;
    if (config.pingInterval > 0) this.nextPingAt = now + config.pingInterval;
  }

  /**
   * Whether data messages are streamed (`messageStart`, `messageData`, `messageEnd`), not assembled:
   * a change applies from the message after the event being handled (one begun already keeps its form).
   */
  get streamMessages(): boolean {
    return this.streaming;
  }

  set streamMessages(on: boolean) {
    // Messages read ahead were read whole: handed over as streams all the same, as if read now.
    if (on !== this.streaming) this.queue.switchStreaming(on);
    this.streaming = on;
    if (this.receiver !== null) this.receiver.streaming = on;
  }

  /** Bytes received and not parsed yet (held while a compressed frame inflates). */
  get bufferedInput(): number {
    return this.receiver === null ? 0 : this.receiver.bufferedBytes;
  }

  /** Bytes accepted for sending and not yet taken by the driver (compressed or waiting to be). */
  get bufferedOutput(): number {
    return this.sender === null ? 0 : this.sender.bufferedBytes;
  }

  /**
   * Whether `send()` and friends may be used: OPEN, no close frame sent (§5.5.1), and our side of
   * the stream not ending (the peer ended its own before any close frame: we end ours, and nothing
   * may be written after that).
   */
  get canSend(): boolean {
    return this.state === ReadyState.OPEN && !this.closeSent && !this.endRequested;
  }

  /** More input may yet be parsed: a driver may stop taking events (stopping the parse) only while so. */
  get receiving(): boolean {
    return !this.inputEnded && !this.closeReceived && this.state !== ReadyState.CLOSED;
  }

  // -------------------------------------------------------------------------------------------
  // What the driver takes after each step
  // -------------------------------------------------------------------------------------------

  /**
   * The next event, or null when there is none. Everything happens as if frames were read one at
   * a time, each only once the application is done with the event before it: whatever it does
   * with a message (answers it, closes, switches `streamMessages`) comes before the next frame has
   * any effect, and a violation later in the same read fails the connection only after the
   * replies to the messages before it. (Parsing does run ahead, through what has arrived, over
   * frames whose reading cannot depend on the application; their effects, such as a pong, the
   * echo of a close or a failure, wait in the queue until the driver reaches them.)
   */
  nextEvent(): ProtocolEvent | null {
    let event = this.queue.next(this.streaming);
    const receiver = this.receiver;
    if (event === null && receiver !== null && receiver.isPaused) {
      receiver.resume();
      event = this.queue.next(this.streaming);
    }
    // Until the driver asks again, what the application sends answers this event (see `answering`).
    this.answering = event !== null;
    return event;
  }

  /**
   * How many of the bytes the last `takeOutput()` returned reply to what was read: pongs, and what
   * the application sent while it held an event (between the `nextEvent()` that returned it and the
   * next call). A driver stops reading while too many of those wait on the peer: that bounds what a
   * peer that does not read can make reading cost, and output of the application's own initiative
   * (bounded by `highWaterMark` and `maxBufferedBytes`) never keeps the peer's replies to it from
   * being read, which with a peer doing the same would leave both waiting on each other.
   */
  get takenReplyBytes(): number {
    return this.sender === null ? 0 : this.sender.takenReplyBytes;
  }

  /**
   * Replies to what was read not taken yet: waiting to be compressed (counted as sent) or to be
   * taken. A driver counts them with those it took and has not written, before it reads on.
   */
  get pendingReplyBytes(): number {
    return this.sender === null ? 0 : this.sender.pendingReplyBytes;
  }

  /** Whether bytes wait to be taken. */
  get hasOutput(): boolean {
    return this.sender !== null && this.sender.hasOutput;
  }

  /** The bytes to write now, in order; then `takeCallbacks()` for the callbacks waiting on them. */
  takeOutput(): Buffer[] {
    const buffers = this.sender === null ? [] : this.sender.take();
    const trace = this.config.trace;
    if (trace !== null) {
      this.traceOut ??= outgoingFrameDecoder(this.role, trace);
      for (const buffer of buffers) this.traceOut(buffer);
    }
    return buffers;
  }

  takeCallbacks(): SendCallback[] | null {
    return this.sender === null ? null : this.sender.takeCallbacks();
  }

  /**
   * End our side of the stream (TCP FIN) once the output taken so far is written; keep reading.
   * Stays true from then on.
   */
  get wantsEnd(): boolean {
    return this.endRequested && (this.sender === null || !this.sender.hasStaged);
  }

  /** Close the stream now: a deadline passed, the application terminated, or the peer is not reading anyway. */
  get wantsDestroy(): boolean {
    return this.destroyRequested;
  }

  /** The time by which `timeout(now)` is to be called (Infinity when nothing is due). Calling earlier is harmless. */
  get nextDeadline(): number {
    const closing = this.closing;
    let at = closing !== null && closing.deadline !== 0 ? closing.deadline : Infinity;
    if (this.config.pingInterval > 0 && this.state === ReadyState.OPEN) {
      const pongDue = this.lastReceivedAt + this.config.pongTimeout;
      at = Math.min(at, this.nextPingAt, pongDue);
    }
    return this.state === ReadyState.CLOSED ? Infinity : at;
  }

  /** A compressed frame to inflate (RFC 7692 §7.2.2), once; its output goes to `inflated()`, then `inflateDone()`. */
  takeInflateJob(): InflateJob | null {
    return this.receiver === null ? null : this.receiver.takeInflateJob();
  }

  /** A piece of the inflated output, in order. False: stop the job (the message failed, or parsing ended). */
  inflated(data: Buffer): boolean {
    return this.receiver !== null && this.receiver.inflated(data);
  }

  /** The inflation is over (`error`: zlib refused the data). Parsing resumes with the input held meanwhile. */
  inflateDone(error: Error | null): void {
    this.receiver?.inflateDone(error);
  }

  /** A message (or a streamed message's piece) to compress (RFC 7692 §7.2.1), once; the result goes to `deflated()`. */
  takeDeflateJob(): DeflateJob | null {
    return this.sender === null ? null : this.sender.takeDeflateJob();
  }

  /** The compressed payload of the job taken (its sync flush's tail removed), or null when zlib failed. */
  deflated(compressed: Buffer | null): void {
    this.sender?.deflated(compressed);
  }

  // -------------------------------------------------------------------------------------------
  // Input
  // -------------------------------------------------------------------------------------------

  /** Bytes from the peer. The protocol owns `chunk` from now on (payloads are unmasked in place). */
  receive(chunk: Buffer, now: number): void {
    this.now = now;
    this.lastReceivedAt = now;
    if (this.inputEnded) return;
    (this.receiver ??= this.createReceiver()).push(chunk);
  }

  /**
   * The peer ended its side of the stream. After a closing handshake that is the expected end (a
   * client waits for it, §7.1.1); before one, the connection is over anyway: end ours too.
   */
  receiveEnd(now: number): void {
    this.now = now;
    if (this.state !== ReadyState.CLOSED) this.end();
  }

  /** Reading was paused by us, not by the peer: that time is not the peer's silence. */
  readingResumed(now: number): void {
    this.now = now;
    this.lastReceivedAt = now;
  }

  private createReceiver(): Receiver {
    const config = this.config;
    const trace = config.trace;
    // The receiver's events go into the queue, which pauses it after each (see event-queue.ts).
    return (this.queue.receiver = new Receiver(
      {
        role: this.role,
        maxMessageSize: config.maxMessageSize,
        maxFramePayload: config.maxFramePayload,
        compressed: this.compression !== null,
        budget: this.inflateBudget,
        streaming: this.streaming,
        maxStreamedMessageSize: config.maxStreamedMessageSize,
      },
      trace === null ? this.queue : tracingHandler(this.queue, (frame) => trace({ ...frame, direction: 'in' })),
    ));
  }

  private emit(event: ProtocolEvent): void {
    this.queue.push(event);
  }

  /** DeferredEffects: a ping is reached. */
  answerPing(data: Buffer): void {
    // RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in
    // response, unless it already received a Close frame." (The receiver reads nothing after a
    // close frame.) §5.5.3: the pong carries the ping's "Application data".
    // (Nor once our side of the stream may have ended: a ping read after the peer's end, held
    // behind an inflation, cannot be answered.)
    if (this.config.autoPong && this.state !== ReadyState.CLOSED && !this.wantsEnd) {
      this.output().control(Opcode.Pong, data, undefined, true);
    }
  }

  /** DeferredEffects: the peer's close frame is reached. */
  peerClosed(code: number, reason: string): void {
    this.closeReceived = true;
    this.queue.abortStream(
      new MessageAbortedError(`the peer closed the connection (${code}) in the middle of the message`),
    );
    const closing = this.startClosing();
    closing.peerCode = code;
    closing.peerReason = reason;
    if (!this.closeSent && !this.wantsEnd) {
      // §5.5.1: "If an endpoint receives a Close frame and did not previously send a Close frame,
      // the endpoint MUST send a Close frame in response. (When sending a Close frame in response,
      // the endpoint typically echos the status code it received.)" An empty close gets an empty one.
      this.sendClose(code === CloseCode.NoStatusReceived ? undefined : code, reason);
    }
    this.afterCloseFrames();
  }

  /** DeferredEffects: a violation is reached (§7.1.7). */
  failOn(error: ProtocolError): void {
    this.fail(error.closeCode, error.message, error);
  }

  // -------------------------------------------------------------------------------------------
  // Output
  // -------------------------------------------------------------------------------------------

  /**
   * A message from the application: strings as text, binary data as binary unless `options.binary`
   * says otherwise. Throws a TypeError for a buffer sent as text that is not UTF-8 (RFC 6455 §5.6:
   * a text frame carries UTF-8; strings always encode to valid UTF-8). Returns false, and queues
   * the callback's failure, once a close frame was sent (§5.5.1).
   */
  sendData(data: Data, options: SendOptions | undefined, callback?: SendCallback): boolean {
    const payload = toPayload(data);
    const binary = options?.binary ?? typeof data !== 'string';
    if (!binary && typeof data !== 'string' && !isUtf8Payload(payload))
      throw new TypeError('a buffer sent as text must be valid UTF-8');
    const fragmentSize = options?.fragmentSize ?? this.config.fragmentSize;
    return this.send(
      binary ? Opcode.Binary : Opcode.Text,
      payload,
      options?.compress !== false,
      fragmentSize,
      callback,
    );
  }

  /**
   * A text or binary message; the callback runs once it is written. Returns false, and queues the
   * callback's failure, once a close frame was sent: §5.5.1 "After sending a Close frame, the
   * endpoint MUST NOT send any more data frames."
   */
  send(opcode: number, payload: Buffer, compress: boolean, fragmentSize: number, callback?: SendCallback): boolean {
    if (!this.canSend) return this.refuse(callback);
    this.output().message(opcode, payload, compress, fragmentSize, callback, this.answering);
    return true;
  }

  /**
   * A frame encoded elsewhere (a server's broadcast is framed once for every connection). False once
   * closing. Never in the client role: a client's frames are each masked with a fresh key (§5.3).
   */
  sendFramed(frame: Buffer): boolean {
    if (this.role === 'client') throw new TypeError('a client masks every frame (RFC 6455 §5.3): no pre-framed bytes');
    if (!this.canSend) return false;
    this.output().framed(frame, this.answering);
    return true;
  }

  /** A ping or pong of at most 125 bytes (§5.5.2, §5.5.3). False once closing. */
  sendControl(opcode: typeof Opcode.Ping | typeof Opcode.Pong, payload: Uint8Array, callback?: SendCallback): boolean {
    if (!this.canSend) return this.refuse(callback);
    this.output().control(opcode, payload, callback, this.answering);
    return true;
  }

  /**
   * RFC 6455 §5.4: a message sent in pieces (`sendPiece()`, each a fragment; one DEFLATE stream, RFC
   * 7692 §7.2.1), in its place now. Later messages and our close wait for its end; pings and pongs
   * do not. Null, and the callback's failure queued, once a close frame was sent.
   */
  openMessage(compress: boolean, fragmentSize: number, callback?: SendCallback): OutgoingMessage | null {
    if (!this.canSend) {
      this.refuse(callback);
      return null;
    }
    return this.output().openStream(compress, fragmentSize, callback);
  }

  /** The next piece of an open message (`fin`: the last; the first's opcode is the message's). False: dropped. */
  sendPiece(message: OutgoingMessage, opcode: number, payload: Buffer, fin: boolean): boolean {
    if (message.dropped || this.sender === null) return false;
    this.sender.streamPiece(message, opcode, payload, fin);
    return true;
  }

  /**
   * An open message's source failed. RFC 6455 cannot abort one message: 1011 (an internal error);
   * unless the peer has closed already: then the message is abandoned and our close goes at once.
   */
  messageFailed(message: OutgoingMessage, now: number): void {
    this.now = now;
    if (message.dropped || this.state === ReadyState.CLOSED) return;
    if (!this.closeReceived) return this.fail(CloseCode.InternalError, 'the message source failed', null, false, now);
    // §5.5.1: the close frame follows the messages sent before it, but this one will never end.
    const { peerCode, peerReason } = this.closing!;
    if (this.sender!.dropStaged())
      this.sendClose(peerCode === CloseCode.NoStatusReceived ? undefined : peerCode, peerReason);
  }

  private refuse(callback: SendCallback | undefined): false {
    if (callback !== undefined) this.emit({ type: 'sendFailed', callbacks: [callback] });
    return false;
  }

  private output(): Sender {
    return (this.sender ??= new Sender(
      this.role === 'client' ? (clientMaskKeys ??= new MaskKeySource()) : null,
      this.compression,
      this,
    ));
  }

  /**
   * What the driver holds beyond the core (taken and not yet written) is `unwritten` bytes: past
   * `maxBufferedBytes` in all, the application kept sending while the peer did not read, and the
   * connection is dropped rather than let memory grow (1008: the peer broke our policy). Returns
   * false then.
   */
  limitBuffered(unwritten: number): boolean {
    if (this.bufferedOutput + unwritten <= this.config.maxBufferedBytes) return true;
    // Destroyed at once: no deadline to set, so the time of the last step will do.
    this.fail(CloseCode.PolicyViolation, 'peer too slow: outgoing buffer limit exceeded', null, true);
    return false;
  }

  /** The sender's event (SenderEvents). Compressing our own data failed: nothing the peer did. */
  onDeflateError(): void {
    this.fail(
      CloseCode.InternalError,
      'compression failed',
      new Error('permessage-deflate: zlib failed to compress a message'),
    );
  }

  /** The sender's event (SenderEvents). */
  onDropped(callbacks: SendCallback[]): void {
    this.emit({ type: 'sendFailed', callbacks });
  }

  // -------------------------------------------------------------------------------------------
  // Closing (RFC 6455 §7)
  // -------------------------------------------------------------------------------------------

  /**
   * §7.1.2 "Start the WebSocket Closing Handshake": send a close frame with `code` and `reason`
   * (after whatever is queued), send no more data, and wait for the peer's close and the end of
   * TCP until `closeTimeout`. Does nothing once a close frame was sent or the connection is over.
   */
  close(code: number | undefined, reason: string, now: number): void {
    this.now = now;
    if (!this.canSend) return;
    this.sendClose(code, reason);
    this.afterCloseFrames();
  }

  /**
   * §7.1.7 "Fail the WebSocket Connection": send a close frame with `code` (unless one was sent),
   * read nothing more, and close TCP. Messages still waiting for compression are dropped: the close
   * frame goes now. `immediately` destroys the stream once the frame is handed to it, rather than
   * waiting for the peer (which is not reading anyway, when it is too slow).
   */
  private fail(code: number, reason: string, error: Error | null, immediately = false, now = this.now): void {
    this.now = now;
    if (this.state === ReadyState.CLOSED) return;
    const closing = this.startClosing();
    // The first failure is the one the close reports.
    if (closing.failCode === 0) {
      closing.failCode = code;
      closing.failReason = reason;
    }
    // "An endpoint MUST NOT continue to attempt to process data ... after being instructed to
    // _Fail the WebSocket Connection_": the receiver stops at the violation it reports, and here.
    this.inputEnded = true;
    this.receiver?.destroy();
    this.queue.dropRead();
    this.queue.abortStream(
      error ?? new MessageAbortedError(`the connection failed (${code}) in the middle of the message`),
    );
    if (error !== null) this.emit({ type: 'error', error });
    // Our side of the stream may have ended already (the peer ended its own): nothing more goes.
    const ended = this.wantsEnd;
    // A close frame of ours still waiting behind a compression goes with the staged messages.
    const closeDropped = this.sender !== null && this.sender.dropStaged();
    // §7.1.7: "the endpoint SHOULD send a Close frame with an appropriate status code".
    if ((!this.closeSent || closeDropped) && !ended) {
      this.sendClose(code, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES));
    }
    if (immediately) this.destroyRequested = true;
    else this.end();
  }

  /** The application drops the connection without a closing handshake: destroy the stream now. */
  terminate(): void {
    if (this.state === ReadyState.CLOSED) return;
    this.state = ReadyState.CLOSING;
    this.destroyRequested = true;
  }

  /**
   * Whatever deadline is due at `now`: no pong (or any frame) for `pongTimeout`, or no closing
   * handshake within `closeTimeout`: the connection is dropped (an abnormal closure, RFC 6455 §7.2:
   * the close reports 1006). A ping is due: it is sent. `readingPaused` says we stopped reading
   * ourselves (that silence is not the peer's).
   */
  timeout(now: number, readingPaused: boolean): void {
    this.now = now;
    if (this.state === ReadyState.CLOSED) return;
    const { config, closing } = this;
    if (closing !== null && closing.deadline !== 0 && now >= closing.deadline) {
      return this.abort(new ConnectionTimeoutError('close', `no close handshake within ${config.closeTimeout} ms`));
    }
    if (config.pingInterval > 0 && this.state === ReadyState.OPEN) {
      if (readingPaused) this.lastReceivedAt = now;
      if (now - this.lastReceivedAt >= config.pongTimeout) {
        return this.abort(new ConnectionTimeoutError('pong', `nothing received for ${config.pongTimeout} ms`));
      }
      if (now >= this.nextPingAt) {
        this.nextPingAt = now + config.pingInterval;
        if (this.canSend) this.output().control(Opcode.Ping, EMPTY);
      }
    }
  }

  /**
   * The driver's write deadline passed: the peer accepted none of our bytes for `writeTimeout` while
   * we had some to send. The connection is dropped (1006, §7.2).
   */
  writeTimedOut(now: number): void {
    this.now = now;
    if (this.state === ReadyState.CLOSED) return;
    const ms = this.config.writeTimeout;
    this.abort(new ConnectionTimeoutError('write', `peer accepted no data for ${ms} ms`));
  }

  /**
   * The stream is closed, whatever closed it (§7.1.4: the WebSocket connection is CLOSED). Returns
   * what the close reports; releases everything. Call it once.
   */
  streamClosed(now: number): CloseReport {
    this.now = now;
    this.state = ReadyState.CLOSED;
    this.inputEnded = true;
    this.receiver?.destroy();
    this.queue.dropRead();
    this.queue.abortStream(new MessageAbortedError('the connection closed in the middle of the message'));
    // §7.1.4: clean means the closing handshake completed: the peer's close frame read, ours sent
    // (handed to the stream, not still waiting behind a compression when TCP went).
    const wasClean = this.closeReceived && this.sender !== null && this.sender.closeFrameTaken;
    this.sender?.clear();
    const closing = this.closing;
    // §7.1.5: the code is the first close frame received's; 1005 if it had none (the receiver
    // reports that already); 1006 if none was received. A connection we failed reports the code
    // we failed it with (what the peer should have sent, had it answered).
    if (this.closeReceived && closing !== null) return { code: closing.peerCode, reason: closing.peerReason, wasClean };
    if (closing !== null && closing.failCode !== 0)
      return { code: closing.failCode, reason: closing.failReason, wasClean };
    return { code: CloseCode.Abnormal, reason: '', wasClean };
  }

  private sendClose(code: number | undefined, reason: string): void {
    // Built first: an invalid code or reason throws before anything changes.
    const payload = buildClosePayload(code, code === undefined ? '' : reason);
    this.closeSent = true;
    this.output().close(payload);
  }

  /**
   * §7.1.3: a close frame was sent or received: the connection is CLOSING, and the close deadline
   * runs. Once frames went both ways, §7.1.1 (and §5.5.1: "The server MUST close the underlying
   * TCP connection immediately"): a server ends TCP now; a client waits for the server to, until
   * the deadline.
   */
  private afterCloseFrames(): void {
    this.startClosing();
    if (this.closeSent && this.closeReceived && this.role === 'server') this.end();
  }

  private startClosing(): Closing {
    let closing = this.closing;
    if (closing === null) {
      closing = this.closing = {
        deadline: 0,
        peerCode: CloseCode.Abnormal,
        peerReason: '',
        failCode: 0,
        failReason: '',
      };
    }
    if (this.state !== ReadyState.CLOSED) this.state = ReadyState.CLOSING;
    if (closing.deadline === 0 && this.config.closeTimeout > 0) closing.deadline = this.now + this.config.closeTimeout;
    return closing;
  }

  /** End our side of TCP once everything queued (the close frame last) is written. */
  private end(): void {
    this.endRequested = true;
  }

  private abort(error: ConnectionTimeoutError): void {
    this.emit({ type: 'error', error });
    this.destroyRequested = true;
  }
}
