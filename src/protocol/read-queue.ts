import { BufferView } from './payload-buffer.js';

/**
 * The receiver's unread input (src/protocol/receiver.ts extends this): the chunks read from the
 * peer, in order, never concatenated into a growing buffer. Header fields come out as a few bytes
 * (copied only when they straddle two chunks), payloads as views into the chunks, so a frame that
 * arrived in one chunk is never copied.
 */

/**
 * Header fields that straddle two chunks are copied here (at most 8 bytes at a time). One for all
 * receivers: what `take()` copies is read at once, before any other receiver runs. (Its own memory,
 * not a slice of Node's Buffer pool, which would keep a whole 8 KiB slab alive.)
 */
const SCRATCH = Buffer.allocUnsafeSlow(8);

export class ReadQueue {
  // Unread input: chunks[head] from `offset` on, then the rest of the chunks.
  private chunks: Buffer[] = [];
  private head = 0;
  private offset = 0;
  /** Bytes unread. */
  protected queued = 0;
  /** Where the bytes returned by the last `take()` start. */
  protected takenAt = 0;

  protected append(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.queued += chunk.length;
  }

  /**
   * Consume `n` (at most 8) header bytes. Returns the buffer holding them, starting at
   * `this.takenAt`: the current chunk when they are all in it, the scratch buffer otherwise.
   */
  protected take(n: number): Buffer {
    const chunk = this.chunks[this.head]!;
    if (chunk.length - this.offset >= n) {
      this.takenAt = this.offset;
      this.skip(n);
      return chunk;
    }
    for (let i = 0; i < n; i++) {
      const current = this.chunks[this.head]!;
      SCRATCH[i] = current[this.offset]!;
      this.skip(1);
    }
    this.takenAt = 0;
    return SCRATCH;
  }

  /** The byte `i` places into the unread input (there must be more than `i` bytes queued), not consumed. */
  protected peek(i: number): number {
    let index = this.head;
    let at = this.offset + i;
    let chunk = this.chunks[index]!;
    while (at >= chunk.length) {
      at -= chunk.length;
      chunk = this.chunks[++index]!;
    }
    return chunk[at]!;
  }

  /**
   * The payload length of the frame at the front of the input if all of it has arrived, else -1
   * (RFC 6455 §5.2: a 7-bit length, or 126 and 16 bits, or 127 and 64 bits; then a mask key if the
   * mask bit is set). Nothing is consumed.
   */
  protected wholeFrameQueued(): number {
    const queued = this.queued;
    if (queued < 2) return -1;
    const second = this.peek(1);
    let length = second & 0x7f;
    let size = (second & 0x80) !== 0 ? 6 : 2;
    if (length === 126) {
      if (queued < 4) return -1;
      length = (this.peek(2) << 8) | this.peek(3);
      size += 2;
    } else if (length === 127) {
      if (queued < 10) return -1;
      // A length that needs more than 32 bits has not arrived whole.
      if ((this.peek(2) | this.peek(3) | this.peek(4) | this.peek(5)) !== 0) return -1;
      length = ((this.peek(6) << 24) | (this.peek(7) << 16) | (this.peek(8) << 8) | this.peek(9)) >>> 0;
      size += 8;
    }
    return queued - size < length ? -1 : length;
  }

  /** Consume up to `max` bytes of the current chunk (at least one byte must be queued), as a view of it. */
  protected view(max: number): Buffer {
    const chunk = this.chunks[this.head]!;
    const start = this.offset;
    const available = chunk.length - start;
    const n = available < max ? available : max;
    const piece = start === 0 && n === chunk.length ? chunk : new BufferView(chunk.buffer, chunk.byteOffset + start, n);
    this.skip(n);
    return piece;
  }

  /** Advance past `n` bytes of the current chunk (never more than it holds). */
  private skip(n: number): void {
    this.queued -= n;
    this.offset += n;
    if (this.offset === this.chunks[this.head]!.length) {
      this.offset = 0;
      if (++this.head === this.chunks.length) {
        this.chunks.length = 0;
        this.head = 0;
      } else {
        // Let go of the chunk just used up now, not when the input is: while every chunk ends
        // inside a frame header (as with a flood of 6-byte pings read 64 KiB at a time, or as a
        // peer can arrange), or a streamed message is parsed a piece at a time while more keeps
        // coming, the input is never used up and each chunk read would stay alive.
        this.chunks.shift();
        this.head = 0;
      }
    }
  }

  /** Replace the unread input (a few header bytes) by a copy in memory of its own. */
  protected keepOnlyLeftover(): void {
    const leftover = Buffer.allocUnsafeSlow(this.queued);
    let at = 0;
    for (let i = this.head; i < this.chunks.length; i++) {
      const chunk = this.chunks[i]!;
      at += chunk.copy(leftover, at, i === this.head ? this.offset : 0);
    }
    this.chunks = [leftover];
    this.head = 0;
    this.offset = 0;
  }

  protected dropInput(): void {
    this.chunks = [];
    this.head = 0;
    this.offset = 0;
    this.queued = 0;
  }
}
