/**
 * Our own echo server and our own client through Autobahn|Testsuite's cases, run by the conformance
 * engine (src/conformance/, which shares none of the library's code), checked against the verdicts
 * checked in at autobahn/expected/ (514 OK and 3 INFORMATIONAL each way over all 517, as the real
 * suite gives them): any change of verdict fails here.
 *
 * Which cases: groups 1-7, 9 and 10 whole, and of the permessage-deflate groups 12 and 13 two cases
 * of each subgroup (each of the 12 payload kinds and 13 parameter sets, with 16-octet messages and
 * with 8 KiB messages in 256-octet frames), 325 cases. All 517 with CONFORMANCE_FULL=1: each case
 * of groups 12 and 13 echoes a thousand compressed messages, 216 cases and about 11 GB of messages
 * each way, a quarter of an hour on two shared cores, more than npm test can spend on it.
 *
 * The server runs as a user runs it: `wsrfc echo` (permessage-deflate on) in a process of its own,
 * tested by `wsrfc conformance server URL --expect ...` in another. The client is our WebSocket
 * client with the options of the Autobahn driver (autobahn/client.ts: its CASE_OPTIONS, compression
 * on), echoing every message, eight cases at a time (the driver runs them one by one;
 * conformance-reports.test.ts runs it, unchanged, against the same server), against
 * `wsrfc conformance client --once --expect ...` in a process of its own. The two directions run at
 * the same time: most of a run is zlib work in several processes, which two cores share better than one.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CASE_OPTIONS } from '../autobahn/client.js';
import { inSlots } from '../src/conformance/server-runner.js';
import { selectCases } from '../src/conformance/catalogue.js';
import { WebSocket } from '../src/index.js';
import { killChildren, wsrfc } from './helpers/cli-process.js';

const FULL = process.env.CONFORMANCE_FULL === '1';
const CASES = FULL ? '*' : '1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,12.*.1,12.*.11,13.*.1,13.*.11';
const COUNT = selectCases(CASES).length;
/**
 * The engine's deadlines (the suite's waits) times 10 rather than 3: our server and client answer
 * every case at once, so the deadlines only decide 6.4.x (how soon invalid UTF-8 is failed), and the
 * verdicts must not change on a machine so busy that an answer takes seconds. 6.4.x then last 10 s.
 */
const TIME_SCALE = '10';

// No time limit on a run: each program is waited on while it shows signs of life (CPU time, output;
// helpers/alive.ts), and the engine's own deadlines end every case.
let dir: string;
before(() => (dir = mkdtempSync(join(tmpdir(), 'wsrfc-conformance-'))));
after(() => {
  killChildren();
  rmSync(dir, { recursive: true, force: true });
});

describe(
  `our echo server and our client through ${COUNT} cases, against autobahn/expected/`,
  { concurrency: 2 },
  () => {
    it('the echo server (wsrfc echo) gives the verdicts of wsrfc-server.json', async () => {
      const echo = wsrfc(['echo', '--host', '127.0.0.1', '--port', '0', '--no-explorer'], null);
      const [, url] = await echo.waitFor(/listening on (ws:\/\/\S+)/);
      const expect = 'autobahn/expected/wsrfc-server.json';
      const args = [
        'server',
        url!,
        '--cases',
        CASES,
        '--timeout-scale',
        TIME_SCALE,
        '--report',
        join(dir, 'servers'),
        '--expect',
        expect,
      ];
      const run = await wsrfc(['conformance', ...args], null).finished();
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.match(run.stdout, new RegExp(`PASS: all ${COUNT} verdicts as expected`));
      echo.child.kill('SIGTERM');
      assert.equal((await echo.finished()).code, 0, echo.stderr());
    });

    // Streamed, each message is echoed as it arrives; the verdicts must not change. The parse waits
    // for what the echo does on each message's end, so that a frame that fails the connection
    // (3.x, 4.x, 5.15) is read only once the echo before it is complete: without that these cases
    // were NON-STRICT (the close frame cut the echo short).
    it('the echo server with --stream gives the same verdicts (groups 1-7, 9, 10, one case of each compression subgroup)', async () => {
      const cases = '1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,12.*.1,13.*.1';
      const echo = wsrfc(['echo', '--host', '127.0.0.1', '--port', '0', '--no-explorer', '--stream'], null);
      const [, url] = await echo.waitFor(/listening on (ws:\/\/\S+)/);
      const args = ['server', url!, '--cases', cases, '--timeout-scale', TIME_SCALE];
      const report = ['--report', join(dir, 'servers-stream'), '--expect', 'autobahn/expected/wsrfc-server.json'];
      const run = await wsrfc(['conformance', ...args, ...report], null).finished();
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.match(run.stdout, new RegExp(`PASS: all ${selectCases(cases).length} verdicts as expected`));
      echo.child.kill('SIGTERM');
      assert.equal((await echo.finished()).code, 0, echo.stderr());
    });

    it('the client gives the verdicts of wsrfc-client.json', async () => {
      const tester = wsrfc(
        [
          'conformance',
          'client',
          '--port',
          '0',
          '--once',
          '--cases',
          CASES,
          '--timeout-scale',
          TIME_SCALE,
          '--report',
          join(dir, 'clients'),
          '--expect',
          'autobahn/expected/wsrfc-client.json',
        ],
        null,
      );
      const [, port] = await tester.waitFor(/to clients at ws:\/\/127\.0\.0\.1:(\d+)/);
      const base = `ws://127.0.0.1:${port}`;
      const cases = Array.from({ length: COUNT }, (_, i) => ({ n: i + 1, weight: 1 }));
      await inSlots(cases, 8, ({ n }) => session(`${base}/runCase?case=${n}&agent=wsrfc`, true));
      await session(`${base}/updateReports?agent=wsrfc`, false);
      const run = await tester.finished();
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.match(run.stdout, new RegExp(`PASS: all ${COUNT} verdicts as expected`));
    });
  },
);

/** One connection of our client, echoing every message as it came, until it closes. */
function session(url: string, deflate: boolean): Promise<void> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, [], { ...CASE_OPTIONS, ...(deflate ? { perMessageDeflate: true } : {}) });
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
    socket.on('error', () => {});
    socket.once('close', () => resolve());
  });
}
