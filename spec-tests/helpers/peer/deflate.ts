/**
 * permessage-deflate (RFC 7692) for the test peer, driven by the test with node:zlib and
 * independent of src/protocol/permessage-deflate.ts: compress a message with a chosen window, keeping the
 * context across messages or not (§7.2.1: a sync flush, its 00 00 ff ff removed), inflate what
 * arrives with a strictly sized window (§7.2.2), read the agreed parameters from a
 * Sec-WebSocket-Extensions value (§7.1), and build decompression bombs.
 */
import { constants as zc, deflateRawSync, inflateRawSync } from 'node:zlib';

const MiB = 1024 * 1024;

/** RFC 7692 §7.2.1: the bytes a sync flush ends with, removed by the sender, put back by the receiver. */
export const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

function stripTail(out: Buffer): Buffer {
  if (out.length < 4 || !out.subarray(out.length - 4).equals(TAIL))
    throw new Error('zlib output does not end with 00 00 ff ff');
  return out.subarray(0, out.length - 4);
}

export interface DeflateOptions {
  /** LZ77 window, 8-15 (zlib compresses with 9 for 8: its longest distance, 250, fits a 256-byte window). */
  windowBits?: number;
  level?: number;
  /** Earlier plaintext the compressor may refer back into (the context a sender keeps, §7.2.1). */
  dictionary?: Uint8Array;
}

/** §7.2.1: one message as DEFLATE with a sync flush, the trailing 00 00 ff ff removed. */
export function deflatePayload(data: Uint8Array, options: DeflateOptions = {}): Buffer {
  const out = deflateRawSync(data, {
    finishFlush: zc.Z_SYNC_FLUSH,
    windowBits: options.windowBits ?? 15,
    level: options.level ?? 6,
    ...(options.dictionary !== undefined && options.dictionary.length > 0 ? { dictionary: options.dictionary } : {}),
  });
  return stripTail(out);
}

/**
 * A sender's compressor. With context takeover, each message may refer back into the messages
 * before it: it is compressed with the last 2^windowBits bytes sent as zlib's dictionary, which is
 * exactly the history a receiver keeping its context has in its window. Without it, every message
 * starts from an empty window (§7.1.1).
 */
export class Compressor {
  private history = Buffer.alloc(0);
  readonly windowBits: number;
  readonly contextTakeover: boolean;
  readonly level: number;

  constructor(options: { windowBits?: number; contextTakeover?: boolean; level?: number } = {}) {
    this.windowBits = options.windowBits ?? 15;
    this.contextTakeover = options.contextTakeover ?? true;
    this.level = options.level ?? 6;
  }

  compress(data: Uint8Array): Buffer {
    const out = deflatePayload(data, {
      windowBits: this.windowBits,
      level: this.level,
      ...(this.contextTakeover && this.history.length > 0 ? { dictionary: this.history } : {}),
    });
    if (this.contextTakeover) {
      const window = 1 << this.windowBits;
      const joined = Buffer.concat([this.history, data]);
      this.history = Buffer.from(joined.subarray(Math.max(0, joined.length - window)));
    }
    return out;
  }
}

const STRICT_CHUNK = 64;

/**
 * Inflate what a peer sent with a strictly sized window: `windowBits` exactly (8 included), and
 * tiny output chunks, so a back-reference further than the window (plus 64 bytes at most) fails
 * with "invalid distance too far back" instead of being served from zlib's output buffer.
 * `messages` are compressed message payloads (tails removed); with context takeover they form one
 * stream, without it each starts from an empty window. Returns the plaintexts, concatenated.
 */
export function strictInflate(messages: readonly Buffer[], windowBits: number, contextTakeover: boolean): Buffer {
  return Buffer.concat(strictInflateEach(messages, windowBits, contextTakeover));
}

/** strictInflate, one plaintext per message. Throws on the first message that does not inflate. */
export function strictInflateEach(messages: readonly Buffer[], windowBits: number, contextTakeover: boolean): Buffer[] {
  const inflater = new StrictInflater(windowBits, contextTakeover);
  return messages.map((m) => inflater.inflate(m));
}

/**
 * A receiver's inflater, one message at a time (§7.2.2). With context takeover, the last
 * 2^windowBits bytes inflated so far are the next message's dictionary: the window a receiver
 * keeping its context has, and no more.
 */
export class StrictInflater {
  private history = Buffer.alloc(0);

  constructor(
    readonly windowBits: number,
    readonly contextTakeover: boolean,
  ) {}

  inflate(payload: Buffer): Buffer {
    const out = inflateRawSync(Buffer.concat([payload, TAIL]), {
      windowBits: this.windowBits,
      chunkSize: STRICT_CHUNK,
      finishFlush: zc.Z_SYNC_FLUSH,
      ...(this.contextTakeover && this.history.length > 0 ? { dictionary: this.history } : {}),
    });
    if (this.contextTakeover) {
      const joined = Buffer.concat([this.history, out]);
      this.history = Buffer.from(joined.subarray(Math.max(0, joined.length - (1 << this.windowBits))));
    }
    return out;
  }
}

/**
 * A deflate bomb: `total` bytes of zeros (a multiple of 1 MiB) as one compressed message payload,
 * built without a `total`-byte buffer. The first MiB is compressed normally; every further MiB is
 * compressed against a dictionary of zeros, so its back-references land in the zeros already
 * output, and the segments (each ending in a byte-aligned sync flush) form one valid stream.
 */
export function zeroBomb(total: number): Buffer {
  const block = Buffer.alloc(MiB);
  const first = deflateRawSync(block, { level: 9, finishFlush: zc.Z_SYNC_FLUSH });
  const next = deflateRawSync(block, { level: 9, finishFlush: zc.Z_SYNC_FLUSH, dictionary: Buffer.alloc(32 * 1024) });
  const parts = [first];
  for (let done = MiB; done < total; done += MiB) parts.push(next);
  return stripTail(Buffer.concat(parts));
}

export interface DeflateAgreement {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  /** The server's window (15 when not said). */
  serverBits: number;
  /** The client's window (15 when not said). */
  clientBits: number;
}

/**
 * What a permessage-deflate response (one Sec-WebSocket-Extensions value) agrees, read with the
 * RFC's own meaning (§7.1): each side's context and window as the response states them.
 */
export function negotiated(extensions: string): DeflateAgreement {
  const params = deflateParams(extensions);
  const bits = (name: string): number => (params.has(name) ? Number(params.get(name)) : 15);
  return {
    serverNoContextTakeover: params.has('server_no_context_takeover'),
    clientNoContextTakeover: params.has('client_no_context_takeover'),
    serverBits: bits('server_max_window_bits'),
    clientBits: bits('client_max_window_bits'),
  };
}

/** The parameters of one permessage-deflate element (names as written, quotes removed; true for no value). */
export function deflateParams(extensions: string): Map<string, string | true> {
  const parts = extensions.split(';').map((s) => s.trim());
  if (parts[0] !== 'permessage-deflate') throw new Error(`not permessage-deflate: ${extensions}`);
  const params = new Map<string, string | true>();
  for (const part of parts.slice(1)) {
    const [name, value] = part.split('=').map((s) => s.trim());
    params.set(name!, value === undefined ? true : value.replace(/^"|"$/g, ''));
  }
  return params;
}
