/**
 * The conformance engine's own wire codec, written from RFC 6455 §5.2 (base framing) and §5.3
 * (masking), independently of the library it may be judging: an encoder that writes whatever
 * header a case asks for (any FIN, RSV and opcode, masked with a chosen key or not, a forced
 * length form) and an incremental decoder that reports each header as soon as it is complete,
 * before any of its payload is buffered, then the whole frame.
 */

/** RFC 6455 §5.2 / §11.8: the opcodes. 0x3-0x7 and 0xB-0xF are reserved. */
export const Op = { Continuation: 0x0, Text: 0x1, Binary: 0x2, Close: 0x8, Ping: 0x9, Pong: 0xa } as const;

/** §5.5: control frames have the high bit of the opcode set. */
export const isControl = (opcode: number): boolean => (opcode & 0x8) !== 0;

const OPCODE_NAMES: Record<number, string> = {
  0x0: 'continuation',
  0x1: 'text',
  0x2: 'binary',
  0x8: 'close',
  0x9: 'ping',
  0xa: 'pong',
};

/** 'text', 'close', ... or 'reserved'. */
export function opcodeName(opcode: number): string {
  return OPCODE_NAMES[opcode] ?? 'reserved';
}

/** §5.2: the payload length is carried in 7 bits, 7+16 bits or 7+64 bits. */
export type LengthForm = 7 | 16 | 64;

/** The shortest length form for a length (§5.2: "the minimal number of bytes MUST be used"). */
export function minimalLengthForm(length: number): LengthForm {
  return length < 126 ? 7 : length <= 0xffff ? 16 : 64;
}

export interface OutgoingFrame {
  opcode: number;
  payload: Buffer;
  /** Default true. */
  fin?: boolean;
  /** RSV1-RSV3 as a 3-bit number (RSV1 = 4, RSV2 = 2, RSV3 = 1), like the header's bits 1-3. */
  rsv?: number;
  /** A 4-byte masking key: the MASK bit is set and the payload masked with it (§5.3). Null: unmasked. */
  mask: Buffer | null;
}

/**
 * §5.3: octet i of the payload is XORed with octet i MOD 4 of the key; `offset` continues a frame.
 * Into `out` at `at` when given (the bytes of a whole frame are built in one buffer), else a new buffer.
 */
export function applyMask(data: Buffer, key: Buffer, offset = 0, out?: Buffer, at = 0): Buffer {
  const target = out ?? Buffer.allocUnsafe(data.length);
  const base = out === undefined ? 0 : at;
  const keys = [key[0]!, key[1]!, key[2]!, key[3]!];
  let i = 0;
  // Byte by byte until the key phase is 0, then four at a time.
  for (; i < data.length && (offset + i) % 4 !== 0; i++) target[base + i] = data[i]! ^ keys[(offset + i) % 4]!;
  const word = ((keys[0]! << 24) | (keys[1]! << 16) | (keys[2]! << 8) | keys[3]!) >>> 0;
  for (; i + 4 <= data.length; i += 4) target.writeUInt32BE((data.readUInt32BE(i) ^ word) >>> 0, base + i);
  for (; i < data.length; i++) target[base + i] = data[i]! ^ keys[(offset + i) % 4]!;
  return target;
}

/** The header of a frame (§5.2), for a payload of `length` bytes. */
export function encodeHeader(frame: Omit<OutgoingFrame, 'payload'>, length: number): Buffer {
  const form = minimalLengthForm(length);
  const extra = form === 7 ? 0 : form === 16 ? 2 : 8;
  const header = Buffer.alloc(2 + extra + (frame.mask === null ? 0 : 4));
  header[0] = (frame.fin === false ? 0 : 0x80) | (((frame.rsv ?? 0) & 0x7) << 4) | (frame.opcode & 0x0f);
  header[1] = (frame.mask === null ? 0 : 0x80) | (form === 7 ? length : form === 16 ? 126 : 127);
  if (form === 16) header.writeUInt16BE(length, 2);
  else if (form === 64) header.writeBigUInt64BE(BigInt(length), 2);
  if (frame.mask !== null) frame.mask.copy(header, 2 + extra);
  return header;
}

/** One frame as bytes: header, then the payload (masked when a key is given). */
export function encodeFrame(frame: OutgoingFrame): Buffer {
  const header = encodeHeader(frame, frame.payload.length);
  const payload = frame.mask === null ? frame.payload : applyMask(frame.payload, frame.mask);
  return Buffer.concat([header, payload]);
}

/** A frame header as it came off the wire. */
export interface FrameHeader {
  fin: boolean;
  /** RSV1-RSV3 as a 3-bit number (RSV1 = 4). */
  rsv: number;
  opcode: number;
  maskKey: Buffer | null;
  /** The payload length the header declares (a 64-bit length above 2^53 is reported as Infinity). */
  length: number;
  /** Which form carried the length, and whether that form was the shortest one (§5.2). */
  lengthForm: LengthForm;
  minimalLength: boolean;
  /** §5.2: with the 64-bit form, "the most significant bit MUST be 0". */
  highBitSet: boolean;
  /** The header's bytes as they were on the wire. */
  bytes: Buffer;
}

export type DecoderEvent =
  /** A complete header, before any of its payload is buffered. */
  | { kind: 'header'; header: FrameHeader }
  /** The whole frame, the payload unmasked. */
  | { kind: 'frame'; header: FrameHeader; payload: Buffer };

/**
 * An incremental frame decoder: feed it bytes in chunks of any size with `push`, and pull events
 * with `next` when ready for them (a frame's header first, then, once all its payload is there,
 * the frame). Nothing is decoded until asked for, so the reader decides the pace.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private header: FrameHeader | null = null;
  private stopped = false;

  /** Bytes received and not yet decoded. */
  get pending(): number {
    return this.buffered;
  }

  /** Stop decoding: what is buffered is dropped and nothing more is reported. */
  stop(): void {
    this.stopped = true;
    this.chunks = [];
    this.buffered = 0;
  }

  push(chunk: Buffer): void {
    if (this.stopped || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next event, or null until more bytes arrive. */
  next(): DecoderEvent | null {
    if (this.stopped) return null;
    if (this.header === null) {
      const header = this.readHeader();
      if (header === null) return null;
      this.header = header;
      return { kind: 'header', header };
    }
    const header = this.header;
    if (this.buffered < header.length) return null;
    const payload = this.take(header.length);
    this.header = null;
    return { kind: 'frame', header, payload: header.maskKey === null ? payload : applyMask(payload, header.maskKey) };
  }

  /** The next header, consumed from the buffer, or null while it is incomplete. */
  private readHeader(): FrameHeader | null {
    if (this.buffered < 2) return null;
    const start = this.peek(Math.min(this.buffered, 14));
    const b0 = start[0]!;
    const b1 = start[1]!;
    const masked = (b1 & 0x80) !== 0;
    const len7 = b1 & 0x7f;
    const lengthForm: LengthForm = len7 < 126 ? 7 : len7 === 126 ? 16 : 64;
    const extra = lengthForm === 7 ? 0 : lengthForm === 16 ? 2 : 8;
    const size = 2 + extra + (masked ? 4 : 0);
    if (this.buffered < size) return null;
    let length: number;
    let highBitSet = false;
    if (lengthForm === 7) length = len7;
    else if (lengthForm === 16) length = start.readUInt16BE(2);
    else {
      const big = start.readBigUInt64BE(2);
      highBitSet = big >> 63n === 1n;
      length = big > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(big);
    }
    const bytes = this.take(size);
    return {
      fin: (b0 & 0x80) !== 0,
      rsv: (b0 >> 4) & 0x7,
      opcode: b0 & 0x0f,
      maskKey: masked ? Buffer.from(bytes.subarray(2 + extra, size)) : null,
      length,
      lengthForm,
      minimalLength: lengthForm === minimalLengthForm(length),
      highBitSet,
      bytes,
    };
  }

  /** The first `n` buffered bytes, without consuming them. */
  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!.subarray(0, n);
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined.subarray(0, n);
  }

  /** Consume `n` bytes (n <= buffered). */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return out;
    }
    const parts: Buffer[] = [];
    let needed = n;
    while (needed > 0) {
      const chunk = this.chunks[0]!;
      if (chunk.length <= needed) {
        parts.push(chunk);
        needed -= chunk.length;
        this.chunks.shift();
      } else {
        parts.push(chunk.subarray(0, needed));
        this.chunks[0] = chunk.subarray(needed);
        needed = 0;
      }
    }
    return Buffer.concat(parts, n);
  }
}

/** §5.5.1: a close payload is empty, or a 2-byte code in network byte order and a UTF-8 reason. */
export function closePayload(code: number | null, reason: Buffer | null): Buffer {
  if (code === null) return reason ?? Buffer.alloc(0);
  const head = Buffer.alloc(2);
  head.writeUInt16BE(code & 0xffff);
  return reason === null ? head : Buffer.concat([head, reason]);
}
