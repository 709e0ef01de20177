/**
 * Shared helpers for the protocol-core conformance tests.
 *
 * The tests here feed bytes straight into src's Receiver. The bytes come from the independent test
 * peer's encoder (helpers/peer/frames.ts), not the library's writer, so the receiver is checked
 * against a second reading of RFC 6455 §5.2 (and the writer against the receiver elsewhere).
 */
import assert from 'node:assert/strict';
import { Opcode } from '../../src/protocol/constants.js';
import { ProtocolError, ProtocolViolation } from '../../src/protocol/errors.js';
import {
  Receiver,
  type Frame,
  type ReceiverHandler,
  type ReceiverOptions,
  type Role,
} from '../../src/protocol/receiver.js';
import { resolveConnectionOptions } from '../../src/protocol/options.js';
import { closePayload, encodeFrame, type FrameSpec } from './peer/frames.js';

export type Event =
  | { type: 'message'; data: Buffer; isBinary: boolean }
  | { type: 'ping'; data: Buffer }
  | { type: 'pong'; data: Buffer }
  | { type: 'close'; code: number; reason: string }
  | { type: 'error'; error: ProtocolError }
  | { type: 'frame'; frame: Frame };

/** A handler that records every event, in order, with a snapshot (copy) of every payload. */
export class Collector implements ReceiverHandler {
  readonly events: Event[] = [];
  onFrame?: (frame: Frame) => void;

  constructor(recordFrames = false) {
    if (recordFrames) {
      this.onFrame = (frame) => {
        this.events.push({ type: 'frame', frame: { ...frame, payload: Buffer.from(frame.payload) } });
      };
    }
  }

  onMessage(data: Buffer, isBinary: boolean): void {
    this.events.push({ type: 'message', data: Buffer.from(data), isBinary });
  }
  onPing(data: Buffer): void {
    this.events.push({ type: 'ping', data: Buffer.from(data) });
  }
  onPong(data: Buffer): void {
    this.events.push({ type: 'pong', data: Buffer.from(data) });
  }
  onClose(code: number, reason: string): void {
    this.events.push({ type: 'close', code, reason });
  }
  onError(error: ProtocolError): void {
    this.events.push({ type: 'error', error });
  }
}

export interface Harness {
  receiver: Receiver;
  collector: Collector;
  events: Event[];
  /** Push bytes (copied first: the receiver owns and unmasks what it is given), see `pushBytes`. */
  push(bytes: Uint8Array, chunking?: Chunking): void;
}

export type ReceiverOverrides = Partial<Omit<ReceiverOptions, 'role'>>;

/** A receiver's options as a connection resolves them: the defaults of src/protocol/options.ts under `options`. */
export function receiverOptions(role: Role, options: ReceiverOverrides = {}): ReceiverOptions {
  const { maxMessageSize, maxFramePayload } = resolveConnectionOptions({
    maxMessageSize: options.maxMessageSize,
    maxFramePayload: options.maxFramePayload,
  });
  return { ...options, role, maxMessageSize, maxFramePayload };
}

/** What runs a receiver's inflation jobs: src/driver/deflate-zlib.ts's PerMessageDeflate, or a stand-in. */
export interface JobInflater {
  inflate(payload: Buffer, fin: boolean, onData: (data: Buffer) => boolean, done: (error: Error | null) => void): void;
}

/**
 * A receiver with permessage-deflate agreed whose inflation jobs run on `zlib` as the driver runs
 * them (src/driver/connection.ts): each job taken after a push or a finished job, its output handed
 * back piece by piece, then its end.
 */
export class InflatingReceiver extends Receiver {
  constructor(
    options: ReceiverOverrides & { role: Role },
    handler: ReceiverHandler,
    private readonly zlib: JobInflater,
  ) {
    super({ ...receiverOptions(options.role, options), compressed: true }, handler);
  }

  /** Inflations handed to zlib whose callback has not come yet. */
  inFlight = 0;
  #wake: (() => void) | null = null;

  override push(chunk: Buffer): void {
    super.push(chunk);
    this.runJob();
  }

  /**
   * Resolves once `finished()` holds, or once no inflation is in flight: the receiver goes on
   * synchronously when a job calls back, so with all input pushed and nothing in flight nothing more
   * can come, and what is missing is a stall for the caller to report. No clock judges the pace; the
   * one timer (LOST_JOB_MS, restarted by every job that finishes) only catches a job that never calls
   * back, which would otherwise hang the suite.
   */
  async settle(finished: () => boolean): Promise<void> {
    while (!finished() && this.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve, reject) => {
        this.#wake = resolve;
        timer = setTimeout(() => reject(new Error(`an inflation never called back (${LOST_JOB_MS} ms)`)), LOST_JOB_MS);
      }).finally(() => clearTimeout(timer));
      this.#wake = null;
    }
  }

  private runJob(): void {
    const job = this.takeInflateJob();
    if (job === null) return;
    this.inFlight++;
    this.zlib.inflate(
      job.payload,
      job.fin,
      (data) => this.inflated(data),
      (error) => {
        this.inFlight--;
        this.inflateDone(error);
        this.runJob();
        this.#wake?.();
      },
    );
  }
}

/** How long one inflation (at most a frame's payload in these tests) may take before it counts as lost. */
const LOST_JOB_MS = 30_000;

export function makeReceiver(role: Role, options: ReceiverOverrides = {}, recordFrames = false): Harness {
  const collector = new Collector(recordFrames);
  const receiver = new Receiver(receiverOptions(role, options), collector);
  return {
    receiver,
    collector,
    events: collector.events,
    push: (bytes, chunking) => pushBytes(receiver, bytes, chunking),
  };
}

/**
 * How to cut a byte stream before pushing it:
 * - undefined: one chunk;
 * - a number n: chunks of n bytes (1 = byte by byte);
 * - an array: the cut points (absolute offsets into the stream).
 */
export type Chunking = number | readonly number[] | undefined;

export function splitBytes(bytes: Uint8Array, chunking: Chunking): Buffer[] {
  const out: Buffer[] = [];
  if (chunking === undefined) {
    if (bytes.length > 0) out.push(Buffer.from(bytes));
    return out;
  }
  if (typeof chunking === 'number') {
    for (let i = 0; i < bytes.length; i += chunking) out.push(Buffer.from(bytes.subarray(i, i + chunking)));
    return out;
  }
  const cuts = [...new Set(chunking)].filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b);
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut > start) out.push(Buffer.from(bytes.subarray(start, cut)));
    start = cut;
  }
  return out;
}

/** Push `bytes` into `receiver` in the given chunking, each chunk a fresh copy. */
export function pushBytes(receiver: Receiver, bytes: Uint8Array, chunking?: Chunking): void {
  for (const chunk of splitBytes(bytes, chunking)) receiver.push(chunk);
}

/** Feed bytes to a new receiver and return its harness. */
export function feed(role: Role, bytes: Uint8Array, options: ReceiverOverrides = {}, chunking?: Chunking): Harness {
  const h = makeReceiver(role, options);
  h.push(bytes, chunking);
  return h;
}

export function concat(...parts: Uint8Array[]): Buffer {
  return Buffer.concat(parts);
}

export function utf8(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

export function bytes(...values: number[]): Buffer {
  return Buffer.from(values);
}

/**
 * Frames are encoded by the independent test peer (helpers/peer/frames.ts, RFC 6455 §5.2): one
 * encoder for every test, network peers and receiver unit tests alike.
 */
export { encodeFrame as rawFrame, naiveMask } from './peer/frames.js';

let keyCounter = 0;
/** A varied, deterministic masking key (never all zeros, so masking is visible). */
export function nextKey(): Buffer {
  keyCounter = (keyCounter + 1) >>> 0;
  const n = Math.imul(keyCounter, 0x9e3779b1) >>> 0;
  return Buffer.from([(n >>> 24) | 1, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

/** A frame as a client sends it: masked (RFC 6455 §5.3), with a varied key unless `maskKey` says otherwise. Goes to a server receiver. */
export function clientFrame(spec: FrameSpec): Buffer {
  return encodeFrame({ ...spec, maskKey: spec.maskKey === undefined ? nextKey() : spec.maskKey });
}

/** A frame as a server sends it: unmasked unless `maskKey` is given. Goes to a client receiver. */
export function serverFrame(spec: FrameSpec): Buffer {
  return encodeFrame(spec);
}

/** A well-formed frame for a receiver of the given role (masked for a server, unmasked for a client). */
export function frameFor(receiverRole: Role, spec: Omit<FrameSpec, 'maskKey'>): Buffer {
  return receiverRole === 'server' ? clientFrame(spec) : serverFrame(spec);
}

export const text = (role: Role, payload: string | Uint8Array, fin = true): Buffer =>
  frameFor(role, { opcode: Opcode.Text, payload, fin });
export const binary = (role: Role, payload: string | Uint8Array, fin = true): Buffer =>
  frameFor(role, { opcode: Opcode.Binary, payload, fin });
export const continuation = (role: Role, payload: string | Uint8Array, fin = true): Buffer =>
  frameFor(role, { opcode: Opcode.Continuation, payload, fin });
export const ping = (role: Role, payload: string | Uint8Array = ''): Buffer =>
  frameFor(role, { opcode: Opcode.Ping, payload });
export const pong = (role: Role, payload: string | Uint8Array = ''): Buffer =>
  frameFor(role, { opcode: Opcode.Pong, payload });
export function close(role: Role, code?: number, reason = ''): Buffer {
  return frameFor(role, { opcode: Opcode.Close, payload: closePayload(code, reason) });
}

/** A stream of valid frames of every kind, to push after an error or a close. */
export function validTraffic(role: Role): Buffer {
  return concat(
    text(role, 'after'),
    binary(role, bytes(1, 2, 3)),
    text(role, 'frag', false),
    ping(role, 'p'),
    continuation(role, 'ment'),
    pong(role, 'q'),
    close(role, 1000, 'bye'),
  );
}

export const ROLES: readonly Role[] = ['server', 'client'];

/**
 * Assert that the events end with exactly one error, of the given violation and close code,
 * and that the receiver then ignores everything: valid frames pushed afterwards (in one chunk and
 * byte by byte) report nothing.
 */
export function assertFailed(h: Harness, violation: ProtocolViolation, closeCode: number): ProtocolError {
  const errors = h.events.filter((e) => e.type === 'error');
  assert.equal(errors.length, 1, `expected exactly one error, got ${JSON.stringify(h.events.map((e) => e.type))}`);
  const last = h.events[h.events.length - 1]!;
  assert.equal(last.type, 'error', 'the error must be the last event');
  const error = (last as { error: ProtocolError }).error;
  assert.ok(error instanceof ProtocolError, 'onError receives a ProtocolError');
  assert.equal(error.violation, violation);
  assert.equal(error.closeCode, closeCode);
  assert.equal(ProtocolViolation[error.violation], closeCode);
  assert.equal(h.receiver.finished, true, 'receiver.finished after an error');
  assertSilentAfterwards(h);
  return error;
}

/** Push valid traffic and check that nothing more is reported. */
export function assertSilentAfterwards(h: Harness): void {
  const before = h.events.length;
  const traffic = validTraffic(h.receiver.role);
  h.push(traffic);
  h.push(traffic, 1);
  h.push(traffic, [3, 9, 20]);
  assert.equal(
    h.events.length,
    before,
    `nothing may be reported after the end, got ${JSON.stringify(h.events.slice(before).map((e) => e.type))}`,
  );
}

/** Feed `bytes` (in the given chunking) and assert the receiver fails with this violation and code. */
export function expectViolation(
  role: Role,
  input: Uint8Array,
  violation: ProtocolViolation,
  closeCode: number,
  options: ReceiverOverrides = {},
  chunking?: Chunking,
): Harness {
  const h = feed(role, input, options, chunking);
  assertFailed(h, violation, closeCode);
  return h;
}

/** The types of the events, for terse order checks. */
export function types(events: readonly Event[]): string[] {
  return events.map((e) => e.type);
}

/** The single message event (asserts there is exactly one event, a message). */
export function onlyMessage(events: readonly Event[]): { data: Buffer; isBinary: boolean } {
  assert.deepEqual(types(events), ['message']);
  const e = events[0] as { data: Buffer; isBinary: boolean };
  return e;
}
