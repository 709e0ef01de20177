import {
  constants as zlibConstants,
  createDeflateRaw,
  createInflateRaw,
  type DeflateRaw,
  type InflateRaw,
  deflateRawSync,
  type ZlibOptions,
} from 'node:zlib';
import {
  DEFLATE_DEFAULTS,
  DEFLATE_TAIL,
  type DeflateParams,
  type PerMessageDeflateOptions,
} from '../protocol/permessage-deflate.js';

/**
 * permessage-deflate's DEFLATE (RFC 7692 §7.2) on node:zlib's raw streams: the jobs the protocol
 * core hands its driver (`takeInflateJob()`, `takeDeflateJob()`), run here. zlib runs on the thread
 * pool, so every job calls back later; the core's receiver waits for each inflation and its sender
 * stages messages behind each compression, so order holds. Every zlib job of the process goes
 * through one limiter, so thousands of connections cannot flood the thread pool or allocate
 * thousands of zlib states at once.
 */

/** Concurrent zlib jobs per process (ws uses the same number). */
export const ZLIB_CONCURRENCY = 10;

/**
 * zlib cannot deflate with a 256-byte window (since 1.2.9 it refuses 8 for raw streams, and turned
 * it into 9 before that); 9 is the smallest it can inflate with too.
 */
const ZLIB_MIN_WINDOW_BITS = 9;

// ---------------------------------------------------------------------------------------------
// The zlib job limiter
// ---------------------------------------------------------------------------------------------

type Job = (release: () => void) => void;

/** Runs at most `concurrency` jobs at once, the rest in arrival order. */
export class JobLimiter {
  private running = 0;
  private readonly queue: Job[] = [];
  private head = 0;

  constructor(private readonly concurrency: number) {}

  run(job: Job): void {
    this.queue.push(job);
    this.next();
  }

  get waiting(): number {
    return this.queue.length - this.head;
  }

  get active(): number {
    return this.running;
  }

  private next(): void {
    while (this.running < this.concurrency && this.head < this.queue.length) {
      const job = this.queue[this.head]!;
      this.queue[this.head++] = undefined as unknown as Job;
      if (this.head === this.queue.length) {
        this.queue.length = 0;
        this.head = 0;
      }
      this.running++;
      let released = false;
      job(() => {
        if (released) return;
        released = true;
        this.running--;
        this.next();
      });
    }
  }
}

export const zlibLimiter = new JobLimiter(ZLIB_CONCURRENCY);

// ---------------------------------------------------------------------------------------------
// Compression and decompression (RFC 7692 §7.2)
// ---------------------------------------------------------------------------------------------

/** §7.2.1 / §7.2.2: the empty stored block a sync flush ends with, stripped on send, put back on receive. */
const TAIL = Buffer.from(DEFLATE_TAIL);

/**
 * The payload and the tail in one buffer, so zlib gets one job per message. Its own memory rather
 * than a slice of Node's Buffer pool: a pool slab lives as long as any slice of it does.
 */
function withTail(payload: Buffer): Buffer {
  const joined = Buffer.allocUnsafeSlow(payload.length + TAIL.length);
  joined.set(payload, 0);
  joined.set(TAIL, payload.length);
  return joined;
}

/** §7.2.1: a compressed message as sent, without the tail its sync flush ended with. */
function withoutTail(data: Buffer): Buffer {
  const end = data.length - TAIL.length;
  return end >= 0 && data.subarray(end).equals(TAIL) ? data.subarray(0, end) : data;
}

/** zlib's options for compressing with a window of `bits` (RFC 7692 §7.1.2) and the server's settings. */
function deflaterOptions(bits: number, options: PerMessageDeflateOptions): ZlibOptions {
  return {
    level: options.level ?? DEFLATE_DEFAULTS.level,
    memLevel: options.memLevel ?? DEFLATE_DEFAULTS.memLevel,
    // zlib cannot compress with a 256-byte window, but it never refers further back than its
    // window less 262 bytes (the lookahead it keeps: a longest match of 258 and 4 more), so with
    // 9 bits at most 250 bytes back: within the 256 bytes a peer that agreed to 8 keeps.
    windowBits: Math.max(bits, ZLIB_MIN_WINDOW_BITS),
  };
}

/**
 * One message compressed on its own, from an empty window (what a peer that agreed to no context
 * takeover on our side can take, whoever else gets the same bytes: a publication to many), at once
 * and on this thread. Null if zlib fails.
 */
export function deflateMessageOnce(payload: Buffer, bits: number, options: PerMessageDeflateOptions): Buffer | null {
  // §7.2.3.6: an empty message is the one byte of an empty stored block's header.
  if (payload.length === 0) return Buffer.from([0x00]);
  try {
    return withoutTail(
      deflateRawSync(payload, { ...deflaterOptions(bits, options), finishFlush: zlibConstants.Z_SYNC_FLUSH }),
    );
  } catch {
    return null;
  }
}

/** An inflation job's hold on the limiter (see PerMessageDeflate.inflateSlot). */
interface InflateSlot {
  release: (() => void) | null;
  proceed: () => void;
}

/**
 * One connection's compression state. zlib streams are made on first use (a connection that never
 * sends or receives a compressed message holds no zlib memory), reset after every message without
 * context takeover, and released when the connection closes.
 */
export class PerMessageDeflate {
  readonly threshold: number;
  private inflater: InflateRaw | null = null;
  private deflater: DeflateRaw | null = null;
  private inflateSink: ((chunk: Buffer) => void) | null = null;
  private inflateError: ((error: Error) => void) | null = null;
  private deflateChunks: Buffer[] = [];
  private finishInflate: (() => void) | null = null;
  /** The job's input is inflated, but output waits in the paused inflater: end the job once it is out. */
  private inflateFinish: (() => void) | null = null;
  /**
   * The inflation job in flight: its limiter slot's release (null while it holds none: paused, or
   * waiting for one), and how to go on once it has one again.
   */
  private inflateSlot: InflateSlot | null = null;
  /** The owner cannot take inflated output now (`pauseInflate()`). */
  private inflatePaused = false;
  private finishDeflate: (() => void) | null = null;
  private closed = false;

  constructor(
    readonly params: DeflateParams,
    private readonly options: PerMessageDeflateOptions = {},
  ) {
    this.threshold = options.threshold ?? DEFLATE_DEFAULTS.threshold;
  }

  /**
   * RFC 7692 §7.2.2: inflate one frame's payload (appending the tail on the message's last frame),
   * as one zlib job, however many TCP chunks it came in. Calls `onData` with each piece of output in
   * order (it returns false to stop: the rest is not inflated, and the zlib state is dropped), then
   * `done` once, with zlib's error if the data did not inflate.
   */
  inflate(payload: Buffer, fin: boolean, onData: (data: Buffer) => boolean, done: (error: Error | null) => void): void {
    const start = (): void => {
      const inflater = (this.inflater ??= this.createInflater());
      // Paused between jobs (the owner's pause came after the last one ended).
      if (inflater.isPaused()) inflater.resume();
      let stopped = false;
      const stop = (error: Error | null): void => {
        if (stopped) return;
        stopped = true;
        this.inflateSink = null;
        this.inflateError = null;
        this.finishInflate = null;
        this.inflateFinish = null;
        this.inflateSlot = null;
        slot.release?.();
        slot.release = null;
        done(error);
      };
      // From now on, a slot regained after a pause lets the output flow again.
      slot.proceed = () => this.inflater?.resume();
      // close() ends the job if zlib never calls back (its stream is closed under it).
      this.finishInflate = () => stop(null);
      this.inflateSink = (chunk) => {
        if (stopped) return;
        // Not wanted any more (a decompression bomb past the size limit, say): stop now, not
        // after inflating it all.
        if (!onData(chunk)) {
          this.discardInflater();
          stop(null);
        }
      };
      this.inflateError = (error) => {
        this.discardInflater();
        stop(error);
      };
      // The stream flushes every write (Z_SYNC_FLUSH): one thread-pool job per frame, and its
      // output is all out when the write calls back, unless the output was paused (a streamed
      // message's reader is behind): then what zlib made waits in the stream's buffer, and the job
      // ends once that is out too, or its last bytes would come after the message's end.
      inflater.write(fin ? withTail(payload) : payload, () => {
        if (stopped) return;
        if (inflater.readableLength > 0) this.inflateFinish = finish;
        else finish();
      });
      const finish = (): void => {
        if (stopped) return;
        if (this.inflater === inflater) {
          if (inflater.readableEnded) {
            // §7.2.3.4: the sender ended its DEFLATE stream (a block with BFINAL set). The next
            // message starts a new one, so the next inflater must be new too.
            this.discardInflater();
          } else if (fin && this.params.peerNoContextTakeover) {
            // §7.2.2: without the peer's context takeover, every message starts from an empty window.
            inflater.reset();
          }
        }
        stop(null);
      };
    };
    const slot: InflateSlot = { release: null, proceed: start };
    this.inflateSlot = slot;
    zlibLimiter.run((release) => this.gotSlot(slot, release));
  }

  /** A slot of the limiter for the inflation `slot`: it goes on, unless it ended or paused meanwhile. */
  private gotSlot(slot: InflateSlot, release: () => void): void {
    if (this.closed || this.inflateSlot !== slot || this.inflatePaused) {
      release();
      return;
    }
    slot.release = release;
    slot.proceed();
  }

  /**
   * The owner cannot take more inflated output for now (an application reads a streamed message
   * slower than it inflates). The inflater's output stops flowing: zlib fills its own buffer (its
   * highWaterMark) and then stops, its state kept; the job gives its limiter slot back meanwhile,
   * so a slow reader holds up no other connection's zlib work.
   */
  pauseInflate(): void {
    if (this.inflatePaused) return;
    this.inflatePaused = true;
    this.inflater?.pause();
    const slot = this.inflateSlot;
    if (slot !== null && slot.release !== null) {
      const release = slot.release;
      slot.release = null;
      release();
    }
  }

  /** The owner takes inflated output again: the job waits for a limiter slot, then goes on. */
  resumeInflate(): void {
    if (!this.inflatePaused) return;
    this.inflatePaused = false;
    const slot = this.inflateSlot;
    if (slot !== null && slot.release === null) zlibLimiter.run((release) => this.gotSlot(slot, release));
    else this.inflater?.resume();
  }

  /**
   * RFC 7692 §7.2.1: compress a message, or the next piece of a streamed one (a message is one
   * DEFLATE stream, sync-flushed after each piece); the result lacks the 4-byte tail of its flush.
   * `fin` (the default): the message ends here (without context takeover, the next starts from an
   * empty window). Calls back with null when it cannot (the connection closed meanwhile, or zlib failed).
   */
  deflate(payload: Buffer, callback: (compressed: Buffer | null) => void, fin = true): void {
    if (payload.length === 0) {
      // §7.2.3.6: an empty message compresses to one byte, an empty stored block's header (its
      // LEN/NLEN are the stripped tail). zlib has nothing to flush here and would write nothing.
      // The window is unchanged, so context takeover stays in step; the end of a streamed message
      // may still have to reset it.
      if (fin && this.params.ownNoContextTakeover) this.deflater?.reset();
      process.nextTick(callback, this.closed ? null : Buffer.from([0x00]));
      return;
    }
    zlibLimiter.run((release) => {
      if (this.closed) {
        release();
        callback(null);
        return;
      }
      const deflater = (this.deflater ??= this.createDeflater());
      let finished = false;
      const finish = (data: Buffer | null): void => {
        if (finished) return;
        finished = true;
        this.finishDeflate = null;
        this.deflateChunks = [];
        release();
        callback(this.closed ? null : data);
      };
      this.finishDeflate = () => finish(null);
      deflater.write(payload, () => {
        if (finished || this.deflater !== deflater) return;
        const chunks = this.deflateChunks;
        const data = withoutTail(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
        if (fin && this.params.ownNoContextTakeover) deflater.reset();
        finish(data);
      });
    });
  }

  /** Release the zlib streams (the connection closed), and the limiter slot of a job in flight. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.discardInflater();
    const slot = this.inflateSlot;
    this.inflateSlot = null;
    slot?.release?.();
    this.discardDeflater();
    this.finishInflate?.();
    this.finishDeflate?.();
  }

  private createInflater(): InflateRaw {
    // A window at least as large as the peer's always works; zlib treats 8 as 9 anyway.
    const inflater = createInflateRaw({
      windowBits: Math.max(this.params.peerMaxWindowBits, ZLIB_MIN_WINDOW_BITS),
      flush: zlibConstants.Z_SYNC_FLUSH,
    });
    inflater.on('data', (chunk: Buffer) => {
      this.inflateSink?.(chunk);
      // The job's input was all inflated while its output waited (see inflate()): now it is out.
      const finish = this.inflateFinish;
      if (finish !== null && inflater.readableLength === 0) {
        this.inflateFinish = null;
        finish();
      }
    });
    inflater.on('error', (error: Error) => this.inflateError?.(error));
    return inflater;
  }

  private createDeflater(): DeflateRaw {
    const deflater = createDeflateRaw({
      ...deflaterOptions(this.params.ownMaxWindowBits, this.options),
      // §7.2.1: every message ends with a sync flush; as the stream's own flag, the write does it
      // (one thread-pool job per message instead of a write and a flush).
      flush: zlibConstants.Z_SYNC_FLUSH,
    });
    deflater.on('data', (chunk: Buffer) => this.deflateChunks.push(chunk));
    // Compressing our own data should not fail; if zlib does, the message cannot be sent.
    deflater.on('error', () => {
      this.discardDeflater();
      this.finishDeflate?.();
    });
    return deflater;
  }

  private discardInflater(): void {
    const inflater = this.inflater;
    if (inflater === null) return;
    this.inflater = null;
    inflater.removeAllListeners('data');
    inflater.on('error', () => {});
    inflater.close();
  }

  private discardDeflater(): void {
    const deflater = this.deflater;
    if (deflater === null) return;
    this.deflater = null;
    deflater.removeAllListeners('data');
    deflater.removeAllListeners('error');
    deflater.on('error', () => {});
    deflater.close();
  }
}
