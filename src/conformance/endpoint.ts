/**
 * One end of a case's connection, after the opening handshake: the engine's side of RFC 6455,
 * written to be told exactly what to send (any frame, however wrong, chopped into chosen TCP
 * writes) and to judge what comes back the way the reference suite (Autobahn|Testsuite, on
 * autobahn-python) judges it. It keeps the bookkeeping the verdicts are made of: who started the
 * closing handshake (closedByMe), whether the engine failed the connection (failedByMe) or dropped
 * TCP (droppedByMe), whether the close was clean (wasClean: close frames both ways and TCP ended
 * by the server, RFC 6455 §7.1.1), and the codes both ways.
 *
 * Every wait here is a deadline for a peer that misbehaves; a peer that behaves ends each case
 * through events. The deadlines are the suite's, times `timeScale`.
 */
import type { Socket } from 'node:net';
import {
  applyMask,
  closePayload,
  encodeHeader,
  FrameDecoder,
  isControl,
  minimalLengthForm,
  Op,
  type FrameHeader,
} from './frames.js';
import type { PerMessageDeflate } from './deflate.js';
import { Utf8Validator } from './utf8.js';
import type { WireLog } from './wirelog.js';
import { fragments, maskKey, repeat, WriteQueue, type Fragment } from './writes.js';

/** What the endpoint tells the case it runs. */
export interface EndpointHooks {
  onMessage(payload: Buffer, binary: boolean): void;
  onPong(payload: Buffer): void;
  onConnectionLost(): void;
}

export interface EndpointOptions {
  isServer: boolean;
  /** The agreed permessage-deflate, or null. */
  deflate: PerMessageDeflate | null;
  /** Multiplies every deadline of the suite (1 = the suite's own). */
  timeScale: number;
  /** The largest message (and frame) accepted from the peer; past it the engine fails with 1009. */
  maxMessageSize: number;
  log: WireLog;
}

export interface SendFrameOptions {
  opcode: number;
  payload?: Buffer | string;
  fin?: boolean;
  rsv?: number;
  /** A chosen masking key; by default a client masks with a random key and a server does not mask. */
  mask?: Buffer | null;
  /** Send this many payload octets, repeating `payload` (how the suite makes large messages). */
  payloadLength?: number;
  /** Write the frame in TCP writes of this many octets, each after a turn of the event loop. */
  chopSize?: number;
  /** Write the frame on its own, after a turn of the event loop. */
  sync?: boolean;
}

/** RFC 6455 §7.4.1/§7.4.2 and the IANA registry: codes a peer may put in a close frame. */
function validCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

export class Endpoint {
  state: 'open' | 'closing' | 'closed' = 'open';
  closedByMe = false;
  failedByMe = false;
  droppedByMe = false;
  wasClean = false;
  wasNotCleanReason: string | null = null;
  wasServerConnectionDropTimeout = false;
  wasCloseHandshakeTimeout = false;
  localCloseCode: number | null = null;
  localCloseReason: string | null = null;
  remoteCloseCode: number | null = null;
  remoteCloseReason: string | null = null;
  /** Fragment outgoing messages into frames of this many octets (0: never). */
  autoFragmentSize = 0;
  /** Frames sent and received, by opcode; octets both ways. */
  readonly txFrames: Record<number, number> = {};
  readonly rxFrames: Record<number, number> = {};
  readonly traffic = { txOctets: 0, rxOctets: 0, txAppOctets: 0, txWsOctets: 0, rxAppOctets: 0, rxWsOctets: 0 };

  private readonly decoder = new FrameDecoder();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closeHandshakeTimer: NodeJS.Timeout | null = null;
  private readonly writes: WriteQueue;
  private lost = false;
  /** The data message being received. */
  private message: {
    binary: boolean;
    compressed: boolean;
    parts: Buffer[];
    bytes: number;
    utf8: Utf8Validator | null;
  } | null = null;
  private readonly log: WireLog;

  constructor(
    private readonly socket: Socket,
    private readonly options: EndpointOptions,
    private readonly hooks: EndpointHooks,
  ) {
    this.log = options.log;
    this.writes = new WriteQueue(
      (data) => this.write(data),
      () => this.state !== 'closed',
    );
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.received(chunk));
    socket.on('error', (error) => this.log.note(`socket error: ${error.message}`));
    socket.on('close', () => this.connectionLost());
  }

  /** Read through a getter, so a check after a call that may close is not narrowed away. */
  get closed(): boolean {
    return this.state === 'closed';
  }

  get isServer(): boolean {
    return this.options.isServer;
  }

  get deflate(): PerMessageDeflate | null {
    return this.options.deflate;
  }

  /** Record data frames in the wire log, or only count them (control frames are always recorded). */
  wireLog(enabled: boolean): void {
    this.log.enabled = enabled;
  }

  /** Bytes that followed the handshake's head in the same read. */
  feed(rest: Buffer): void {
    this.received(rest);
  }

  // ---- timers ---------------------------------------------------------------------------------

  private schedule(seconds: number, run: () => void): NodeJS.Timeout {
    const timer = setTimeout(
      () => {
        this.timers.delete(timer);
        run();
      },
      Math.round(seconds * 1000 * this.options.timeScale),
    );
    this.timers.add(timer);
    return timer;
  }

  private cancel(timer: NodeJS.Timeout | null): void {
    if (timer === null) return;
    clearTimeout(timer);
    this.timers.delete(timer);
  }

  /** After `seconds` (scaled), fail the connection if it is still open (the suite's killAfter). */
  killAfter(seconds: number): void {
    this.log.timer(`fail the connection in ${seconds * this.options.timeScale} s unless it has closed`);
    this.schedule(seconds, () => {
      if (this.state === 'closed') return;
      this.log.timer('deadline: failing the connection');
      this.failConnection();
    });
  }

  /** After `seconds` (scaled), start the closing handshake if the connection is still up (closeAfter). */
  closeAfter(seconds: number): void {
    this.log.timer(`close in ${seconds * this.options.timeScale} s unless closed`);
    this.schedule(seconds, () => {
      if (this.state === 'closed') return;
      this.log.timer('deadline: closing');
      this.sendClose();
    });
  }

  /** Run `step` after `seconds` (scaled) unless the connection has closed (continueLater). */
  continueLater(seconds: number, step: () => void, tag = ''): NodeJS.Timeout {
    this.log.timer(`continue ${tag} in ${seconds * this.options.timeScale} s`);
    return this.schedule(seconds, () => {
      if (this.state === 'closed') return;
      this.log.timer(`continuing ${tag}`);
      step();
    });
  }

  cancelTimer(timer: NodeJS.Timeout): void {
    this.cancel(timer);
  }

  // ---- sending --------------------------------------------------------------------------------

  private write(data: Buffer): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    this.traffic.txOctets += data.length;
    this.socket.write(data);
  }

  /** The bytes of one frame, counted and logged. */
  private frameBytes(options: SendFrameOptions, payload: Buffer): Buffer {
    const mask = options.mask !== undefined ? options.mask : this.isServer ? null : maskKey();
    const frame = { opcode: options.opcode, fin: options.fin ?? true, rsv: options.rsv ?? 0, mask };
    const header = encodeHeader(frame, payload.length);
    this.txFrames[options.opcode] = (this.txFrames[options.opcode] ?? 0) + 1;
    if (this.log.records(frame.opcode))
      this.log.frame('tx', {
        fin: frame.fin,
        rsv: frame.rsv,
        opcode: frame.opcode,
        maskKey: mask,
        length: payload.length,
        lengthForm: minimalLengthForm(payload.length),
        header,
        payload: payload.subarray(0, 512),
        text: options.opcode === Op.Text || (options.opcode === Op.Continuation && this.sendingText),
        chopSize: options.chopSize ?? null,
      });
    if (options.opcode === Op.Text || options.opcode === Op.Binary) this.sendingText = options.opcode === Op.Text;
    const bytes = Buffer.allocUnsafe(header.length + payload.length);
    header.copy(bytes);
    if (mask === null) payload.copy(bytes, header.length);
    else applyMask(payload, mask, 0, bytes, header.length);
    return bytes;
  }

  /** For the wire log: whether the data message being sent is text. */
  private sendingText = false;

  /**
   * Send one frame exactly as told, in any state (the suite's sendFrame: cases use it to send
   * what an implementation must reject, and frames after a close).
   */
  sendFrame(options: SendFrameOptions): void {
    let payload =
      typeof options.payload === 'string' ? Buffer.from(options.payload) : (options.payload ?? Buffer.alloc(0));
    if (options.payloadLength !== undefined) payload = repeat(payload, options.payloadLength);
    const data = this.frameBytes(options, payload);
    this.writes.send(data, options.sync ?? false, options.chopSize);
  }

  /**
   * Send a message (the suite's sendMessage): compressed when permessage-deflate is agreed (RSV1 on
   * the first frame, §6), in fragments of `fragmentSize` (or autoFragmentSize) octets. Like the
   * suite, a payload that is a multiple of the fragment size ends with an empty final fragment.
   * `cacheKey`: see PerMessageDeflate.compress.
   */
  sendMessage(payload: Buffer, binary: boolean, fragmentSize?: number, sync = false, cacheKey?: string): void {
    if (this.state !== 'open') return;
    const opcode = binary ? Op.Binary : Op.Text;
    const size = fragmentSize ?? (this.autoFragmentSize > 0 ? this.autoFragmentSize : undefined);
    this.traffic.txAppOctets += payload.length;
    const deflate = this.options.deflate;
    if (deflate === null) {
      this.traffic.txWsOctets += payload.length;
      this.sendFrames(fragments(payload, opcode, 0, size), sync);
      return;
    }
    let compressed: Buffer;
    try {
      compressed = deflate.compress(payload, cacheKey);
    } catch (error) {
      this.log.note(`could not compress a message: ${(error as Error).message}`);
      this.dropConnection(true);
      return;
    }
    this.traffic.txWsOctets += compressed.length;
    this.sendFrames(fragments(compressed, opcode, 0x4, size), sync);
  }

  /**
   * A message's frames: each in its own turn of the event loop when `sync`, else written together
   * (as the suite's transport does, which writes what a call queued in one go).
   */
  private sendFrames(frames: Fragment[], sync: boolean): void {
    if (sync || frames.length === 1) {
      for (const frame of frames) this.sendFrame({ ...frame, sync });
      return;
    }
    const parts = frames.map((frame) => this.frameBytes(frame, frame.payload));
    this.writes.send(Buffer.concat(parts), false, undefined);
  }

  /**
   * A message streamed the way the suite streams one (cases 6.4.3-6.4.4): a non-final frame whose
   * payload is written in parts (sendFramePart), then an empty final continuation frame (endMessage).
   */
  beginFrame(opcode: number, length: number): void {
    const mask = this.isServer ? null : maskKey();
    this.streamed = { mask, offset: 0 };
    const header = encodeHeader({ opcode, fin: false, rsv: 0, mask }, length);
    this.txFrames[opcode] = (this.txFrames[opcode] ?? 0) + 1;
    this.log.note(`frame header ${header.toString('hex')}: a non-final ${length}-octet frame, its payload in parts`);
    this.writes.send(header, false, undefined);
  }

  /** The next part of the payload of the frame begun with beginFrame. */
  sendFramePart(part: Buffer): void {
    const streamed = this.streamed;
    if (streamed === null || this.state !== 'open') return;
    const out = streamed.mask === null ? part : applyMask(part, streamed.mask, streamed.offset);
    streamed.offset += part.length;
    this.log.note(`payload part of ${part.length} octets: ${part.toString('hex')}`);
    this.writes.send(out, false, undefined);
  }

  /** The end of a streamed message: an empty final continuation frame. */
  endMessage(): void {
    if (this.state !== 'open') return;
    this.streamed = null;
    this.sendFrame({ opcode: Op.Continuation, fin: true });
  }

  private streamed: { mask: Buffer | null; offset: number } | null = null;

  /** §5.5.1: send a close frame (the suite's sendCloseFrame); ignored once closing. */
  sendCloseFrame(code: number | null, reason: Buffer | null, isReply: boolean): void {
    if (this.state !== 'open') return;
    this.sendFrame({ opcode: Op.Close, payload: closePayload(code, reason) });
    this.state = 'closing';
    this.closedByMe = !isReply;
    this.localCloseCode = code;
    this.localCloseReason = reason === null ? null : reason.toString('utf8');
    if (this.closedByMe) {
      // The suite waits 1 s for the answer, then drops TCP and calls the close unclean.
      this.closeHandshakeTimer = this.schedule(1, () => {
        this.closeHandshakeTimer = null;
        if (this.state === 'closed') return;
        this.wasClean = false;
        this.wasNotCleanReason = 'the peer did not answer the closing handshake in time';
        this.wasCloseHandshakeTimeout = true;
        this.dropConnection(true);
      });
    }
  }

  /** Start the closing handshake (the suite's sendClose). */
  sendClose(code: number | null = null, reason: string | null = null): void {
    this.sendCloseFrame(code, reason === null ? null : Buffer.from(reason), false);
  }

  /** RFC 6455 §7.1.7: fail the connection: a close frame if none was sent yet, else drop TCP. */
  failConnection(code = 1001, reason = 'Going Away'): void {
    if (this.state === 'closed') return;
    this.failedByMe = true;
    if (this.state === 'open') this.sendCloseFrame(code, Buffer.from(reason).subarray(0, 123), false);
    else this.dropConnection(false);
  }

  /** End TCP from this side (abort: at once; otherwise after what is queued is written). */
  dropConnection(abort: boolean): void {
    if (this.state === 'closed') return;
    this.droppedByMe = true;
    this.state = 'closed';
    this.decoder.stop();
    if (abort) this.socket.destroy();
    else this.socket.end(() => this.socket.destroy());
  }

  // ---- receiving ------------------------------------------------------------------------------

  private received(chunk: Buffer): void {
    if (this.closed || chunk.length === 0) return;
    this.traffic.rxOctets += chunk.length;
    this.decoder.push(chunk);
    while (!this.closed) {
      const event = this.decoder.next();
      if (event === null) break;
      if (event.kind === 'header') this.checkHeader(event.header);
      else this.onFrame(event.header, event.payload);
    }
  }

  /** A violation of RFC 6455 by the peer: fail the connection with 1002 (the suite's protocolViolation). */
  private protocolViolation(reason: string): void {
    this.log.note(`protocol violation by the peer: ${reason}`);
    this.failConnection(1002, reason);
  }

  /** §8.1: invalid UTF-8 in a text message or close reason: fail with 1007 (the suite's invalidPayload). */
  private invalidPayload(reason: string): void {
    this.log.note(`invalid payload from the peer: ${reason}`);
    this.failConnection(1007, reason);
  }

  /** The checks on a frame's header, in the order the suite makes them (§5.2, §5.4, §5.5, RFC 7692 §6). */
  private checkHeader(header: FrameHeader): void {
    const { rsv, opcode } = header;
    const deflate = this.options.deflate !== null;
    if (rsv !== 0 && !(deflate && rsv === 4)) this.protocolViolation(`RSV = ${rsv} and no extension defining it`);
    if (this.isServer && header.maskKey === null) this.protocolViolation('an unmasked client-to-server frame (§5.1)');
    if (!this.isServer && header.maskKey !== null) this.protocolViolation('a masked server-to-client frame (§5.1)');
    if (isControl(opcode)) {
      if (!header.fin) this.protocolViolation('a fragmented control frame (§5.5)');
      if (header.length > 125) this.protocolViolation('a control frame with more than 125 octets of payload (§5.5)');
      if (opcode > Op.Pong) this.protocolViolation(`a control frame with reserved opcode ${opcode}`);
      if (opcode === Op.Close && header.length === 1) this.protocolViolation('a close frame with a 1-octet payload');
      if (deflate && rsv === 4) this.protocolViolation('a compressed control frame (RFC 7692 §6.1)');
    } else {
      if (opcode > Op.Binary) this.protocolViolation(`a data frame with reserved opcode ${opcode}`);
      if (this.message === null && opcode === Op.Continuation)
        this.protocolViolation('a continuation frame outside a fragmented message (§5.4)');
      if (this.message !== null && opcode !== Op.Continuation)
        this.protocolViolation('a new data frame inside a fragmented message (§5.4)');
      if (deflate && rsv === 4 && this.message !== null)
        this.protocolViolation('RSV1 set on a continuation frame (RFC 7692 §6.1)');
    }
    if (!header.minimalLength) this.protocolViolation('a payload length not in its shortest form (§5.2)');
    if (header.highBitSet) this.protocolViolation('a 64-bit payload length with its top bit set (§5.2)');
    if (header.length > this.options.maxMessageSize && this.state !== 'closed') this.tooBig();
  }

  private onFrame(header: FrameHeader, payload: Buffer): void {
    this.rxFrames[header.opcode] = (this.rxFrames[header.opcode] ?? 0) + 1;
    const text = header.opcode === Op.Text || (header.opcode === Op.Continuation && this.message?.utf8 != null);
    if (this.log.records(header.opcode))
      this.log.frame('rx', {
        fin: header.fin,
        rsv: header.rsv,
        opcode: header.opcode,
        maskKey: header.maskKey,
        length: header.length,
        lengthForm: header.lengthForm,
        header: header.bytes,
        payload: payload.subarray(0, 512),
        text,
      });
    if (isControl(header.opcode)) return this.onControlFrame(header.opcode, payload);
    if (header.opcode > Op.Binary) return;
    if (this.message === null) {
      const compressed = this.options.deflate !== null && header.rsv === 4;
      this.message = {
        binary: header.opcode === Op.Binary,
        compressed,
        parts: [],
        bytes: 0,
        utf8: header.opcode === Op.Text ? new Utf8Validator() : null,
      };
    }
    const message = this.message;
    message.bytes += payload.length;
    this.traffic.rxWsOctets += payload.length;
    if (message.bytes > this.options.maxMessageSize) return this.tooBig();
    if (!message.compressed && message.utf8 !== null && message.utf8.feed(payload) !== -1)
      this.invalidPayload('invalid UTF-8 in a text message');
    message.parts.push(payload);
    if (!header.fin) return;
    this.message = null;
    if (!message.compressed)
      return this.messageEnd(message.binary, message.utf8, Buffer.concat(message.parts, message.bytes));
    let inflated: Buffer;
    try {
      inflated = this.options.deflate!.decompress(message.parts, this.options.maxMessageSize);
    } catch (error) {
      if (error instanceof RangeError) return this.tooBig();
      // The suite's zlib raises here and Twisted drops the connection: no close frame, and not a
      // drop the endpoint chose (droppedByMe stays false).
      this.log.note(`could not inflate a message: ${(error as Error).message}; the connection is dropped`);
      this.wasNotCleanReason = `a compressed message could not be inflated (${(error as Error).message})`;
      this.state = 'closed';
      this.decoder.stop();
      this.socket.destroy();
      return;
    }
    if (message.utf8 !== null && message.utf8.feed(inflated) !== -1)
      this.invalidPayload('invalid UTF-8 in a compressed text message');
    this.messageEnd(message.binary, message.utf8, inflated);
  }

  /** Not the suite's check: the engine's memory is bounded whatever the peer sends. */
  private tooBig(): void {
    this.log.note(`a message over the engine's limit of ${this.options.maxMessageSize} octets`);
    this.failConnection(1009, 'message too big for the engine');
    this.dropConnection(true);
  }

  private messageEnd(binary: boolean, utf8: Utf8Validator | null, payload: Buffer): void {
    if (this.state === 'closed') return;
    // After invalid UTF-8 the check is not complete either, and this second report drops TCP, as in
    // the suite (its validator says the same twice).
    if (utf8 !== null && !utf8.complete) this.invalidPayload('a text message ending inside a UTF-8 sequence');
    this.traffic.rxAppOctets += payload.length;
    if (!this.failedByMe) this.hooks.onMessage(payload, binary);
  }

  private onControlFrame(opcode: number, payload: Buffer): void {
    if (opcode === Op.Close) {
      const code = payload.length > 1 ? payload.readUInt16BE(0) : null;
      const reason = payload.length > 2 ? payload.subarray(2) : null;
      this.onCloseFrame(code, reason);
    } else if (opcode === Op.Ping) {
      // §5.5.2: answer a ping with a pong carrying the same payload.
      if (this.state === 'open') this.sendFrame({ opcode: Op.Pong, payload });
    } else if (opcode === Op.Pong) this.hooks.onPong(payload);
  }

  /** §5.5.1, §7.1: a close frame, as the suite handles it (its onCloseFrame). */
  private onCloseFrame(code: number | null, reason: Buffer | null): void {
    this.remoteCloseCode = code;
    if (code !== null && !validCloseCode(code)) {
      this.protocolViolation(`close code ${code} (§7.4)`);
      if (this.state === 'closed') return;
    }
    if (reason !== null) {
      const utf8 = new Utf8Validator();
      if (utf8.feed(reason) !== -1 || !utf8.complete) {
        this.invalidPayload('a close reason that is not UTF-8 (§5.5.1)');
        if (this.state === 'closed') return;
      }
      this.remoteCloseReason = reason.toString('utf8');
    }
    if (this.state === 'closing') {
      // The answer to our close frame.
      this.cancel(this.closeHandshakeTimer);
      this.closeHandshakeTimer = null;
      this.wasClean = true;
      // §7.1.1: the server ends TCP first; the client waits for it (the suite: 1 s, else unclean).
      if (this.isServer) this.dropConnection(true);
      else this.awaitServerDrop(true);
    } else if (this.state === 'open') {
      // The peer started the closing handshake: answer it (the suite answers 1000).
      this.wasClean = true;
      this.sendCloseFrame(1000, null, true);
      if (this.isServer) this.dropConnection(false);
      else this.awaitServerDrop(false);
    } else this.wasClean = false;
  }

  /**
   * A client waits for the server to end TCP after the closing handshake. After our own close the
   * suite calls the close unclean past its deadline; after the server's, it is the case's own timer
   * that drops TCP (droppedByMe, "FAILED BY CLIENT" in the verdict); a deadline stands in for it here.
   */
  private awaitServerDrop(unclean: boolean): void {
    this.schedule(unclean ? 1 : 2, () => {
      if (this.state === 'closed') return;
      if (unclean) {
        this.wasClean = false;
        this.wasNotCleanReason = 'the server did not end TCP after the closing handshake (in time)';
        this.wasServerConnectionDropTimeout = true;
      }
      this.dropConnection(true);
    });
  }

  private connectionLost(): void {
    if (this.lost) return;
    this.lost = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.state = 'closed';
    this.decoder.stop();
    this.options.deflate?.close();
    if (!this.wasClean && !this.droppedByMe && this.wasNotCleanReason === null)
      this.wasNotCleanReason = 'the peer ended TCP without a closing handshake';
    this.hooks.onConnectionLost();
  }
}
