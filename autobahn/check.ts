/**
 * Checks the results of an Autobahn|Testsuite run: reads the `index.json` the suite writes next to
 * its HTML report, prints a table per agent and exits non-zero unless every case passed.
 *
 *   npm run autobahn:check -- reports/servers/index.json [reports/clients/index.json ...]
 *
 * The file's shape (the suite's createMasterReportJSON, written with sorted keys):
 *
 *   { "<agent>": { "<case id>": { "behavior": "OK", "behaviorClose": "OK", "duration": 2,
 *                                 "remoteCloseCode": 1000, "reportfile": "<agent>_case_1_1_1.json" } } }
 *
 * `behavior` judges what the peer did with the case's frames, `behaviorClose` how the connection
 * ended. The values the suite uses (its Case class): OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED,
 * FAILED, and for the close also WRONG CODE, UNCLEAN and FAILED BY CLIENT (NO_CLOSE in old reports).
 *
 * A pass for this project: every case OK or INFORMATIONAL in both values. NON-STRICT is legal but
 * not the behaviour we aim for, and UNIMPLEMENTED means compression was not negotiated while the
 * runs are meant to have it on, so both count as failures.
 *
 * Exit codes: 0 every case passed, 1 some case did not, 2 a file is missing, unreadable, malformed
 * or empty (or the command line is wrong).
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { COLUMNS, caseColumn, columnOf, type Column } from '../src/conformance/terminal.js';

export { COLUMNS, caseColumn, columnOf, type Column };

/** The values a case may have in both fields and still pass. */
const PASSING = new Set(['OK', 'INFORMATIONAL']);

/**
 * The suite's case categories (autobahntestsuite/case/__init__.py, CaseCategories). Category 10 is
 * "Misc" there, with one subcategory, 10.1 Auto-Fragmentation, which is the more useful name.
 */
export const GROUP_NAMES: Readonly<Record<number, string>> = {
  0: 'Handshake',
  1: 'Framing',
  2: 'Pings/Pongs',
  3: 'Reserved Bits',
  4: 'Opcodes',
  5: 'Fragmentation',
  6: 'UTF-8 Handling',
  7: 'Close Handling',
  8: 'Misc',
  9: 'Limits/Performance',
  10: 'Misc (Auto-Fragmentation)',
  12: 'WebSocket Compression (different payloads)',
  13: 'WebSocket Compression (different parameters)',
};

export interface CaseResult {
  id: string;
  behavior: string;
  behaviorClose: string;
  remoteCloseCode: number | null;
  duration: number | null;
  reportfile: string | null;
}

export interface AgentResults {
  agent: string;
  /** Sorted by case id, numerically. */
  cases: CaseResult[];
}

/** A file that cannot be checked; the message says why and names the file. */
export class ReportError extends Error {}

const CASE_ID = /^\d+(?:\.\d+)*$/;

/** Case ids compare part by part as numbers: 1.1.9 < 1.1.10 < 1.2.1 < 2.1 < 10.1.1. */
export function compareCaseIds(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i]! - pb[i]!;
  }
  return pa.length - pb.length;
}

export function casePasses(result: CaseResult): boolean {
  return PASSING.has(result.behavior) && PASSING.has(result.behaviorClose);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/** Parses an index.json's text. Throws a ReportError naming `path` for anything not of its shape. */
export function parseIndex(text: string, path: string): AgentResults[] {
  if (text.trim() === '') throw new ReportError(`${path} is empty (did the run finish writing its report?)`);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new ReportError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(data)) {
    throw new ReportError(
      `${path}: expected an object of agents ({ "<agent>": { "<case id>": { "behavior": ... } } }), got ${describe(data)}`,
    );
  }
  const agents = Object.keys(data);
  if (agents.length === 0) throw new ReportError(`${path} lists no agents: the run recorded no cases`);
  return agents.map((agent) => {
    const entries = data[agent];
    if (!isObject(entries))
      throw new ReportError(`${path}: agent "${agent}": expected an object of cases, got ${describe(entries)}`);
    const ids = Object.keys(entries);
    if (ids.length === 0) throw new ReportError(`${path}: agent "${agent}" has no cases`);
    const cases = ids.map((id): CaseResult => {
      const where = `${path}: agent "${agent}", case "${id}"`;
      if (!CASE_ID.test(id))
        throw new ReportError(`${where}: not a case id (expected numbers separated by dots, like 1.1.1)`);
      const entry = entries[id];
      if (!isObject(entry)) throw new ReportError(`${where}: expected an object, got ${describe(entry)}`);
      for (const field of ['behavior', 'behaviorClose']) {
        if (typeof entry[field] !== 'string')
          throw new ReportError(`${where}: "${field}" should be a string, got ${describe(entry[field])}`);
      }
      // The rest is informative: shown when present, never required.
      return {
        id,
        behavior: entry.behavior as string,
        behaviorClose: entry.behaviorClose as string,
        remoteCloseCode: typeof entry.remoteCloseCode === 'number' ? entry.remoteCloseCode : null,
        duration: typeof entry.duration === 'number' ? entry.duration : null,
        reportfile: typeof entry.reportfile === 'string' ? entry.reportfile : null,
      };
    });
    cases.sort((a, b) => compareCaseIds(a.id, b.id));
    return { agent, cases };
  });
}

/** Reads and parses one report; a directory stands for the index.json inside it. */
export function readIndex(path: string): AgentResults[] {
  let file = path;
  let text: string;
  try {
    if (statSync(path).isDirectory()) file = join(path, 'index.json');
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new ReportError(`${file} does not exist (run the suite first; see autobahn/README.md)`);
    throw new ReportError(`cannot read ${file}: ${(error as Error).message}`);
  }
  return parseIndex(text, file);
}

export interface GroupRow {
  group: number;
  name: string;
  cases: number;
  counts: Record<Column, number>;
}

function emptyCounts(): Record<Column, number> {
  return { OK: 0, INFORMATIONAL: 0, 'NON-STRICT': 0, UNIMPLEMENTED: 0, FAILED: 0, other: 0 };
}

/** One row per group present (first number of the case id), in order, then the total. */
export function groupRows(results: AgentResults): { rows: GroupRow[]; total: GroupRow } {
  const byGroup = new Map<number, GroupRow>();
  const total: GroupRow = { group: -1, name: 'Total', cases: 0, counts: emptyCounts() };
  for (const result of results.cases) {
    const group = Number(result.id.split('.')[0]);
    let row = byGroup.get(group);
    if (row === undefined) {
      row = { group, name: GROUP_NAMES[group] ?? '(not a group of the suite)', cases: 0, counts: emptyCounts() };
      byGroup.set(group, row);
    }
    const column = caseColumn(result);
    row.cases++;
    row.counts[column]++;
    total.cases++;
    total.counts[column]++;
  }
  return { rows: [...byGroup.values()].sort((a, b) => a.group - b.group), total };
}

/**
 * A Markdown table padded to line up in a terminal. `align` per column: 'l' or 'r' (numbers).
 * Cells must not contain '|' (escaped here, for agent names and unknown values).
 */
export function table(header: string[], rows: string[][], align: ('l' | 'r')[]): string {
  const cells = [header, ...rows].map((row) => row.map((cell) => cell.replaceAll('|', '\\|')));
  const widths = header.map((_, i) => Math.max(3, ...cells.map((row) => row[i]!.length)));
  const line = (row: string[]): string =>
    `| ${row.map((cell, i) => (align[i] === 'r' ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join(' | ')} |`;
  const rule = `| ${widths.map((w, i) => (align[i] === 'r' ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |`;
  return [line(cells[0]!), rule, ...cells.slice(1).map(line)].join('\n');
}

/** The report for one agent; `failing` is the cases that are not OK or INFORMATIONAL. */
export function renderAgent(results: AgentResults, path: string): { text: string; failing: CaseResult[] } {
  const { rows, total } = groupRows(results);
  const failing = results.cases.filter((c) => !casePasses(c));
  const verdict = failing.length === 0 ? 'PASS' : `FAIL (${failing.length} not OK or INFORMATIONAL)`;
  const lines: string[] = [`## ${results.agent} (${path}): ${total.cases} cases, ${verdict}`, ''];
  const numbers = (row: GroupRow): string[] => [String(row.cases), ...COLUMNS.map((c) => String(row.counts[c]))];
  lines.push(
    table(
      ['Group', 'Name', 'cases', ...COLUMNS],
      [...rows.map((row) => [String(row.group), row.name, ...numbers(row)]), ['', 'Total', ...numbers(total)]],
      ['r', 'l', 'r', ...COLUMNS.map((): 'r' => 'r')],
    ),
  );
  if (failing.length > 0) {
    lines.push('', `Cases not OK or INFORMATIONAL (${failing.length}):`, '');
    lines.push(
      table(
        ['Case', 'behavior', 'behaviorClose', 'remoteCloseCode', 'reportfile'],
        failing.map((c) => [
          c.id,
          c.behavior,
          c.behaviorClose,
          c.remoteCloseCode === null ? '-' : String(c.remoteCloseCode),
          c.reportfile ?? '-',
        ]),
        ['l', 'l', 'l', 'r', 'l'],
      ),
    );
  }
  return { text: lines.join('\n'), failing };
}

const HELP = `Usage: npm run autobahn:check -- PATH [PATH ...]

Checks the index.json an Autobahn|Testsuite run writes (reports/servers/index.json for the
fuzzingclient run against the echo server, reports/clients/index.json for the fuzzingserver run
the client driver took part in; a directory stands for its index.json).

Prints, per agent, the number of cases per group and verdict, then every case that is not OK or
INFORMATIONAL. Exit code: 0 every case OK or INFORMATIONAL, 1 otherwise (NON-STRICT and
UNIMPLEMENTED included), 2 a file missing, unreadable, malformed or empty.

  -h, --help   this text
`;

export interface Output {
  out: (text: string) => void;
  err: (text: string) => void;
}

const CONSOLE: Output = { out: (text) => console.log(text), err: (text) => console.error(text) };

/** The command line. Returns the exit code. */
export function main(argv: string[] = process.argv.slice(2), io: Output = CONSOLE): number {
  let paths: string[];
  let help: boolean | undefined;
  try {
    const parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { help: { type: 'boolean', short: 'h' } },
    });
    paths = parsed.positionals;
    help = parsed.values.help;
  } catch (error) {
    io.err(`${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (help === true) {
    io.out(HELP);
    return 0;
  }
  if (paths.length === 0) {
    io.err(`no report given\n\n${HELP}`);
    return 2;
  }

  let exit = 0;
  const summary: string[] = [];
  for (const path of paths) {
    let agents: AgentResults[];
    try {
      agents = readIndex(path);
    } catch (error) {
      if (!(error instanceof ReportError)) throw error;
      io.err(`error: ${error.message}`);
      summary.push(`ERROR ${path}: unusable, see above`);
      exit = 2;
      continue;
    }
    for (const agent of agents) {
      const { text, failing } = renderAgent(agent, path);
      io.out(`${text}\n`);
      if (failing.length > 0) exit = Math.max(exit, 1);
      summary.push(
        failing.length === 0
          ? `PASS  ${path}, ${agent.agent}: all ${agent.cases.length} cases OK or INFORMATIONAL`
          : `FAIL  ${path}, ${agent.agent}: ${failing.length} of ${agent.cases.length} cases not OK or INFORMATIONAL`,
      );
    }
  }
  io.out(summary.join('\n'));
  return exit;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main();
}
