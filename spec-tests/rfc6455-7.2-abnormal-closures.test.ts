/**
 * RFC 6455 §7.2 Abnormal Closures, on the protocol state machine (src/protocol/protocol.ts): the transport
 * lost at any point, the peer's end of TCP before any close frame, and the deadlines that stand in
 * for "a reasonable amount of time" (pongTimeout, closeTimeout). Time is a number (ms); the driver's
 * wake-ups are calls to `timeout(now, readingPaused)`.
 *
 * §7.2.2 (the server aborting during the opening handshake) is the handshake code's business, not
 * this state machine's, which starts once the connection is OPEN; the tests here are about what
 * follows. §7.2.3 is at the end of the file.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { constants as zlibConstants, inflateRawSync } from 'node:zlib';
import * as core from '../src/core.js';
import { ConnectionTimeoutError } from '../src/protocol/errors.js';
import { resolveConnectionOptions } from '../src/protocol/options.js';
import { Protocol } from '../src/protocol/protocol.js';
import { concat, utf8 } from './helpers/core.js';
import { TAIL, deflatePayload } from './helpers/peer/deflate.js';
import { FakeCompression, Harness, OP, ROLES, peerOf } from './helpers/protocol.js';

const LOST = { code: 1006, reason: '', wasClean: false };

describe('RFC 6455 §7.2.1 "If at any point the underlying transport layer connection is unexpectedly lost"', () => {
  for (const role of ROLES) {
    // Each step leaves the connection in another state; the transport is lost right after it.
    const points: [string, (h: Harness) => void][] = [
      ['before anything was received', () => {}],
      ['after messages both ways', (h) => h.send('out').receive(peerOf(role).text('in'))],
      ['in the middle of a fragmented message from the peer', (h) => h.receive(peerOf(role).text('frag', false))],
      [
        'in the middle of a frame from the peer',
        (h) => h.receive(peerOf(role).binary(Buffer.alloc(300)).subarray(0, 50)),
      ],
      ['after a ping we sent, before its pong', (h) => h.ping('anyone?')],
      ['after our close frame, before the answer', (h) => h.close(1000, 'bye')],
      ['after a violation, before the peer closed TCP', (h) => h.receive(peerOf(role).wronglyMasked())],
      ['after terminate()', (h) => h.terminate()],
      ['with messages still waiting for compression', (h) => h.send('zip', { compress: true })],
    ];
    for (const [when, step] of points) {
      it(`${when}: streamClosed() reports 1006 (or the code we failed with), never clean; nothing is written afterwards (${role})`, () => {
        const compression = new FakeCompression();
        const h = new Harness(role, { compression });
        step(h);
        const failed = h.errors.length > 0;
        const written = h.wire.length;
        const report = h.streamClosed();
        // §7.1.5: no close frame received: 1006. A connection we failed reports its code (§7.1.7, README "Close codes").
        assert.deepEqual(report, failed ? { code: 1002, reason: report.reason, wasClean: false } : LOST);
        // Whatever still waited (a compression finishing late) is not written any more.
        if (compression.jobs.length > 0) compression.finish();
        h.write();
        assert.equal(h.wire.length, written, 'nothing written after the stream closed');
      });
    }

    it(`the callbacks of messages not yet written fail when the transport is lost (${role})`, () => {
      const compression = new FakeCompression();
      const h = new Harness(role, { compression });
      h.send('waits for zlib', { compress: true, callback: () => {} });
      h.send('behind it', { callback: () => {} });
      h.streamClosed();
      assert.equal(h.failedCallbacks.length, 2);
    });

    it(`the peer's TCP end before any close frame: we end ours too, without a close frame (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).text('hello'));
      h.receiveEnd();
      assert.deepEqual(h.take(), ['message text "hello"', 'end']);
      assert.deepEqual(h.frames(), [], 'no close frame: the peer already left');
      assert.deepEqual(h.streamClosed(), LOST);
    });

    it(`the peer's TCP end while we wait for its close frame: we end ours; 1006 (${role})`, () => {
      const h = new Harness(role);
      h.close(1000, 'bye');
      h.take();
      h.receiveEnd();
      assert.deepEqual(h.take(), ['end']);
      assert.deepEqual(h.streamClosed(), LOST);
    });

    it(`the peer's TCP end while a message compresses: our end waits for it to be written (${role})`, () => {
      const compression = new FakeCompression();
      const h = new Harness(role, { compression });
      h.send('last words', { compress: true });
      h.receiveEnd();
      assert.equal(h.ended, false);
      compression.finish();
      h.write();
      assert.deepEqual(h.take(), ['> text rsv1 "Z(last words)"', 'end']);
    });

    it(`the peer's TCP end in the middle of a frame: we end; the partial frame is never delivered (${role})`, () => {
      const h = new Harness(role);
      const frame = peerOf(role).text('cut short');
      h.receive(frame.subarray(0, frame.length - 3));
      h.receiveEnd();
      assert.deepEqual(h.take(), ['end']);
      assert.deepEqual(h.streamClosed(), LOST);
    });

    it(`after the peer's TCP end we end ours, and write nothing more: no ping of the ping loop, no send, no close (${role})`, () => {
      // Found by the connection fuzz target: the ping loop went on after our end (a write after end).
      const h = new Harness(role, { options: { pingInterval: 1000, pongTimeout: 60_000 } });
      h.receiveEnd();
      assert.deepEqual(h.takeNoWakes(), ['end']);
      assert.equal(h.protocol.canSend, false, 'nothing more may be sent');
      h.timeout(1000);
      h.timeout(2000);
      const failed: (Error | undefined)[] = [];
      assert.equal(
        h.protocol.sendData('too late', undefined, (error) => failed.push(error)),
        false,
        'send() refuses',
      );
      assert.equal(h.protocol.sendControl(OP.PING, Buffer.alloc(0)), false, 'ping() refuses');
      h.close(1000, 'bye');
      h.settle();
      assert.deepEqual(h.frames(), [], 'nothing written after our end');
      assert.equal(h.failedCallbacks.length, 1, "the refused send's callback fails");
      assert.deepEqual(h.streamClosed(), LOST);
    });

    it(`frames read after the peer's TCP end (held behind an inflation) are delivered, but not answered: no pong, no close frame (${role})`, () => {
      const options = resolveConnectionOptions({ pingInterval: 0 });
      const protocol = new Protocol(role, options, 0, { compression: { threshold: 0 } });
      const p = peerOf(role);
      // A compressed message, then a ping and a close frame, all in one read: the ping and the
      // close wait behind the inflation (RFC 7692 §7.2.2), which ends after the peer's TCP end.
      protocol.receive(
        concat(
          p.frame({ opcode: OP.TEXT, rsv1: true, payload: deflatePayload(utf8('last')) }),
          p.ping('still there?'),
          p.close(1000, 'bye'),
        ),
        0,
      );
      assert.equal(protocol.nextEvent(), null);
      const job = protocol.takeInflateJob();
      assert.ok(job !== null, 'the compressed frame waits for its inflation');
      protocol.receiveEnd(0);
      assert.equal(protocol.wantsEnd, true);
      // The driver ends our side here; the inflation ends after it.
      assert.ok(
        protocol.inflated(inflateRawSync(concat(job.payload, TAIL), { finishFlush: zlibConstants.Z_SYNC_FLUSH })),
      );
      protocol.inflateDone(null);
      const events: string[] = [];
      for (let event = protocol.nextEvent(); event !== null; event = protocol.nextEvent()) events.push(event.type);
      assert.deepEqual(events, ['message', 'ping'], 'what the peer sent before its end is still read');
      assert.equal(protocol.hasOutput, false, 'no pong and no close frame after our end');
      assert.deepEqual(protocol.takeOutput(), []);
      // §7.1.5: the peer's close frame was read: the close reports its code, not cleanly (ours never went).
      assert.deepEqual(protocol.streamClosed(0), { code: 1000, reason: 'bye', wasClean: false });
    });

    it(`"Except as indicated above or as specified by the application layer ..., clients SHOULD NOT close the connection": ordinary traffic never ends or destroys the connection (${role})`, () => {
      // The ping loop is off, as in every test here unless said otherwise: no deadline runs.
      const h = new Harness(role);
      const p = peerOf(role);
      for (let t = 0; t < 100; t++) {
        h.receive(concat(p.text(`m${t}`), p.ping(), p.pong(), p.binary(Buffer.alloc(t))), t * 1000);
        h.send(`r${t}`);
        h.timeout(t * 1000 + 500);
      }
      assert.equal(h.ended || h.destroyed, false);
      assert.equal(h.protocol.state, 1);
      assert.equal(h.errors.length, 0);
    });
  }
});

describe('RFC 6455 §7.2: deadlines (no peer answers within "a reasonable amount of time")', () => {
  for (const role of ROLES) {
    it(`pongTimeout: nothing received for that long: an error event (ConnectionTimeoutError 'pong'), then destroy; 1006 (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 1000, pongTimeout: 2500 } });
      h.timeout(1000);
      h.timeout(2000);
      assert.equal(h.destroyed, false);
      h.take();
      h.timeout(2499);
      assert.equal(h.destroyed, false, 'not before the deadline');
      h.timeout(2500);
      assert.deepEqual(h.take(), ['wake 2500', 'error ConnectionTimeoutError pong', 'destroy']);
      const error = h.errors[0] as ConnectionTimeoutError;
      assert.ok(error instanceof ConnectionTimeoutError, `a ConnectionTimeoutError, got ${error}`);
      assert.equal(error.reason, 'pong');
      assert.equal(h.ended, false, 'destroyed, not ended: a peer that is silent may not read either');
      assert.deepEqual(h.frames(), ['ping ""', 'ping ""'], 'no close frame: the peer is gone');
      assert.deepEqual(h.streamClosed(), LOST);
    });

    it(`pongTimeout counts from the last bytes received, any frame or part of one (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 1000, pongTimeout: 2500 } });
      const frame = peerOf(role).text('slowly');
      h.receive(frame.subarray(0, 2), 2000);
      h.timeout(2500);
      h.timeout(4499);
      assert.equal(h.destroyed, false, 'two header bytes at 2000 reset the silence');
      h.receive(frame.subarray(2), 4000);
      h.timeout(6499);
      assert.equal(h.destroyed, false);
      h.timeout(6500);
      assert.equal(h.destroyed, true);
    });

    it(`time reading was paused by us (readingPaused) is not the peer's silence (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 1000, pongTimeout: 2500 } });
      // We stopped reading (backpressure) from 0 to 10 000: the driver says so at every wake.
      for (let t = 1000; t <= 10_000; t += 1000) h.timeout(t, true);
      assert.equal(h.destroyed, false);
      h.readingResumed(10_000);
      h.timeout(12_499);
      assert.equal(h.destroyed, false, 'the silence counts from when reading resumed');
      h.timeout(12_500);
      assert.equal(h.destroyed, true);
    });

    it(`readingResumed(now) alone restarts the silence, even with no wake while paused (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 1000, pongTimeout: 2500 } });
      h.readingResumed(9000);
      h.timeout(11_499);
      assert.equal(h.destroyed, false);
      h.timeout(11_500);
      assert.equal(h.destroyed, true);
    });

    it(`pingInterval 0 turns the pong deadline off as well (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 0, pongTimeout: 10 } });
      assert.deepEqual(h.take(), [], 'no wake requested');
      h.timeout(1e9);
      assert.deepEqual(h.take(), []);
    });

    it(`closeTimeout: our close frame unanswered: an error event (ConnectionTimeoutError 'close'), then destroy; 1006 (${role})`, () => {
      const h = new Harness(role, { options: { closeTimeout: 3000 }, now: 500 });
      h.close(1000, 'bye', 500);
      assert.deepEqual(h.take(), ['> close 1000 "bye"', 'wake 3500']);
      h.timeout(3499);
      assert.deepEqual(h.take(), ['wake 3500'], 'too early: the wake is asked for again');
      h.timeout(3500);
      assert.deepEqual(h.take(), ['error ConnectionTimeoutError close', 'destroy']);
      assert.equal((h.errors[0] as ConnectionTimeoutError).reason, 'close');
      assert.deepEqual(h.streamClosed(), LOST);
    });

    it(`closeTimeout runs from the first close frame; the peer's traffic does not extend it (${role})`, () => {
      const h = new Harness(role);
      h.close(1000);
      const p = peerOf(role);
      for (let t = 1000; t < 5000; t += 1000) h.receive(p.text(`still talking ${t}`), t);
      h.timeout(5000);
      assert.equal(h.destroyed, true);
    });

    it(`the close deadline is for the closing handshake only: no pongTimeout while CLOSING (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 100, pongTimeout: 200, closeTimeout: 5000 } });
      h.close(1000);
      h.take();
      h.timeout(1000);
      assert.equal(h.destroyed, false);
      assert.deepEqual(h.take(), ['wake 5000'], 'no ping either while closing');
    });

    it(`terminate(): the stream is destroyed at once, no close frame; 1006 (${role})`, () => {
      const h = new Harness(role);
      h.send('queued');
      h.take();
      h.terminate();
      assert.deepEqual(h.take(), ['destroy']);
      assert.deepEqual(h.frames(), ['text "queued"']);
      assert.equal(h.protocol.state, 2);
      assert.deepEqual(h.streamClosed(), LOST);
    });
  }
});

describe('RFC 6455 §7.2.3 Recovering from Abnormal Closure', () => {
  // §7.2.3 is about clients that reconnect: "When a client is instructed to reconnect ... SHOULD use
  // some form of backoff". It does not apply to a server, which never opens connections. Our client
  // never reconnects on its own: after 'close' (1006 or any other code) the WebSocket stays CLOSED,
  // and reconnecting, with whatever backoff, is the application's decision. The state machine has
  // no way back from CLOSED, which is what this checks.
  for (const role of ROLES) {
    it(`after an abnormal closure the connection stays CLOSED: nothing re-opens it (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 1000 } });
      h.timeout(60_000);
      assert.equal(h.destroyed, true);
      h.streamClosed();
      h.take();
      for (let t = 60_000; t < 200_000; t += 1000) h.timeout(t);
      assert.equal(h.protocol.state, 3);
      assert.equal(h.protocol.canSend, false);
      assert.deepEqual(h.take(), [], 'no wake, no frame, no attempt of any kind');
    });
  }
});

describe('RFC 6455 §7.2.1: the connection lost, as a wsrfc/core embedder drives the core', () => {
  for (const role of ROLES) {
    it(`bytes handed out whose callbacks were not yet taken: when the stream closes, their callbacks are reported failed (${role})`, () => {
      // An embedder may take the output and close the stream before taking its callbacks: the
      // message may not have reached the peer, so its sender must hear of a failure, not of nothing.
      const protocol = new core.Protocol(role, core.resolveConnectionOptions({ pingInterval: 0 }), 0);
      const callback = (): void => {};
      assert.equal(protocol.sendData('hello', undefined, callback), true);
      assert.equal(protocol.takeOutput().length, 1);
      assert.deepEqual(protocol.streamClosed(1), LOST);
      const event = protocol.nextEvent();
      assert.ok(event !== null && event.type === 'sendFailed', 'a sendFailed event');
      assert.deepEqual(event.callbacks, [callback]);
      assert.equal(protocol.nextEvent(), null);
      assert.equal(protocol.takeCallbacks(), null, 'the callbacks are reported once');
    });

    it(`a write deadline that fires after the stream closed changes nothing: no event, no output, no destroy (${role})`, () => {
      const protocol = new core.Protocol(role, core.resolveConnectionOptions({ pingInterval: 0 }), 0);
      assert.deepEqual(protocol.streamClosed(1), LOST);
      protocol.writeTimedOut(2);
      assert.equal(protocol.nextEvent(), null);
      assert.deepEqual(protocol.takeOutput(), []);
      assert.equal(protocol.wantsDestroy, false);
      assert.equal(protocol.wantsEnd, false);
    });
  }
});
