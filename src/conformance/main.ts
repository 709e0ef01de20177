/**
 * `wsrfc conformance`: Autobahn|Testsuite's cases, run by this engine, against a server
 * (`server URL`, the suite's fuzzingclient) or a client (`client`, the suite's fuzzingserver).
 * Returns the exit code: 0 when every case is OK or INFORMATIONAL (or as `--expect` says), 1
 * otherwise, 2 for a wrong command line.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { allCases, selectCases } from './catalogue.js';
import { differences, readExpectations, type Expectations } from './expect.js';
import { collect, writeReports } from './report.js';
import { passes, type CaseResult, type Results } from './result.js';
import type { CaseDefinition } from './script.js';
import { Progress, summary } from './terminal.js';
import { ClientTester } from './client-runner.js';
import { DEFAULT_PARALLEL, DEFAULT_TIME_SCALE, parseTarget, testServer } from './server-runner.js';

export const HELP = `Usage: wsrfc conformance server URL [options]
       wsrfc conformance client [--port P] [options]

Runs the 517 cases of Autobahn|Testsuite (release 0.8.2: framing, pings, reserved bits, opcodes,
fragmentation, UTF-8, closing, limits, permessage-deflate) and gives the suite's verdicts, with
no Docker and no Python.

  server URL          test the WebSocket server at URL (ws:// or wss://), as the suite's
                      fuzzingclient does; the server should echo every message
  client              serve the cases to a client under test, as the suite's fuzzingserver does,
                      with its endpoints (/getCaseCount, /runCase?case=N&agent=A,
                      /updateReports?agent=A), so its drivers work unchanged

Options:
  --cases LIST        only these cases: ids and patterns, e.g. 1.*,6.4.*,12.2.3 (default: all)
  --report DIR        where the reports go (default reports/servers, or reports/clients)
  --agent NAME        (server) the name in the reports (default: the server's Server header)
  --parallel N        (server) cases run at once (default ${DEFAULT_PARALLEL})
  --port P            (client) the port to listen on (default 9001)
  --host H            (client) the address to listen on (default 127.0.0.1)
  --once              (client) stop after the first /updateReports (else: Ctrl-C, or a client
                      asking /updateReports?agent=A&shutdownOnComplete=true)
  --expect FILE       pass when each verdict is the one FILE gives ({"1.1.1": ["OK", "OK"], ...},
                      or an index.json), instead of when all are OK or INFORMATIONAL
  --timeout-scale F   multiply the suite's deadlines by F (default ${DEFAULT_TIME_SCALE}); they only decide
                      verdicts for implementations that do not answer
  -h, --help          this text

Reports: DIR/index.json (the suite's shape, read by npm run autobahn:check), one JSON file per
case, and DIR/index.html (the grid of verdicts, and per case its frames decoded and the reasons).
Exit code: 0 all passed (or matched --expect), 1 some did not, 2 a wrong command line.
`;

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  /** Whether `out` is a terminal (progress then updates one line). */
  live?: boolean;
}

const STDIO: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  live: process.stdout.isTTY === true,
};

class UsageError extends Error {}

function number(name: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < min) throw new UsageError(`--${name} must be a number >= ${min}`);
  return value;
}

/** Exit code and the lines that explain it. */
function verdict(results: Results, expectations: Expectations | null): { code: number; text: string } {
  const all = [...results.values()].flatMap((byCase) => [...byCase.values()]);
  if (all.length === 0) return { code: 1, text: 'no case was run' };
  if (expectations !== null) {
    const diff = [...results.values()].flatMap((byCase) => differences(byCase.values(), expectations));
    return diff.length === 0
      ? { code: 0, text: `PASS: all ${all.length} verdicts as expected` }
      : { code: 1, text: `FAIL: ${diff.length} verdicts not as expected:\n${diff.map((d) => `  ${d}`).join('\n')}` };
  }
  const failing = all.filter((r) => !passes(r)).length;
  return failing === 0
    ? { code: 0, text: `PASS: all ${all.length} cases OK or INFORMATIONAL` }
    : { code: 1, text: `FAIL: ${failing} of ${all.length} cases not OK or INFORMATIONAL` };
}

function finish(results: Results, dir: string, title: string, expectations: Expectations | null, io: Io): number {
  writeReports(dir, results, title);
  io.out(`\n${summary(results)}\n\nReports: ${resolve(dir, 'index.html')} and index.json\n`);
  const { code, text } = verdict(results, expectations);
  io.out(`${text}\n`);
  return code;
}

async function runServer(
  url: string,
  cases: CaseDefinition[],
  values: Values,
  expectations: Expectations | null,
  io: Io,
) {
  parseTarget(url);
  const progress = new Progress(cases.length, cases, io.out, io.live === true);
  io.out(`Testing the server at ${url}: ${cases.length} cases\n`);
  const results = await testServer({
    url,
    cases,
    ...(values.agent !== undefined ? { agent: values.agent } : {}),
    parallel: number('parallel', values.parallel, DEFAULT_PARALLEL, 1),
    timeScale: number('timeout-scale', values['timeout-scale'], DEFAULT_TIME_SCALE, 0.1),
    onCaseStart: (definition) => progress.start(definition.id),
    onCaseEnd: (result) => progress.end(result),
  });
  progress.finish();
  return finish(
    collect(results),
    values.report ?? 'reports/servers',
    `Conformance of ${results[0]!.agent}`,
    expectations,
    io,
  );
}

async function runClient(cases: CaseDefinition[], values: Values, expectations: Expectations | null, io: Io) {
  const dir = values.report ?? 'reports/clients';
  const port = number('port', values.port, 9001, 0);
  let stop: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const progress = new Progress(cases.length, cases, io.out, false);
  const tester: ClientTester = new ClientTester({
    cases,
    timeScale: number('timeout-scale', values['timeout-scale'], DEFAULT_TIME_SCALE, 0.1),
    onCaseStart: (definition) => progress.start(definition.id),
    onCaseEnd: (result: CaseResult) => progress.end(result),
    onUpdateReports: (agent, shutdown) => {
      writeReports(dir, tester.results, 'Conformance of clients');
      io.out(`Reports updated (asked by ${agent}): ${resolve(dir, 'index.html')}\n`);
      if (shutdown || values.once === true) stop();
    },
  });
  const address = await tester.listen(port, values.host ?? '127.0.0.1');
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  io.out(`Serving ${cases.length} cases to clients at ws://${host}:${address.port} (Ctrl-C to stop)\n`);
  const onSignal = (): void => stop();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await stopped;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await tester.close();
  }
  return finish(tester.results, dir, 'Conformance of clients', expectations, io);
}

interface Values {
  cases?: string;
  report?: string;
  agent?: string;
  parallel?: string;
  port?: string;
  host?: string;
  once?: boolean;
  expect?: string;
  'timeout-scale'?: string;
  help?: boolean;
}

/** The command line, after `wsrfc conformance`. Resolves with the exit code. */
export async function conformanceMain(argv: string[], io: Io = STDIO): Promise<number> {
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        cases: { type: 'string' },
        report: { type: 'string' },
        agent: { type: 'string' },
        parallel: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        once: { type: 'boolean' },
        expect: { type: 'string' },
        'timeout-scale': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    io.err(`${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help === true) {
    io.out(HELP);
    return 0;
  }
  try {
    const [mode, url, ...extra] = positionals;
    if (mode !== 'server' && mode !== 'client') throw new UsageError('say what to test: server URL, or client');
    if (mode === 'server' && url === undefined) throw new UsageError('server needs the URL of the server to test');
    if ((mode === 'client' && url !== undefined) || extra.length > 0)
      throw new UsageError(`unexpected argument ${mode === 'client' ? url : extra[0]}`);
    for (const [name, only] of [
      ['agent', 'server'],
      ['parallel', 'server'],
      ['port', 'client'],
      ['host', 'client'],
      ['once', 'client'],
    ] as const)
      if (values[name] !== undefined && mode !== only) throw new UsageError(`--${name} is for ${only} mode`);
    if (values.agent === '') throw new UsageError('--agent must not be empty');
    let cases: CaseDefinition[];
    try {
      cases = values.cases === undefined ? allCases() : selectCases(values.cases);
    } catch (error) {
      throw new UsageError(`--cases: ${(error as Error).message}`);
    }
    let expectations: Expectations | null = null;
    if (values.expect !== undefined) {
      try {
        expectations = readExpectations(values.expect);
      } catch (error) {
        throw new UsageError(`--expect: ${(error as Error).message}`);
      }
    }
    if (mode === 'server') {
      try {
        parseTarget(url!);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      return await runServer(url!, cases, values, expectations, io);
    }
    return await runClient(cases, values, expectations, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`${error.message}\n\n${HELP}`);
      return 2;
    }
    io.err(`error: ${(error as Error).message}\n`);
    return 1;
  }
}
