/**
 * An independent reading of what a WebSocket endpoint must report for a byte stream from its peer
 * (RFC 6455 §5.1-§5.6, §7.4, §8.1; RFC 7692 §6, §7.2.2), for the receiver and connection targets.
 * Imports nothing of src/: the frames are read here from the RFC's §5.2 diagram, payloads unmasked
 * by the test peer's `naiveMask`, close codes judged by its `isSendableCloseCode`, UTF-8 by the
 * WHATWG decoder, compressed messages inflated by ./inflate.ts.
 *
 * It does not produce a list of events: where the RFCs leave a receiver a choice (which of two
 * violations of one frame to report, how much room to give a compressed frame or a window), it
 * walks the events the receiver did report and accepts any allowed choice, then checks the rest
 * against what follows from it. Throws an InvariantError at the first event no reading allows.
 */
import { isSendableCloseCode, naiveMask } from '../../../spec-tests/helpers/peer/frames.js';
import { check } from '../target.js';
import { distinct, inflateReading, nextReadings, streamEnded, type Reading } from './inflate.js';

export type ReceivedEvent =
  | { type: 'message'; data: Buffer; isBinary: boolean }
  | { type: 'ping'; data: Buffer }
  | { type: 'pong'; data: Buffer }
  | { type: 'close'; code: number; reason: string }
  | { type: 'error'; code: number; message: string };

export interface ReceiverModel {
  /** Who receives: a server reads masked frames, a client unmasked ones (§5.1). */
  role: 'server' | 'client';
  maxMessageSize: number;
  maxFramePayload: number;
  /** permessage-deflate agreed: the peer's window, and whether it keeps its context (§7.1.1, §7.1.2). */
  deflate: { bits: number; contextTakeover: boolean } | null;
  /** The inflate budget's limit (one receiver holds it alone), or Infinity. */
  budget: number;
}

/** What the walk found, besides the verdict. */
export interface WalkResult {
  /** Bytes of an unfinished frame header at the end of the input (0 when reading stopped). */
  headerTail: number;
  /** Reading stopped: a close frame or a violation. */
  stopped: boolean;
}

const PROTOCOL_ERROR = 1002;
const INVALID_PAYLOAD = 1007;
const TOO_BIG = 1009;
const TRY_AGAIN_LATER = 1013;

/** §8.1: may these bytes still become valid UTF-8 (no sequence is wrong yet)? */
function utf8Prefix(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes, { stream: true });
    return true;
  } catch {
    return false;
  }
}

function utf8Whole(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

const show = (event: ReceivedEvent | undefined): string =>
  event === undefined
    ? 'nothing'
    : event.type === 'error'
      ? `error ${event.code} (${event.message})`
      : event.type === 'close'
        ? `close ${event.code}`
        : `${event.type} of ${event.data.length} bytes`;

/** Thrown by a partial walk when the events run out: what was reported agrees so far. */
class EventsRanOut extends Error {}

/** The receiver's events, consumed one at a time as the reading of the input reaches them. */
class Events {
  private at = 0;
  constructor(
    private readonly events: readonly ReceivedEvent[],
    /** The receiver may have stopped reading anywhere (the connection ended for another reason). */
    private readonly partial: boolean,
  ) {}

  private get next(): ReceivedEvent | undefined {
    if (this.partial && this.at === this.events.length) throw new EventsRanOut();
    return this.events[this.at];
  }

  /** The receiver must fail here with one of `codes`, and report nothing after. */
  fail(codes: number[], why: string): void {
    const event = this.next;
    check(
      event?.type === 'error' && codes.includes(event.code),
      () => `expected a failure with ${codes.join(' or ')} (${why}), got ${show(event)} (event ${this.at})`,
    );
    this.at++;
    this.end('after the failure');
  }

  /** The receiver may fail here with one of `codes` (the RFC leaves it the choice): true if it did. */
  mayFail(codes: number[]): boolean {
    const event = this.events[this.at];
    if (event?.type !== 'error' || !codes.includes(event.code)) return false;
    this.at++;
    this.end('after the failure');
    return true;
  }

  expect(type: 'ping' | 'pong', data: Buffer): void {
    const event = this.next;
    check(
      event?.type === type && event.data.equals(data),
      () => `expected a ${type} of ${data.length} bytes, got ${show(event)} (event ${this.at})`,
    );
    this.at++;
  }

  expectClose(code: number, reason: string): void {
    const event = this.next;
    check(
      event?.type === 'close' && event.code === code && event.reason === reason,
      () => `expected close ${code} ${JSON.stringify(reason)}, got ${show(event)} (event ${this.at})`,
    );
    this.at++;
    this.end('after the close frame (RFC 6455 §5.5.1)');
  }

  /** A message: one of `candidates` (the readings of a compressed one may differ). Returns its data. */
  expectMessage(candidates: Buffer[], isBinary: boolean): Buffer {
    const event = this.next;
    check(
      event?.type === 'message' && event.isBinary === isBinary && candidates.some((c) => c.equals(event.data)),
      () =>
        `expected a ${isBinary ? 'binary' : 'text'} message of ${candidates.map((c) => c.length).join(' or ')} ` +
        `bytes, got ${show(event)} (event ${this.at})`,
    );
    this.at++;
    return (event as { data: Buffer }).data;
  }

  /** Whether the next event is a failure with `code`. */
  nextIsError(code: number): boolean {
    const event = this.events[this.at];
    return event?.type === 'error' && event.code === code;
  }

  /** Nothing more. */
  end(where: string): void {
    check(this.at === this.events.length, () => `${show(this.events[this.at])} reported ${where}`);
  }
}

interface OpenMessage {
  opcode: number;
  compressed: boolean;
  /** Uncompressed: the payload so far; compressed: the compressed payload so far. */
  parts: Buffer[];
  length: number;
  /** Compressed: the readings still possible. */
  readings: Reading[];
}

/**
 * Walk `input` (the whole byte stream the receiver got, in order) against `events` (everything it
 * reported). Throws an InvariantError where they part. `partial`: the receiver may have stopped
 * reading anywhere for reasons of its own (its connection failed otherwise): the events must agree
 * as far as they go.
 */
export function walkReceiver(
  input: Buffer,
  model: ReceiverModel,
  received: readonly ReceivedEvent[],
  partial = false,
): WalkResult {
  try {
    return walk(input, model, new Events(received, partial));
  } catch (error) {
    if (error instanceof EventsRanOut) return { headerTail: 0, stopped: true };
    throw error;
  }
}

function walk(input: Buffer, model: ReceiverModel, events: Events): WalkResult {
  const result: WalkResult = { headerTail: 0, stopped: false };
  const frameLimit = Math.min(model.maxFramePayload, model.maxMessageSize);
  let readings: Reading[] = [{ strict: false, history: Buffer.alloc(0) }];
  let message: OpenMessage | null = null;
  let at = 0;
  const stop = (): WalkResult => {
    result.stopped = true;
    return result;
  };

  for (;;) {
    const left = input.length - at;
    if (left < 2) {
      result.headerTail = left;
      events.end('beyond the input');
      return result;
    }
    const b0 = input[at]!;
    const b1 = input[at + 1]!;
    const fin = (b0 & 0x80) !== 0;
    const rsv1 = (b0 & 0x40) !== 0;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    const len7 = b1 & 0x7f;
    const control = opcode >= 8;
    const known = opcode <= 2 || (opcode >= 8 && opcode <= 10);

    // Everything the first two bytes can break; the RFC gives every one of these 1002 (§7.4.1).
    const broken: string[] = [];
    if (!known) broken.push('reserved opcode (§5.2)');
    if ((b0 & 0x30) !== 0) broken.push('RSV2 or RSV3 (§5.2)');
    if (rsv1 && (model.deflate === null || opcode === 0 || control)) broken.push('RSV1 not allowed here (RFC 7692 §6)');
    if (known && control && !fin) broken.push('fragmented control frame (§5.5)');
    if (known && control && len7 > 125) broken.push('control frame over 125 bytes (§5.5)');
    if (opcode === 0 && message === null) broken.push('continuation with no message open (§5.4)');
    if ((opcode === 1 || opcode === 2) && message !== null) broken.push('new message inside a fragmented one (§5.4)');
    if (masked !== (model.role === 'server'))
      broken.push(masked ? 'masked frame to a client' : 'unmasked frame (§5.1)');
    if (broken.length > 0) {
      events.fail([PROTOCOL_ERROR], broken.join('; '));
      return stop();
    }

    let header = 2;
    let length: number;
    let minimal = true;
    if (len7 === 126) {
      if (left < 4) return tail(result, events, left);
      length = input.readUInt16BE(at + 2);
      minimal = length >= 126;
      header = 4;
    } else if (len7 === 127) {
      if (left < 10) return tail(result, events, left);
      const big = input.readBigUInt64BE(at + 2);
      // §5.2: "the most significant bit MUST be 0"; such a length is also past any limit.
      if (big >= 1n << 63n) {
        events.fail([PROTOCOL_ERROR, TOO_BIG], '64-bit length with the top bit set (§5.2)');
        return stop();
      }
      length = Number(big);
      minimal = big > 0xffffn;
      header = 10;
    } else length = len7;
    // §5.2 asks the sender for the minimal length encoding; a receiver may refuse the others.
    if (!minimal && events.mayFail([PROTOCOL_ERROR])) return stop();

    if (!control) {
      const compressed = opcode === 0 ? message!.compressed : rsv1;
      const soFar = opcode === 0 ? message!.length : 0;
      if (!compressed) {
        // §10.4: limits are the receiver's policy; past them, 1009 (§7.4.1) before reading the payload.
        if (length > frameLimit || soFar + length > model.maxMessageSize) {
          events.fail([TOO_BIG], `a ${length}-byte frame past the limits`);
          return stop();
        }
      } else {
        // Compressed bytes are bounded by the frame limit and some room for data that does not
        // compress; twice the limit is past any reasonable room.
        if (length > 2 * frameLimit + 1024) {
          events.fail([TOO_BIG], `a ${length}-byte compressed frame, over twice the frame limit`);
          return stop();
        }
        if (length > frameLimit && events.mayFail([TOO_BIG])) return stop();
      }
    }

    let key: Buffer | null = null;
    if (masked) {
      if (left < header + 4) return tail(result, events, left);
      key = input.subarray(at + header, at + header + 4);
      header += 4;
    }
    const available = Math.min(length, left - header);
    const raw = input.subarray(at + header, at + header + available);
    const payload = key === null ? Buffer.from(raw) : naiveMask(raw, key);
    const complete = available === length;
    at += header + available;

    if (control) {
      if (!complete) return tail(result, events, 0);
      if (opcode === 9 || opcode === 10) {
        events.expect(opcode === 9 ? 'ping' : 'pong', payload);
        continue;
      }
      // §5.5.1: empty, or a 2-byte code and a UTF-8 reason.
      if (payload.length === 1) {
        events.fail([PROTOCOL_ERROR], 'a one-byte close payload (§5.5.1)');
        return stop();
      }
      if (payload.length === 0) {
        // §7.1.5: no status code: the application hears 1005.
        events.expectClose(1005, '');
        return stop();
      }
      const code = payload.readUInt16BE(0);
      if (!isSendableCloseCode(code)) {
        events.fail([PROTOCOL_ERROR], `close code ${code} (§7.4)`);
        return stop();
      }
      if (!utf8Whole(payload.subarray(2))) {
        events.fail([INVALID_PAYLOAD], 'a close reason that is not UTF-8 (§5.5.1, §8.1)');
        return stop();
      }
      events.expectClose(code, payload.subarray(2).toString('utf8'));
      return stop();
    }

    if (opcode !== 0) {
      message = { opcode, compressed: rsv1, parts: [], length: 0, readings };
    }
    const open = message!;
    open.parts.push(payload);
    open.length += payload.length;

    if (!open.compressed) {
      // §8.1: a text message fails as soon as its bytes cannot be UTF-8 any more.
      if (open.opcode === 1 && !utf8Prefix(Buffer.concat(open.parts))) {
        events.fail([INVALID_PAYLOAD], 'text that is not UTF-8 (§8.1)');
        return stop();
      }
      if (!complete) return tail(result, events, 0);
      if (!fin) continue;
      const data = Buffer.concat(open.parts);
      if (open.opcode === 1 && !utf8Whole(data)) {
        events.fail([INVALID_PAYLOAD], 'a text message ending inside a UTF-8 sequence (§8.1)');
        return stop();
      }
      events.expectMessage([data], open.opcode === 2);
      message = null;
      continue;
    }

    if (!complete) return tail(result, events, 0);
    const outcome = inflateFrame(open, fin, model, events);
    // A failure allowed here may be this one; one that is not may still come from a later frame.
    if (outcome.codes.length > 0 && events.mayFail(outcome.codes)) return stop();
    if (outcome.alive.length === 0) {
      events.fail(outcome.codes, `compressed message, frame ${open.parts.length}: ${outcome.why.join('; ')}`);
      return stop();
    }
    open.readings = outcome.alive;
    if (!fin) continue;
    const candidates = outcome.alive.map((r) => r.output!);
    const data = events.expectMessage(candidates, open.opcode === 2);
    // The next message starts from the history of the readings that gave this message.
    const compressed = Buffer.concat(open.parts);
    readings = distinct(
      outcome.alive
        .filter((r) => r.output!.equals(data))
        .flatMap((r) =>
          nextReadings(r, data, model.deflate!.contextTakeover, streamEnded(r, compressed, model.deflate!.bits)),
        ),
    );
    message = null;
  }
}

/** The input ended inside a frame: nothing more is reported; `headerTail` bytes of a header wait. */
function tail(result: WalkResult, events: Events, headerTail: number): WalkResult {
  result.headerTail = headerTail;
  events.end('beyond the input');
  return result;
}

/**
 * One more frame of a compressed message: every lenient reading still possible inflates the message
 * so far. A reading that breaks a rule with this frame says which code the receiver may fail with;
 * the readings that break none go on. A strict reading (the agreed window exactly) is consulted only
 * when the receiver did fail with 1002: it allows that failure once it cannot inflate the message.
 */
function inflateFrame(
  open: OpenMessage,
  fin: boolean,
  model: ReceiverModel,
  events: Events,
): { codes: number[]; why: string[]; alive: (Reading & { output?: Buffer })[] } {
  const compressed = Buffer.concat(open.parts);
  const codes = new Set<number>();
  const why: string[] = [];
  const alive: (Reading & { output: Buffer })[] = [];
  const text = open.opcode === 1;
  const bits = model.deflate!.bits;
  for (const reading of open.readings) {
    const output = inflateReading(reading, compressed, fin, bits);
    const broke: [number, string][] = [];
    if (output === null) broke.push([PROTOCOL_ERROR, 'invalid DEFLATE data']);
    else {
      if (output.length > model.maxMessageSize) broke.push([TOO_BIG, `${output.length} bytes inflated`]);
      if (output.length > model.budget) broke.push([TRY_AGAIN_LATER, `${output.length} bytes past the budget`]);
      if (text && !(fin ? utf8Whole(output) : utf8Prefix(output))) broke.push([INVALID_PAYLOAD, 'not UTF-8']);
    }
    if (broke.length === 0) alive.push({ ...reading, output: output! });
    for (const [code, reason] of broke) {
      codes.add(code);
      why.push(reason);
    }
  }
  // A receiver that keeps to the agreed window may refuse a reference beyond it (strictly, and
  // from then on in this message: its zlib may have served an earlier one from its output buffer).
  if (!codes.has(PROTOCOL_ERROR) && events.nextIsError(PROTOCOL_ERROR)) {
    const strict = open.readings.some((r) => inflateReading({ ...r, strict: true }, compressed, fin, bits) === null);
    if (strict) {
      codes.add(PROTOCOL_ERROR);
      why.push('a reference beyond the agreed window');
    }
  }
  return { codes: [...codes], why, alive };
}
