/**
 * Group 7 of Autobahn|Testsuite: the closing handshake (RFC 6455 §5.5.1, §7), started by the
 * engine: frames after a close, close payloads of every length, valid and invalid close codes.
 */
import { message } from './case.js';
import { Op } from './frames.js';
import {
  bytes,
  CLEAN_NORMAL,
  NORMAL,
  PROTOCOL_ERROR,
  INVALID_PAYLOAD,
  scripted,
  wrongCodeFails,
  type CaseDefinition,
  type ScriptedCase,
} from './script.js';

const HELLO = 'Hello World!';

/** A case of group 7: the engine closes, and a wrong close code from the peer fails the case. */
function closeCase(
  id: string,
  description: string,
  expectation: string,
  script: (c: ScriptedCase) => void,
  closeCode: number[] = [NORMAL],
  requireClean = true,
): CaseDefinition {
  return scripted(
    id,
    description,
    expectation,
    (c) => {
      c.expect('OK', []);
      c.closing({ closedByMe: true, closeCode, requireClean });
      script(c);
      c.p.killAfter(1);
    },
    { suppressClose: true, afterJudge: wrongCodeFails },
  );
}

/** 7.1.6 and 7.13: what happens is left open by the RFC; the case records it. */
function informational(c: ScriptedCase, text: string | null): void {
  if (text !== null) c.result = text;
  c.behavior = 'INFORMATIONAL';
  c.behaviorClose = 'INFORMATIONAL';
}

function basics(): CaseDefinition[] {
  return [
    scripted(
      '7.1.1',
      'A text message, then (once it is echoed) a close.',
      'The message echoed, then a clean close with 1000.',
      (c) => {
        c.expect('OK', [message(HELLO)]);
        c.closing(CLEAN_NORMAL);
        c.p.sendFrame({ opcode: Op.Text, payload: HELLO });
        c.p.killAfter(1);
      },
      { afterJudge: wrongCodeFails },
    ),
    closeCase('7.1.2', 'Two close frames.', 'A clean close with 1000; the second close frame ignored.', (c) => {
      c.p.sendClose(NORMAL);
      c.p.sendFrame({ opcode: Op.Close });
    }),
    closeCase('7.1.3', 'A close, then a ping.', 'A clean close with 1000; no pong.', (c) => {
      c.p.sendClose(NORMAL);
      c.p.sendFrame({ opcode: Op.Ping });
    }),
    closeCase('7.1.4', 'A close, then a text message.', 'A clean close with 1000; the message ignored.', (c) => {
      c.p.sendClose(NORMAL);
      c.p.sendFrame({ opcode: Op.Text, payload: HELLO });
    }),
    closeCase(
      '7.1.5',
      'The first fragment of a text message, a close, then the last fragment.',
      'A clean close with 1000.',
      (c) => {
        c.p.sendFrame({ opcode: Op.Text, fin: false, payload: 'fragment1' });
        c.p.sendClose(NORMAL);
        c.p.sendFrame({ opcode: Op.Continuation, fin: true, payload: 'fragment2' });
      },
    ),
    scripted(
      '7.1.6',
      'A 256 KiB text message, a short one, a close and a ping, back to back.',
      'Left open by the RFC: an implementation that answers the close before it has written the echoes ' +
        'may send only some of them, or none. Informational.',
      (c) => {
        c.expect('OK', [message(HELLO)]);
        c.expect('NON-STRICT', []);
        c.closing(CLEAN_NORMAL);
        c.p.sendFrame({ opcode: Op.Text, payload: 'BAsd7&jh23', payloadLength: 256 * 1024 });
        c.p.sendFrame({ opcode: Op.Text, payload: HELLO });
        c.p.sendClose(NORMAL);
        c.p.sendFrame({ opcode: Op.Ping });
        c.p.killAfter(1);
      },
      {
        suppressClose: true,
        afterJudge: (c) =>
          informational(
            c,
            c.behavior === 'OK'
              ? 'The text message was processed before the close.'
              : c.behavior === 'NON-STRICT'
                ? 'The close was processed before the text message could be echoed.'
                : null,
          ),
      },
    ),
  ];
}

function payloads(): CaseDefinition[] {
  return [
    closeCase('7.3.1', 'A close frame with an empty payload (no code, no reason).', 'A clean close with 1000.', (c) =>
      c.p.sendCloseFrame(null, null, false),
    ),
    closeCase(
      '7.3.2',
      'A close frame with a 1-octet payload (§5.5.1: a body starts with a 2-octet code).',
      'A close with 1002 (protocol error), or TCP dropped.',
      (c) => c.p.sendCloseFrame(null, bytes('a'), false),
      [PROTOCOL_ERROR],
      false,
    ),
    closeCase('7.3.3', 'A close frame with a 2-octet payload: the code 1000.', 'A clean close with 1000.', (c) =>
      c.p.sendClose(NORMAL),
    ),
    closeCase('7.3.4', 'A close frame with a code and a reason.', 'A clean close with 1000.', (c) =>
      c.p.sendClose(NORMAL, HELLO),
    ),
    closeCase(
      '7.3.5',
      'A close frame with a code and a reason of 123 octets, the longest that fits.',
      'A clean close with 1000.',
      (c) => c.p.sendClose(NORMAL, '*'.repeat(123)),
    ),
    closeCase(
      '7.3.6',
      'A close frame with a code and a reason of 124 octets: 126 octets of payload, over the 125 of a control frame.',
      'A close with 1002, or TCP dropped.',
      (c) => c.p.sendCloseFrame(NORMAL, Buffer.from('*'.repeat(124)), false),
      [PROTOCOL_ERROR],
      false,
    ),
    closeCase(
      '7.5.1',
      'A close frame whose reason is not valid UTF-8.',
      'A close with 1002 or 1007, or TCP dropped.',
      (c) => c.p.sendCloseFrame(NORMAL, Buffer.from('cebae1bdb9cf83cebcceb5eda080656469746564', 'hex'), false),
      [PROTOCOL_ERROR, INVALID_PAYLOAD],
      false,
    ),
  ];
}

function codes(): CaseDefinition[] {
  const valid = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999];
  const invalid = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999];
  const sendCode = (code: number) => (c: ScriptedCase) => c.p.sendCloseFrame(code, null, false);
  return [
    ...valid.map((code, i) =>
      closeCase(
        `7.7.${i + 1}`,
        `A close with the valid code ${code}.`,
        'A clean close, with 1000 or the same code.',
        sendCode(code),
        [NORMAL, code],
      ),
    ),
    ...invalid.map((code, i) =>
      closeCase(
        `7.9.${i + 1}`,
        `A close with the invalid code ${code} (RFC 6455 §7.4).`,
        'A close with 1002, or TCP dropped.',
        sendCode(code),
        [PROTOCOL_ERROR],
        false,
      ),
    ),
    ...[5000, 65535].map((code, i) =>
      scripted(
        `7.13.${i + 1}`,
        `A close with the code ${code}, beyond the ranges RFC 6455 §7.4 defines.`,
        'Left open by the RFC. Informational.',
        (c) => {
          c.expect('OK', []);
          c.closing({ closedByMe: true, closeCode: [NORMAL, code, PROTOCOL_ERROR], requireClean: false });
          c.p.sendCloseFrame(code, null, false);
          c.p.killAfter(1);
        },
        { suppressClose: true, afterJudge: (c) => informational(c, 'What happens is left open by the RFC.') },
      ),
    ),
  ];
}

export function closeCases(): CaseDefinition[] {
  return [...basics(), ...payloads(), ...codes()];
}
