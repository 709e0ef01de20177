/**
 * The engine's own HTTP/1.1 opening handshake (RFC 6455 §4), both roles: the request it sends to
 * a server under test and the checks on the answer (§4.1), the checks on a client's request and
 * the answer it gets (§4.2), the heads read with a size limit (RFC 9112 §2), and the
 * Sec-WebSocket-Extensions grammar (§9.1).
 */
import { createHash, randomBytes } from 'node:crypto';

/** §1.3: the GUID appended to the key before hashing. */
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** A head longer than this is refused: the peer does not get to make the engine buffer more. */
export const MAX_HEAD_BYTES = 64 * 1024;

/** §4.2.2 item 5.4: base64(SHA-1(key + GUID)). */
export function acceptFor(key: string): string {
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

/** §4.1: a nonce of 16 random bytes, base64-encoded. */
export function newKey(): string {
  return randomBytes(16).toString('base64');
}

export interface Head {
  /** The request line or status line. */
  startLine: string;
  /** Header values by lower-case name, in order; a repeated header has several. */
  headers: Map<string, string[]>;
  /** The head as received, for the report. */
  text: string;
}

/**
 * Look for the end of a head (CRLF CRLF) in what has been received. Returns the head and what
 * followed it, null while incomplete, or an error when it is over the limit.
 */
export function splitHead(data: Buffer): { head: Head; rest: Buffer } | null | Error {
  const end = data.indexOf('\r\n\r\n');
  if (end === -1) return data.length > MAX_HEAD_BYTES ? new Error(`no end of head in ${data.length} bytes`) : null;
  if (end + 4 > MAX_HEAD_BYTES) return new Error(`a head of ${end + 4} bytes`);
  const text = data.subarray(0, end + 4).toString('latin1');
  const lines = text.slice(0, end).split('\r\n');
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return new Error(`a header line without a name: ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const values = headers.get(name) ?? [];
    values.push(line.slice(colon + 1).trim());
    headers.set(name, values);
  }
  return { head: { startLine: lines[0]!, headers, text }, rest: data.subarray(end + 4) };
}

/** The one value of a header, null when absent, an Error when it appears more than once. */
function single(head: Head, name: string): string | null | Error {
  const values = head.headers.get(name);
  if (values === undefined) return null;
  if (values.length > 1) return new Error(`${name} appears ${values.length} times`);
  return values[0]!;
}

/** Whether a comma-separated header value contains `token`, case-insensitively (§4.1 item 3, 4). */
function hasToken(value: string | undefined, token: string): boolean {
  return (value ?? '').split(',').some((item) => item.trim().toLowerCase() === token);
}

/** One extension of a Sec-WebSocket-Extensions value: its name and parameters (true for no value). */
export interface ExtensionItem {
  name: string;
  params: [string, string | true][];
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * §9.1: extension-list = 1#extension; extension = token *( ";" param ); param = token [ "=" (token
 * / quoted-string) ]. Several header lines are one list. Returns an Error for anything else.
 */
export function parseExtensions(values: string[]): ExtensionItem[] | Error {
  const items: ExtensionItem[] = [];
  for (const value of values) {
    let i = 0;
    const skip = (): void => {
      while (i < value.length && (value[i] === ' ' || value[i] === '\t')) i++;
    };
    const token = (): string => {
      const start = i;
      while (i < value.length && !' \t,;="'.includes(value[i]!)) i++;
      return value.slice(start, i);
    };
    while (i < value.length) {
      skip();
      if (value[i] === ',') {
        i++;
        continue;
      }
      const name = token();
      if (!TOKEN.test(name)) return new Error(`bad extension name in ${JSON.stringify(value)}`);
      const item: ExtensionItem = { name, params: [] };
      skip();
      while (value[i] === ';') {
        i++;
        skip();
        const param = token();
        if (!TOKEN.test(param)) return new Error(`bad parameter in ${JSON.stringify(value)}`);
        skip();
        let paramValue: string | true = true;
        if (value[i] === '=') {
          i++;
          skip();
          if (value[i] === '"') {
            const close = value.indexOf('"', i + 1);
            if (close === -1) return new Error(`unterminated quoted string in ${JSON.stringify(value)}`);
            paramValue = value.slice(i + 1, close);
            i = close + 1;
          } else paramValue = token();
          // §9.1: a quoted value must still be a token once unquoted.
          if (!TOKEN.test(paramValue)) return new Error(`bad parameter value in ${JSON.stringify(value)}`);
          skip();
        }
        item.params.push([param.toLowerCase(), paramValue]);
      }
      items.push(item);
      skip();
      if (i < value.length && value[i] !== ',') return new Error(`unexpected ${JSON.stringify(value[i])} in ${value}`);
    }
  }
  return items;
}

export interface ClientRequest {
  path: string;
  /** host:port, as the Host header carries it. */
  host: string;
  key: string;
  extensions: string | null;
  userAgent: string;
}

/** §4.1: the client's opening handshake. */
export function clientRequest(request: ClientRequest): string {
  const lines = [
    `GET ${request.path} HTTP/1.1`,
    `User-Agent: ${request.userAgent}`,
    `Host: ${request.host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Pragma: no-cache',
    'Cache-Control: no-cache',
    `Sec-WebSocket-Key: ${request.key}`,
    'Sec-WebSocket-Version: 13',
  ];
  if (request.extensions !== null) lines.push(`Sec-WebSocket-Extensions: ${request.extensions}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/**
 * §4.1 (the client's checks on the server's answer, items 1-6 of "the client MUST"). Returns the
 * extensions the server agreed to, or why the handshake failed.
 */
export function checkResponse(head: Head, key: string): ExtensionItem[] | Error {
  const status = /^HTTP\/1\.1 (\d{3})(?: .*)?$/.exec(head.startLine);
  if (status === null) return new Error(`not an HTTP/1.1 status line: ${JSON.stringify(head.startLine.slice(0, 80))}`);
  if (status[1] !== '101') return new Error(`the server answered ${head.startLine.slice(9, 80)}, not 101`);
  if ((single(head, 'upgrade') ?? '').toString().toLowerCase() !== 'websocket')
    return new Error('no "Upgrade: websocket" in the answer');
  if (!hasToken(head.headers.get('connection')?.join(','), 'upgrade'))
    return new Error('no "Connection: Upgrade" in the answer');
  const accept = single(head, 'sec-websocket-accept');
  if (accept instanceof Error) return accept;
  if (accept !== acceptFor(key))
    return new Error(`Sec-WebSocket-Accept is ${JSON.stringify(accept)}, not ${acceptFor(key)}`);
  // §4.1 item 6: no subprotocol was asked for, so none may be chosen.
  const protocol = single(head, 'sec-websocket-protocol');
  if (protocol instanceof Error) return protocol;
  if (protocol !== null && protocol !== '')
    return new Error(`the server chose subprotocol ${protocol}, none was offered`);
  const extensions = head.headers.get('sec-websocket-extensions');
  return extensions === undefined ? [] : parseExtensions(extensions);
}

export interface ServerRequest {
  path: string;
  query: URLSearchParams;
  key: string;
  /** The client's offers, in order. */
  extensions: ExtensionItem[];
}

/** §4.2.1: the server's checks on a client's opening handshake. An Error says why it is refused. */
export function checkRequest(head: Head): ServerRequest | Error {
  const line = /^GET (\S+) HTTP\/1\.1$/.exec(head.startLine);
  if (line === null)
    return new Error(`not a GET ... HTTP/1.1 request line: ${JSON.stringify(head.startLine.slice(0, 80))}`);
  if (!head.headers.has('host')) return new Error('no Host header');
  if (!hasToken(head.headers.get('upgrade')?.join(','), 'websocket')) return new Error('no "Upgrade: websocket"');
  if (!hasToken(head.headers.get('connection')?.join(','), 'upgrade')) return new Error('no "Connection: Upgrade"');
  const version = single(head, 'sec-websocket-version');
  if (version !== '13') return new Error('Sec-WebSocket-Version is not 13');
  const key = single(head, 'sec-websocket-key');
  if (key instanceof Error) return key;
  if (key === null || Buffer.from(key, 'base64').length !== 16 || !/^[A-Za-z0-9+/]{22}==$/.test(key))
    return new Error('Sec-WebSocket-Key is not 16 bytes in base64');
  const extensions = parseExtensions(head.headers.get('sec-websocket-extensions') ?? []);
  if (extensions instanceof Error) return extensions;
  const url = new URL(line[1]!, 'http://localhost');
  return { path: url.pathname, query: url.searchParams, key, extensions };
}

/** §4.2.2: the server's 101 answer. */
export function serverResponse(key: string, extensions: string | null, server: string): string {
  const lines = [
    'HTTP/1.1 101 Switching Protocols',
    `Server: ${server}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Accept: ${acceptFor(key)}`,
  ];
  if (extensions !== null) lines.push(`Sec-WebSocket-Extensions: ${extensions}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** A refusal (§4.2.1: "an appropriate HTTP error code"), closing the connection. */
export function errorResponse(status: number, reason: string, body: string): string {
  return (
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}
