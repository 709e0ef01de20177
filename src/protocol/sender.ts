import { Opcode } from './constants.js';
import { FrameQueue, type MaskKeySource } from './writer.js';

/**
 * The outgoing side of a connection, in order: messages, control frames and already-framed bytes
 * in; wire bytes (and the callbacks that wait on them) out, for the driver to write. No socket, no
 * timer.
 *
 * With permessage-deflate (RFC 7692) a message may have to wait for zlib, which is asynchronous;
 * messages sent meanwhile wait behind it (staged) so that they leave in the order they were sent,
 * and the close frame waits behind them all (RFC 6455 §5.5.1: it is the last frame). Pings and
 * pongs do not wait: control frames are independent of the data stream (§5.4 even lets them sit
 * between the fragments of a message), and a pong should go "as soon as is practical" (§5.5.2).
 */

export type SendCallback = (error?: Error) => void;

/** Compresses whole messages for the sender (RFC 7692 §7.2.1); zlib itself is the driver's business. */
export interface MessageDeflater {
  /** Messages shorter than this are sent uncompressed. */
  readonly threshold: number;
  /** Compress one message; calls back with the compressed payload (tail removed), or null when it cannot. */
  deflate(payload: Buffer, callback: (compressed: Buffer | null) => void): void;
}

/** What the sender tells its owner (the protocol state machine). */
export interface SenderEvents {
  /** Bytes became ready to take (the driver decides when to write them). */
  onOutput(): void;
  /** A message could not be compressed (the connection then fails with 1011). */
  onDeflateError(): void;
  /** Messages were dropped unsent: their callbacks are to fail. */
  onDropped(callbacks: SendCallback[]): void;
}

/** A message waiting behind one being compressed. */
interface Staged {
  opcode: number;
  payload: Buffer;
  compress: boolean;
  fragmentSize: number;
  callback: SendCallback | undefined;
}

/** Staged entries that are frames already carry one of these opcodes: a broadcast, or the close frame. */
const FRAMED = -1;
const CLOSE_FRAME = -2;

/** Where the close frame is (RFC 6455 §5.5.1: one per connection, the last frame). */
const CloseFrame = {
  None: 0,
  /** Waiting behind messages being compressed. */
  Staged: 1,
  /** In the queue, not yet taken by the driver. */
  Queued: 2,
  /** Taken by the driver, which hands it to the stream. */
  Taken: 3,
} as const;
type CloseFrame = (typeof CloseFrame)[keyof typeof CloseFrame];

export class Sender {
  /** Frames ready to write (made on first use: an idle connection holds none). */
  private out: FrameQueue | null = null;
  /** Callbacks of what is in `out`, in order; they run once the driver has written it. */
  private callbacks: SendCallback[] | null = null;
  /** Messages waiting for a compression to finish, in order; null when nothing waits. */
  private staged: Staged[] | null = null;
  private stagedLength = 0;
  private compressing = false;
  /** Run once nothing is staged any more (the close handshake ends TCP after its close frame). */
  private afterStaged: (() => void) | null = null;
  private closeFrame: CloseFrame = CloseFrame.None;
  /** The owner was told output is waiting, and has not taken it yet: once per batch is enough. */
  private notified = false;

  constructor(
    /** Set for a client: every frame it sends is masked (RFC 6455 §5.3). */
    private readonly maskKeys: MaskKeySource | null,
    private readonly deflater: MessageDeflater | null,
    private readonly events: SenderEvents,
  ) {}

  /** Bytes accepted and not yet taken by the driver: queued frames and staged messages. */
  get bufferedBytes(): number {
    return this.stagedLength + (this.out === null ? 0 : this.out.length);
  }

  /** Whether frames are ready to take. */
  get hasOutput(): boolean {
    return this.out !== null && this.out.length !== 0;
  }

  /**
   * Whether the close frame has left: taken by the driver for the stream (RFC 6455 §7.1.4 "closed
   * cleanly" needs it sent).
   */
  get closeFrameTaken(): boolean {
    return this.closeFrame === CloseFrame.Taken;
  }

  /**
   * A data message (text or binary), split into frames of at most `fragmentSize` payload bytes
   * when that is set (RFC 6455 §5.4). `compress` asks for permessage-deflate; messages under the
   * deflater's threshold go uncompressed anyway.
   */
  message(opcode: number, payload: Buffer, compress: boolean, fragmentSize: number, callback?: SendCallback): void {
    const deflate = compress && this.deflater !== null && payload.length >= this.deflater.threshold;
    if (deflate || this.staged !== null) {
      this.stage({ opcode, payload, compress: deflate, fragmentSize, callback });
      return;
    }
    this.queue().message(opcode, payload, false, fragmentSize);
    this.done(callback);
  }

  /** A ping or a pong (RFC 6455 §5.5.2, §5.5.3): never waits behind data. */
  control(opcode: number, payload: Uint8Array, callback?: SendCallback): void {
    this.queue().control(opcode, payload);
    this.done(callback);
  }

  /** Tell the owner that output waits, once until it takes it. */
  private ready(): void {
    if (this.notified) return;
    this.notified = true;
    this.events.onOutput();
  }

  /** Bytes framed elsewhere (a broadcast frames its message once for every connection). */
  framed(frame: Buffer): void {
    if (this.staged !== null)
      this.stage({ opcode: FRAMED, payload: frame, compress: false, fragmentSize: 0, callback: undefined });
    else {
      this.queue().framed(frame);
      this.ready();
    }
  }

  /** The close frame (RFC 6455 §5.5.1): after every message already sent, compressed ones included. */
  close(payload: Buffer): void {
    if (this.staged === null) {
      this.closeFrame = CloseFrame.Queued;
      return this.control(Opcode.Close, payload);
    }
    const frame = new FrameQueue(this.maskKeys, true);
    frame.control(Opcode.Close, payload);
    this.closeFrame = CloseFrame.Staged;
    this.stage({
      opcode: CLOSE_FRAME,
      payload: frame.take()[0]!,
      compress: false,
      fragmentSize: 0,
      callback: undefined,
    });
  }

  /** Run `action` once every staged message has been framed (at once when none is staged). */
  whenStaged(action: () => void): void {
    if (this.staged === null) action();
    else this.afterStaged = action;
  }

  /** The frames ready to write, as few buffers as possible; the queue is empty afterwards. */
  take(): Buffer[] {
    this.notified = false;
    if (this.out === null) return [];
    if (this.closeFrame === CloseFrame.Queued) this.closeFrame = CloseFrame.Taken;
    return this.out.take();
  }

  /** The callbacks of the frames just taken, or null. */
  takeCallbacks(): SendCallback[] | null {
    const callbacks = this.callbacks;
    this.callbacks = null;
    return callbacks;
  }

  /**
   * Forget the staged messages (the connection is failing: the close frame goes now). Returns
   * whether a close frame was among them, and so never sent.
   */
  dropStaged(): boolean {
    const staged = this.staged;
    if (staged === null) return false;
    const closeDropped = this.closeFrame === CloseFrame.Staged;
    if (closeDropped) this.closeFrame = CloseFrame.None;
    this.staged = null;
    this.stagedLength = 0;
    this.compressing = false;
    const dropped: SendCallback[] = [];
    for (const message of staged) if (message.callback !== undefined) dropped.push(message.callback);
    if (dropped.length > 0) this.events.onDropped(dropped);
    const after = this.afterStaged;
    this.afterStaged = null;
    after?.();
    return closeDropped;
  }

  /** The connection is gone: drop everything, queued or staged. */
  clear(): void {
    this.afterStaged = null;
    this.dropStaged();
    this.out?.clear();
    const callbacks = this.takeCallbacks();
    if (callbacks !== null) this.events.onDropped(callbacks);
  }

  private queue(): FrameQueue {
    return (this.out ??= new FrameQueue(this.maskKeys));
  }

  private done(callback: SendCallback | undefined): void {
    if (callback !== undefined) (this.callbacks ??= []).push(callback);
    this.ready();
  }

  private stage(message: Staged): void {
    (this.staged ??= []).push(message);
    this.stagedLength += message.payload.length;
    this.drain();
  }

  /** Move staged messages to the queue in order, compressing those that need it, one at a time. */
  private drain(): void {
    const staged = this.staged;
    while (staged !== null && staged.length > 0 && !this.compressing) {
      const message = staged[0]!;
      if (message.compress) {
        this.compressing = true;
        this.deflater!.deflate(message.payload, (compressed) => this.compressed(staged, message, compressed));
        return;
      }
      this.unstage(staged, message);
      if (message.opcode === FRAMED || message.opcode === CLOSE_FRAME) {
        if (message.opcode === CLOSE_FRAME) this.closeFrame = CloseFrame.Queued;
        this.queue().framed(message.payload);
        this.done(undefined);
      } else {
        this.queue().message(message.opcode, message.payload, false, message.fragmentSize);
        this.done(message.callback);
      }
    }
    if (staged !== null && staged.length === 0 && !this.compressing) {
      this.staged = null;
      const after = this.afterStaged;
      this.afterStaged = null;
      after?.();
    }
  }

  private compressed(staged: Staged[], message: Staged, compressed: Buffer | null): void {
    // Dropped meanwhile (the connection failed or closed): the callbacks were failed already.
    if (this.staged !== staged) return;
    this.compressing = false;
    if (compressed === null) {
      this.events.onDeflateError();
      return;
    }
    this.unstage(staged, message);
    // RFC 7692 §6: RSV1 on the first frame of a compressed message only (FrameQueue does that).
    this.queue().message(message.opcode, compressed, true, message.fragmentSize);
    this.done(message.callback);
    this.drain();
  }

  private unstage(staged: Staged[], message: Staged): void {
    staged.shift();
    this.stagedLength -= message.payload.length;
  }
}
