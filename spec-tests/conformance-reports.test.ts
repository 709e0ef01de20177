/**
 * The conformance command (conformanceMain) end to end, on a few cases: its reports (index.json in
 * the suite's shape, which `npm run autobahn:check` reads as it reads the suite's; one JSON file per
 * case with what was sent and received; one self-contained HTML page with each case's description,
 * expectation, frames and reasons), its terminal summary, `--expect`, client mode driven by
 * autobahn/client.ts, and its exit codes, usage errors included.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { main as check, readIndex } from '../autobahn/check.js';
import { runDriver } from '../autobahn/client.js';
import { conformanceMain, HELP } from '../src/conformance/main.js';
import { killChildren, wsrfc } from './helpers/cli-process.js';
import { startFlawedEchoServer, type FlawedServer } from './helpers/flawed-echo-server.js';

const CASES = '1.1.1,2.2,5.6,6.4.1,7.1.6,7.9.1,9.7.1,12.1.1';

let dir: string;
let server: FlawedServer;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wsrfc-conformance-'));
  // Correct but for its pongs: some cases pass, some fail, 12.1.1 compresses.
  server = await startFlawedEchoServer({ deflate: true, pongPayload: (p) => Buffer.concat([p, Buffer.from('!')]) });
});
after(async () => {
  killChildren();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Output {
  code: number;
  out: string;
  err: string;
}

async function command(argv: string[]): Promise<Output> {
  let out = '';
  let err = '';
  // No time limit of its own: the engine's deadlines end every case (a run here is a few cases).
  const code = await conformanceMain(argv, { out: (text) => (out += text), err: (text) => (err += text) });
  return { code, out, err };
}

describe('conformance server URL: reports, summary, exit code', () => {
  let run: Output;
  let report: string;
  before(async () => {
    report = join(dir, 'servers');
    run = await command(['server', server.url, '--cases', CASES, '--report', report, '--agent', 'Flawed/1.0']);
  });

  it('exits 1 when a case is not OK or INFORMATIONAL, and says which in a summary table', () => {
    assert.equal(run.code, 1, run.err);
    assert.match(run.out, /Testing the server at ws:\/\/127\.0\.0\.1:\d+\/: 8 cases/);
    assert.match(run.out, /## Flawed\/1\.0: 8 cases, 2 not OK or INFORMATIONAL/);
    assert.match(run.out, /\|\s+2 \| Pings\/Pongs\s+\|\s+1 \|\s+0 \|\s+0 \|\s+0 \|\s+0 \|\s+1 \|\s+0 \|/);
    assert.match(run.out, /2\.2 +FAILED \/ OK/);
    assert.match(run.out, /FAIL: 2 of 8 cases not OK or INFORMATIONAL/);
  });

  it("writes index.json in the suite's shape, which autobahn:check reads", () => {
    const index = JSON.parse(readFileSync(join(report, 'index.json'), 'utf8')) as Record<
      string,
      Record<string, unknown>
    >;
    assert.deepEqual(Object.keys(index), ['Flawed/1.0']);
    const cases = index['Flawed/1.0']!;
    assert.deepEqual(Object.keys(cases), CASES.split(','));
    assert.deepEqual(cases['1.1.1'], {
      behavior: 'OK',
      behaviorClose: 'OK',
      duration: (cases['1.1.1'] as { duration: number }).duration,
      remoteCloseCode: 1000,
      reportfile: 'flawed_1_0_case_1_1_1.json',
    });
    assert.equal(typeof (cases['1.1.1'] as { duration: unknown }).duration, 'number');
    const [agent] = readIndex(report);
    assert.equal(agent!.agent, 'Flawed/1.0');
    assert.equal(agent!.cases.length, 8);
    let printed = '';
    assert.equal(check([report], { out: (t) => (printed += t), err: (t) => (printed += t) }), 1);
    assert.match(printed, /FAIL {2}.*Flawed\/1\.0: 2 of 8 cases not OK or INFORMATIONAL/);
  });

  it('writes a JSON file per case with what was sent and received, and why', () => {
    const files = readdirSync(report).filter((f) => /_case_.*\.json$/.test(f));
    assert.equal(files.length, 8);
    const ping = JSON.parse(readFileSync(join(report, 'flawed_1_0_case_2_2.json'), 'utf8'));
    assert.equal(ping.id, '2.2');
    assert.equal(ping.behavior, 'FAILED');
    assert.deepEqual(ping.expected.OK, [{ type: 'pong', length: 13, payload: 'Hello, world!' }]);
    assert.deepEqual(ping.received, [{ type: 'pong', length: 14, payload: 'Hello, world!!' }]);
    assert.match(ping.httpRequest, /^GET \/ HTTP\/1\.1\r\n/);
    assert.match(ping.httpResponse, /^HTTP\/1\.1 101 /);
    const frames = ping.wirelog
      .filter((e: { kind: string }) => e.kind === 'frame')
      .map((e: { frame: unknown }) => e.frame);
    const sent = frames.find((f: { dir: string; opcodeName: string }) => f.dir === 'tx' && f.opcodeName === 'ping');
    assert.equal(sent.masked, true);
    assert.equal(sent.length, 13);
    assert.match(sent.header, /^898d[0-9a-f]{8}$/);
    const answered = frames.find((f: { dir: string; opcodeName: string }) => f.dir === 'rx' && f.opcodeName === 'pong');
    assert.equal(answered.text, null);
    assert.equal(answered.payload, Buffer.from('Hello, world!!').toString('hex'));
    const compressed = JSON.parse(readFileSync(join(report, 'flawed_1_0_case_12_1_1.json'), 'utf8'));
    assert.equal(compressed.extensions, 'permessage-deflate');
    assert.equal(typeof compressed.trafficStats.outgoingCompressionRatio, 'number');
  });

  it('writes one self-contained HTML page: the grid, and per case its description, expectation, frames and reasons', () => {
    const html = readFileSync(join(report, 'index.html'), 'utf8');
    // Nothing fetched: no external script, style sheet, image or font.
    assert.doesNotMatch(html, /<(script|img|link|iframe)[^>]+(src|href)=/i);
    assert.doesNotMatch(html, /@import|url\(/i);
    assert.match(html, /<table class="grid">/);
    for (const id of CASES.split(','))
      assert.match(html, new RegExp(`<details class="case" id="a0-${id.replace(/\./g, '\\.')}"`));
    const ping = html.slice(html.indexOf('id="a0-2.2"'), html.indexOf('</details>', html.indexOf('id="a0-2.2"')));
    assert.match(ping, /<b>Description\.<\/b> A ping with a short text payload\./);
    assert.match(ping, /<b>Expectation\.<\/b> A pong with the same payload, then a clean close with 1000\./);
    assert.match(ping, /<b>Verdict\.<\/b> FAILED: Actual events differ from any expected\./);
    assert.match(ping, /<td>9 ping<\/td>/);
    assert.match(ping, /<td>10 pong<\/td>/);
    // At its deadline the case closes without a code, as the suite does.
    assert.match(ping, /close  no status code/);
  });

  it('--expect: exits 0 when each verdict is the one the file gives, 1 with the differences otherwise', async () => {
    // The run wrote its verdicts in the form --expect reads; an index.json is read too.
    const golden = readFileSync(join(report, 'flawed_1_0_expected.json'), 'utf8');
    assert.match(golden, /^\{\n {2}"1\.1\.1": \["OK", "OK"\],\n {2}"2\.2": \["FAILED", "OK"\],\n/);
    const fromGolden = await command([
      'server',
      server.url,
      '--cases',
      '2.2',
      '--report',
      join(dir, 'golden'),
      '--expect',
      join(report, 'flawed_1_0_expected.json'),
    ]);
    assert.equal(fromGolden.code, 0, fromGolden.out);
    const expected = join(dir, 'expected.json');
    writeFileSync(expected, readFileSync(join(report, 'index.json')));
    const same = await command([
      'server',
      server.url,
      '--cases',
      CASES,
      '--report',
      join(dir, 'again'),
      '--expect',
      expected,
    ]);
    assert.equal(same.code, 0, same.out);
    assert.match(same.out, /PASS: all 8 verdicts as expected/);
    const index = JSON.parse(readFileSync(expected, 'utf8'));
    index['Flawed/1.0']['2.2'].behavior = 'OK';
    writeFileSync(expected, JSON.stringify(index));
    const differs = await command([
      'server',
      server.url,
      '--cases',
      '2.2',
      '--report',
      join(dir, 'third'),
      '--expect',
      expected,
    ]);
    assert.equal(differs.code, 1);
    assert.match(differs.out, /2\.2: FAILED \/ OK, expected OK \/ OK/);
  });
});

describe('conformance client: the suite endpoints, driven by autobahn/client.ts', () => {
  it('serves the cases, writes the reports on /updateReports, and stops after it with --once', async () => {
    const report = join(dir, 'clients');
    let out = '';
    // The port is known once the listening line is printed: wait for that line, not for a time.
    let listening: (port: number) => void = () => {};
    const port = new Promise<number>((resolve) => (listening = resolve));
    const print = (text: string): void => {
      out += text;
      const match = /at ws:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (match !== null) listening(Number(match[1]));
    };
    const running = conformanceMain(
      ['client', '--port', '0', '--once', '--cases', '1.1.*,2.1,7.1.6', '--report', report],
      { out: print, err: print },
    );
    const first = await Promise.race([port, running.then((code) => `exited with ${code}`)]);
    assert.equal(typeof first, 'number', `${first} before listening: ${out}`);
    const driven = await runDriver({ url: `ws://127.0.0.1:${first}`, agent: 'wsrfc', deflate: true, log: () => {} });
    assert.equal(driven.caseCount, 10);
    assert.equal(await running, 0, out);
    const [agent] = readIndex(report);
    assert.equal(agent!.agent, 'wsrfc');
    assert.equal(agent!.cases.length, 10);
    assert.match(out, /PASS: all 10 cases OK or INFORMATIONAL/);
  });
});

describe('usage', () => {
  it('`wsrfc conformance` is this command: its --help, and its exit code 2 for a wrong command line', async () => {
    const help = await wsrfc(['conformance', '--help'], null).finished();
    assert.equal(help.code, 0, help.stderr);
    assert.equal(help.stdout, HELP);
    const wrong = await wsrfc(['conformance', 'server'], null).finished();
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /needs the URL/);
  });

  it('--help prints the usage and exits 0', async () => {
    const help = await command(['--help']);
    assert.equal(help.code, 0);
    assert.equal(help.out, HELP);
  });

  it('exits 2, with the reason and the usage, for a wrong command line', async () => {
    for (const [argv, reason] of [
      [[], /say what to test/],
      [['server'], /needs the URL/],
      [['server', 'http://x/'], /not a ws:\/\/ or wss:\/\/ URL/],
      [['server', 'ws://x/', '--port', '1'], /--port is for client mode/],
      [['client', '--agent', 'a'], /--agent is for server mode/],
      [['client', 'extra'], /unexpected argument extra/],
      [['server', 'ws://x/', '--cases', '8.*'], /--cases: no case matches "8\.\*"/],
      [['server', 'ws://x/', '--parallel', '0'], /--parallel must be a number >= 1/],
      [['server', 'ws://x/', '--expect', join(dir, 'missing.json')], /--expect: ENOENT/],
      [['server', 'ws://x/', '--bogus'], /Unknown option '--bogus'/],
    ] as const) {
      const run = await command([...argv]);
      assert.equal(run.code, 2, argv.join(' '));
      assert.match(run.err, reason);
      assert.match(run.err, /Usage: wsrfc conformance/);
    }
  });
});
