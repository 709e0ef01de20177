/**
 * Generators shared by the fuzz properties: valid WebSocket frame streams (a model of what should be
 * received), their encodings, and ways to cut a byte stream into chunks.
 */
import fc from 'fast-check';
import { buildClosePayload } from '../src/protocol/close.js';
import { Opcode } from '../src/protocol/constants.js';
import { encodeFrame } from '../src/protocol/frame.js';
import type { Frame, ReceiverHandler, Role } from '../src/protocol/receiver.js';
import type { ProtocolError } from '../src/protocol/errors.js';
import { MaskKeySource } from '../src/protocol/writer.js';
import { appendFrame } from '../spec-tests/helpers/writer.js';

export const runs = Number(process.env.FUZZ_RUNS ?? 200);

// ---------------------------------------------------------------------------------------------
// Payloads

function fill(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));

/** Binary payloads: mostly short, some around the 126 boundary, rarely past 65,535 (64-bit lengths). */
export const binaryPayload: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 12, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  { weight: 4, arbitrary: fc.uint8Array({ minLength: 100, maxLength: 400 }) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 65_530, max: 66_000 }), fc.integer()).map(([n, seed]) => fill(n, seed)),
  },
);

/** Text payloads: any code points (so 1- to 4-byte sequences), encoded as UTF-8. */
export const textPayload: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 12, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }).map(utf8) },
  { weight: 4, arbitrary: fc.string({ unit: 'binary', minLength: 30, maxLength: 150 }).map(utf8) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }), fc.integer({ min: 65_536, max: 67_000 }))
      .map(([s, n]) => utf8(s.repeat(Math.ceil(n / Buffer.byteLength(s))))),
  },
);

export const controlPayload: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 120, maxLength: 125 }) },
);

// ---------------------------------------------------------------------------------------------
// The model: what is sent, frame by frame

export interface ModelFrame {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
}

export interface ControlItem {
  opcode: typeof Opcode.Ping | typeof Opcode.Pong;
  payload: Uint8Array;
}

export interface MessageItem {
  opcode: typeof Opcode.Text | typeof Opcode.Binary;
  payload: Uint8Array;
  /** Fragment boundaries (duplicates give empty fragments). */
  cuts: number[];
  /** Control frames injected after fragment i (only the gaps between fragments are used). */
  injected: ControlItem[][];
}

export interface CloseItem {
  code: number | undefined;
  reason: string;
}

export interface StreamModel {
  items: (MessageItem | ControlItem)[];
  close: CloseItem | null;
  /** Bytes after the close frame, which must be ignored. */
  trailer: Uint8Array;
}

export const controlItem: fc.Arbitrary<ControlItem> = fc.record({
  opcode: fc.constantFrom(Opcode.Ping, Opcode.Pong),
  payload: controlPayload,
});

export const messageItem: fc.Arbitrary<MessageItem> = fc
  .oneof(
    fc.record({ opcode: fc.constant(Opcode.Text), payload: textPayload }),
    fc.record({ opcode: fc.constant(Opcode.Binary), payload: binaryPayload }),
  )
  .chain(({ opcode, payload }) =>
    fc
      .array(fc.integer({ min: 0, max: payload.length }), { maxLength: 6 })
      .chain((cuts) =>
        fc
          .array(fc.array(controlItem, { maxLength: 2 }), { minLength: cuts.length, maxLength: cuts.length })
          .map((injected) => ({ opcode, payload, cuts: [...cuts].sort((a, b) => a - b), injected })),
      ),
  );

const closeCode = fc.oneof(
  fc.constantFrom(1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014),
  fc.integer({ min: 3000, max: 4999 }),
);

export const closeItem: fc.Arbitrary<CloseItem> = fc.oneof(
  { weight: 1, arbitrary: fc.constant({ code: undefined, reason: '' }) },
  {
    weight: 4,
    arbitrary: fc.record({
      code: closeCode,
      reason: fc.string({ unit: 'binary', maxLength: 40 }).filter((r) => Buffer.byteLength(r) <= 123),
    }),
  },
);

export const streamModel: fc.Arbitrary<StreamModel> = fc.record({
  items: fc.array(fc.oneof({ weight: 3, arbitrary: messageItem }, { weight: 1, arbitrary: controlItem }), {
    maxLength: 6,
  }),
  close: fc.option(closeItem, { freq: 3 }),
  trailer: fc.uint8Array({ maxLength: 16 }),
});

/** The frames a stream model is sent as, in wire order. */
export function modelFrames(model: StreamModel): ModelFrame[] {
  const frames: ModelFrame[] = [];
  for (const item of model.items) {
    if (item.opcode === Opcode.Ping || item.opcode === Opcode.Pong) {
      frames.push({ fin: true, opcode: item.opcode, payload: item.payload });
      continue;
    }
    const message = item as MessageItem;
    const bounds = [0, ...message.cuts, message.payload.length];
    for (let i = 0; i + 1 < bounds.length; i++) {
      frames.push({
        fin: i + 2 === bounds.length,
        opcode: i === 0 ? message.opcode : Opcode.Continuation,
        payload: message.payload.subarray(bounds[i]!, bounds[i + 1]!),
      });
      if (i + 2 < bounds.length) {
        for (const c of message.injected[i] ?? []) frames.push({ fin: true, opcode: c.opcode, payload: c.payload });
      }
    }
  }
  if (model.close !== null) {
    frames.push({ fin: true, opcode: Opcode.Close, payload: buildClosePayload(model.close.code, model.close.reason) });
  }
  return frames;
}

// ---------------------------------------------------------------------------------------------
// Encoding

export type EncoderKind = 'encodeFrame' | 'writer';

export interface Encoding {
  role: Role;
  encoder: EncoderKind;
  /** Seed of the masking keys (encodeFrame path); the writer draws its own random keys. */
  keySeed: number;
}

export const encoding: fc.Arbitrary<Encoding> = fc.record({
  role: fc.constantFrom<Role>('server', 'client'),
  encoder: fc.constantFrom<EncoderKind>('encodeFrame', 'writer'),
  keySeed: fc.integer(),
});

export interface Encoded {
  bytes: Buffer;
  /** The key each frame was masked with, when known (null: unmasked; undefined: random, unknown). */
  keys: (Uint8Array | null | undefined)[];
}

/** Encode frames for a receiver of `enc.role`: masked (client to server) or not (server to client). */
export function encodeFrames(frames: ModelFrame[], enc: Encoding): Encoded {
  const masked = enc.role === 'server';
  const keyBytes = fill(4 * frames.length, enc.keySeed);
  const keySource = masked ? new MaskKeySource() : null;
  const parts: Buffer[] = [];
  const keys: (Uint8Array | null | undefined)[] = [];
  frames.forEach((frame, i) => {
    if (enc.encoder === 'encodeFrame') {
      const key = masked ? keyBytes.subarray(4 * i, 4 * i + 4) : null;
      parts.push(encodeFrame({ opcode: frame.opcode, payload: frame.payload, fin: frame.fin, maskKey: key }));
      keys.push(key);
    } else {
      appendFrame(parts, frame.opcode, frame.payload, frame.fin, false, keySource);
      keys.push(masked ? undefined : null);
    }
  });
  return { bytes: Buffer.concat(parts), keys };
}

// ---------------------------------------------------------------------------------------------
// Chunking

export type ChunkPlan = { kind: 'whole' } | { kind: 'fixed'; size: number } | { kind: 'cuts'; cuts: number[] };

export const chunkPlan: fc.Arbitrary<ChunkPlan> = fc.oneof(
  fc.constant<ChunkPlan>({ kind: 'whole' }),
  fc.constant<ChunkPlan>({ kind: 'fixed', size: 1 }),
  fc.integer({ min: 1, max: 64 }).map((size): ChunkPlan => ({ kind: 'fixed', size })),
  fc.array(fc.nat(), { maxLength: 40 }).map((cuts): ChunkPlan => ({ kind: 'cuts', cuts })),
);

/** Cut `bytes` into fresh copies (the receiver takes ownership of what it is given). */
export function cutChunks(bytes: Uint8Array, plan: ChunkPlan): Buffer[] {
  const copy = (start: number, end: number) => Buffer.from(bytes.subarray(start, end));
  if (plan.kind === 'whole') return bytes.length === 0 ? [] : [copy(0, bytes.length)];
  const chunks: Buffer[] = [];
  if (plan.kind === 'fixed') {
    for (let i = 0; i < bytes.length; i += plan.size) chunks.push(copy(i, i + plan.size));
    return chunks;
  }
  const cuts = [...new Set(plan.cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut > start) chunks.push(copy(start, cut));
    start = cut;
  }
  return chunks;
}

// ---------------------------------------------------------------------------------------------
// Recording what the receiver reports

export type Recorded =
  | {
      type: 'frame';
      fin: boolean;
      opcode: number;
      rsv1: boolean;
      rsv2: boolean;
      rsv3: boolean;
      masked: boolean;
      maskKey: Uint8Array | null;
      payload: Buffer;
    }
  | { type: 'message'; isBinary: boolean; data: Buffer }
  | { type: 'ping'; data: Buffer }
  | { type: 'pong'; data: Buffer }
  | { type: 'close'; code: number; reason: string }
  | { type: 'error'; error: ProtocolError };

/**
 * Records events with a copy of each payload, and keeps the buffers the receiver handed out so
 * `corrupted()` can tell whether any of them changed afterwards (a delivered view must stay valid).
 */
export class Recorder implements ReceiverHandler {
  readonly events: Recorded[] = [];
  private readonly delivered: { view: Buffer; copy: Buffer }[] = [];

  constructor(withFrames: boolean) {
    if (withFrames) {
      this.onFrame = (f: Frame) => {
        this.events.push({
          type: 'frame',
          fin: f.fin,
          opcode: f.opcode,
          rsv1: f.rsv1,
          rsv2: f.rsv2,
          rsv3: f.rsv3,
          masked: f.masked,
          maskKey: f.maskKey === null ? null : Uint8Array.from(f.maskKey),
          payload: this.keep(f.payload),
        });
      };
    }
  }

  onFrame?: (frame: Frame) => void;

  private keep(view: Buffer): Buffer {
    const copy = Buffer.from(view);
    this.delivered.push({ view, copy });
    return copy;
  }

  onMessage(data: Buffer, isBinary: boolean): void {
    this.events.push({ type: 'message', isBinary, data: this.keep(data) });
  }
  onPing(data: Buffer): void {
    this.events.push({ type: 'ping', data: this.keep(data) });
  }
  onPong(data: Buffer): void {
    this.events.push({ type: 'pong', data: this.keep(data) });
  }
  onClose(code: number, reason: string): void {
    this.events.push({ type: 'close', code, reason });
  }
  onError(error: ProtocolError): void {
    this.events.push({ type: 'error', error });
  }

  /** Index of the first delivered buffer whose content changed after delivery, or -1. */
  corrupted(): number {
    return this.delivered.findIndex(({ view, copy }) => !view.equals(copy));
  }
}

/** The events a receiver should report for these frames (frames included when `withFrames`). */
export function expectedEvents(
  frames: ModelFrame[],
  keys: (Uint8Array | null | undefined)[],
  withFrames: boolean,
): Recorded[] {
  const out: Recorded[] = [];
  let message: Uint8Array[] = [];
  let messageOpcode = 0;
  frames.forEach((f, i) => {
    if (withFrames) {
      const key = keys[i];
      out.push({
        type: 'frame',
        fin: f.fin,
        opcode: f.opcode,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        masked: key !== null,
        maskKey: key === undefined ? null : key === null ? null : Uint8Array.from(key),
        payload: Buffer.from(f.payload),
      });
    }
    if (f.opcode === Opcode.Ping) out.push({ type: 'ping', data: Buffer.from(f.payload) });
    else if (f.opcode === Opcode.Pong) out.push({ type: 'pong', data: Buffer.from(f.payload) });
    else if (f.opcode === Opcode.Close) {
      const p = Buffer.from(f.payload);
      out.push(
        p.length === 0
          ? { type: 'close', code: 1005, reason: '' }
          : { type: 'close', code: p.readUInt16BE(0), reason: p.subarray(2).toString('utf8') },
      );
    } else {
      if (f.opcode !== Opcode.Continuation) messageOpcode = f.opcode;
      message.push(f.payload);
      if (f.fin) {
        out.push({ type: 'message', isBinary: messageOpcode === Opcode.Binary, data: Buffer.concat(message) });
        message = [];
      }
    }
  });
  return out;
}
