/**
 * Our own echo server and our own client through all 517 cases of Autobahn|Testsuite, run by the
 * conformance engine (src/conformance/, which shares none of the library's code), checked against
 * the verdicts checked in at autobahn/expected/ (514 OK and 3 INFORMATIONAL each way, as the real
 * suite gives them): any change of verdict fails here.
 *
 * The server runs as a user runs it: the echo CLI (src/cli/echo.ts, permessage-deflate on) in a
 * process of its own, tested by `npm run wsrfc -- conformance server URL --expect ...` in another. The
 * client is our WebSocket client with the options of the Autobahn driver (autobahn/client.ts: its
 * CASE_OPTIONS, compression on), echoing every message, eight cases at a time (the driver runs them
 * one by one; conformance-reports.test.ts runs it, unchanged, against the same server), against
 * `npm run wsrfc -- conformance client --once --expect ...` in a process of its own. The two directions
 * run at the same time: most of a run is zlib work in several processes, which two cores share
 * better than one.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { CASE_OPTIONS } from '../autobahn/client.js';
import { inSlots } from '../src/conformance/fuzzing-client.js';
import { WebSocket } from '../src/index.js';
import { withTimeout } from './helpers/peer/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** A full run takes minutes; on a busy machine several times as long. */
const RUN_LIMIT = 40 * 60_000;

const children: ChildProcess[] = [];
let dir: string;
before(() => (dir = mkdtempSync(join(tmpdir(), 'wsrfc-conformance-'))));
after(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface Child {
  child: ChildProcess;
  /** The last 20,000 characters it printed. */
  output: () => string;
  exited: Promise<number | null>;
}

/** A program of the repository in a child process; its output read (so it never blocks on a full pipe). */
function start(args: string[]): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  const keep = (text: string): void => {
    output = (output + text).slice(-20_000);
  };
  child.stdout!.setEncoding('utf8').on('data', keep);
  child.stderr!.setEncoding('utf8').on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** Resolves with the first match of `pattern` in what `child` prints. */
function printed(child: Child, pattern: RegExp, what: string): Promise<RegExpExecArray> {
  return withTimeout(
    (async () => {
      for (;;) {
        const match = pattern.exec(child.output());
        if (match !== null) return match;
        if (child.child.exitCode !== null) throw new Error(`exited before ${what}:\n${child.output()}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })(),
    60_000,
    what,
  );
}

describe('our echo server and our client through all 517 cases, against autobahn/expected/', { concurrency: 2 }, () => {
  it('the echo server (the echo CLI) gives the verdicts of wsrfc-server.json', { timeout: RUN_LIMIT }, async () => {
    const echo = start(['src/cli/echo.ts', '--host', '127.0.0.1', '--port', '0', '--no-explorer']);
    const [, url] = await printed(echo, /listening on (ws:\/\/\S+)/, 'the echo server to listen');
    const run = start([
      'src/cli/wsrfc.ts',
      'conformance',
      'server',
      url!,
      '--report',
      join(dir, 'servers'),
      '--expect',
      'autobahn/expected/wsrfc-server.json',
    ]);
    assert.equal(await run.exited, 0, run.output());
    assert.match(run.output(), /PASS: all 517 verdicts as expected/);
    echo.child.kill('SIGTERM');
    assert.equal(await echo.exited, 0, echo.output());
  });

  it('the client gives the verdicts of wsrfc-client.json', { timeout: RUN_LIMIT }, async () => {
    const tester = start([
      'src/cli/wsrfc.ts',
      'conformance',
      'client',
      '--port',
      '0',
      '--once',
      '--report',
      join(dir, 'clients'),
      '--expect',
      'autobahn/expected/wsrfc-client.json',
    ]);
    const [, port] = await printed(
      tester,
      /to clients at ws:\/\/127\.0\.0\.1:(\d+)/,
      'the conformance server to listen',
    );
    const base = `ws://127.0.0.1:${port}`;
    const cases = Array.from({ length: 517 }, (_, i) => ({ n: i + 1, weight: 1 }));
    await inSlots(cases, 8, ({ n }) => session(`${base}/runCase?case=${n}&agent=wsrfc`, true));
    await session(`${base}/updateReports?agent=wsrfc`, false);
    assert.equal(await tester.exited, 0, tester.output());
    assert.match(tester.output(), /PASS: all 517 verdicts as expected/);
  });
});

/** One connection of our client, echoing every message as it came, until it closes. */
function session(url: string, deflate: boolean): Promise<void> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, [], { ...CASE_OPTIONS, ...(deflate ? { perMessageDeflate: true } : {}) });
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
    socket.on('error', () => {});
    socket.once('close', () => resolve());
  });
}
