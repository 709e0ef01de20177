/**
 * What output that waits on a slow peer really costs, beyond the bytes `bufferedAmount` counts, so
 * that reading from a peer pauses before it has made us hold much more than `highWaterMark`:
 *
 * - every write a stream holds (and every piece in the driver's backlog) carries bookkeeping of
 *   its own whatever its length: a peer whose pings arrive one per read gets 2-byte pongs, one write
 *   each, and 1 MiB of them would be half a million writes, a hundred times that in memory;
 * - a write is often a view (of the slab the frame writer fills, or of a chunk read from the peer,
 *   when a message is echoed), and a view keeps all of its memory alive: a few KiB echoed out of a
 *   512 KiB read (Bun reads that much at a time) would keep the 512 KiB.
 *
 * The per-write cost is counted; views that would keep far more than their length alive are copied
 * into memory of their own before they wait. bench/RESULTS.md has the measurements on each runtime.
 */

/** Counted per write waiting in a stream or in the backlog: a little more than runtimes were measured to keep. */
export const WRITE_COST = 256;

/** Output that waits may keep at most this many times its length alive; beyond that it is copied. */
const PIN_RATIO = 4;

/** The memory `buffers` keep alive: each distinct ArrayBuffer behind them, once. */
function keptAlive(buffers: readonly Buffer[]): number {
  let bytes = 0;
  let seen: ArrayBufferLike[] | null = null;
  for (const buffer of buffers) {
    const memory = buffer.buffer;
    if (seen === null) seen = [memory];
    else if (seen.includes(memory)) continue;
    else seen.push(memory);
    bytes += memory.byteLength;
  }
  return bytes;
}

/**
 * `buffers` (`total` bytes in all) as they are, or, when they would keep more than PIN_RATIO times
 * their length alive, copied into one buffer with memory of its own.
 */
export function ownMemory(buffers: Buffer[], total: number): Buffer[] {
  return keptAlive(buffers) <= PIN_RATIO * total ? buffers : [copy(buffers, total)];
}

/** `buffers` as one buffer for a write that will wait: one of them as it is, or a copy in memory of its own. */
export function waitingWrite(buffers: Buffer[], total: number): Buffer {
  return buffers.length === 1 && keptAlive(buffers) <= PIN_RATIO * total ? buffers[0]! : copy(buffers, total);
}

function copy(buffers: readonly Buffer[], total: number): Buffer {
  // allocUnsafeSlow: Node's shared pool (allocUnsafe, concat) would make a small copy a view again.
  const own = Buffer.allocUnsafeSlow(total);
  let at = 0;
  for (const buffer of buffers) {
    own.set(buffer, at);
    at += buffer.length;
  }
  return own;
}
