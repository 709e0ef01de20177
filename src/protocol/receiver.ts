import { parseClosePayload } from './close.js';
import { MAX_CONTROL_PAYLOAD, Opcode, isControlOpcode, isKnownOpcode } from './constants.js';
import { ProtocolError, type ProtocolViolation } from './errors.js';
import { decodeHeaderStart, extendedLengthSize, readExtendedLength, type FrameHeaderStart } from './frame.js';
import type { InflateBudget } from './inflate-budget.js';
import { mask } from './mask.js';
import { PayloadBuffer } from './payload-buffer.js';
import { ReadQueue } from './read-queue.js';
import type { Frame, InflateJob, ReceiverHandler, ReceiverOptions, Role } from './receiver-handler.js';
import { Utf8Cutter, Utf8Validator } from './utf8.js';

/**
 * The incremental parser: bytes in, frames and messages out, no socket and no timer.
 *
 * Feed it chunks of any size with `push()`: one byte at a time, or many frames in one chunk. It
 * calls its handler for every complete message, ping, pong and close, in order, and for the first
 * protocol violation, after which it ignores all further input.
 *
 * It takes ownership of the chunks it is given: payloads are unmasked in place and delivered as
 * views into them, so a frame that arrives in one chunk is never copied, and a message that arrives
 * in several pieces is copied exactly once, when it is complete. Chunks are never concatenated
 * into a growing buffer; only the few header bytes that straddle two chunks are copied.
 *
 * Streaming (RFC 6455 §5.2: "a part of a frame can be delivered to the application"): data messages
 * go on as they arrive, never held: `onMessageStart`, `onMessageData` (views, or inflated output;
 * text validated and cut on code points), `onMessageEnd`.
 */

export type { Frame, InflateJob, ReceiverHandler, ReceiverOptions, Role } from './receiver-handler.js';

/** A compressed piece of a streamed message is inflated once this much has come, or the frame ends. */
const STREAMED_INFLATE_PIECE = 64 * 1024;

// Parser states. The first four walk a frame in order (§5.2); the others stop the loop.
const READ_HEADER = 0;
const READ_EXTENDED_LENGTH = 1;
const READ_MASK_KEY = 2;
const READ_PAYLOAD = 3;
const INFLATING = 4;
const CLOSED = 5;
const FAILED = 6;

export class Receiver extends ReadQueue {
  readonly role: Role;
  readonly maxMessageSize: number;
  readonly maxFramePayload: number;
  /** permessage-deflate was negotiated. */
  private readonly deflate: boolean;
  /** The inflation the owner has to run, until it takes it. */
  private inflateJob: InflateJob | null = null;
  /** The frame being inflated is its message's last. */
  private inflatingFin = false;
  private readonly budget: InflateBudget | null;
  private readonly handler: ReceiverHandler;
  /** Data messages whose first frame is read from now on are streamed (see the file's comment). */
  streaming: boolean;
  private readonly maxStreamedMessageSize: number;
  private state = READ_HEADER;
  /** The handler asked to stop after the event it was just given (`pause()`); `resume()` goes on. */
  private paused = false;
  /** While paused, a next frame whose reading is safe ahead of the handler may be read (`pause(true)`). */
  private readAhead = false;

  // The frame being read.
  private readonly header: FrameHeaderStart = {
    fin: false,
    rsv1: false,
    rsv2: false,
    rsv3: false,
    opcode: 0,
    masked: false,
    lengthCode: 0,
  };
  private payloadLength = 0;
  private remaining = 0;
  private readonly maskKey = new Uint8Array(4);
  private maskPhase = 0;
  /** Payload of a control frame or of a compressed data frame, gathered until the frame ends. */
  private readonly framePayload = new PayloadBuffer();
  /** Piece index in `message` where the current data frame starts (for `onFrame`). */
  private frameStart = 0;

  // The message being assembled (RFC 6455 §5.4).
  /** Opcode of the open message (Text or Binary), or 0 when no message is open. */
  private messageOpcode = 0;
  private messageCompressed = false;
  /** Inflated bytes of the current message taken from the budget (inflate-budget.ts). */
  private inflatedHeld = 0;
  /** The message's payload so far (uncompressed: as received; compressed: as inflated). */
  private readonly message = new PayloadBuffer();
  private readonly utf8 = new Utf8Validator();

  // A streamed message (see the file's comment), and its bytes so far (inflated).
  private messageStreamed = false;
  private streamedLength = 0;
  private readonly textCut = new Utf8Cutter();
  /** The piece being inflated ends its frame. */
  private inflatingFrameEnd = true;

  constructor(options: ReceiverOptions, handler: ReceiverHandler) {
    super();
    this.role = options.role;
    this.maxMessageSize = options.maxMessageSize;
    this.maxFramePayload = Math.min(options.maxFramePayload, options.maxMessageSize);
    this.deflate = options.compressed ?? false;
    this.budget = options.budget ?? null;
    this.handler = handler;
    this.streaming = options.streaming ?? false;
    this.maxStreamedMessageSize = options.maxStreamedMessageSize ?? Number.MAX_SAFE_INTEGER;
  }

  /** Feed bytes. The receiver owns `chunk` from now on (payloads are unmasked in place). */
  push(chunk: Buffer): void {
    if (this.state >= CLOSED || chunk.length === 0) return;
    this.append(chunk);
    if (this.state !== INFLATING && !this.paused) this.run();
  }

  /**
   * Stop parsing after the event being handled (call it from a handler's callback): the input left
   * waits until `resume()`. A handler that takes one event at a time (the protocol does, so that
   * its application answers each message before the next frame has any effect) pauses after each.
   *
   * `readAhead`: parsing may go on past the pause through frames whose outcome cannot depend on
   * what the handler's owner does meanwhile (see `nextFrameReadyAhead()`); the handler then holds
   * back their effects until their turn comes.
   */
  pause(readAhead = false): void {
    this.paused = true;
    this.readAhead = readAhead;
  }

  /** Whether parsing waits for `resume()`. */
  get isPaused(): boolean {
    return this.paused;
  }

  /** Parse on, after `pause()`, until the next event (or the end of the input). */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.state < INFLATING) this.run();
  }

  /** True once a close frame or a protocol error ended parsing. */
  get finished(): boolean {
    return this.state >= CLOSED;
  }

  /** Bytes received but not parsed yet (while a compressed frame is being inflated). */
  get bufferedBytes(): number {
    return this.queued;
  }

  /**
   * Stop parsing for good and drop everything buffered (the connection is going away). Call it on
   * a receiver that inflates: it gives the unfinished message's bytes back to the process-wide
   * inflate budget.
   */
  destroy(): void {
    if (this.state !== FAILED) this.state = CLOSED;
    this.inflateJob = null;
    this.dropInput();
    this.dropMessage();
    this.framePayload.clear();
  }

  private run(): void {
    for (;;) {
      if (this.paused) {
        if (!this.readAhead || !this.nextFrameReadyAhead()) return;
        this.paused = false;
      }
      switch (this.state) {
        case READ_HEADER:
          if (this.queued < 2) return this.awaitInput();
          this.readHeader();
          break;
        case READ_EXTENDED_LENGTH:
          if (this.queued < extendedLengthSize(this.header.lengthCode)) return this.awaitInput();
          this.readExtendedLength();
          break;
        case READ_MASK_KEY:
          if (this.queued < 4) return this.awaitInput();
          this.readMaskKey();
          break;
        case READ_PAYLOAD:
          if (this.remaining > 0 && this.queued === 0) return this.awaitInput();
          this.readPayload();
          break;
        default:
          return;
      }
    }
  }

  /**
   * Whether the next frame may be read ahead of the handler (see `pause()`): it has arrived whole,
   * no message is open, and it reads the same whether or not the next message is to be streamed: a
   * control frame, a frame that fails before any message starts (a reserved opcode, a continuation
   * with nothing to continue), or an uncompressed message in one frame within both size limits.
   */
  private nextFrameReadyAhead(): boolean {
    if (this.state !== READ_HEADER || this.streaming || this.messageOpcode !== 0) return false;
    const length = this.wholeFrameQueued();
    if (length < 0) return false;
    const first = this.peek(0);
    const opcode = first & 0x0f;
    if (opcode !== Opcode.Text && opcode !== Opcode.Binary) return true;
    // FIN set and RSV1 clear (RFC 7692 §6: not compressed).
    return (first & 0xc0) === 0x80 && length <= this.maxFramePayload && length <= this.maxStreamedMessageSize;
  }

  /** Opcode of the frame being read (or the last one read). */
  get frameOpcode(): number {
    return this.header.opcode;
  }

  /**
   * The input is parsed as far as it goes. What waits for the next read is kept on its own, not
   * with the read it came in (else a peer could make each idle connection hold a whole read: 512 KiB
   * on Bun): the start of a frame header (a few bytes), and the first piece of an unfinished frame
   * or message.
   */
  private awaitInput(): void {
    if (this.queued > 0 && this.state < READ_PAYLOAD) this.keepOnlyLeftover();
    this.framePayload.compact();
    this.message.compact();
  }

  /** RFC 6455 §5.2: the first two bytes. Everything that can be checked here is, before any payload. */
  private readHeader(): void {
    const bytes = this.take(2);
    const header = this.header;
    decodeHeaderStart(bytes[this.takenAt]!, bytes[this.takenAt + 1]!, header);
    const opcode = header.opcode;

    // RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket Connection_."
    if (!isKnownOpcode(opcode)) return this.fail('ReservedOpcode', `reserved opcode 0x${opcode.toString(16)}`);

    // RFC 6455 §5.2: RSV1-3 "MUST be 0 unless an extension is negotiated that defines meanings for non-zero values".
    // RFC 7692 §6: permessage-deflate gives RSV1 a meaning on the first frame of a data message only.
    if (header.rsv2 || header.rsv3) return this.fail('ReservedBits', 'RSV2 or RSV3 set, and no extension defines them');
    if (header.rsv1 && (!this.deflate || opcode === Opcode.Continuation || isControlOpcode(opcode))) {
      return this.fail(
        'ReservedBits',
        !this.deflate
          ? 'RSV1 set, but no extension was negotiated'
          : 'RSV1 set on a control or continuation frame (RFC 7692 §6.1)',
      );
    }

    if (isControlOpcode(opcode)) {
      // RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less and MUST
      // NOT be fragmented."
      if (!header.fin) return this.fail('ControlFrameFragmented', 'fragmented control frame');
      if (header.lengthCode > MAX_CONTROL_PAYLOAD) {
        return this.fail('ControlFrameTooLong', 'control frame payload longer than 125 bytes');
      }
    } else if (opcode === Opcode.Continuation) {
      // RFC 6455 §5.4: a continuation frame continues a message opened by a text or binary frame.
      if (this.messageOpcode === 0)
        return this.fail('UnexpectedContinuation', 'continuation frame with no message open');
    } else if (this.messageOpcode !== 0) {
      // RFC 6455 §5.4: "the fragments of one message MUST NOT be interleaved between the fragments of another".
      return this.fail('ExpectedContinuation', 'new data frame while a fragmented message is open');
    }

    // RFC 6455 §5.1: a client masks every frame it sends; a server masks none.
    if (header.masked !== (this.role === 'server')) {
      return this.role === 'server'
        ? this.fail('UnmaskedFrame', 'unmasked frame from a client')
        : this.fail('MaskedFrame', 'masked frame from a server');
    }

    if (header.lengthCode < 126) {
      this.startPayload(header.lengthCode);
    } else {
      this.state = READ_EXTENDED_LENGTH;
    }
  }

  private readExtendedLength(): void {
    const size = extendedLengthSize(this.header.lengthCode);
    const bytes = this.take(size);
    const length = readExtendedLength(bytes, this.takenAt, size);
    // RFC 6455 §5.2: in a 64-bit length "the most significant bit MUST be 0".
    if (length < 0) return this.fail('LengthTopBitSet', '64-bit payload length with the most significant bit set');
    this.startPayload(length);
  }

  /** The length is known: check it against the limits before reading a byte of payload. */
  private startPayload(length: number): void {
    const header = this.header;
    const opcode = header.opcode;
    // Control frames are at most 125 bytes (checked above): the limits are for data, so a tiny
    // limit never turns a valid ping or close into a 1009.
    let starts = false;
    if (!isControlOpcode(opcode)) {
      const first = opcode !== Opcode.Continuation;
      const compressed = first ? header.rsv1 : this.messageCompressed;
      const streamed = first ? this.streaming : this.messageStreamed;
      // A streamed message is never held: its frames are bounded by the streamed limit alone.
      const frameMax = streamed ? this.maxStreamedMessageSize : this.maxFramePayload;
      const messageMax = streamed ? this.maxStreamedMessageSize : this.maxMessageSize;
      // A message at the size limit must fit in one frame even when it does not compress: DEFLATE
      // can grow data (5 bytes per stored block, and small windows make small blocks), so
      // compressed frames get zlib's general bound of an eighth more.
      const frameLimit = compressed ? frameMax + Math.ceil(frameMax / 8) + 64 : frameMax;
      if (length > frameLimit) {
        return this.fail('FrameTooBig', `frame payload of ${length} bytes exceeds the limit of ${frameMax}`);
      }
      // Uncompressed, the declared length tells the message size already; compressed, the
      // inflater counts the output against the same limit as it goes.
      const sofar = streamed ? this.streamedLength : this.message.length;
      if (!compressed && sofar + length > messageMax) {
        return this.fail('MessageTooBig', `message exceeds the limit of ${messageMax} bytes`);
      }
      if (first) {
        this.messageOpcode = opcode;
        this.messageCompressed = compressed;
        this.messageStreamed = starts = streamed;
      }
      if (this.handler.onFrame !== undefined && !streamed) {
        // Tracing needs each frame's payload on its own: no block shared with the previous frame.
        this.message.seal();
        this.frameStart = this.message.count;
      }
    }
    this.payloadLength = length;
    this.remaining = length;
    this.maskPhase = 0;
    this.state = header.masked ? READ_MASK_KEY : READ_PAYLOAD;
    if (starts) this.handler.onMessageStart!(opcode === Opcode.Binary);
  }

  private readMaskKey(): void {
    const bytes = this.take(4);
    const at = this.takenAt;
    const key = this.maskKey;
    key[0] = bytes[at]!;
    key[1] = bytes[at + 1]!;
    key[2] = bytes[at + 2]!;
    key[3] = bytes[at + 3]!;
    this.state = READ_PAYLOAD;
  }

  /** Take as much of the payload as has arrived, one chunk's worth at a time, without copying. */
  private readPayload(): void {
    const header = this.header;
    if (this.messageStreamed && !isControlOpcode(header.opcode)) {
      return this.messageCompressed ? this.readStreamedCompressed() : this.readStreamed();
    }
    const textToValidate =
      this.messageOpcode === Opcode.Text && !this.messageCompressed && !isControlOpcode(header.opcode);
    const direct = !isControlOpcode(header.opcode) && !this.messageCompressed;
    while (this.remaining > 0 && this.queued > 0) {
      const piece = this.nextPiece();
      if (direct) {
        // RFC 6455 §8.1, fail fast: validate each piece as it arrives, not when the message ends.
        if (textToValidate && this.utf8.write(piece) !== -1) {
          return this.fail('InvalidUtf8', 'text message is not valid UTF-8');
        }
        this.message.push(piece);
      } else {
        this.framePayload.push(piece);
      }
    }
    if (this.remaining === 0) this.endFrame();
  }

  /** The next piece of the payload as it arrived (a view into the chunk, not a copy), unmasked in place. */
  private nextPiece(): Buffer {
    const piece = this.view(this.remaining);
    this.remaining -= piece.length;
    if (this.header.masked) this.maskPhase = mask(piece, this.maskKey, this.maskPhase);
    return piece;
  }

  /** A streamed message's frame, uncompressed: each piece goes on as it comes, one event at a time. */
  private readStreamed(): void {
    while (this.remaining > 0 && this.queued > 0 && !this.paused) {
      const piece = this.nextPiece();
      if (this.handler.onFrame !== undefined) this.framePayload.push(piece);
      this.streamedLength += piece.length;
      if (!this.deliver(piece)) return;
    }
    if (this.remaining > 0 || this.paused) return;
    this.state = READ_HEADER;
    this.handler.onFrame?.(this.frameInfo(this.framePayload.take()));
    if (this.state === READ_HEADER && this.header.fin) this.endMessage();
  }

  /**
   * A streamed message's compressed frame: inflated a piece at a time as it arrives (RFC 7692 §7.2.2
   * inflates the message's payload as one stream, whatever its framing), never held whole.
   */
  private readStreamedCompressed(): void {
    const pieces: Buffer[] = [];
    let length = 0;
    while (this.remaining > 0 && this.queued > 0 && length < STREAMED_INFLATE_PIECE) {
      const piece = this.nextPiece();
      if (this.handler.onFrame !== undefined) this.framePayload.push(piece);
      pieces.push(piece);
      length += piece.length;
    }
    const frameEnd = this.remaining === 0;
    if (length === 0 && !frameEnd) return;
    this.state = INFLATING;
    this.inflatingFrameEnd = frameEnd;
    this.inflatingFin = frameEnd && this.header.fin;
    const payload = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, length);
    this.inflateJob = { payload, fin: this.inflatingFin };
  }

  /** A streamed piece to the handler: text validated (§8.1, fail fast) and cut on code points. False: failed. */
  private deliver(piece: Buffer): boolean {
    let data = piece;
    if (this.messageOpcode === Opcode.Text) {
      if (this.utf8.write(piece) !== -1) {
        this.fail('InvalidUtf8', 'text message is not valid UTF-8');
        return false;
      }
      data = this.textCut.cut(piece);
    }
    if (data.length > 0) this.handler.onMessageData!(data);
    return true;
  }

  private endFrame(): void {
    const header = this.header;
    const opcode = header.opcode;
    this.state = READ_HEADER;

    if (isControlOpcode(opcode)) {
      const payload = this.framePayload.take();
      this.handler.onFrame?.(this.frameInfo(payload));
      if (opcode === Opcode.Ping) this.handler.onPing(payload);
      else if (opcode === Opcode.Pong) this.handler.onPong(payload);
      else this.endWithClose(payload);
      return;
    }

    if (this.messageCompressed) {
      const payload = this.framePayload.take();
      this.handler.onFrame?.(this.frameInfo(payload));
      this.inflateFrame(payload, header.fin);
      return;
    }

    if (this.handler.onFrame !== undefined) {
      this.handler.onFrame(this.frameInfo(this.message.joinFrom(this.frameStart, this.payloadLength)));
      if (this.state !== READ_HEADER) return;
    }
    if (header.fin) this.endMessage();
  }

  /** RFC 6455 §5.5.1: a close frame ends the stream; its payload must be well formed. */
  private endWithClose(payload: Buffer): void {
    let code: number;
    let reason: string;
    try {
      ({ code, reason } = parseClosePayload(payload));
    } catch (error) {
      if (error instanceof ProtocolError) return this.failWith(error);
      throw error;
    }
    this.state = CLOSED;
    this.dropInput();
    // A message left open by the close is never delivered.
    this.dropMessage();
    this.handler.onClose(code, reason);
  }

  /** Stop here until the owner has inflated this frame (see InflateJob). */
  private inflateFrame(payload: Buffer, fin: boolean): void {
    this.state = INFLATING;
    this.inflatingFin = fin;
    this.inflateJob = { payload, fin };
  }

  /** The inflation to run, once (null when none waits). */
  takeInflateJob(): InflateJob | null {
    const job = this.inflateJob;
    this.inflateJob = null;
    return job;
  }

  /**
   * A piece of the frame's inflated output, in order. Returns false when no more is wanted (the
   * message broke a rule, or parsing ended): the owner stops the job and drops its zlib state.
   */
  inflated(data: Buffer): boolean {
    if (this.state !== INFLATING) return false;
    if (this.messageStreamed) {
      // Nothing is held: the limit is the application's to choose, the budget is not spent.
      if (this.streamedLength + data.length > this.maxStreamedMessageSize) {
        const limit = this.maxStreamedMessageSize;
        this.fail('InflatedMessageTooBig', `message exceeds the limit of ${limit} bytes once inflated`);
        return false;
      }
      this.streamedLength += data.length;
      return this.deliver(data);
    }
    // The limit holds for the output, as it comes: a decompression bomb stops at the limit, not
    // after inflating it all (RFC 6455 §10.4).
    if (this.message.length + data.length > this.maxMessageSize) {
      this.fail('InflatedMessageTooBig', `message exceeds the limit of ${this.maxMessageSize} bytes once inflated`);
      return false;
    }
    if (this.messageOpcode === Opcode.Text && this.utf8.write(data) !== -1) {
      this.fail('InvalidUtf8', 'text message is not valid UTF-8');
      return false;
    }
    if (this.budget !== null && !this.budget.reserve(data.length)) {
      this.fail('InflateMemoryExhausted', 'too much inflated data held across connections; try again later');
      return false;
    }
    this.inflatedHeld += data.length;
    this.message.push(data);
    return true;
  }

  /**
   * The frame's inflation is over: `error` says zlib refused the data (RFC 7692 §7.2.2: the
   * connection fails). Parsing goes on with the input held meanwhile.
   */
  inflateDone(error: Error | null): void {
    if (this.state !== INFLATING) return;
    if (error !== null) return this.fail('InvalidCompressedData', `invalid compressed data: ${error.message}`);
    if (this.messageStreamed) {
      if (!this.inflatingFrameEnd) {
        // More of the frame to come.
        this.state = READ_PAYLOAD;
        return this.run();
      }
      this.handler.onFrame?.(this.frameInfo(this.framePayload.take()));
    }
    this.state = READ_HEADER;
    if (this.inflatingFin) this.endMessage();
    this.run();
  }

  private endMessage(): void {
    const isBinary = this.messageOpcode === Opcode.Binary;
    // A text message must also end on a code point boundary.
    if (!isBinary && !this.utf8.complete) {
      return this.fail('InvalidUtf8', 'text message ends in the middle of a UTF-8 sequence');
    }
    if (this.messageStreamed) {
      this.messageOpcode = 0;
      this.messageCompressed = false;
      this.messageStreamed = false;
      this.streamedLength = 0;
      if (!isBinary) this.utf8.reset();
      return this.handler.onMessageEnd!();
    }
    const data = this.message.take();
    this.releaseInflated();
    this.messageOpcode = 0;
    this.messageCompressed = false;
    if (!isBinary) this.utf8.reset();
    this.handler.onMessage(data, isBinary);
  }

  private frameInfo(payload: Buffer): Frame {
    const h = this.header;
    return {
      fin: h.fin,
      rsv1: h.rsv1,
      rsv2: h.rsv2,
      rsv3: h.rsv3,
      opcode: h.opcode,
      masked: h.masked,
      maskKey: h.masked ? Uint8Array.from(this.maskKey) : null,
      payload,
      lengthBits: h.lengthCode < 126 ? 7 : h.lengthCode === 126 ? 16 : 64,
    };
  }

  private fail(violation: ProtocolViolation, message: string): void {
    this.failWith(new ProtocolError(violation, message));
  }

  /** RFC 6455 §7.1.7: after the first violation nothing more is parsed or reported. */
  private failWith(error: ProtocolError): void {
    if (this.state === FAILED || this.state === CLOSED) return;
    this.state = FAILED;
    this.inflateJob = null;
    this.dropInput();
    this.dropMessage();
    this.framePayload.clear();
    this.handler.onError(error);
  }

  /** Forget the message being assembled, giving its inflated bytes back to the budget. */
  private dropMessage(): void {
    this.message.clear();
    this.releaseInflated();
    this.streamedLength = 0;
    this.textCut.reset();
  }

  /** The current message is delivered or dropped: its inflated bytes go back to the budget. */
  private releaseInflated(): void {
    if (this.inflatedHeld === 0) return;
    this.budget?.release(this.inflatedHeld);
    this.inflatedHeld = 0;
  }
}
