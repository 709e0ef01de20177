/**
 * How the engine's bytes reach the peer, and the pieces a case's frames are made of. A write goes
 * at once, or waits its turn behind writes that go one by one with a turn of the event loop
 * between them (the suite's "sync" frames, and frames "chopped" into writes of a chosen size), so
 * each of those leaves in a TCP segment of its own; either way in the order asked for.
 */
import { randomFillSync } from 'node:crypto';
import { Op } from './frames.js';

export class WriteQueue {
  private queue: { data: Buffer; sync: boolean }[] = [];
  private sending = false;

  constructor(
    private readonly write: (data: Buffer) => void,
    private readonly open: () => boolean,
  ) {}

  /** Write now, or queue behind the writes that wait their turn. */
  send(data: Buffer, sync: boolean, chopSize: number | undefined): void {
    if (chopSize !== undefined && chopSize > 0) {
      for (let i = 0; i < data.length; i += chopSize)
        this.queue.push({ data: data.subarray(i, i + chopSize), sync: true });
      if (data.length === 0) this.queue.push({ data, sync: true });
      this.trigger();
    } else if (sync || this.sending || this.queue.length > 0) {
      this.queue.push({ data, sync });
      this.trigger();
    } else this.write(data);
  }

  private trigger(): void {
    if (this.sending) return;
    this.sending = true;
    this.next();
  }

  private next(): void {
    for (;;) {
      const item = this.queue.shift();
      if (item === undefined) {
        this.sending = false;
        return;
      }
      if (this.open()) this.write(item.data);
      if (item.sync) {
        // A turn of the event loop between writes, so each goes out in its own TCP segment.
        setImmediate(() => this.next());
        return;
      }
    }
  }
}

/** Masking keys (§5.3: from a strong source of entropy), taken from a pool refilled 1024 at a time. */
const keyPool = Buffer.alloc(4096);
let keyOffset = keyPool.length;
export function maskKey(): Buffer {
  if (keyOffset === keyPool.length) {
    randomFillSync(keyPool);
    keyOffset = 0;
  }
  keyOffset += 4;
  return Buffer.from(keyPool.subarray(keyOffset - 4, keyOffset));
}

/** `pattern` repeated to `length` octets (the suite's payload_len). */
export function repeat(pattern: Buffer, length: number): Buffer {
  if (pattern.length === 0) throw new RangeError('cannot repeat an empty payload');
  const out = Buffer.allocUnsafe(length);
  let filled = Math.min(pattern.length, length);
  pattern.copy(out, 0, 0, filled);
  while (filled < length) {
    const n = Math.min(filled, length - filled);
    out.copy(out, filled, 0, n);
    filled += n;
  }
  return out;
}

export interface Fragment {
  opcode: number;
  payload: Buffer;
  fin: boolean;
  rsv: number;
}

/** A message cut into frames of `size` octets (the suite's rule: a multiple of `size` ends with an empty frame). */
export function fragments(payload: Buffer, opcode: number, rsv: number, size: number | undefined): Fragment[] {
  if (size === undefined || payload.length <= size) return [{ opcode, payload, fin: true, rsv }];
  const frames: Fragment[] = [];
  for (let i = 0; ; i += size) {
    const end = i + size;
    const last = end > payload.length;
    frames.push({
      opcode: i === 0 ? opcode : Op.Continuation,
      payload: payload.subarray(i, Math.min(end, payload.length)),
      fin: last,
      rsv: i === 0 ? rsv : 0,
    });
    if (last) return frames;
  }
}
