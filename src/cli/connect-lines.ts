import { MAX_CLOSE_REASON_BYTES, MAX_CONTROL_PAYLOAD, isValidApplicationCloseCode } from '../protocol/constants.js';
import { closeCodeName, escapeText } from '../learn/explain.js';

/**
 * What `wsrfc connect` reads and prints, without a socket: a typed line becomes an action (a text
 * message, or one of the slash commands), and what arrives becomes a line. src/cli/connect.ts runs
 * the session.
 */

export const COMMANDS_HELP = `Lines you type are sent as text messages. Commands:
  /ping [text]             send a ping with this payload (at most 125 bytes); the pong is printed
  /pong [text]             send an unsolicited pong (a one-way heartbeat, RFC 6455 §5.5.3)
  /binary HEX              send a binary message: the bytes in hex (spaces allowed), e.g. /binary 00 ff 10
  /close [code [reason]]   start the closing handshake (default: no code, the peer then reports 1005)
  /help                    this text
  //text                   send "/text" as a text message (a leading / doubled)
`;

export type Action =
  | { kind: 'text'; text: string }
  | { kind: 'binary'; data: Buffer }
  | { kind: 'ping' | 'pong'; data: Buffer }
  | { kind: 'close'; code: number | undefined; reason: string }
  | { kind: 'help' }
  /** A line that is not a valid command: why. Nothing is sent. */
  | { kind: 'invalid'; message: string };

/** One input line (without its line ending) as an action. */
export function parseLine(line: string): Action {
  if (!line.startsWith('/')) return { kind: 'text', text: line };
  if (line.startsWith('//')) return { kind: 'text', text: line.slice(1) };
  const space = line.indexOf(' ');
  const name = space < 0 ? line : line.slice(0, space);
  const rest = space < 0 ? '' : line.slice(space + 1);
  switch (name) {
    case '/ping':
    case '/pong': {
      const data = Buffer.from(rest, 'utf8');
      // RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less".
      if (data.length > MAX_CONTROL_PAYLOAD)
        return invalid(`${name}: a control frame carries at most ${MAX_CONTROL_PAYLOAD} bytes (RFC 6455 §5.5)`);
      return { kind: name === '/ping' ? 'ping' : 'pong', data };
    }
    case '/binary': {
      const hex = rest.replace(/\s+/g, '');
      if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex))
        return invalid('/binary takes bytes in hex: /binary 48 69 or /binary 4869');
      return { kind: 'binary', data: Buffer.from(hex, 'hex') };
    }
    case '/close':
      return parseClose(rest.replace(/^\s+/, ''));
    case '/help':
      return { kind: 'help' };
    default:
      return invalid(`unknown command ${name} (/help lists them; //${name.slice(1)} sends it as text)`);
  }
}

function invalid(message: string): Action {
  return { kind: 'invalid', message };
}

/** `/close`, `/close 4000`, `/close 4000 the reason, spaces and all`. */
function parseClose(rest: string): Action {
  if (rest === '') return { kind: 'close', code: undefined, reason: '' };
  const space = rest.indexOf(' ');
  const codeText = space < 0 ? rest : rest.slice(0, space);
  const reason = space < 0 ? '' : rest.slice(space + 1);
  const code = /^\d{1,5}$/.test(codeText) ? Number(codeText) : NaN;
  // RFC 6455 §7.4: 1000-1003, 1007-1014 and 3000-4999 may be sent; 1005, 1006 and 1015 never are.
  if (!isValidApplicationCloseCode(code))
    return invalid(
      `/close: ${codeText} is not a close code an endpoint may send (1000, 3000-4999, ...; RFC 6455 §7.4)`,
    );
  // §5.5.1 and §5.5: the code's 2 bytes and the reason fit in 125 bytes.
  if (Buffer.byteLength(reason) > MAX_CLOSE_REASON_BYTES)
    return invalid(`/close: the reason is longer than ${MAX_CLOSE_REASON_BYTES} bytes of UTF-8 (RFC 6455 §5.5.1)`);
  return { kind: 'close', code, reason };
}

/** Bytes of a binary message shown in hex; a longer one shows its start. */
export const BINARY_PREVIEW_BYTES = 64;

/** An incoming message as printed: text as it is, binary in hex (the start of it, when large). */
export function messageLine(data: Buffer, isBinary: boolean): string {
  if (!isBinary) return `< ${data.toString('utf8')}`;
  const size = `${data.length} byte${data.length === 1 ? '' : 's'}`;
  if (data.length <= BINARY_PREVIEW_BYTES) return `< binary, ${size}: ${data.toString('hex')}`;
  return `< binary, ${size}: ${data.subarray(0, BINARY_PREVIEW_BYTES / 2).toString('hex')}…`;
}

/** A ping's or pong's payload: quoted text when it is printable UTF-8, else hex. */
export function controlPayload(data: Buffer): string {
  if (data.length === 0) return '(empty)';
  const text = data.toString('utf8');
  // Valid UTF-8 (it survives decoding and encoding again) without control characters reads as text.
  const printable = Buffer.from(text, 'utf8').equals(data) && !/[\u0000-\u001f\u007f]/.test(text);
  return printable ? `"${escapeText(text)}"` : `hex ${data.toString('hex')}`;
}

/** The close as printed: code, its name, the reason, and whether the closing handshake completed (§7.1.4). */
export function closeLine(code: number, reason: string, wasClean: boolean): string {
  const why = reason === '' ? '' : ` "${escapeText(reason)}"`;
  const how = wasClean ? 'cleanly (close frames both ways)' : 'not cleanly (no closing handshake)';
  return `closed: ${code} ${closeCodeName(code)}${why}, ${how}`;
}

/**
 * The exit status, which says how the connection ended (the README and `wsrfc connect --help`
 * document these numbers; scripts rely on them).
 */
export const EXIT = {
  /** A clean close with 1000 (Normal Closure), 1001 (Going Away) or none (1005). */
  NORMAL: 0,
  /** The connection never opened: the handshake was refused or failed, or the network or TLS failed. */
  NOT_OPENED: 1,
  /** Bad options or arguments. */
  USAGE: 2,
  /** A clean close with any other code (an error code such as 1011, or an application's 3000-4999). */
  OTHER_CODE: 3,
  /**
   * The connection ended without a closing handshake: dropped, timed out or terminated (1006), or
   * failed by the client because the server broke the protocol (RFC 6455 §7.1.7: 1002, 1007, ...).
   */
  NOT_CLEAN: 4,
  /** --wait: the messages waited for did not all arrive within --timeout (the client then closed with 1000). */
  WAIT_TIMED_OUT: 5,
} as const;

export function exitStatusOf(code: number, wasClean: boolean): number {
  if (!wasClean) return EXIT.NOT_CLEAN;
  return code === 1000 || code === 1001 || code === 1005 ? EXIT.NORMAL : EXIT.OTHER_CODE;
}
