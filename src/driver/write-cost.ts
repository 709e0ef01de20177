/**
 * What output that waits on a slow peer really costs, beyond the bytes `bufferedAmount` counts, so
 * that reading from a peer pauses before it has made us hold much more than `highWaterMark`:
 *
 * - every write a stream holds (and every piece in the driver's backlog) carries bookkeeping of
 *   its own whatever its length: a peer whose pings arrive one per read gets 2-byte pongs, one write
 *   each, and 1 MiB of them would be half a million writes, a hundred times that in memory;
 * - a write is often a view, and a view keeps all of its memory alive: a pong's view of the 64 KiB
 *   slab the frame writer fills, a few KiB echoed out of a 512 KiB read (Bun reads that much at a
 *   time).
 *
 * The per-write cost is counted, and such views are copied into memory of their own before they
 * wait. Not every view: a slab is shared by every connection's frames and a 64 KiB read by the
 * echoes of all its messages, so while many peers are behind, their views keep little that is not
 * waiting anyway, and copies would add to it. bench/RESULTS.md has the measurements on each runtime.
 */

/** Counted per write waiting in a stream or in the backlog: a little more than runtimes were measured to keep. */
export const WRITE_COST = 256;

/** Output this small is copied whenever it is a view of more than twice its length: a copy costs little. */
const SMALL_BYTES = 4 * 1024;
/** The frame writer's slabs and Node's reads: memory no larger than this is shared as described above. */
const SHARED_BYTES = 64 * 1024;
/** Larger memory may be kept alive by output up to this many times its length; beyond that it is copied. */
const PIN_RATIO = 4;

/** The memory `buffers` keep alive, counting only ArrayBuffers larger than `over`, each once. */
function keptAlive(buffers: readonly Buffer[], over: number): number {
  let bytes = 0;
  let seen: ArrayBufferLike[] | null = null;
  for (const buffer of buffers) {
    const memory = buffer.buffer;
    if (memory.byteLength <= over) continue;
    if (seen === null) seen = [memory];
    else if (seen.includes(memory)) continue;
    else seen.push(memory);
    bytes += memory.byteLength;
  }
  return bytes;
}

function mustCopy(buffers: readonly Buffer[], total: number): boolean {
  if (total < SMALL_BYTES) return keptAlive(buffers, 0) > 2 * total;
  return keptAlive(buffers, SHARED_BYTES) > PIN_RATIO * total;
}

/** `buffers` (`total` bytes in all) as they are, or copied into one buffer with memory of its own (see above). */
export function ownMemory(buffers: Buffer[], total: number): Buffer[] {
  return mustCopy(buffers, total) ? [copy(buffers, total)] : buffers;
}

/** `buffers` as one buffer for a write that will wait: one of them as it is, or a copy in memory of its own. */
export function waitingWrite(buffers: Buffer[], total: number): Buffer {
  return buffers.length === 1 && !mustCopy(buffers, total) ? buffers[0]! : copy(buffers, total);
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
