import { constants as zlibConstants, createDeflateRaw, createInflateRaw, type DeflateRaw, type InflateRaw } from 'node:zlib';
import { ProtocolError } from './errors.js';
import { formatExtension, type ExtensionOffer } from './extensions.js';
import type { MessageInflater } from './receiver.js';

/**
 * permessage-deflate (RFC 7692): negotiation in the handshake, then DEFLATE per message, with
 * node:zlib's raw deflate. Inflation is asynchronous, so the receiver pauses while a frame inflates
 * and messages stay in order; every zlib job of the process goes through one limiter, so thousands
 * of connections cannot flood the thread pool or allocate thousands of zlib states at once.
 */

export const EXTENSION_NAME = 'permessage-deflate';

export interface PerMessageDeflateOptions {
  /**
   * Server: don't keep the compression context between messages (saves ~256 KiB of zlib state per
   * connection between messages, compresses worse). Client: ask the server for that.
   */
  serverNoContextTakeover?: boolean;
  /** Server: ask the client to reset its context per message. Client: announce that it does. */
  clientNoContextTakeover?: boolean;
  /** The server's LZ77 window, 8-15 (server: at most this; client: request at most this). */
  serverMaxWindowBits?: number;
  /** The client's LZ77 window, 8-15 (server: limit clients that support it; client: offer to limit). */
  clientMaxWindowBits?: number;
  /** zlib compression level, 0-9. Default 6 (zlib's default). */
  level?: number;
  /** zlib memLevel, 1-9. Default 8 (zlib's default). */
  memLevel?: number;
  /** Messages smaller than this many bytes are sent uncompressed. Default 1024. */
  threshold?: number;
}

/** What both sides agreed, from our point of view. */
export interface DeflateParams {
  /** Reset our compressor after each message. */
  ownNoContextTakeover: boolean;
  /** The peer resets its compressor after each message: we reset our inflater too. */
  peerNoContextTakeover: boolean;
  /** Window bits our compressor may use. */
  ownMaxWindowBits: number;
  /** Window bits the peer's compressor may use (our inflater's window). */
  peerMaxWindowBits: number;
}

export const DEFLATE_DEFAULTS = Object.freeze({ level: zlibConstants.Z_DEFAULT_COMPRESSION, memLevel: 8, threshold: 1024 });

/** Concurrent zlib jobs per process (ws uses the same number). */
export const ZLIB_CONCURRENCY = 10;

// ---------------------------------------------------------------------------------------------
// Negotiation (RFC 7692 §5, §7.1)
// ---------------------------------------------------------------------------------------------

const OFFER_PARAMS = new Set(['server_no_context_takeover', 'client_no_context_takeover', 'server_max_window_bits', 'client_max_window_bits']);

/** RFC 7692 §7.1.2: a window size is a decimal integer from 8 to 15 "without leading zeroes". */
function windowBits(value: string | true): number | null {
  if (value === true || !/^(8|9|1[0-5])$/.test(value)) return null;
  return Number(value);
}

function checkWindowOption(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isInteger(value) && value >= 8 && value <= 15)) {
    throw new RangeError(`${name} must be an integer from 8 to 15`);
  }
}

export function validateDeflateOptions(options: PerMessageDeflateOptions): void {
  checkWindowOption('serverMaxWindowBits', options.serverMaxWindowBits);
  checkWindowOption('clientMaxWindowBits', options.clientMaxWindowBits);
}

/**
 * Server side: pick the first offer of permessage-deflate we can accept (RFC 7692 §5.1) and build
 * the response parameters. An offer with an unknown parameter, an invalid value or a repeated
 * parameter is declined (§7); the next one is considered. Returns null when none is acceptable.
 */
export function acceptDeflateOffer(
  offers: readonly ExtensionOffer[],
  options: PerMessageDeflateOptions,
): { response: string; params: DeflateParams } | null {
  for (const offer of offers) {
    if (offer.name !== EXTENSION_NAME) continue;
    const seen = new Map<string, string | true>();
    let valid = true;
    for (const [name, value] of offer.params) {
      // §7: "contains an extension parameter not defined for use in an offer" / "multiple extension
      // parameters with the same name" / "an extension parameter with an invalid value" -> decline.
      if (!OFFER_PARAMS.has(name) || seen.has(name)) valid = false;
      else if ((name === 'server_no_context_takeover' || name === 'client_no_context_takeover') && value !== true) valid = false;
      else if (name === 'server_max_window_bits' && windowBits(value) === null) valid = false;
      else if (name === 'client_max_window_bits' && value !== true && windowBits(value) === null) valid = false;
      seen.set(name, value);
    }
    if (!valid) continue;

    const response: ExtensionOffer = { name: EXTENSION_NAME, params: [] };
    // §7.1.1.1: accepting server_no_context_takeover means saying it; we may also choose it ourselves.
    const serverNoTakeover = seen.has('server_no_context_takeover') || options.serverNoContextTakeover === true;
    if (serverNoTakeover) response.params.push(['server_no_context_takeover', true]);
    // §7.1.1.2: the server may tell the client not to take over context, offered or not. Offered,
    // the RFC calls it a hint that the client will not take over context anyway; but some clients
    // (autobahn-python, the library Autobahn|Testsuite runs on) offer it to say they *can* drop
    // their context, and keep it unless the response says so. So we say it back whenever it is
    // offered: then every client resets, whichever reading it follows, and our inflater may drop
    // its window between messages. Our state follows the response, never the offer alone.
    const clientNoTakeover = options.clientNoContextTakeover === true || seen.has('client_no_context_takeover');
    if (clientNoTakeover) response.params.push(['client_no_context_takeover', true]);

    // §7.1.2.1: with server_max_window_bits=N offered, answer with a value <= N.
    const offeredServerBits = seen.has('server_max_window_bits') ? windowBits(seen.get('server_max_window_bits')!)! : 15;
    const serverBits = Math.min(offeredServerBits, options.serverMaxWindowBits ?? 15);
    if (seen.has('server_max_window_bits') || serverBits < 15) response.params.push(['server_max_window_bits', String(serverBits)]);

    // §7.1.2.2: client_max_window_bits only in answer to a client that offered it.
    let clientBits = 15;
    if (seen.has('client_max_window_bits')) {
      const offered = seen.get('client_max_window_bits')!;
      const offeredBits = offered === true ? 15 : windowBits(offered)!;
      clientBits = Math.min(offeredBits, options.clientMaxWindowBits ?? 15);
      if (options.clientMaxWindowBits !== undefined || offered !== true) response.params.push(['client_max_window_bits', String(clientBits)]);
    }

    return {
      response: formatExtension(response),
      params: {
        ownNoContextTakeover: serverNoTakeover,
        peerNoContextTakeover: clientNoTakeover,
        ownMaxWindowBits: serverBits,
        peerMaxWindowBits: clientBits,
      },
    };
  }
  return null;
}

/** Client side: the offer to send (RFC 7692 §5.1). */
export function deflateOffer(options: PerMessageDeflateOptions): string {
  const offer: ExtensionOffer = { name: EXTENSION_NAME, params: [] };
  if (options.serverNoContextTakeover === true) offer.params.push(['server_no_context_takeover', true]);
  if (options.clientNoContextTakeover === true) offer.params.push(['client_no_context_takeover', true]);
  if (options.serverMaxWindowBits !== undefined) offer.params.push(['server_max_window_bits', String(options.serverMaxWindowBits)]);
  // Without a value: "this client supports limiting its window; choose" (§7.1.2.2).
  offer.params.push(['client_max_window_bits', options.clientMaxWindowBits === undefined ? true : String(options.clientMaxWindowBits)]);
  return formatExtension(offer);
}

/**
 * Client side: check the server's answer against our offer (RFC 7692 §7: the client MUST fail the
 * connection on an unknown or repeated parameter, an invalid value, or a configuration it did not
 * offer). Returns the agreed parameters, or throws an Error explaining what is wrong.
 */
export function acceptDeflateResponse(responses: readonly ExtensionOffer[], options: PerMessageDeflateOptions): DeflateParams {
  if (responses.length !== 1 || responses[0]!.name !== EXTENSION_NAME) {
    throw new Error(`server answered with extensions we did not offer: ${responses.map((r) => r.name).join(', ')}`);
  }
  const seen = new Map<string, string | true>();
  for (const [name, value] of responses[0]!.params) {
    if (!OFFER_PARAMS.has(name)) throw new Error(`unknown permessage-deflate parameter ${name}`);
    if (seen.has(name)) throw new Error(`repeated permessage-deflate parameter ${name}`);
    seen.set(name, value);
  }
  for (const name of ['server_no_context_takeover', 'client_no_context_takeover']) {
    if (seen.has(name) && seen.get(name) !== true) throw new Error(`${name} takes no value`);
  }
  // §7.1.1.1: our server_no_context_takeover must be accepted explicitly.
  if (options.serverNoContextTakeover === true && !seen.has('server_no_context_takeover')) {
    throw new Error('server did not accept server_no_context_takeover');
  }
  let serverBits = 15;
  if (seen.has('server_max_window_bits')) {
    const bits = windowBits(seen.get('server_max_window_bits')!);
    if (bits === null) throw new Error('invalid server_max_window_bits');
    if (options.serverMaxWindowBits !== undefined && bits > options.serverMaxWindowBits) throw new Error('server_max_window_bits larger than offered');
    serverBits = bits;
  } else if (options.serverMaxWindowBits !== undefined) {
    // §7.1.2.1: a server that accepts our limit includes it in the response.
    throw new Error('server ignored server_max_window_bits');
  }
  let clientBits = options.clientMaxWindowBits ?? 15;
  if (seen.has('client_max_window_bits')) {
    const bits = windowBits(seen.get('client_max_window_bits')!);
    if (bits === null) throw new Error('invalid client_max_window_bits');
    if (bits > clientBits) throw new Error('client_max_window_bits larger than offered');
    clientBits = bits;
  }
  return {
    // §7.1.1.2: having offered client_no_context_takeover, we reset our compressor whatever the
    // response says (a server may have taken the offer as the promise the RFC calls it). Resetting
    // our own compressor never breaks the peer; only the peer's state must follow the response.
    ownNoContextTakeover: seen.has('client_no_context_takeover') || options.clientNoContextTakeover === true,
    // §7.1.1.1: our inflater drops its window only when the server says it drops its context.
    peerNoContextTakeover: seen.has('server_no_context_takeover'),
    ownMaxWindowBits: clientBits,
    peerMaxWindowBits: serverBits,
  };
}

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
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

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

/**
 * One connection's compression state. zlib streams are made on first use (a connection that never
 * sends or receives a compressed message holds no zlib memory), reset after every message without
 * context takeover, and released when the connection closes.
 */
export class PerMessageDeflate implements MessageInflater {
  readonly threshold: number;
  private inflater: InflateRaw | null = null;
  private deflater: DeflateRaw | null = null;
  private inflateSink: ((chunk: Buffer) => void) | null = null;
  private inflateError: ((error: Error) => void) | null = null;
  private deflateChunks: Buffer[] = [];
  private finishInflate: (() => void) | null = null;
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
   * as one zlib job, however many TCP chunks it came in.
   */
  inflate(
    payload: Buffer,
    fin: boolean,
    maxOutput: number,
    onData: (data: Buffer) => boolean,
    done: (error: ProtocolError | null) => void,
  ): void {
    zlibLimiter.run((release) => {
      if (this.closed) {
        release();
        return;
      }
      const inflater = (this.inflater ??= this.createInflater());
      let total = 0;
      let stopped = false;
      const stop = (error: ProtocolError | null): void => {
        if (stopped) return;
        stopped = true;
        this.inflateSink = null;
        this.inflateError = null;
        this.finishInflate = null;
        release();
        done(error);
      };
      // close() ends the job if zlib never calls back (its stream is closed under it).
      this.finishInflate = () => stop(null);
      this.inflateSink = (chunk) => {
        if (stopped) return;
        total += chunk.length;
        if (total > maxOutput) {
          // A decompression bomb, or just too big: stop now, not after inflating it all.
          this.discardInflater();
          stop(new ProtocolError('InflatedMessageTooBig', `inflated message exceeds the limit of ${maxOutput} bytes`));
        } else if (!onData(chunk)) {
          this.discardInflater();
          stop(null);
        }
      };
      this.inflateError = (error) => {
        this.discardInflater();
        stop(new ProtocolError('InvalidCompressedData', `invalid compressed data: ${error.message}`));
      };
      // The stream flushes every write (Z_SYNC_FLUSH): one thread-pool job per frame, and its
      // output is all out when the write calls back.
      inflater.write(fin ? withTail(payload) : payload, () => {
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
      });
    });
  }

  /**
   * RFC 7692 §7.2.1: compress one message; the result lacks the 4-byte tail and goes in frames
   * whose first has RSV1 set. Calls back with null when it cannot (the connection closed
   * meanwhile, or zlib failed).
   */
  deflate(payload: Buffer, callback: (compressed: Buffer | null) => void): void {
    if (payload.length === 0) {
      // §7.2.3.6: an empty message compresses to one byte, an empty stored block's header (its
      // LEN/NLEN are the stripped tail). zlib has nothing to flush here and would write nothing.
      // The window is unchanged either way, so context takeover stays in step.
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
        let data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        if (data.length >= 4 && data.subarray(data.length - 4).equals(TAIL)) data = data.subarray(0, data.length - 4);
        if (this.params.ownNoContextTakeover) deflater.reset();
        finish(data);
      });
    });
  }

  /** Release the zlib streams (the connection closed), and the limiter slot of a job in flight. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.discardInflater();
    this.discardDeflater();
    this.finishInflate?.();
    this.finishDeflate?.();
  }

  private createInflater(): InflateRaw {
    // A window at least as large as the peer's always works; zlib treats 8 as 9 anyway.
    const inflater = createInflateRaw({
      windowBits: Math.max(this.params.peerMaxWindowBits, 9),
      flush: zlibConstants.Z_SYNC_FLUSH,
    });
    inflater.on('data', (chunk: Buffer) => this.inflateSink?.(chunk));
    inflater.on('error', (error: Error) => this.inflateError?.(error));
    return inflater;
  }

  private createDeflater(): DeflateRaw {
    const bits = this.params.ownMaxWindowBits;
    const deflater = createDeflateRaw({
      level: this.options.level ?? DEFLATE_DEFAULTS.level,
      memLevel: this.options.memLevel ?? DEFLATE_DEFAULTS.memLevel,
      // zlib cannot compress with a 256-byte window (since 1.2.9 it turns 8 into 9, which a strict
      // peer with an 8-bit window could not inflate). With 8 agreed, code symbols only, with no
      // back-references at all: valid for any window, and still Huffman-compressed.
      windowBits: Math.max(bits, 9),
      strategy: bits === 8 ? zlibConstants.Z_HUFFMAN_ONLY : zlibConstants.Z_DEFAULT_STRATEGY,
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
