import type { Duplex } from 'node:stream';
import { InvalidStateError } from '../protocol/errors.js';
import type { SendCallback } from '../protocol/sender.js';
import { WRITE_COST, ownMemory, waitingWrite } from './write-cost.js';

/**
 * The write loop's mechanics: the bytes a connection took from its core, on their way into the
 * stream, and the progress the write deadline watches. Small output (the replies to one read) goes
 * in one write at once. Output beyond that waits in a backlog and goes to the stream in pieces, a
 * window at a time: each completed write is progress the write deadline can see (the stream API
 * reports nothing finer than a completed write). The window starts small and doubles while the
 * stream takes whole windows at once (a fast peer: fewer, larger writes); the first write that has
 * to wait brings it back to the minimum (a slow peer: progress seen in small steps).
 */

const WRITE_PIECE_BYTES = 64 * 1024;
const WRITE_WINDOW_MIN = 128 * 1024;
const WRITE_WINDOW_MAX = 4 * 1024 * 1024;
/** Up to this many bytes in several pieces are joined into one buffer: one small copy, one system call. */
const WRITE_JOIN_BYTES = 16 * 1024;

/** The write deadline's bookkeeping, made when a write has to wait on the peer. */
interface WriteWatch {
  /** Stream writes completed since the watch began. */
  done: number;
  /** `done` at the last check. */
  checkedDone: number;
  /** The last time the peer took bytes. */
  progressAt: number;
}

/** A piece of output not yet handed to the stream, and the send callbacks due once it is written. */
interface Pending {
  piece: Buffer;
  callbacks: SendCallback[] | null;
}

export class Outbox {
  private watch: WriteWatch | null = null;
  /** Output not yet handed to the stream (see WRITE_PIECE_BYTES). */
  private backlog: Pending[] | null = null;
  private backlogHead = 0;
  private backlogBytes = 0;
  /** The stream is to end once the backlog is written. */
  private endWhenWritten = false;
  private writeWindow = WRITE_WINDOW_MIN;
  private dropped = false;
  /** Stream writes not called back yet (write-cost.ts). */
  private writesWaiting = 0;
  /**
   * Everything handed here so far, each piece weighed as its bytes and its write's cost: what the
   * stream has written is this less what waits (`unwritten + waitingCost`), as output leaves in order.
   */
  private weighed = 0;
  /** Where replies to what was read lie in that order: [start, end) pairs of weights, oldest first. */
  private replies: number[] = [];
  /** Their total weight, written or not, and the first pair not yet known to be written. */
  private repliesWeight = 0;
  private repliesHead = 0;
  /** One callback for every write (the stream calls it without `this`). */
  private readonly onWriteDone = (error?: Error | null): void => this.writeDone(error);

  constructor(
    private readonly stream: Duplex,
    /** Told of every completed write (it looks at whether it may read again, or say 'drain'). */
    private readonly owner: { written(): void },
  ) {}

  /** Bytes not yet written by the stream: the backlog and the stream's own buffer. */
  get unwritten(): number {
    return this.backlogBytes + this.stream.writableLength;
  }

  /**
   * What the output waiting on the peer costs beyond its bytes: each write the stream or the
   * backlog holds (write-cost.ts). Reading pauses on it too, never `bufferedAmount`, which is bytes.
   */
  get waitingCost(): number {
    const backlogged = this.backlog === null ? 0 : this.backlog.length - this.backlogHead;
    return (this.writesWaiting + backlogged) * WRITE_COST;
  }

  /**
   * How much of what waits on the peer replies to what was read (bytes, and each write's cost for
   * its share): reading pauses on this, not on output of the application's own initiative.
   */
  get repliesWaiting(): number {
    if (this.replies.length !== 0) this.forgetWritten();
    return this.repliesWeight;
  }

  /** Drop from `replies` what the stream has written. */
  private forgetWritten(): void {
    const replies = this.replies;
    const written = this.weighed - this.unwritten - this.waitingCost;
    let head = this.repliesHead;
    while (head < replies.length && replies[head + 1]! <= written) {
      this.repliesWeight -= replies[head + 1]! - replies[head]!;
      head += 2;
    }
    if (head === replies.length) {
      replies.length = 0;
      this.repliesHead = 0;
      this.repliesWeight = 0;
      return;
    }
    if (replies[head]! < written) {
      this.repliesWeight -= written - replies[head]!;
      replies[head] = written;
    }
    // Replies mixed with other output, never all written at once: the array is not to grow forever.
    if (head >= 64 && 2 * head >= replies.length) {
      replies.copyWithin(0, head);
      replies.length -= head;
      head = 0;
    }
    this.repliesHead = head;
  }

  /** Bytes wait on the peer. */
  get waiting(): boolean {
    return this.backlog !== null || this.stream.writableLength > 0;
  }

  /**
   * Write `buffers` (taken from the core, in order), then `callbacks` once they are all written;
   * `replyBytes` of them reply to what was read. Returns true when bytes now wait on the peer.
   */
  write(buffers: Buffer[], callbacks: SendCallback[] | null, replyBytes = 0): boolean {
    const stream = this.stream;
    // Nothing more can be written once the stream is going; its 'close' fails the callbacks.
    if (stream.destroyed || stream.writableEnded) return false;
    let total = 0;
    for (const buffer of buffers) total += buffer.length;
    if (this.backlog === null && total <= WRITE_JOIN_BYTES) {
      // The common case (replies to one read, small messages): one write, now.
      const wasIdle = stream.writableLength === 0;
      // Behind a slow peer, this write waits: it must not keep alive more than it holds (write-cost.ts).
      const buffer = !wasIdle
        ? waitingWrite(buffers, total)
        : buffers.length === 1
          ? buffers[0]!
          : Buffer.concat(buffers, total);
      this.writeOne(buffer, callbacks);
      this.weigh(total, 1, replyBytes);
      return stream.writableLength > 0 && this.behind(wasIdle);
    }
    // Large output, or output behind a backlog: in pieces, handed over a window at a time. Views,
    // not copies (unless they would keep far more alive than they hold: write-cost.ts).
    const backlog = (this.backlog ??= []);
    // A backlog that never runs empty (a streamed message) must not grow by its written slots.
    if (this.backlogHead >= 64) {
      backlog.splice(0, this.backlogHead);
      this.backlogHead = 0;
    }
    const before = backlog.length;
    for (const buffer of ownMemory(buffers, total)) {
      for (let at = 0; at < buffer.length; at += WRITE_PIECE_BYTES) {
        const piece =
          at === 0 && buffer.length <= WRITE_PIECE_BYTES ? buffer : buffer.subarray(at, at + WRITE_PIECE_BYTES);
        backlog.push({ piece, callbacks: null });
      }
    }
    if (callbacks !== null) {
      if (backlog.length === 0) backlog.push({ piece: Buffer.alloc(0), callbacks });
      else backlog[backlog.length - 1]!.callbacks = callbacks;
    }
    this.backlogBytes += total;
    this.weigh(total, backlog.length - before, replyBytes);
    return this.pump();
  }

  /**
   * Count output just handed here: `bytes` in `pieces` writes, of which `replyBytes` reply to what
   * was read. Those weigh their share of the whole (where they lie among the rest is not known: they
   * are taken to be last, the latest they can leave).
   */
  private weigh(bytes: number, pieces: number, replyBytes: number): void {
    const weight = bytes + pieces * WRITE_COST;
    this.weighed += weight;
    // Forget what was written, so that replies that never waited keep nothing.
    if (this.replies.length !== 0) this.forgetWritten();
    if (replyBytes === 0) return;
    const share = replyBytes >= bytes ? weight : Math.ceil((weight * replyBytes) / bytes);
    const replies = this.replies;
    const start = this.weighed - share;
    this.repliesWeight += share;
    // Next to the last reply (one read's replies after another's): one pair.
    if (replies.length > this.repliesHead && replies[replies.length - 1] === start)
      replies[replies.length - 1] = this.weighed;
    else replies.push(start, this.weighed);
  }

  /** End the stream once everything handed here is written. */
  end(): void {
    if (this.backlog !== null) this.endWhenWritten = true;
    else if (!this.stream.writableEnded) this.stream.end();
  }

  /**
   * For the write deadline: how long (ms) the peer has taken none of our bytes while some wait on
   * it; 0 when none wait.
   */
  stalledFor(now: number): number {
    const watch = this.watch;
    if (watch === null || !this.waiting) return 0;
    // Progress: a write completed (a piece of at most WRITE_PIECE_BYTES, or a small write).
    if (watch.done !== watch.checkedDone) watch.progressAt = now;
    watch.checkedDone = watch.done;
    return now - watch.progressAt;
  }

  /** The stream closed with output still in the backlog: those sends failed. Nothing is written after. */
  drop(): void {
    this.dropped = true;
    this.replies.length = 0;
    this.repliesHead = 0;
    this.repliesWeight = 0;
    const backlog = this.backlog;
    if (backlog === null) return;
    this.backlog = null;
    this.backlogBytes = 0;
    const error = new InvalidStateError('WebSocket closed before the data was sent');
    for (let i = this.backlogHead; i < backlog.length; i++) {
      const callbacks = backlog[i]!.callbacks;
      if (callbacks !== null) for (const callback of callbacks) process.nextTick(callback, error);
    }
    this.backlogHead = 0;
  }

  /** Hand backlog pieces to the stream while it holds less than a window. Returns whether bytes wait on the peer. */
  private pump(): boolean {
    const stream = this.stream;
    const backlog = this.backlog;
    if (backlog === null || this.dropped || stream.destroyed) return false;
    const wasIdle = stream.writableLength === 0;
    do {
      // Corked, so the pieces of one window leave in one writev.
      stream.cork();
      while (this.backlogHead < backlog.length && stream.writableLength < this.writeWindow) {
        const next = backlog[this.backlogHead]!;
        backlog[this.backlogHead++] = undefined as unknown as Pending;
        this.backlogBytes -= next.piece.length;
        this.writeOne(next.piece, next.callbacks);
      }
      stream.uncork();
      // Taken whole at once: the next window may be larger, and goes now rather than a tick later.
      const taken = stream.writableLength === 0;
      this.writeWindow = taken ? Math.min(this.writeWindow * 2, WRITE_WINDOW_MAX) : WRITE_WINDOW_MIN;
      if (!taken || stream.destroyed) break;
    } while (this.backlogHead < backlog.length);
    if (this.backlogHead === backlog.length) {
      this.backlog = null;
      this.backlogHead = 0;
      if (this.endWhenWritten && !stream.writableEnded) stream.end();
    }
    return this.waiting && this.behind(wasIdle);
  }

  private writeOne(buffer: Buffer, callbacks: SendCallback[] | null): void {
    const stream = this.stream;
    this.writesWaiting++;
    if (callbacks === null) {
      stream.write(buffer, this.onWriteDone);
      return;
    }
    // Node calls back without an error for a write cut short by destroy(): only a write that
    // completed at once, or before the stream was destroyed, counts as sent.
    let handedOver = false;
    stream.write(buffer, (error?: Error | null): void => {
      this.onWriteDone(error);
      const failure =
        error ??
        (handedOver || !stream.destroyed
          ? undefined
          : new InvalidStateError('WebSocket closed before the data was sent'));
      for (const callback of callbacks) callback(failure);
    });
    handedOver = stream.writableLength === 0;
  }

  /** Bytes wait on the peer: the write deadline's watch starts (or goes on). Returns true. */
  private behind(wasIdle: boolean): true {
    const watch = (this.watch ??= { done: 0, checkedDone: 0, progressAt: 0 });
    if (wasIdle || watch.progressAt === 0) watch.progressAt = Date.now();
    return true;
  }

  /** Every completed stream write: progress for the write deadline, the next window. */
  private writeDone(error?: Error | null): void {
    this.writesWaiting--;
    if (this.dropped) return;
    const watch = this.watch;
    if (watch !== null && error == null) watch.done++;
    if (this.backlog !== null) this.pump();
    // Nothing waits on the peer any more: the watch is done.
    if (watch !== null && !this.waiting) this.watch = null;
    this.owner.written();
  }
}
