/**
 * Target 1, client side: the server's answer to our handshake as it arrives on the socket, cut where
 * the fuzzer says, through HeadReader, parseResponseHead (RFC 9112 §4) and the client's checks
 * (RFC 6455 §4.1: status 101, Upgrade, Connection, Sec-WebSocket-Accept, the subprotocol). Checked
 * against the independent reading in oracle/http.ts: a response is accepted exactly when the RFC
 * says the connection is established, the reader holds at most `maxSize` bytes, and a refusal
 * carries the status the server sent.
 */
import { RFC_KEY, acceptFor } from '../../spec-tests/helpers/peer/http.js';
import { HeadReader, HttpError, parseResponseHead, type ResponseHead } from '../../src/protocol/http1.js';
import { HandshakeError, validateUpgradeResponse } from '../../src/protocol/handshake.js';
import { checkRead } from './http-request.js';
import { InputReader, check, chunks, type FuzzTarget } from './target.js';
import { listElements, readResponse, values, type OracleResponse } from './oracle/http.js';

const MAX_SIZES = [16 * 1024, 64, 200, 1024, 4096];
const OFFERS: readonly (readonly string[])[] = [[], ['chat'], ['chat', 'superchat'], ['v2.json', 'chat']];

function read(data: Buffer, maxSize: number, seed: number): { head: Buffer; rest: Buffer } | { status: number } | null {
  const reader = new HeadReader(maxSize, 'response');
  const pieces = chunks(data, seed);
  for (let i = 0; i < pieces.length; i++) {
    try {
      const result = reader.push(pieces[i]!);
      if (result !== null) return { head: result.head, rest: Buffer.concat([result.rest, ...pieces.slice(i + 1)]) };
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      return { status: error.status };
    }
    check(reader.bufferedBytes <= maxSize, () => `HeadReader holds ${reader.bufferedBytes} > ${maxSize} bytes`);
  }
  return null;
}

/** RFC 9112 §4: a response starts with "HTTP/". */
const responseStartOk = (data: Buffer): boolean => {
  const start = data.subarray(0, 5).toString('latin1');
  return 'HTTP/'.startsWith(start);
};

const hasToken = (head: OracleResponse, name: string, token: string): boolean =>
  listElements(head, name).some((item) => item.toLowerCase() === token);

/** RFC 6455 §4.1, the client's checks, independently: why the connection must fail, or null. */
function failure(response: OracleResponse, offered: readonly string[]): string | null {
  if (response.status !== 101) return 'not 101';
  if (!hasToken(response, 'upgrade', 'websocket')) return 'Upgrade';
  if (!hasToken(response, 'connection', 'upgrade')) return 'Connection';
  const accepts = values(response, 'sec-websocket-accept');
  if (accepts.length !== 1 || accepts[0] !== acceptFor(RFC_KEY)) return 'Sec-WebSocket-Accept';
  const protocols = listElements(response, 'sec-websocket-protocol');
  if (protocols.length > 1 || (protocols.length === 1 && !offered.includes(protocols[0]!))) return 'subprotocol';
  return null;
}

export const target: FuzzTarget = {
  description: 'a response head through HeadReader, parseResponseHead and validateUpgradeResponse (client)',
  maxLength: 20 * 1024,
  dictionary: [
    'HTTP/1.1 101 Switching Protocols\r\n',
    'Upgrade: websocket\r\n',
    'Connection: Upgrade\r\n',
    `Sec-WebSocket-Accept: ${acceptFor(RFC_KEY)}\r\n`,
    'Sec-WebSocket-Protocol: chat\r\n',
    'Sec-WebSocket-Extensions: permessage-deflate\r\n',
    '\r\n\r\n',
    'HTTP/1.1 400 Bad Request\r\n',
    'superchat',
  ],
  run(input) {
    const reader = new InputReader(input);
    const maxSize = reader.choose(MAX_SIZES);
    const seed = reader.byte();
    const offered = reader.choose(OFFERS);
    const data = reader.rest();
    const result = read(data, maxSize, seed);
    checkRead(data, maxSize, result, responseStartOk);
    if (result === null || 'status' in result) return;
    const oracle = readResponse(result.head);
    let head: ResponseHead;
    try {
      head = parseResponseHead(result.head);
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      check(error.status === 400 || error.status === 502, `parseResponseHead refused with ${error.status}`);
      check(oracle === null, () => `a response head RFC 9112 allows was refused: ${error.message}`);
      return;
    }
    check(oracle !== null, 'parseResponseHead accepted a head RFC 9112 refuses');
    check(head.status === oracle.status, 'the status read differently');
    const why = failure(oracle, offered);
    try {
      const fields = validateUpgradeResponse(head, RFC_KEY, offered);
      check(why === null, () => `the client accepted a response RFC 6455 §4.1 fails (${why})`);
      const protocols = listElements(oracle, 'sec-websocket-protocol');
      check(fields.protocol === (protocols[0] ?? ''), 'a different subprotocol');
    } catch (error) {
      if (!(error instanceof HandshakeError)) throw error;
      check(why !== null, () => `the client refused a valid response: ${error.message}`);
      check(error.status === oracle.status, `the error says status ${error.status}, the server sent ${oracle.status}`);
    }
  },
};
