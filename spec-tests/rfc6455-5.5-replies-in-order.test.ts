/**
 * Many frames in one read, and an application that answers as it goes: each frame's effects on
 * the connection come after the application's replies to the frames before it, as if frames came
 * one at a time. RFC 6455 §5.5.2 (a ping is answered "as soon as is practical", after what was
 * being sent), §5.5.1 (after the close frame it sends, an endpoint sends no data: a close echoed
 * too early would refuse the replies to the messages before it), §7.1.7 (a connection failed on a
 * frame fails after the replies to the frames before it, and nothing after it is processed).
 *
 * The core parses ahead over what has arrived (src/protocol/protocol.ts, `nextEvent()`); these
 * tests hold whatever it does inside: the peer's frames come from the independent encoder
 * (helpers/peer/frames.ts) and what the core writes is read back by the independent decoder.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProtocolError } from '../src/protocol/errors.js';
import { resolveConnectionOptions, type ConnectionOptions } from '../src/protocol/options.js';
import { Protocol, type ProtocolEvent } from '../src/protocol/protocol.js';
import type { Role } from '../src/protocol/receiver.js';
import { bytes, concat } from './helpers/core.js';
import { OP, ROLES, WireDecoder, describeFrame, peerOf } from './helpers/protocol.js';

/** What an event shows in a log: `message "a"`, `ping "p"`, `error 1002`, `messageStart text`. */
function describeEvent(event: ProtocolEvent): string {
  switch (event.type) {
    case 'message':
      return `message ${JSON.stringify(event.data.toString())}`;
    case 'ping':
    case 'pong':
      return `${event.type} ${JSON.stringify(event.data.toString())}`;
    case 'messageStart':
      return `messageStart ${event.isBinary ? 'binary' : 'text'}`;
    case 'messageData':
      return `messageData ${JSON.stringify(event.data.toString())}`;
    case 'messageAbort':
      return `messageAbort ${event.error instanceof ProtocolError ? event.error.closeCode : event.error.name}`;
    case 'error':
      return `error ${event.error instanceof ProtocolError ? event.error.closeCode : event.error.name}`;
    default:
      return event.type;
  }
}

/**
 * A driver reduced to what matters here: one read in, then every event to `onEvent` (which may
 * call the core, as an application's handler would), then the output, decoded. The log mixes the
 * events and the frames written (`> text "A"`), in the order they happened.
 */
class EchoPeer {
  readonly protocol: Protocol;
  readonly log: string[] = [];
  private readonly decoder = new WireDecoder();

  constructor(
    readonly role: Role,
    options: ConnectionOptions = {},
    private readonly onEvent: (event: ProtocolEvent, peer: EchoPeer) => void = echo,
  ) {
    this.protocol = new Protocol(role, resolveConnectionOptions({ pingInterval: 0, ...options }), 0);
  }

  read(chunk: Buffer): this {
    this.protocol.receive(chunk, 0);
    return this.settle();
  }

  settle(): this {
    for (let event = this.protocol.nextEvent(); event !== null; event = this.protocol.nextEvent()) {
      this.log.push(describeEvent(event));
      this.onEvent(event, this);
      // What the application's handler sent is taken now, so the log shows what came before what.
      this.write();
    }
    this.write();
    if (this.protocol.wantsDestroy) this.log.push('destroy');
    else if (this.protocol.wantsEnd) this.log.push('end');
    return this;
  }

  private write(): void {
    for (const buffer of this.protocol.takeOutput())
      for (const frame of this.decoder.push(buffer)) this.log.push(`> ${describeFrame(frame)}`);
    for (const callback of this.protocol.takeCallbacks() ?? []) callback();
  }
}

/** The application of an echo server: each message back, in capitals. */
function echo(event: ProtocolEvent, peer: EchoPeer): void {
  if (event.type === 'message') peer.protocol.sendData(event.data.toString().toUpperCase(), undefined);
}

describe('RFC 6455 §5.5, §7.1.7: frames read together take effect in order, after the replies to those before them', () => {
  for (const role of ROLES) {
    const p = peerOf(role);

    it(`messages, then the peer's close, in one read: the replies go before the close is echoed (${role})`, () => {
      let stateAtFirst = -1;
      const peer = new EchoPeer(role, {}, (event, self) => {
        if (stateAtFirst === -1) stateAtFirst = self.protocol.state;
        echo(event, self);
      });
      peer.read(concat(p.text('a'), p.text('b'), p.close(1000, 'bye')));
      assert.equal(stateAtFirst, 1, 'still OPEN while the first message is handled');
      const end = role === 'server' ? ['end'] : [];
      assert.deepEqual(peer.log, [
        'message "a"',
        '> text "A"',
        'message "b"',
        '> text "B"',
        '> close 1000 "bye"',
        ...end,
      ]);
      assert.equal(peer.protocol.closeReceived, true);
    });

    it(`a ping after a message in the same read is answered after the message's reply (${role})`, () => {
      const peer = new EchoPeer(role).read(concat(p.text('a'), p.ping('p1'), p.text('b'), p.ping('p2')));
      assert.deepEqual(peer.log, [
        'message "a"',
        '> text "A"',
        'ping "p1"',
        '> pong "p1"',
        'message "b"',
        '> text "B"',
        'ping "p2"',
        '> pong "p2"',
      ]);
    });

    it(`a violation after messages in the same read: their replies, then the failure (${role})`, () => {
      const violations: [string, Buffer, number][] = [
        ['a reserved opcode', p.frame({ opcode: 0x3, payload: 'x' }), 1002],
        ['a continuation with nothing to continue', p.continuation('x'), 1002],
        ['a fragmented ping', p.frame({ opcode: OP.PING, fin: false, payload: 'x' }), 1002],
        ['invalid UTF-8 in a text message', p.text(bytes(0x61, 0xc0, 0x80)), 1007],
        ['a close frame with a 1-byte payload', p.frame({ opcode: OP.CLOSE, payload: bytes(3) }), 1002],
        ['a frame masked the wrong way', p.wronglyMasked(), 1002],
      ];
      for (const [what, bad, code] of violations) {
        const peer = new EchoPeer(role).read(concat(p.text('a'), p.ping('p'), p.text('b'), bad, p.text('never')));
        assert.deepEqual(
          peer.log.slice(0, 6),
          ['message "a"', '> text "A"', 'ping "p"', '> pong "p"', 'message "b"', '> text "B"'],
          what,
        );
        assert.equal(peer.log[6], `error ${code}`, what);
        assert.match(peer.log[7]!, new RegExp(`^> close ${code}`), what);
        assert.equal(peer.log.length, 9, `${what}: nothing after the violation is read (${peer.log.join(', ')})`);
        assert.equal(peer.log[8], 'end', what);
      }
    });

    it(`the application closes while handling the first message: the rest is still delivered, its replies refused, one close sent (${role})`, () => {
      const peer = new EchoPeer(role, {}, (event, self) => {
        if (event.type !== 'message') return;
        const text = event.data.toString();
        if (text === 'a') self.protocol.close(4000, 'enough', 0);
        else self.log.push(`send ${self.protocol.sendData(text, undefined)}`);
      });
      peer.read(concat(p.text('a'), p.text('b'), p.ping('p'), p.close(4000, 'enough')));
      const end = role === 'server' ? ['end'] : [];
      assert.deepEqual(peer.log, [
        'message "a"',
        '> close 4000 "enough"',
        'message "b"',
        'send false',
        'ping "p"',
        '> pong "p"',
        ...end,
      ]);
    });

    it(`the connection failing while the application handles a message: nothing read after it is delivered or answered (${role})`, () => {
      const peer = new EchoPeer(role, { maxBufferedBytes: 1000 }, (event, self) => {
        // Past maxBufferedBytes, as a driver reports a peer that does not read: 1008, at once.
        if (event.type === 'message') self.protocol.limitBuffered(5000);
      });
      peer.read(concat(p.text('a'), p.text('b'), p.ping('p'), p.close(1000)));
      assert.deepEqual(peer.log, [
        'message "a"',
        '> close 1008 "peer too slow: outgoing buffer limit exceeded"',
        'destroy',
      ]);
    });

    it(`a read of a thousand pings: every one answered, in order (${role})`, () => {
      const pings: Buffer[] = [];
      for (let i = 0; i < 1000; i++) pings.push(p.ping(String(i)));
      const peer = new EchoPeer(role).read(concat(...pings, p.text('last')));
      const expected: string[] = [];
      for (let i = 0; i < 1000; i++) expected.push(`ping "${i}"`, `> pong "${i}"`);
      assert.deepEqual(peer.log, [...expected, 'message "last"', '> text "LAST"']);
    });
  }
});

describe('streamMessages switched while frames after the event are already in', () => {
  for (const role of ROLES) {
    const p = peerOf(role);
    const streamAfter =
      (trigger: string, on = true) =>
      (event: ProtocolEvent, peer: EchoPeer): void => {
        if (event.type === 'message' && event.data.toString() === trigger) peer.protocol.streamMessages = on;
      };

    it(`switched on while handling a message: the messages after it come as streams (${role})`, () => {
      const peer = new EchoPeer(role, {}, streamAfter('header'));
      peer.read(concat(p.text('header'), p.binary(bytes(1, 2)), p.text(''), p.ping('p'), p.text('tail')));
      assert.deepEqual(peer.log, [
        'message "header"',
        'messageStart binary',
        `messageData "\\u0001\\u0002"`,
        'messageEnd',
        'messageStart text',
        'messageEnd',
        'ping "p"',
        '> pong "p"',
        'messageStart text',
        'messageData "tail"',
        'messageEnd',
      ]);
    });

    it(`switched on, then a text message that is not UTF-8: it starts, then aborts with the 1007 (${role})`, () => {
      const peer = new EchoPeer(role, {}, streamAfter('header'));
      peer.read(concat(p.text('header'), p.text(bytes(0xff))));
      assert.deepEqual(peer.log.slice(0, 3), ['message "header"', 'messageStart text', 'messageAbort 1007']);
      // The failure's close frame and its error event (the close is taken right after the abort).
      assert.match(peer.log[3]!, /^> close 1007/);
      assert.equal(peer.log[4], 'error 1007');
    });

    it(`switched on and off again before the next message: it comes whole (${role})`, () => {
      const peer = new EchoPeer(role, {}, (event, self) => {
        if (event.type !== 'message' || event.data.toString() !== 'header') return;
        self.protocol.streamMessages = true;
        self.protocol.streamMessages = false;
      });
      peer.read(concat(p.text('header'), p.text('body')));
      assert.deepEqual(peer.log, ['message "header"', 'message "body"']);
    });

    it(`switched off while handling a streamed message's end: the next one comes whole (${role})`, () => {
      const peer = new EchoPeer(role, { streamMessages: true }, (event, self) => {
        if (event.type === 'messageEnd') self.protocol.streamMessages = false;
      });
      peer.read(concat(p.text('one'), p.text('two'), p.text('three')));
      assert.deepEqual(peer.log, [
        'messageStart text',
        'messageData "one"',
        'messageEnd',
        'message "two"',
        'message "three"',
      ]);
    });

    it(`a message in fragments is not affected by a switch while it is half in (${role})`, () => {
      // Its first frame was read before the switch: it stays whole, as it began.
      const peer = new EchoPeer(role, {}, (event, self) => {
        if (event.type === 'ping') self.protocol.streamMessages = true;
      });
      peer.read(concat(p.text('fr', false), p.ping('p'), p.continuation('ag'), p.text('next')));
      assert.deepEqual(peer.log, [
        'ping "p"',
        '> pong "p"',
        'message "frag"',
        'messageStart text',
        'messageData "next"',
        'messageEnd',
      ]);
    });

    it(`a message larger than maxStreamedMessageSize read whole is refused when it would have been streamed (${role})`, () => {
      const peer = new EchoPeer(role, { maxStreamedMessageSize: 10 }, streamAfter('header'));
      peer.read(concat(p.text('header'), p.binary(Buffer.alloc(20, 1))));
      assert.equal(peer.log[0], 'message "header"');
      assert.equal(peer.log[1], 'error 1009', peer.log.join(', '));
      assert.match(peer.log[2]!, /^> close 1009/);
    });
  }
});

describe('frames split across reads', () => {
  it('wherever the read ends, every frame takes effect in order', () => {
    const p = peerOf('server');
    const wire = concat(p.text('a'), p.text('bcdef'), p.ping('p'));
    for (let cut = 1; cut < wire.length; cut++) {
      const peer = new EchoPeer('server');
      // Copies: the core owns what it is given (it unmasks payloads in place).
      peer.read(Buffer.from(wire.subarray(0, cut))).read(Buffer.from(wire.subarray(cut)));
      assert.deepEqual(
        peer.log,
        ['message "a"', '> text "A"', 'message "bcdef"', '> text "BCDEF"', 'ping "p"', '> pong "p"'],
        `cut at ${cut}`,
      );
    }
  });
});
