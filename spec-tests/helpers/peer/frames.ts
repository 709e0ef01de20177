/**
 * WebSocket frames for the test peer, written from RFC 6455 §5.2 (the base framing protocol) and
 * §5.3 (masking), independently of src/: an encoder that writes whatever header a test asks for
 * (any FIN/RSV/opcode, a forced 7/16/64-bit length, a declared length that lies, masked with a
 * chosen key or not), and an incremental decoder that unmasks and records every frame with its
 * raw header bits. Close payloads (§5.5.1) are built and read here too.
 */
import { randomBytes } from 'node:crypto';

/** §5.2 / §11.8: the opcodes. 0x3-0x7 and 0xB-0xF are reserved. */
export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

export const isControl = (opcode: number): boolean => (opcode & 0x8) !== 0;

export interface FrameSpec {
  opcode: number;
  payload?: Uint8Array | string;
  /** Default true. */
  fin?: boolean;
  rsv1?: boolean;
  rsv2?: boolean;
  rsv3?: boolean;
  /** A 4-byte key: the MASK bit is set, the key written and the payload masked with it. Absent or null: unmasked. */
  maskKey?: Uint8Array | null;
  /** Force the payload length encoding (§5.2: 7-bit, 7+16-bit or 7+64-bit). Default: the shortest. */
  lengthEncoding?: 7 | 16 | 64;
  /** Write this length in the header instead of the payload's (a header that lies). */
  declaredLength?: bigint | number;
}

/** XOR byte i with key[(phase + i) % 4], the obvious way (§5.3). */
export function naiveMask(data: Uint8Array, key: Uint8Array, phase = 0): Buffer {
  const out = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ key[(phase + i) % 4]!;
  return out;
}

function bytesOf(payload: Uint8Array | string | undefined): Buffer {
  if (payload === undefined) return Buffer.alloc(0);
  return typeof payload === 'string'
    ? Buffer.from(payload, 'utf8')
    : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}

/** Encode one frame exactly as told (§5.2). Unmasked unless `maskKey` is given. */
export function encodeFrame(spec: FrameSpec): Buffer {
  const payload = bytesOf(spec.payload);
  const length = BigInt(spec.declaredLength ?? payload.length);
  const encoding = spec.lengthEncoding ?? (length < 126n ? 7 : length <= 0xffffn ? 16 : 64);
  const key = spec.maskKey ?? null;
  if (key !== null && key.length !== 4) throw new Error('a masking key is 4 bytes');
  const head: number[] = [
    (spec.fin === false ? 0 : 0x80) |
      (spec.rsv1 === true ? 0x40 : 0) |
      (spec.rsv2 === true ? 0x20 : 0) |
      (spec.rsv3 === true ? 0x10 : 0) |
      (spec.opcode & 0x0f),
  ];
  const maskBit = key === null ? 0 : 0x80;
  if (encoding === 7) head.push(maskBit | Number(length & 0x7fn));
  else if (encoding === 16) head.push(maskBit | 126, Number((length >> 8n) & 0xffn), Number(length & 0xffn));
  else {
    head.push(maskBit | 127);
    for (let shift = 56n; shift >= 0n; shift -= 8n) head.push(Number((length >> shift) & 0xffn));
  }
  if (key !== null) head.push(...key);
  return Buffer.concat([Buffer.from(head), key === null ? payload : naiveMask(payload, key)]);
}

/** A fresh random masking key (§5.3: "unpredictable"). */
export function randomMaskKey(): Buffer {
  return randomBytes(4);
}

/** A frame as a client sends it: masked with a fresh random key unless `maskKey` says otherwise (null: unmasked). */
export function clientFrame(spec: FrameSpec): Buffer {
  return encodeFrame({ ...spec, maskKey: spec.maskKey === undefined ? randomMaskKey() : spec.maskKey });
}

/** A frame as a server sends it: unmasked unless `maskKey` is given. */
export function serverFrame(spec: FrameSpec): Buffer {
  return encodeFrame(spec);
}

/** §5.5.1: a close payload, the code (unless undefined) in network byte order, then the reason. */
export function closePayload(code?: number, reason: string | Uint8Array = ''): Buffer {
  if (code === undefined) return Buffer.alloc(0);
  const head = Buffer.from([(code >>> 8) & 0xff, code & 0xff]);
  return Buffer.concat([head, typeof reason === 'string' ? Buffer.from(reason, 'utf8') : Buffer.from(reason)]);
}

/** §5.5.1: read a close payload. `code` is undefined for an empty payload; `reason` is decoded leniently. */
export function parseClosePayload(payload: Buffer): { code: number | undefined; reason: string; reasonBytes: Buffer } {
  if (payload.length < 2) return { code: undefined, reason: '', reasonBytes: Buffer.alloc(0) };
  const reasonBytes = payload.subarray(2);
  return { code: payload.readUInt16BE(0), reason: reasonBytes.toString('utf8'), reasonBytes };
}

/**
 * §7.4: may this code appear in a close frame? 1000-1003, 1007-1011 (and 1012-1014, registered
 * since with IANA), 3000-4999. Never 1004-1006, 1015, anything under 1000 or from 5000.
 */
export function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** §8.1: is this valid UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF, nothing cut)? */
export function isUtf8(bytes: Uint8Array): boolean {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** One frame as it arrived: its header bits, raw, and its (unmasked) payload. */
export interface DecodedFrame {
  fin: boolean;
  rsv1: boolean;
  rsv2: boolean;
  rsv3: boolean;
  opcode: number;
  masked: boolean;
  maskKey: Buffer | null;
  /** The length encoding the sender chose: 7, 16 or 64 bits. */
  lengthEncoding: 7 | 16 | 64;
  /** The length as written in the header. */
  declaredLength: bigint;
  /** The first two header bytes, as sent. */
  header: [number, number];
  payload: Buffer;
}

/**
 * An incremental frame decoder: push bytes in any chunking, get whole frames. A frame whose
 * declared length is absurd (top bit set, or more than `maxPayload`) is reported through
 * `onBadLength` and decoding stops there.
 */
export class FrameDecoder {
  private buffered: Buffer[] = [];
  private size = 0;
  /** Set once a header announced a length we will not wait for. */
  stopped: string | null = null;

  constructor(
    private readonly onFrame: (frame: DecodedFrame, byteLength: number) => void,
    private readonly maxPayload = 1024 * 1024 * 1024,
  ) {}

  push(chunk: Buffer): void {
    if (this.stopped !== null || chunk.length === 0) return;
    this.buffered.push(chunk);
    this.size += chunk.length;
    for (;;) {
      if (this.size < 2) return;
      const head = this.peek(Math.min(this.size, 14));
      const b0 = head[0]!;
      const b1 = head[1]!;
      const masked = (b1 & 0x80) !== 0;
      const len7 = b1 & 0x7f;
      const lengthEncoding = len7 === 126 ? 16 : len7 === 127 ? 64 : 7;
      let at = lengthEncoding === 7 ? 2 : lengthEncoding === 16 ? 4 : 10;
      if (head.length < at + (masked ? 4 : 0)) return;
      let declaredLength: bigint;
      if (lengthEncoding === 7) declaredLength = BigInt(len7);
      else if (lengthEncoding === 16) declaredLength = BigInt(head.readUInt16BE(2));
      else declaredLength = head.readBigUInt64BE(2);
      if (declaredLength > BigInt(this.maxPayload)) {
        this.stopped = `a frame header declares ${declaredLength} bytes${declaredLength >= 1n << 63n ? ' (the most significant bit is set, RFC 6455 §5.2)' : ''}`;
        return;
      }
      const maskKey = masked ? Buffer.from(head.subarray(at, at + 4)) : null;
      if (masked) at += 4;
      const length = Number(declaredLength);
      if (this.size < at + length) return;
      const whole = this.take(at + length);
      const body = whole.subarray(at);
      const payload = maskKey === null ? Buffer.from(body) : naiveMask(body, maskKey);
      this.onFrame(
        {
          fin: (b0 & 0x80) !== 0,
          rsv1: (b0 & 0x40) !== 0,
          rsv2: (b0 & 0x20) !== 0,
          rsv3: (b0 & 0x10) !== 0,
          opcode: b0 & 0x0f,
          masked,
          maskKey,
          lengthEncoding,
          declaredLength,
          header: [b0, b1],
          payload,
        },
        at + length,
      );
      if (this.stopped !== null) return;
    }
  }

  /** Bytes held for a frame not yet complete. */
  get pending(): number {
    return this.size;
  }

  private peek(n: number): Buffer {
    if (this.buffered[0]!.length >= n) return this.buffered[0]!.subarray(0, n);
    const joined = Buffer.concat(this.buffered);
    this.buffered = [joined];
    return joined.subarray(0, n);
  }

  private take(n: number): Buffer {
    const joined = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered);
    const rest = joined.subarray(n);
    this.buffered = rest.length > 0 ? [rest] : [];
    this.size -= n;
    return joined.subarray(0, n);
  }
}
