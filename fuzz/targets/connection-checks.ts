/**
 * The connection target's driver and its invariants (see ./connection.ts): one Protocol, driven the
 * way src/driver/connection.ts drives it, one step of the fuzzer's program at a time, checked after
 * every step.
 */
import { ConnectionTimeoutError, ProtocolError } from '../../src/protocol/errors.js';
import type { InflateBudget } from '../../src/protocol/inflate-budget.js';
import type { ResolvedConnectionOptions } from '../../src/protocol/options.js';
import type { CloseReport, Protocol } from '../../src/protocol/protocol.js';
import type { PerMessageDeflate } from '../../src/driver/deflate-zlib.js';
import { encodeFrame, isSendableCloseCode, OP } from '../../spec-tests/helpers/peer/frames.js';
import { walkReceiver, type ReceivedEvent } from './oracle/receiver.js';
import { OurFrames } from './our-frames.js';
import { PeerFrames, type PeerDeflate } from './peer-frames.js';
import { check, type InputReader } from './target.js';

export type Mode = 'none' | 'fake' | 'zlib';

export interface Setup {
  role: 'server' | 'client';
  mode: Mode;
  options: ResolvedConnectionOptions;
  zlib: PerMessageDeflate | null;
  budget: InflateBudget;
  now: number;
  /** How the peer compresses (what our inflater was set up for), when permessage-deflate is agreed. */
  peer: PeerDeflate | null;
  /** How we compress (real zlib only: the stand-in's output is read as what it is). */
  own: PeerDeflate | null;
}

const DELAYS = [0, 1, 4, 10, 50, 100, 1000, 5000, 60_000];
const FRAGMENTS = [undefined, 0, 1, 5, 100];
const CLOSE_CODES = [undefined, 1000, 1001, 1003, 1008, 1011, 1012, 3000, 4000, 4999];
const REASONS = ['', 'bye', 'κόσμε', '€'.repeat(41), 'x'.repeat(123)];
/** What close() must refuse (RangeError or TypeError), and so change nothing. */
const BAD_CLOSES: [number | undefined, string][] = [
  [999, ''],
  [1005, 'a reason'],
  [1006, ''],
  [1015, ''],
  [5000, ''],
  [1000, 'x'.repeat(124)],
  [1000.5, ''],
];
const BUFFERED = [0, 10, 1000, 1_000_000, 200_000_000];
const TEXT = 'snowman ☃ and clef 𝄞 ';

interface Callback {
  kind: 'message' | 'control';
  /** The message's index in `sent` (messages), or the control frame sent. */
  index: number;
  calls: number;
  ok: boolean;
}

export class Checks {
  closed = false;
  private now: number;
  private readonly out: OurFrames;
  private readonly peer: PeerFrames;
  /** Messages accepted by sendData / sendFramed, in order. */
  private readonly sent: { opcode: number; data: Buffer }[] = [];
  private readonly callbacks: Callback[] = [];
  /** What the connection reported of the peer's bytes, for the oracle. */
  private readonly received: ReceivedEvent[] = [];
  /** The bytes given to `receive()` while the connection could still read them. */
  private readonly input: Buffer[] = [];
  private inputOpen = true;
  /** The connection failed for a reason other than the peer's bytes (it stops reading anywhere). */
  private failedOtherwise = false;
  /** The first failure's code (§7.1.7): what the close reports when the peer's close never came. */
  private failCode = 0;
  /** The codes our close frame may carry: what was asked for, echoed, or failed with. */
  private readonly closeCodes = new Set<number | undefined>();
  /** The code our close frame must carry: a failure's, when nothing asked for a close before it. */
  private requiredCloseCode: number | null = null;
  private closeReceived = false;
  private wantedEnd = false;
  private wantedDestroy = false;
  private state: number;
  /** `canSend` as the last settle left it: a failure since then fails a connection that could still send. */
  private couldSend = true;
  /** Our close frame's code, checked at the end against what may have asked for it. */
  private ourCloseCode: number | undefined | null = null;
  private report: CloseReport | null = null;
  // Jobs: the stand-in's wait for the fuzzer; zlib's run on its own.
  private deflateJob: Buffer | null = null;
  private inflateJob: { payload: Buffer; fin: boolean } | null = null;
  private zlibJobs = 0;
  private zlibIdle: (() => void) | null = null;
  private serial = 0;
  private sendLeft = 12 * 1024;

  constructor(
    private readonly protocol: Protocol,
    private readonly setup: Setup,
  ) {
    this.now = setup.now;
    this.state = protocol.state;
    this.out = new OurFrames(
      setup.role,
      setup.mode === 'none' ? null : setup.mode === 'fake' ? { kind: 'fake' } : { kind: 'zlib', ...setup.own! },
    );
    this.peer = new PeerFrames(setup.role, setup.mode === 'zlib' ? setup.peer : null);
  }

  // -------------------------------------------------------------------------------------------
  // The driver's part: take everything the core decided, carry it out
  // -------------------------------------------------------------------------------------------

  settle(): void {
    const p = this.protocol;
    const canSendBefore = this.couldSend;
    for (let event = p.nextEvent(); event !== null; event = p.nextEvent()) {
      check(!this.closed || event.type === 'sendFailed', () => `a ${event.type} event after the close`);
      switch (event.type) {
        case 'message':
          check(event.data.length <= this.setup.options.maxMessageSize, 'a message past maxMessageSize');
          this.received.push({ type: 'message', data: Buffer.from(event.data), isBinary: event.isBinary });
          break;
        case 'ping':
        case 'pong':
          this.received.push({ type: event.type, data: Buffer.from(event.data) });
          break;
        case 'error':
          this.error(event.error, canSendBefore);
          break;
        case 'sendFailed':
          for (const callback of event.callbacks) callback(new Error('not sent'));
          break;
      }
    }
    if (!this.closeReceived && p.closeReceived) {
      this.closeReceived = true;
      // The peer's close, for the oracle: its code and reason are the close report's (checked there).
      this.received.push({ type: 'close', code: -1, reason: '' });
    }
    this.jobs();
    const buffers = p.takeOutput();
    const callbacks = p.takeCallbacks();
    check(!this.closed || buffers.length === 0, 'output after the close');
    // Once the driver ended our side (wantsEnd), a write would be a write after the end.
    check(!this.wantedEnd || this.wantedDestroy || buffers.length === 0, 'output after wantsEnd ended our side');
    if (buffers.length > 0) this.write(buffers);
    check(callbacks === null || buffers.length > 0, 'send callbacks without output');
    for (const callback of callbacks ?? []) callback();
    // The driver's one-way decisions, and a deadline it can keep.
    check(p.wantsEnd || !this.wantedEnd, 'wantsEnd went back to false');
    check(p.wantsDestroy || !this.wantedDestroy, 'wantsDestroy went back to false');
    this.wantedEnd = p.wantsEnd;
    this.wantedDestroy = p.wantsDestroy;
    if (p.wantsDestroy) this.inputOpen = false;
    check(p.state >= this.state, `the state went back from ${this.state} to ${p.state}`);
    this.state = p.state;
    const deadline = p.nextDeadline;
    check(typeof deadline === 'number' && !Number.isNaN(deadline), `nextDeadline is ${deadline}`);
    if (p.state === 3) check(deadline === Infinity, 'a deadline once closed');
    check(p.bufferedOutput >= 0 && p.bufferedInput >= 0, 'negative buffered bytes');
    this.couldSend = p.canSend;
  }

  private error(error: Error, canSendBefore: boolean): void {
    if (error instanceof ProtocolError) {
      check([1002, 1007, 1009, 1013].includes(error.closeCode), `ProtocolError with close code ${error.closeCode}`);
      this.received.push({ type: 'error', code: error.closeCode, message: error.message });
      this.failed(error.closeCode, canSendBefore);
    } else if (error instanceof ConnectionTimeoutError) {
      check(['pong', 'write', 'close'].includes(error.reason), `a timeout for ${error.reason}`);
    } else {
      // Compressing our own message failed: 1011 (an internal error, not the peer's fault).
      check(this.setup.mode !== 'none', `an error without compression: ${error.message}`);
      this.failedOtherwise = true;
      this.failed(1011, canSendBefore);
    }
  }

  /** §7.1.7: the connection failed with `code`. */
  private failed(code: number, canSendBefore: boolean): void {
    if (this.failCode === 0 && this.state !== 3) this.failCode = code;
    this.closeCodes.add(code);
    if (canSendBefore && this.requiredCloseCode === null && this.out.closeFrame === null) this.requiredCloseCode = code;
  }

  private write(buffers: Buffer[]): void {
    const before = this.out.messages.length;
    const hadClose = this.out.closeFrame !== null;
    this.out.push(buffers);
    // The messages written are the ones sent, in order.
    for (let i = before; i < this.out.messages.length; i++) {
      const got = this.out.messages[i]!;
      const want = this.sent[i];
      check(
        want !== undefined && got.opcode === want.opcode && got.data.equals(want.data),
        () => `message ${i} written is not the message ${i} sent`,
      );
    }
    const close = this.out.closeFrame;
    if (!hadClose && close !== null) {
      const code = close.length === 0 ? undefined : close.readUInt16BE(0);
      this.ourCloseCode = code;
      if (this.requiredCloseCode !== null) {
        check(code === this.requiredCloseCode, `closed with ${code} after failing with ${this.requiredCloseCode}`);
      }
    }
  }

  private jobs(): void {
    const p = this.protocol;
    const inflate = p.takeInflateJob();
    if (inflate !== null) {
      check(this.setup.mode !== 'none', 'an inflation without permessage-deflate');
      check(this.inflateJob === null, 'a second inflation while one waits');
      if (this.setup.mode === 'fake') this.inflateJob = { payload: Buffer.from(inflate.payload), fin: inflate.fin };
      else
        this.runZlib((done) =>
          this.setup.zlib!.inflate(
            inflate.payload,
            inflate.fin,
            (d) => p.inflated(d),
            (e) => done(() => p.inflateDone(e)),
          ),
        );
    }
    const deflate = p.takeDeflateJob();
    if (deflate !== null) {
      check(this.setup.mode !== 'none', 'a compression without permessage-deflate');
      check(this.deflateJob === null, 'a second compression while one waits');
      if (this.setup.mode === 'fake') this.deflateJob = Buffer.from(deflate.payload);
      else
        this.runZlib((done) =>
          this.setup.zlib!.deflate(deflate.payload, (compressed) => done(() => p.deflated(compressed)), deflate.fin),
        );
    }
  }

  /** A zlib job; its result goes to the core, then everything is taken again, as the driver does. */
  private runZlib(start: (done: (result: () => void) => void) => void): void {
    this.zlibJobs++;
    start((result) => {
      this.zlibJobs--;
      result();
      this.settle();
      if (this.zlibJobs === 0) this.zlibIdle?.();
    });
  }

  private zlibSettled(): Promise<void> {
    if (this.zlibJobs === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('a zlib job did not end within 3 s')), 3000);
      this.zlibIdle = () => {
        this.zlibIdle = null;
        clearTimeout(timer);
        resolve();
      };
    });
  }

  // -------------------------------------------------------------------------------------------
  // The steps
  // -------------------------------------------------------------------------------------------

  async step(reader: InputReader): Promise<void> {
    const p = this.protocol;
    const op = reader.byte() % 16;
    if (process.env['FUZZ_DEBUG'] !== undefined) {
      const p = this.protocol;
      console.log(
        `${performance.now().toFixed(0)} step ${op} now ${this.now} state ${p.state} canSend ${p.canSend} end ${p.wantsEnd} destroy ${p.wantsDestroy} out ${p.bufferedOutput}`,
      );
    }
    switch (op) {
      case 0:
      case 1:
        this.peer.step(reader);
        this.receive(this.peer.take());
        break;
      case 2:
        this.receive(Buffer.from(reader.bytes(reader.byte() % 32)));
        break;
      case 3:
        this.advance(DELAYS[reader.byte() % DELAYS.length]!, (reader.byte() & 1) === 1);
        break;
      case 4:
        this.send(reader);
        break;
      case 5: {
        const flags = reader.byte();
        const payload = Buffer.from(reader.bytes(flags % 126));
        const callback = this.callback('control', this.serial++);
        const opcode = (flags & 0x80) === 0 ? OP.PING : OP.PONG;
        const canSend = p.canSend;
        const accepted = p.sendControl(opcode, payload, callback);
        check(accepted === canSend, 'sendControl() answered otherwise than canSend said');
        break;
      }
      case 6:
        this.close(reader.byte());
        break;
      case 7:
        p.terminate();
        check(p.state === 3 || p.wantsDestroy, 'terminate() did not ask for the stream to be destroyed');
        break;
      case 8:
        if (this.setup.mode === 'zlib') await this.zlibSettled();
        else if (this.deflateJob !== null) {
          const payload = this.deflateJob;
          this.deflateJob = null;
          // The stand-in's "compression": Z( payload ), or zlib's failure.
          p.deflated((reader.byte() & 7) === 0 ? null : Buffer.concat([Buffer.from('Z('), payload, Buffer.from(')')]));
        }
        break;
      case 9:
        if (this.setup.mode === 'zlib') await this.zlibSettled();
        else if (this.inflateJob !== null) this.inflateFake(reader.byte());
        break;
      case 10: {
        const couldSend = p.canSend;
        const within = p.limitBuffered(BUFFERED[reader.byte() % BUFFERED.length]!);
        if (!within) {
          this.failedOtherwise = true;
          this.failed(1008, couldSend);
          check(p.wantsDestroy || p.state === 3, 'past maxBufferedBytes and the stream stays');
        }
        break;
      }
      case 11:
        p.readingResumed(this.now);
        break;
      case 12:
        p.writeTimedOut(this.now);
        check(p.state === 3 || p.wantsDestroy, 'a write timeout and the stream stays');
        break;
      case 13:
        p.receiveEnd(this.now);
        this.inputOpen = false;
        break;
      case 14:
        this.sendFramed(reader);
        break;
      case 15:
        this.streamClosed();
        break;
    }
    this.settle();
    if (op === 13 && p.state !== 3) {
      // The peer ended its side: ours ends too, after what waits for compression (or goes now).
      check(p.wantsEnd || p.wantsDestroy || p.bufferedOutput > 0, 'the peer ended its side and ours stays');
    }
    this.fireDue();
  }

  private receive(bytes: Buffer): void {
    if (!this.inputOpen || this.closed || bytes.length === 0) return;
    this.input.push(bytes);
    // The core owns what it is given (it unmasks in place): a copy, so the oracle reads the original.
    this.protocol.receive(Buffer.from(bytes), this.now);
  }

  private callback(kind: Callback['kind'], index: number): (error?: Error) => void {
    const record: Callback = { kind, index, calls: 0, ok: false };
    this.callbacks.push(record);
    return (error) => {
      record.calls++;
      record.ok = error === undefined;
      check(record.calls === 1, 'a send callback called twice');
      if (record.ok && kind === 'message') check(index < this.out.messages.length, 'success before it was written');
    };
  }

  private send(reader: InputReader): void {
    const p = this.protocol;
    const flags = reader.byte();
    const fragmentSize = (flags & 0x30) === 0 ? undefined : FRAGMENTS[(flags >> 4) % FRAGMENTS.length];
    // At most 12 KiB sent per input, and 1-byte frames for short messages only: the harness's time
    // (decoding and tracing every frame) stays small.
    const most = (fragmentSize ?? this.setup.options.fragmentSize) === 1 ? 512 : this.sendLeft;
    const size = Math.min(reader.byte() * ((flags & 0x40) !== 0 ? 64 : 1), most, this.sendLeft);
    this.sendLeft -= size;
    const serial = this.serial++;
    const text = Buffer.from(`#${serial} ${TEXT.repeat(Math.ceil(size / 20) + 1)}`.slice(0, size + 4));
    const binary = (flags & 1) === 1;
    const options = { binary, compress: (flags & 2) === 0, ...(fragmentSize === undefined ? {} : { fragmentSize }) };
    if ((flags & 0x8c) === 0x8c) {
      // A buffer sent as text must be UTF-8 (RFC 6455 §5.6): a TypeError, and nothing sent.
      const bad = Buffer.concat([text, Buffer.from([0xff])]);
      let thrown: unknown = null;
      try {
        p.sendData(bad, { ...options, binary: false });
      } catch (error) {
        thrown = error;
      }
      check(thrown instanceof TypeError, 'sendData() took a non-UTF-8 buffer as text');
      return;
    }
    const data: Buffer | string = binary || (flags & 4) !== 0 ? text : text.toString();
    const withCallback = (flags & 8) === 0;
    const index = this.sent.length;
    const canSend = p.canSend;
    const accepted = p.sendData(data, options, withCallback ? this.callback('message', index) : undefined);
    check(accepted === canSend, 'sendData() answered otherwise than canSend said');
    if (accepted) this.sent.push({ opcode: binary ? OP.BINARY : OP.TEXT, data: Buffer.from(text) });
  }

  private sendFramed(reader: InputReader): void {
    const p = this.protocol;
    const data = Buffer.from(reader.bytes(reader.byte() % 64));
    const frame = encodeFrame({ opcode: OP.BINARY, payload: data });
    if (this.setup.role === 'client') {
      let thrown: unknown = null;
      try {
        p.sendFramed(frame);
      } catch (error) {
        thrown = error;
      }
      check(thrown instanceof TypeError, 'a client took pre-framed bytes (RFC 6455 §5.3: it masks each frame)');
      return;
    }
    const canSend = p.canSend;
    check(p.sendFramed(frame) === canSend, 'sendFramed() answered otherwise than canSend said');
    if (canSend) this.sent.push({ opcode: OP.BINARY, data });
  }

  private close(choice: number): void {
    const p = this.protocol;
    if ((choice & 0x80) !== 0) {
      // An invalid code or reason: refused while a close may still be sent, ignored after.
      const [code, reason] = BAD_CLOSES[choice % BAD_CLOSES.length]!;
      const canSend = p.canSend;
      let thrown: unknown = null;
      try {
        p.close(code, reason, this.now);
      } catch (error) {
        thrown = error;
      }
      if (canSend) check(thrown instanceof RangeError || thrown instanceof TypeError, `close(${code}) accepted`);
      else check(thrown === null, 'close() threw once closing');
      check(p.canSend === canSend, 'a refused close() changed the state');
      return;
    }
    const code = CLOSE_CODES[choice % CLOSE_CODES.length];
    const reason = code === undefined ? '' : REASONS[(choice >> 4) % REASONS.length]!;
    if (p.canSend) this.closeCodes.add(code);
    p.close(code, reason, this.now);
  }

  /** The stand-in inflater: the payload as it is, in one piece or two; or a failure. */
  private inflateFake(choice: number): void {
    const p = this.protocol;
    const { payload } = this.inflateJob!;
    this.inflateJob = null;
    if ((choice & 7) === 0) return p.inflateDone(new Error('invalid compressed data'));
    const cut = choice % (payload.length + 1);
    if (p.inflated(payload.subarray(0, cut)) && p.inflated(payload.subarray(cut))) p.inflateDone(null);
    else p.inflateDone(null);
  }

  /** Time passes: every deadline on the way fires at its time, as the driver's wheel fires it. */
  private advance(delay: number, readingPaused: boolean): void {
    const p = this.protocol;
    const until = this.now + delay;
    if (delay === 0) {
      // Early, as a driver may call it: harmless.
      p.timeout(this.now, readingPaused);
      this.settle();
      return;
    }
    for (let fired = 0; this.now < until && !this.closed && !p.wantsDestroy; fired++) {
      const deadline = p.nextDeadline;
      if (deadline > until || fired > 100) {
        this.now = until;
        break;
      }
      this.now = Math.max(this.now, deadline);
      this.fire(readingPaused);
    }
  }

  /** A deadline already due (set in the past, or at now): the wheel fires it at once. */
  private fireDue(): void {
    const p = this.protocol;
    for (let fired = 0; !this.closed && !p.wantsDestroy && p.nextDeadline <= this.now && fired < 100; fired++) {
      this.fire(false);
    }
  }

  private fire(readingPaused: boolean): void {
    const p = this.protocol;
    const due = p.nextDeadline;
    p.timeout(this.now, readingPaused);
    this.settle();
    // A deadline that fired moves on, or the stream goes: a wheel would fire it again forever.
    check(p.wantsDestroy || p.state === 3 || p.nextDeadline > this.now, () => `deadline ${due} stuck at ${this.now}`);
  }

  // -------------------------------------------------------------------------------------------
  // The end
  // -------------------------------------------------------------------------------------------

  private streamClosed(): void {
    if (this.closed) return;
    const p = this.protocol;
    // Whether every byte given was read: the oracle then holds the connection to all of it.
    const readAll = !this.failedOtherwise && p.bufferedInput === 0 && this.inflateJob === null && this.zlibJobs === 0;
    this.closed = true;
    this.report = p.streamClosed(this.now);
    this.checkReport(this.report, readAll);
    check(p.state === 3 && p.nextDeadline === Infinity, 'not CLOSED after streamClosed()');
    check(p.bufferedInput === 0 && p.bufferedOutput === 0, 'bytes held after streamClosed()');
  }

  private checkReport(report: CloseReport, readAll: boolean): void {
    const { code, wasClean } = report;
    check(isSendableCloseCode(code) || code === 1005 || code === 1006, `the close reports code ${code} (§7.4)`);
    // §7.1.4: clean when close frames went both ways (ours handed to the stream).
    const ours = this.out.closeFrame !== null;
    check(
      wasClean === (this.closeReceived && ours),
      `wasClean ${wasClean}, close frames: ours ${ours}, theirs ${this.closeReceived}`,
    );
    // §7.1.5: the peer's code when its close frame came; else the failure's (§7.1.7); else 1006.
    if (!this.closeReceived) {
      const expected = this.failCode !== 0 ? this.failCode : 1006;
      check(code === expected, `the close reports ${code}, expected ${expected}`);
    } else {
      // The oracle checks this code against the peer's close frame (§7.1.5; 1005 for an empty one).
      const close = this.received.find((e) => e.type === 'close') as { code: number; reason: string };
      close.code = code;
      close.reason = report.reason;
      // §5.5.1: the close frame sent in answer "typically echos the status code it received".
      this.closeCodes.add(code === 1005 ? undefined : code);
    }
    if (this.ourCloseCode !== null) {
      const ours = this.ourCloseCode;
      check(this.closeCodes.has(ours), `our close frame says ${ours}, which nothing asked for`);
    }
    if (this.setup.mode === 'fake') return;
    const { options, role, peer, budget } = this.setup;
    walkReceiver(
      Buffer.concat(this.input),
      {
        role,
        maxMessageSize: options.maxMessageSize,
        maxFramePayload: options.maxFramePayload,
        deflate: this.setup.mode === 'zlib' ? peer : null,
        budget: budget.limit,
      },
      this.received,
      !readAll,
    );
  }

  async finish(): Promise<void> {
    this.streamClosed();
    this.settle();
    // What was in flight ends now (the driver closes zlib with the stream): harmlessly.
    this.setup.zlib?.close();
    await this.zlibSettled();
    if (this.deflateJob !== null) this.protocol.deflated(Buffer.from('Z()'));
    if (this.inflateJob !== null) this.inflateFake(1);
    // Calls after the close change nothing: refused, their callbacks failed.
    check(!this.protocol.sendData('late', undefined, this.callback('message', Infinity)), 'a send after the close');
    this.protocol.close(1000, '', this.now);
    this.protocol.terminate();
    this.settle();
    for (const [i, callback] of this.callbacks.entries()) {
      check(callback.calls === 1, `send callback ${i} called ${callback.calls} times`);
      if (!callback.ok && callback.kind === 'message') {
        check(callback.index >= this.out.messages.length, `message ${callback.index} written, its callback failed`);
      }
    }
  }
}
