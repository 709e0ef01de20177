/**
 * What a run records of each case: the verdicts and why, what was expected and what came, the
 * closing handshake's bookkeeping, the frames both ways, the HTTP heads, counts. Plain data: it is
 * the per-case JSON report, and the HTML report and the terminal summary are made from it.
 */
import type { Case, ExpectedClose, Observed, Verdict } from './case.js';
import type { Endpoint } from './endpoint.js';
import type { WireEntry } from './wirelog.js';

/** Results by agent, then by case id. */
export type Results = Map<string, Map<string, CaseResult>>;

/** An observed event as the report shows it: its kind, and its payload cut short (text, or hex). */
export type ObservedView =
  | { type: 'message'; binary: boolean; length: number; payload: string }
  | { type: 'pong'; length: number; payload: string }
  | { type: 'timeout'; tag: string };

export interface CaseResult {
  id: string;
  agent: string;
  description: string;
  expectation: string;
  /** When the case started (ISO 8601), and how long it ran, in milliseconds, from open to end of TCP. */
  started: string;
  duration: number;
  behavior: Verdict;
  behaviorClose: Verdict;
  /** Why: the verdict on the events, and on the close. */
  result: string;
  resultClose: string;
  reportTime: boolean;
  reportCompressionRatio: boolean;
  expected: Partial<Record<Verdict, ObservedView[]>>;
  expectedClose: ExpectedClose;
  received: ObservedView[];
  /** The closing handshake, as the verdicts saw it. */
  isServer: boolean;
  closedByMe: boolean;
  failedByMe: boolean;
  droppedByMe: boolean;
  wasClean: boolean;
  wasNotCleanReason: string | null;
  wasServerConnectionDropTimeout: boolean;
  wasOpenHandshakeTimeout: boolean;
  wasCloseHandshakeTimeout: boolean;
  localCloseCode: number | null;
  localCloseReason: string | null;
  remoteCloseCode: number | null;
  remoteCloseReason: string | null;
  httpRequest: string;
  httpResponse: string;
  /** The permessage-deflate agreement, as the server's answer wrote it, or null. */
  extensions: string | null;
  txFrameStats: Record<number, number>;
  rxFrameStats: Record<number, number>;
  trafficStats: {
    txOctets: number;
    rxOctets: number;
    /** RFC 7692: compressed over uncompressed size of the messages each way, when compressed. */
    outgoingCompressionRatio: number | null;
    incomingCompressionRatio: number | null;
  };
  wirelog: WireEntry[];
}

/** The report's view of a payload: its text when it is short printable UTF-8, else its start in hex. */
export function preview(payload: Buffer): string {
  const head = payload.subarray(0, 64);
  const text = head.toString('utf8');
  const printable = !text.includes('\ufffd') && !/[\u0000-\u0008\u000e-\u001f]/.test(text);
  const more = payload.length > 64 ? ' ...' : '';
  return printable ? text + more : `0x${head.toString('hex')}${more}`;
}

function view(event: Observed): ObservedView {
  if (event.type === 'timeout') return event;
  if (event.type === 'pong') return { type: 'pong', length: event.payload.length, payload: preview(event.payload) };
  return { type: 'message', binary: event.binary, length: event.payload.length, payload: preview(event.payload) };
}

export interface Session {
  agent: string;
  started: Date;
  /** performance.now() when the connection opened (or the attempt started, if it never did). */
  openedAt: number;
  endedAt: number;
  isServer: boolean;
  httpRequest: string;
  httpResponse: string;
  extensions: string | null;
  /** Why the opening handshake failed, when it did. */
  handshakeError: string | null;
  wasOpenHandshakeTimeout: boolean;
  wirelog: WireEntry[];
}

const ratio = (compressed: number, plain: number): number | null => (plain === 0 ? null : compressed / plain);

/** The record of a finished case. */
export function caseResult(c: Case, endpoint: Endpoint | null, session: Session): CaseResult {
  const expected: Partial<Record<Verdict, ObservedView[]>> = {};
  for (const [verdict, events] of c.expected) expected[verdict] = events.map(view);
  const p = endpoint;
  const compressed = p?.deflate != null;
  return {
    id: c.id,
    agent: session.agent,
    description: c.info.description,
    expectation: c.info.expectation,
    started: session.started.toISOString(),
    duration: Math.round(session.endedAt - session.openedAt),
    behavior: c.behavior,
    behaviorClose: c.behaviorClose,
    result: session.handshakeError === null ? c.result : `The opening handshake failed: ${session.handshakeError}`,
    resultClose: c.resultClose,
    reportTime: c.reportTime,
    reportCompressionRatio: c.reportCompressionRatio,
    expected,
    expectedClose: c.expectedClose,
    received: c.received.map(view),
    isServer: session.isServer,
    closedByMe: p?.closedByMe ?? false,
    failedByMe: p?.failedByMe ?? false,
    droppedByMe: p?.droppedByMe ?? false,
    wasClean: p?.wasClean ?? false,
    wasNotCleanReason: p?.wasNotCleanReason ?? session.handshakeError,
    wasServerConnectionDropTimeout: p?.wasServerConnectionDropTimeout ?? false,
    wasOpenHandshakeTimeout: session.wasOpenHandshakeTimeout,
    wasCloseHandshakeTimeout: p?.wasCloseHandshakeTimeout ?? false,
    localCloseCode: p?.localCloseCode ?? null,
    localCloseReason: p?.localCloseReason ?? null,
    remoteCloseCode: p?.remoteCloseCode ?? null,
    remoteCloseReason: p?.remoteCloseReason ?? null,
    httpRequest: session.httpRequest,
    httpResponse: session.httpResponse,
    extensions: session.extensions,
    txFrameStats: p?.txFrames ?? {},
    rxFrameStats: p?.rxFrames ?? {},
    trafficStats: {
      txOctets: p?.traffic.txOctets ?? 0,
      rxOctets: p?.traffic.rxOctets ?? 0,
      outgoingCompressionRatio: compressed ? ratio(p!.traffic.txWsOctets, p!.traffic.txAppOctets) : null,
      incomingCompressionRatio: compressed ? ratio(p!.traffic.rxWsOctets, p!.traffic.rxAppOctets) : null,
    },
    wirelog: session.wirelog,
  };
}

/** Whether a verdict passes: OK and INFORMATIONAL do. */
export const passes = (r: Pick<CaseResult, 'behavior' | 'behaviorClose'>): boolean =>
  (r.behavior === 'OK' || r.behavior === 'INFORMATIONAL') &&
  (r.behaviorClose === 'OK' || r.behaviorClose === 'INFORMATIONAL');
