import { Opcode } from './constants.js';
import { Receiver, type Frame, type ReceiverHandler, type Role } from './receiver.js';

/** One frame seen on a connection, for `--trace` and the `trace` option. */
export interface TracedFrame extends Frame {
  direction: 'in' | 'out';
}

export type FrameTracer = (frame: TracedFrame) => void;

const OPCODE_NAMES: Record<number, string> = {
  [Opcode.Continuation]: 'CONT',
  [Opcode.Text]: 'TEXT',
  [Opcode.Binary]: 'BINARY',
  [Opcode.Close]: 'CLOSE',
  [Opcode.Ping]: 'PING',
  [Opcode.Pong]: 'PONG',
};

/** A one-line description of a frame, the way a learner wants to read it. */
export function formatFrame(frame: TracedFrame, previewBytes = 16): string {
  const name = OPCODE_NAMES[frame.opcode] ?? `0x${frame.opcode.toString(16)}`;
  const rsv = `${frame.rsv1 ? 1 : 0}${frame.rsv2 ? 1 : 0}${frame.rsv3 ? 1 : 0}`;
  const maskText = frame.maskKey === null ? 'unmasked' : `mask=${Buffer.from(frame.maskKey).toString('hex')}`;
  const preview = frame.payload.subarray(0, previewBytes);
  const printable = Array.from(preview, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
  const more = frame.payload.length > previewBytes ? '…' : '';
  return (
    `${frame.direction === 'in' ? '<-' : '->'} ${name.padEnd(6)} fin=${frame.fin ? 1 : 0} rsv=${rsv} ${maskText} ` +
    `len=${frame.payload.length} ${preview.toString('hex')}${more} |${printable}${more}|`
  );
}

/**
 * Decodes the bytes a connection writes, so outgoing frames can be traced with the same parser
 * that reads incoming ones. It reads in the peer's role (a server's frames are what a client
 * reads) and works on copies, since the parser unmasks in place.
 */
export function outgoingFrameDecoder(localRole: Role, tracer: FrameTracer): (bytes: Buffer) => void {
  const receiver = new Receiver(
    {
      role: localRole === 'server' ? 'client' : 'server',
      maxMessageSize: Number.MAX_SAFE_INTEGER,
      maxFramePayload: Number.MAX_SAFE_INTEGER,
      compressed: true,
    },
    {
      onMessage() {},
      onPing() {},
      onPong() {},
      onClose() {},
      onError() {},
      onFrame(frame) {
        tracer({ ...frame, direction: 'out' });
      },
    },
  );
  return (bytes) => {
    receiver.push(Buffer.from(bytes));
    // Compressed payloads pass through untouched: the tracer shows frames, not inflated messages.
    while (receiver.takeInflateJob() !== null) receiver.inflateDone(null);
  };
}

/** A receiver's handler when tracing: `handler`'s every event, plus every incoming frame to `onFrame`. */
export function tracingHandler(
  handler: ReceiverHandler,
  onFrame: NonNullable<ReceiverHandler['onFrame']>,
): ReceiverHandler {
  return {
    onMessage: (data, isBinary) => handler.onMessage(data, isBinary),
    onPing: (data) => handler.onPing(data),
    onPong: (data) => handler.onPong(data),
    onClose: (code, reason) => handler.onClose(code, reason),
    onMessageStart: (isBinary) => handler.onMessageStart?.(isBinary),
    onMessageData: (data) => handler.onMessageData?.(data),
    onMessageEnd: () => handler.onMessageEnd?.(),
    onError: (error) => handler.onError(error),
    onFrame,
  };
}
