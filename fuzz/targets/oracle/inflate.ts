/**
 * An independent reading of RFC 7692 §7.2.2 for the receiver targets (imports nothing of src/):
 * what a compressed message may inflate to, frame by frame, with node:zlib's one-shot functions
 * (never src/driver/deflate-zlib.ts's streams).
 *
 * The RFC fixes the procedure (append 00 00 ff ff to the message's payload, inflate it with the LZ77
 * window of the peer's compressor) but leaves a receiver some room, so this reading keeps every
 * reading a receiver may follow, and the caller accepts what any of them says:
 * - strict: the agreed window exactly, and output in small chunks, so that a back-reference beyond
 *   the window fails ("invalid distance too far back") instead of being served from an output buffer;
 * - lenient: the largest window (15 bits), so that what a generous receiver inflates is allowed too
 *   (zlib serves distances from its output buffer, and cannot inflate with fewer than 9 bits);
 * - after a message whose DEFLATE stream ended (a block with BFINAL set, §7.2.3.4), the next message
 *   may start from an empty window as well as from the history: the sender's stream is over, and the
 *   RFC does not say whether a new one may refer back into the old one.
 */
import { constants as zc, inflateRawSync } from 'node:zlib';
import { TAIL } from '../../../spec-tests/helpers/peer/deflate.js';

/** The bytes an inflater keeps as history: its window. */
const LENIENT_BITS = 15;
const STRICT_CHUNK = 64;

/** One way of inflating the peer's messages: its window, and the history it starts a message from. */
export interface Reading {
  readonly strict: boolean;
  /** The plaintext of earlier messages this message may refer back into (context takeover). */
  readonly history: Buffer;
}

/**
 * Inflate the payload of a message so far (`fin`: all of it, then the tail §7.2.2 appends). Returns
 * the output, or null when the data is not valid DEFLATE for this reading. An unfinished stream is
 * not an error: a sync flush makes whatever is complete come out.
 */
export function inflateReading(reading: Reading, compressed: Buffer, fin: boolean, bits: number): Buffer | null {
  const windowBits = reading.strict ? Math.max(bits, 8) : LENIENT_BITS;
  const history = reading.history.subarray(Math.max(0, reading.history.length - (1 << windowBits)));
  try {
    return inflateRawSync(fin ? Buffer.concat([compressed, TAIL]) : compressed, {
      windowBits,
      finishFlush: zc.Z_SYNC_FLUSH,
      ...(reading.strict ? { chunkSize: STRICT_CHUNK } : {}),
      ...(history.length > 0 ? { dictionary: history } : {}),
    });
  } catch {
    return null;
  }
}

/**
 * Whether the message's DEFLATE stream ended (a final block) before its tail: then inflating goes on
 * happily past a byte that would be an invalid block header in a stream still open.
 */
export function streamEnded(reading: Reading, compressed: Buffer, bits: number): boolean {
  return inflateReading(reading, Buffer.concat([compressed, TAIL, Buffer.from([0xff])]), false, bits) !== null;
}

/** The readings of the next message, once a message inflated to `data` under `reading`. */
export function nextReadings(reading: Reading, data: Buffer, contextTakeover: boolean, ended: boolean): Reading[] {
  const empty = { strict: reading.strict, history: Buffer.alloc(0) };
  if (!contextTakeover) return [empty];
  const kept = Buffer.concat([reading.history, data]);
  const history = { strict: reading.strict, history: kept.subarray(Math.max(0, kept.length - (1 << LENIENT_BITS))) };
  return ended ? [history, empty] : [history];
}

/** The readings without repeats (same strictness and history), at most `max` of them. */
export function distinct(readings: Reading[], max = 8): Reading[] {
  const out: Reading[] = [];
  for (const reading of readings) {
    if (out.some((r) => r.strict === reading.strict && r.history.equals(reading.history))) continue;
    out.push(reading);
    if (out.length === max) break;
  }
  return out;
}
