/**
 * The Autobahn|Testsuite client driver: runs our WebSocket client through every case of a
 * fuzzingserver (`wstest -m fuzzingserver`), echoing every message back exactly as received.
 *
 *   npm run autobahn:client -- [--url ws://127.0.0.1:9001] [--agent wsrfc] [--cases 1-10,20] [--deflate]
 *
 * The protocol of the fuzzingserver:
 *   GET /getCaseCount                    one text message: the number of cases, then close
 *   GET /runCase?case=N&agent=NAME       case N: the server sends, we echo, until it closes
 *   GET /updateReports?agent=NAME        the server writes its reports (outdir/index.html)
 *
 * The verdicts are the fuzzingserver's, in its report; this driver only prints a line per case
 * (number, close code, clean or not, duration).
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { WebSocket, type ClientOptions } from '../src/index.js';

export const DEFAULT_URL = 'ws://127.0.0.1:9001';
export const DEFAULT_AGENT = 'wsrfc';

/**
 * Options for every case connection. Autobahn sends messages of up to 16 MiB (cases 9.x), so the
 * limits are generous; no pings of ours (they would show up in the cases' frame logs); the
 * library's defaults for the rest (autoPong on: cases 2.x check the pongs).
 */
export const CASE_OPTIONS: Readonly<ClientOptions> = {
  maxMessageSize: 64 * 1024 * 1024,
  maxFramePayload: 64 * 1024 * 1024,
  pingInterval: 0,
  handshakeTimeout: 10_000,
  closeTimeout: 5_000,
};

export interface DriverOptions {
  /** The fuzzingserver, e.g. ws://127.0.0.1:9001. */
  url?: string;
  /** The agent name the report lists our client under. */
  agent?: string;
  /** A subset of cases, e.g. "1-10" or "1,5,7-9" (case numbers, 1-based). Default: all. */
  cases?: string;
  /** Offer permessage-deflate (RFC 7692) in every case, for cases 12.* and 13.*. Default false. */
  deflate?: boolean;
  /** Terminate a case that has not closed after this many ms. Default 120 000. */
  caseTimeout?: number;
  /** Where progress lines go. Default: console.log. */
  log?: (line: string) => void;
}

export interface CaseResult {
  case: number;
  code: number;
  reason: string;
  wasClean: boolean;
  /** Milliseconds from opening the connection to 'close'. */
  ms: number;
  /** Messages echoed. */
  messages: number;
  /** The first error reported on the connection, if any (protocol errors are often the expected outcome). */
  error?: string;
  /** The driver terminated the case after caseTimeout. */
  timedOut?: boolean;
}

export interface DriverResult {
  caseCount: number;
  results: CaseResult[];
}

/** "1-3,7" -> [[1, 3], [7, 7]]. Throws a RangeError for anything that is not N or N-M, 1-based. */
export function parseCaseRanges(spec: string): [number, number][] {
  const ranges: [number, number][] = [];
  for (const part of spec.split(',')) {
    const item = part.trim();
    const match = /^(\d+)(?:-(\d+))?$/.exec(item);
    if (match === null) throw new RangeError(`invalid case list item "${item}" (expected N or N-M)`);
    const from = Number(match[1]);
    const to = match[2] === undefined ? from : Number(match[2]);
    if (from < 1 || to < from) throw new RangeError(`invalid case range "${item}"`);
    ranges.push([from, to]);
  }
  return ranges;
}

/** "1-3,7" -> [1, 2, 3, 7], checked against 1..max. Throws a RangeError on anything else. */
export function parseCaseList(spec: string, max: number): number[] {
  const selected = new Set<number>();
  for (const [from, to] of parseCaseRanges(spec)) {
    if (to > max) throw new RangeError(`case ${to} does not exist: the fuzzingserver has ${max} cases`);
    for (let n = from; n <= to; n++) selected.add(n);
  }
  return [...selected].sort((a, b) => a - b);
}

interface Session {
  code: number;
  reason: string;
  wasClean: boolean;
  messages: Buffer[];
  error: Error | null;
  timedOut: boolean;
}

/**
 * One connection: listeners are attached before the handshake completes, so a message the server
 * sends with its 101 (as the fuzzingserver does) is never missed.
 */
function session(
  url: string,
  options: ClientOptions,
  onMessage: (ws: WebSocket, data: Buffer, isBinary: boolean) => void,
  timeoutMs: number,
): Promise<Session> {
  return new Promise((resolve) => {
    const result: Session = { code: 0, reason: '', wasClean: false, messages: [], error: null, timedOut: false };
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, [], options);
    } catch (error) {
      result.error = error as Error;
      result.code = 1006;
      resolve(result);
      return;
    }
    const timer = setTimeout(() => {
      result.timedOut = true;
      ws.terminate();
    }, timeoutMs);
    ws.on('message', (data, isBinary) => {
      result.messages.push(data);
      onMessage(ws, data, isBinary);
    });
    ws.on('error', (error) => {
      result.error ??= error;
    });
    ws.once('close', (code, reason, wasClean) => {
      clearTimeout(timer);
      Object.assign(result, { code, reason, wasClean });
      resolve(result);
    });
  });
}

function trimSlash(url: string): string {
  return url.endsWith('/') ? url.slice(0, -1) : url;
}

/** Run the cases; resolves when done. Throws when the fuzzingserver cannot be reached. */
export async function runDriver(options: DriverOptions = {}): Promise<DriverResult> {
  const base = trimSlash(options.url ?? DEFAULT_URL);
  const agent = options.agent ?? DEFAULT_AGENT;
  const log = options.log ?? ((line: string) => console.log(line));
  const caseTimeout = options.caseTimeout ?? 120_000;
  const agentParam = encodeURIComponent(agent);

  const countSession = await session(
    `${base}/getCaseCount`,
    { handshakeTimeout: 10_000, pingInterval: 0 },
    (ws) => ws.close(1000),
    30_000,
  );
  const first = countSession.messages[0];
  const caseCount = first === undefined ? NaN : Number(first.toString('utf8'));
  if (!Number.isInteger(caseCount) || caseCount < 0) {
    const why =
      countSession.error !== null
        ? countSession.error.message
        : first === undefined
          ? `closed with ${countSession.code} before sending it`
          : `got ${JSON.stringify(first.toString('utf8').slice(0, 40))}`;
    throw new Error(`cannot get the case count from ${base}/getCaseCount: ${why}`);
  }
  const cases =
    options.cases === undefined
      ? Array.from({ length: caseCount }, (_, i) => i + 1)
      : parseCaseList(options.cases, caseCount);
  log(
    `fuzzingserver at ${base}: ${caseCount} cases; running ${cases.length} as agent "${agent}"${options.deflate === true ? ', offering permessage-deflate' : ''}`,
  );

  const results: CaseResult[] = [];
  const width = String(caseCount).length;
  for (const n of cases) {
    const started = performance.now();
    const outcome = await session(
      `${base}/runCase?case=${n}&agent=${agentParam}`,
      { ...CASE_OPTIONS, ...(options.deflate === true ? { perMessageDeflate: true } : {}) },
      // Echo exactly as received: text as text, binary as binary.
      (ws, data, isBinary) => {
        ws.send(data, { binary: isBinary });
      },
      caseTimeout,
    );
    const ms = Math.round(performance.now() - started);
    const result: CaseResult = {
      case: n,
      code: outcome.code,
      reason: outcome.reason,
      wasClean: outcome.wasClean,
      ms,
      messages: outcome.messages.length,
    };
    if (outcome.error !== null) result.error = outcome.error.message;
    if (outcome.timedOut) result.timedOut = true;
    results.push(result);
    const note = outcome.timedOut
      ? `  (terminated after ${caseTimeout} ms)`
      : outcome.error !== null
        ? `  (${outcome.error.message})`
        : '';
    log(
      `case ${String(n).padStart(width)}/${caseCount}: close ${outcome.code} ${outcome.wasClean ? 'clean' : 'not clean'}, ` +
        `${result.messages} message(s) echoed, ${ms} ms${note}`,
    );
  }

  const update = await session(
    `${base}/updateReports?agent=${agentParam}`,
    { handshakeTimeout: 10_000, pingInterval: 0 },
    () => {},
    120_000,
  );
  if (update.error !== null && update.code === 1006) log(`warning: /updateReports failed: ${update.error.message}`);
  const clean = results.filter((r) => r.wasClean).length;
  log(
    `done: ${results.length} case(s), ${clean} closed cleanly; the verdicts are in the fuzzingserver's report (reports/clients/index.html)`,
  );
  return { caseCount, results };
}

const HELP = `Usage: npm run autobahn:client -- [options]

Runs the Autobahn|Testsuite cases of a fuzzingserver against this library's client.

  --url URL        the fuzzingserver (default ${DEFAULT_URL})
  --agent NAME     the name the report lists this client under (default ${DEFAULT_AGENT})
  --cases LIST     only these cases, by number: "1-10", "1,5,7-9" (default: all)
  --deflate        offer permessage-deflate (RFC 7692), for cases 12.* and 13.*
  -h, --help       this text
`;

/** The command line. Returns the exit code: 0 done, 1 the fuzzingserver failed us, 2 usage. */
export async function main(
  argv: string[] = process.argv.slice(2),
  log: (line: string) => void = (line) => console.log(line),
): Promise<number> {
  let values: { url?: string; agent?: string; cases?: string; deflate?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        url: { type: 'string' },
        agent: { type: 'string' },
        cases: { type: 'string' },
        deflate: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    log(`${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help === true) {
    log(HELP);
    return 0;
  }
  if (values.cases !== undefined) {
    try {
      parseCaseRanges(values.cases);
    } catch (error) {
      log(`${(error as Error).message}\n\n${HELP}`);
      return 2;
    }
  }
  if (values.agent !== undefined && values.agent === '') {
    log(`--agent must not be empty\n\n${HELP}`);
    return 2;
  }
  try {
    await runDriver({
      ...(values.url !== undefined ? { url: values.url } : {}),
      ...(values.agent !== undefined ? { agent: values.agent } : {}),
      ...(values.cases !== undefined ? { cases: values.cases } : {}),
      deflate: values.deflate === true,
      log,
    });
    return 0;
  } catch (error) {
    log(`error: ${(error as Error).message}`);
    return 1;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then((code) => {
    process.exitCode = code;
  });
}
