/**
 * Cases 1 to 5 of Autobahn|Testsuite (RFC 6455 §5): framing, pings and pongs, reserved bits,
 * opcodes, fragmentation. What each sends, waits for and expects is the suite's; the wording is
 * this engine's.
 */
import { message, pong } from './case.js';
import { Op } from './frames.js';
import { bytes, CLEAN_NORMAL, PEER_FAILS, scripted, type CaseDefinition, type ScriptedCase } from './script.js';

const HELLO = 'Hello, world!';

/** 1.1 and 1.2: one message of a given length, echoed, then a clean close. */
function echoCases(group: string, binary: boolean): CaseDefinition[] {
  const lengths: [number, number | undefined, number][] = [
    [0, undefined, 1],
    [125, undefined, 1],
    [126, undefined, 1],
    [127, undefined, 1],
    [128, undefined, 1],
    [65535, undefined, 10],
    [65536, undefined, 10],
    [65536, 997, 10],
  ];
  const kind = binary ? 'binary' : 'text';
  return lengths.map(([length, chop, wait], i) =>
    scripted(
      `${group}.${i + 1}`,
      `A ${kind} message of ${length} octets` +
        `${chop === undefined ? '' : `, written to TCP in chops of ${chop} octets`}.`,
      `The same ${kind} message echoed back, then a clean close with 1000.`,
      (c) => {
        const payload = Buffer.alloc(length, binary ? 0xfe : 0x2a);
        c.expect('OK', [message(payload, binary)]);
        c.closing(CLEAN_NORMAL);
        c.p.sendFrame({ opcode: binary ? Op.Binary : Op.Text, payload, chopSize: chop });
        c.p.killAfter(wait);
      },
    ),
  );
}

/** A ping and the pong it should bring back. */
function pingCase(id: string, description: string, payload: Buffer, chop?: number): CaseDefinition {
  return scripted(id, description, 'A pong with the same payload, then a clean close with 1000.', (c) => {
    c.expect('OK', [pong(payload)]);
    c.closing(CLEAN_NORMAL);
    c.p.sendFrame({ opcode: Op.Ping, payload, chopSize: chop });
    c.p.closeAfter(chop === undefined ? 1 : 2);
  });
}

function pings(): CaseDefinition[] {
  const tenPings = (id: string, chop: number | undefined, how: string): CaseDefinition =>
    scripted(
      id,
      `Ten pings with payloads payload-0 to payload-9${how}.`,
      'Ten pongs with those payloads, in order (RFC 6455 only requires an answer to the latest), then a clean close.',
      (c) => {
        const pongs = [];
        for (let i = 0; i < 10; i++) {
          pongs.push(pong(`payload-${i}`));
          c.p.sendFrame({ opcode: Op.Ping, payload: `payload-${i}`, chopSize: chop });
        }
        c.expect('OK', pongs);
        c.closing(CLEAN_NORMAL);
        c.p.closeAfter(3);
      },
    );
  return [
    pingCase('2.1', 'A ping without payload.', Buffer.alloc(0)),
    pingCase('2.2', 'A ping with a short text payload.', bytes(HELLO)),
    pingCase('2.3', 'A ping with a short binary payload (not UTF-8).', bytes('\x00\xff\xfe\xfd\xfc\xfb\x00\xff')),
    pingCase(
      '2.4',
      'A ping with 125 octets of binary payload, the most a control frame may carry.',
      Buffer.alloc(125, 0xfe),
    ),
    scripted(
      '2.5',
      'A ping with 126 octets of payload, one more than a control frame may carry (RFC 6455 §5.5).',
      'The peer fails the connection at once (1002, protocol error).',
      (c) => {
        c.expect('OK', []);
        c.closing(PEER_FAILS);
        c.p.sendFrame({ opcode: Op.Ping, payload: Buffer.alloc(126, 0xfe) });
        c.p.killAfter(1);
      },
    ),
    pingCase(
      '2.6',
      'A ping with 125 octets of payload, written to TCP one octet at a time.',
      Buffer.alloc(125, 0xfe),
      1,
    ),
    ...[
      ['2.7', 'An unsolicited pong without payload, then a close.', ''],
      ['2.8', 'An unsolicited pong with a payload, then a close.', 'unsolicited pong payload'],
    ].map(([id, description, payload]) =>
      scripted(id!, description!, 'Nothing in answer to the pong; a clean close with 1000.', (c) => {
        c.expect('OK', []);
        c.closing(CLEAN_NORMAL);
        c.p.sendFrame({ opcode: Op.Pong, payload: payload! });
        c.p.sendClose(1000);
        c.p.closeAfter(1);
      }),
    ),
    scripted(
      '2.9',
      'An unsolicited pong with a payload, then a ping with a payload.',
      'Nothing in answer to the pong, a pong for the ping, then a clean close.',
      (c) => {
        c.expect('OK', [pong('ping payload')]);
        c.closing(CLEAN_NORMAL);
        c.p.sendFrame({ opcode: Op.Pong, payload: 'unsolicited pong payload' });
        c.p.sendFrame({ opcode: Op.Ping, payload: 'ping payload' });
        c.p.closeAfter(1);
      },
    ),
    tenPings('2.10', undefined, ''),
    tenPings('2.11', 1, ', written to TCP one octet at a time'),
  ];
}

/** Group 3: a frame with reserved bits set and no extension defining them (RFC 6455 §5.2). */
function reservedBits(): CaseDefinition[] {
  const after = (id: string, rsv: number, how: string, write: { sync?: boolean; chopSize?: number }): CaseDefinition =>
    scripted(
      id,
      `A text message, then the same with RSV = ${rsv}, then a ping${how}.`,
      'The first message echoed, then the connection failed at the second (1002); no pong.',
      (c) => {
        c.expect('OK', [message(HELLO)]);
        c.expect('NON-STRICT', []);
        c.closing(PEER_FAILS);
        c.p.sendFrame({ opcode: Op.Text, payload: HELLO, ...write });
        c.p.sendFrame({ opcode: Op.Text, payload: HELLO, rsv, ...write });
        c.p.sendFrame({ opcode: Op.Ping, ...write });
        c.p.killAfter(1);
      },
    );
  const alone = (id: string, rsv: number, description: string, opcode: number, payload: Buffer): CaseDefinition =>
    scripted(id, description, 'The connection is failed at once (1002).', (c) => {
      c.expect('OK', []);
      c.closing(PEER_FAILS);
      c.p.sendFrame({ opcode, payload, rsv });
      c.p.killAfter(1);
    });
  return [
    alone('3.1', 1, 'A short text message with RSV = 1.', Op.Text, bytes(HELLO)),
    after('3.2', 2, '', {}),
    after('3.3', 3, ', each frame in its own TCP write', { sync: true }),
    after('3.4', 4, ', written to TCP one octet at a time', { chopSize: 1 }),
    alone('3.5', 5, 'A short binary message with RSV = 5.', Op.Binary, bytes('\x00\xff\xfe\xfd\xfc\xfb\x00\xff')),
    // The suite's 3.6 is described as a ping, but what it sends is a binary frame.
    alone('3.6', 6, 'A binary frame with a short payload and RSV = 6.', Op.Binary, bytes(HELLO)),
    alone('3.7', 7, 'A close frame with RSV = 7.', Op.Close, Buffer.alloc(0)),
  ];
}

/** Group 4: reserved opcodes (RFC 6455 §5.2: 0x3-0x7 for data, 0xB-0xF for control). */
function opcodes(): CaseDefinition[] {
  const cases: CaseDefinition[] = [];
  for (const [sub, first] of [
    [1, 3],
    [2, 11],
  ] as const) {
    const kind = sub === 1 ? 'non-control' : 'control';
    for (let i = 0; i < 5; i++) {
      const opcode = first + i;
      const id = `4.${sub}.${i + 1}`;
      const withPayload = i % 2 === 1 || i === 4;
      if (i < 2)
        cases.push(
          scripted(
            id,
            `A frame with reserved ${kind} opcode ${opcode}${withPayload ? ' and a payload' : ''}.`,
            'The connection is failed at once (1002).',
            (c) => {
              c.expect('OK', []);
              c.closing(PEER_FAILS);
              c.p.sendFrame({ opcode, payload: withPayload ? 'reserved opcode payload' : '' });
              c.p.killAfter(1);
            },
          ),
        );
      else {
        const chop = i === 4 ? 1 : undefined;
        cases.push(
          scripted(
            id,
            `A text message, then a frame with reserved ${kind} opcode ${opcode}` +
              `${withPayload ? ' and a payload' : ''}, ` +
              `then a ping${chop === undefined ? '' : ', written to TCP one octet at a time'}.`,
            'The message echoed, then the connection failed at the reserved opcode (1002); no pong.',
            (c) => {
              c.expect('OK', [message(HELLO)]);
              c.expect('NON-STRICT', []);
              c.closing(PEER_FAILS);
              c.p.sendFrame({ opcode: Op.Text, payload: HELLO, chopSize: chop });
              c.p.sendFrame({ opcode, payload: withPayload ? HELLO : '', chopSize: chop });
              c.p.sendFrame({ opcode: Op.Ping, chopSize: chop });
              c.p.killAfter(1);
            },
          ),
        );
      }
    }
  }
  return cases;
}

interface FragmentSpec {
  opcode: number;
  fin: boolean;
  payload: string;
}

/** A sequence of frames the peer must reject (1002). */
function rejected(id: string, description: string, frames: FragmentSpec[], how: { sync?: boolean; chopSize?: number }) {
  return scripted(id, description, 'The connection is failed at once (1002).', (c) => {
    c.expect('OK', []);
    c.closing(PEER_FAILS);
    for (const frame of frames) c.p.sendFrame({ ...frame, ...how });
    c.p.killAfter(1);
  });
}

/** A fragmented message the peer must put together and echo. */
function reassembled(id: string, description: string, withPing: boolean, how: { sync?: boolean; chopSize?: number }) {
  return scripted(
    id,
    description,
    withPing ? 'A pong, then the message echoed whole.' : 'The message echoed whole.',
    (c) => {
      c.expect(
        'OK',
        withPing ? [pong('ping payload'), message('fragment1fragment2')] : [message('fragment1fragment2')],
      );
      c.closing(CLEAN_NORMAL);
      c.p.sendFrame({ opcode: Op.Text, fin: false, payload: 'fragment1', ...how });
      if (withPing) c.p.sendFrame({ opcode: Op.Ping, payload: 'ping payload', ...how });
      c.p.sendFrame({ opcode: Op.Continuation, fin: true, payload: 'fragment2', ...how });
      c.p.closeAfter(1);
    },
  );
}

/**
 * 5.19 and 5.20: a text message in five fragments with a ping after the second and after the
 * fourth, and a pause between the two halves. The suite pauses one second; here the second half
 * goes as soon as the first pong is back (a peer that answers pings at once, as it should, gets
 * the same verdict either way), or after that second when it is not.
 */
function pingsInsideMessage(id: string, sync: boolean): CaseDefinition {
  return scripted(
    id,
    'A text message in five fragments: two, a ping, a pause, two more, a second ping, the last' +
      (sync ? '; each frame in its own TCP write.' : '.'),
    'Each ping answered as it arrives, before the message is complete; then the message echoed whole.',
    (c: ScriptedCase) => {
      const fragments = ['fragment1', 'fragment2', 'fragment3', 'fragment4', 'fragment5'];
      c.expect('OK', [pong('pongme 1!'), pong('pongme 2!'), message(fragments.join(''))]);
      c.closing(CLEAN_NORMAL);
      let secondHalfSent = false;
      const secondHalf = (): void => {
        if (secondHalfSent) return;
        secondHalfSent = true;
        c.p.cancelTimer(pause);
        c.p.sendFrame({ opcode: Op.Continuation, fin: false, payload: fragments[2], sync });
        c.p.sendFrame({ opcode: Op.Continuation, fin: false, payload: fragments[3], sync });
        c.p.sendFrame({ opcode: Op.Ping, payload: 'pongme 2!', sync });
        c.p.sendFrame({ opcode: Op.Continuation, fin: true, payload: fragments[4], sync });
        c.p.closeAfter(1);
      };
      const onPong = c.onPong.bind(c);
      c.onPong = (payload: Buffer): void => {
        onPong(payload);
        if (payload.equals(Buffer.from('pongme 1!'))) secondHalf();
      };
      c.p.sendFrame({ opcode: Op.Text, fin: false, payload: fragments[0], sync });
      c.p.sendFrame({ opcode: Op.Continuation, fin: false, payload: fragments[1], sync });
      c.p.sendFrame({ opcode: Op.Ping, payload: 'pongme 1!', sync });
      const pause = c.p.continueLater(1, secondHalf, 'with the second half');
    },
  );
}

function fragmentation(): CaseDefinition[] {
  const t = (opcode: number, fin: boolean, payload: string): FragmentSpec => ({ opcode, fin, payload });
  const nothingToContinue = (fin: boolean): FragmentSpec[] => [
    t(Op.Continuation, fin, 'non-continuation payload'),
    t(Op.Text, true, HELLO),
  ];
  const repeated = (fin: boolean): FragmentSpec[] => {
    const once = [
      t(Op.Continuation, fin, 'fragment1'),
      t(Op.Text, false, 'fragment2'),
      t(Op.Continuation, true, 'fragment3'),
    ];
    return [...once, ...once];
  };
  const frameWise = { sync: true };
  const octetWise = { chopSize: 1 };
  return [
    rejected(
      '5.1',
      'A ping in two fragments (RFC 6455 §5.5: control frames are never fragmented).',
      [t(Op.Ping, false, 'fragment1'), t(Op.Continuation, true, 'fragment2')],
      {},
    ),
    rejected(
      '5.2',
      'A pong in two fragments.',
      [t(Op.Pong, false, 'fragment1'), t(Op.Continuation, true, 'fragment2')],
      {},
    ),
    reassembled('5.3', 'A text message in two fragments.', false, {}),
    reassembled('5.4', 'A text message in two fragments, each frame in its own TCP write.', false, frameWise),
    reassembled('5.5', 'A text message in two fragments, written to TCP one octet at a time.', false, octetWise),
    reassembled('5.6', 'A text message in two fragments with a ping between them.', true, {}),
    reassembled(
      '5.7',
      'A text message in two fragments with a ping between them, each frame in its own write.',
      true,
      frameWise,
    ),
    reassembled(
      '5.8',
      'A text message in two fragments with a ping between them, one octet per write.',
      true,
      octetWise,
    ),
    rejected(
      '5.9',
      'A final continuation frame with nothing to continue, then a text message.',
      nothingToContinue(true),
      {},
    ),
    rejected('5.10', 'As 5.9, each frame in its own TCP write.', nothingToContinue(true), frameWise),
    rejected('5.11', 'As 5.9, written to TCP one octet at a time.', nothingToContinue(true), octetWise),
    rejected(
      '5.12',
      'A non-final continuation frame with nothing to continue, then a text message.',
      nothingToContinue(false),
      {},
    ),
    rejected('5.13', 'As 5.12, each frame in its own TCP write.', nothingToContinue(false), frameWise),
    rejected('5.14', 'As 5.12, written to TCP one octet at a time.', nothingToContinue(false), octetWise),
    scripted(
      '5.15',
      'A text message in two fragments, then a non-final continuation frame with nothing to continue, ' +
        'then a text frame.',
      'The first message echoed, then the connection failed (1002).',
      (c) => {
        c.expect('OK', [message('fragment1fragment2')]);
        c.expect('NON-STRICT', []);
        c.closing(PEER_FAILS);
        c.p.sendFrame({ opcode: Op.Text, fin: false, payload: 'fragment1' });
        c.p.sendFrame({ opcode: Op.Continuation, fin: true, payload: 'fragment2' });
        c.p.sendFrame({ opcode: Op.Continuation, fin: false, payload: 'fragment3' });
        c.p.sendFrame({ opcode: Op.Text, fin: true, payload: 'fragment4' });
        c.p.killAfter(1);
      },
    ),
    rejected(
      '5.16',
      'Twice: a non-final continuation frame with nothing to continue, then a text message in two fragments.',
      repeated(false),
      {},
    ),
    rejected(
      '5.17',
      'Twice: a final continuation frame with nothing to continue, then a text message in two fragments.',
      repeated(true),
      {},
    ),
    rejected(
      '5.18',
      'A text message in two fragments, both with the text opcode (§5.4: the second must be a continuation).',
      [t(Op.Text, false, 'fragment1'), t(Op.Text, true, 'fragment2')],
      {},
    ),
    pingsInsideMessage('5.19', false),
    pingsInsideMessage('5.20', true),
  ];
}

export function framingCases(): CaseDefinition[] {
  return [
    ...echoCases('1.1', false),
    ...echoCases('1.2', true),
    ...pings(),
    ...reservedBits(),
    ...opcodes(),
    ...fragmentation(),
  ];
}
