/**
 * What an endpoint of ours writes, read by the independent test peer's decoder
 * (spec-tests/helpers/peer/frames.ts) and checked frame by frame against what RFC 6455 §5 and RFC 7692
 * §6-§7.2.1 require of a sender, in either role: the connection target's output check.
 */
import { isUtf8 } from 'node:buffer';
import { FrameDecoder, OP, isSendableCloseCode, type DecodedFrame } from '../../spec-tests/helpers/peer/frames.js';
import { StrictInflater } from '../../spec-tests/helpers/peer/deflate.js';
import { check } from './target.js';

/** How our compressed messages are to be read back: real DEFLATE, or the stand-in's `Z(...)` form. */
export type OurCompression = { kind: 'zlib'; bits: number; contextTakeover: boolean } | { kind: 'fake' } | null;

export interface OutMessage {
  opcode: number;
  data: Buffer;
}

const FAKE_OPEN = Buffer.from('Z(');
const FAKE_CLOSE = Buffer.from(')');

export class OurFrames {
  /** Complete messages written, in order (compressed ones inflated). */
  readonly messages: OutMessage[] = [];
  /** Pings and pongs written, in order. */
  readonly controls: { opcode: number; payload: Buffer }[] = [];
  /** Our close frame's payload, once written. */
  closeFrame: Buffer | null = null;
  private open: { opcode: number; compressed: boolean; parts: Buffer[] } | null = null;
  private readonly inflater: StrictInflater | null;
  private readonly decoder = new FrameDecoder((frame) => this.frame(frame));

  constructor(
    private readonly role: 'server' | 'client',
    private readonly compression: OurCompression,
  ) {
    this.inflater =
      compression?.kind === 'zlib' ? new StrictInflater(compression.bits, compression.contextTakeover) : null;
  }

  /** Bytes taken from the core in one `takeOutput()`: whole frames only. */
  push(buffers: Buffer[]): void {
    for (const buffer of buffers) this.decoder.push(Buffer.from(buffer));
    check(this.decoder.stopped === null, () => `undecodable output: ${this.decoder.stopped}`);
    check(this.decoder.pending === 0, `takeOutput() returned part of a frame (${this.decoder.pending} bytes)`);
  }

  private frame(frame: DecodedFrame): void {
    const { opcode, payload } = frame;
    // RFC 6455 §5.1, §5.3: a client masks every frame, a server none.
    check(frame.masked === (this.role === 'client'), `a ${this.role} wrote a frame ${frame.masked ? '' : 'un'}masked`);
    check(!frame.rsv2 && !frame.rsv3, 'RSV2 or RSV3 set (§5.2)');
    check([0, 1, 2, 8, 9, 10].includes(opcode), `reserved opcode ${opcode} (§5.2)`);
    // §5.2: "the minimal number of bytes MUST be used to encode the length".
    const length = payload.length;
    check(frame.lengthEncoding !== 16 || length >= 126, `16-bit length for ${length} bytes`);
    check(frame.lengthEncoding !== 64 || length > 0xffff, `64-bit length for ${length} bytes`);
    if (opcode >= 8) {
      check(frame.fin && length <= 125 && !frame.rsv1, 'a fragmented, long or RSV1 control frame (§5.5)');
      if (this.closeFrame !== null) {
        // §5.5.1 forbids data frames after our close; §5.5.2 still asks a pong for a ping (until the
        // peer's close arrives), so a pong is the one frame that may follow.
        check(opcode === OP.PONG, `a ${opcode === OP.CLOSE ? 'second close' : 'ping'} frame after our close frame`);
      }
      if (opcode === OP.CLOSE) {
        check(length !== 1, 'a one-byte close payload (§5.5.1)');
        if (length >= 2) {
          const code = payload.readUInt16BE(0);
          check(isSendableCloseCode(code), `close code ${code} may not be sent (§7.4)`);
          check(isUtf8(payload.subarray(2)), 'a close reason that is not UTF-8 (§5.5.1)');
        }
        this.closeFrame = payload;
      } else this.controls.push({ opcode, payload });
      return;
    }
    check(this.closeFrame === null, 'a data frame after our close frame (§5.5.1)');
    if (opcode === OP.CONT) {
      check(this.open !== null, 'a continuation frame outside a message (§5.4)');
      check(!frame.rsv1, 'RSV1 on a continuation frame (RFC 7692 §6.1)');
    } else {
      check(this.open === null, 'a new message inside a fragmented one (§5.4)');
      check(!frame.rsv1 || this.compression !== null, 'RSV1 without permessage-deflate (RFC 7692 §6)');
      this.open = { opcode, compressed: frame.rsv1, parts: [] };
    }
    const open = this.open!;
    open.parts.push(payload);
    if (!frame.fin) return;
    this.open = null;
    let data: Buffer = Buffer.concat(open.parts);
    if (open.compressed) data = this.decompress(data);
    if (open.opcode === OP.TEXT) check(isUtf8(data), 'a text message that is not UTF-8 (§8.1)');
    this.messages.push({ opcode: open.opcode, data });
  }

  private decompress(data: Buffer): Buffer {
    if (this.inflater === null) {
      const fake =
        data.length >= 3 && data.subarray(0, 2).equals(FAKE_OPEN) && data.subarray(data.length - 1).equals(FAKE_CLOSE);
      check(fake, "a compressed message not in the stand-in compressor's form");
      return data.subarray(2, data.length - 1);
    }
    let inflated: Buffer | null = null;
    let failure = '';
    try {
      // With the window we agreed to use (RFC 7692 §7.1.2) and no more.
      inflated = this.inflater.inflate(data);
    } catch (error) {
      failure = String(error);
    }
    check(inflated !== null, () => `a compressed message does not inflate: ${failure}`);
    return inflated;
  }

  /** Whether a frame is left half written (a stream that ends now would cut it). */
  get inMessage(): boolean {
    return this.open !== null;
  }
}
