/**
 * The case model: a case sends frames, records what comes back (messages, pongs, and the steps it
 * reached), and judges it the way Autobahn|Testsuite does, in two verdicts:
 *
 * - `behavior`: what the peer did with the case's frames. Each case lists one or more expected
 *   sequences of events, each with its verdict (OK, NON-STRICT, ...); the verdict of the one that
 *   matches what was received, or FAILED when none does.
 * - `behaviorClose`: how the connection ended, against the case's expectation of who starts the
 *   closing handshake (`closedByMe`), which close codes the peer may send (`closeCode`, any when it
 *   sent none) and whether the close must be clean (`requireClean`): FAILED (the wrong endpoint
 *   closed, or the opening handshake never completed), UNCLEAN, WRONG CODE, FAILED BY CLIENT (when
 *   testing a server: the engine, not the server, had to end TCP), else OK.
 */
import type { DeflateOffer, DeflateParams } from './deflate.js';
import type { Endpoint } from './endpoint.js';

export const VERDICTS = [
  'OK',
  'NON-STRICT',
  'INFORMATIONAL',
  'UNIMPLEMENTED',
  'FAILED',
  'WRONG CODE',
  'UNCLEAN',
  'FAILED BY CLIENT',
] as const;
export type Verdict = (typeof VERDICTS)[number];

/** What the engine records of the peer's answers (the suite records messages and pongs, not pings). */
export type Observed =
  | { type: 'message'; payload: Buffer; binary: boolean }
  | { type: 'pong'; payload: Buffer }
  /** A step the case reached while the connection was still open (the phased cases of 6.4). */
  | { type: 'timeout'; tag: string };

export const message = (payload: Buffer | string, binary = false): Observed => ({
  type: 'message',
  payload: typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload,
  binary,
});
export const pong = (payload: Buffer | string): Observed => ({
  type: 'pong',
  payload: typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload,
});

function same(a: Observed, b: Observed): boolean {
  if (a.type === 'timeout') return b.type === 'timeout' && a.tag === b.tag;
  if (a.type === 'message') return b.type === 'message' && a.binary === b.binary && a.payload.equals(b.payload);
  return b.type === 'pong' && a.payload.equals(b.payload);
}

export function sameEvents(a: readonly Observed[], b: readonly Observed[]): boolean {
  return a.length === b.length && a.every((event, i) => same(event, b[i]!));
}

export interface ExpectedClose {
  /** Whether the engine is the one to start the closing handshake. */
  closedByMe: boolean;
  /** The close codes the peer may answer or close with (the first is the one the engine closes with). */
  closeCode: number[];
  /** Whether the closing handshake must be clean (close frames both ways, TCP ended by the server). */
  requireClean: boolean;
  /** UTF-8 cases: if the wrong endpoint closed, the peer never noticed the bad data, so the case fails. */
  closedByWrongEndpointIsFatal?: boolean;
}

/** A case's description, for the reports (written for this engine, from the suite's case list). */
export interface CaseInfo {
  id: string;
  description: string;
  expectation: string;
}

/** The answer a server-role case gives to a client's permessage-deflate offers. */
export interface DeflateAcceptance {
  params: DeflateParams;
  /** The Sec-WebSocket-Extensions value of the answer. */
  response: string;
}

/** What a case records of the peer's answers at most: the expected sequences are a few events long. */
const MAX_EVENTS = 10_000;
const MAX_RECORDED_BYTES = 64 * 1024 * 1024;

export abstract class Case {
  /** The connection, once open. */
  p!: Endpoint;
  connectionWasOpen = false;
  readonly received: Observed[] = [];
  readonly expected = new Map<Verdict, Observed[]>();
  expectedClose: ExpectedClose = { closedByMe: true, closeCode: [1000], requireClean: true };
  behavior: Verdict = 'FAILED';
  behaviorClose: Verdict = 'FAILED';
  result = 'Actual events differ from any expected.';
  resultClose = 'TCP connection was dropped without close handshake';
  /** Suppresses the close the case would start once the expected events have arrived. */
  suppressClose = false;
  /** Performance cases report their duration; compression cases their compression ratios. */
  reportTime = false;
  reportCompressionRatio = false;

  constructor(readonly info: CaseInfo) {}

  get id(): string {
    return this.info.id;
  }

  /** The permessage-deflate offers a client-role case makes (none but in groups 12 and 13). */
  deflateOffers(): DeflateOffer[] {
    return [];
  }

  /** The answer a server-role case gives to a client's offers (null: decline; groups 12 and 13 accept). */
  acceptDeflate(_offers: DeflateOffer[]): DeflateAcceptance | null {
    return null;
  }

  /** The connection is open: send the case's frames, set its deadlines. */
  abstract onOpen(): void;

  onMessage(payload: Buffer, binary: boolean): void {
    if (this.record(payload.length)) this.received.push({ type: 'message', payload, binary });
    this.finishWhenDone();
  }

  onPong(payload: Buffer): void {
    if (this.record(payload.length)) this.received.push({ type: 'pong', payload });
    this.finishWhenDone();
  }

  /** Past MAX_EVENTS or MAX_RECORDED_BYTES nothing more is recorded (no expected sequence is that long). */
  private overflowed = false;
  private recordedBytes = 0;
  private record(size: number): boolean {
    this.recordedBytes += size;
    if (this.received.length >= MAX_EVENTS || this.recordedBytes > MAX_RECORDED_BYTES) this.overflowed = true;
    return !this.overflowed;
  }

  /** Once what was received matches every expected sequence, start the closing handshake if the case says so. */
  protected finishWhenDone(): void {
    for (const events of this.expected.values()) if (!sameEvents(this.received, events)) return;
    if (this.expectedClose.closedByMe && !this.suppressClose) this.p.sendClose(this.expectedClose.closeCode[0]!);
  }

  /** The connection is gone: judge it (the suite's onConnectionLost). */
  onConnectionLost(): void {
    for (const [verdict, events] of this.expected) {
      if (!this.overflowed && sameEvents(this.received, events)) {
        this.behavior = verdict;
        this.result = 'Actual events match at least one expected.';
        break;
      }
    }
    if (this.overflowed) this.result = `The peer sent more than ${MAX_EVENTS} answers or ${MAX_RECORDED_BYTES} octets.`;
    if (!this.connectionWasOpen) {
      this.behaviorClose = 'FAILED';
      this.resultClose = 'The WebSocket opening handshake was never completed.';
      return;
    }
    const p = this.p;
    const expected = this.expectedClose;
    if (expected.closedByMe !== p.closedByMe) {
      this.behaviorClose = 'FAILED';
      this.resultClose = 'The connection was failed by the wrong endpoint.';
    } else if (expected.requireClean && !p.wasClean) {
      this.behaviorClose = 'UNCLEAN';
      this.resultClose = 'The spec requires the connection to be closed cleanly here.';
    } else if (p.remoteCloseCode !== null && !expected.closeCode.includes(p.remoteCloseCode)) {
      this.behaviorClose = 'WRONG CODE';
      this.resultClose = `The close code should have been ${expected.closeCode.join(', ')} or empty.`;
    } else if (!p.isServer && p.droppedByMe) {
      this.behaviorClose = 'FAILED BY CLIENT';
      this.resultClose = 'The server should have ended the TCP connection; the engine had to.';
    } else {
      this.behaviorClose = 'OK';
      this.resultClose = 'Connection was properly closed.';
    }
    if (expected.closedByWrongEndpointIsFatal === true && expected.closedByMe !== p.closedByMe) {
      this.behavior = 'FAILED';
      this.result = 'The peer did not fail the connection: it never noticed the invalid data.';
    }
  }
}
