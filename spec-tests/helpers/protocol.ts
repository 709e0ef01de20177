/**
 * Helpers for the tests of the protocol state machine (src/protocol/protocol.ts, RFC 6455 §5.5 and §7).
 *
 * The state machine is driven the way its driver (src/driver/connection.ts) drives it, minus the socket:
 * bytes in (built with the hand encoder of ./core.ts), handler calls and bytes out. Every handler
 * call and every frame written is recorded, in order, as a line of text, so a test reads like the
 * conversation it checks:
 *
 *     onError ProtocolError 1002
 *     > close 1002 "unmasked frame from a client"
 *     onEnd
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
import { Protocol, type CloseReport, type ProtocolHandler } from '../../src/protocol/protocol.js';
import type { MessageInflater, Role } from '../../src/protocol/receiver.js';
import type { MessageDeflater, SendCallback } from '../../src/protocol/sender.js';
import { MaskKeySource } from '../../src/protocol/writer.js';
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
 * Stands in for zlib behind the protocol's two compression interfaces. `deflate` waits until the
 * test calls `finish()` (the message's "compressed" form is `Z(` + payload + `)`, so the wire shows
 * which message it was) or `break()` (zlib failed). `inflate` is the identity, at once.
 */
export class FakeCompression implements MessageInflater, MessageDeflater {
  readonly threshold: number;
  readonly jobs: { payload: Buffer; callback: (compressed: Buffer | null) => void }[] = [];

  constructor(threshold = 0) {
    this.threshold = threshold;
  }

  deflate(payload: Buffer, callback: (compressed: Buffer | null) => void): void {
    this.jobs.push({ payload: Buffer.from(payload), callback });
  }

  /** Complete the oldest compression. */
  finish(): void {
    const job = this.jobs.shift();
    assert.ok(job !== undefined, 'no compression is running');
    job.callback(concat(utf8('Z('), job.payload, utf8(')')));
  }

  /** Fail the oldest compression, the way the driver reports a zlib error. */
  break(): void {
    const job = this.jobs.shift();
    assert.ok(job !== undefined, 'no compression is running');
    job.callback(null);
  }

  inflate(
    payload: Buffer,
    _fin: boolean,
    maxOutput: number,
    onData: (data: Buffer) => boolean,
    done: (error: ProtocolError | null) => void,
  ): void {
    if (payload.length > maxOutput) return done(new ProtocolError('InflatedMessageTooBig', 'too big'));
    if (payload.length > 0) onData(Buffer.from(payload));
    done(null);
  }
}

// ---------------------------------------------------------------------------------------------
// The harness: a protocol, its recorded handler calls and its wire
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
 * One end of a connection under test, with the driver's habits: output is written (taken and
 * decoded) after every call into the protocol, as the driver writes everything one read produced
 * in one write; `onEnd` and `onDestroy` write what is pending first, then record themselves.
 */
export class Harness implements ProtocolHandler {
  readonly protocol: Protocol;
  /** Everything, in order: handler calls (`onEnd`, `onWake 5000`, ...) and frames written (`> close 1000`). */
  readonly log: string[] = [];
  /** Every frame written, decoded. */
  readonly wire: WireFrame[] = [];
  /** The bytes written, as taken from the protocol. */
  readonly written: Buffer[] = [];
  /** The errors passed to onError, in order. */
  readonly errors: Error[] = [];
  /** The messages, pings and pongs delivered, in order (payloads copied). */
  readonly received: { type: 'message' | 'ping' | 'pong'; data: Buffer; isBinary?: boolean }[] = [];
  /** The callbacks handed to onSendFailed. */
  readonly failedCallbacks: SendCallback[] = [];
  /** How often onOutput was called (kept out of the log: it says nothing the frames do not). */
  outputCalls = 0;
  now: number;
  ended = false;
  destroyed = false;
  private readonly decoder = new WireDecoder();
  private taken = 0;
  private report: CloseReport | null = null;

  constructor(
    readonly role: Role,
    setup: HarnessOptions = {},
  ) {
    this.now = setup.now ?? 0;
    const options = resolveConnectionOptions({ pingInterval: 0, ...setup.options });
    this.protocol = new Protocol(role, options, this, this.now, {
      compression: setup.compression ?? null,
      inflateBudget: setup.inflateBudget ?? null,
      // RFC 6455 §5.3: a client masks every frame; a server none.
      maskKeys: role === 'client' ? new MaskKeySource() : null,
    });
  }

  /** The role of the peer: what it sends is masked when we are the server. */
  get peerRole(): Role {
    return this.role === 'server' ? 'client' : 'server';
  }

  // --- input ---

  /** Bytes from the peer (copied: the protocol unmasks in place), in one chunk or several. */
  receive(input: Buffer | Buffer[], now = this.now): this {
    this.now = now;
    for (const chunk of Array.isArray(input) ? input : [input]) this.protocol.receive(Buffer.from(chunk), now);
    return this.write();
  }

  /** The peer ended its side of TCP. */
  receiveEnd(): this {
    this.protocol.receiveEnd();
    return this.write();
  }

  readingResumed(now: number): this {
    this.now = now;
    this.protocol.readingResumed(now);
    return this.write();
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
    return this.write();
  }

  ping(payload: string | Buffer = ''): this {
    this.protocol.sendControl(OP.PING, typeof payload === 'string' ? utf8(payload) : payload);
    return this.write();
  }

  pong(payload: string | Buffer = ''): this {
    this.protocol.sendControl(OP.PONG, typeof payload === 'string' ? utf8(payload) : payload);
    return this.write();
  }

  close(code?: number, reason = '', now = this.now): this {
    this.now = now;
    this.protocol.close(code, reason, now);
    return this.write();
  }

  fail(code: number, reason: string, error: Error | null, immediately = false, now = this.now): this {
    this.now = now;
    this.protocol.fail(code, reason, error, immediately, now);
    return this.write();
  }

  terminate(): this {
    this.protocol.terminate();
    return this.write();
  }

  /** The driver's wake-up at `now`. */
  timeout(now: number, readingPaused = false): this {
    this.now = now;
    this.protocol.timeout(now, readingPaused);
    return this.write();
  }

  /** The stream closed (whatever closed it): what the close event reports. */
  streamClosed(): CloseReport {
    assert.equal(this.report, null, 'streamClosed() is called once');
    this.report = this.protocol.streamClosed();
    this.log.push(
      `closed ${this.report.code} ${JSON.stringify(this.report.reason)} ${this.report.wasClean ? 'clean' : 'not clean'}`,
    );
    return this.report;
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

  /** The log entries since the last take, without the `onWake` requests. */
  takeNoWakes(): string[] {
    return this.take().filter((entry) => !entry.startsWith('onWake'));
  }

  /** The frames written so far, one line each. */
  frames(): string[] {
    return this.wire.map(describeFrame);
  }

  // --- ProtocolHandler: every call recorded ---

  onMessage(data: Buffer, isBinary: boolean): void {
    this.received.push({ type: 'message', data: Buffer.from(data), isBinary });
    this.log.push(`onMessage ${isBinary ? 'binary' : 'text'} ${show(data)}`);
  }

  onPing(data: Buffer): void {
    this.received.push({ type: 'ping', data: Buffer.from(data) });
    this.log.push(`onPing ${show(data)}`);
  }

  onPong(data: Buffer): void {
    this.received.push({ type: 'pong', data: Buffer.from(data) });
    this.log.push(`onPong ${show(data)}`);
  }

  onOutput(): void {
    this.outputCalls++;
  }

  onEnd(): void {
    // The driver writes what is queued, then ends the stream.
    this.write();
    this.ended = true;
    this.log.push('onEnd');
  }

  onDestroy(): void {
    this.write();
    this.destroyed = true;
    this.log.push('onDestroy');
  }

  onWake(at: number): void {
    this.log.push(`onWake ${at}`);
  }

  onError(error: Error): void {
    this.errors.push(error);
    if (error instanceof ProtocolError) this.log.push(`onError ProtocolError ${error.closeCode}`);
    else if (error instanceof ConnectionTimeoutError) this.log.push(`onError ConnectionTimeoutError ${error.reason}`);
    else this.log.push(`onError ${error.name}: ${error.message}`);
  }

  onInputResumed(): void {
    this.log.push('onInputResumed');
  }

  onSendFailed(callbacks: SendCallback[]): void {
    this.failedCallbacks.push(...callbacks);
    this.log.push(`onSendFailed ${callbacks.length}`);
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
