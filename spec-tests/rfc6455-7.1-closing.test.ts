/**
 * RFC 6455 §7.1 (definitions of closing) and the closing rules of §5.5.1, on the protocol state
 * machine (src/protocol/protocol.ts): bytes in, handler calls and bytes out, no socket, no timer.
 *
 * The peer's frames come from the hand encoder of helpers/core.ts; what we write is decoded by
 * helpers/protocol.ts's own decoder, which also checks every frame's masking by role. Time is a
 * number (ms). The close deadline is the default `closeTimeout` (5000 ms) unless a test says
 * otherwise; the ping loop is off.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectionTimeoutError, ProtocolError } from '../src/protocol/errors.js';
import { bytes, concat, utf8 } from './helpers/core.js';
import { FakeCompression, Harness, OP, ROLES, closePayloadOf, everyKindOfFrame, peerOf } from './helpers/protocol.js';

const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

describe('RFC 6455 §7.1.2 Start the WebSocket Closing Handshake', () => {
  for (const role of ROLES) {
    it(`"an endpoint MUST send a Close control frame ... whose status code is set to /code/ and whose close reason is set to /reason/" (${role})`, () => {
      const h = new Harness(role);
      h.close(1000, 'done');
      assert.deepEqual(h.takeNoWakes(), ['> close 1000 "done"']);
      assert.equal(h.wire.length, 1);
      const { code, reason } = closePayloadOf(h.wire[0]!);
      assert.equal(code, 1000);
      assert.deepEqual(reason, utf8('done'));
    });

    it(`the close reason goes as its UTF-8 bytes, multi-byte characters included (${role})`, () => {
      const h = new Harness(role);
      const reason = 'fin – für heute 👋';
      h.close(4001, reason);
      const payload = closePayloadOf(h.wire[0]!);
      assert.equal(payload.code, 4001);
      assert.deepEqual(payload.reason, Buffer.from(reason, 'utf8'));
    });

    it(`§5.5.1 "The Close frame MAY contain a body": close() without a code sends an empty close frame (${role})`, () => {
      const h = new Harness(role);
      h.close(undefined, '');
      assert.deepEqual(h.takeNoWakes(), ['> close']);
      assert.equal(h.wire[0]!.payload.length, 0);
    });

    it(`the close frame is written after the messages sent before it, in order (${role})`, () => {
      const h = new Harness(role);
      h.send('one').send(bytes(2)).close(1000, 'bye');
      assert.deepEqual(h.frames(), ['text "one"', 'binary <02>', 'close 1000 "bye"']);
    });

    it(`a second close() does nothing: one close frame, one deadline (${role})`, () => {
      const h = new Harness(role);
      h.close(1000, 'first', 10);
      h.close(4000, 'second', 20);
      assert.deepEqual(h.take(), ['> close 1000 "first"', 'wake 5010']);
    });

    it(`§5.5.1 "The application MUST NOT send any more data frames after sending a Close frame": canSend turns false (${role})`, () => {
      const h = new Harness(role);
      assert.equal(h.protocol.canSend, true);
      h.close(1000);
      assert.equal(h.protocol.canSend, false, 'the driver refuses send() once canSend is false');
    });

    it(`after the peer's close frame our answer is sent, and canSend is false from then on (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).close(1000));
      assert.equal(h.protocol.canSend, false);
    });

    it(`§5.5.1 "The application MUST NOT send any more data frames after sending a Close frame", §6.1 "The endpoint MUST ensure the WebSocket connection is in the OPEN state": send() itself writes no data frame after our close (${role})`, () => {
      // The driver (src/driver/connection.ts) refuses first, for its users; the state machine enforces
      // the rule on its own too, so no driver can break it.
      const h = new Harness(role);
      h.close(1000);
      h.send('too late');
      // Pre-framed bytes are a server's broadcast; a client takes none at all (§5.3: it masks each frame).
      if (role === 'server') assert.equal(h.protocol.sendFramed(peerOf(h.peerRole).text('framed elsewhere')), false);
      h.write();
      assert.deepEqual(h.frames(), ['close 1000']);
    });

    it(`only control frames may follow our close frame: a ping received then is answered with a pong (${role})`, () => {
      const h = new Harness(role);
      h.close(1000);
      h.take();
      h.receive(peerOf(role).ping('still there?'));
      assert.deepEqual(h.take(), ['ping "still there?"', '> pong "still there?"']);
      assert.deepEqual(h.frames(), ['close 1000', 'pong "still there?"']);
    });

    it(`the closing handshake started by us ends with both close frames exchanged (${role})`, () => {
      const h = new Harness(role);
      h.close(1000, 'bye');
      h.receive(peerOf(role).close(1000, 'bye'));
      assert.equal(h.protocol.closeSent, true);
      assert.equal(h.protocol.closeReceived, true);
      // The peer's close frame is not answered: ours went already.
      assert.deepEqual(h.frames(), ['close 1000 "bye"']);
    });
  }
});

describe('RFC 6455 §7.1.1 Close the WebSocket Connection', () => {
  it('server: "when a server is instructed to _Close the WebSocket Connection_ it SHOULD initiate a TCP Close immediately" (we started)', () => {
    const h = new Harness('server');
    h.close(1000, 'bye');
    assert.deepEqual(h.take(), ['> close 1000 "bye"', 'wake 5000']);
    assert.equal(h.ended, false, 'no TCP close before the client answered');
    h.receive(peerOf('server').close(1000, 'bye'), 30);
    // Both close frames went: the server ends TCP at once, without waiting for the client's FIN.
    assert.deepEqual(h.take(), ['end']);
  });

  it('server: the peer started: our answer is written, then TCP is ended, in the same turn', () => {
    const h = new Harness('server');
    h.receive(peerOf('server').close(1001, 'leaving'));
    assert.deepEqual(h.take(), ['> close 1001 "leaving"', 'end', 'wake 5000']);
    assert.equal(h.destroyed, false, 'a half-close (FIN), not a reset: the close frame must arrive');
  });

  it('client: "when a client is instructed to do the same, it SHOULD wait for a TCP Close from the server" (we started)', () => {
    const h = new Harness('client');
    h.close(1000, 'bye');
    h.receive(peerOf('client').close(1000, 'bye'), 30);
    assert.deepEqual(h.take(), ['> close 1000 "bye"', 'wake 5000']);
    assert.equal(h.ended, false, 'the client does not end TCP first');
    h.timeout(4999);
    assert.equal(h.ended || h.destroyed, false, 'still waiting before the deadline');
    // The server's FIN: now the client ends its side too.
    h.receiveEnd();
    assert.deepEqual(h.takeNoWakes(), ['end']);
    assert.deepEqual(h.streamClosed(), { code: 1000, reason: 'bye', wasClean: true });
  });

  it('client: the server started: the client answers and waits for the server to end TCP', () => {
    const h = new Harness('client');
    h.receive(peerOf('client').close(1000, 'bye'));
    assert.deepEqual(h.take(), ['> close 1000 "bye"', 'wake 5000']);
    assert.equal(h.ended || h.destroyed, false);
    h.receiveEnd();
    assert.deepEqual(h.take(), ['end']);
  });

  it('client: "In abnormal cases (such as not having received a TCP Close from the server after a reasonable amount of time) a client MAY initiate the TCP Close": at closeTimeout it destroys the stream', () => {
    const h = new Harness('client', { options: { closeTimeout: 2000 }, now: 100 });
    h.close(1000, '', 100);
    h.receive(peerOf('client').close(1000), 150);
    assert.deepEqual(h.take(), ['> close 1000', 'wake 2100']);
    h.timeout(2099);
    assert.equal(h.ended || h.destroyed, false);
    h.take();
    h.timeout(2100);
    assert.deepEqual(h.take(), ['error ConnectionTimeoutError close', 'destroy']);
    assert.ok(h.errors[0] instanceof ConnectionTimeoutError, `a ConnectionTimeoutError, got ${h.errors[0]}`);
    // §7.1.4: the handshake was complete when TCP closed: cleanly, whoever closed TCP.
    assert.deepEqual(h.streamClosed(), { code: 1000, reason: '', wasClean: true });
  });

  it('server: a client that never closes TCP after the handshake is dropped at closeTimeout', () => {
    const h = new Harness('server');
    h.receive(peerOf('server').close(1000));
    h.take();
    h.timeout(5000);
    assert.deepEqual(h.take(), ['error ConnectionTimeoutError close', 'destroy']);
    assert.deepEqual(h.streamClosed(), { code: 1000, reason: '', wasClean: true });
  });

  for (const role of ROLES) {
    it(`"discarding any trailing bytes that may have been received": nothing after the peer's close frame is read (${role})`, () => {
      const h = new Harness(role);
      const p = peerOf(role);
      // In the chunk of the close frame, and in later chunks.
      h.receive(concat(p.text('before'), p.close(1000, 'bye'), everyKindOfFrame(role)));
      h.receive(everyKindOfFrame(role));
      h.receive(p.wronglyMasked());
      const log = h.takeNoWakes();
      assert.deepEqual(log.slice(0, 2), ['message text "before"', '> close 1000 "bye"']);
      // No message, ping, pong, error or second answer after the close frame.
      assert.deepEqual(log.slice(2), role === 'server' ? ['end'] : []);
      assert.deepEqual(h.frames(), ['close 1000 "bye"']);
      assert.deepEqual(h.streamClosed(), { code: 1000, reason: 'bye', wasClean: true });
    });
  }
});

describe('RFC 6455 §7.1.3 The WebSocket Closing Handshake is Started', () => {
  for (const role of ROLES) {
    it(`"Upon either sending ... a Close control frame ... the WebSocket connection is in the CLOSING state" (${role})`, () => {
      const h = new Harness(role, { now: 1000 });
      assert.equal(h.protocol.state, OPEN);
      h.close(1000, '', 1234);
      assert.equal(h.protocol.state, CLOSING);
      assert.equal(h.protocol.closeSent, true);
      assert.equal(h.protocol.closeReceived, false);
      // The close deadline starts with the handshake.
      assert.deepEqual(h.take(), ['> close 1000', 'wake 6234']);
    });

    it(`"Upon either ... receiving a Close control frame ... the WebSocket connection is in the CLOSING state" (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).close(1000), 700);
      assert.equal(h.protocol.state, CLOSING);
      assert.equal(h.protocol.closeReceived, true);
      assert.equal(h.protocol.closeSent, true, 'answered');
      assert.ok(h.take().includes('wake 5700'), 'the close deadline is asked for');
    });

    it(`a closeTimeout of 0 starts no deadline (${role})`, () => {
      const h = new Harness(role, { options: { closeTimeout: 0 } });
      h.close(1000);
      assert.equal(h.protocol.state, CLOSING);
      assert.deepEqual(h.take(), ['> close 1000']);
      h.timeout(1e9);
      assert.deepEqual(h.take(), [], 'nothing is due, ever');
    });
  }
});

describe('RFC 6455 §7.1.4 The WebSocket Connection is Closed', () => {
  for (const role of ROLES) {
    it(`"When the underlying TCP connection is closed ... the WebSocket connection is in the CLOSED state" (${role})`, () => {
      const h = new Harness(role);
      h.streamClosed();
      assert.equal(h.protocol.state, CLOSED);
      assert.equal(h.protocol.canSend, false);
    });

    it(`once CLOSED no call writes, schedules or reports anything, and bytes are not read (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 1000 } });
      h.receive(peerOf(role).text('before'));
      h.streamClosed();
      h.take();
      h.receive(everyKindOfFrame(role), 10);
      h.receive(peerOf(role).wronglyMasked(), 20);
      h.close(1000, '', 30);
      h.fail(1002, 'late', new Error('late'), false, 40);
      h.timeout(100_000);
      h.terminate();
      assert.deepEqual(h.take(), []);
      assert.equal(h.protocol.state, CLOSED);
      assert.deepEqual(h.frames(), []);
    });

    it(`once CLOSED, bytes are not read even on a connection that had received nothing before, and the peer's end is not answered (${role})`, () => {
      const h = new Harness(role);
      h.streamClosed();
      h.take();
      h.receive(everyKindOfFrame(role), 10);
      h.receiveEnd();
      assert.deepEqual(h.take(), []);
      assert.equal(h.protocol.state, CLOSED);
    });

    for (const starter of ['we', 'the peer'] as const) {
      it(`"If the TCP connection was closed after the WebSocket closing handshake was completed, the WebSocket connection is said to have been closed _cleanly_" (${role}, ${starter} started)`, () => {
        const h = new Harness(role);
        if (starter === 'we') h.close(1000, 'ok').receive(peerOf(role).close(1000, 'ok'));
        else h.receive(peerOf(role).close(1000, 'ok'));
        assert.deepEqual(h.streamClosed(), { code: 1000, reason: 'ok', wasClean: true });
      });
    }

    it(`TCP closed after our close frame only: not cleanly (${role})`, () => {
      const h = new Harness(role);
      h.close(1000, 'bye');
      assert.deepEqual(h.streamClosed(), { code: 1006, reason: '', wasClean: false });
    });

    it(`TCP closed while our answer to the peer's close still waits behind a compression: not cleanly, our close frame never left (${role})`, () => {
      const compression = new FakeCompression();
      const h = new Harness(role, { compression });
      h.send('compressing', { compress: true });
      h.receive(peerOf(role).close(1000, 'bye'));
      assert.deepEqual(h.frames(), [], 'nothing written yet: our close waits behind the message');
      // The peer drops TCP before zlib finishes.
      const report = h.streamClosed();
      assert.equal(report.code, 1000, "the peer's close frame was received");
      assert.equal(report.wasClean, false, 'the closing handshake was not completed');
    });
  }
});

describe('RFC 6455 §7.1.5 The WebSocket Connection Close Code', () => {
  for (const role of ROLES) {
    it(`"the status code ... contained in the first Close control frame received": the peer's code, even when we closed with another (${role})`, () => {
      const h = new Harness(role);
      h.close(1000, 'mine');
      h.receive(peerOf(role).close(4000, 'theirs'));
      assert.deepEqual(h.streamClosed(), { code: 4000, reason: 'theirs', wasClean: true });
    });

    it(`the peer started with 1001: 1001 (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).close(1001));
      assert.deepEqual(h.streamClosed(), { code: 1001, reason: '', wasClean: true });
    });

    it(`"If this Close control frame contains no status code, _The WebSocket Connection Close Code_ is considered to be 1005" (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).close());
      assert.deepEqual(h.streamClosed(), { code: 1005, reason: '', wasClean: true });
    });

    it(`"If _The WebSocket Connection is Closed_ and no Close control frame was received ... considered to be 1006": after our close (${role})`, () => {
      const h = new Harness(role);
      h.close(4000, 'mine');
      assert.deepEqual(h.streamClosed(), { code: 1006, reason: '', wasClean: false });
    });

    it(`"... considered to be 1006": TCP lost while OPEN (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).text('hello'));
      assert.deepEqual(h.streamClosed(), { code: 1006, reason: '', wasClean: false });
    });

    it(`a connection we failed reports the code we failed it with, not clean (${role})`, () => {
      // §7.1.5 read to the letter would say 1006 here (no close frame was received, and §7.1.7
      // forbids reading the peer's answer). The library reports the code it sent instead, which
      // tells the application why (README, "Close codes"); wasClean stays false either way.
      const h = new Harness(role);
      h.receive(peerOf(role).wronglyMasked());
      h.receive(peerOf(role).close(1002));
      const report = h.streamClosed();
      assert.equal(report.code, 1002);
      assert.equal(report.wasClean, false);
    });

    it(`§7.1.5 NOTE, closes crossing: each side sent and received a close frame; each reports the other's code (${role})`, () => {
      // Our close(1001) and the peer's close(1000) cross on the wire: neither is answered.
      const h = new Harness(role);
      h.close(1001, 'going away');
      h.receive(peerOf(role).close(1000, 'done'));
      assert.deepEqual(h.frames(), ['close 1001 "going away"'], 'no second close frame');
      assert.deepEqual(h.streamClosed(), { code: 1000, reason: 'done', wasClean: true });
    });
  }
});

describe('RFC 6455 §7.1.6 The WebSocket Connection Close Reason', () => {
  for (const role of ROLES) {
    it(`"the UTF-8-encoded data following the status code ... in the first Close control frame received" (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).close(1000, 'tschüß 🌙'));
      assert.deepEqual(h.streamClosed(), { code: 1000, reason: 'tschüß 🌙', wasClean: true });
    });

    it(`"If there is no such data in the Close control frame, _The WebSocket Connection Close Reason_ is the empty string" (${role})`, () => {
      for (const frame of [peerOf(role).close(1000), peerOf(role).close()]) {
        const h = new Harness(role);
        h.receive(frame);
        assert.equal(h.streamClosed().reason, '');
      }
    });

    it(`our own reason is not the close reason: the peer's is (${role})`, () => {
      const h = new Harness(role);
      h.close(1000, 'ours');
      h.receive(peerOf(role).close(1000));
      assert.equal(h.streamClosed().reason, '');
    });

    it(`no close frame received: the reason is empty (${role})`, () => {
      const h = new Harness(role);
      h.close(1000, 'ours');
      assert.equal(h.streamClosed().reason, '');
    });
  }
});

describe('RFC 6455 §7.1.7 Fail the WebSocket Connection', () => {
  for (const role of ROLES) {
    it(`"the endpoint SHOULD send a Close frame with an appropriate status code ... before proceeding to _Close the WebSocket Connection_" (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).wronglyMasked());
      assert.deepEqual(h.takeNoWakes(), [
        'error ProtocolError 1002',
        `> close 1002 "${role === 'server' ? 'unmasked frame from a client' : 'masked frame from a server'}"`,
        'end',
      ]);
      assert.equal(h.protocol.state, CLOSING);
      assert.equal(h.protocol.closeSent, true);
      assert.equal(h.protocol.closeReceived, false);
    });

    it(`"the ${role} ... MAY report the problem": an error event carries the ProtocolError with its close code (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).frame({ opcode: 0x3 }));
      assert.equal(h.errors.length, 1);
      assert.ok(h.errors[0] instanceof ProtocolError, `a ProtocolError, got ${h.errors[0]}`);
      assert.equal((h.errors[0] as ProtocolError).closeCode, 1002);
    });

    it(`"MUST NOT continue to attempt to process data (including a responding Close frame)": the rest of the chunk is ignored (${role})`, () => {
      const h = new Harness(role);
      const p = peerOf(role);
      h.receive(concat(p.text('before'), p.ping('before'), p.wronglyMasked(), everyKindOfFrame(role)));
      assert.deepEqual(h.takeNoWakes(), [
        'message text "before"',
        'ping "before"',
        'error ProtocolError 1002',
        '> pong "before"',
        `> close 1002 ${JSON.stringify(role === 'server' ? 'unmasked frame from a client' : 'masked frame from a server')}`,
        'end',
      ]);
    });

    it(`"MUST NOT continue to attempt to process data (including a responding Close frame)": later chunks, the peer's close among them, produce nothing (${role})`, () => {
      const h = new Harness(role);
      const p = peerOf(role);
      h.receive(p.frame({ opcode: OP.TEXT, payload: 'x', rsv2: true }));
      h.take();
      h.receive(p.close(1002, 'you too'), 10);
      h.receive(everyKindOfFrame(role), 20);
      h.receive(p.frame({ opcode: 0xb }), 30);
      h.receiveEnd();
      assert.deepEqual(h.take(), [], 'no event, no frame, no second end');
      assert.equal(h.protocol.closeReceived, false, "the peer's close frame was not read");
      assert.deepEqual(h.streamClosed(), {
        code: 1002,
        reason: 'RSV2 or RSV3 set, and no extension defines them',
        wasClean: false,
      });
    });

    for (const [how, failIt] of [
      ['zlib failed (1011)', (h: Harness) => h.fail(1011, 'compression failed', new Error('zlib'))],
      ['the peer is too slow (1008, immediately)', (h: Harness) => h.fail(1008, 'peer too slow', null, true)],
    ] as const) {
      it(`"MUST NOT continue to attempt to process data": also when the connection fails before the peer sent a byte, ${how} (${role})`, () => {
        const h = new Harness(role);
        failIt(h);
        h.take();
        h.receive(everyKindOfFrame(role));
        assert.deepEqual(h.take(), [], 'nothing read after the failure');
        assert.equal(h.protocol.closeReceived, false);
        assert.equal(h.streamClosed().wasClean, false);
      });
    }

    it(`the peer that never closes TCP after we failed is dropped at closeTimeout (${role})`, () => {
      const h = new Harness(role, { now: 50 });
      h.receive(peerOf(role).wronglyMasked(), 50);
      assert.ok(h.take().includes('wake 5050'), 'the close deadline is asked for');
      h.timeout(5049);
      assert.equal(h.destroyed, false);
      h.take();
      h.timeout(5050);
      assert.deepEqual(h.take(), ['error ConnectionTimeoutError close', 'destroy']);
    });

    it(`fail() by the driver or application: a close frame with its code, TCP ended, no error event without an error (${role})`, () => {
      const h = new Harness(role);
      h.fail(1011, 'internal', null);
      assert.deepEqual(h.takeNoWakes(), ['> close 1011 "internal"', 'end']);
      assert.deepEqual(h.streamClosed(), { code: 1011, reason: 'internal', wasClean: false });
    });

    it(`failing twice sends one close frame and reports the first code (${role})`, () => {
      const h = new Harness(role);
      h.fail(1011, 'first', null);
      h.fail(1008, 'second', null);
      assert.deepEqual(h.frames(), ['close 1011 "first"']);
      assert.deepEqual(h.streamClosed(), { code: 1011, reason: 'first', wasClean: false });
    });

    it(`a violation after our close frame: no second close frame, TCP ended, the violation's code reported (${role})`, () => {
      const h = new Harness(role);
      h.close(1000, 'bye');
      h.take();
      h.receive(peerOf(role).wronglyMasked());
      assert.deepEqual(h.take(), ['error ProtocolError 1002', 'end']);
      assert.deepEqual(h.frames(), ['close 1000 "bye"']);
      assert.equal(h.streamClosed().code, 1002);
    });

    it(`messages waiting for compression are dropped, their callbacks failed, and the close frame goes at once (${role})`, () => {
      const compression = new FakeCompression();
      const h = new Harness(role, { compression });
      const results: (Error | undefined)[] = [];
      h.send('first', { compress: true, callback: (error) => results.push(error) });
      h.send('second', { compress: true, callback: (error) => results.push(error) });
      h.receive(peerOf(role).wronglyMasked());
      assert.deepEqual(h.takeNoWakes().slice(1), [
        'sendFailed 2',
        `> close 1002 ${JSON.stringify(role === 'server' ? 'unmasked frame from a client' : 'masked frame from a server')}`,
        'end',
      ]);
      assert.equal(h.failedCallbacks.length, 2);
      // zlib finishing later changes nothing.
      compression.finish();
      h.write();
      assert.deepEqual(h.frames().length, 1);
    });

    it(`our close frame waiting behind a compression is still written when the connection fails (${role})`, () => {
      const compression = new FakeCompression();
      const h = new Harness(role, { compression });
      h.send('compressing', { compress: true });
      h.close(1000, 'bye');
      h.receive(peerOf(role).wronglyMasked());
      const frames = h.frames();
      assert.equal(frames.length, 1, `one close frame before the end, got ${JSON.stringify(h.log)}`);
      assert.match(frames[0]!, /^close 10(00|02)/);
      assert.ok(h.log.indexOf(`> ${frames[0]}`) < h.log.indexOf('end'), 'the close frame before the end of TCP');
    });
  }
});

describe('RFC 6455 §5.5.1 Close: answering, and the order of the last frames', () => {
  for (const role of ROLES) {
    for (const code of [1000, 1001, 1003, 1011, 3000, 4999]) {
      it(`"If an endpoint receives a Close frame and did not previously send a Close frame, the endpoint MUST send a Close frame in response" echoing ${code} (${role})`, () => {
        const h = new Harness(role);
        h.receive(peerOf(role).close(code, `reason ${code}`));
        // "(When sending a Close frame in response, the endpoint typically echos the status code it received.)"
        assert.deepEqual(h.frames(), [`close ${code} "reason ${code}"`]);
      });
    }

    it(`an empty close frame is answered with an empty one, never with 1005 (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).close());
      assert.deepEqual(h.frames(), ['close']);
      assert.equal(h.wire[0]!.payload.length, 0);
    });

    it(`"It SHOULD do so as soon as practical": the answer is written with the reply to the chunk that held the close (${role})`, () => {
      const h = new Harness(role);
      h.receive(concat(peerOf(role).ping('p'), peerOf(role).close(1000)));
      assert.deepEqual(
        h.takeNoWakes().filter((e) => e.startsWith('>')),
        ['> pong "p"', '> close 1000'],
      );
    });

    it(`"Close frames sent from client to server must be masked": the bytes (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).close(1000, 'ok'));
      const raw = Buffer.concat(h.written);
      if (role === 'server') {
        // FIN + opcode 8; unmasked; length 4; 03 e8 = 1000; "ok".
        assert.deepEqual(raw, concat(bytes(0x88, 0x04, 0x03, 0xe8), utf8('ok')));
      } else {
        assert.equal(raw[0], 0x88);
        assert.equal(raw[1], 0x80 | 4, 'mask bit and length 4');
        const key = raw.subarray(2, 6);
        const unmasked = Buffer.from(raw.subarray(6).map((b, i) => b ^ key[i % 4]!));
        assert.deepEqual(unmasked, concat(bytes(0x03, 0xe8), utf8('ok')));
      }
    });

    it(`"An endpoint MAY delay sending a Close frame until its current message is sent": a message being compressed goes first, then our answer (${role})`, () => {
      const compression = new FakeCompression();
      const h = new Harness(role, { compression });
      h.send('one', { compress: true });
      h.send('two');
      h.receive(peerOf(role).close(1000, 'bye'));
      // Nothing can go before the compressed message: the second message and the close wait behind it.
      assert.deepEqual(h.takeNoWakes(), []);
      compression.finish();
      h.write();
      assert.deepEqual(h.take(), [
        '> text rsv1 "Z(one)"',
        '> text "two"',
        '> close 1000 "bye"',
        ...(role === 'server' ? ['end'] : []),
      ]);
    });

    it(`close() after messages queued for compression: the close frame is the last frame, after all of them (${role})`, () => {
      const compression = new FakeCompression();
      const h = new Harness(role, { compression });
      const results: (Error | undefined)[] = [];
      h.send('one', { compress: true, callback: (error) => results.push(error) });
      h.send('two', { compress: true, callback: (error) => results.push(error) });
      h.close(1000, 'bye');
      assert.equal(h.protocol.canSend, false);
      assert.deepEqual(h.frames(), []);
      compression.finish();
      h.write();
      compression.finish();
      h.write();
      assert.deepEqual(h.frames(), ['text rsv1 "Z(one)"', 'text rsv1 "Z(two)"', 'close 1000 "bye"']);
      assert.deepEqual(results, [undefined, undefined], 'both messages were written');
      assert.equal(h.ended, false, 'no end before the peer answers');
      h.receive(peerOf(role).close(1000, 'bye'));
      assert.equal(h.ended, role === 'server');
    });

    it(`the server's end waits for the frames still being compressed; the answer is last before it (${role})`, () => {
      const compression = new FakeCompression();
      const h = new Harness(role, { compression });
      h.send('one', { compress: true });
      h.close(1000);
      h.receive(peerOf(role).close(1000));
      assert.equal(h.ended, false, 'TCP is not ended before the queued frames are out');
      compression.finish();
      h.write();
      assert.deepEqual(h.takeNoWakes(), [
        '> text rsv1 "Z(one)"',
        '> close 1000',
        ...(role === 'server' ? ['end'] : []),
      ]);
    });

    it(`the peer's close arrives while our message compresses and zlib then fails: our answer is still written (${role})`, () => {
      const compression = new FakeCompression();
      const h = new Harness(role, { compression });
      h.send('one', { compress: true });
      h.receive(peerOf(role).close(1000, 'bye'));
      compression.break();
      h.write();
      const closes = h.wire.filter((f) => f.opcode === 0x8);
      assert.equal(closes.length, 1, `a close frame in response, got ${JSON.stringify(h.log)}`);
      assert.equal(h.streamClosed().wasClean, true);
    });

    it(`"If a client and server both send a Close message at the same time, both endpoints will have sent and received a Close message and should consider the WebSocket connection closed" (${role})`, () => {
      const h = new Harness(role);
      // Our close and the peer's cross: the peer's arrives after ours was written.
      h.close(1000, 'a');
      h.receive(peerOf(role).close(1000, 'b'));
      assert.equal(h.protocol.closeSent && h.protocol.closeReceived, true);
      assert.deepEqual(h.frames(), ['close 1000 "a"']);
      // "... and close the underlying TCP connection": the server at once, the client once the server did.
      if (role === 'client') {
        assert.equal(h.ended, false);
        h.receiveEnd();
      }
      assert.equal(h.ended, true);
      assert.deepEqual(h.streamClosed(), { code: 1000, reason: 'b', wasClean: true });
    });

    it(`closes crossing, the peer's close in the same chunk as its last messages: the messages are delivered, no answer (${role})`, () => {
      const h = new Harness(role);
      const p = peerOf(role);
      h.close(1000);
      h.take();
      h.receive(concat(p.text('last'), p.close(1000)));
      assert.deepEqual(h.take(), ['message text "last"', ...(role === 'server' ? ['end'] : [])]);
    });
  }
});
