/**
 * One WebSocket connection of the test peer after its handshake, in either role: it decodes what
 * arrives with the peer's own decoder, checks it against RFC 6455 (and RFC 7692 §6 when
 * permessage-deflate was agreed), records every frame, message, ping, pong and close frame, and
 * when and how TCP ended; and it sends whatever a test asks for, well formed or not.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { StrictInflater } from './deflate.js';
import {
  FrameDecoder,
  OP,
  closePayload,
  encodeFrame,
  isControl,
  isSendableCloseCode,
  isUtf8,
  parseClosePayload,
  randomMaskKey,
  type DecodedFrame,
  type FrameSpec,
} from './frames.js';

export type Role = 'client' | 'server';

export interface PeerOptions {
  /** Answer every ping with a pong carrying its payload. Default false: the peer does only what it is told. */
  autoPong?: boolean;
  /** End our side of TCP as soon as the other side ends its side. Default true. */
  endOnPeerEnd?: boolean;
}

export interface ReceivedMessage {
  data: Buffer;
  isBinary: boolean;
}

/** A data message as it was on the wire. */
export interface WireMessage {
  opcode: number;
  /** RSV1 on its first frame (RFC 7692 §6). */
  compressed: boolean;
  frames: DecodedFrame[];
  /** The frames' payloads joined: compressed bytes for a compressed message. */
  payload: Buffer;
}

export interface ReceivedClose {
  /** 1005 for an empty close frame (RFC 6455 §7.1.5). */
  code: number;
  reason: string;
  payload: Buffer;
  /** performance.now() when it was decoded. */
  at: number;
}

/** Something the other side did that RFC 6455 / RFC 7692 forbid, with the code a receiver fails with. */
export interface Violation {
  code: 1002 | 1007;
  message: string;
}

export class PeerConnection extends EventEmitter {
  readonly frames: DecodedFrame[] = [];
  /** Data messages, their payload inflated when an inflater was given (see `inflateWith`). */
  readonly messages: ReceivedMessage[] = [];
  readonly wire: WireMessage[] = [];
  readonly pings: Buffer[] = [];
  readonly pongs: Buffer[] = [];
  /** The first close frame received. */
  closeFrame: ReceivedClose | null = null;
  readonly closes: ReceivedClose[] = [];
  /** What the other side did wrong (a correct implementation causes none). */
  readonly protocolErrors: Violation[] = [];
  /** Frame bytes received (after the handshake). */
  bytesReceived = 0;
  /** Bytes received after the close frame (RFC 6455 §5.5.1: nothing may follow it). */
  bytesAfterClose = 0;

  /** The other side ended its side of TCP (its FIN arrived). */
  peerEnded = false;
  peerEndedAt: number | null = null;
  /** We ended or destroyed our side. */
  weEnded = false;
  weEndedAt: number | null = null;
  /** The other side's FIN arrived before we ended or destroyed ours. */
  peerEndedFirst = false;
  /** The socket is fully closed. */
  closed = false;
  closedAt: number | null = null;
  socketError: Error | null = null;
  /** We sent a close frame. */
  closeSent = false;

  /** RSV1 may mark a compressed message: permessage-deflate was agreed in the handshake. */
  deflateAgreed = false;
  private inflater: StrictInflater | null = null;
  private readonly decoder: FrameDecoder;
  private open: DecodedFrame[] | null = null;
  private messageCursor = 0;

  constructor(
    readonly socket: Socket,
    readonly role: Role,
    readonly options: PeerOptions = {},
  ) {
    super();
    this.setMaxListeners(0);
    this.decoder = new FrameDecoder((frame, size) => this.onFrame(frame, size));
    socket.on('end', () => {
      this.peerEnded = true;
      this.peerEndedAt = performance.now();
      if (!this.weEnded) this.peerEndedFirst = true;
      this.emit('end', this.peerEndedAt);
      if (options.endOnPeerEnd !== false) this.end();
      this.emit('progress');
    });
    socket.on('error', (error) => {
      this.socketError ??= error;
      this.emit('progress');
    });
    socket.on('close', () => {
      this.closed = true;
      this.closedAt = performance.now();
      this.emit('socketClose', this.closedAt);
      this.emit('progress');
    });
  }

  /** Inflate compressed messages with this (strict) inflater from now on, instead of recording their compressed bytes. */
  inflateWith(inflater: StrictInflater | null): void {
    this.inflater = inflater;
  }

  /** @internal Frame bytes from the socket. */
  protected acceptFrameBytes(chunk: Buffer): void {
    this.bytesReceived += chunk.length;
    this.decoder.push(chunk);
    if (this.decoder.stopped !== null) this.violation(1002, this.decoder.stopped);
  }

  private violation(code: 1002 | 1007, message: string): void {
    if (this.protocolErrors.some((v) => v.message === message)) return;
    const violation = { code, message };
    this.protocolErrors.push(violation);
    this.emit('protocolError', violation);
  }

  private onFrame(frame: DecodedFrame, size: number): void {
    if (this.closeFrame !== null) this.bytesAfterClose += size;
    this.frames.push(frame);
    this.emit('frame', frame);
    if (!this.check(frame)) return;
    if (isControl(frame.opcode)) this.onControl(frame);
    else {
      if (frame.opcode !== OP.CONT) this.open = [];
      this.open!.push(frame);
      if (frame.fin) {
        const frames = this.open!;
        this.open = null;
        this.onMessage(frames);
      }
    }
    this.emit('progress');
  }

  /** RFC 6455 §5.1-§5.5 and RFC 7692 §6.1: is this frame allowed here? */
  private check(frame: DecodedFrame): boolean {
    const fail = (message: string): false => {
      this.violation(1002, message);
      return false;
    };
    if (this.role === 'client' && frame.masked) return fail('a masked frame from the server (RFC 6455 §5.1)');
    if (this.role === 'server' && !frame.masked) return fail('an unmasked frame from the client (RFC 6455 §5.1)');
    if (frame.rsv2 || frame.rsv3) return fail('RSV2 or RSV3 set, no extension defines them (RFC 6455 §5.2)');
    if ((frame.opcode >= 0x3 && frame.opcode <= 0x7) || frame.opcode >= 0xb)
      return fail(`reserved opcode 0x${frame.opcode.toString(16)} (RFC 6455 §5.2)`);
    if (frame.rsv1 && !this.deflateAgreed) return fail('RSV1 set without an extension that defines it (RFC 6455 §5.2)');
    if (frame.rsv1 && (isControl(frame.opcode) || frame.opcode === OP.CONT))
      return fail('RSV1 on a control or continuation frame (RFC 7692 §6.1)');
    if (isControl(frame.opcode)) {
      if (!frame.fin) return fail('a fragmented control frame (RFC 6455 §5.5)');
      if (frame.payload.length > 125) return fail('a control frame over 125 bytes (RFC 6455 §5.5)');
    } else if (frame.opcode === OP.CONT && this.open === null) {
      return fail('a continuation frame with no message open (RFC 6455 §5.4)');
    } else if (frame.opcode !== OP.CONT && this.open !== null) {
      this.open = null;
      return fail('a new data message inside a fragmented one (RFC 6455 §5.4)');
    }
    return true;
  }

  private onControl(frame: DecodedFrame): void {
    if (frame.opcode === OP.PING) {
      this.pings.push(frame.payload);
      this.emit('ping', frame.payload);
      if (this.options.autoPong === true && !this.closeSent && this.closeFrame === null && !this.weEnded) {
        this.sendFrame({ opcode: OP.PONG, payload: frame.payload });
      }
    } else if (frame.opcode === OP.PONG) {
      this.pongs.push(frame.payload);
      this.emit('pong', frame.payload);
    } else {
      const { code, reason, reasonBytes } = parseClosePayload(frame.payload);
      if (frame.payload.length === 1) this.violation(1002, 'a close frame with a 1-byte payload (RFC 6455 §5.5.1)');
      else if (code !== undefined && !isSendableCloseCode(code))
        this.violation(1002, `close code ${code} may not be sent (RFC 6455 §7.4)`);
      else if (!isUtf8(reasonBytes)) this.violation(1007, 'a close reason that is not UTF-8 (RFC 6455 §5.5.1)');
      const close = { code: code ?? 1005, reason, payload: frame.payload, at: performance.now() };
      this.closes.push(close);
      this.closeFrame ??= close;
      this.emit('closeFrame', close);
    }
  }

  private onMessage(frames: DecodedFrame[]): void {
    const first = frames[0]!;
    const payload = frames.length === 1 ? first.payload : Buffer.concat(frames.map((f) => f.payload));
    const compressed = first.rsv1;
    this.wire.push({ opcode: first.opcode, compressed, frames, payload });
    let data = payload;
    if (compressed && this.inflater !== null) {
      try {
        data = this.inflater.inflate(payload);
      } catch (error) {
        this.violation(
          1002,
          `a compressed message that does not inflate: ${(error as Error).message} (RFC 7692 §7.2.2)`,
        );
        return;
      }
    }
    const isBinary = first.opcode === OP.BINARY;
    if (!isBinary && !(compressed && this.inflater === null) && !isUtf8(data)) {
      this.violation(1007, 'a text message that is not UTF-8 (RFC 6455 §8.1)');
      return;
    }
    const message = { data, isBinary };
    this.messages.push(message);
    this.emit('message', message);
  }

  // -------------------------------------------------------------------------------------------
  // Waiting
  // -------------------------------------------------------------------------------------------

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
    const close = this.closeFrame === null ? 'none' : `${this.closeFrame.code} "${this.closeFrame.reason}"`;
    const errors = this.protocolErrors.map((e) => e.message).join('; ') || 'none';
    return `messages=${this.messages.length} pings=${this.pings.length} pongs=${this.pongs.length} close=${close} errors=${errors} peerEnded=${this.peerEnded} closed=${this.closed}`;
  }

  waitMessages(count: number, ms = 3000): Promise<ReceivedMessage[]> {
    return this.until(() => this.messages.length >= count, ms, `${count} message(s)`).then(() => this.messages);
  }

  /** The next message not yet returned by this method, in arrival order. */
  nextMessage(): Promise<ReceivedMessage> {
    if (this.messageCursor < this.messages.length) return Promise.resolve(this.messages[this.messageCursor++]!);
    return new Promise((resolve) => {
      const onMessage = (): void => {
        if (this.messageCursor >= this.messages.length) return;
        this.off('message', onMessage);
        resolve(this.messages[this.messageCursor++]!);
      };
      this.on('message', onMessage);
    });
  }

  waitFrames(count: number, ms = 3000): Promise<DecodedFrame[]> {
    return this.until(() => this.frames.length >= count || this.closed, ms, `${count} frame(s)`).then(
      () => this.frames,
    );
  }

  /** Wait for the other side's close frame. */
  async waitCloseFrame(ms = 3000): Promise<ReceivedClose> {
    await this.until(() => this.closeFrame !== null, ms, 'a close frame');
    return this.closeFrame!;
  }

  /** Wait for the other side's FIN (or the socket's end by any means). */
  waitPeerEnd(ms = 3000): Promise<void> {
    return this.until(() => this.peerEnded || this.closed, ms, 'the other side to end TCP');
  }

  /** Wait until the socket is fully closed. Resolves with whether the other side ended TCP first. */
  async waitClosed(ms = 3000): Promise<{ peerEndedFirst: boolean }> {
    await this.until(() => this.closed, ms, 'the socket to close');
    return { peerEndedFirst: this.peerEndedFirst };
  }

  // -------------------------------------------------------------------------------------------
  // Sending
  // -------------------------------------------------------------------------------------------

  write(bytes: Uint8Array | string): void {
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.write(bytes);
  }

  /** Write and resolve once the bytes are handed to the kernel. */
  writeAsync(bytes: Uint8Array | string): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.write(bytes, (error) => (error == null ? resolve() : reject(error))),
    );
  }

  /**
   * Write `bytes` in pieces: cut at these offsets (an array), or every `cuts` bytes (a number),
   * each piece handed to the kernel before the next, `gapMs` apart. Stops quietly once our side of
   * TCP is ended or destroyed (the other side may fail the connection half-way, as it should).
   */
  async writeChunked(bytes: Uint8Array, cuts: number | readonly number[], gapMs = 0): Promise<void> {
    const points =
      typeof cuts === 'number'
        ? Array.from({ length: Math.ceil(bytes.length / cuts) }, (_, i) => i * cuts)
        : [0, ...cuts];
    const sorted = [...new Set(points)].filter((c) => c >= 0 && c < bytes.length).sort((a, b) => a - b);
    for (let i = 0; i < sorted.length; i++) {
      if (this.socket.destroyed || this.socket.writableEnded) return;
      try {
        await this.writeAsync(bytes.subarray(sorted[i]!, sorted[i + 1] ?? bytes.length));
      } catch (error) {
        if (this.socket.destroyed || this.socket.writableEnded) return;
        throw error;
      }
      if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
    }
  }

  /** One frame; a client masks with a fresh random key unless `maskKey` says otherwise (null: unmasked). */
  frame(spec: FrameSpec): Buffer {
    const maskKey = spec.maskKey !== undefined ? spec.maskKey : this.role === 'client' ? randomMaskKey() : null;
    return encodeFrame({ ...spec, maskKey });
  }

  sendFrame(spec: FrameSpec): void {
    if (spec.opcode === OP.CLOSE) this.closeSent = true;
    this.write(this.frame(spec));
  }

  /** Several frames in one write. */
  sendFrames(...specs: FrameSpec[]): void {
    if (specs.some((s) => s.opcode === OP.CLOSE)) this.closeSent = true;
    this.write(Buffer.concat(specs.map((s) => this.frame(s))));
  }

  sendText(text: string | Uint8Array, fin = true): void {
    this.sendFrame({ opcode: OP.TEXT, payload: text, fin });
  }

  sendBinary(data: Uint8Array, fin = true): void {
    this.sendFrame({ opcode: OP.BINARY, payload: data, fin });
  }

  sendContinuation(data: Uint8Array | string, fin: boolean): void {
    this.sendFrame({ opcode: OP.CONT, payload: data, fin });
  }

  sendPing(payload: Uint8Array | string = ''): void {
    this.sendFrame({ opcode: OP.PING, payload });
  }

  sendPong(payload: Uint8Array | string = ''): void {
    this.sendFrame({ opcode: OP.PONG, payload });
  }

  sendClose(code?: number, reason: string | Uint8Array = ''): void {
    this.sendFrame({ opcode: OP.CLOSE, payload: closePayload(code, reason) });
  }

  /**
   * RFC 7692 §6.1: an already compressed message, RSV1 on its first frame only, cut at the given
   * payload offsets into fragments (none: one frame).
   */
  sendCompressed(payload: Uint8Array, options: { binary?: boolean; cuts?: readonly number[] } = {}): void {
    const cuts = [...new Set(options.cuts ?? [])].filter((c) => c > 0 && c < payload.length).sort((a, b) => a - b);
    const bounds = [0, ...cuts, payload.length];
    const specs: FrameSpec[] = [];
    for (let i = 0; i + 1 < bounds.length; i++) {
      specs.push({
        opcode: i === 0 ? (options.binary === true ? OP.BINARY : OP.TEXT) : OP.CONT,
        rsv1: i === 0,
        fin: i + 2 === bounds.length,
        payload: payload.subarray(bounds[i]!, bounds[i + 1]!),
      });
    }
    this.sendFrames(...specs);
  }

  /** Stop reading from the socket (the kernel buffers fill, TCP backpressure reaches the other side). */
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
    this.weEndedAt = performance.now();
    if (!this.socket.destroyed) this.socket.end();
  }

  destroy(): void {
    if (!this.weEnded) {
      this.weEnded = true;
      this.weEndedAt = performance.now();
    }
    this.socket.destroy();
  }

  /** Abort with a TCP RST. */
  reset(): void {
    if (!this.weEnded) {
      this.weEnded = true;
      this.weEndedAt = performance.now();
    }
    this.socket.resetAndDestroy();
  }
}
