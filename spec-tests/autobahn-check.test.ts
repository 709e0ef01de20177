/**
 * autobahn/check.ts (`npm run autobahn:check`), run as a child process on index.json files written
 * here the way Autobahn|Testsuite writes them: exit codes, the per-group table and the list of
 * cases that are not OK or INFORMATIONAL.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ALL_CASES, FULL_GROUPS } from './helpers/autobahn-cases.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Entry {
  behavior: string;
  behaviorClose: string;
  duration: number;
  remoteCloseCode: number | null;
  reportfile: string;
}

function entry(
  agent: string,
  id: string,
  behavior = 'OK',
  behaviorClose = behavior,
  remoteCloseCode: number | null = 1000,
): Entry {
  return {
    behavior,
    behaviorClose,
    duration: 3,
    remoteCloseCode,
    reportfile: `${agent}_case_${id.replaceAll('.', '_')}.json`,
  };
}

/** The cases of one agent, with some overridden; keys in the order the suite writes them (sorted as strings). */
function agentCases(
  agent: string,
  ids: readonly string[],
  overrides: Record<string, Partial<Entry>> = {},
): Record<string, Entry> {
  const cases: Record<string, Entry> = {};
  for (const id of [...ids].sort()) cases[id] = { ...entry(agent, id), ...overrides[id] };
  return cases;
}

/** The suite writes json.dumps(..., sort_keys=True, indent=3). */
function indexJson(agents: Record<string, Record<string, Entry>>): string {
  return JSON.stringify(agents, null, 3);
}

let dir: string;
let fileCount = 0;

function fixture(text: string, name = 'index.json'): string {
  const sub = join(dir, `f${++fileCount}`);
  mkdirSync(sub);
  const path = join(sub, name);
  writeFileSync(path, text);
  return path;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  args: string[],
  command: string = process.execPath,
  prefix: string[] = ['--import', 'tsx', 'autobahn/check.ts'],
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...prefix, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill(), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The cells of a Markdown table row: "| a | b |" -> ["a", "b"]. */
function cells(line: string): string[] {
  return line
    .slice(1, -1)
    .split('|')
    .map((cell) => cell.trim());
}

interface Section {
  heading: string;
  /** Group number (or "Total") -> column name -> cell. */
  groups: Map<string, Record<string, string>>;
  /** The rows of the failing-cases table, as cells. */
  failing: string[][];
}

/** Splits the output into one section per agent ("## ..." headings) and reads its two tables. */
function sections(stdout: string): Section[] {
  const result: Section[] = [];
  const blocks = stdout.split(/^(?=## )/m).filter((block) => block.startsWith('## '));
  for (const block of blocks) {
    const lines = block.split('\n');
    const tables: string[][] = [];
    let current: string[] | null = null;
    for (const line of lines) {
      if (line.startsWith('|')) {
        if (current === null) tables.push((current = []));
        current.push(line);
      } else {
        current = null;
      }
    }
    const groups = new Map<string, Record<string, string>>();
    const [groupTable, failingTable] = tables;
    assert.ok(groupTable !== undefined, `no table in:\n${block}`);
    const header = cells(groupTable[0]!);
    for (const line of groupTable.slice(2)) {
      const row = cells(line);
      const record = Object.fromEntries(header.map((name, i) => [name, row[i]!]));
      groups.set(record.Group === '' ? record.Name! : record.Group!, record);
    }
    result.push({
      heading: lines[0]!,
      groups,
      failing: failingTable === undefined ? [] : failingTable.slice(2).map(cells),
    });
  }
  return result;
}

/** The counts of one group row, as numbers. */
function counts(section: Section, group: string): Record<string, number> {
  const row = section.groups.get(group);
  assert.ok(row !== undefined, `no row for group ${group}`);
  const numbers: Record<string, number> = {};
  for (const column of ['cases', 'OK', 'INFORMATIONAL', 'NON-STRICT', 'UNIMPLEMENTED', 'FAILED', 'other'])
    numbers[column] = Number(row[column]);
  return numbers;
}

function only(section: Section, group: string, column: string, n: number, cases: number): void {
  const expected: Record<string, number> = {
    cases,
    OK: 0,
    INFORMATIONAL: 0,
    'NON-STRICT': 0,
    UNIMPLEMENTED: 0,
    FAILED: 0,
    other: 0,
  };
  expected[column] = n;
  if (column !== 'OK') expected.OK = cases - n;
  assert.deepEqual(counts(section, group), expected, `group ${group}`);
}

describe('autobahn:check, the Autobahn|Testsuite report checker', () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'wsrfc-autobahn-check-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('fixture sanity: the full case list has the 517 cases of the suite', () => {
    assert.equal(ALL_CASES.length, 517);
    assert.equal(new Set(ALL_CASES).size, 517);
  });

  it('passes a full run with every case OK: one row per group with its count, exit 0', async () => {
    const path = fixture(indexJson({ wsrfc: agentCases('wsrfc', ALL_CASES) }));
    const { code, stdout, stderr } = await run([path]);
    assert.equal(code, 0, `stdout: ${stdout}\nstderr: ${stderr}`);
    const [section, ...rest] = sections(stdout);
    assert.equal(rest.length, 0);
    assert.match(section!.heading, /wsrfc/);
    assert.deepEqual([...section!.groups.keys()], [...Object.keys(FULL_GROUPS), 'Total']);
    for (const [group, n] of Object.entries(FULL_GROUPS)) only(section!, group, 'OK', n, n);
    only(section!, 'Total', 'OK', 517, 517);
    assert.equal(section!.groups.get('1')!.Name, 'Framing');
    assert.equal(section!.groups.get('6')!.Name, 'UTF-8 Handling');
    assert.match(section!.groups.get('13')!.Name!, /Compression/);
    assert.deepEqual(section!.failing, []);
    assert.match(stdout, /^PASS\b.*wsrfc.*517/m);
    assert.equal(stderr, '');
  });

  it('passes when the only cases that are not OK are INFORMATIONAL (7.1.6, 7.13.1, 7.13.2)', async () => {
    const informational = { behavior: 'INFORMATIONAL', behaviorClose: 'INFORMATIONAL' };
    const path = fixture(
      indexJson({
        wsrfc: agentCases('wsrfc', ALL_CASES, {
          '7.1.6': informational,
          '7.13.1': informational,
          '7.13.2': informational,
        }),
      }),
    );
    const { code, stdout, stderr } = await run([path]);
    assert.equal(code, 0, `stdout: ${stdout}\nstderr: ${stderr}`);
    const [section] = sections(stdout);
    only(section!, '7', 'INFORMATIONAL', 3, 37);
    only(section!, 'Total', 'INFORMATIONAL', 3, 517);
    assert.deepEqual(section!.failing, []);
  });

  it('passes a report whose cases are all INFORMATIONAL', async () => {
    const ids = ['7.1.6', '7.13.1', '7.13.2'];
    const path = fixture(
      indexJson({
        wsrfc: agentCases(
          'wsrfc',
          ids,
          Object.fromEntries(ids.map((id) => [id, { behavior: 'INFORMATIONAL', behaviorClose: 'INFORMATIONAL' }])),
        ),
      }),
    );
    const { code, stdout } = await run([path]);
    assert.equal(code, 0, stdout);
    const [section] = sections(stdout);
    assert.deepEqual(counts(section!, 'Total'), {
      cases: 3,
      OK: 0,
      INFORMATIONAL: 3,
      'NON-STRICT': 0,
      UNIMPLEMENTED: 0,
      FAILED: 0,
      other: 0,
    });
  });

  it('fails on one NON-STRICT case, counts it in its group and lists it with both values', async () => {
    const path = fixture(
      indexJson({
        wsrfc: agentCases('wsrfc', ALL_CASES, {
          '6.4.3': { behavior: 'NON-STRICT', behaviorClose: 'OK', remoteCloseCode: 1007 },
        }),
      }),
    );
    const { code, stdout, stderr } = await run([path]);
    assert.equal(code, 1, `stdout: ${stdout}\nstderr: ${stderr}`);
    const [section] = sections(stdout);
    only(section!, '6', 'NON-STRICT', 1, 145);
    only(section!, 'Total', 'NON-STRICT', 1, 517);
    assert.deepEqual(section!.failing, [['6.4.3', 'NON-STRICT', 'OK', '1007', 'wsrfc_case_6_4_3.json']]);
    assert.match(stdout, /^FAIL\b.*wsrfc.*1 of 517/m);
  });

  it('fails on one UNIMPLEMENTED case (compression not negotiated)', async () => {
    const path = fixture(
      indexJson({
        wsrfc: agentCases('wsrfc', ALL_CASES, { '13.3.1': { behavior: 'UNIMPLEMENTED', behaviorClose: 'OK' } }),
      }),
    );
    const { code, stdout } = await run([path]);
    assert.equal(code, 1, stdout);
    const [section] = sections(stdout);
    only(section!, '13', 'UNIMPLEMENTED', 1, 126);
    only(section!, '12', 'OK', 90, 90);
    assert.deepEqual(section!.failing, [['13.3.1', 'UNIMPLEMENTED', 'OK', '1000', 'wsrfc_case_13_3_1.json']]);
  });

  it('fails on a case whose behaviorClose is FAILED although its behavior is OK', async () => {
    const path = fixture(
      indexJson({
        wsrfc: agentCases('wsrfc', ALL_CASES, {
          '5.1': { behavior: 'OK', behaviorClose: 'FAILED', remoteCloseCode: null },
        }),
      }),
    );
    const { code, stdout } = await run([path]);
    assert.equal(code, 1, stdout);
    const [section] = sections(stdout);
    only(section!, '5', 'FAILED', 1, 20);
    assert.deepEqual(section!.failing, [['5.1', 'OK', 'FAILED', '-', 'wsrfc_case_5_1.json']]);
  });

  it('counts the close-only verdicts (WRONG CODE, UNCLEAN, FAILED BY CLIENT) as "other" failures; FAILED wins over them', async () => {
    const path = fixture(
      indexJson({
        wsrfc: agentCases('wsrfc', ALL_CASES, {
          '7.9.1': { behavior: 'FAILED', behaviorClose: 'WRONG CODE', remoteCloseCode: 1000 },
          '7.7.2': { behaviorClose: 'WRONG CODE', remoteCloseCode: 1006 },
          '7.3.1': { behaviorClose: 'UNCLEAN' },
          '2.1': { behaviorClose: 'FAILED BY CLIENT' },
        }),
      }),
    );
    const { code, stdout } = await run([path]);
    assert.equal(code, 1, stdout);
    const [section] = sections(stdout);
    assert.deepEqual(counts(section!, '7'), {
      cases: 37,
      OK: 34,
      INFORMATIONAL: 0,
      'NON-STRICT': 0,
      UNIMPLEMENTED: 0,
      FAILED: 1,
      other: 2,
    });
    only(section!, '2', 'other', 1, 11);
    assert.deepEqual(
      section!.failing.map((row) => row.slice(0, 3)),
      [
        ['2.1', 'OK', 'FAILED BY CLIENT'],
        ['7.3.1', 'OK', 'UNCLEAN'],
        ['7.7.2', 'OK', 'WRONG CODE'],
        ['7.9.1', 'FAILED', 'WRONG CODE'],
      ],
    );
  });

  it('lists failing cases in numeric order (12.1.9 before 12.1.10, 2.1 before 10.1.1)', async () => {
    const failed = { behavior: 'FAILED', behaviorClose: 'OK' };
    const ids = ['12.1.10', '12.1.9', '10.1.1', '2.1', '1.1.8', '6.10.1', '6.9.1'];
    const path = fixture(
      indexJson({ wsrfc: agentCases('wsrfc', ALL_CASES, Object.fromEntries(ids.map((id) => [id, failed]))) }),
    );
    const { code, stdout } = await run([path]);
    assert.equal(code, 1, stdout);
    const [section] = sections(stdout);
    assert.deepEqual(
      section!.failing.map((row) => row[0]),
      ['1.1.8', '2.1', '6.9.1', '6.10.1', '10.1.1', '12.1.9', '12.1.10'],
    );
    // The group rows are in numeric order too, whatever order the file has them in.
    assert.deepEqual([...section!.groups.keys()], [...Object.keys(FULL_GROUPS), 'Total']);
  });

  it('reports each agent of a file on its own; one failing agent fails the file', async () => {
    // As in a client run: the driver once without --deflate, once with it.
    const plainCompression = Object.fromEntries(
      ALL_CASES.filter((id) => /^1[23]\./.test(id)).map((id) => [
        id,
        { behavior: 'UNIMPLEMENTED', behaviorClose: 'OK' },
      ]),
    );
    const path = fixture(
      indexJson({
        wsrfc: agentCases('wsrfc', ALL_CASES, plainCompression),
        'wsrfc-deflate': agentCases('wsrfc-deflate', ALL_CASES),
      }),
    );
    const { code, stdout } = await run([path]);
    assert.equal(code, 1, stdout);
    const all = sections(stdout);
    assert.equal(all.length, 2);
    const plain = all.find((s) => /^## wsrfc \(/.test(s.heading));
    const deflate = all.find((s) => /^## wsrfc-deflate \(/.test(s.heading));
    assert.ok(plain !== undefined && deflate !== undefined, stdout);
    only(plain, '12', 'UNIMPLEMENTED', 90, 90);
    only(plain, '13', 'UNIMPLEMENTED', 126, 126);
    only(plain, 'Total', 'UNIMPLEMENTED', 216, 517);
    assert.equal(plain.failing.length, 216);
    assert.ok(plain.failing.every((row) => row[1] === 'UNIMPLEMENTED' && row[4]!.startsWith('wsrfc_case_1')));
    only(deflate, 'Total', 'OK', 517, 517);
    assert.deepEqual(deflate.failing, []);
    assert.match(stdout, /^FAIL\b.*, wsrfc: 216 of 517/m);
    assert.match(stdout, /^PASS\b.*, wsrfc-deflate: all 517/m);
  });

  it('passes a file with two agents that both pass', async () => {
    const path = fixture(indexJson({ a: agentCases('a', ['1.1.1', '2.1']), b: agentCases('b', ['1.1.1', '2.1']) }));
    const { code, stdout } = await run([path]);
    assert.equal(code, 0, stdout);
    assert.equal(sections(stdout).length, 2);
  });

  describe('unusable input: exit 2 and a message naming the file', () => {
    const cases: [string, string, RegExp][] = [
      ['malformed JSON', '{ "wsrfc": { "1.1.1": { "behavior": "OK", ', /is not valid JSON/],
      ['an empty file', '', /is empty/],
      ['whitespace only', '\n  \n', /is empty/],
      ['no agents', '{}', /no agents/],
      ['an array', '[]', /expected an object of agents.*an array/],
      ['null', 'null', /expected an object of agents.*null/],
      ['an agent without cases', '{ "wsrfc": {} }', /agent "wsrfc" has no cases/],
      ['an agent that is not an object', '{ "wsrfc": [1, 2] }', /agent "wsrfc": expected an object of cases/],
      [
        'a case without behavior',
        '{ "wsrfc": { "1.1.1": { "behaviorClose": "OK" } } }',
        /case "1\.1\.1": "behavior" should be a string/,
      ],
      [
        'a case without behaviorClose',
        '{ "wsrfc": { "1.1.1": { "behavior": "OK" } } }',
        /"behaviorClose" should be a string/,
      ],
      [
        'a key that is not a case id',
        '{ "wsrfc": { "1.1.x": { "behavior": "OK", "behaviorClose": "OK" } } }',
        /"1\.1\.x": not a case id/,
      ],
    ];
    for (const [what, text, message] of cases) {
      it(what, async () => {
        const path = fixture(text);
        const { code, stdout, stderr } = await run([path]);
        assert.equal(code, 2, `stdout: ${stdout}\nstderr: ${stderr}`);
        assert.match(stderr, message);
        assert.ok(stderr.includes(path), stderr);
        assert.deepEqual(sections(stdout), [], 'no table for an unusable file');
        assert.doesNotMatch(stdout, /^PASS/m);
      });
    }

    it('a missing file', async () => {
      const path = join(dir, 'no-such-dir', 'index.json');
      const { code, stdout, stderr } = await run([path]);
      assert.equal(code, 2, `stdout: ${stdout}\nstderr: ${stderr}`);
      assert.match(stderr, /does not exist/);
      assert.ok(stderr.includes(path), stderr);
      assert.doesNotMatch(stdout, /^PASS/m);
    });

    it('no file given: usage, exit 2', async () => {
      const { code, stderr } = await run([]);
      assert.equal(code, 2);
      assert.match(stderr, /Usage: npm run autobahn:check/);
    });

    it('an unusable file fails the run even when another one passes', async () => {
      const good = fixture(indexJson({ wsrfc: agentCases('wsrfc', ['1.1.1']) }));
      const bad = fixture('{');
      const { code, stdout, stderr } = await run([good, bad]);
      assert.equal(code, 2, `stdout: ${stdout}\nstderr: ${stderr}`);
      assert.equal(sections(stdout).length, 1, 'the good file is still reported');
      assert.match(stderr, /is not valid JSON/);
    });
  });

  it('takes a report directory for the index.json in it', async () => {
    const path = fixture(indexJson({ wsrfc: agentCases('wsrfc', ['1.1.1', '1.1.2']) }));
    const { code, stdout } = await run([join(path, '..')]);
    assert.equal(code, 0, stdout);
    only(sections(stdout)[0]!, 'Total', 'OK', 2, 2);
  });

  it('runs through the package script: npm run autobahn:check -- PATH keeps the exit code', async () => {
    const path = fixture(
      indexJson({ wsrfc: agentCases('wsrfc', ['1.1.1', '6.4.3'], { '6.4.3': { behavior: 'NON-STRICT' } }) }),
    );
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const { code, stdout } = await run(['run', '--silent', 'autobahn:check', '--', path], npm, []);
    assert.equal(code, 1, stdout);
    assert.deepEqual(
      sections(stdout)[0]!.failing.map((row) => row.slice(0, 3)),
      [['6.4.3', 'NON-STRICT', 'OK']],
    );
  });
});
