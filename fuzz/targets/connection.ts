/**
 * Target 4: the connection state machine (src/protocol/protocol.ts), both roles, without
 * permessage-deflate, with a stand-in compressor whose jobs end when the fuzzer says, or with the real
 * zlib (src/driver/deflate-zlib.ts), driven by a fuzzer-chosen sequence of steps: the peer's frames
 * (./peer-frames.ts) and raw bytes in, time passing (the deadlines fire as the driver's timer wheel
 * fires them), the end of the peer's stream, application calls (send, ping, pong, close, terminate,
 * pre-framed sends), compression and inflation jobs ending or failing, `limitBuffered`,
 * `readingResumed`, `writeTimedOut`, and the stream closing. After every step the target takes
 * everything as the driver does (src/driver/connection.ts `settle()`), and checks (./connection-checks.ts):
 *
 * - nothing throws, but the TypeError and RangeError documented for invalid application arguments
 *   (asserted exactly where the fuzzer asks for them);
 * - every byte out is whole frames that the test peer's decoder reads as valid (./our-frames.ts):
 *   masked exactly in the client role, minimal lengths, known opcodes, short whole control frames,
 *   RSV1 only on the first frame of a compressed message, the messages exactly those accepted by
 *   send, in order (compressed ones inflated strictly with the agreed window), no data frame after
 *   our close frame, one close frame at most, with the code of the failure when one caused it;
 * - `wantsEnd` and `wantsDestroy` never go back; `nextDeadline` is a number, Infinity once closed,
 *   and moves on once it fires; the state never goes back;
 * - the close is reported once, from `streamClosed`, with a code §7.4 allows: the peer's close code,
 *   else the code we failed with, else 1006; `wasClean` exactly when close frames went both ways;
 * - every send callback is called once: success only for what was written, failure otherwise;
 * - what the peer sent is read as an independent reading of RFC 6455 / RFC 7692 says
 *   (./oracle/receiver.ts), as far as the connection read;
 * - nothing is held after the close: no input, no output, no inflated bytes in the budget.
 */
import { InflateBudget } from '../../src/protocol/inflate-budget.js';
import { PerMessageDeflate } from '../../src/driver/deflate-zlib.js';
import { resolveConnectionOptions } from '../../src/protocol/options.js';
import { Protocol } from '../../src/protocol/protocol.js';
import type { SenderCompression } from '../../src/protocol/sender.js';
import { Checks, type Mode } from './connection-checks.js';
import { InputReader, check, type FuzzTarget } from './target.js';

const CLOSE_TIMEOUTS = [0, 1, 100, 5000];
/** [pingInterval, pongTimeout]. */
const HEARTBEATS = [
  [0, 60_000],
  [10, 5],
  [10, 50],
  [1000, 0],
  [100, 60_000],
  [0, 0],
  [54_000, 60_000],
  [50, 1000],
] as const;
/** [maxMessageSize, maxFramePayload]. */
const LIMITS = [
  [64 * 1024 * 1024, 64 * 1024 * 1024],
  [1000, 200],
  [125, 125],
  [0, 0],
  [65536, 1000],
  [100_000, 100_000],
] as const;
const MAX_BUFFERED = [128 * 1024 * 1024, 0, 100, 10_000];
const FRAGMENT_SIZES = [0, 1, 7, 100];
const THRESHOLDS = [0, 1, 16, 1024];
const BUDGETS = [512 * 1024 * 1024, 1000, 0, 1 << 16];

export const target: FuzzTarget = {
  description: 'the protocol state machine: bytes in, time, application calls, zlib jobs, against invariants',
  maxLength: 4096,
  dictionary: [
    '\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58',
    '\x81\x05Hello',
    '\x88\x02\x03\xe8',
    '\x89\x00',
    '\x8a\x00',
    '\x01\x00',
    '\x80\x00',
  ],
  async run(input) {
    const reader = new InputReader(input);
    const flags = reader.byte();
    const a = reader.byte();
    const b = reader.byte();
    const c = reader.byte();
    const role = (flags & 1) === 0 ? 'server' : 'client';
    const mode: Mode = (['none', 'fake', 'zlib', 'zlib'] as const)[(flags >> 1) & 3];
    const [pingInterval, pongTimeout] = HEARTBEATS[(a >> 2) % HEARTBEATS.length]!;
    const [maxMessageSize, maxFramePayload] = LIMITS[b % LIMITS.length]!;
    const options = resolveConnectionOptions({
      closeTimeout: CLOSE_TIMEOUTS[a & 3],
      pingInterval,
      pongTimeout,
      maxMessageSize,
      maxFramePayload,
      maxBufferedBytes: MAX_BUFFERED[(b >> 3) & 3],
      fragmentSize: FRAGMENT_SIZES[(a >> 5) & 3],
      autoPong: (flags & 8) === 0,
      trace: (flags & 0x10) === 0 ? null : () => {},
    });
    const peerBits = 8 + (c & 7);
    const ownBits = 8 + ((c >> 3) & 7);
    const peerTakeover = (flags & 0x20) === 0;
    const ownTakeover = (flags & 0x40) === 0;
    const zlib =
      mode === 'zlib'
        ? new PerMessageDeflate(
            {
              ownNoContextTakeover: !ownTakeover,
              peerNoContextTakeover: !peerTakeover,
              ownMaxWindowBits: ownBits,
              peerMaxWindowBits: peerBits,
            },
            { threshold: THRESHOLDS[(b >> 5) & 3] },
          )
        : null;
    const compression: SenderCompression | null =
      mode === 'none' ? null : (zlib ?? { threshold: THRESHOLDS[(b >> 5) & 3]! });
    const budget = new InflateBudget(BUDGETS[(c >> 6) & 3]);
    const start = 1000;
    const protocol = new Protocol(role, options, start, { compression, inflateBudget: budget });
    const checks = new Checks(protocol, {
      role,
      mode,
      options,
      zlib,
      budget,
      now: start,
      peer: mode === 'none' ? null : { bits: peerBits, contextTakeover: peerTakeover },
      own: mode === 'zlib' ? { bits: ownBits, contextTakeover: ownTakeover } : null,
    });
    try {
      checks.settle();
      for (let steps = 0; !reader.done && steps < 200 && !checks.closed; steps++) await checks.step(reader);
      await checks.finish();
    } finally {
      zlib?.close();
    }
    check(budget.held === 0, () => `${budget.held} inflated bytes still held after the close`);
  },
};
