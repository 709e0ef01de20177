/**
 * Helpers for the tests of the protocol state machine (src/protocol/protocol.ts, RFC 6455 §5.5 and §7).
 *
 * The state machine is driven the way its drivers (src/driver/connection.ts) drive it, minus the
 * socket: bytes in (built with the hand encoder of ./core.ts), then what it decided, taken in one
 * place. Every event, frame written and decision is recorded, in order, as a line of text, so a
 * test reads like the conversation it checks:
 *
 *     error ProtocolError 1002
 *     > close 1002 "unmasked frame from a client"
 *     end
 *
 * What the protocol writes is decoded by the independent peer's decoder (never src/'s frame,
 * receiver or writer code), and `WireDecoder` also checks what every frame must be: the
 * mask bit by role (§5.1, §5.3), the minimal length encoding (§5.2), control frames unfragmented and
 * at most 125 bytes (§5.5). Time is a plain number the test sets; nothing here reads a clock or
 * starts a timer.
 */
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { ConnectionTimeoutError, ProtocolError } from '../../src/protocol/errors.js';
import type { InflateBudget } from '../../src/protocol/inflate-budget.js';
import { resolveConnectionOptions, type ConnectionOptions } from '../../src/protocol/options.js';
import { Protocol, type CloseReport } from '../../src/protocol/protocol.js';
import type { Role } from '../../src/protocol/receiver.js';
import type { SendCallback } from '../../src/protocol/sender.js';
import { bytes, concat, frameFor, utf8 } from './core.js';
import { FrameDecoder, type DecodedFrame, type FrameSpec } from './peer/frames.js';

export { ROLES } from './core.js';

export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

const OPCODE_NAMES: Record<number, string> = { 0: 'cont', 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' };

// ---------------------------------------------------------------------------------------------
// Decoding what the protocol writes
// ---------------------------------------------------------------------------------------------

export type WireFrame = DecodedFrame;

/**
 * The peer's incremental decoder (./peer/frames.ts), plus what every frame an endpoint writes must
 * be: minimal length encodings and a clear top bit (§5.2), known opcodes, control frames
 * unfragmented and at most 125 bytes (§5.5). Throws an AssertionError otherwise.
 */
export class WireDecoder {
  private readonly decoded: WireFrame[] = [];
  private readonly decoder = new FrameDecoder((frame) => this.decoded.push(frame));

  /** Bytes of an unfinished frame. Output is taken in whole frames: this should be 0 after a take. */
  get leftover(): number {
    return this.decoder.pending;
  }

  push(chunk: Buffer): WireFrame[] {
    this.decoder.push(Buffer.from(chunk));
    assert.equal(this.decoder.stopped, null, this.decoder.stopped ?? '');
    const frames = this.decoded.splice(0);
    for (const frame of frames) {
      const length = frame.payload.length;
      // §5.2: "the minimal number of bytes MUST be used to encode the length".
      if (frame.lengthEncoding === 16) assert.ok(length >= 126, `16-bit length ${length} where 7 bits would do`);
      if (frame.lengthEncoding === 64) assert.ok(length > 0xffff, `64-bit length ${length} where 16 bits would do`);
      assert.ok(frame.opcode in OPCODE_NAMES, `reserved opcode ${frame.opcode} written`);
      if (frame.opcode >= 0x8) {
        // §5.5: "All control frames MUST have a payload length of 125 bytes or less and MUST NOT be fragmented."
        assert.ok(frame.fin, 'a fragmented control frame was written');
        assert.ok(length <= 125, `a control frame of ${length} bytes was written`);
      }
    }
    return frames;
  }
}

/** A frame as one line: `text "hi"`, `close 1000 "bye"`, `close` (empty), `binary <0102>`, `ping ""`. */
export function describeFrame(frame: WireFrame): string {
  let name = OPCODE_NAMES[frame.opcode] ?? `opcode${frame.opcode}`;
  if (!frame.fin) name += ' fin=0';
  if (frame.rsv1) name += ' rsv1';
  if (frame.opcode === OP.CLOSE) {
    const p = frame.payload;
    if (p.length === 0) return name;
    if (p.length === 1) return `${name} <1 byte: ${p.toString('hex')}>`;
    const code = p.readUInt16BE(0);
    return p.length === 2 ? `${name} ${code}` : `${name} ${code} ${show(p.subarray(2))}`;
  }
  return `${name} ${show(frame.payload)}`;
}

/** Printable UTF-8 as a JSON string, anything else as hex. */
function show(data: Buffer): string {
  const printable = isUtf8(data) && !/[\x00-\x1f\x7f]/.test(data.toString('utf8'));
  return printable ? JSON.stringify(data.toString('utf8')) : `<${data.toString('hex')}>`;
}

/** The code and reason of a close frame's payload, read by hand (§5.5.1). */
export function closePayloadOf(frame: WireFrame): { code: number | undefined; reason: Buffer } {
  assert.equal(frame.opcode, OP.CLOSE, 'not a close frame');
  if (frame.payload.length === 0) return { code: undefined, reason: Buffer.alloc(0) };
  return { code: frame.payload.readUInt16BE(0), reason: frame.payload.subarray(2) };
}

// ---------------------------------------------------------------------------------------------
// A fake permessage-deflate: the test decides when (and whether) a compression finishes
// ---------------------------------------------------------------------------------------------

/**
 * Stands in for zlib in running the protocol's compression jobs, as a driver runs them. A deflate
 * job waits until the test calls `finish()` (the message's "compressed" form is `Z(` + payload +
 * `)`, so the wire shows which message it was) or `break()` (zlib failed). Inflation is the
 * identity, at once.
 */
export class FakeCompression {
  readonly jobs: { payload: Buffer; fin: boolean; done: (compressed: Buffer | null) => void }[] = [];

  constructor(readonly threshold = 0) {}

  /** Complete the oldest compression. */
  finish(): void {
    const job = this.jobs.shift();
    assert.ok(job !== undefined, 'no compression is running');
    job.done(concat(utf8('Z('), job.payload, utf8(')')));
  }

  /** Fail the oldest compression, the way the driver reports a zlib error. */
  break(): void {
    const job = this.jobs.shift();
    assert.ok(job !== undefined, 'no compression is running');
    job.done(null);
  }
}

// ---------------------------------------------------------------------------------------------
// The harness: a protocol, what it decided after each step, and its wire
// ---------------------------------------------------------------------------------------------

export interface HarnessOptions {
  /** The connection's options. The ping loop is off (`pingInterval: 0`) unless a test turns it on. */
  options?: ConnectionOptions;
  compression?: FakeCompression;
  inflateBudget?: InflateBudget;
  /** The time the connection opens at. Default 0. */
  now?: number;
}

/**
 * One end of a connection under test, driven the way the drivers drive the core
 * (src/driver/connection.ts): after every call into the protocol, everything it decided is taken
 * in one place and carried out, in the driver's order: the events (logged `message text "hi"`,
 * `ping ""`, `error ProtocolError 1002`, `sendFailed 1`), the compression jobs, the bytes written
 * (decoded by the independent peer's decoder, logged `> close 1000`), `destroy` or `end`, and a
 * wake-up asked of the timer (`wake 5000`) when the core's next deadline is earlier than the one
 * asked for (a timeout clears it, as the wheel does when it fires).
 */
export class Harness {
  readonly protocol: Protocol;
  /** Everything, in order: events, frames written (`> close 1000`), `end`, `destroy`, `wake 5000`. */
  readonly log: string[] = [];
  /** Every frame written, decoded. */
  readonly wire: WireFrame[] = [];
  /** The bytes written, as taken from the protocol. */
  readonly written: Buffer[] = [];
  /** The errors reported, in order. */
  readonly errors: Error[] = [];
  /** The messages, pings and pongs delivered, in order (payloads copied). */
  readonly received: { type: 'message' | 'ping' | 'pong'; data: Buffer; isBinary?: boolean }[] = [];
  /** The pieces of streamed messages delivered (`messageData`), in order (copied). */
  readonly pieces: Buffer[] = [];
  /** The callbacks the protocol said will never be called back with success. */
  readonly failedCallbacks: SendCallback[] = [];
  now: number;
  ended = false;
  destroyed = false;
  private readonly decoder = new WireDecoder();
  private readonly compression: FakeCompression | null;
  private taken = 0;
  private wakeAt = Infinity;
  private report: CloseReport | null = null;

  constructor(
    readonly role: Role,
    setup: HarnessOptions = {},
  ) {
    this.now = setup.now ?? 0;
    this.compression = setup.compression ?? null;
    const options = resolveConnectionOptions({ pingInterval: 0, ...setup.options });
    this.protocol = new Protocol(role, options, this.now, {
      compression: this.compression,
      inflateBudget: setup.inflateBudget ?? null,
    });
    this.settle();
  }

  /** The role of the peer: what it sends is masked when we are the server. */
  get peerRole(): Role {
    return this.role === 'server' ? 'client' : 'server';
  }

  // --- input ---

  /** Bytes from the peer (copied: the protocol unmasks in place), in one chunk or several. */
  receive(input: Buffer | Buffer[], now = this.now): this {
    this.now = now;
    for (const chunk of Array.isArray(input) ? input : [input]) {
      this.protocol.receive(Buffer.from(chunk), now);
      this.settle();
    }
    return this;
  }

  /** The peer ended its side of TCP. */
  receiveEnd(): this {
    this.protocol.receiveEnd(this.now);
    return this.settle();
  }

  readingResumed(now: number): this {
    this.now = now;
    this.protocol.readingResumed(now);
    return this.settle();
  }

  // --- output and closing ---

  send(
    data: string | Buffer,
    options: { compress?: boolean; fragmentSize?: number; callback?: SendCallback } = {},
  ): this {
    const binary = typeof data !== 'string';
    const payload = binary ? Buffer.from(data) : utf8(data);
    this.protocol.send(
      binary ? OP.BINARY : OP.TEXT,
      payload,
      options.compress ?? false,
      options.fragmentSize ?? 0,
      options.callback,
    );
    return this.settle();
  }

  ping(payload: string | Buffer = ''): this {
    this.protocol.sendControl(OP.PING, typeof payload === 'string' ? utf8(payload) : payload);
    return this.settle();
  }

  pong(payload: string | Buffer = ''): this {
    this.protocol.sendControl(OP.PONG, typeof payload === 'string' ? utf8(payload) : payload);
    return this.settle();
  }

  close(code?: number, reason = '', now = this.now): this {
    this.now = now;
    this.protocol.close(code, reason, now);
    return this.settle();
  }

  /**
   * §7.1.7 "Fail the WebSocket Connection", reached directly: the core does it for a violation
   * the receiver finds, a compression that fails, an application too far ahead of a slow peer
   * (`limitBuffered`); this reaches the one private step they share, with any code and reason.
   */
  fail(code: number, reason: string, error: Error | null, immediately = false, now = this.now): this {
    this.now = now;
    const internals = this.protocol as unknown as {
      fail(code: number, reason: string, error: Error | null, immediately: boolean, now: number): void;
    };
    internals.fail(code, reason, error, immediately, now);
    return this.settle();
  }

  terminate(): this {
    this.protocol.terminate();
    return this.settle();
  }

  /** The timer's wake-up at `now` (it clears the wake-up asked for, as the wheel does when it fires). */
  timeout(now: number, readingPaused = false): this {
    this.now = now;
    this.wakeAt = Infinity;
    this.protocol.timeout(now, readingPaused);
    return this.settle();
  }

  /** The stream closed (whatever closed it): what the close event reports. */
  streamClosed(): CloseReport {
    assert.equal(this.report, null, 'streamClosed() is called once');
    this.report = this.protocol.streamClosed(this.now);
    this.takeEvents();
    this.log.push(
      `closed ${this.report.code} ${JSON.stringify(this.report.reason)} ${this.report.wasClean ? 'clean' : 'not clean'}`,
    );
    return this.report;
  }

  /** Carry out what the protocol decided, as the driver does after every step (see the class comment). */
  settle(): this {
    const protocol = this.protocol;
    this.takeEvents();
    this.runJobs();
    this.write();
    if (protocol.wantsDestroy) {
      if (!this.destroyed) this.log.push('destroy');
      this.destroyed = true;
      return this;
    }
    if (protocol.wantsEnd && !this.ended) {
      this.ended = true;
      this.log.push('end');
    }
    const at = protocol.nextDeadline;
    if (at < this.wakeAt) {
      this.wakeAt = at;
      this.log.push(`wake ${at}`);
    }
    return this;
  }

  /** Take the protocol's pending output and "write" it: decode it and log every frame. */
  write(): this {
    if (!this.protocol.hasOutput) return this;
    const buffers = this.protocol.takeOutput();
    const callbacks = this.protocol.takeCallbacks();
    for (const buffer of buffers) {
      this.written.push(Buffer.from(buffer));
      for (const frame of this.decoder.push(buffer)) this.recordFrame(frame);
    }
    assert.equal(this.decoder.leftover, 0, 'takeOutput() returned part of a frame');
    // Written: the send callbacks succeed, as the driver's would once the stream took the bytes.
    if (callbacks !== null) for (const callback of callbacks) callback();
    return this;
  }

  private takeEvents(): void {
    for (let event = this.protocol.nextEvent(); event !== null; event = this.protocol.nextEvent()) {
      switch (event.type) {
        case 'message':
          this.received.push({ type: 'message', data: Buffer.from(event.data), isBinary: event.isBinary });
          this.log.push(`message ${event.isBinary ? 'binary' : 'text'} ${show(event.data)}`);
          break;
        case 'messageStart':
          this.log.push(`messageStart ${event.isBinary ? 'binary' : 'text'}`);
          break;
        case 'messageData':
          this.pieces.push(Buffer.from(event.data));
          this.log.push(`messageData ${show(event.data)}`);
          break;
        case 'messageEnd':
          this.log.push('messageEnd');
          break;
        case 'messageAbort':
          this.log.push(`messageAbort ${event.error.name}`);
          break;
        case 'ping':
        case 'pong':
          this.received.push({ type: event.type, data: Buffer.from(event.data) });
          this.log.push(`${event.type} ${show(event.data)}`);
          break;
        case 'error': {
          const error = event.error;
          this.errors.push(error);
          if (error instanceof ProtocolError) this.log.push(`error ProtocolError ${error.closeCode}`);
          else if (error instanceof ConnectionTimeoutError)
            this.log.push(`error ConnectionTimeoutError ${error.reason}`);
          else this.log.push(`error ${error.name}: ${error.message}`);
          break;
        }
        case 'sendFailed':
          this.failedCallbacks.push(...event.callbacks);
          this.log.push(`sendFailed ${event.callbacks.length}`);
          break;
      }
    }
  }

  /** The compression jobs: deflations wait for the test; inflation is the identity, at once. */
  private runJobs(): void {
    const protocol = this.protocol;
    for (let job = protocol.takeInflateJob(); job !== null; job = protocol.takeInflateJob()) {
      if (job.payload.length === 0 || protocol.inflated(Buffer.from(job.payload))) protocol.inflateDone(null);
      this.takeEvents();
    }
    const job = protocol.takeDeflateJob();
    if (job !== null) {
      assert.ok(this.compression !== null, 'a compression job without compression agreed');
      this.compression.jobs.push({
        payload: Buffer.from(job.payload),
        fin: job.fin,
        done: (compressed) => {
          protocol.deflated(compressed);
          this.settle();
        },
      });
    }
  }

  private recordFrame(frame: WireFrame): void {
    // RFC 6455 §5.1: "a client MUST mask all frames that it sends to the server"; "A server MUST
    // NOT mask any frames that it sends to the client."
    assert.equal(
      frame.masked,
      this.role === 'client',
      `a ${this.role} wrote a ${frame.masked ? 'masked' : 'unmasked'} frame`,
    );
    // §5.2: RSV2 and RSV3 have no meaning here; RSV1 only with permessage-deflate (checked by the tests that use it).
    assert.ok(!frame.rsv2 && !frame.rsv3, 'RSV2 or RSV3 set on a frame written');
    this.wire.push(frame);
    this.log.push(`> ${describeFrame(frame)}`);
  }

  // --- what happened ---

  /** The log entries since the last take. */
  take(): string[] {
    const entries = this.log.slice(this.taken);
    this.taken = this.log.length;
    return entries;
  }

  /** The log entries since the last take, without the wake-ups asked for. */
  takeNoWakes(): string[] {
    return this.take().filter((entry) => !entry.startsWith('wake '));
  }

  /** The frames written so far, one line each. */
  frames(): string[] {
    return this.wire.map(describeFrame);
  }
}

// ---------------------------------------------------------------------------------------------
// What the peer sends, by hand (./core.ts's encoder)
// ---------------------------------------------------------------------------------------------

/**
 * Frames as the peer of an endpoint of `role` sends them: masked with a fresh key when the
 * endpoint is a server (RFC 6455 §5.3), unmasked when it is a client.
 */
export function peerOf(role: Role) {
  const frame = (spec: Omit<FrameSpec, 'maskKey'>): Buffer => frameFor(role, spec);
  return {
    frame,
    text: (payload: string | Buffer, fin = true) => frame({ opcode: OP.TEXT, payload, fin }),
    binary: (payload: Buffer, fin = true) => frame({ opcode: OP.BINARY, payload, fin }),
    continuation: (payload: string | Buffer, fin = true) => frame({ opcode: OP.CONT, payload, fin }),
    ping: (payload: string | Buffer = '') => frame({ opcode: OP.PING, payload }),
    pong: (payload: string | Buffer = '') => frame({ opcode: OP.PONG, payload }),
    /** A close frame: no payload without a code; the code in network byte order, then the reason's bytes. */
    close: (code?: number, reason: string | Buffer = '') =>
      frame({
        opcode: OP.CLOSE,
        payload:
          code === undefined
            ? Buffer.alloc(0)
            : concat(bytes(code >>> 8, code & 0xff), typeof reason === 'string' ? utf8(reason) : reason),
      }),
    /** A frame that breaks §5.1 for this role: unmasked to a server, masked to a client. */
    wronglyMasked: (payload = 'x') =>
      role === 'server'
        ? frameFor('client', { opcode: OP.TEXT, payload })
        : frameFor('server', { opcode: OP.TEXT, payload }),
  };
}

/** A pinch of every kind of frame, to show that nothing is read after the end. */
export function everyKindOfFrame(role: Role): Buffer {
  const p = peerOf(role);
  return concat(
    p.text('late text'),
    p.binary(bytes(1, 2, 3)),
    p.ping('late ping'),
    p.pong('late pong'),
    p.close(1000, 'late close'),
  );
}
