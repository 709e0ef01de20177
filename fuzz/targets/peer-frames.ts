/**
 * What a peer sends, built from the fuzzer's bytes with the independent test peer's encoder
 * (spec-tests/helpers/peer/frames.ts) and zlib driven here (RFC 7692 §7.2.1), for the receiver and
 * connection targets. Mutating raw frames blindly rarely gets past a mask key or a DEFLATE stream;
 * built frames are valid where the fuzzer does not say otherwise, so it reaches deep states (a
 * compressed message in fragments with a ping between them, a context carried over three messages)
 * and breaks one rule at a time there. Raw bytes stay one of the choices.
 */
import { constants as zc, deflateRawSync } from 'node:zlib';
import { closePayload, encodeFrame, OP } from '../../spec-tests/helpers/peer/frames.js';
import { deflatePayload } from '../../spec-tests/helpers/peer/deflate.js';
import type { InputReader } from './target.js';

/** How the peer compresses: the window and context it agreed to (RFC 7692 §7.1.1, §7.1.2). */
export interface PeerDeflate {
  bits: number;
  contextTakeover: boolean;
}

const MAX_WIRE = 64 * 1024;
const CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1011, 1013, 3000, 4999, 999, 1004, 1005, 1006, 1015, 2000];
/** Texts whose UTF-8 has sequences of every length, to be cut anywhere. */
const TEXTS = ['Hello', 'κόσμε', '€uro ✓', '𝄞 clef', 'a\u0000b', 'ÿþ', '日本語のテキスト'];

/** The peer's frames, in order, with the LZ77 history a context-keeping compressor refers back into. */
export class PeerFrames {
  private readonly out: Buffer[] = [];
  private history = Buffer.alloc(0);
  private keys = 0;
  /** Bytes of plaintext the program may still make (zlib's time, and the oracle's, grow with it). */
  private plaintextLeft = 512 * 1024;
  /** Bytes on the wire so far: a program stops at 64 KiB, the most the fuzzer's own inputs may hold. */
  private wire = 0;
  /** Messages sent complete, as sent (the compressed ones before compression). */
  readonly sent: { opcode: number; data: Buffer }[] = [];

  constructor(
    /** The role of the endpoint receiving: a server gets masked frames (RFC 6455 §5.1). */
    private readonly to: 'server' | 'client',
    private readonly deflate: PeerDeflate | null,
  ) {}

  get bytes(): Buffer {
    return Buffer.concat(this.out);
  }

  /** Take what was built so far (for a caller that sends it in steps). */
  take(): Buffer {
    const bytes = Buffer.concat(this.out);
    this.out.length = 0;
    return bytes;
  }

  private key(): Buffer | null {
    if (this.to === 'client') return null;
    const n = Math.imul(++this.keys, 0x9e3779b1) >>> 0;
    return Buffer.from([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, (n & 0xff) | 1]);
  }

  frame(spec: { opcode: number; payload?: Buffer; fin?: boolean; rsv1?: boolean; lengthEncoding?: 7 | 16 | 64 }): void {
    this.raw(encodeFrame({ ...spec, maskKey: this.key() }));
  }

  raw(bytes: Buffer): void {
    this.out.push(bytes);
    this.wire += bytes.length;
  }

  /** Bytes the wire may still take. */
  private get wireLeft(): number {
    return Math.max(0, MAX_WIRE - this.wire);
  }

  /** Whether the program may go on (the wire is not full). */
  get open(): boolean {
    return this.wire < MAX_WIRE;
  }

  /** A message in `fragments` frames (RFC 6455 §5.4), compressed first when `compress` (§7.2.1). */
  message(opcode: number, data: Buffer, fragments: number, compress: boolean, final = false, wideWindow = false): void {
    let payload = data;
    if (compress && this.deflate !== null) payload = this.compress(data, final, wideWindow);
    const size = Math.ceil(payload.length / Math.max(1, fragments));
    for (let i = 0, at = 0; i < fragments; i++, at += size) {
      const last = i === fragments - 1;
      this.frame({
        opcode: i === 0 ? opcode : OP.CONT,
        payload: payload.subarray(at, last ? payload.length : at + size),
        fin: last,
        rsv1: i === 0 && compress && this.deflate !== null,
      });
    }
    this.sent.push({ opcode, data });
  }

  /**
   * RFC 7692 §7.2.1: DEFLATE with a sync flush, its tail removed; or (`final`, §7.2.3.4) a stream
   * ended by a block with BFINAL set. With context takeover, earlier messages are the dictionary.
   * `wideWindow` compresses with 15 bits whatever was agreed: a peer breaking its agreement.
   */
  private compress(data: Buffer, final: boolean, wideWindow: boolean): Buffer {
    const { bits, contextTakeover } = this.deflate!;
    const windowBits = wideWindow ? 15 : Math.max(bits, 9);
    const dictionary = contextTakeover && this.history.length > 0 ? this.history : undefined;
    const compressed = final
      ? deflateRawSync(data, { windowBits, finishFlush: zc.Z_FINISH, ...(dictionary ? { dictionary } : {}) })
      : deflatePayload(data, { windowBits, ...(dictionary ? { dictionary } : {}) });
    if (contextTakeover) {
      const joined = Buffer.concat([this.history, data]);
      this.history = joined.subarray(Math.max(0, joined.length - (1 << (wideWindow ? 15 : bits))));
    }
    return compressed;
  }

  /**
   * One step of the fuzzer's program: a frame, a message, control frames, raw bytes, a header with
   * any bits. Reads its parameters and payload from `reader`.
   */
  step(reader: InputReader): void {
    const op = reader.byte();
    const flags = reader.byte();
    switch (op % 8) {
      case 0:
      case 1: {
        // A data frame; the fuzzer picks its opcode, FIN, RSV1 and length encoding.
        const opcode = [OP.TEXT, OP.BINARY, OP.CONT][flags % 3]!;
        const encoding = ([undefined, undefined, 16, 64] as const)[(flags >> 4) & 3];
        this.frame({
          opcode,
          payload: reader.bytes(reader.byte()),
          fin: (flags & 4) !== 0,
          rsv1: (flags & 8) !== 0,
          ...(encoding === undefined ? {} : { lengthEncoding: encoding }),
        });
        break;
      }
      case 2: {
        // A ping, pong or close; now and then longer than §5.5 allows.
        const opcode = [OP.PING, OP.PONG, OP.CLOSE][flags % 3]!;
        let payload = reader.bytes(reader.byte() % 130);
        if (opcode === OP.CLOSE && (flags & 4) !== 0) {
          payload = closePayload(CLOSE_CODES[(flags >> 3) % CLOSE_CODES.length]!, payload.subarray(0, 123));
        }
        this.frame({ opcode, payload, fin: (flags & 0x80) === 0 || (flags & 0x40) === 0 });
        break;
      }
      case 3: {
        // A message, compressed when agreed and asked: its plaintext a piece of the input, repeated.
        const repeat = 1 + (reader.byte() % 64) * ((flags & 0x20) !== 0 ? 64 : 1);
        const piece = reader.bytes(reader.byte());
        const compress = (flags & 8) === 0 && this.deflate !== null;
        const size = Math.min(piece.length * repeat, compress ? 128 * 1024 : this.wireLeft, this.plaintextLeft);
        this.plaintextLeft -= size;
        const data = Buffer.alloc(size);
        for (let at = 0; at < data.length; at += piece.length) piece.copy(data, at);
        const opcode = (flags & 1) === 0 ? OP.TEXT : OP.BINARY;
        this.message(opcode, data, 1 + ((flags >> 1) & 3), compress, (flags & 0x40) !== 0, flags >= 0xf0);
        break;
      }
      case 4:
        this.raw(reader.bytes(reader.byte()));
        break;
      case 5: {
        // A text whose UTF-8 is cut across frames at a byte the fuzzer picks (maybe inside a sequence).
        const text = Buffer.from(TEXTS[flags % TEXTS.length]!);
        const cut = reader.byte() % (text.length + 1);
        this.frame({ opcode: OP.TEXT, payload: text.subarray(0, cut), fin: false });
        this.frame({ opcode: OP.CONT, payload: text.subarray(cut), fin: (flags & 0x80) === 0 });
        break;
      }
      case 6: {
        // A header with any first byte (opcode, FIN, RSV bits): whatever the fuzzer says.
        const payload = reader.bytes(reader.byte() % 140);
        const frame = encodeFrame({ opcode: flags & 0x0f, payload, maskKey: this.key() });
        frame[0] = flags;
        this.raw(frame);
        break;
      }
      case 7: {
        // A large binary message, in fragments: the limits' territory.
        const size = Math.min((reader.byte() << 8) | reader.byte(), this.plaintextLeft, this.wireLeft);
        this.plaintextLeft -= size;
        const data = Buffer.alloc(size, flags);
        this.message(OP.BINARY, data, 1 + (flags % 4), (flags & 0x10) !== 0);
        break;
      }
    }
  }
}

/** Frames from a whole program of steps. */
export function buildFrames(reader: InputReader, to: 'server' | 'client', deflate: PeerDeflate | null): PeerFrames {
  const frames = new PeerFrames(to, deflate);
  while (!reader.done && frames.open) frames.step(reader);
  return frames;
}
