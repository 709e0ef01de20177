import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WebSocketServer } from '../src/index.js';
import { CloseCode, Opcode } from '../src/protocol/constants.js';
import { encodeFrame } from '../src/protocol/frame.js';
import { DEFAULT_MAX_MESSAGE_SIZE } from '../src/protocol/options.js';
import type { Receiver } from '../src/protocol/receiver.js';
import {
  ROLES,
  assertFailed,
  binary,
  bytes,
  concat,
  continuation,
  makeReceiver,
  onlyMessage,
  ping,
  pong,
  text,
  types,
} from './helpers/core.js';

const TOO_BIG = CloseCode.MessageTooBig;
const MiB = 1024 * 1024;

/** Just the header of a frame announcing `length` payload bytes (masked: MASK bit set, key not included). */
function headerOnly(opcode: number, length: number, masked: boolean, fin = true): Buffer {
  const maskBit = masked ? 0x80 : 0;
  const first = (fin ? 0x80 : 0) | opcode;
  if (length < 126) return bytes(first, maskBit | length);
  if (length <= 0xffff) return bytes(first, maskBit | 126, length >>> 8, length & 0xff);
  const high = Math.floor(length / 2 ** 32);
  const low = length >>> 0;
  return bytes(
    first,
    maskBit | 127,
    high >>> 24,
    (high >>> 16) & 0xff,
    (high >>> 8) & 0xff,
    high & 0xff,
    low >>> 24,
    (low >>> 16) & 0xff,
    (low >>> 8) & 0xff,
    low & 0xff,
  );
}

function filled(n: number, byte = 0x61): Buffer {
  return Buffer.alloc(n, byte);
}

describe('limits given as options are checked when the server is made', () => {
  for (const [name, value] of [
    ['maxMessageSize', -1],
    ['maxFramePayload', Number.NaN],
    ['highWaterMark', '1024'],
  ] as const) {
    it(`${name}: ${String(value)} is a RangeError, not a limit that never holds`, () => {
      assert.throws(() => new WebSocketServer({ [name]: value } as never), RangeError);
    });
  }

  it('a trace that is not a function is a TypeError', () => {
    assert.throws(() => new WebSocketServer({ trace: 'yes' } as never), TypeError);
  });

  it('a streamMessages that is not a boolean is a TypeError (a string would otherwise turn streaming on)', () => {
    assert.throws(() => new WebSocketServer({ streamMessages: 'false' } as never), TypeError);
  });
});

describe('RFC 6455 §10.4 "implementations SHOULD impose implementation-specific limits on frame size": maxFramePayload', () => {
  for (const role of ROLES) {
    const masked = role === 'server';
    for (const limit of [100, 1000, 70_000]) {
      it(`a frame of ${limit + 1} bytes over a ${limit}-byte frame limit fails with 1009 from the header alone, before any payload byte (${role})`, () => {
        const h = makeReceiver(role, { maxFramePayload: limit, maxMessageSize: 10 * limit });
        h.push(headerOnly(Opcode.Binary, limit + 1, masked));
        assertFailed(h, 'FrameTooBig', TOO_BIG);
      });

      it(`a frame of exactly ${limit} bytes, the frame limit, is accepted (${role})`, () => {
        const h = makeReceiver(role, { maxFramePayload: limit, maxMessageSize: 10 * limit });
        h.push(binary(role, filled(limit)));
        assert.equal(onlyMessage(h.events).data.length, limit);
      });
    }

    it(`the frame limit applies to every fragment, while the message may be larger (${role})`, () => {
      const h = makeReceiver(role, { maxFramePayload: 100, maxMessageSize: 1000 });
      h.push(
        concat(text(role, filled(100), false), continuation(role, filled(100), false), continuation(role, filled(100))),
      );
      assert.equal(onlyMessage(h.events).data.length, 300);
      h.push(concat(text(role, filled(100), false), headerOnly(Opcode.Continuation, 101, masked)));
      assert.deepEqual(types(h.events), ['message', 'error']);
      assertFailed(h, 'FrameTooBig', TOO_BIG);
    });

    it(`a 64-bit length of 2^53 fails with 1009 from the header alone (${role})`, () => {
      const h = makeReceiver(role);
      h.push(headerOnly(Opcode.Text, 2 ** 53, masked));
      assertFailed(h, 'FrameTooBig', TOO_BIG);
    });

    it(`a 64-bit length just under 2^63 fails with 1009 (${role})`, () => {
      const h = makeReceiver(role);
      h.push(bytes(0x82, (masked ? 0x80 : 0) | 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
      assertFailed(h, 'FrameTooBig', TOO_BIG);
    });
  }

  it('the frame limit defaults to the message limit, and can never exceed it', () => {
    const plain = makeReceiver('server', { maxMessageSize: 5000 }).receiver;
    assert.equal(plain.maxFramePayload, 5000);
    const capped = makeReceiver('server', { maxMessageSize: 5000, maxFramePayload: 9000 }).receiver;
    assert.equal(capped.maxFramePayload, 5000);
    const smaller = makeReceiver('server', { maxMessageSize: 5000, maxFramePayload: 300 }).receiver;
    assert.equal(smaller.maxFramePayload, 300);
  });
});

describe('RFC 6455 §10.4 "... and the total message size after reassembly from multiple frames": maxMessageSize', () => {
  for (const role of ROLES) {
    const masked = role === 'server';
    it(`a message larger than maxMessageSize across fragments fails with 1009, from the header of the fragment that crosses the limit (${role})`, () => {
      const h = makeReceiver(role, { maxMessageSize: 1000 });
      h.push(concat(binary(role, filled(400), false), continuation(role, filled(400), false)));
      assert.deepEqual(h.events, []);
      h.push(headerOnly(Opcode.Continuation, 201, masked));
      assertFailed(h, 'MessageTooBig', TOO_BIG);
    });

    it(`a text message larger than maxMessageSize across many small fragments fails with 1009 (${role})`, () => {
      const h = makeReceiver(role, { maxMessageSize: 50 });
      const frames = [text(role, 'x'.repeat(10), false)];
      for (let i = 0; i < 10; i++) frames.push(continuation(role, 'y'.repeat(10), i === 9));
      h.push(Buffer.concat(frames), 3);
      assertFailed(h, 'MessageTooBig', TOO_BIG);
    });

    it(`a message of exactly maxMessageSize bytes across fragments is accepted, and control frames in between do not count (${role})`, () => {
      const h = makeReceiver(role, { maxMessageSize: 1000 });
      h.push(
        concat(
          binary(role, filled(400), false),
          ping(role, filled(125)),
          continuation(role, filled(0), false),
          continuation(role, filled(599), false),
          ping(role, filled(125)),
          continuation(role, filled(1)),
        ),
      );
      assert.deepEqual(types(h.events), ['ping', 'ping', 'message']);
      assert.equal((h.events[2] as { data: Buffer }).data.length, 1000);
    });

    it(`the size count starts again with each message (${role})`, () => {
      const h = makeReceiver(role, { maxMessageSize: 100 });
      for (let i = 0; i < 5; i++) h.push(concat(text(role, filled(60), false), continuation(role, filled(40))));
      assert.deepEqual(types(h.events), ['message', 'message', 'message', 'message', 'message']);
    });
  }
});

describe('RFC 6455 §10.4 Limits: the 512-byte read limit of the classic Go (gorilla/websocket chat) design', () => {
  for (const role of ROLES) {
    const masked = role === 'server';
    it(`maxMessageSize 512: a 512-byte message is accepted (${role})`, () => {
      const h = makeReceiver(role, { maxMessageSize: 512 });
      h.push(concat(text(role, filled(512)), binary(role, filled(200), false), continuation(role, filled(312))));
      assert.deepEqual(types(h.events), ['message', 'message']);
    });

    it(`maxMessageSize 512: a 513-byte single frame fails with 1009 from its header (${role})`, () => {
      const h = makeReceiver(role, { maxMessageSize: 512 });
      h.push(headerOnly(Opcode.Text, 513, masked));
      assertFailed(h, 'FrameTooBig', TOO_BIG);
    });

    it(`maxMessageSize 512: a 513-byte message in two fragments fails with 1009 (${role})`, () => {
      const h = makeReceiver(role, { maxMessageSize: 512 });
      h.push(concat(text(role, filled(300), false), continuation(role, filled(213))));
      assertFailed(h, 'MessageTooBig', TOO_BIG);
    });
  }
});

describe('RFC 6455 §10.4 Limits apply to data: control frames are bounded by §5.5 (125 bytes) already', () => {
  for (const role of ROLES) {
    it(`maxMessageSize 64: a 125-byte ping is still answered, not failed with 1009 (${role})`, () => {
      const h = makeReceiver(role, { maxMessageSize: 64 });
      h.push(ping(role, filled(125, 0x70)));
      assert.deepEqual(types(h.events), ['ping']);
      assert.equal((h.events[0] as { data: Buffer }).data.length, 125);
    });

    it(`maxMessageSize 64: a 65-byte data frame still fails with 1009 (${role})`, () => {
      const h = makeReceiver(role, { maxMessageSize: 64 });
      h.push(binary(role, filled(65)));
      assertFailed(h, 'FrameTooBig', TOO_BIG);
    });
  }
});

describe('RFC 6455 §10.4 Limits: the default', () => {
  it('the default message limit is 64 MiB, and the frame limit follows it', () => {
    assert.equal(DEFAULT_MAX_MESSAGE_SIZE, 64 * MiB);
    const { receiver } = makeReceiver('server');
    assert.equal(receiver.maxMessageSize, 64 * MiB);
    assert.equal(receiver.maxFramePayload, 64 * MiB);
  });

  it('a 16 MiB masked message passes the default limit (server)', () => {
    const payload = Buffer.alloc(16 * MiB);
    for (let i = 0; i < payload.length; i += 4096) payload[i] = i >>> 12;
    const h = makeReceiver('server');
    const frame = encodeFrame({ opcode: Opcode.Binary, payload, maskKey: bytes(1, 2, 3, 4) });
    h.receiver.push(frame.subarray(0, 5 * MiB));
    h.receiver.push(frame.subarray(5 * MiB));
    assert.ok(onlyMessage(h.events).data.equals(payload), 'onlyMessage(h.events).data.equals(payload)');
  });

  it('a 16 MiB text message in 4 fragments passes the default limit (client)', () => {
    const payload = Buffer.alloc(16 * MiB, 0x61);
    const h = makeReceiver('client');
    const quarter = 4 * MiB;
    for (let i = 0; i < 4; i++) {
      const part = payload.subarray(i * quarter, (i + 1) * quarter);
      h.receiver.push(headerOnly(i === 0 ? Opcode.Text : Opcode.Continuation, part.length, false, i === 3));
      h.receiver.push(part);
    }
    const m = onlyMessage(h.events);
    assert.equal(m.isBinary, false);
    assert.equal(m.data.length, 16 * MiB);
  });

  it('a frame of exactly 64 MiB passes the default limit; 64 MiB + 1 fails with 1009 from the header alone (client)', () => {
    const payload = Buffer.alloc(64 * MiB);
    const ok = makeReceiver('client');
    ok.receiver.push(headerOnly(Opcode.Binary, payload.length, false));
    ok.receiver.push(payload);
    assert.equal(onlyMessage(ok.events).data.length, 64 * MiB);

    const tooBig = makeReceiver('client');
    tooBig.receiver.push(headerOnly(Opcode.Binary, 64 * MiB + 1, false));
    assertFailed(tooBig, 'FrameTooBig', TOO_BIG);
  });

  it('a fragmented message reaching 64 MiB + 1 fails with 1009 (client)', () => {
    const half = Buffer.alloc(32 * MiB);
    const h = makeReceiver('client');
    h.receiver.push(headerOnly(Opcode.Binary, half.length, false, false));
    h.receiver.push(half);
    h.receiver.push(headerOnly(Opcode.Continuation, half.length, false, false));
    h.receiver.push(half);
    assert.deepEqual(h.events, []);
    h.receiver.push(headerOnly(Opcode.Continuation, 1, false, true));
    assertFailed(h, 'MessageTooBig', TOO_BIG);
  });
});

describe('RFC 6455 §10.4: what was read is held only while it is needed, not for as long as a peer can arrange', () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const READ = 64 * 1024;

  /**
   * Push `stream` cut at `cuts`, each chunk as a stream would hand it over: memory of its own. Weak
   * references to that memory (the ArrayBuffer: a view keeps it alive after the chunk's own Buffer
   * object is gone) tell which are still alive. (In a function of its own, so that no suspended
   * frame of the test's holds the last chunk.)
   */
  function pushInChunks(receiver: Receiver, stream: Buffer, cuts: number[]): () => number {
    const refs: WeakRef<ArrayBufferLike>[] = [];
    let from = 0;
    for (const to of [...cuts, stream.length]) {
      // Not from Node's shared pool (Buffer.from would take a small one from it).
      const chunk = Buffer.allocUnsafeSlow(to - from);
      stream.copy(chunk, 0, from, to);
      refs.push(new WeakRef(chunk.buffer));
      receiver.push(chunk);
      from = to;
    }
    return () => refs.filter((ref) => ref.deref() !== undefined).length;
  }

  /** Garbage collection, with turns of the event loop between (a WeakRef holds its target for the current turn). */
  async function collect(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  it('a flood of pings read in chunks that each end inside a frame header keeps no parsed chunk alive (server)', async () => {
    // 6-byte masked pings; after a first chunk of 1 byte, 64 KiB chunks end 5, 3, 1, 5, ... bytes into a
    // ping: never at its end, and never between its 2-byte header and its 4-byte masking key.
    // The stream stops 1 byte short of its last ping, so the input is never used up.
    const pings = Math.ceil((40 * READ) / 6);
    const stream = Buffer.concat(Array.from({ length: pings }, () => ping('server'))).subarray(0, -1);
    const cuts = Array.from({ length: 40 }, (_, i) => 1 + i * READ);
    const h = makeReceiver('server');
    const alive = pushInChunks(h.receiver, stream, cuts);
    await collect();
    assert.equal(h.events.length, pings - 1);
    assert.ok(h.events.every((e) => e.type === 'ping'));
    // Every chunk was parsed to its end but the last, whose 5 bytes of the unfinished ping are kept
    // on their own.
    assert.equal(alive(), 0, `${alive()} of ${cuts.length + 1} chunks still alive after parsing them`);
  });

  for (const [what, frame] of [
    ['a ping', ping('server', 'p'.repeat(100))],
    ['a message', binary('server', Buffer.alloc(10_000, 0x6d))],
  ] as const) {
    it(`${what} cut short by the end of a read keeps the bytes it has so far, not the read (server)`, async () => {
      // 64 KiB of pongs, then the first 50 bytes of the frame; the rest comes with the next read.
      const filler = Buffer.concat(Array.from({ length: 500 }, () => pong('server', 'x'.repeat(125))));
      const stream = concat(filler, frame);
      const h = makeReceiver('server');
      const alive = pushInChunks(h.receiver, stream.subarray(0, filler.length + 50), []);
      await collect();
      assert.equal(alive(), 0, 'the read is still alive');
      h.receiver.push(Buffer.from(stream.subarray(filler.length + 50)));
      const last = h.events.at(-1)!;
      assert.equal(last.type, what === 'a ping' ? 'ping' : 'message');
      assert.ok(
        (last as { data: Buffer }).data.equals(
          what === 'a ping' ? Buffer.from('p'.repeat(100)) : Buffer.alloc(10_000, 0x6d),
        ),
      );
    });
  }

  it('a message in 4 KiB fragments, each read with 60 KiB of pongs, holds its bytes, not the chunks they came in (server)', async () => {
    const fragments = 32;
    const payload = Buffer.alloc(fragments * 4096);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
    // One read: a 4 KiB fragment, then unsolicited pongs (RFC 6455 §5.5.3) up to 64 KiB.
    const filler = Buffer.concat(Array.from({ length: 460 }, () => pong('server', 'x'.repeat(125))));
    const reads = Array.from({ length: fragments }, (_, i) =>
      concat(
        frameFor(i === 0 ? Opcode.Binary : Opcode.Continuation, payload.subarray(i * 4096, (i + 1) * 4096), i === 31),
        filler,
      ),
    );
    const h = makeReceiver('server');
    const cuts = [...reads.keys()].slice(1, -1).map(offsetOf);
    const alive = pushInChunks(h.receiver, concat(...reads.slice(0, -1)), cuts);
    await collect();
    assert.deepEqual(
      h.events.filter((e) => e.type === 'message'),
      [],
      'the message is not complete yet',
    );
    // The first fragment stays a view (one chunk per message); the others are copied out of theirs.
    assert.ok(alive() <= 1, `${alive()} of ${fragments - 1} chunks still alive while the message waits`);
    h.receiver.push(reads.at(-1)!);
    assert.ok(onlyMessage(h.events.filter((e) => e.type === 'message')).data.equals(payload));

    function offsetOf(i: number): number {
      return reads.slice(0, i).reduce((n, read) => n + read.length, 0);
    }
    function frameFor(opcode: number, data: Buffer, fin: boolean): Buffer {
      return opcode === Opcode.Binary ? binary('server', data, fin) : continuation('server', data, fin);
    }
  });
});
