import { randomFillSync } from 'node:crypto';
import { isControlOpcode, MAX_CONTROL_PAYLOAD, Opcode } from './constants.js';
import { frameHeaderSize, writeFrame, writeFrameHeader } from './frame.js';

/**
 * The frame writer: messages in, wire bytes out, no socket. A connection queues its frames in a
 * FrameQueue, and its write loop hands them to the socket in one go.
 */

/**
 * RFC 6455 §5.3: "The masking key needs to be unpredictable; thus, the masking key MUST be derived
 * from a strong source of entropy", fresh for every frame. Drawing 4 random bytes per frame costs a
 * call into OpenSSL each time, so keys are taken from a pool refilled 1024 keys at a time.
 */
export class MaskKeySource {
  private pool = Buffer.allocUnsafe(0);
  private offset = 0;
  private readonly poolSize: number;
  /** The key handed out, reused: callers copy it into the frame before asking for the next one. */
  private readonly key = new Uint8Array(4);

  constructor(poolSize = 4096) {
    // Whole keys only: a pool that ended mid-key would hand out a short key.
    this.poolSize = Math.max(4, Math.ceil(poolSize / 4) * 4);
  }

  /**
   * Four fresh random bytes, valid until the next call (the same array is refilled each time,
   * which is cheaper than a view per frame). Each random byte is used once.
   */
  next(): Uint8Array {
    let offset = this.offset;
    if (offset + 4 > this.pool.length) {
      this.pool = Buffer.allocUnsafeSlow(this.poolSize);
      randomFillSync(this.pool);
      offset = 0;
    }
    const pool = this.pool;
    const key = this.key;
    key[0] = pool[offset]!;
    key[1] = pool[offset + 1]!;
    key[2] = pool[offset + 2]!;
    key[3] = pool[offset + 3]!;
    this.offset = offset + 4;
    return key;
  }
}

/**
 * Payloads up to this size are copied behind their header (small frames end up side by side, ready
 * for one write); larger ones are written as they are, after a separate header, never copied
 * (unless they must be masked: an application's buffer is never modified).
 */
export const COPY_PAYLOAD_MAX = 4 * 1024;

/**
 * Small frames and headers are written into one process-wide slab at a time, the way Node's own
 * Buffer pool works: a region once handed out is never written again, and a full slab is replaced
 * (the old one lives as long as views of it do, until the socket has written them). Connections
 * take turns, since JavaScript runs one thing at a time; a connection whose frames are contiguous
 * (all the replies to one incoming chunk, say) hands the socket a single buffer.
 */
const SLAB_SIZE = 64 * 1024;
let slab: Buffer | null = null;
let slabUsed = SLAB_SIZE;
// The slab's ArrayBuffer and offset, read once: views made from them are cheaper than subarray().
const NO_MEMORY = new ArrayBuffer(0);
let slabMemory: ArrayBufferLike = NO_MEMORY;
let slabBase = 0;

/**
 * The frames one connection has queued and not yet handed to its socket: messages, control
 * frames and already-framed bytes in, a short list of buffers out (`take()`).
 */
export class FrameQueue {
  /** Bytes queued. */
  length = 0;
  private segments: Buffer[] = [];
  /** The run of slab bytes being extended (runSlab), as [runStart, runEnd) of its memory. */
  private runSlab: Buffer | null = null;
  private runMemory: ArrayBufferLike = slabMemory;
  /** Byte offsets of the run in runMemory. */
  private runStart = 0;
  private runEnd = 0;

  /**
   * `maskKeys` set means client frames (masked, RFC 6455 §5.3). `separateFrames` gives each frame
   * its own buffer (for callers that look at frames one by one) instead of joining neighbours.
   */
  constructor(
    private readonly maskKeys: MaskKeySource | null,
    private readonly separateFrames = false,
  ) {}

  /** One frame. Returns the number of bytes queued. */
  frame(opcode: number, payload: Uint8Array, fin: boolean, rsv1: boolean): number {
    const length = payload.length;
    const maskKey = this.maskKeys === null ? null : this.maskKeys.next();
    const headerSize = frameHeaderSize(length, maskKey !== null);
    const total = headerSize + length;
    if (length <= COPY_PAYLOAD_MAX) {
      const at = this.reserve(total);
      writeFrame(this.runSlab!, at, opcode, payload, fin, rsv1, maskKey);
    } else if (maskKey !== null) {
      const frame = Buffer.allocUnsafe(total);
      writeFrame(frame, 0, opcode, payload, fin, rsv1, maskKey);
      this.push(frame);
    } else {
      const at = this.reserve(headerSize);
      writeFrameHeader(this.runSlab!, at, opcode, length, fin, rsv1, null);
      this.push(toBuffer(payload));
    }
    if (this.separateFrames) this.seal();
    this.length += total;
    return total;
  }

  /**
   * A whole message, split into frames of at most `fragmentSize` payload bytes when that is set
   * (RFC 6455 §5.4: the first frame carries the opcode and RSV1, the rest are continuations, the
   * last has FIN). Returns the number of bytes queued.
   */
  message(opcode: number, payload: Uint8Array, rsv1: boolean, fragmentSize = 0): number {
    return this.fragment(opcode, payload, true, rsv1, fragmentSize);
  }

  /**
   * A fragment of a message (a streamed message's piece), as `message()` frames a whole one: split
   * into frames of at most `fragmentSize` bytes, `opcode` and RSV1 on the first, FIN on the last
   * when `fin`. (For a piece after the first, the opcode is Continuation and RSV1 unset.)
   */
  fragment(opcode: number, payload: Uint8Array, fin: boolean, rsv1: boolean, fragmentSize = 0): number {
    if (fragmentSize <= 0 || payload.length <= fragmentSize) return this.frame(opcode, payload, fin, rsv1);
    let queued = 0;
    for (let start = 0; start < payload.length; start += fragmentSize) {
      const end = Math.min(start + fragmentSize, payload.length);
      const first = start === 0;
      queued += this.frame(
        first ? opcode : Opcode.Continuation,
        payload.subarray(start, end),
        fin && end === payload.length,
        first && rsv1,
      );
    }
    return queued;
  }

  /** A control frame (RFC 6455 §5.5): never fragmented, payload at most 125 bytes. */
  control(opcode: number, payload: Uint8Array): number {
    if (!isControlOpcode(opcode)) throw new TypeError(`opcode ${opcode} is not a control opcode`);
    if (payload.length > MAX_CONTROL_PAYLOAD) {
      throw new RangeError(
        `control frame payload is ${payload.length} bytes; at most ${MAX_CONTROL_PAYLOAD} (RFC 6455 §5.5)`,
      );
    }
    return this.frame(opcode, payload, true, false);
  }

  /** Bytes framed elsewhere (a broadcast frames a message once for every connection). */
  framed(bytes: Buffer): void {
    this.push(bytes);
    this.length += bytes.length;
  }

  /** Everything queued, in order, as few buffers as possible; the queue is empty afterwards. */
  take(): Buffer[] {
    this.seal();
    const segments = this.segments;
    this.segments = [];
    this.length = 0;
    return segments;
  }

  /** Forget everything queued. */
  clear(): void {
    this.segments = [];
    this.runSlab = null;
    this.runMemory = NO_MEMORY;
    this.length = 0;
  }

  /** `size` contiguous slab bytes, continuing this queue's run when nobody wrote in between. */
  private reserve(size: number): number {
    if (slab === null || slabUsed + size > SLAB_SIZE) {
      slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
      slabMemory = slab.buffer;
      slabBase = slab.byteOffset;
      slabUsed = 0;
    }
    if (this.runSlab !== slab || this.runEnd !== slabBase + slabUsed) {
      this.seal();
      this.runSlab = slab;
      this.runMemory = slabMemory;
      this.runStart = slabBase + slabUsed;
    }
    const at = slabUsed;
    slabUsed += size;
    this.runEnd = slabBase + slabUsed;
    return at;
  }

  private push(buffer: Buffer): void {
    this.seal();
    this.segments.push(buffer);
  }

  private seal(): void {
    if (this.runSlab !== null) {
      if (this.runEnd > this.runStart)
        this.segments.push(Buffer.from(this.runMemory, this.runStart, this.runEnd - this.runStart));
      // Hold no slab once the run is handed out: an idle connection must not keep 64 KiB alive.
      this.runSlab = null;
      this.runMemory = NO_MEMORY;
    }
  }
}

export function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
