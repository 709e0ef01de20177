import { buildClosePayload, truncateUtf8 } from './close.js';
import { CloseCode, MAX_CLOSE_REASON_BYTES, Opcode, ReadyState } from './constants.js';
import { ConnectionTimeoutError, type ProtocolError } from './errors.js';
import type { InflateBudget } from './inflate-budget.js';
import type { ResolvedConnectionOptions } from './options.js';
import { Receiver, type MessageInflater, type ReceiverHandler, type Role } from './receiver.js';
import { Sender, type MessageDeflater, type SendCallback, type SenderEvents } from './sender.js';
import { outgoingFrameDecoder } from './trace.js';
import type { MaskKeySource } from './writer.js';

/**
 * One WebSocket connection's protocol, from the end of the opening handshake to the end of TCP, as
 * a state machine with no socket, no timer and no clock: bytes in (`receive`), events and bytes
 * out, and every decision of RFC 6455 §5.5 and §7 handed to its owner as a call on its handler:
 * "write these bytes", "end the stream once they are written", "destroy the stream now", "wake me
 * at T", and, once the stream is gone, what the close reports (`streamClosed`). Time comes in as
 * an argument (`now`, in ms); nothing here reads a clock.
 *
 * The driver (src/websocket/websocket.ts) moves bytes between a stream and this, applies backpressure and
 * keeps the deadlines; the receiver (parsing, §5.2-§5.6) and the sender (ordering, §5.4, §5.5.1)
 * are this machine's two halves.
 */

/** What the state machine asks of its driver. Every call is a decision the driver carries out. */
export interface ProtocolHandler {
  /** A complete message (text is valid UTF-8). */
  onMessage(data: Buffer, isBinary: boolean): void;
  /** A ping (answered already when `autoPong` is on) or a pong. */
  onPing(data: Buffer): void;
  onPong(data: Buffer): void;
  /** Bytes wait in `takeOutput()`. The driver may write them at once or at the end of its turn. */
  onOutput(): void;
  /** Write everything taken so far, then end our side of the stream (TCP FIN); keep reading. */
  onEnd(): void;
  /** Close the stream now: a deadline passed, or the peer is not reading anyway. */
  onDestroy(): void;
  /** Call `timeout(now)` at `at` (ms) or soon after. A later request may ask for an earlier time. */
  onWake(at: number): void;
  /** What went wrong (a protocol error, a deadline, zlib), for the application to hear of. */
  onError(error: Error): void;
  /** Input held while a message was inflating has been parsed (`bufferedInput` went down). */
  onInputResumed(): void;
  /** Messages accepted by `send()` will never be written: their callbacks are to fail. */
  onSendFailed(callbacks: SendCallback[]): void;
}

/** What the close event reports (RFC 6455 §7.1.4-§7.1.6). */
export interface CloseReport {
  code: number;
  reason: string;
  /** Close frames went both ways before TCP ended (§7.1.4: "closed cleanly"). */
  wasClean: boolean;
}

/** What the handshake agreed on, and the pieces the driver lends the protocol. */
export interface ProtocolSetup {
  /** permessage-deflate (RFC 7692), when negotiated: the driver's zlib jobs behind two interfaces. */
  compression?: (MessageInflater & MessageDeflater) | null;
  /** The budget of inflated bytes shared with other connections (src/protocol/inflate-budget.ts). */
  inflateBudget?: InflateBudget | null;
  /** A client's source of masking keys (RFC 6455 §5.3); null for a server. */
  maskKeys?: MaskKeySource | null;
}

/** The closing handshake's details, made when it starts (an idle connection needs none). */
interface Closing {
  /** When to give up waiting for the peer's close and the end of TCP; 0 for never. */
  deadline: number;
  /** The peer's close frame, once received (§7.1.5, §7.1.6). */
  peerCode: number;
  peerReason: string;
  /** The code we failed the connection with (§7.1.7), when we did. */
  failCode: number;
  failReason: string;
}

const EMPTY = Buffer.alloc(0);

export class Protocol implements ReceiverHandler, SenderEvents {
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
  /** Asked the driver to end the stream (once is enough). */
  private ending = false;
  /** Nothing more is read: the connection failed (§7.1.7) or the stream is gone. */
  private inputEnded = false;
  private receiver: Receiver | null = null;
  private sender: Sender | null = null;
  private traceOut: ((bytes: Buffer) => void) | null = null;
  // What the setup lends, kept as fields (an idle connection should cost as few objects as possible).
  private readonly compression: (MessageInflater & MessageDeflater) | null;
  private readonly inflateBudget: InflateBudget | null;
  private readonly maskKeys: MaskKeySource | null;

  constructor(
    readonly role: Role,
    private readonly config: ResolvedConnectionOptions,
    private readonly handler: ProtocolHandler,
    now: number,
    setup: ProtocolSetup = {},
  ) {
    this.compression = setup.compression ?? null;
    this.inflateBudget = setup.inflateBudget ?? null;
    this.maskKeys = setup.maskKeys ?? null;
    this.now = now;
    this.lastReceivedAt = now;
    if (config.pingInterval > 0) {
      this.nextPingAt = now + config.pingInterval;
      this.scheduleWake();
    }
  }

  /** Bytes received and not parsed yet (held while a compressed frame inflates). */
  get bufferedInput(): number {
    return this.receiver === null ? 0 : this.receiver.bufferedBytes;
  }

  /** Bytes accepted for sending and not yet taken by the driver (compressed or waiting to be). */
  get bufferedOutput(): number {
    return this.sender === null ? 0 : this.sender.bufferedBytes;
  }

  /** Whether `send()` and friends may be used: OPEN, and no close frame sent (§5.5.1). */
  get canSend(): boolean {
    return this.state === ReadyState.OPEN && !this.closeSent;
  }

  // -------------------------------------------------------------------------------------------
  // Input
  // -------------------------------------------------------------------------------------------

  /** Bytes from the peer. The protocol owns `chunk` from now on (payloads are unmasked in place). */
  receive(chunk: Buffer, now: number): void {
    this.now = now;
    this.lastReceivedAt = now;
    if (this.inputEnded) return;
    (this.receiver ?? this.createReceiver()).push(chunk);
  }

  /**
   * The peer ended its side of the stream. After a closing handshake that is the expected end (a
   * client waits for it, §7.1.1); before one, the connection is over anyway: end ours too.
   */
  receiveEnd(): void {
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
    this.receiver = new Receiver(
      {
        role: this.role,
        maxMessageSize: config.maxMessageSize,
        maxFramePayload: config.maxFramePayload,
        inflater: this.compression,
        budget: this.inflateBudget,
      },
      trace === null ? this : tracing(this, (frame) => trace({ ...frame, direction: 'in' })),
    );
    return this.receiver;
  }

  /** The receiver's event (ReceiverHandler). */
  onMessage(data: Buffer, isBinary: boolean): void {
    this.handler.onMessage(data, isBinary);
  }

  /** The receiver's event (ReceiverHandler). */
  onPing(data: Buffer): void {
    // RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in
    // response, unless it already received a Close frame." (The receiver reads nothing after a
    // close frame.) §5.5.3: the pong carries the ping's "Application data".
    if (this.config.autoPong && this.state !== ReadyState.CLOSED) this.output().control(Opcode.Pong, data);
    this.handler.onPing(data);
  }

  /** The receiver's event (ReceiverHandler). */
  onPong(data: Buffer): void {
    this.handler.onPong(data);
  }

  /** The receiver's event (ReceiverHandler). RFC 6455 §5.5.1, §7.1.5: the peer's close frame. */
  onClose(code: number, reason: string): void {
    this.closeReceived = true;
    const closing = this.startClosing();
    closing.peerCode = code;
    closing.peerReason = reason;
    if (!this.closeSent) {
      // §5.5.1: "If an endpoint receives a Close frame and did not previously send a Close frame,
      // the endpoint MUST send a Close frame in response. (When sending a Close frame in response,
      // the endpoint typically echos the status code it received.)" An empty close gets an empty one.
      this.sendClose(code === CloseCode.NoStatusReceived ? undefined : code, reason);
    }
    this.afterCloseFrames();
  }

  /** The receiver's event (ReceiverHandler). RFC 6455 §7.1.7: the receiver found a violation and chose the code. */
  onError(error: ProtocolError): void {
    this.fail(error.closeCode, error.message, error);
  }

  /** The receiver's event (ReceiverHandler). */
  onResumed(): void {
    this.handler.onInputResumed();
  }

  // -------------------------------------------------------------------------------------------
  // Output
  // -------------------------------------------------------------------------------------------

  /**
   * A text or binary message; the callback runs once it is written. Returns false, and fails the
   * callback, once a close frame was sent: §5.5.1 "After sending a Close frame, the endpoint MUST
   * NOT send any more data frames."
   */
  send(opcode: number, payload: Buffer, compress: boolean, fragmentSize: number, callback?: SendCallback): boolean {
    if (!this.canSend) return this.refuse(callback);
    this.output().message(opcode, payload, compress, fragmentSize, callback);
    return true;
  }

  /** A frame encoded elsewhere (a broadcast is framed once for every connection). False once closing. */
  sendFramed(frame: Buffer): boolean {
    if (!this.canSend) return false;
    this.output().framed(frame);
    return true;
  }

  /** A ping or pong of at most 125 bytes (§5.5.2, §5.5.3). False once closing. */
  sendControl(opcode: typeof Opcode.Ping | typeof Opcode.Pong, payload: Uint8Array, callback?: SendCallback): boolean {
    if (!this.canSend) return this.refuse(callback);
    this.output().control(opcode, payload, callback);
    return true;
  }

  private refuse(callback: SendCallback | undefined): false {
    if (callback !== undefined) this.handler.onSendFailed([callback]);
    return false;
  }

  /** Whether bytes wait to be taken. */
  get hasOutput(): boolean {
    return this.sender !== null && this.sender.hasOutput;
  }

  /** The bytes to write now, in order; then `takeCallbacks()` for the callbacks waiting on them. */
  takeOutput(): Buffer[] {
    const buffers = this.sender === null ? [] : this.sender.take();
    if (this.config.trace !== null) {
      const trace = this.config.trace;
      this.traceOut ??= outgoingFrameDecoder(this.role, trace);
      for (const buffer of buffers) this.traceOut(buffer);
    }
    return buffers;
  }

  takeCallbacks(): SendCallback[] | null {
    return this.sender === null ? null : this.sender.takeCallbacks();
  }

  private output(): Sender {
    return (this.sender ??= new Sender(this.maskKeys, this.compression, this));
  }

  /** The sender's event (SenderEvents). */
  onOutput(): void {
    this.handler.onOutput();
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
    this.handler.onSendFailed(callbacks);
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
  fail(code: number, reason: string, error: Error | null, immediately = false, now = this.now): void {
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
    if (error !== null) this.handler.onError(error);
    // A close frame of ours still waiting behind a compression goes with the staged messages.
    const closeDropped = this.sender !== null && this.sender.dropStaged();
    // §7.1.7: "the endpoint SHOULD send a Close frame with an appropriate status code".
    if (!this.closeSent || closeDropped) this.sendClose(code, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES));
    if (immediately) this.handler.onDestroy();
    else this.end();
  }

  /** The application drops the connection without a closing handshake: destroy the stream now. */
  terminate(): void {
    if (this.state === ReadyState.CLOSED) return;
    this.state = ReadyState.CLOSING;
    this.handler.onDestroy();
  }

  /**
   * The driver's wake-up: whatever deadline is due. No pong (or any frame) for `pongTimeout`, or
   * no closing handshake within `closeTimeout`: the connection is dropped (an abnormal closure,
   * RFC 6455 §7.2: the close reports 1006). A ping is due: it is sent. `readingPaused` says we
   * stopped reading ourselves.
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
        if (!this.closeSent) this.output().control(Opcode.Ping, EMPTY);
      }
    }
    this.scheduleWake();
  }

  /**
   * The stream is closed, whatever closed it (§7.1.4: the WebSocket connection is CLOSED). Returns
   * what the close reports; releases everything. Call it once.
   */
  streamClosed(): CloseReport {
    this.state = ReadyState.CLOSED;
    this.inputEnded = true;
    this.receiver?.destroy();
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
    if (closing.deadline === 0 && this.config.closeTimeout > 0) {
      closing.deadline = this.now + this.config.closeTimeout;
      this.handler.onWake(closing.deadline);
    }
    return closing;
  }

  /** End our side of TCP once everything queued (the close frame last) is written. */
  private end(): void {
    if (this.ending) return;
    this.ending = true;
    const sender = this.sender;
    if (sender === null) this.handler.onEnd();
    else sender.whenStaged(() => this.handler.onEnd());
  }

  private abort(error: ConnectionTimeoutError): void {
    this.handler.onError(error);
    this.handler.onDestroy();
  }

  /** Ask for the earliest moment a deadline may be due. */
  private scheduleWake(): void {
    const { config, closing } = this;
    let at = closing !== null && closing.deadline !== 0 ? closing.deadline : Infinity;
    if (config.pingInterval > 0 && this.state === ReadyState.OPEN) {
      at = Math.min(at, this.nextPingAt, this.lastReceivedAt + config.pongTimeout);
    }
    if (at !== Infinity) this.handler.onWake(at);
  }
}

/** The receiver's handler when tracing: the protocol, plus every incoming frame to the tracer. */
function tracing(protocol: Protocol, onFrame: NonNullable<ReceiverHandler['onFrame']>): ReceiverHandler {
  return {
    onMessage: (data, isBinary) => protocol.onMessage(data, isBinary),
    onPing: (data) => protocol.onPing(data),
    onPong: (data) => protocol.onPong(data),
    onClose: (code, reason) => protocol.onClose(code, reason),
    onError: (error) => protocol.onError(error),
    onResumed: () => protocol.onResumed(),
    onFrame,
  };
}
