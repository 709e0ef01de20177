import { createHash } from 'node:crypto';
import { constants as zlibConstants, inflateRawSync } from 'node:zlib';
import { CloseCode, Opcode, WEBSOCKET_GUID } from '../protocol/constants.js';
import { DEFLATE_TAIL } from '../protocol/permessage-deflate.js';
import type { TracedFrame } from '../protocol/trace.js';
import type { HeaderField, ObservedHandshake } from '../websocket/hooks.js';

/**
 * What a learner reads: one connection's opening handshake and frames explained, for `--trace`
 * (src/cli/echo.ts, src/cli/connect.ts) and the protocol explorer (src/learn/explorer.ts). Frames come
 * from the `trace` hook as the server (or the client) saw them; this adds what the wire had (the header
 * bytes, the length encoding, the masked bytes) and what they mean (close codes by name, text,
 * permessage-deflate's two sizes).
 */

/** Bytes of each payload shown, masked and unmasked; more is summarised, so a report stays small. */
export const PREVIEW_BYTES = 64;
/** Characters of text shown per frame. */
export const PREVIEW_CHARS = 400;
/** Compressed messages larger than this are not inflated for the trace (their inflated size is not shown). */
const MAX_TRACE_INFLATE = 1024 * 1024;
/** RFC 7692 §7.2.2: the 4 bytes a sender removes from the end of each compressed message. */
/** The largest LZ77 window (RFC 7692 §7.1.2): back-references never reach further. */
const WINDOW = 32 * 1024;

/** RFC 6455 §7.4.1 and the IANA registry (§11.7): the name of each close code. */
const CLOSE_NAMES: Record<number, string> = {
  [CloseCode.Normal]: 'Normal Closure',
  [CloseCode.GoingAway]: 'Going Away',
  [CloseCode.ProtocolError]: 'Protocol Error',
  [CloseCode.UnsupportedData]: 'Unsupported Data',
  [CloseCode.Reserved]: 'Reserved',
  [CloseCode.NoStatusReceived]: 'No Status Received',
  [CloseCode.Abnormal]: 'Abnormal Closure',
  [CloseCode.InvalidPayload]: 'Invalid Frame Payload Data',
  [CloseCode.PolicyViolation]: 'Policy Violation',
  [CloseCode.MessageTooBig]: 'Message Too Big',
  [CloseCode.MandatoryExtension]: 'Mandatory Extension',
  [CloseCode.InternalError]: 'Internal Error',
  [CloseCode.ServiceRestart]: 'Service Restart',
  [CloseCode.TryAgainLater]: 'Try Again Later',
  [CloseCode.BadGateway]: 'Bad Gateway',
  [CloseCode.TlsHandshake]: 'TLS Handshake',
};

/** The name of a close code: the registered one, or the range it falls in (§7.4.2). */
export function closeCodeName(code: number): string {
  const name = CLOSE_NAMES[code];
  if (name !== undefined) return name;
  if (code >= 3000 && code <= 3999) return 'registered for libraries and frameworks';
  if (code >= 4000 && code <= 4999) return 'private use';
  return 'not a valid code';
}

const OPCODE_NAMES: Record<number, string> = {
  [Opcode.Continuation]: 'continuation',
  [Opcode.Text]: 'text',
  [Opcode.Binary]: 'binary',
  [Opcode.Close]: 'close',
  [Opcode.Ping]: 'ping',
  [Opcode.Pong]: 'pong',
};

/** One frame, explained. Plain data (it is sent to the explorer page as JSON). */
export interface FrameReport {
  direction: 'in' | 'out';
  fin: boolean;
  rsv1: boolean;
  rsv2: boolean;
  rsv3: boolean;
  opcode: number;
  /** 'text', 'close', ... or 'reserved' (§5.2: 0x3-0x7 and 0xB-0xF). */
  opcodeName: string;
  masked: boolean;
  /** The masking key in hex (§5.3), or null. */
  maskKey: string | null;
  /** The payload length, and which form carried it (§5.2: 7 bits, 7+16 or 7+64). */
  length: number;
  lengthBits: 7 | 16 | 64;
  /** The header as it was on the wire, in hex. */
  header: string;
  /** The first PREVIEW_BYTES of the payload as on the wire (masked, for a masked frame) and unmasked, in hex. */
  wire: string;
  payload: string;
  /** Text (a text message's frames, or a close reason), escaped and cut to PREVIEW_CHARS. */
  text: string | null;
  close: { code: number | null; name: string; reason: string } | null;
  /** RFC 7692: this frame belongs to a compressed message; on its last frame, the message's two sizes. */
  compressed: { wireBytes: number; inflatedBytes: number | null; note: string } | null;
}

/** Control characters and quotes escaped, the way a learner can read any text on one line. */
export function escapeText(text: string, max = PREVIEW_CHARS): string {
  const cut = text.length > max ? text.slice(0, max) : text;
  const escaped = JSON.stringify(cut).slice(1, -1);
  return text.length > max ? `${escaped}… (${text.length} characters)` : escaped;
}

/** Hex of the first PREVIEW_BYTES of `bytes`, with the rest of `total` counted. */
function hexPreview(bytes: Uint8Array, total = bytes.length): string {
  const n = Math.min(bytes.length, PREVIEW_BYTES);
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, n).toString('hex');
  return total > n ? `${hex}… (+${total - n} bytes)` : hex;
}

/** What one direction of the connection is in the middle of. */
interface Direction {
  /** The opcode of the data message in progress (§5.4), or -1. */
  messageOpcode: number;
  compressed: boolean;
  parts: Buffer[];
  partBytes: number;
  /** The last WINDOW bytes this direction's compressor has seen (context takeover, RFC 7692 §7.1.1), or null. */
  window: Buffer | null;
  /** Whether the window follows the messages (false without context takeover). */
  takeover: boolean;
  /** A message could not be inflated: with context takeover, nothing after it can be either. */
  lost: boolean;
}

/**
 * Explains the frames of one connection in order, as its server (the echo CLI, the explorer) or its
 * client (`wsrfc connect --trace`) saw them. Compressed messages are inflated a second time here
 * (RFC 7692 §7.2.2, with the window each direction's context takeover keeps), only to tell their
 * inflated size; the connection's own inflater is untouched.
 */
export class FrameExplainer {
  private readonly in: Direction;
  private readonly out: Direction;

  /** `extensions`: the Sec-WebSocket-Extensions the server answered with; `side`: whose frames 'in' and 'out' are. */
  constructor(extensions: string, side: 'server' | 'client' = 'server') {
    // RFC 7692 §7.1.1: each end may ask the other to start each message with an empty window.
    const direction = (noTakeover: boolean): Direction => ({
      messageOpcode: -1,
      compressed: false,
      parts: [],
      partBytes: 0,
      window: null,
      takeover: !noTakeover,
      lost: false,
    });
    const clients = direction(/client_no_context_takeover/.test(extensions));
    const servers = direction(/server_no_context_takeover/.test(extensions));
    this.in = side === 'server' ? clients : servers;
    this.out = side === 'server' ? servers : clients;
  }

  explain(frame: TracedFrame): FrameReport {
    const side = frame.direction === 'in' ? this.in : this.out;
    const length = frame.payload.length;
    const lengthBits = frame.lengthBits ?? (length < 126 ? 7 : length <= 0xffff ? 16 : 64);
    const report: FrameReport = {
      direction: frame.direction,
      fin: frame.fin,
      rsv1: frame.rsv1,
      rsv2: frame.rsv2,
      rsv3: frame.rsv3,
      opcode: frame.opcode,
      opcodeName: OPCODE_NAMES[frame.opcode] ?? 'reserved',
      masked: frame.maskKey !== null,
      maskKey: frame.maskKey === null ? null : Buffer.from(frame.maskKey).toString('hex'),
      length,
      lengthBits,
      header: headerBytes(frame, lengthBits).toString('hex'),
      wire:
        frame.maskKey === null ? hexPreview(frame.payload) : hexPreview(remask(frame.payload, frame.maskKey), length),
      payload: hexPreview(frame.payload),
      text: null,
      close: null,
      compressed: null,
    };
    if (frame.opcode === Opcode.Close) {
      report.close = explainClose(frame.payload);
      return report;
    }
    if (frame.opcode >= Opcode.Close) return report;
    if (frame.opcode !== Opcode.Continuation) {
      side.messageOpcode = frame.opcode;
      side.compressed = frame.rsv1;
    }
    if (!side.compressed) {
      if (side.messageOpcode === Opcode.Text) report.text = escapeText(frame.payload.toString('utf8'));
    } else {
      report.compressed = this.compressedFrame(side, frame);
      if (frame.fin && report.compressed.inflatedBytes !== null && side.messageOpcode === Opcode.Text)
        report.text = escapeText(this.lastText);
    }
    if (frame.fin) side.messageOpcode = -1;
    return report;
  }

  private lastText = '';

  private compressedFrame(side: Direction, frame: TracedFrame): NonNullable<FrameReport['compressed']> {
    side.partBytes += frame.payload.length;
    if (side.partBytes <= MAX_TRACE_INFLATE) side.parts.push(Buffer.from(frame.payload));
    if (!frame.fin)
      return { wireBytes: frame.payload.length, inflatedBytes: null, note: 'part of a compressed message' };
    const wireBytes = side.partBytes;
    const parts = side.parts;
    side.parts = [];
    side.partBytes = 0;
    let note = '';
    let inflated: Buffer | null = null;
    if (wireBytes > MAX_TRACE_INFLATE) note = 'too large to inflate for the trace';
    else if (side.lost) note = 'not inflated: an earlier message could not be';
    else {
      try {
        inflated = inflateRawSync(Buffer.concat([...parts, DEFLATE_TAIL]), {
          finishFlush: zlibConstants.Z_SYNC_FLUSH,
          maxOutputLength: MAX_TRACE_INFLATE,
          ...(side.window !== null && side.takeover ? { dictionary: side.window } : {}),
        });
      } catch (error) {
        note = `not inflated: ${(error as Error).message}`;
      }
    }
    if (inflated === null) {
      if (side.takeover) side.lost = true;
      return { wireBytes, inflatedBytes: null, note };
    }
    if (side.takeover) {
      const joined = side.window === null ? inflated : Buffer.concat([side.window, inflated]);
      side.window = Buffer.from(joined.subarray(Math.max(0, joined.length - WINDOW)));
    }
    this.lastText = inflated.subarray(0, PREVIEW_CHARS * 4).toString('utf8');
    return { wireBytes, inflatedBytes: inflated.length, note: `message of ${wireBytes} bytes compressed` };
  }
}

/** The header as it was on the wire (§5.2), rebuilt from the fields the parser reported. */
function headerBytes(frame: TracedFrame, lengthBits: 7 | 16 | 64): Buffer {
  const length = frame.payload.length;
  const extra = lengthBits === 7 ? 0 : lengthBits === 16 ? 2 : 8;
  const header = Buffer.alloc(2 + extra + (frame.maskKey === null ? 0 : 4));
  header[0] =
    (frame.fin ? 0x80 : 0) | (frame.rsv1 ? 0x40 : 0) | (frame.rsv2 ? 0x20 : 0) | (frame.rsv3 ? 0x10 : 0) | frame.opcode;
  header[1] = (frame.maskKey === null ? 0 : 0x80) | (lengthBits === 7 ? length : lengthBits === 16 ? 126 : 127);
  if (lengthBits === 16) header.writeUInt16BE(length, 2);
  else if (lengthBits === 64) header.writeBigUInt64BE(BigInt(length), 2);
  if (frame.maskKey !== null) header.set(frame.maskKey, 2 + extra);
  return header;
}

/**
 * §5.3: the start of the payload as it travelled, masked again with its key (the parser unmasked
 * it in place): octet i XOR key octet i MOD 4.
 */
function remask(payload: Buffer, key: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(Math.min(payload.length, PREVIEW_BYTES));
  for (let i = 0; i < out.length; i++) out[i] = payload[i]! ^ key[i & 3]!;
  return out;
}

/** §5.5.1: a close payload is empty, or a 2-byte code and a UTF-8 reason. */
function explainClose(payload: Buffer): NonNullable<FrameReport['close']> {
  if (payload.length === 0) return { code: null, name: 'no status code (the receiver reports 1005)', reason: '' };
  if (payload.length === 1) return { code: null, name: 'malformed: one byte is not a code', reason: '' };
  const code = payload.readUInt16BE(0);
  return { code, name: closeCodeName(code), reason: escapeText(payload.subarray(2).toString('utf8')) };
}

/**
 * The opening handshake, explained. Over HTTP/1.1: the two heads, and the accept computation step
 * by step (RFC 6455 §4.2.2 item 5.4). Over HTTP/2: the extended CONNECT's fields (RFC 8441 §4, §5),
 * and no key or accept, which RFC 8441 §5 leaves out.
 */
export interface HandshakeReport {
  /** '1.1' or '2.0'. */
  httpVersion: string;
  /** The request and the response as they went (over HTTP/2, in its `name = value` notation). */
  request: string;
  response: string;
  /** HTTP/1.1: Sec-WebSocket-Key, the GUID, SHA-1 of the two in hex, and its base64, the accept. '' over HTTP/2. */
  key: string;
  guid: string;
  sha1: string;
  accept: string;
  /** HTTP/2: the request's pseudo-header fields and the response's :status; null over HTTP/1.1. */
  extendedConnect: ExtendedConnectReport | null;
  /** The client's offer and what the server agreed to. */
  extensionsOffered: string;
  extensionsAgreed: string;
}

/** RFC 8441 §4-§5: what makes an HTTP/2 stream a WebSocket. */
export interface ExtendedConnectReport {
  /** CONNECT, extended by `:protocol`. */
  method: string;
  /** `websocket`. */
  protocol: string;
  /** `https` for wss://, `http` for ws://. */
  scheme: string;
  path: string;
  /** Where HTTP/1.1 has Host. */
  authority: string;
  /** The response's status: a 2xx makes the stream the WebSocket's connection. */
  status: string;
}

export function explainHandshake(
  handshake: Pick<ObservedHandshake, 'httpVersion' | 'requestHead' | 'responseHead' | 'key' | 'http2'>,
): HandshakeReport {
  const { requestHead, responseHead, http2 } = handshake;
  if (http2 !== null) {
    // HTTP/2 field names are lower case (RFC 9113 §8.2.1).
    const field = (fields: readonly HeaderField[], name: string): string =>
      fields
        .filter(([n]) => n === name)
        .map(([, value]) => value)
        .join(', ');
    const { request, response } = http2;
    return {
      httpVersion: '2.0',
      request: requestHead,
      response: responseHead,
      key: '',
      guid: '',
      sha1: '',
      accept: '',
      extendedConnect: {
        method: field(request, ':method'),
        protocol: field(request, ':protocol'),
        scheme: field(request, ':scheme'),
        path: field(request, ':path'),
        authority: field(request, ':authority'),
        status: field(response, ':status'),
      },
      extensionsOffered: field(request, 'sec-websocket-extensions'),
      extensionsAgreed: field(response, 'sec-websocket-extensions'),
    };
  }
  const key = handshake.key;
  const sha1 = createHash('sha1')
    .update(key + WEBSOCKET_GUID)
    .digest();
  const header = (head: string, name: string): string =>
    head
      .split('\r\n')
      .filter((line) => line.toLowerCase().startsWith(`${name.toLowerCase()}:`))
      .map((line) => line.slice(line.indexOf(':') + 1).trim())
      .join(', ');
  return {
    httpVersion: handshake.httpVersion,
    request: requestHead,
    response: responseHead,
    key,
    guid: WEBSOCKET_GUID,
    sha1: sha1.toString('hex'),
    accept: sha1.toString('base64'),
    extendedConnect: null,
    extensionsOffered: header(requestHead, 'Sec-WebSocket-Extensions'),
    extensionsAgreed: header(responseHead, 'Sec-WebSocket-Extensions'),
  };
}

/**
 * `--trace`'s account of a handshake: a title naming what carried it, then the request (`<-`) and
 * the response (`->`) a line each; over HTTP/2, why there is no key and no accept.
 */
export function describeHandshake(handshake: ObservedHandshake): string {
  const indent = (head: string, arrow: string): string[] =>
    head
      .trimEnd()
      .split('\r\n')
      .map((line) => `   ${arrow} ${line}`);
  const lines =
    handshake.http2 === null
      ? [`#${handshake.id} opening handshake (RFC 6455 §4.2):`]
      : [`#${handshake.id} opening handshake over HTTP/2, an extended CONNECT on one stream (RFC 8441 §4, §5):`];
  lines.push(...indent(handshake.requestHead, '<-'), ...indent(handshake.responseHead, '->'));
  if (handshake.http2 !== null) {
    lines.push(
      '   (RFC 8441 §5: no Sec-WebSocket-Key or Sec-WebSocket-Accept, the :protocol pseudo-header field supersedes',
      '   them; no Upgrade or Connection either: :status 200 makes the stream the WebSocket)',
    );
  }
  return lines.join('\n');
}

/** `--trace`'s lines under formatFrame's one: the header bytes, the length form, what the payload says. */
export function describeReport(report: FrameReport): string {
  const short = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max)}…` : text);
  const parts = [`header ${report.header}`, `length ${report.length} in ${lengthForm(report.lengthBits)}`];
  if (report.masked) parts.push(`masked ${short(report.wire, 32)}`);
  if (report.close !== null) {
    const code = report.close.code === null ? report.close.name : `${report.close.code} ${report.close.name}`;
    parts.push(`close ${code}${report.close.reason === '' ? '' : ` "${report.close.reason}"`}`);
  }
  if (report.compressed !== null && report.fin) {
    const { wireBytes, inflatedBytes, note } = report.compressed;
    parts.push(
      inflatedBytes === null
        ? `compressed message, ${wireBytes} bytes (${note})`
        : `compressed message: ${wireBytes} bytes on the wire, ${inflatedBytes} inflated`,
    );
  }
  if (report.text !== null && report.close === null) parts.push(`text "${short(report.text, 60)}"`);
  return parts.join(' | ');
}

export function lengthForm(bits: 7 | 16 | 64): string {
  return bits === 7
    ? 'the 7-bit field'
    : bits === 16
      ? '7+16 bits (126, then 16 bits)'
      : '7+64 bits (127, then 64 bits)';
}
