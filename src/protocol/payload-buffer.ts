/**
 * Where a message's payload waits while it arrives (the receiver's part of RFC 6455 §5.4
 * reassembly): views into the chunks read from the peer, copied only when the message is complete
 * and came in several pieces.
 */

const EMPTY = Buffer.alloc(0);

/**
 * Views into received chunks, one per message in the common case: a Uint8Array whose prototype
 * chain holds `Buffer.prototype`, so each is a Buffer in every way an application can tell
 * (`Buffer.isBuffer`, `instanceof Buffer`, every Buffer method), which is also how Node makes its
 * own Buffers. Constructing one directly skips `Buffer.from`'s argument checks, and `subarray`'s
 * detour through the deprecated `Buffer` constructor: about half the cost per small message.
 */
export const BufferView = class BufferView extends Uint8Array {} as unknown as new (
  buffer: ArrayBufferLike,
  byteOffset: number,
  length: number,
) => Buffer;
Object.setPrototypeOf(BufferView.prototype, Buffer.prototype);
// As on Node's own: `util.inspect` shows `<Buffer ...>`, and `subarray` and friends make Buffers.
Object.defineProperty(BufferView.prototype, 'constructor', { value: Buffer, writable: true, configurable: true });

/**
 * A view kept while the rest of its message arrives keeps the whole chunk it was read in alive: a
 * 4 KiB fragment read with 60 KiB of pongs would hold 64 KiB (512 KiB on Bun, which reads that much
 * at a time), and a peer could make a message cost many times `maxMessageSize`. A piece that uses
 * less than half of its memory is copied out of it, so a message holds at most twice its length
 * (and the one chunk its first piece came in), whatever the runtime reads at a time.
 */
function pinsMore(piece: Buffer): boolean {
  return piece.buffer.byteLength > 2 * piece.length;
}

/** Pieces shorter than this are copied together rather than kept as views. */
const COALESCE_BELOW = 4096;
const COALESCE_BLOCK = 16 * 1024;

/**
 * The payload of a message (or frame) as it arrives: views into the received chunks, so nothing is
 * copied until the message is complete. A peer that trickles its bytes in tiny TCP segments would
 * make that one Buffer object (and one chunk) per byte, a hundred times the data in memory; so
 * small pieces after the first are copied into shared blocks instead. The common cases (a frame in
 * one chunk, or large chunks) stay zero-copy.
 */
export class PayloadBuffer {
  /** The first piece on its own: a message in one piece (the common case) never touches an array. */
  private first: Buffer | null = null;
  private rest: Buffer[] | null = null;
  length = 0;
  private block: Buffer | null = null;
  private blockStart = 0;
  private blockEnd = 0;

  push(piece: Buffer): void {
    this.length += piece.length;
    if (this.first === null && this.block === null) {
      this.first = piece;
      return;
    }
    if (piece.length >= COALESCE_BELOW) {
      this.seal();
      this.add(pinsMore(piece) ? Buffer.from(piece) : piece);
      return;
    }
    if (this.block === null || this.blockEnd + piece.length > this.block.length) {
      this.seal();
      this.block = Buffer.allocUnsafe(COALESCE_BLOCK);
      this.blockStart = 0;
      this.blockEnd = 0;
    }
    this.block.set(piece, this.blockEnd);
    this.blockEnd += piece.length;
  }

  /**
   * The payload waits for the next read: its first piece, a view, is copied out of the chunk it
   * came in unless it uses half of it or more (see pinsMore), like the pieces after it.
   */
  compact(): void {
    const first = this.first;
    if (first === null || !pinsMore(first)) return;
    const own = Buffer.allocUnsafeSlow(first.length);
    own.set(first);
    this.first = own;
  }

  /** Close the current block, so that what comes next starts a new piece (a frame boundary). */
  seal(): void {
    if (this.block !== null && this.blockEnd > this.blockStart) {
      this.add(this.block.subarray(this.blockStart, this.blockEnd));
      this.blockStart = this.blockEnd;
    }
  }

  /** Pieces so far (after `seal()`). */
  get count(): number {
    return this.first === null ? 0 : 1 + (this.rest === null ? 0 : this.rest.length);
  }

  /** The bytes from piece `from` on, joined (only for tracing). */
  joinFrom(from: number, length: number): Buffer {
    this.seal();
    // Only the pieces asked for: a message in many frames is traced frame by frame, and copying
    // every earlier piece each time would make that quadratic in the number of frames.
    if (from === 0 || this.rest === null) return join(this.pieces().slice(from), length);
    return join(this.rest.slice(from - 1), length);
  }

  /** Everything, joined into one buffer (copied only if it is in several pieces); then empty. */
  take(): Buffer {
    let data: Buffer;
    if (this.block === null && this.rest === null) {
      data = this.first ?? EMPTY;
    } else {
      this.seal();
      data = join(this.pieces(), this.length);
    }
    this.clear();
    return data;
  }

  clear(): void {
    this.first = null;
    this.rest = null;
    this.length = 0;
    this.block = null;
  }

  private add(piece: Buffer): void {
    if (this.first === null) this.first = piece;
    else (this.rest ??= []).push(piece);
  }

  private pieces(): Buffer[] {
    if (this.first === null) return [];
    return this.rest === null ? [this.first] : [this.first, ...this.rest];
  }
}

function join(pieces: Buffer[], length: number): Buffer {
  if (pieces.length === 1) return pieces[0]!;
  if (pieces.length === 0) return EMPTY;
  return Buffer.concat(pieces, length);
}
