/**
 * An independent reading of the rules the handshake targets check our parser against, written from
 * the RFCs' ABNF and imports nothing of src/: RFC 9112 (message heads), RFC 9110 (tokens, field
 * values, lists) and RFC 6455 §4.1 / §4.2.1 (what makes a request or response an opening handshake).
 */

// RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_"
// / "`" / "|" / "~" / DIGIT / ALPHA; token = 1*tchar.
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// RFC 9110 §5.5: field-value = *field-content; field-content = field-vchar [ 1*( SP / HTAB /
// field-vchar ) field-vchar ]; field-vchar = VCHAR / obs-text (0x80-0xFF).
const FIELD_VALUE = /^(?:[\x21-\x7e\x80-\xff](?:[\x20\x09\x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?$/;
// RFC 9112 §2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT.
const VERSION = /^HTTP\/([0-9])\.([0-9])$/;
// RFC 9112 §3.2: request-target forms; we read origin-form (absolute-path [ "?" query ]) and
// absolute-form strictly enough to say what must be refused: visible ASCII, no space.
const TARGET = /^[\x21-\x7e]+$/;

export interface OracleHead {
  startLine: string;
  /** [name, value] with OWS trimmed, names as sent. */
  fields: [string, string][];
}

/**
 * RFC 9112 §2.1: HTTP-message = start-line CRLF *( field-line CRLF ) CRLF. `head` is everything up
 * to and including the CRLF of the last field line (without the final empty line). Returns null
 * when the bytes do not follow the grammar.
 */
function splitHead(head: Buffer): OracleHead | null {
  const text = head.toString('latin1');
  if (!text.endsWith('\r\n')) return null;
  const lines = text.slice(0, -2).split('\r\n');
  const fields: [string, string][] = [];
  for (const line of lines) if (line.includes('\r') || line.includes('\n')) return null;
  for (const line of lines.slice(1)) {
    // RFC 9112 §5.1: field-line = field-name ":" OWS field-value OWS; no whitespace before ":".
    const colon = line.indexOf(':');
    if (colon < 0) return null;
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return null;
    let value = line.slice(colon + 1);
    while (value.startsWith(' ') || value.startsWith('\t')) value = value.slice(1);
    while (value.endsWith(' ') || value.endsWith('\t')) value = value.slice(0, -1);
    if (!FIELD_VALUE.test(value)) return null;
    fields.push([name, value]);
  }
  return { startLine: lines[0]!, fields };
}

export interface OracleRequest extends OracleHead {
  method: string;
  target: string;
  version: [number, number];
}

/** RFC 9112 §3: request-line = method SP request-target SP HTTP-version. */
export function readRequest(head: Buffer): OracleRequest | null {
  const split = splitHead(head);
  if (split === null) return null;
  const parts = split.startLine.split(' ');
  if (parts.length !== 3) return null;
  const [method, target, versionText] = parts as [string, string, string];
  const version = VERSION.exec(versionText);
  if (!TOKEN.test(method) || !TARGET.test(target) || version === null) return null;
  return { ...split, method, target, version: [Number(version[1]), Number(version[2])] };
}

export interface OracleResponse extends OracleHead {
  status: number;
}

/** RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]. */
export function readResponse(head: Buffer): OracleResponse | null {
  const split = splitHead(head);
  if (split === null) return null;
  // reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ); RFC 9112 §4 asks recipients to accept a
  // missing SP before an empty reason too.
  const match = /^HTTP\/[0-9]\.[0-9] ([0-9]{3})(?: [\t\x20-\x7e\x80-\xff]*)?$/.exec(split.startLine);
  if (match === null) return null;
  return { ...split, status: Number(match[1]) };
}

/** Every value of a field, by case-insensitive name (RFC 9110 §5.1), in order. */
export function values(head: OracleHead, name: string): string[] {
  return head.fields.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
}

/** RFC 9110 §5.6.1: the elements of a #list across every field line, empty ones dropped. */
export function listElements(head: OracleHead, name: string): string[] {
  return values(head, name)
    .flatMap((value) => value.split(','))
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

const hasToken = (head: OracleHead, name: string, token: string): boolean =>
  listElements(head, name).some((item) => item.toLowerCase() === token);

/** RFC 6455 §4.1: a 16-byte nonce, base64-encoded (RFC 4648 §4, with padding, canonical). */
export function isValidKey(key: string): boolean {
  if (!/^[A-Za-z0-9+/]{22}==$/.test(key)) return false;
  const decoded = Buffer.from(key, 'base64');
  return decoded.length === 16 && decoded.toString('base64') === key;
}

/**
 * RFC 6455 §4.2.1: the reasons a server must not accept this request as an opening handshake, as
 * the statuses each justifies (an empty list: the request is a valid handshake). 405 for a method
 * other than GET (RFC 9110 §15.5.6), 426 for a Sec-WebSocket-Version other than 13 (§4.4), 400 for
 * the rest.
 */
export function upgradeRefusals(request: OracleRequest): number[] {
  const refusals: number[] = [];
  if (request.method !== 'GET') refusals.push(405);
  const [major, minor] = request.version;
  if (major < 1 || (major === 1 && minor < 1)) refusals.push(400);
  const hosts = values(request, 'host');
  if (hosts.length !== 1 || hosts[0] === '') refusals.push(400);
  if (!hasToken(request, 'upgrade', 'websocket')) refusals.push(400);
  if (!hasToken(request, 'connection', 'upgrade')) refusals.push(400);
  const keys = values(request, 'sec-websocket-key');
  if (keys.length !== 1 || !isValidKey(keys[0]!)) refusals.push(400);
  const versions = values(request, 'sec-websocket-version');
  if (versions.length === 0) refusals.push(400);
  else if (versions.length !== 1 || versions[0] !== '13') refusals.push(426);
  // §4.1: subprotocols are tokens and unique.
  const protocols = listElements(request, 'sec-websocket-protocol');
  if (protocols.some((p) => !TOKEN.test(p)) || new Set(protocols).size !== protocols.length) refusals.push(400);
  // RFC 6454 §7.1: at most one Origin field (refusing a repeated one is allowed, not required).
  if (values(request, 'origin').length > 1) refusals.push(400);
  // Origin-form or absolute-form (RFC 9112 §3.2.1, §3.2.2): a path that starts with "/", or a URI.
  if (!request.target.startsWith('/') && !/^[A-Za-z][A-Za-z0-9+.-]*:\/\/./.test(request.target)) refusals.push(400);
  return refusals;
}
