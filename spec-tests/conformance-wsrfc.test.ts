/**
 * Our own echo server and our own client through all 517 cases of Autobahn|Testsuite, run by the
 * conformance engine (src/conformance/, which shares none of the library's code), checked against
 * the verdicts checked in at autobahn/expected/ (514 OK and 3 INFORMATIONAL each way, as the real
 * suite gives them): any change of verdict fails here.
 *
 * Both run as the project runs them: the echo CLI (src/cli/echo.ts, permessage-deflate on) in a
 * process of its own, and the client through the Autobahn driver (`npm run autobahn:client --
 * --deflate`), unchanged, in another.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { allCases } from '../src/conformance/catalogue.js';
import { differences, readExpectations } from '../src/conformance/expect.js';
import { ClientTester } from '../src/conformance/fuzzing-server.js';
import { testServer } from '../src/conformance/fuzzing-client.js';
import { withTimeout } from './helpers/peer/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const EXPECTED = (name: string): string => `${ROOT}autobahn/expected/${name}.json`;
/** A full run takes minutes; on a busy machine several times as long. */
const RUN_LIMIT = 25 * 60_000;

const children: ChildProcess[] = [];
after(() => {
  for (const child of children) child.kill('SIGKILL');
});

/** A child process of the repository; its output read (so it never blocks on a full pipe) and kept. */
function start(args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (output = (output + text).slice(-20_000)));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (output = (output + text).slice(-20_000)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

describe('our echo server (the echo CLI) and our client (the Autobahn driver), all 517 cases each', () => {
  it('the echo server gives the verdicts of autobahn/expected/wsrfc-server.json', { timeout: RUN_LIMIT }, async () => {
    const cli = start(['src/cli/echo.ts', '--host', '127.0.0.1', '--port', '0', '--no-explorer']);
    const url = await withTimeout(
      (async () => {
        for (;;) {
          const match = /listening on (ws:\/\/\S+)/.exec(cli.output());
          if (match !== null) return match[1]!;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })(),
      60_000,
      'the echo server to listen',
    );
    const results = await testServer({ url, cases: allCases() });
    assert.equal(results.length, 517);
    assert.deepEqual(differences(results, readExpectations(EXPECTED('wsrfc-server'))), []);
    cli.child.kill('SIGTERM');
    assert.equal(await cli.exited, 0, cli.output());
  });

  it('the client gives the verdicts of autobahn/expected/wsrfc-client.json', { timeout: RUN_LIMIT }, async () => {
    const tester = new ClientTester({ cases: allCases() });
    const { port } = await tester.listen(0);
    try {
      const driver = start(['autobahn/client.ts', '--url', `ws://127.0.0.1:${port}`, '--agent', 'wsrfc', '--deflate']);
      assert.equal(await driver.exited, 0, driver.output());
      assert.match(driver.output(), /fuzzingserver at ws:\/\/127\.0\.0\.1:\d+: 517 cases/);
      const results = [...(tester.results.get('wsrfc')?.values() ?? [])];
      assert.equal(results.length, 517);
      assert.deepEqual(differences(results, readExpectations(EXPECTED('wsrfc-client'))), []);
    } finally {
      await tester.close();
    }
  });
});
