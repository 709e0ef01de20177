/**
 * The opening handshake's HTTP/1.1 for the test peer (RFC 6455 §4, RFC 9112), independently of
 * src/: writing a client's request and a server's response header by header, reading either head,
 * and the Sec-WebSocket-Accept computation (§4.2.2) with the GUID written once.
 */
import { createHash } from 'node:crypto';

/** RFC 6455 §1.3 / §4.2.2: the GUID appended to the key before hashing. */
export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** The example key of RFC 6455 §1.3 / §4.2.2 and the accept value it must produce. */
export const RFC_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
export const RFC_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

/** §4.2.2: base64(SHA-1(key + GUID)). */
export function acceptFor(key: string): string {
  return createHash('sha1')
    .update(key + WEBSOCKET_GUID)
    .digest('base64');
}

/** A head as read: the start line and the fields (lower-case names, repeated fields kept in order). */
export interface Head {
  /** The whole head, with its final blank line, as Latin-1 text. */
  text: string;
  startLine: string;
  /** Field lines in order, names as sent. */
  fields: [string, string][];
  /** Lower-case names; every value of a repeated field, in order. */
  headers: Map<string, string[]>;
  /** A field's value (repeated fields joined with ", "), or undefined. */
  header(name: string): string | undefined;
}

/** Split a head (up to, not including, the blank line) into its start line and fields. */
function readHead(text: string): Head {
  const lines = text.split('\r\n');
  const startLine = lines[0] ?? '';
  const fields: [string, string][] = [];
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).trim();
    fields.push([name, value]);
    const key = name.toLowerCase();
    const values = headers.get(key);
    if (values === undefined) headers.set(key, [value]);
    else values.push(value);
  }
  const header = (name: string): string | undefined => headers.get(name.toLowerCase())?.join(', ');
  return { text: text + '\r\n\r\n', startLine, fields, headers, header };
}

/** Where the head ends in `bytes`: the offset just past CRLF CRLF, or -1. */
export function headEnd(bytes: Buffer): number {
  const at = bytes.indexOf('\r\n\r\n');
  return at < 0 ? -1 : at + 4;
}

export interface ParsedRequest extends Head {
  /** The head as sent, with its blank line. */
  raw: Buffer;
  requestLine: string;
  method: string;
  target: string;
  version: string;
  /** Sec-WebSocket-Key, if sent. */
  key: string | undefined;
}

/** Read a request head (the bytes up to and including the blank line). Lenient: a test decides what is wrong. */
export function parseRequestHead(raw: Buffer): ParsedRequest {
  const text = raw.toString('latin1').replace(/\r\n\r\n$/, '');
  const head = readHead(text);
  const [method = '', target = '', version = ''] = head.startLine.split(' ');
  return { ...head, raw, requestLine: head.startLine, method, target, version, key: head.header('sec-websocket-key') };
}

export interface ParsedResponse extends Head {
  statusLine: string;
  httpVersion: string;
  status: number;
  statusText: string;
  /** The raw head, up to and including the blank line. */
  rawHead: string;
  /** The body (for a refusal: as much as arrived before the end, or Content-Length bytes). */
  body: Buffer;
}

/** Read a response head (without its blank line). Throws on a malformed status line. */
export function parseResponseHead(text: string): ParsedResponse {
  const head = readHead(text);
  const match = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(head.startLine);
  if (match === null) throw new Error(`malformed status line: ${JSON.stringify(head.startLine)}`);
  for (const [name] of head.fields)
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new Error(`malformed header line: ${JSON.stringify(name)}`);
  return {
    ...head,
    statusLine: head.startLine,
    httpVersion: match[1]!,
    status: Number(match[2]),
    statusText: match[3] ?? '',
    rawHead: head.text,
    body: Buffer.alloc(0),
  };
}

/** A response field's value (repeated fields joined), for tests that read a response. */
export function header(response: Head, name: string): string | undefined {
  return response.header(name);
}

export interface RequestSpec {
  method?: string;
  path?: string;
  /** The version in the request line. Default 'HTTP/1.1'. */
  httpVersion?: string;
  /** Sec-WebSocket-Key. Default: the RFC's example key. */
  key?: string;
  /**
   * Replace default fields of the same name (case-insensitive) in place; a null value removes a
   * default field; other names are added after the defaults. Defaults, in order: Host, Upgrade,
   * Connection, Sec-WebSocket-Key, Sec-WebSocket-Version.
   */
  headers?: Record<string, string | null>;
  /** Sec-WebSocket-Protocol value(s), in one field. */
  protocols?: string[];
  /** One Sec-WebSocket-Extensions field per element (RFC 7692 §5: offers, in order of preference). */
  extensions?: string[];
  /** More fields, appended last, in order, repeats allowed. */
  extraFields?: [string, string][];
}

/** A client's opening handshake (RFC 6455 §4.1), as bytes. */
export function handshakeRequest(spec: RequestSpec = {}, host = '127.0.0.1'): Buffer {
  const defaults: [string, string][] = [
    ['Host', host],
    ['Upgrade', 'websocket'],
    ['Connection', 'Upgrade'],
    ['Sec-WebSocket-Key', spec.key ?? RFC_KEY],
    ['Sec-WebSocket-Version', '13'],
  ];
  if (spec.protocols !== undefined) defaults.push(['Sec-WebSocket-Protocol', spec.protocols.join(', ')]);
  const overrides = new Map(
    Object.entries(spec.headers ?? {}).map(([name, value]) => [name.toLowerCase(), { name, value }]),
  );
  const lines = [`${spec.method ?? 'GET'} ${spec.path ?? '/'} ${spec.httpVersion ?? 'HTTP/1.1'}`];
  for (const [name, value] of defaults) {
    const override = overrides.get(name.toLowerCase());
    if (override === undefined) lines.push(`${name}: ${value}`);
    else {
      if (override.value !== null) lines.push(`${override.name}: ${override.value}`);
      overrides.delete(name.toLowerCase());
    }
  }
  for (const { name, value } of overrides.values()) if (value !== null) lines.push(`${name}: ${value}`);
  for (const extension of spec.extensions ?? []) lines.push(`Sec-WebSocket-Extensions: ${extension}`);
  for (const [name, value] of spec.extraFields ?? []) lines.push(`${name}: ${value}`);
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
}

export interface AcceptOptions {
  /** Replace the computed Sec-WebSocket-Accept value. */
  accept?: string;
  /** Leave these out of the default fields. */
  omit?: readonly ('upgrade' | 'connection' | 'accept')[];
  /** Extra fields, in order (several Sec-WebSocket-Extensions fields included). */
  headers?: readonly [string, string][];
  /** The status line (default `HTTP/1.1 101 Switching Protocols`). */
  statusLine?: string;
  /** Override the Upgrade / Connection values. */
  upgrade?: string;
  connection?: string;
}

/** A 101 response to a request with this key (§4.2.2): correct unless the options say otherwise. */
export function acceptResponse(request: { key: string | undefined }, options: AcceptOptions = {}): Buffer {
  const omit = new Set(options.omit ?? []);
  const lines = [options.statusLine ?? 'HTTP/1.1 101 Switching Protocols'];
  if (!omit.has('upgrade')) lines.push(`Upgrade: ${options.upgrade ?? 'websocket'}`);
  if (!omit.has('connection')) lines.push(`Connection: ${options.connection ?? 'Upgrade'}`);
  if (!omit.has('accept')) lines.push(`Sec-WebSocket-Accept: ${options.accept ?? acceptFor(request.key ?? '')}`);
  for (const [name, value] of options.headers ?? []) lines.push(`${name}: ${value}`);
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
}

/** A complete HTTP response with a body (a refusal). */
export function httpResponse(
  status: number,
  reason: string,
  body: string,
  headers: readonly [string, string][] = [],
): Buffer {
  const lines = [`HTTP/1.1 ${status} ${reason}`, ...headers.map(([name, value]) => `${name}: ${value}`)];
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), Buffer.from(body, 'utf8')]);
}
