/**
 * The library's frame writer (src/protocol/writer.ts) one frame or one message at a time, each frame
 * its own buffer, for the tests that check what it writes. The library itself only ever queues
 * frames in a connection's FrameQueue; these wrap a one-off queue that keeps frames apart.
 */
import { FrameQueue, type MaskKeySource } from '../../src/protocol/writer.js';

/**
 * Append one frame to `out` (each frame its own buffer, or a header and a payload). `maskKeys` set
 * means a client frame. Returns the number of bytes appended.
 */
export function appendFrame(
  out: Buffer[],
  opcode: number,
  payload: Uint8Array,
  fin: boolean,
  rsv1: boolean,
  maskKeys: MaskKeySource | null,
): number {
  return appendVia(out, maskKeys, (queue) => queue.frame(opcode, payload, fin, rsv1));
}

/** Append a whole message to `out`, fragmented when `fragmentSize` is set (see FrameQueue.message). */
export function appendMessage(
  out: Buffer[],
  opcode: number,
  payload: Uint8Array,
  rsv1: boolean,
  maskKeys: MaskKeySource | null,
  fragmentSize = 0,
): number {
  return appendVia(out, maskKeys, (queue) => queue.message(opcode, payload, rsv1, fragmentSize));
}

/** Append a control frame to `out` (see FrameQueue.control). */
export function appendControlFrame(
  out: Buffer[],
  opcode: number,
  payload: Uint8Array,
  maskKeys: MaskKeySource | null,
): number {
  return appendVia(out, maskKeys, (queue) => queue.control(opcode, payload));
}

/** Frame with a one-off FrameQueue that keeps frames apart, and append its buffers to `out`. */
function appendVia(out: Buffer[], maskKeys: MaskKeySource | null, write: (queue: FrameQueue) => number): number {
  const queue = new FrameQueue(maskKeys, true);
  const written = write(queue);
  for (const buffer of queue.take()) out.push(buffer);
  return written;
}
