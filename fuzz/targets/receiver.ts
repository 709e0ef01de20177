/**
 * Target 3: the receiver (src/protocol/receiver.ts) in both roles, with limits the fuzzer picks,
 * without and with permessage-deflate, whose inflation runs on the real zlib through the driver's
 * PerMessageDeflate (src/driver/deflate-zlib.ts) with the window and context the fuzzer picks. The
 * input is a byte stream (raw, or built by the test peer from the fuzzer's program: ./peer-frames.ts)
 * fed twice: in one chunk, and cut where the fuzzer says (waiting or not for zlib between chunks,
 * pausing or not after every event as the protocol does).
 *
 * Checked: nothing throws; the events are what an independent reading of RFC 6455 §5-§8 and RFC 7692
 * allows for these bytes (./oracle/receiver.ts: the right messages, pings, pongs and close, the right
 * close code for the first violation, nothing after it); both feedings report the same events; no
 * message over maxMessageSize; inflated bytes held never past the budget or the message limit, and
 * none held once the receiver is destroyed; every complete frame reported to `onFrame` as the
 * independent reading decodes it; no input kept beyond an unfinished header; every inflation ends.
 */
import { PerMessageDeflate } from '../../src/driver/deflate-zlib.js';
import { InflateBudget } from '../../src/protocol/inflate-budget.js';
import type { ProtocolError } from '../../src/protocol/errors.js';
import { Receiver, type Frame, type ReceiverHandler } from '../../src/protocol/receiver.js';
import { FrameDecoder, OP, encodeFrame, type DecodedFrame } from '../../spec-tests/helpers/peer/frames.js';
import { walkReceiver, type ReceivedEvent, type ReceiverModel } from './oracle/receiver.js';
import { buildFrames } from './peer-frames.js';
import { InputReader, check, chunks, type FuzzTarget } from './target.js';

const SIZES = [0, 1, 10, 125, 126, 1000, 4096, 65535, 65536, 1 << 20, 64 * 1024 * 1024];
/** null: no budget at all (each message bounded by maxMessageSize alone). */
const BUDGETS = [null, 0, 100, 5000, 1 << 16, 1 << 20, 512 * 1024 * 1024];
/** Far more than any input needs: past it, an inflation never ended. */
const INFLATE_MS = 3000;

interface Setup {
  model: ReceiverModel;
  budget: number | null;
  recordFrames: boolean;
  pauseEach: boolean;
  waitBetweenChunks: boolean;
}

interface Outcome {
  events: ReceivedEvent[];
  frames: Frame[];
  receiver: Receiver;
  budget: InflateBudget | null;
}

/** Feed `pieces` to a new receiver set up as `setup` says, running its inflations on zlib. */
async function feed(pieces: Buffer[], setup: Setup): Promise<Outcome> {
  const { model } = setup;
  const budget = setup.budget === null ? null : new InflateBudget(setup.budget);
  const events: ReceivedEvent[] = [];
  const frames: Frame[] = [];
  let ended = false;
  /** Inflated bytes accepted for the message being assembled. */
  let inflatedHeld = 0;
  let receiver: Receiver;

  const event = (e: ReceivedEvent): void => {
    check(!ended, () => `${e.type} reported after the receiver's close or failure`);
    if (e.type === 'error' || e.type === 'close') ended = true;
    if (budget !== null) check(budget.held <= budget.limit, `${budget.held} inflated bytes held past the budget`);
    events.push(e);
    if (setup.pauseEach) receiver.pause();
  };
  const handler: ReceiverHandler = {
    onMessage(data, isBinary) {
      check(data.length <= model.maxMessageSize, `a ${data.length}-byte message delivered past maxMessageSize`);
      // The message's inflated bytes go back to the budget before it is delivered.
      if (budget !== null) check(budget.held === 0, `${budget.held} inflated bytes still held at a delivery`);
      inflatedHeld = 0;
      event({ type: 'message', data: Buffer.from(data), isBinary });
    },
    onPing: (data) => event({ type: 'ping', data: Buffer.from(data) }),
    onPong: (data) => event({ type: 'pong', data: Buffer.from(data) }),
    onClose: (code, reason) => event({ type: 'close', code, reason }),
    onError: (error: ProtocolError) => event({ type: 'error', code: error.closeCode, message: error.message }),
    ...(setup.recordFrames
      ? { onFrame: (frame: Frame) => void frames.push({ ...frame, payload: Buffer.from(frame.payload) }) }
      : {}),
  };
  receiver = new Receiver(
    {
      role: model.role,
      maxMessageSize: model.maxMessageSize,
      maxFramePayload: model.maxFramePayload,
      compressed: model.deflate !== null,
      budget,
    },
    handler,
  );
  const zlib =
    model.deflate === null
      ? null
      : new PerMessageDeflate({
          ownNoContextTakeover: false,
          peerNoContextTakeover: !model.deflate.contextTakeover,
          ownMaxWindowBits: 15,
          peerMaxWindowBits: model.deflate.bits,
        });

  // The driver's loop: resume after each event, run the inflation the receiver waits on.
  let inflating = false;
  let idle: (() => void) | null = null;
  const pump = (): void => {
    for (;;) {
      if (receiver.isPaused) {
        receiver.resume();
        continue;
      }
      const job = receiver.takeInflateJob();
      if (job === null) break;
      check(zlib !== null, 'an inflation without permessage-deflate agreed');
      check(!inflating, 'a second inflation while one runs');
      inflating = true;
      zlib.inflate(
        job.payload,
        job.fin,
        (data) => {
          const more = receiver.inflated(data);
          if (more) inflatedHeld += data.length;
          check(inflatedHeld <= model.maxMessageSize, `${inflatedHeld} inflated bytes held past maxMessageSize`);
          if (budget !== null) check(budget.held <= budget.limit, `${budget.held} bytes held past the budget`);
          return more;
        },
        (error) => {
          inflating = false;
          receiver.inflateDone(error);
          pump();
          if (!inflating) idle?.();
        },
      );
      break;
    }
  };
  const settled = (): Promise<void> =>
    inflating
      ? new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`an inflation did not end within ${INFLATE_MS} ms`)),
            INFLATE_MS,
          );
          idle = () => {
            idle = null;
            clearTimeout(timer);
            resolve();
          };
        })
      : Promise.resolve();

  try {
    for (const piece of pieces) {
      receiver.push(piece);
      pump();
      if (setup.waitBetweenChunks) await settled();
    }
    await settled();
  } finally {
    zlib?.close();
  }
  return { events, frames, receiver, budget };
}

/** A frame every receiver accepts (masked for a server, RFC 6455 §5.1): sent after the end, it must be ignored. */
const lateFrame = (role: 'server' | 'client'): Buffer =>
  encodeFrame({
    opcode: OP.PING,
    payload: Buffer.from('late'),
    maskKey: role === 'server' ? Buffer.from([1, 2, 3, 4]) : null,
  });

const same = (a: ReceivedEvent[], b: ReceivedEvent[]): boolean =>
  a.length === b.length &&
  a.every((x, i) => {
    const y = b[i]!;
    if (x.type !== y.type) return false;
    if ('data' in x && !x.data.equals((y as { data: Buffer }).data)) return false;
    if ('code' in x && x.code !== (y as { code: number }).code) return false;
    return !('isBinary' in x) || x.isBinary === (y as { isBinary: boolean }).isBinary;
  });

export const target: FuzzTarget = {
  description: 'the receiver, both roles, limits, permessage-deflate on zlib, input cut anywhere, against an oracle',
  maxLength: 16 * 1024,
  dictionary: [
    '\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58',
    '\x81\x05Hello',
    '\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00',
    '\x88\x02\x03\xe8',
    '\x89\x00',
    '\x8a\x00',
    '\x01\x00',
    '\x80\x00',
    '\x7e\x00\x7e',
    '\x7f\x00\x00\x00\x00\x00\x01\x00\x00',
    '\x00\x00\xff\xff',
    '\xce\xba\xe1\xbd\xb9\xcf\x83',
  ],
  async run(input) {
    const reader = new InputReader(input);
    const flags = reader.byte();
    const bits = 8 + (reader.byte() % 8);
    const maxMessageSize = reader.choose(SIZES);
    const maxFramePayload = reader.choose(SIZES);
    const budget = reader.choose(BUDGETS);
    const seed = reader.byte();
    const role = (flags & 1) === 0 ? 'server' : 'client';
    const deflate = (flags & 2) === 0 ? null : { bits, contextTakeover: (flags & 4) === 0 };
    const model: ReceiverModel = { role, maxMessageSize, maxFramePayload, deflate, budget: budget ?? Infinity };
    const setup: Setup = {
      model,
      budget,
      recordFrames: (flags & 8) !== 0,
      pauseEach: (flags & 0x10) !== 0,
      waitBetweenChunks: (flags & 0x40) !== 0,
    };
    const stream = (flags & 0x20) !== 0 ? buildFrames(reader, role, deflate).bytes : reader.rest();

    // Each feeding its own copy: a receiver owns what it is given (it unmasks payloads in place).
    const [whole, cut] = await Promise.all([
      feed([Buffer.from(stream)], setup),
      feed(chunks(Buffer.from(stream), seed || 1), setup),
    ]);
    const walk = walkReceiver(stream, model, whole.events);
    const decoded: DecodedFrame[] = [];
    if (setup.recordFrames) new FrameDecoder((frame) => void decoded.push(frame)).push(stream);
    check(same(whole.events, cut.events), 'the events differ between the input in one chunk and cut in pieces');

    for (const { receiver, frames, events, budget } of [whole, cut]) {
      check(receiver.finished === walk.stopped, `receiver.finished is ${receiver.finished}`);
      // Nothing is kept but the bytes of an unfinished header (RFC 6455 §5.2: at most 14).
      const kept = receiver.bufferedBytes;
      check(kept <= walk.headerTail, () => `${kept} bytes kept at the end, ${walk.headerTail} of them a header`);
      if (setup.recordFrames) {
        // Each frame as the test peer's decoder reads it, up to where the receiver stopped.
        check(walk.stopped ? frames.length <= decoded.length : frames.length === decoded.length, 'frames missed');
        frames.forEach((f, i) => {
          const e = decoded[i]!;
          check(
            f.opcode === e.opcode && f.fin === e.fin && f.rsv1 === e.rsv1 && f.payload.equals(e.payload),
            `frame ${i} reported differently from the test peer's decoding`,
          );
        });
      }
      if (walk.stopped) {
        // After a close frame or a violation, input is ignored (RFC 6455 §5.5.1, §7.1.7).
        const before = events.length;
        receiver.push(lateFrame(role));
        check(receiver.takeInflateJob() === null && events.length === before, 'input read after the end');
      }
      receiver.destroy();
      check(receiver.bufferedBytes === 0, 'input kept after destroy()');
      check(budget === null || budget.held === 0, () => `${budget!.held} inflated bytes held after destroy()`);
    }
  },
};
