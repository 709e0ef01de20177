/**
 * Messages as streams in the protocol core (src/protocol/protocol.ts, receiver.ts, sender.ts), driven
 * with bytes and no socket (helpers/protocol.ts). RFC 6455 §5.4 (fragmentation) and the note in §5.2
 * ("a receiver doesn't have to buffer the whole frame ... if a streaming API is used, a part of a
 * frame can be delivered to the application"): a streamed message's payload goes on as it arrives,
 * piece by piece, and a message sent from a stream goes out as fragments as its pieces come.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isUtf8 } from 'node:buffer';
import { MessageAbortedError, ProtocolError } from '../src/protocol/errors.js';
import { resolveConnectionOptions } from '../src/protocol/options.js';
import { Protocol } from '../src/protocol/protocol.js';
import type { TracedFrame } from '../src/protocol/trace.js';
import { bytes, concat, frameFor, utf8 } from './helpers/core.js';
import { FakeCompression, Harness, OP, ROLES, peerOf } from './helpers/protocol.js';

const STREAM = { streamMessages: true };

describe('receiving a streamed message (the core)', () => {
  for (const role of ROLES) {
    const p = peerOf(role);

    it(`each fragment's payload goes on as it arrives, a ping between fragments is answered at once (${role})`, () => {
      const h = new Harness(role, { options: STREAM });
      h.receive(p.text('Hel', false));
      assert.deepEqual(h.takeNoWakes(), ['messageStart text', 'messageData "Hel"']);
      h.receive(p.ping('p'));
      assert.deepEqual(h.takeNoWakes(), ['ping "p"', '> pong "p"'], 'answered before the message ends');
      h.receive(p.continuation('lo', true));
      assert.deepEqual(h.takeNoWakes(), ['messageData "lo"', 'messageEnd']);
      // The next message is streamed too; a binary one says so.
      h.receive(p.binary(bytes(1, 2, 3)));
      assert.deepEqual(h.takeNoWakes(), ['messageStart binary', 'messageData <010203>', 'messageEnd']);
    });

    it(`a frame is not waited for: each TCP chunk of it is a piece (${role})`, () => {
      const h = new Harness(role, { options: STREAM });
      const payload = Buffer.alloc(5000, 7);
      const frame = p.binary(payload);
      // The header (and mask key) first, then the payload in five chunks.
      const header = frame.length - payload.length;
      const cuts = [0, header + 1000, header + 2000, header + 3000, header + 4000, frame.length];
      h.receive(cuts.slice(1).map((end, i) => frame.subarray(cuts[i], end)));
      assert.deepEqual(
        h.pieces.map((piece) => piece.length),
        [1000, 1000, 1000, 1000, 1000],
      );
      assert.deepEqual(Buffer.concat(h.pieces), payload);
      assert.equal(h.take().at(-1), 'messageEnd');
    });

    it(`text is delivered cut on code point boundaries, however the bytes are cut (${role})`, () => {
      const text = utf8('aé€😀'.repeat(20) + 'b');
      // Fragments of 1 to 7 bytes, each in TCP chunks of 1 to 3 bytes: every cut falls somewhere.
      for (const fragment of [1, 2, 3, 5, 7]) {
        const h = new Harness(role, { options: STREAM });
        const frames: Buffer[] = [];
        for (let at = 0; at < text.length; at += fragment) {
          const end = Math.min(at + fragment, text.length);
          const piece = text.subarray(at, end);
          frames.push(at === 0 ? p.text(piece, end === text.length) : p.continuation(piece, end === text.length));
        }
        const wire = concat(...frames);
        const chunks: Buffer[] = [];
        for (let at = 0, n = 1; at < wire.length; at += n, n = (n % 3) + 1) chunks.push(wire.subarray(at, at + n));
        h.receive(chunks);
        for (const piece of h.pieces)
          assert.ok(isUtf8(piece), `a piece that does not decode on its own: ${piece.toString('hex')}`);
        assert.deepEqual(Buffer.concat(h.pieces), text, `fragments of ${fragment}`);
        assert.equal(h.take().at(-1), 'messageEnd');
      }
    });

    it(`parsing stays lazy: what follows a piece is read only once the piece is taken (${role})`, () => {
      const protocol = new Protocol(role, resolveConnectionOptions({ ...STREAM, pingInterval: 0 }), 0);
      protocol.receive(concat(p.binary(Buffer.alloc(100, 1), false), p.ping('x'), p.continuation(bytes(2))), 0);
      assert.equal(protocol.nextEvent()?.type, 'messageStart');
      assert.equal(protocol.nextEvent()?.type, 'messageData');
      // The ping is not read while the application holds the piece: nothing to answer yet.
      assert.equal(protocol.hasOutput, false);
      assert.ok(protocol.bufferedInput > 0, 'the rest of the input waits, unparsed');
      assert.equal(protocol.nextEvent()?.type, 'ping');
      assert.equal(protocol.hasOutput, true, 'the pong is due once the ping is read');
      assert.deepEqual(
        [protocol.nextEvent()?.type, protocol.nextEvent()?.type, protocol.nextEvent()],
        ['messageData', 'messageEnd', null],
      );
    });

    it(`a compressed message is inflated a piece at a time, never a frame at a time (${role})`, () => {
      // FakeCompression inflates as the identity: what matters is when the jobs come.
      const h = new Harness(role, { options: STREAM, compression: new FakeCompression() });
      const frame = p.frame({ opcode: OP.TEXT, rsv1: true, payload: 'compressed bytes, in pieces' });
      const header = frame.length - 27;
      h.receive([
        frame.subarray(0, header + 10),
        frame.subarray(header + 10, header + 20),
        frame.subarray(header + 20),
      ]);
      assert.deepEqual(
        h.pieces.map((piece) => piece.toString()),
        ['compressed', ' bytes, in', ' pieces'],
      );
    });

    it(`the streamed limit, not maxFramePayload or maxMessageSize, bounds a streamed message (${role})`, () => {
      const h = new Harness(role, {
        options: { ...STREAM, maxMessageSize: 10, maxFramePayload: 10, maxStreamedMessageSize: 100 },
      });
      h.receive(p.binary(Buffer.alloc(60, 1), false));
      assert.deepEqual(h.takeNoWakes(), ['messageStart binary', `messageData <${'01'.repeat(60)}>`]);
      // 60 + 41 > 100: refused from the header, before a byte of its payload.
      h.receive(p.frame({ opcode: OP.CONT, fin: true, payload: Buffer.alloc(41, 2) }));
      const log = h.takeNoWakes();
      assert.deepEqual(log.slice(0, 2), ['messageAbort ProtocolError', 'error ProtocolError 1009']);
      assert.match(log[2]!, /^> close 1009 /);
      const abort = h.errors[0] as ProtocolError;
      assert.equal(abort.violation, 'MessageTooBig');
    });

    it(`a 64-bit length past 4 GiB is fine for a streamed message; past 2^53 - 1 it is 1009 (${role})`, () => {
      const h = new Harness(role, { options: STREAM });
      const big = 2 ** 32 + 2 ** 20;
      const head = frameFor(role, { opcode: OP.BINARY, payload: Buffer.alloc(1000, 3), declaredLength: big });
      h.receive(head);
      assert.deepEqual(h.takeNoWakes(), ['messageStart binary', `messageData <${'03'.repeat(1000)}>`]);
      assert.deepEqual(h.frames(), [], 'no close: the frame is not held, so its size is no threat');
      const report = h.streamClosed();
      assert.equal(report.code, 1006);
      assert.deepEqual(h.take().slice(0, 1), ['messageAbort MessageAbortedError']);

      const huge = new Harness(role, { options: STREAM });
      huge.receive(frameFor(role, { opcode: OP.BINARY, payload: bytes(1), declaredLength: 2n ** 60n }));
      assert.match(huge.frames()[0]!, /^close 1009 /);
    });

    it(`the peer's close frame in the middle: the message is aborted (MessageAbortedError), the close echoed (${role})`, () => {
      const h = new Harness(role, { options: STREAM });
      h.receive(concat(p.text('part', false), p.close(1000, 'bye')));
      assert.deepEqual(h.takeNoWakes().slice(0, 4), [
        'messageStart text',
        'messageData "part"',
        'messageAbort MessageAbortedError',
        '> close 1000 "bye"',
      ]);
    });

    it(`a violation in the middle: the pieces before it, then the abort with the ProtocolError, then 1002 (${role})`, () => {
      const h = new Harness(role, { options: STREAM });
      h.receive(concat(p.text('part', false), p.text('a new message inside the first')));
      assert.deepEqual(h.takeNoWakes().slice(0, 4), [
        'messageStart text',
        'messageData "part"',
        'messageAbort ProtocolError',
        'error ProtocolError 1002',
      ]);
    });

    it(`--trace shows a streamed message's frames as they were received, compressed or not (${role})`, () => {
      const traced: TracedFrame[] = [];
      const trace = (frame: TracedFrame): void => void traced.push(frame);
      const h = new Harness(role, { options: { ...STREAM, trace } });
      h.receive(concat(p.text('Hel', false), p.continuation('lo')));
      assert.deepEqual(
        traced.map((f) => [f.direction, f.opcode, f.fin, f.payload.toString()]),
        [
          ['in', OP.TEXT, false, 'Hel'],
          ['in', OP.CONT, true, 'lo'],
        ],
      );
      assert.equal(Buffer.concat(h.pieces).toString(), 'Hello');
      // Compressed (FakeCompression inflates as the identity): the frame as it came, RSV1 set.
      traced.length = 0;
      const z = new Harness(role, { options: { ...STREAM, trace }, compression: new FakeCompression() });
      z.receive(p.frame({ opcode: OP.BINARY, rsv1: true, payload: 'zipped' }));
      assert.deepEqual(
        traced.map((f) => [f.direction, f.opcode, f.rsv1, f.payload.toString()]),
        [['in', OP.BINARY, true, 'zipped']],
      );
      assert.equal(Buffer.concat(z.pieces).toString(), 'zipped');
    });

    it(`streamMessages switched between messages applies from the next one (${role})`, () => {
      const protocol = new Protocol(role, resolveConnectionOptions({ pingInterval: 0 }), 0);
      protocol.receive(concat(p.text('whole'), p.text('streamed'), p.text('whole again')), 0);
      const first = protocol.nextEvent();
      assert.equal(first?.type, 'message');
      // Set while the application handles the first: the second is not read yet, so it is streamed.
      protocol.streamMessages = true;
      assert.deepEqual(
        [protocol.nextEvent()?.type, protocol.nextEvent()?.type, protocol.nextEvent()?.type],
        ['messageStart', 'messageData', 'messageEnd'],
      );
      protocol.streamMessages = false;
      assert.equal(protocol.nextEvent()?.type, 'message');
    });
  }
});

describe('sending a streamed message (the core)', () => {
  for (const role of ROLES) {
    const p = peerOf(role);

    it(`its pieces go out as fragments as they come; a ping goes between them, a message sent meanwhile after the end (${role})`, () => {
      const h = new Harness(role);
      const done: (Error | undefined)[] = [];
      const message = h.protocol.openMessage(false, 0, (error) => done.push(error))!;
      h.protocol.sendPiece(message, OP.TEXT, utf8('Hel'), false);
      h.settle().ping('between').send('later');
      h.protocol.sendPiece(message, OP.TEXT, utf8('lo'), false);
      h.settle();
      assert.deepEqual(done, [], 'not written until the end');
      h.protocol.sendPiece(message, OP.TEXT, Buffer.alloc(0), true);
      h.settle();
      assert.deepEqual(h.frames(), [
        'text fin=0 "Hel"',
        'ping "between"',
        'cont fin=0 "lo"',
        'cont ""',
        'text "later"',
      ]);
      assert.deepEqual(done, [undefined]);
    });

    it(`an empty piece in the middle sends nothing; an empty stream is one empty message (${role})`, () => {
      const h = new Harness(role);
      const message = h.protocol.openMessage(false, 0)!;
      h.protocol.sendPiece(message, OP.BINARY, Buffer.alloc(0), false);
      h.protocol.sendPiece(message, OP.BINARY, Buffer.alloc(0), true);
      h.settle();
      assert.deepEqual(h.frames(), ['binary ""']);
    });

    it(`fragmentSize splits each piece (${role})`, () => {
      const h = new Harness(role);
      const message = h.protocol.openMessage(false, 2)!;
      h.protocol.sendPiece(message, OP.TEXT, utf8('abcde'), false);
      h.protocol.sendPiece(message, OP.TEXT, utf8('fg'), true);
      h.settle();
      assert.deepEqual(h.frames(), ['text fin=0 "ab"', 'cont fin=0 "cd"', 'cont fin=0 "e"', 'cont "fg"']);
    });

    it(`close() while streaming: no new messages, but the stream goes on and the close frame follows its end (${role})`, () => {
      const h = new Harness(role);
      const message = h.protocol.openMessage(false, 0)!;
      h.protocol.sendPiece(message, OP.BINARY, bytes(1), false);
      h.settle().close(1000, 'after it');
      assert.equal(h.protocol.canSend, false);
      assert.equal(h.protocol.openMessage(false, 0), null, 'no new stream either');
      assert.equal(h.protocol.sendPiece(message, OP.BINARY, bytes(2), true), true);
      h.settle();
      assert.deepEqual(h.frames(), ['binary fin=0 <01>', 'cont <02>', 'close 1000 "after it"']);
    });

    it(`the peer's close while streaming: §5.5.1 lets the message end first, and our close follows it (${role})`, () => {
      const h = new Harness(role);
      const message = h.protocol.openMessage(false, 0)!;
      h.protocol.sendPiece(message, OP.BINARY, bytes(1), false);
      h.settle().receive(p.close(1000));
      assert.deepEqual(h.frames(), ['binary fin=0 <01>']);
      h.protocol.sendPiece(message, OP.BINARY, bytes(2), true);
      h.settle();
      assert.deepEqual(h.frames(), ['binary fin=0 <01>', 'cont <02>', 'close 1000']);
    });

    it(`the source fails: the connection fails with 1011 (a message cannot be aborted alone) (${role})`, () => {
      const h = new Harness(role);
      const message = h.protocol.openMessage(false, 0, () => {})!;
      h.protocol.sendPiece(message, OP.BINARY, bytes(1), false);
      h.settle();
      h.protocol.messageFailed(message, 0);
      h.settle();
      assert.deepEqual(h.takeNoWakes().slice(-3), ['sendFailed 1', '> close 1011 "the message source failed"', 'end']);
      assert.equal(message.dropped, true);
      assert.equal(h.protocol.sendPiece(message, OP.BINARY, bytes(2), true), false, 'no more pieces');
    });

    it(`the source fails after the peer's close: the message is abandoned and the close echo goes at once (${role})`, () => {
      const h = new Harness(role);
      const message = h.protocol.openMessage(false, 0)!;
      h.protocol.sendPiece(message, OP.BINARY, bytes(1), false);
      h.settle().receive(p.close(4000, 'stop'));
      h.protocol.messageFailed(message, 0);
      h.settle();
      assert.deepEqual(h.frames(), ['binary fin=0 <01>', 'close 4000 "stop"']);
      assert.equal(h.streamClosed().code, 4000);
    });

    it(`a violation by the peer while streaming drops the message: the close goes now (${role})`, () => {
      const h = new Harness(role);
      const message = h.protocol.openMessage(false, 0)!;
      h.protocol.sendPiece(message, OP.BINARY, bytes(1), false);
      h.settle().receive(p.frame({ opcode: 0x3 }));
      assert.equal(message.dropped, true);
      assert.match(h.frames().at(-1)!, /^close 1002 /);
    });

    it(`compressed: RSV1 on the first frame; the tail of each piece's flush is put back before the next; the end adds nothing (${role})`, () => {
      const compression = new FakeCompression();
      const h = new Harness(role, { compression });
      const message = h.protocol.openMessage(true, 0)!;
      h.protocol.sendPiece(message, OP.TEXT, utf8('ab'), false);
      h.settle();
      // A piece sent while one is compressing waits its turn, as does a message sent meanwhile.
      h.protocol.sendPiece(message, OP.TEXT, utf8('cd'), false);
      h.send('after', { compress: false });
      h.protocol.sendPiece(message, OP.TEXT, Buffer.alloc(0), true);
      h.settle();
      assert.deepEqual(
        compression.jobs.map((job) => [job.payload.toString(), job.fin]),
        [['ab', false]],
        'one piece at a time',
      );
      compression.finish();
      compression.finish();
      assert.deepEqual(
        compression.jobs.map((job) => [job.payload.toString(), job.fin]),
        [['', true]],
      );
      compression.finish();
      assert.deepEqual(h.frames(), [
        'text fin=0 rsv1 "Z(ab)"',
        `cont fin=0 <0000ffff${Buffer.from('Z(cd)').toString('hex')}>`,
        'cont ""',
        'text "after"',
      ]);
    });
  }
});

describe('the abort error', () => {
  it('a connection lost in the middle of a streamed message aborts it with a MessageAbortedError', () => {
    const h = new Harness('server', { options: STREAM });
    h.receive(peerOf('server').binary(bytes(1, 2), false));
    h.streamClosed();
    assert.ok(h.log.includes('messageAbort MessageAbortedError'));
    assert.equal(new MessageAbortedError('x').name, 'MessageAbortedError');
  });
});
