import { Opcode } from './constants.js';
import { DEFLATE_TAIL } from './permessage-deflate.js';
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
 *
 * A message can also come in pieces, as the application produces them (a stream it sends,
 * `openStream()`): each piece goes out as a fragment as soon as it is its turn, and everything sent
 * after the message (data, broadcasts, the close frame) waits until its last piece, since the
 * fragments of two messages must not interleave (§5.4).
 */

export type SendCallback = (error?: Error) => void;

/**
 * permessage-deflate as the sender sees it (RFC 7692 §7.2.1): which messages to compress. The
 * compressing itself is a job its owner runs (`takeDeflateJob()`, then `deflated()`): zlib is
 * asynchronous, and no business of the core.
 */
export interface SenderCompression {
  /** Messages shorter than this are sent uncompressed. */
  readonly threshold: number;
}

/** What the sender tells its owner (the protocol state machine). */
export interface SenderEvents {
  /** A message could not be compressed (the connection then fails with 1011). */
  onDeflateError(): void;
  /** Messages were dropped unsent: their callbacks are to fail. */
  onDropped(callbacks: SendCallback[]): void;
}

/** A message to compress (RFC 7692 §7.2.1), or a piece of a streamed one. */
export interface DeflateJob {
  payload: Buffer;
  /** The message's last piece: without context takeover, the compressor starts afresh after it. */
  fin: boolean;
}

/** A message whose payload comes in pieces (`openStream()`), for its sender to add to. */
export interface OutgoingMessage {
  /** It will never be sent (the connection failed or closed): stop producing it. */
  readonly dropped: boolean;
}

/** A message waiting its turn: behind one being compressed, or behind a streamed one. */
interface Staged {
  opcode: number;
  payload: Buffer;
  compress: boolean;
  fragmentSize: number;
  callback: SendCallback | undefined;
  /** Sent in reply to what was read (see `replyBytes`). */
  reply: boolean;
  /** A streamed message (its opcode is STREAM): its pieces so far. */
  stream: StreamedMessage | null;
}

/** What a streamed message has come to, while it is staged. */
class StreamedMessage implements OutgoingMessage {
  dropped = false;
  /** Text or binary, once the first piece says. */
  opcode = 0;
  /** Pieces not yet framed (or compressed), in order. */
  readonly pieces: Buffer[] = [];
  /** The last piece came. */
  ended = false;
  /** Frames queued so far (the first carries the opcode, and RSV1 when compressed). */
  frames = 0;
}

/** Staged entries that are frames already carry one of these opcodes: a broadcast, or the close frame. */
const FRAMED = -1;
const CLOSE_FRAME = -2;
/** A streamed message. */
const STREAM = -3;

const EMPTY = Buffer.alloc(0);
/** RFC 7692 §7.2.1: the 4 bytes each sync flush of a message's compression ends with. */
const TAIL = Buffer.from(DEFLATE_TAIL);

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
  /** Of `stagedLength`, the replies (see `replyBytes`): they wait on zlib, then on the peer. */
  private stagedReplies = 0;
  /** The staged message being compressed (the first one), from its job's start to `deflated()`. */
  private compressing: Staged | null = null;
  /** The job, until the owner takes it. */
  private deflateJob: DeflateJob | null = null;
  /** The length of the piece of a streamed message being compressed. */
  private compressingLength = 0;
  private closeFrame: CloseFrame = CloseFrame.None;
  /**
   * Bytes in `out` that reply to what was read (pongs, what the application sent while handling an
   * event): the driver stops reading while too many of them wait on the peer, and only then, so
   * that a peer that does not read cannot make reading cost memory, while output of our own
   * initiative (bounded by `send()`'s return value and `maxBufferedBytes`) never stops the reading
   * of the peer's replies to it.
   */
  private replyBytes = 0;
  /** `replyBytes` of the last `take()`. */
  private replyTaken = 0;

  constructor(
    /** Set for a client: every frame it sends is masked (RFC 6455 §5.3). */
    private readonly maskKeys: MaskKeySource | null,
    private readonly compression: SenderCompression | null,
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
  message(
    opcode: number,
    payload: Buffer,
    compress: boolean,
    fragmentSize: number,
    callback?: SendCallback,
    reply = false,
  ): void {
    const deflate = compress && this.compression !== null && payload.length >= this.compression.threshold;
    if (deflate || this.staged !== null) {
      this.stage({ opcode, payload, compress: deflate, fragmentSize, callback, reply, stream: null });
      return;
    }
    const bytes = this.queue().message(opcode, payload, false, fragmentSize);
    if (reply) this.replyBytes += bytes;
    this.done(callback);
  }

  /** A ping or a pong (RFC 6455 §5.5.2, §5.5.3): never waits behind data. */
  control(opcode: number, payload: Uint8Array, callback?: SendCallback, reply = false): void {
    const bytes = this.queue().control(opcode, payload);
    if (reply) this.replyBytes += bytes;
    this.done(callback);
  }

  /** Bytes framed elsewhere (a broadcast frames its message once for every connection). */
  framed(frame: Buffer, reply = false): void {
    if (this.staged !== null)
      this.stage({
        opcode: FRAMED,
        payload: frame,
        compress: false,
        fragmentSize: 0,
        callback: undefined,
        reply,
        stream: null,
      });
    else {
      this.queue().framed(frame);
      if (reply) this.replyBytes += frame.length;
    }
  }

  /**
   * A message whose payload comes in pieces (`streamPiece()`); `compress` asks for
   * permessage-deflate (whatever the size). The callback waits on its last frame.
   */
  openStream(compress: boolean, fragmentSize: number, callback?: SendCallback): OutgoingMessage {
    const stream = new StreamedMessage();
    const deflate = compress && this.compression !== null;
    // Not a reply: the application paces it (a piece is added only below highWaterMark).
    this.stage({ opcode: STREAM, payload: EMPTY, compress: deflate, fragmentSize, callback, reply: false, stream });
    return stream;
  }

  /** The next piece of a streamed message (`fin`: its last, possibly empty); `opcode` says text or binary. */
  streamPiece(message: OutgoingMessage, opcode: number, payload: Buffer, fin: boolean): void {
    const stream = message as StreamedMessage;
    if (stream.dropped || stream.ended) return;
    if (stream.opcode === 0) stream.opcode = opcode;
    if (payload.length === 0 && !fin) return;
    stream.pieces.push(payload);
    stream.ended = fin;
    this.stagedLength += payload.length;
    this.drain();
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
      reply: false,
      stream: null,
    });
  }

  /** Whether messages wait behind a compression (the close handshake ends TCP only after them). */
  get hasStaged(): boolean {
    return this.staged !== null;
  }

  /** The frames ready to write, as few buffers as possible; the queue is empty afterwards. */
  take(): Buffer[] {
    this.replyTaken = this.replyBytes;
    this.replyBytes = 0;
    if (this.out === null) return [];
    if (this.closeFrame === CloseFrame.Queued) this.closeFrame = CloseFrame.Taken;
    return this.out.take();
  }

  /** Replies not taken yet: staged (as sent, before compression) or queued. */
  get pendingReplyBytes(): number {
    return this.stagedReplies + this.replyBytes;
  }

  /** How many of the bytes the last `take()` returned reply to what was read (see `replyBytes`). */
  get takenReplyBytes(): number {
    return this.replyTaken;
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
    this.stagedReplies = 0;
    this.compressing = null;
    this.deflateJob = null;
    const dropped: SendCallback[] = [];
    for (const message of staged) {
      if (message.stream !== null) message.stream.dropped = true;
      if (message.callback !== undefined) dropped.push(message.callback);
    }
    if (dropped.length > 0) this.events.onDropped(dropped);
    return closeDropped;
  }

  /** The connection is gone: drop everything, queued or staged. */
  clear(): void {
    this.dropStaged();
    this.out?.clear();
    this.replyBytes = 0;
    const callbacks = this.takeCallbacks();
    if (callbacks !== null) this.events.onDropped(callbacks);
  }

  private queue(): FrameQueue {
    return (this.out ??= new FrameQueue(this.maskKeys));
  }

  private done(callback: SendCallback | undefined): void {
    if (callback !== undefined) (this.callbacks ??= []).push(callback);
  }

  private stage(message: Staged): void {
    (this.staged ??= []).push(message);
    this.stagedLength += message.payload.length;
    if (message.reply) this.stagedReplies += message.payload.length;
    this.drain();
  }

  /** Move staged messages to the queue in order, compressing those that need it, one at a time. */
  private drain(): void {
    const staged = this.staged;
    while (staged !== null && staged.length > 0 && this.compressing === null) {
      const message = staged[0]!;
      if (message.stream !== null) {
        // Its pieces so far; what is behind it waits for the last.
        if (!this.drainStream(staged, message, message.stream)) return;
        continue;
      }
      if (message.compress) {
        this.compressing = message;
        this.deflateJob = { payload: message.payload, fin: true };
        return;
      }
      this.unstage(staged, message);
      if (message.opcode === FRAMED || message.opcode === CLOSE_FRAME) {
        if (message.opcode === CLOSE_FRAME) this.closeFrame = CloseFrame.Queued;
        this.queue().framed(message.payload);
        if (message.reply) this.replyBytes += message.payload.length;
      } else {
        const bytes = this.queue().message(message.opcode, message.payload, false, message.fragmentSize);
        if (message.reply) this.replyBytes += bytes;
        this.done(message.callback);
      }
    }
    if (staged !== null && staged.length === 0 && this.compressing === null) this.staged = null;
  }

  /**
   * A streamed message's pieces to frames, or its next piece to a compression. Returns true once
   * the message is complete and unstaged.
   */
  private drainStream(staged: Staged[], message: Staged, stream: StreamedMessage): boolean {
    while (stream.pieces.length > 0) {
      const piece = stream.pieces.shift()!;
      const fin = stream.ended && stream.pieces.length === 0;
      if (message.compress) {
        this.compressing = message;
        this.compressingLength = piece.length;
        this.deflateJob = { payload: piece, fin };
        return false;
      }
      this.stagedLength -= piece.length;
      this.streamFrames(message, stream, piece, fin, false);
    }
    return this.endStream(staged, message, stream);
  }

  /** A piece of a streamed message as frames: the first carries the opcode (and RSV1 when compressed). */
  private streamFrames(message: Staged, stream: StreamedMessage, payload: Buffer, fin: boolean, rsv1: boolean): void {
    const first = stream.frames === 0;
    this.queue().fragment(
      first ? stream.opcode : Opcode.Continuation,
      payload,
      fin,
      first && rsv1,
      message.fragmentSize,
    );
    stream.frames++;
  }

  /** After a streamed message's frames: unstaged, its callback due with them, if it is complete. */
  private endStream(staged: Staged[], message: Staged, stream: StreamedMessage): boolean {
    if (!stream.ended || stream.pieces.length > 0) return false;
    staged.shift();
    this.done(message.callback);
    return true;
  }

  /** The message to compress, once (null when none waits): the owner runs it and calls `deflated()`. */
  takeDeflateJob(): DeflateJob | null {
    const job = this.deflateJob;
    this.deflateJob = null;
    return job;
  }

  /**
   * The compressed payload of the message whose job was taken (RFC 7692 §7.2.1: without the tail
   * its sync flush ended with), or null when it could not be compressed.
   */
  deflated(compressed: Buffer | null): void {
    const message = this.compressing;
    // Dropped meanwhile (the connection failed or closed): the callbacks were failed already.
    if (message === null || this.deflateJob !== null) return;
    this.compressing = null;
    if (compressed === null) {
      this.events.onDeflateError();
      return;
    }
    const stream = message.stream;
    if (stream !== null) {
      this.stagedLength -= this.compressingLength;
      const fin = stream.ended && stream.pieces.length === 0;
      // RFC 7692 §7.2.1: the message is one DEFLATE stream, sync-flushed after each piece; only the
      // tail of its very last flush is removed. Each piece's tail was removed (as for a whole
      // message) and is put back before the next piece's bytes, since one more came. The message's
      // end brings no data: nothing to add (empty, it is one empty stored block's header, §7.2.3.6).
      let payload = compressed;
      if (this.compressingLength === 0) payload = stream.frames === 0 ? compressed : EMPTY;
      else if (stream.frames > 0) payload = Buffer.concat([TAIL, compressed], TAIL.length + compressed.length);
      this.streamFrames(message, stream, payload, fin, true);
      this.drain();
      return;
    }
    this.unstage(this.staged!, message);
    // RFC 7692 §6: RSV1 on the first frame of a compressed message only (FrameQueue does that).
    const bytes = this.queue().message(message.opcode, compressed, true, message.fragmentSize);
    if (message.reply) this.replyBytes += bytes;
    this.done(message.callback);
    this.drain();
  }

  private unstage(staged: Staged[], message: Staged): void {
    staged.shift();
    this.stagedLength -= message.payload.length;
    if (message.reply) this.stagedReplies -= message.payload.length;
  }
}
