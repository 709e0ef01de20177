/**
 * Just enough HTTP/1.1 (RFC 9112) to carry a WebSocket opening handshake, read straight off the
 * bytes of a socket: find the end of a message head, parse a request or response head, and write
 * one. No socket here; strict by design (bare LF, obsolete line folding and control characters are
 * refused), because a handshake parser sitting on raw TCP is the first thing abuse probes hit.
 */

/** Header names are case-insensitive (RFC 9110 §5.1): keys are lowercased. */
export type HeaderMap = Map<string, string[]>;

export interface RequestHead {
  method: string;
  /** The request target as sent: usually origin-form, `/path?query`. */
  target: string;
  /** The HTTP version as [major, minor]. */
  version: [number, number];
  headers: HeaderMap;
}

export interface ResponseHead {
  version: [number, number];
  status: number;
  statusText: string;
  headers: HeaderMap;
}

/** A request that cannot be served: the status and the short text for the response body. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const DEFAULT_MAX_HEAD_SIZE = 16 * 1024;

const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * Collects bytes until the blank line that ends a message head (RFC 9112 §2.1). The head may
 * arrive a byte at a time; bytes after it (the first WebSocket frames, sent in the same segment)
 * are returned as `rest`, never lost. Memory is bounded by `maxSize`.
 */
export class HeadReader {
  private buffered: Buffer | null = null;
  /** Whether the start of the first line has been seen to be plausible HTTP (see `checkStart`). */
  private startChecked = false;

  /**
   * `kind` says which start line to expect: a request line (`GET / HTTP/1.1`) or a status line
   * (`HTTP/1.1 101 ...`).
   */
  constructor(
    readonly maxSize = DEFAULT_MAX_HEAD_SIZE,
    readonly kind: 'request' | 'response' = 'request',
  ) {}

  /**
   * Returns null while the head is incomplete, or the head (without the final blank line) and
   * whatever followed it. Throws an HttpError 431 once the head is longer than `maxSize`, and a
   * 400 as soon as the first bytes cannot start an HTTP message.
   */
  push(chunk: Buffer): { head: Buffer; rest: Buffer } | null {
    const previous = this.buffered;
    const data = previous === null ? chunk : Buffer.concat([previous, chunk]);
    if (!this.startChecked) this.checkStart(data);
    // The terminator may straddle the previous data and this chunk.
    const from = previous === null ? 0 : Math.max(0, previous.length - 3);
    const end = data.indexOf(HEAD_END, from);
    // RFC 9112 §2.2: lines end in CRLF. A bare LF is refused at once (a head that ended with two
    // of them would otherwise never be seen to end, and the client would wait for the timeout).
    let lf = data.indexOf(0x0a, previous === null ? 0 : previous.length);
    const scanEnd = end === -1 ? data.length : end + 4;
    while (lf !== -1 && lf < scanEnd) {
      if (lf === 0 || data[lf - 1] !== 0x0d)
        throw new HttpError(400, 'bare LF in the request head: lines end with CRLF');
      lf = data.indexOf(0x0a, lf + 1);
    }
    if (end === -1) {
      if (data.length > this.maxSize) throw tooLarge(this.maxSize);
      // Copy a chunk we keep: a socket's chunk may be a view into a much larger buffer.
      this.buffered = previous === null ? Buffer.from(data) : data;
      return null;
    }
    if (end + 2 > this.maxSize) throw tooLarge(this.maxSize);
    this.buffered = null;
    return { head: data.subarray(0, end + 2), rest: data.subarray(end + 4) };
  }

  /** Bytes held while waiting for the rest of the head. */
  get bufferedBytes(): number {
    return this.buffered === null ? 0 : this.buffered.length;
  }

  /**
   * Refuse at the first byte that cannot begin an HTTP message, rather than hold the connection
   * until the head limit or the handshake timeout: a TLS ClientHello sent to a plain port, a
   * line of binary garbage. A request line starts with a method, a token (RFC 9112 §3, RFC 9110
   * §9.1) followed by one space; a status line starts with `HTTP/` (RFC 9112 §4).
   */
  private checkStart(data: Buffer): void {
    if (this.kind === 'response') {
      const n = Math.min(data.length, STATUS_LINE_START.length);
      for (let i = 0; i < n; i++) {
        if (data[i] !== STATUS_LINE_START[i]) throw new HttpError(400, 'the response does not start with HTTP/');
      }
      this.startChecked = n === STATUS_LINE_START.length;
      return;
    }
    const n = Math.min(data.length, MAX_METHOD_LENGTH + 1);
    for (let i = 0; i < n; i++) {
      const byte = data[i]!;
      if (byte === 0x20 && i > 0) {
        this.startChecked = true;
        return;
      }
      if (!isTchar(byte)) throw new HttpError(400, 'the request does not start with a method');
    }
    if (n > MAX_METHOD_LENGTH) throw new HttpError(400, 'the request does not start with a method');
  }
}

const STATUS_LINE_START = Buffer.from('HTTP/');

/**
 * Longer than any registered method (the longest, in the IANA registry, has 17 characters): a
 * request line that goes on this long without a space is not one.
 */
const MAX_METHOD_LENGTH = 32;

/**
 * RFC 9110 §5.6.2: token = 1*tchar, tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" /
 * "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA. The one place this rule lives: method and
 * header names here; subprotocols (RFC 6455 §4.1) and extension names and parameters (§9.1).
 */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
  TCHAR[c.charCodeAt(0)] = 1;

/** Whether a character code (or byte) may appear in a token. */
export function isTchar(code: number): boolean {
  return code < 128 && TCHAR[code] === 1;
}

/** Whether `text` is a token (one or more tchars). */
export function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) if (!isTchar(text.charCodeAt(i))) return false;
  return true;
}

function tooLarge(maxSize: number): HttpError {
  return new HttpError(431, `request head larger than ${maxSize} bytes`);
}

// RFC 9110 §5.5: field values are visible ASCII, obs-text (0x80-0xFF), spaces and tabs.
const INVALID_FIELD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
// What we write must be the same and fit in Latin-1: a character above U+00FF would lose its high
// byte on the way out (U+010D becoming CR) and smuggle a line break past a CR/LF check.
const UNSENDABLE_FIELD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** Throws a TypeError unless `name: value` can be written in a head as it is. */
export function assertSendableHeader(name: string, value: string): void {
  if (!isToken(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
  if (UNSENDABLE_FIELD_VALUE.test(value)) throw new TypeError(`invalid character in the value of header ${name}`);
}
const HTTP_VERSION = /^HTTP\/(\d)\.(\d)$/;

/**
 * Split a head into its start line and header fields. Header bytes are decoded as Latin-1, as
 * HTTP/1.1 fields are octets; comparisons that matter (tokens) are ASCII anyway.
 */
function parseHead(head: Buffer): { startLine: string; headers: HeaderMap } {
  const text = head.toString('latin1');
  // RFC 9112 §2.2: a bare CR or LF is not a line ending we accept: it is how request smuggling starts.
  const lines = text.split('\r\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const startLine = lines[0] ?? '';
  const headers: HeaderMap = new Map();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.includes('\r') || line.includes('\n')) throw new HttpError(400, 'bare CR or LF in the request head');
    // RFC 9112 §5.2: obsolete line folding; a server MUST either reject it or replace it; we reject.
    if (line.startsWith(' ') || line.startsWith('\t')) throw new HttpError(400, 'obsolete line folding in a header');
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HttpError(400, 'malformed header line');
    const name = line.slice(0, colon);
    // RFC 9112 §5.1: "No whitespace is allowed between the field name and colon."
    if (!isToken(name)) throw new HttpError(400, 'malformed header name');
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (INVALID_FIELD_VALUE.test(value)) throw new HttpError(400, 'control character in a header value');
    const key = name.toLowerCase();
    const values = headers.get(key);
    if (values === undefined) headers.set(key, [value]);
    else values.push(value);
  }
  if (startLine.includes('\n') || startLine.includes('\r'))
    throw new HttpError(400, 'bare CR or LF in the request line');
  return { startLine, headers };
}

function parseVersion(text: string): [number, number] | null {
  const match = HTTP_VERSION.exec(text);
  return match === null ? null : [Number(match[1]), Number(match[2])];
}

/** RFC 9112 §3: request-line = method SP request-target SP HTTP-version. Throws HttpError 400. */
export function parseRequestHead(head: Buffer): RequestHead {
  const { startLine, headers } = parseHead(head);
  const parts = startLine.split(' ');
  if (parts.length !== 3) throw new HttpError(400, 'malformed request line');
  const [method, target, versionText] = parts as [string, string, string];
  if (!isToken(method)) throw new HttpError(400, 'malformed request method');
  if (target === '' || /[\x00-\x20\x7f-\xff]/.test(target)) throw new HttpError(400, 'malformed request target');
  const version = parseVersion(versionText);
  if (version === null) throw new HttpError(400, 'malformed HTTP version');
  return { method, target, version, headers };
}

/** RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]. Throws on garbage. */
export function parseResponseHead(head: Buffer): ResponseHead {
  const { startLine, headers } = parseHead(head);
  const firstSpace = startLine.indexOf(' ');
  const version = parseVersion(startLine.slice(0, firstSpace));
  const statusText = startLine.slice(firstSpace + 1, firstSpace + 4);
  if (firstSpace < 0 || version === null || !/^\d{3}$/.test(statusText)) {
    throw new HttpError(502, 'malformed HTTP status line');
  }
  const rest = startLine.slice(firstSpace + 4);
  if (rest !== '' && !rest.startsWith(' ')) throw new HttpError(502, 'malformed HTTP status line');
  // RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ): no control characters, which
  // would otherwise reach the HandshakeError's message (and a log or terminal) as they were sent.
  if (INVALID_FIELD_VALUE.test(rest)) throw new HttpError(502, 'control character in the HTTP status line');
  return { version, status: Number(statusText), statusText: rest.trim(), headers };
}

/** The single value of a header that must appear at most once; throws HttpError 400 on repeats. */
export function singleHeader(headers: HeaderMap, name: string): string | undefined {
  const values = headers.get(name);
  if (values === undefined) return undefined;
  if (values.length > 1) throw new HttpError(400, `repeated ${name} header`);
  return values[0];
}

/**
 * The elements of a comma-separated list header, across repeated fields (RFC 9110 §5.3, §5.6.1),
 * trimmed, empty elements dropped.
 */
export function listHeader(headers: HeaderMap, name: string): string[] {
  const values = headers.get(name);
  if (values === undefined) return [];
  const items: string[] = [];
  for (const value of values) {
    for (const item of value.split(',')) {
      const trimmed = item.trim();
      if (trimmed !== '') items.push(trimmed);
    }
  }
  return items;
}

/**
 * A header map from a flat [name, value, name, value, ...] list (node:http's `rawHeaders`). An
 * HTTP/2 header block has its own: websocket/http2-headers.ts.
 */
export function headerMapOf(raw: readonly string[]): HeaderMap {
  const headers: HeaderMap = new Map();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const values = headers.get(name);
    if (values === undefined) headers.set(name, [raw[i + 1]!]);
    else values.push(raw[i + 1]!);
  }
  return headers;
}

/** The headers as a plain record: lower-case names, repeated fields joined with ", " (RFC 9110 §5.3). */
export function headersRecord(headers: HeaderMap): Record<string, string> {
  const record: Record<string, string> = {};
  for (const [name, values] of headers) record[name] = values.join(', ');
  return record;
}

/** Does the comma-list header `name` contain `token`, compared case-insensitively? */
export function headerHasToken(headers: HeaderMap, name: string, token: string): boolean {
  const wanted = token.toLowerCase();
  return listHeader(headers, name).some((item) => item.toLowerCase() === wanted);
}

/**
 * RFC 9110 §15: the reason phrases of the statuses this server sends itself, and of those an
 * application most likely answers (`onHttpRequest`); others get an empty one (RFC 9112 §4 allows it).
 */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  101: 'Switching Protocols',
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  304: 'Not Modified',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
};

/** A response head, ending with the blank line. Header values must not contain CR or LF. */
export function writeResponseHead(
  status: number,
  headers: Iterable<[string, string]>,
  statusText = STATUS_TEXT[status] ?? '',
): string {
  let head = `HTTP/1.1 ${status} ${statusText}\r\n`;
  for (const [name, value] of headers) {
    assertSendableHeader(name, value);
    head += `${name}: ${value}\r\n`;
  }
  return head + '\r\n';
}

/**
 * A complete error response: a short plain-text body and `Connection: close` (the server ends the
 * connection after it; RFC 9112 §9.6).
 */
export function errorResponse(status: number, message: string, extraHeaders: Record<string, string> = {}): Buffer {
  const body = Buffer.from(`${message}\n`);
  const headers: [string, string][] = [
    ['Connection', 'close'],
    ['Content-Type', 'text/plain; charset=utf-8'],
    ['Content-Length', String(body.length)],
  ];
  for (const [name, value] of Object.entries(extraHeaders)) headers.push([name, value]);
  return Buffer.concat([Buffer.from(writeResponseHead(status, headers), 'latin1'), body]);
}
