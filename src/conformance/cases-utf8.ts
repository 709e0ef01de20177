/**
 * Group 6 of Autobahn|Testsuite: UTF-8 in text messages (RFC 6455 §8.1, §5.6). 6.1-6.4 are
 * hand-made (empty fragments, fragments cut inside code points, invalid sequences, and how early
 * the peer notices); 6.5-6.23 each send one message from the test sequences of Markus Kuhn's
 * UTF-8 decoder stress test, valid or not (the same sequences the suite uses).
 */
import { message } from './case.js';
import { Op } from './frames.js';
import { bytes, CLEAN_NORMAL, INVALID_PAYLOAD, scripted, type CaseDefinition, type ScriptedCase } from './script.js';
import { isValidUtf8 } from './utf8.js';
import type { ExpectedClose } from './case.js';

/** The peer must fail the connection with 1007; if it never does, the case itself fails. */
const PEER_FAILS_UTF8: ExpectedClose = {
  closedByMe: false,
  closeCode: [INVALID_PAYLOAD],
  requireClean: false,
  closedByWrongEndpointIsFatal: true,
};

const hexOf = (text: string): Buffer => Buffer.from(text.replace(/ /g, ''), 'hex');

/** κόσμε, the test stress file's first valid sample. */
const KOSME = hexOf('ce ba e1 bd b9 cf 83 ce bc ce b5');

/** The sequences of 6.5-6.23: [title, [valid, bytes][]]. */
function sequences(): [string, [boolean, Buffer][]][] {
  const valid = (hex: string): [boolean, Buffer] => [true, hexOf(hex)];
  const invalid = (hex: string): [boolean, Buffer] => [false, hexOf(hex)];
  const range = (from: number, to: number, withSpace: boolean): Buffer => {
    const out: number[] = [];
    for (let b = from; b < to; b++) out.push(...(withSpace ? [b, 0x20] : [b]));
    return Buffer.from(out);
  };
  const lastMissing = [
    'c0',
    'e0 80',
    'f0 80 80',
    'f8 80 80 80',
    'fc 80 80 80 80',
    'df',
    'ef bf',
    'f7 bf bf',
    'fb bf bf bf',
    'fd bf bf bf bf',
  ];
  const nonCharacters: [boolean, Buffer][] = [valid('ef bf be'), valid('ef bf bf')];
  for (const z1 of [0xf0, 0xf1, 0xf2, 0xf3, 0xf4])
    for (const z2 of [0x8f, 0x9f, 0xaf, 0xbf]) {
      // F4 9F.. and above are past U+10FFFF; F0 8F.. is an overlong form.
      if (z1 === 0xf4 && z2 !== 0x8f) continue;
      if (z1 === 0xf0 && z2 === 0x8f) continue;
      for (const z3 of [0xbe, 0xbf]) nonCharacters.push([true, Buffer.from([z1, z2, 0xbf, z3])]);
    }
  const prefixes: [boolean, Buffer][] = [];
  for (let i = 1; i <= KOSME.length; i++) prefixes.push([isValidUtf8(KOSME.subarray(0, i)), KOSME.subarray(0, i)]);
  return [
    [
      'Some valid UTF-8 sequences',
      [
        [true, bytes('hello\x24world')],
        [true, bytes('hello\xc2\xa2world')],
        [true, bytes('hello\xe2\x82\xacworld')],
        [true, bytes('hello\xf0\xa4\xad\xa2world')],
        [true, KOSME],
      ],
    ],
    ['All prefixes of a valid UTF-8 string that contains multi-byte code points', prefixes],
    [
      'First possible sequence of a certain length',
      [valid('00'), valid('c2 80'), valid('e0 a0 80'), valid('f0 90 80 80')],
    ],
    [
      'First possible sequence length 5/6 (invalid codepoints)',
      [invalid('f8 88 80 80 80'), invalid('fc 84 80 80 80 80')],
    ],
    [
      'Last possible sequence of a certain length',
      [valid('7f'), valid('df bf'), valid('ef bf bf'), valid('f4 8f bf bf')],
    ],
    [
      'Last possible sequence length 4/5/6 (invalid codepoints)',
      [invalid('f7 bf bf bf'), invalid('fb bf bf bf bf'), invalid('fd bf bf bf bf bf')],
    ],
    [
      'Other boundary conditions',
      [valid('ed 9f bf'), valid('ee 80 80'), valid('ef bf bd'), valid('f4 8f bf bf'), invalid('f4 90 80 80')],
    ],
    [
      'Unexpected continuation bytes',
      [
        invalid('80'),
        invalid('bf'),
        invalid('80 bf'),
        invalid('80 bf 80'),
        invalid('80 bf 80 bf'),
        invalid('80 bf 80 bf 80'),
        invalid('80 bf 80 bf 80 bf'),
        [false, range(0x80, 0xbf, false)],
      ],
    ],
    [
      'Lonely start characters',
      [
        [false, range(0xc0, 0xdf, true)],
        [false, range(0xe0, 0xef, true)],
        [false, range(0xf0, 0xf7, true)],
        [false, range(0xf8, 0xfb, true)],
        [false, range(0xfc, 0xfd, true)],
      ],
    ],
    ['Sequences with last continuation byte missing', lastMissing.map(invalid)],
    ['Concatenation of incomplete sequences', [invalid(lastMissing.join(' '))]],
    ['Impossible bytes', [invalid('fe'), invalid('ff'), invalid('fe fe ff ff')]],
    [
      'Examples of an overlong ASCII character',
      [
        invalid('c0 af'),
        invalid('e0 80 af'),
        invalid('f0 80 80 af'),
        invalid('f8 80 80 80 af'),
        invalid('fc 80 80 80 80 af'),
      ],
    ],
    [
      'Maximum overlong sequences',
      [
        invalid('c1 bf'),
        invalid('e0 9f bf'),
        invalid('f0 8f bf bf'),
        invalid('f8 87 bf bf bf'),
        invalid('fc 83 bf bf bf bf'),
      ],
    ],
    [
      'Overlong representation of the NUL character',
      [
        invalid('c0 80'),
        invalid('e0 80 80'),
        invalid('f0 80 80 80'),
        invalid('f8 80 80 80 80'),
        invalid('fc 80 80 80 80 80'),
      ],
    ],
    [
      'Single UTF-16 surrogates',
      ['ed a0 80', 'ed ad bf', 'ed ae 80', 'ed af bf', 'ed b0 80', 'ed be 80', 'ed bf bf'].map(invalid),
    ],
    [
      'Paired UTF-16 surrogates',
      ['ed a0 80', 'ed ad bf', 'ed ae 80', 'ed af bf'].flatMap((high) =>
        ['ed b0 80', 'ed bf bf'].map((low) => invalid(`${high} ${low}`)),
      ),
    ],
    ['Non-character code points (valid UTF-8)', nonCharacters],
    [
      'Unicode specials (i.e. replacement char)',
      ['ef bf b9', 'ef bf ba', 'ef bf bb', 'ef bf bc', 'ef bf bd', 'ef bf be', 'ef bf bf'].map(valid),
    ],
  ];
}

/** The titles of subgroups 6.5-6.23, for the reports. */
export const UTF8_SUBGROUPS: Record<string, string> = Object.fromEntries(
  sequences().map(([title], i) => [`6.${i + 5}`, title]),
);

function oneMessage(id: string, valid: boolean, payload: Buffer): CaseDefinition {
  return scripted(
    id,
    `A text message in one frame whose payload is ${valid ? 'valid' : 'invalid'} UTF-8: 0x${payload.toString('hex')}.`,
    valid ? 'The message echoed.' : 'The connection is failed at once (1007), since the payload is not valid UTF-8.',
    (c) => {
      if (valid) {
        c.expect('OK', [message(payload)]);
        c.closing(CLEAN_NORMAL);
      } else {
        c.expect('OK', []);
        c.closing(PEER_FAILS_UTF8);
      }
      c.p.sendMessage(payload, false);
      c.p.killAfter(0.5);
    },
  );
}

/** 6.3.1/6.3.2: κόσμε, a lone surrogate (invalid at its second octet), then "edited". */
const SURROGATE_IN_THE_MIDDLE = hexOf('ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80 65 64 69 74 65 64');

/** 6.4: κόσμε, then F4 90 80 80 (U+110000: invalid at its second octet, 0x90), then "edited". */
const PART1 = KOSME;
const PART2 = hexOf('f4 90 80 80');
const PART3 = hexOf('65 64 69 74 65 64');
const WHOLE = Buffer.concat([PART1, PART2, PART3]);

/**
 * The 6.4 cases: the invalid message in three parts, with a wait after each of the first two.
 * After the first (valid so far) the peer should wait for more ("timeout A" recorded); after the
 * second it should fail at once (strict), not only when the message is complete (non-strict,
 * "timeout B" recorded too). The wait is the suite's one second, times the engine's time scale: a
 * peer that fails fast has that long to do it.
 */
function failFast(id: string, description: string, parts: Buffer[], inOneFrame: boolean): CaseDefinition {
  return scripted(
    id,
    description,
    'The first part accepted (the peer waits for more); the second rejected at once with 1007, since from its ' +
      'first invalid octet on no continuation can make the message valid. Rejected only when complete: non-strict.',
    (c: ScriptedCase) => {
      c.expect('OK', [{ type: 'timeout', tag: 'A' }]);
      c.expect('NON-STRICT', [
        { type: 'timeout', tag: 'A' },
        { type: 'timeout', tag: 'B' },
      ]);
      c.closing(PEER_FAILS_UTF8);
      const send = (part: Buffer, index: number): void => {
        if (inOneFrame) c.p.sendFramePart(part);
        else c.p.sendFrame({ opcode: index === 0 ? Op.Text : Op.Continuation, fin: index === 2, payload: part });
      };
      if (inOneFrame) c.p.beginFrame(Op.Text, WHOLE.length);
      send(parts[0]!, 0);
      c.p.continueLater(
        1,
        () => {
          if (c.p.state !== 'open') return;
          c.reached('A');
          send(parts[1]!, 1);
          c.p.continueLater(
            1,
            () => {
              if (c.p.state !== 'open') return;
              c.reached('B');
              send(parts[2]!, 2);
              if (inOneFrame) c.p.endMessage();
              c.p.killAfter(1);
            },
            'B',
          );
        },
        'A',
      );
    },
  );
}

export function utf8Cases(): CaseDefinition[] {
  const empty = (
    id: string,
    description: string,
    frames: [number, boolean, string][],
    echoed: string,
  ): CaseDefinition =>
    scripted(id, description, `The message echoed${echoed === '' ? ', empty' : ''}.`, (c) => {
      c.expect('OK', [message(echoed)]);
      c.closing(CLEAN_NORMAL);
      for (const [opcode, fin, payload] of frames) c.p.sendFrame({ opcode, fin, payload });
      c.p.closeAfter(1);
    });
  const hello = Buffer.from('Hello-µ@ßöäüàá-UTF-8!!');
  const helloParts = [Buffer.from('Hello-µ@ßöä'), Buffer.from('üàá-UTF-8!!')];
  const valid = (id: string, description: string, send: (c: ScriptedCase) => void, payload: Buffer): CaseDefinition =>
    scripted(id, `${description}: 0x${payload.toString('hex')}.`, 'The message echoed.', (c) => {
      c.expect('OK', [message(payload)]);
      c.closing(CLEAN_NORMAL);
      send(c);
      c.p.closeAfter(1);
    });
  const cases: CaseDefinition[] = [
    empty('6.1.1', 'A text message of length 0.', [[Op.Text, true, '']], ''),
    empty(
      '6.1.2',
      'A text message in three fragments, each empty.',
      [
        [Op.Text, false, ''],
        [Op.Continuation, false, ''],
        [Op.Continuation, true, ''],
      ],
      '',
    ),
    empty(
      '6.1.3',
      'A text message in three fragments, the first and last empty.',
      [
        [Op.Text, false, ''],
        [Op.Continuation, false, 'middle frame payload'],
        [Op.Continuation, true, ''],
      ],
      'middle frame payload',
    ),
    valid('6.2.1', 'A valid UTF-8 text message in one frame', (c) => c.p.sendMessage(hello, false), hello),
    valid(
      '6.2.2',
      'A valid UTF-8 text message in two fragments, cut at a code point boundary',
      (c) => {
        c.p.sendFrame({ opcode: Op.Text, fin: false, payload: helloParts[0] });
        c.p.sendFrame({ opcode: Op.Continuation, fin: true, payload: helloParts[1] });
      },
      Buffer.concat(helloParts),
    ),
    valid(
      '6.2.3',
      'A valid UTF-8 text message in fragments of one octet (most cut inside code points)',
      (c) => c.p.sendMessage(hello, false, 1),
      hello,
    ),
    valid(
      '6.2.4',
      'A valid UTF-8 text message (κόσμε) in fragments of one octet',
      (c) => c.p.sendMessage(KOSME, false, 1),
      KOSME,
    ),
  ];
  for (const [id, fragment] of [
    ['6.3.1', undefined],
    ['6.3.2', 1],
  ] as const)
    cases.push(
      scripted(
        id,
        'A text message that is not valid UTF-8 (a UTF-16 surrogate in the middle)' +
          `${fragment === undefined ? '' : ', in fragments of one octet'}: ` +
          `0x${SURROGATE_IN_THE_MIDDLE.toString('hex')}.`,
        'The connection is failed at once (1007).',
        (c) => {
          c.expect('OK', []);
          c.closing(PEER_FAILS_UTF8);
          c.p.sendMessage(SURROGATE_IN_THE_MIDDLE, false, fragment);
          c.p.killAfter(1);
        },
      ),
    );
  const at12 = [WHOLE.subarray(0, 12), WHOLE.subarray(12, 13), WHOLE.subarray(13)];
  const partsText = (parts: Buffer[]): string => parts.map((part) => part.toString('hex')).join(' | ');
  cases.push(
    failFast(
      '6.4.1',
      `An invalid text message in three frames, with a wait after the first two: ${partsText([PART1, PART2, PART3])}.`,
      [PART1, PART2, PART3],
      false,
    ),
    failFast(
      '6.4.2',
      `As 6.4.1, the second frame being only the octet that makes the message invalid: ${partsText(at12)}.`,
      at12,
      false,
    ),
    failFast(
      '6.4.3',
      "As 6.4.1, the three parts being parts of one frame's payload written with waits between them: " +
        `${partsText([PART1, PART2, PART3])}.`,
      [PART1, PART2, PART3],
      true,
    ),
    failFast('6.4.4', `As 6.4.2, in parts of one frame's payload: ${partsText(at12)}.`, at12, true),
  );
  sequences().forEach(([, samples], i) =>
    samples.forEach(([isValid, payload], j) => cases.push(oneMessage(`6.${i + 5}.${j + 1}`, isValid, payload))),
  );
  return cases;
}
