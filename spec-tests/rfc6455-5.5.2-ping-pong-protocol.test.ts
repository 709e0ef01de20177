/**
 * RFC 6455 §5.5.2 Ping and §5.5.3 Pong, on the protocol state machine (src/protocol/protocol.ts): the
 * answers it writes, when it does not answer, and its ping loop (`pingInterval`, `pongTimeout`)
 * driven by `timeout(now)` at the `nextDeadline` it reports. rfc6455-5.5-control-frames.test.ts
 * covers the parsing of control frames by the receiver alone.
 *
 * The peer's frames come from helpers/core.ts's encoder; what we write is decoded by
 * helpers/protocol.ts (which checks that a client masks every frame and a server none).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bytes, concat } from './helpers/core.js';
import { FakeCompression, Harness, OP, ROLES, peerOf } from './helpers/protocol.js';

describe('RFC 6455 §5.5.2 "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response"', () => {
  for (const role of ROLES) {
    it(`§5.5.3 "A Pong frame sent in response to a Ping frame must have identical "Application data"" (${role})`, () => {
      for (const payload of [
        Buffer.alloc(0),
        Buffer.from('hello'),
        bytes(0, 0xff, 0x80, 0x0a),
        Buffer.alloc(125, 0xa5),
      ]) {
        const h = new Harness(role);
        h.receive(peerOf(role).ping(payload));
        assert.equal(h.wire.length, 1);
        const frame = h.wire[0]!;
        assert.equal(frame.opcode, OP.PONG);
        assert.equal(frame.fin, true);
        assert.deepEqual(frame.payload, payload, `payload of ${payload.length} bytes`);
        // The application hears of the ping too.
        assert.deepEqual(h.received, [{ type: 'ping', data: payload }]);
      }
    });

    it(`the pong's bytes: opcode 0xA, the ping's data, masked by a client only (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).ping('Hello'));
      const raw = Buffer.concat(h.written);
      assert.equal(raw[0], 0x8a);
      if (role === 'server') {
        // RFC 6455 §5.7: "0x8a 0x05 ..." unmasked.
        assert.deepEqual(raw, Buffer.from([0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]));
      } else {
        assert.equal(raw[1], 0x85, 'mask bit and length 5');
        const key = raw.subarray(2, 6);
        assert.deepEqual(Buffer.from(raw.subarray(6).map((b, i) => b ^ key[i % 4]!)), Buffer.from('Hello'));
      }
    });

    it(`every ping is answered, in order (we do not use §5.5.3's MAY to answer only the latest) (${role})`, () => {
      const h = new Harness(role);
      const p = peerOf(role);
      h.receive(concat(p.ping('1'), p.ping('2'), p.text('between'), p.ping('3')));
      assert.deepEqual(h.frames(), ['pong "1"', 'pong "2"', 'pong "3"']);
      assert.deepEqual(h.take(), [
        'ping "1"',
        'ping "2"',
        'message text "between"',
        'ping "3"',
        '> pong "1"',
        '> pong "2"',
        '> pong "3"',
      ]);
    });

    it(`a ping between the fragments of a message is answered, and the message still arrives whole (${role})`, () => {
      const h = new Harness(role);
      const p = peerOf(role);
      h.receive(concat(p.text('frag', false), p.ping('mid'), p.continuation('ment')));
      assert.deepEqual(h.frames(), ['pong "mid"']);
      assert.deepEqual(
        h.received.map((r) => `${r.type} ${r.data}`),
        ['ping mid', 'message fragment'],
      );
    });

    it(`a ping split across chunks, byte by byte, is answered once complete (${role})`, () => {
      const h = new Harness(role);
      const frame = peerOf(role).ping('slow');
      for (let i = 0; i < frame.length; i++) {
        assert.equal(h.wire.length, 0, `no answer after ${i} bytes`);
        h.receive(frame.subarray(i, i + 1));
      }
      assert.deepEqual(h.frames(), ['pong "slow"']);
    });

    it(`"It SHOULD respond with Pong frame as soon as is practical": the pong does not wait behind a message being compressed (${role})`, () => {
      const compression = new FakeCompression();
      const h = new Harness(role, { compression });
      h.send('big message', { compress: true });
      h.receive(peerOf(role).ping('now'));
      assert.deepEqual(h.frames(), ['pong "now"'], 'the pong is written while zlib works');
      compression.finish();
      h.write();
      assert.deepEqual(h.frames(), ['pong "now"', 'text rsv1 "Z(big message)"']);
    });

    it(`after we sent our close frame a ping is still answered: §5.5.1 forbids only data frames after it (${role})`, () => {
      const h = new Harness(role);
      h.close(1000, 'bye');
      h.receive(peerOf(role).ping('still?'));
      assert.deepEqual(h.frames(), ['close 1000 "bye"', 'pong "still?"']);
    });

    it(`"unless it already received a Close frame": a ping after the peer's close frame, in the same chunk, is not answered (${role})`, () => {
      const h = new Harness(role);
      const p = peerOf(role);
      h.receive(concat(p.close(1000), p.ping('too late')));
      assert.deepEqual(h.frames(), ['close 1000']);
      assert.deepEqual(h.received, [], 'nor reported');
    });

    it(`"unless it already received a Close frame": nor in a later chunk (${role})`, () => {
      const h = new Harness(role);
      const p = peerOf(role);
      h.close(1000);
      h.receive(p.close(1000));
      h.receive(p.ping('too late'));
      assert.deepEqual(h.frames(), ['close 1000']);
    });

    it(`a ping before the peer's close, in the same chunk, is answered before our close (${role})`, () => {
      const h = new Harness(role);
      const p = peerOf(role);
      h.receive(concat(p.ping('first'), p.close(1001)));
      assert.deepEqual(h.frames(), ['pong "first"', 'close 1001']);
    });

    it(`autoPong off: the ping is reported and not answered; the application may answer it (${role})`, () => {
      const h = new Harness(role, { options: { autoPong: false } });
      h.receive(peerOf(role).ping('manual'));
      assert.deepEqual(h.take(), ['ping "manual"']);
      assert.equal(h.wire.length, 0);
      h.pong(h.received[0]!.data);
      assert.deepEqual(h.frames(), ['pong "manual"']);
    });
  }
});

describe('RFC 6455 §5.5.3 Pong', () => {
  for (const role of ROLES) {
    it(`"A Pong frame MAY be sent unsolicited" (${role})`, () => {
      const h = new Harness(role);
      h.pong('heartbeat');
      assert.deepEqual(h.frames(), ['pong "heartbeat"']);
    });

    it(`"A response to an unsolicited Pong frame is not expected": it is reported, nothing is written (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).pong('unasked'));
      assert.deepEqual(h.take(), ['pong "unasked"']);
      assert.equal(h.wire.length, 0);
    });

    it(`our own ping goes with its application data (${role})`, () => {
      const h = new Harness(role);
      h.ping(bytes(1, 2, 3));
      assert.deepEqual(h.frames(), ['ping <010203>']);
    });
  }
});

describe('RFC 6455 §5.5.2 the ping loop: "A Ping frame may serve either as a keepalive or as a means to verify that the remote endpoint is still responsive"', () => {
  for (const role of ROLES) {
    it(`a ping is sent when pingInterval has passed, and the next wake-up is asked for (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 1000, pongTimeout: 3000 }, now: 0 });
      assert.deepEqual(h.take(), ['wake 1000'], 'the first wake-up is asked for at once');
      h.timeout(999);
      assert.deepEqual(h.take(), ['wake 1000'], 'too early: no ping, the same wake-up again');
      h.timeout(1000);
      assert.deepEqual(h.take(), ['> ping ""', 'wake 2000']);
    });

    it(`the peer that answers keeps the connection: ping, pong, ping ... (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 1000, pongTimeout: 1500 } });
      for (let t = 1000; t <= 10_000; t += 1000) {
        h.timeout(t);
        // The peer answers 100 ms later, with the ping's data.
        const ping = h.wire[h.wire.length - 1]!;
        assert.equal(ping.opcode, OP.PING);
        h.receive(peerOf(role).pong(ping.payload), t + 100);
      }
      assert.equal(h.destroyed, false);
      assert.equal(h.wire.filter((f) => f.opcode === OP.PING).length, 10);
    });

    it(`the wake-up asked for is the earliest deadline: the next ping or the pong deadline (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 1000, pongTimeout: 2500 } });
      h.take();
      h.timeout(1000);
      h.timeout(2000);
      // Next ping at 3000, but nothing received since 0: the pong deadline at 2500 comes first.
      assert.deepEqual(h.takeNoWakes(), ['> ping ""', '> ping ""']);
      assert.equal(h.log[h.log.length - 1], 'wake 2500');
    });

    it(`a late wake-up sends one ping, not one per missed interval (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 1000, pongTimeout: 60_000 } });
      h.take();
      h.timeout(5500);
      assert.deepEqual(h.take(), ['> ping ""', 'wake 6500']);
    });

    it(`"any time after the connection is established and before the connection is closed": no ping once the closing handshake started (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 1000, pongTimeout: 3000, closeTimeout: 5000 } });
      h.close(1000, '', 500);
      h.take();
      for (let t = 1000; t < 5000; t += 500) h.timeout(t);
      assert.deepEqual(h.frames(), ['close 1000'], 'no ping after the close frame');
      assert.equal(h.destroyed, false, 'and no pong deadline: the close deadline governs');
    });

    it(`no ping once the peer's close frame arrived (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 1000, pongTimeout: 3000 } });
      h.receive(peerOf(role).close(1000), 500);
      h.timeout(1000);
      h.timeout(2000);
      assert.deepEqual(h.frames(), ['close 1000']);
    });

    it(`no ping after the connection failed (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 1000, pongTimeout: 3000 } });
      h.receive(peerOf(role).wronglyMasked(), 500);
      h.timeout(1000);
      h.timeout(2000);
      assert.equal(h.wire.filter((f) => f.opcode === OP.PING).length, 0);
    });

    it(`pingInterval 0: no ping, no wake-up (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 0 } });
      h.timeout(1e9);
      assert.deepEqual(h.take(), []);
    });
  }
});
