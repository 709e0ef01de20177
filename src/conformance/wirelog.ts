/**
 * What a case's report shows of the connection: every frame both ways decoded field by field (FIN,
 * RSV1-3, opcode, MASK and key, the length and the form that carried it, the header bytes, the
 * payload masked and unmasked, text, close codes by name, compressed sizes), the timers the case
 * set and what fired, and notes. Bounded: the first entries and the last ones are kept, the rest
 * only counted, so a case that sends a thousand messages has a report of the same size as one that
 * sends one.
 */
import { isControl, opcodeName, type LengthForm } from './frames.js';

/** Bytes of each payload shown, in hex; characters of text shown. */
const PREVIEW_BYTES = 48;
const PREVIEW_CHARS = 160;
/** Entries kept from the start and from the end of a connection. */
const HEAD_ENTRIES = 120;
const TAIL_ENTRIES = 30;

/** RFC 6455 §7.4.1 and the IANA registry (§11.7): the name of each close code. */
const CLOSE_NAMES: Record<number, string> = {
  1000: 'Normal Closure',
  1001: 'Going Away',
  1002: 'Protocol Error',
  1003: 'Unsupported Data',
  1004: 'Reserved',
  1005: 'No Status Received (never on the wire)',
  1006: 'Abnormal Closure (never on the wire)',
  1007: 'Invalid Frame Payload Data',
  1008: 'Policy Violation',
  1009: 'Message Too Big',
  1010: 'Mandatory Extension',
  1011: 'Internal Error',
  1012: 'Service Restart',
  1013: 'Try Again Later',
  1014: 'Bad Gateway',
  1015: 'TLS Handshake (never on the wire)',
};

/** The name of a close code, or the range of §7.4.2 it falls in. */
export function closeCodeName(code: number): string {
  const name = CLOSE_NAMES[code];
  if (name !== undefined) return name;
  if (code >= 3000 && code <= 3999) return 'registered for libraries and frameworks';
  if (code >= 4000 && code <= 4999) return 'private use';
  return 'not a valid close code';
}

/** One frame, decoded field by field. Plain data: it goes into the JSON and HTML reports. */
export interface FrameView {
  /** 'tx': sent by the engine; 'rx': sent by the implementation under test. */
  dir: 'tx' | 'rx';
  fin: boolean;
  rsv1: boolean;
  rsv2: boolean;
  rsv3: boolean;
  opcode: number;
  opcodeName: string;
  masked: boolean;
  maskKey: string | null;
  length: number;
  lengthForm: LengthForm;
  /** The header as on the wire, in hex. */
  header: string;
  /** The start of the payload as on the wire (masked, when masked), and unmasked, in hex. */
  wire: string;
  payload: string;
  /** Text of a text message's frame (when uncompressed), or a close reason. */
  text: string | null;
  close: { code: number | null; name: string; reason: string } | null;
  /** RFC 7692: RSV1 set on the first frame of a compressed message. */
  compressed: boolean;
  /** How it was written: in one write, or in chops of this many octets, each its own write. */
  chopSize: number | null;
  /** Milliseconds since the connection opened. */
  at: number;
}

export type WireEntry =
  | { kind: 'frame'; frame: FrameView }
  | { kind: 'timer'; at: number; what: string }
  | { kind: 'note'; at: number; text: string };

function hex(bytes: Buffer, total: number): string {
  const text = bytes.subarray(0, PREVIEW_BYTES).toString('hex');
  return total > PREVIEW_BYTES ? `${text}… (${total} bytes)` : text;
}

/** Control characters and quotes escaped, so any text reads on one line. */
export function escapeText(text: string): string {
  const cut = text.length > PREVIEW_CHARS ? text.slice(0, PREVIEW_CHARS) : text;
  const escaped = JSON.stringify(cut).slice(1, -1);
  return text.length > PREVIEW_CHARS ? `${escaped}…` : escaped;
}

export interface FrameFacts {
  fin: boolean;
  rsv: number;
  opcode: number;
  maskKey: Buffer | null;
  length: number;
  lengthForm: LengthForm;
  header: Buffer;
  /** The start of the unmasked payload (at least PREVIEW_BYTES when there are that many). */
  payload: Buffer;
  /** Whether the message this frame belongs to is text (for continuation frames). */
  text: boolean;
  chopSize?: number | null;
}

export class WireLog {
  private readonly head: WireEntry[] = [];
  private readonly tail: WireEntry[] = [];
  private skipped = 0;
  private readonly started = performance.now();
  /** False while a case does its bulk work (the reference suite turns its wire log off then too). */
  enabled = true;

  private add(entry: WireEntry): void {
    if (this.head.length < HEAD_ENTRIES) {
      this.head.push(entry);
      return;
    }
    this.tail.push(entry);
    if (this.tail.length > TAIL_ENTRIES) {
      this.tail.shift();
      this.skipped++;
    }
  }

  private now(): number {
    return Math.round(performance.now() - this.started);
  }

  /** Whether a frame with this opcode is recorded now (when not, it is only counted). */
  records(opcode: number): boolean {
    if (this.enabled || isControl(opcode)) return true;
    this.skipped++;
    return false;
  }

  frame(dir: 'tx' | 'rx', facts: FrameFacts): void {
    const { payload, maskKey } = facts;
    const preview = payload.subarray(0, PREVIEW_BYTES);
    let wire = preview;
    if (maskKey !== null) {
      wire = Buffer.from(preview);
      for (let i = 0; i < wire.length; i++) wire[i] = wire[i]! ^ maskKey[i & 3]!;
    }
    let text: string | null = null;
    let close: FrameView['close'] = null;
    if (facts.opcode === 0x8) {
      if (facts.length === 0) close = { code: null, name: 'no status code', reason: '' };
      else if (facts.length === 1) close = { code: null, name: 'malformed: one byte is not a code', reason: '' };
      else {
        const code = payload.readUInt16BE(0);
        text = escapeText(payload.subarray(2, 2 + PREVIEW_CHARS * 4).toString('utf8'));
        close = { code, name: closeCodeName(code), reason: text };
      }
    } else if (facts.text && (facts.rsv & 0x4) === 0)
      text = escapeText(payload.subarray(0, PREVIEW_CHARS * 4).toString('utf8'));
    this.add({
      kind: 'frame',
      frame: {
        dir,
        fin: facts.fin,
        rsv1: (facts.rsv & 0x4) !== 0,
        rsv2: (facts.rsv & 0x2) !== 0,
        rsv3: (facts.rsv & 0x1) !== 0,
        opcode: facts.opcode,
        opcodeName: opcodeName(facts.opcode),
        masked: maskKey !== null,
        maskKey: maskKey === null ? null : maskKey.toString('hex'),
        length: facts.length,
        lengthForm: facts.lengthForm,
        header: facts.header.toString('hex'),
        wire: hex(wire, facts.length),
        payload: hex(preview, facts.length),
        text,
        close,
        compressed: (facts.rsv & 0x4) !== 0 && !isControl(facts.opcode) && facts.opcode !== 0,
        chopSize: facts.chopSize ?? null,
        at: this.now(),
      },
    });
  }

  timer(what: string): void {
    this.add({ kind: 'timer', at: this.now(), what });
  }

  note(text: string): void {
    this.add({ kind: 'note', at: this.now(), text });
  }

  /** The entries kept, with a note where some were left out. */
  entries(): WireEntry[] {
    if (this.skipped === 0) return [...this.head, ...this.tail];
    return [
      ...this.head,
      { kind: 'note', at: atOf(this.tail[0]) ?? this.now(), text: `${this.skipped} entries not recorded` },
      ...this.tail,
    ];
  }
}

function atOf(entry: WireEntry | undefined): number | undefined {
  return entry === undefined ? undefined : entry.kind === 'frame' ? entry.frame.at : entry.at;
}
