/**
 * Target 1, server side: a request head as it arrives on a socket, cut where the fuzzer says, through
 * HeadReader (the end of the head, the size limit), parseRequestHead (RFC 9112) and the opening
 * handshake's checks (RFC 6455 §4.2.1), then the response the server would write. Checked against
 * the independent reading in oracle/http.ts: nothing refused by RFC 9112 or RFC 6455 §4.2.1 is
 * accepted, nothing valid is refused, each refusal's status is one a rule justifies, the reader
 * never holds more than `maxSize` bytes, and every response written parses as what it says.
 */
import { acceptFor } from '../../spec-tests/helpers/peer/http.js';
import { HeadReader, HttpError, errorResponse, parseRequestHead, type RequestHead } from '../../src/protocol/http1.js';
import { describeRequest, switchingProtocolsResponse, validateUpgradeRequest } from '../../src/protocol/handshake.js';
import { InputReader, check, chunks, type FuzzTarget } from './target.js';
import { TOKEN, listElements, readRequest, readResponse, upgradeRefusals, values } from './oracle/http.js';

const MAX_SIZES = [16 * 1024, 64, 200, 1024, 4096];
const MAX_METHOD = 32;
const HEAD_END = Buffer.from('\r\n\r\n');

/** What HeadReader did with the bytes: a head (and what followed), a refusal, or still waiting. */
type Read = { head: Buffer; rest: Buffer } | { status: number } | null;

function read(data: Buffer, maxSize: number, seed: number, kind: 'request' | 'response'): Read {
  const reader = new HeadReader(maxSize, kind);
  const pieces = chunks(data, seed);
  for (let i = 0; i < pieces.length; i++) {
    try {
      const result = reader.push(pieces[i]!);
      // The chunks not pushed yet follow what came with the head's end (the socket keeps them).
      if (result !== null) return { head: result.head, rest: Buffer.concat([result.rest, ...pieces.slice(i + 1)]) };
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      return { status: error.status };
    }
    // RFC 6455 §10.4 / our limit: a reader waiting for the end of a head holds at most maxSize bytes.
    check(reader.bufferedBytes <= maxSize, () => `HeadReader holds ${reader.bufferedBytes} > ${maxSize} bytes`);
  }
  return null;
}

/** The checks on HeadReader common to requests and responses. */
export function checkRead(data: Buffer, maxSize: number, result: Read, startOk: (data: Buffer) => boolean): void {
  const end = data.indexOf(HEAD_END);
  const bareLf = (limit: number): boolean => {
    for (let i = 0; i < limit; i++) if (data[i] === 0x0a && (i === 0 || data[i - 1] !== 0x0d)) return true;
    return false;
  };
  if (result === null) {
    check(end === -1, 'a complete head was left waiting');
    return;
  }
  if ('status' in result) {
    if (result.status === 431) {
      check(end === -1 || end + 4 > maxSize, `431 for a ${end + 2}-byte head under the ${maxSize}-byte limit`);
    } else {
      check(result.status === 400, `HeadReader refused with ${result.status}`);
      const scan = end === -1 ? data.length : end + 4;
      check(bareLf(scan) || !startOk(data), 'HeadReader refused a head with CRLF line ends and a valid start');
    }
    return;
  }
  check(end !== -1 && result.head.length === end + 2, 'the head is not the bytes up to the first CRLF CRLF');
  check(result.head.equals(data.subarray(0, end + 2)), 'the head is not the bytes as sent');
  check(result.rest.equals(data.subarray(end + 4)), 'bytes after the head were lost or changed');
  check(result.head.length <= maxSize, `a ${result.head.length}-byte head passed the ${maxSize}-byte limit`);
}

/** RFC 9112 §3: a request starts with a method (a token of at most MAX_METHOD chars here) and a space. */
function requestStartOk(data: Buffer): boolean {
  const text = data.subarray(0, MAX_METHOD + 1).toString('latin1');
  const space = text.indexOf(' ');
  if (space === -1) return text.length <= MAX_METHOD && (text === '' || TOKEN.test(text));
  return space > 0 && TOKEN.test(text.slice(0, space));
}

function sameHeaders(parsed: RequestHead['headers'], fields: [string, string][]): boolean {
  const expected = new Map<string, string[]>();
  for (const [name, value] of fields) {
    const key = name.toLowerCase();
    expected.set(key, [...(expected.get(key) ?? []), value]);
  }
  if (expected.size !== parsed.size) return false;
  for (const [name, list] of expected) if (parsed.get(name)?.join('\n') !== list.join('\n')) return false;
  return true;
}

function checkRefusalResponse(status: number, message: string, headers: Record<string, string>): void {
  const bytes = errorResponse(status, message, headers);
  const end = bytes.indexOf(HEAD_END);
  const response = readResponse(bytes.subarray(0, end + 2));
  check(response !== null && response.status === status, `the ${status} response does not parse as one`);
  const length = values(response, 'content-length');
  check(length.length === 1 && Number(length[0]) === bytes.length - end - 4, 'Content-Length is not the body');
}

export const target: FuzzTarget = {
  description: 'a request head through HeadReader, parseRequestHead and validateUpgradeRequest (server)',
  maxLength: 20 * 1024,
  dictionary: [
    'GET / HTTP/1.1\r\n',
    'Host: a\r\n',
    'Upgrade: websocket\r\n',
    'Connection: Upgrade\r\n',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n',
    'Sec-WebSocket-Version: 13\r\n',
    'Sec-WebSocket-Protocol: chat, superchat\r\n',
    'Origin: http://example.com\r\n',
    '\r\n\r\n',
    '\r\n',
    'HTTP/1.0',
    'POST',
    ' \t',
    'http://a/b?c',
  ],
  run(input) {
    const reader = new InputReader(input);
    const maxSize = reader.choose(MAX_SIZES);
    const seed = reader.byte();
    const data = reader.rest();
    const result = read(data, maxSize, seed, 'request');
    checkRead(data, maxSize, result, requestStartOk);
    if (result === null || 'status' in result) {
      if (result !== null) checkRefusalResponse(result.status, 'refused', {});
      return;
    }
    const oracle = readRequest(result.head);
    let head: RequestHead;
    try {
      head = parseRequestHead(result.head);
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      check(error.status === 400, `parseRequestHead refused with ${error.status}`);
      check(oracle === null, () => `a head RFC 9112 allows was refused: ${error.message}`);
      checkRefusalResponse(400, error.message, error.headers);
      return;
    }
    check(oracle !== null, 'parseRequestHead accepted a head RFC 9112 refuses');
    check(head.method === oracle.method && head.target === oracle.target, 'request line read differently');
    check(head.version[0] === oracle.version[0] && head.version[1] === oracle.version[1], 'version read differently');
    check(sameHeaders(head.headers, oracle.fields), 'header fields read differently');

    const refusals = upgradeRefusals(oracle);
    try {
      describeRequest(head, undefined, undefined);
      const fields = validateUpgradeRequest(head);
      check(refusals.length === 0, () => `accepted a request RFC 6455 §4.2.1 refuses (${refusals.join(', ')})`);
      check(fields.key === values(oracle, 'sec-websocket-key')[0], 'a different key');
      const protocols = listElements(oracle, 'sec-websocket-protocol');
      check(fields.protocols.join(',') === protocols.join(','), 'subprotocols read differently');
      // The 101 response, read by the oracle (RFC 6455 §4.2.2 item 5).
      const protocol = fields.protocols[0];
      const bytes = switchingProtocolsResponse(fields.key, protocol);
      const response = readResponse(bytes.subarray(0, bytes.length - 2));
      check(response !== null && response.status === 101, 'the 101 response does not parse');
      check(values(response, 'sec-websocket-accept')[0] === acceptFor(fields.key), 'wrong Sec-WebSocket-Accept');
      check(protocol === undefined || values(response, 'sec-websocket-protocol')[0] === protocol, 'protocol lost');
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      check(
        refusals.includes(error.status),
        () => `refused with ${error.status} (${error.message}); rules: ${refusals}`,
      );
      checkRefusalResponse(error.status, error.message, error.headers);
    }
  },
};
