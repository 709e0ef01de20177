/**
 * `node --import tsx fuzz/engine/seed.ts`: writes seed inputs into fuzz/corpus/NAME/ for every
 * target, from what the spec tests send: the test peer's request and response heads
 * (spec-tests/helpers/peer/http.ts) in the variations the handshake tests use, the head and
 * Sec-WebSocket-Extensions literals written in spec-tests/*.test.ts, the RFC 6455 §5.7 and RFC 7692
 * §7.2.3 example frames, and frames from the peer's encoder. Each input starts with the parameter
 * bytes its target reads (fuzz/targets/*.ts). A fuzzing run then keeps and minimises what adds coverage.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import {
  RFC_KEY,
  acceptResponse,
  clientFrame,
  closePayload,
  deflatePayload,
  encodeFrame,
  FrameDecoder,
  handshakeRequest,
  httpResponse,
  OP,
  type FrameSpec,
} from '../../spec-tests/helpers/peer/index.js';

const root = new URL('../', import.meta.url);
const specDir = new URL('../spec-tests/', root);

function write(target: string, inputs: Buffer[]): void {
  const dir = new URL(`corpus/${target}/`, root);
  mkdirSync(dir, { recursive: true });
  for (const input of inputs) {
    writeFileSync(new URL(createHash('sha1').update(input).digest('hex').slice(0, 16), dir), input);
  }
  console.log(`${target}: ${inputs.length} seeds`);
}

const bytes = (...parts: (number[] | Buffer | string)[]): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));

/** The single-quoted string literals of the spec tests, escapes decoded. */
function specLiterals(pattern: RegExp): string[] {
  const found = new Set<string>();
  for (const file of readdirSync(specDir).filter((f) => f.endsWith('.ts'))) {
    const text = readFileSync(new URL(file, specDir), 'utf8');
    // Single-quoted literals only: a template's closing backtick and the next one's opening would
    // otherwise read as a literal of the code between them.
    for (const match of text.matchAll(/'((?:[^'\\\n]|\\.)*)'/g)) {
      const literal = match[1]!
        .replace(/\\r/g, '\r')
        .replace(/\\n/g, '\n')
        .replace(/\\t/g, '\t')
        .replace(/\\(['`\\])/g, '$1');
      if (pattern.test(literal)) found.add(literal);
    }
  }
  return [...found];
}

// Target 1: request heads (first byte even) and response heads (odd).
const requests = [
  handshakeRequest(),
  handshakeRequest({ path: '/chat?room=1', protocols: ['chat', 'superchat'] }),
  handshakeRequest({ extensions: ['permessage-deflate; client_max_window_bits', 'permessage-deflate'] }),
  handshakeRequest({ httpVersion: 'HTTP/1.0' }),
  handshakeRequest({ method: 'POST' }),
  handshakeRequest({ headers: { 'Sec-WebSocket-Version': '8' } }),
  handshakeRequest({ headers: { 'Sec-WebSocket-Key': null, Host: null } }),
  handshakeRequest({ headers: { Upgrade: 'WebSocket', Connection: 'keep-alive, Upgrade' } }),
  handshakeRequest({ extraFields: [['Origin', 'http://example.com']] }),
  ...specLiterals(/^GET [^\n]*HTTP\/1\.1\r\n/).map((text) => Buffer.from(text, 'latin1')),
];
const responses = [
  acceptResponse({ key: RFC_KEY }),
  acceptResponse({ key: RFC_KEY }, { headers: [['Sec-WebSocket-Protocol', 'chat']] }),
  acceptResponse({ key: RFC_KEY }, { omit: ['upgrade'], statusLine: 'HTTP/1.1 101' }),
  acceptResponse({ key: RFC_KEY }, { accept: 'x', connection: 'keep-alive' }),
  httpResponse(400, 'Bad Request', 'no\n', [['Content-Length', '3']]),
  httpResponse(426, 'Upgrade Required', '', [['Sec-WebSocket-Version', '13']]),
  ...specLiterals(/^HTTP\/1\.1 \d{3}[^\n]*\r\n/).map((text) => Buffer.from(text, 'latin1')),
];
write('handshake', [
  ...requests.flatMap((head) => [bytes([0, 0, 0], head), bytes([0, 1, 1], head)]),
  ...responses.flatMap((head) => [bytes([1, 0, 0, 1], head), bytes([1, 2, 3, 2], head)]),
]);

// Target 2: every Sec-WebSocket-Extensions value the spec tests write, and subprotocol lists.
const extensions = specLiterals(/^(permessage-deflate|x-webkit|x-custom)/);
write('negotiation', [
  ...extensions.map((value, i) => bytes([i % 6, (i >> 1) % 6, i % 4], value)),
  bytes([0, 0, 1], 'chat, superchat'),
  bytes([0, 0, 2], 'superchat\nchat'),
]);

// Target 5: a handshake, then frames, for each server variant.
const key = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
const masked = (spec: FrameSpec): Buffer => clientFrame({ ...spec, maskKey: key });
const close = masked({ opcode: OP.CLOSE, payload: closePayload(1000, 'bye') });
const conversations: Buffer[] = [
  // RFC 6455 §5.7: a masked "Hello", then ping and close.
  bytes(
    [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
    masked({ opcode: OP.PING, payload: 'Hello' }),
    close,
  ),
  // §5.7: "Hello" in two fragments with a ping between them.
  bytes(
    masked({ opcode: OP.TEXT, payload: 'Hel', fin: false }),
    masked({ opcode: OP.PING }),
    masked({ opcode: OP.CONT, payload: 'lo' }),
    close,
  ),
  // §5.7: 256 bytes (16-bit length) and 65536 bytes (64-bit length) of binary.
  bytes(masked({ opcode: OP.BINARY, payload: Buffer.alloc(256, 1) }), close),
  bytes(masked({ opcode: OP.BINARY, payload: Buffer.alloc(65536 - 200, 2) })),
  // Close frames the close tests send: no code, a reserved code, a one-byte payload, bad UTF-8.
  masked({ opcode: OP.CLOSE }),
  masked({ opcode: OP.CLOSE, payload: closePayload(1005) }),
  masked({ opcode: OP.CLOSE, payload: Buffer.from([0x03]) }),
  masked({ opcode: OP.CLOSE, payload: Buffer.from([0x03, 0xe8, 0xc3, 0x28]) }),
  // Protocol errors: an unmasked frame, RSV2, a reserved opcode, a 126-byte ping, invalid UTF-8.
  clientFrame({ opcode: OP.TEXT, payload: 'unmasked' }),
  masked({ opcode: OP.TEXT, payload: 'x', rsv2: true }),
  masked({ opcode: 0x3 }),
  masked({ opcode: OP.PING, payload: Buffer.alloc(126) }),
  masked({ opcode: OP.TEXT, payload: Buffer.from([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xed, 0xa0, 0x80]) }),
  // RFC 7692 §7.2.3.1: "Hello" compressed, and §7.2.3.2 with the context taken over.
  bytes(
    masked({ opcode: OP.TEXT, rsv1: true, payload: Buffer.from([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]) }),
    masked({ opcode: OP.TEXT, rsv1: true, payload: Buffer.from([0xf2, 0x00, 0x11, 0x00, 0x00]) }),
    close,
  ),
  bytes(masked({ opcode: OP.BINARY, rsv1: true, payload: deflatePayload(Buffer.alloc(5000, 0x61)) }), close),
];
const offer = 'permessage-deflate; client_max_window_bits';
write('echo-server', [
  ...conversations.flatMap((frames, i) => [
    bytes([0, 0], handshakeRequest(), frames),
    bytes([1, i % 3], handshakeRequest({ extensions: [offer] }), frames),
    bytes([2, 0], handshakeRequest({ extensions: ['permessage-deflate'] }), frames),
    bytes([3, 2], handshakeRequest({ protocols: ['chat'] }), frames),
  ]),
  bytes([0, 1], requests[4]!),
]);

// Target 6: three clients, subscriptions, publications of each kind, and each kind of close.
write('topics', [
  bytes([2, 0, 1, 2], [0, 0, 0, 0, 1, 0, 0, 2, 0, 2, 0x00, 0, 2, 0x51, 0, 2, 0xd2, 0, 1, 1, 0, 3, 0, 0]),
  bytes([3, 0, 3, 1, 2], [0, 0, 1, 0, 1, 1, 0, 2, 1, 0, 3, 3, 2, 0x31, 1, 2, 0x80, 3, 4, 1, 0, 2, 0x00, 1, 5, 2, 3]),
  bytes([1, 2], [0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 2, 0, 0]),
]);

// Target 3: the same frames straight into a receiver, a server's (masked, as they are) and a
// client's (unmasked: re-encoded by the peer), with permessage-deflate or not, in one chunk or cut;
// then programs of the peer's frames (fuzz/targets/peer-frames.ts): messages compressed with
// context takeover, fragments, control frames between them, a stream ended by BFINAL.
// Parameters: flags (role, deflate, context, frames, pause, program, wait), window bits, the
// indexes of maxMessageSize and maxFramePayload (10: the 64 MiB default), of the budget, the cut.
const unmasked = (stream: Buffer): Buffer => {
  const frames: Buffer[] = [];
  new FrameDecoder((f) =>
    frames.push(
      encodeFrame({ opcode: f.opcode, payload: f.payload, fin: f.fin, rsv1: f.rsv1, rsv2: f.rsv2, rsv3: f.rsv3 }),
    ),
  ).push(stream);
  return Buffer.concat(frames);
};
const program = (...steps: (number[] | string)[]): Buffer => bytes(...steps);
const programs = [
  // "Hello" compressed twice (context taken over), a ping, a close.
  program([3, 0x00, 0, 5], 'Hello', [3, 0x00, 0, 5], 'Hello', [2, 0x00, 4], 'ping', [2, 0x26, 3], 'bye'),
  // A compressed binary message in three fragments with a pong after it, then a text cut in a code point.
  program([3, 0x05, 40, 10], 'abcdefghij', [2, 0x01, 0], [5, 0x03, 2], [2, 0x06, 0]),
  // A message ended by BFINAL (RFC 7692 §7.2.3.4), then one that refers back into it.
  program([3, 0x40, 0, 11], 'hello hello', [3, 0x00, 0, 11], 'hello hello'),
  // Uncompressed fragments, 16-bit and 64-bit lengths, a large message, raw bytes.
  program([0, 0x10, 3], 'abc', [0, 0x26, 3], 'def', [7, 0x03, 1, 0], [4, 0x00, 2, 0x89, 0x00]),
];
write('receiver', [
  // (Not the 64 KiB one: the target's inputs are at most 16 KiB.)
  ...conversations
    .filter((frames) => frames.length <= 16 * 1024)
    .flatMap((frames, i) => [
      bytes([0x00, 7, 10, 10, 0, 0], frames),
      bytes([0x01, 7, 10, 10, 0, (i * 37) % 256], unmasked(frames)),
      bytes([0x0a, 7, 5, 3, 2, 1], frames),
      bytes([0x13, 1, 10, 10, 4, 2], unmasked(frames)),
    ]),
  ...programs.flatMap((steps, i) => [
    bytes([0x22, 7, 10, 10, 0, 0], steps),
    bytes([0x27, 1, 10, 10, 5, 3 + i], steps),
    bytes([0x7a, 0, 6, 5, 2, 5], steps),
    bytes([0x23, 7, 4, 4, 3, 1], steps),
  ]),
]);

// Target 4: a connection in each configuration, fed the spec tests' conversations and the steps of
// a closing handshake both ways, a deadline, a failure, a terminate. Parameters: flags (role,
// compression, autoPong, trace, contexts), timing and sizes, limits, window bits (fuzz/targets/connection.ts).
const steps = (...parts: (number[] | string)[]): Buffer => bytes(...parts);
const chat = steps([0, 3, 0x00, 0, 5], 'Hello', [4, 0x00, 10], [5, 0x04], 'ping', [2, 6], [0x89, 0x80, 0, 0, 0, 0]);
const closing = [
  steps([6, 0x01], [0, 2, 0x26, 3], 'bye', [13], [15]),
  steps([0, 2, 0x26, 3], 'bye', [3, 6], [15]),
  steps([4, 0x02, 40], [6, 0x12], [3, 7, 0], [15]),
  steps([2, 4, 0x81, 0x85, 0x37, 0xfa], [13], [3, 8, 0], [15]),
  steps([4, 0x00, 200], [8, 1], [10, 4], [7], [15]),
  steps([3, 5, 1], [3, 8, 0], [12], [15]),
];
write('connection', [
  ...[0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x11, 0x18].flatMap((flags) =>
    closing.map((close, i) => bytes([flags, 0x02 + (i << 2), i, 0x3f], chat, close)),
  ),
  ...conversations.slice(0, 4).map((frames) => bytes([0x00, 0x26, 0, 0x3f], [2, 0x1f], frames.subarray(0, 31), [15])),
]);
