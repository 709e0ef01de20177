/**
 * The Autobahn|Testsuite client driver (autobahn/client.ts) against a small fake fuzzingserver
 * built on our server: /getCaseCount, /runCase (sends a few messages at once, checks they come
 * back exactly, closes) and /updateReports.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from '../src/index.js';
import { main, parseCaseList, runDriver } from '../autobahn/client.js';
import { closedPort } from './helpers/peer/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Outgoing {
  data: Buffer | string;
  binary: boolean;
  fragmentSize?: number;
}

/** What each fake case sends, and how it closes. */
const CASES: { messages: Outgoing[]; closeCode: number; ping?: boolean }[] = [
  {
    messages: [
      { data: 'Hello, Autobahn', binary: false },
      { data: Buffer.from([0, 1, 2, 254, 255]), binary: true },
    ],
    closeCode: 1000,
  },
  {
    messages: [
      { data: 'fragmented ü message €', binary: false, fragmentSize: 3 },
      { data: Buffer.alloc(0), binary: true },
      { data: '', binary: false },
      // Text that looks like binary and binary that looks like text: the type must be kept.
      { data: Buffer.from('I am binary'), binary: true },
    ],
    closeCode: 4002,
  },
  {
    messages: [
      { data: Buffer.from(Buffer.alloc(1024 * 1024).map((_, i) => i & 0xff)), binary: true },
      { data: 'x'.repeat(65536), binary: false, fragmentSize: 10_000 },
    ],
    closeCode: 1000,
    ping: true,
  },
];

interface CaseRun {
  case: number;
  agent: string | null;
  /** Every message came back exactly (type and bytes), in order. */
  ok: boolean;
  pong: boolean;
  detail: string;
}

interface Fake {
  server: WebSocketServer;
  url: string;
  requests: string[];
  /** The Sec-WebSocket-Extensions offer of each /runCase request ('' for none). */
  offers: string[];
  runs: CaseRun[];
  reports: (string | null)[];
}

async function startFakeFuzzingServer(caseCount = 3): Promise<Fake> {
  const fake: Fake = {
    server: new WebSocketServer({ pingInterval: 0, perMessageDeflate: true }),
    url: '',
    requests: [],
    offers: [],
    runs: [],
    reports: [],
  };
  fake.server.on('connection', (ws, request) => {
    fake.requests.push(request.url);
    if (request.path === '/getCaseCount') {
      ws.send(String(caseCount));
      ws.close(1000);
    } else if (request.path === '/runCase') {
      fake.offers.push(request.headers['sec-websocket-extensions'] ?? '');
      runCase(ws, Number(request.query.get('case')), request.query.get('agent'), fake);
    } else if (request.path === '/updateReports') {
      fake.reports.push(request.query.get('agent'));
      ws.close(1000);
    } else {
      ws.close(1008, 'unknown path');
    }
  });
  const address = await fake.server.listen(0, '127.0.0.1');
  fake.url = `ws://127.0.0.1:${address.port}`;
  return fake;
}

function runCase(ws: WebSocket, n: number, agent: string | null, fake: Fake): void {
  const spec = CASES[n - 1];
  const run: CaseRun = { case: n, agent, ok: false, pong: false, detail: '' };
  fake.runs.push(run);
  if (spec === undefined) {
    run.detail = `no case ${n}`;
    ws.close(1011);
    return;
  }
  const received: { data: Buffer; isBinary: boolean }[] = [];
  ws.on('pong', () => (run.pong = true));
  ws.on('message', (data, isBinary) => {
    received.push({ data: Buffer.from(data), isBinary });
    if (received.length < spec.messages.length) return;
    run.ok = spec.messages.every((m, i) => {
      const back = received[i]!;
      const bytes = typeof m.data === 'string' ? Buffer.from(m.data) : m.data;
      return back.isBinary === m.binary && back.data.equals(bytes);
    });
    if (!run.ok)
      run.detail = `echo mismatch: ${received.map((r) => `${r.isBinary ? 'binary' : 'text'}:${r.data.length}`).join(', ')}`;
    ws.close(spec.closeCode);
  });
  // Everything at once, right after the handshake, as the fuzzingserver does.
  if (spec.ping === true) ws.ping('autobahn');
  for (const m of spec.messages)
    ws.send(m.data, { binary: m.binary, ...(m.fragmentSize !== undefined ? { fragmentSize: m.fragmentSize } : {}) });
}

describe('autobahn/client.ts against a fake fuzzingserver', () => {
  let fake: Fake;
  before(async () => {
    fake = await startFakeFuzzingServer();
  });
  after(() => fake.server.close());

  it(
    'gets the case count, runs every case echoing exactly, then asks for the reports',
    { timeout: 20_000 },
    async () => {
      fake.requests.length = 0;
      fake.runs.length = 0;
      fake.reports.length = 0;
      const lines: string[] = [];
      const code = await main(['--url', fake.url, '--agent', 'test agent/1'], (line) => lines.push(line));
      assert.equal(code, 0, lines.join('\n'));
      assert.deepEqual(
        fake.runs.map((r) => [r.case, r.agent, r.ok, r.detail]),
        [
          [1, 'test agent/1', true, ''],
          [2, 'test agent/1', true, ''],
          [3, 'test agent/1', true, ''],
        ],
      );
      assert.equal(fake.runs[2]!.pong, true, 'the ping of case 3 was not answered');
      assert.deepEqual(fake.reports, ['test agent/1']);
      // In order: count first, reports last.
      assert.equal(fake.requests[0], '/getCaseCount');
      assert.match(fake.requests.at(-1)!, /^\/updateReports\?agent=test%20agent%2F1$/);
      // One progress line per case: number, close code, clean, duration.
      const caseLines = lines.filter((line) => line.startsWith('case '));
      assert.equal(caseLines.length, 3, lines.join('\n'));
      assert.match(caseLines[0]!, /^case 1\/3: close 1000 clean, 2 message\(s\) echoed, \d+ ms$/);
      assert.match(caseLines[1]!, /^case 2\/3: close 4002 clean, 4 message\(s\) echoed, \d+ ms$/);
      assert.match(caseLines[2]!, /^case 3\/3: close 1000 clean, 2 message\(s\) echoed, \d+ ms$/);
    },
  );

  it('runs only the cases asked for with --cases', { timeout: 20_000 }, async () => {
    fake.runs.length = 0;
    fake.reports.length = 0;
    const lines: string[] = [];
    assert.equal(
      await main(['--url', `${fake.url}/`, '--cases', '2-3'], (line) => lines.push(line)),
      0,
      lines.join('\n'),
    );
    assert.deepEqual(
      fake.runs.map((r) => [r.case, r.agent, r.ok]),
      [
        [2, 'wsrfc', true],
        [3, 'wsrfc', true],
      ],
    );
    assert.deepEqual(fake.reports, ['wsrfc']);

    fake.runs.length = 0;
    const result = await runDriver({ url: fake.url, cases: '3,1', log: () => {} });
    assert.equal(result.caseCount, 3);
    assert.deepEqual(
      result.results.map((r) => [r.case, r.code, r.wasClean]),
      [
        [1, 1000, true],
        [3, 1000, true],
      ],
    );
    assert.deepEqual(
      fake.runs.map((r) => r.case),
      [1, 3],
    );
  });

  it(
    'offers permessage-deflate with --deflate (and only then), echoing compressed messages exactly',
    { timeout: 20_000 },
    async () => {
      fake.runs.length = 0;
      fake.offers.length = 0;
      const lines: string[] = [];
      assert.equal(await main(['--url', fake.url, '--deflate'], (line) => lines.push(line)), 0, lines.join('\n'));
      assert.deepEqual(
        fake.runs.map((r) => [r.case, r.ok]),
        [
          [1, true],
          [2, true],
          [3, true],
        ],
      );
      assert.equal(fake.offers.length, 3);
      assert.ok(
        fake.offers.every((offer) => offer.startsWith('permessage-deflate')),
        fake.offers.join(' | '),
      );
      fake.offers.length = 0;
      assert.equal(await main(['--url', fake.url, '--cases', '1'], () => {}), 0);
      assert.deepEqual(fake.offers, ['']);
    },
  );

  it('parses case lists and refuses bad ones', () => {
    assert.deepEqual(parseCaseList('1-3,7,2', 10), [1, 2, 3, 7]);
    assert.deepEqual(parseCaseList(' 5 ', 10), [5]);
    for (const bad of ['', '0', '3-1', 'a', '1-', '-2', '1..3'])
      assert.throws(() => parseCaseList(bad, 10), RangeError, bad);
    assert.throws(() => parseCaseList('1-11', 10), /does not exist/);
  });

  it('exits with 2 on bad arguments and 1 when the fuzzingserver cannot be reached', { timeout: 10_000 }, async () => {
    const lines: string[] = [];
    assert.equal(await main(['--cases', 'x'], (line) => lines.push(line)), 2);
    assert.equal(await main(['--bogus'], (line) => lines.push(line)), 2);
    assert.equal(await main(['--url', fake.url, '--cases', '4'], (line) => lines.push(line)), 1);
    const port = await closedPort();
    lines.length = 0;
    assert.equal(await main(['--url', `ws://127.0.0.1:${port}`], (line) => lines.push(line)), 1);
    assert.match(lines.join('\n'), /ECONNREFUSED|getCaseCount/);
  });

  it('runs as a script: node --import tsx autobahn/client.ts', { timeout: 20_000 }, async () => {
    fake.runs.length = 0;
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve, reject) => {
        const child = spawn(
          process.execPath,
          ['--import', 'tsx', 'autobahn/client.ts', '--url', fake.url, '--agent', 'spawned', '--cases', '1'],
          {
            cwd: ROOT,
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
        const timer = setTimeout(() => child.kill(), 15_000);
        child.on('error', reject);
        child.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
      },
    );
    assert.equal(code, 0, `stdout: ${stdout}\nstderr: ${stderr}`);
    assert.match(stdout, /^case 1\/3: close 1000 clean/m);
    assert.deepEqual(
      fake.runs.map((r) => [r.case, r.agent, r.ok]),
      [[1, 'spawned', true]],
    );
  });
});
