/**
 * The runtime matrix: the packed package on every runtime the README's "Supported runtimes" table
 * names, each at the version pinned in scripts/runtimes.json and installed into a cache outside the
 * repository by scripts/install-runtimes.mjs (which .ci/run calls before the test command). A
 * runtime that is not installed is skipped, saying why (the reason the installer wrote down).
 *
 * On each of them, from the tarball installed by npm into a fresh consumer project:
 * - the echo round trip of helpers/consumer/round-trip.mjs (a server and a client from the package,
 *   without and with permessage-deflate), loaded with `import` and with `require()`;
 * - on Node 22, 24 and 26: the spec tests of this directory that concern the library itself (see
 *   SPEC_EXCLUDED for the rest and why), through tsx, as `npm test` runs them on Node 20;
 * - on Bun and Deno, which run TypeScript test files differently: the echo CLI from the package's
 *   dist/, run by that runtime, checked from Node by the independent test peer (helpers/peer/):
 *   handshake, framing at each length encoding, fragmentation with a ping in between, close codes
 *   for bad input, and permessage-deflate inflated by the peer's own strict zlib; the `wsrfc`
 *   command (`--version`, and `wsrfc connect` with piped lines against that echo CLI); and what 100
 *   hostile peers can make a server from dist/ on that runtime hold (helpers/hostile-peers.ts).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import {
  ROOT,
  commandFor,
  environmentFor,
  packAndInstall,
  packageJson,
  runtimes,
  type Installed,
  type Runtime,
} from './helpers/package.js';
import { hostilePeerTests } from './helpers/hostile-peers.js';
import {
  Compressor,
  OP,
  RawClient,
  RawServer,
  StrictInflater,
  destroyRawClients,
  negotiated,
} from './helpers/peer/index.js';
import { whileAlive } from './helpers/alive.js';

/**
 * Spec test files not run again on the other Node lines, and why. Everything else in spec-tests/
 * (new files included) runs on Node 22, 24 and 26.
 */
const SPEC_EXCLUDED: Record<string, string> = {
  'runtime-matrix.test.ts': 'this file',
  'package-types.test.ts': 'compiles the package; no runtime behaviour',
  'architecture.test.ts': 'reads the source layout',
  'test-peer.test.ts': "checks the test peer's own code",
  'autobahn-check.test.ts': 'parses Autobahn reports',
  'interop-chromium.test.ts': 'external peer, 30 s of CI time per Node line (runs on Node 20)',
  'interop-python-websockets.test.ts': 'external peer, CI time (runs on Node 20)',
  'interop-autobahn-python.test.ts': 'external peer, 30 s of CI time per Node line (runs on Node 20)',
  'rfc6455-10.4-memory-per-peer.test.ts':
    '100 hostile peers measured by RSS, 30 s per line (runs on Node 20, Bun, Deno)',
  'explorer-chromium.test.ts': 'external peer (Chromium), CI time (runs on Node 20)',
  'interop-chromium-http2.test.ts': 'external peer (Chromium), CI time (runs on Node 20)',
  'scale-redis.test.ts': 'a real redis-server and chat processes, 25 s per line (runs on Node 20)',
  'scale-workers.test.ts': 'node:cluster chat processes, 15 s per line (runs on Node 20)',
  'tour.test.ts': 'reads docs/tour.md against the source layout',
  'conformance-wsrfc.test.ts': '325 Autobahn cases each way, a minute of CI time per line (runs on Node 20)',
  'conformance-ws.test.ts': 'judges the ws package, not ours; a minute of CI time (runs on Node 20)',
  'conformance-flawed-servers.test.ts': 'judges test servers with the conformance engine, a tool (runs on Node 20)',
  'conformance-misbehaving-peers.test.ts': 'the conformance engine against misbehaving peers, a tool (runs on Node 20)',
  'conformance-reports.test.ts': "the conformance command's reports (runs on Node 20)",
};

const SPEC_FILES = readdirSync(join(ROOT, 'spec-tests'))
  .filter((name) => name.endsWith('.test.ts') && !Object.hasOwn(SPEC_EXCLUDED, name))
  .sort()
  .map((name) => join('spec-tests', name));

const RUNTIMES = runtimes();

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Run to the end (`input`, when given, is its stdin); killed after `timeoutMs` unless it is null (a run whose every step has its own guard). */
function run(command: string, args: string[], cwd: string, timeoutMs: number | null, input?: string): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve) => {
    const stdin = input === undefined ? 'ignore' : 'pipe';
    const child = spawn(command, args, { cwd, env: environmentFor(), stdio: [stdin, 'pipe', 'pipe'] });
    if (input !== undefined) child.stdin!.end(input);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer =
      timeoutMs === null
        ? undefined
        : setTimeout(() => {
            stderr += `\n(killed after ${timeoutMs} ms)`;
            child.kill('SIGKILL');
          }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, seconds: (performance.now() - started) / 1000 });
    });
  });
}

/**
 * The spec-test runs on the Node lines start together when the file starts (they are the long
 * part), two at a time: the machine has two cores, and timing-sensitive tests need some headroom.
 */
const specRuns = new Map<string, Promise<Run>>();
function startSpecRuns(): void {
  const lines = RUNTIMES.filter((r) => r.kind === 'node' && r.binary !== null && r.name !== 'node20');
  const slots: Array<() => void> = [];
  const running = { count: 0 };
  const take = (): Promise<void> =>
    running.count < 2 ? (running.count++, Promise.resolve()) : new Promise((resolve) => slots.push(resolve));
  const release = (): void => {
    const waiting = slots.shift();
    if (waiting !== undefined) waiting();
    else running.count--;
  };
  for (const runtime of lines) {
    specRuns.set(
      runtime.name,
      take().then(async () => {
        try {
          const args = ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=1', ...SPEC_FILES];
          // No time limit on the whole run: how long 35 files take is the machine's business, and
          // each of their tests guards its own steps.
          return await run(runtime.binary!, args, ROOT, null);
        } finally {
          release();
        }
      }),
    );
  }
}

interface Summary {
  error?: string;
  loadedWith: string;
  runtime: { node?: string; bun?: string; deno?: string };
  exports: string[];
  plain: Echo;
  deflate: Echo;
}
interface Echo {
  extensions: string;
  messages: number;
  mismatches: string[];
  compressedFrames: number;
  clientClose: { code: number; reason: string; wasClean: boolean };
  serverClose: { code: number; reason: string; wasClean: boolean };
}

function checkRoundTrip(runtime: Runtime, result: Run, loadedWith: string, expectedExports: string[]): void {
  const line = result.stdout.trim().split('\n').pop() ?? '';
  assert.equal(result.code, 0, `${runtime.label} exited with ${result.code}:\n${result.stdout}\n${result.stderr}`);
  const summary = JSON.parse(line) as Summary;
  assert.equal(summary.error, undefined);
  assert.equal(summary.loadedWith, loadedWith);
  const version = runtime.kind === 'node' ? summary.runtime.node : summary.runtime[runtime.kind];
  assert.equal(version, runtime.version, 'the pinned runtime ran the round trip');
  assert.deepEqual(summary.exports, expectedExports, 'the runtime sees the same value exports');
  for (const [name, echo] of [
    ['without permessage-deflate', summary.plain],
    ['with permessage-deflate', summary.deflate],
  ] as const) {
    assert.equal(echo.messages, 4, `${name}: every message came back`);
    assert.deepEqual(echo.mismatches, [], `${name}: echoes equal what was sent`);
    assert.deepEqual(echo.clientClose, { code: 1000, reason: 'done', wasClean: true }, `${name}: client's close`);
    assert.deepEqual(echo.serverClose, { code: 1000, reason: 'done', wasClean: true }, `${name}: server's close`);
  }
  assert.equal(summary.plain.extensions, '');
  assert.equal(summary.plain.compressedFrames, 0);
  assert.match(summary.deflate.extensions, /^permessage-deflate\b/);
  assert.ok(summary.deflate.compressedFrames > 0, 'with permessage-deflate, frames carry RSV1 (RFC 7692 §6)');
}

/** The echo CLI from the package's dist/ under a runtime, on an ephemeral port. */
async function startCli(runtime: Runtime, pkg: Installed): Promise<{ child: ChildProcess; port: number }> {
  const cli = join(pkg.installed, 'dist', 'cli', 'echo.js');
  const [command, args] = commandFor(runtime, cli, [
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    '--ping-interval',
    '0',
    '--max-message-size',
    String(1024 * 1024),
  ]);
  const child = spawn(command, args, { cwd: pkg.consumer, env: environmentFor(), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (output += text));
  const port = await whileAlive(
    child,
    new Promise<number>((resolve, reject) => {
      child.stdout!.setEncoding('utf8').on('data', (text: string) => {
        output += text;
        const match = /listening on ws:\/\/127\.0\.0\.1:(\d+)\//.exec(output);
        if (match !== null) resolve(Number(match[1]));
      });
      child.on('exit', (code) => reject(new Error(`the CLI exited (${code}) before listening:\n${output}`)));
    }),
    `the echo CLI under ${runtime.label} to listen`,
    () => output,
  );
  return { child, port };
}

/** The second driver's Deno script (helpers/consumer/web-streams-deno.mjs) serving on Deno.listen(). */
async function startDenoStreams(runtime: Runtime, pkg: Installed): Promise<{ child: ChildProcess; port: number }> {
  const [command, args] = commandFor(runtime, join(pkg.consumer, 'web-streams-deno.mjs'), ['server']);
  const child = spawn(command, args, { cwd: pkg.consumer, env: environmentFor(), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (output += text));
  const port = await whileAlive(
    child,
    new Promise<number>((resolve, reject) => {
      child.stdout!.setEncoding('utf8').on('data', (text: string) => {
        output += text;
        const match = /\{"port":(\d+)\}/.exec(output);
        if (match !== null) resolve(Number(match[1]));
      });
      child.on('exit', (code) => reject(new Error(`the Deno server exited (${code}) before listening:\n${output}`)));
    }),
    `the WHATWG-streams server under ${runtime.label} to listen`,
    () => output,
  );
  return { child, port };
}

/** The package's value exports, as Node 20 running this file sees them (the other runtimes must agree). */
let expectedExports: string[] = [];
let pkg: Installed;
before(() => {
  startSpecRuns();
  pkg = packAndInstall();
  const listed = execFileSync(
    process.execPath,
    ['--input-type=module', '-e', "import * as m from 'wsrfc'; console.log(JSON.stringify(Object.keys(m).sort()))"],
    { cwd: pkg.consumer, encoding: 'utf8' },
  );
  expectedExports = JSON.parse(listed) as string[];
});
after(() => {
  destroyRawClients();
  if (pkg !== undefined) rmSync(pkg.work, { recursive: true, force: true });
});

for (const runtime of RUNTIMES) {
  describe(`${runtime.label} (${runtime.package}@${runtime.version})`, () => {
    if (runtime.binary === null) {
      it('runs the packed package', (t) => {
        const reason = `${runtime.label} skipped: ${runtime.skipReason}`;
        console.log(reason);
        t.skip(reason);
      });
      return;
    }

    for (const [loadedWith, script] of [
      ['import', 'esm.mjs'],
      ['require', 'cjs.cjs'],
    ] as const) {
      it(`the packed package loaded with ${loadedWith}: echo round trip without and with permessage-deflate`, async () => {
        const [command, args] = commandFor(runtime, join(pkg.consumer, script));
        const result = await run(command, args, pkg.consumer, 60_000);
        checkRoundTrip(runtime, result, loadedWith, expectedExports);
      });
    }

    if (runtime.kind === 'node' && runtime.name !== 'node20') {
      it(`the spec tests (${SPEC_FILES.length} files) pass`, async () => {
        const result = await specRuns.get(runtime.name)!;
        const count = (label: string): number =>
          Number(new RegExp(`^ℹ ${label} (\\d+)$`, 'm').exec(result.stdout)?.[1]);
        console.log(
          `${runtime.label} ${runtime.version}: ${count('tests')} tests, ${count('pass')} passed, ` +
            `${count('skipped')} skipped, ${count('fail')} failed in ${result.seconds.toFixed(0)} s`,
        );
        const failures = result.stdout.slice(Math.max(0, result.stdout.indexOf('✖ failing tests')));
        assert.equal(
          result.code,
          0,
          `the spec tests fail on ${runtime.label}:\n${failures.slice(-6000)}\n${result.stderr.slice(-2000)}`,
        );
        assert.ok(count('tests') > 100 && count('fail') === 0, `${count('tests')} tests ran, ${count('fail')} failed`);
      });
    }

    if (runtime.kind === 'bun' || runtime.kind === 'deno') {
      // RFC 6455 §10.4: the 100 hostile peers of rfc6455-10.4-memory-per-peer.test.ts, against a
      // server from the package's dist/ run by this runtime (each runtime's bounds: hostile-peers.ts).
      const binary = runtime.binary;
      hostilePeerTests({
        kind: runtime.kind,
        label: `${runtime.label} ${runtime.version}`,
        command: (script, args) =>
          runtime.kind === 'deno'
            ? [binary, ['run', '--allow-all', '--v8-flags=--expose-gc', script, ...args]]
            : [binary, [script, ...args]],
        library: () => join(pkg.installed, 'dist', 'index.js'),
        env: environmentFor(),
      });

      describe(`the echo CLI from dist/ under ${runtime.label}, against the independent test peer`, () => {
        let cli: { child: ChildProcess; port: number };
        before(async () => (cli = await startCli(runtime, pkg)));
        after(() => cli?.child.kill('SIGKILL'));

        it('RFC 6455 §4.2: the handshake answers 101 with the right accept; a bad version gets 426', async () => {
          const client = await RawClient.connect(cli.port, { path: '/any' });
          assert.equal(client.header('upgrade')?.toLowerCase(), 'websocket');
          client.destroy();
          const refused = await RawClient.request(cli.port, { headers: { 'Sec-WebSocket-Version': '8' } });
          assert.equal(refused.response!.status, 426);
          assert.equal(refused.header('sec-websocket-version'), '13', '§4.4: the version we speak');
          refused.destroy();
        });

        it('RFC 6455 §5.2: echoes at every length encoding (7-bit, 16-bit, 64-bit), unmasked', async () => {
          const client = await RawClient.connect(cli.port);
          const sizes = [0, 125, 126, 65_535, 65_536, 300_000];
          const sent = sizes.map((size) => randomBytes(size));
          for (const data of sent) client.sendBinary(data);
          client.sendText('héllo ✓');
          const messages = await client.waitMessages(sizes.length + 1, 10_000);
          sent.forEach((data, i) =>
            assert.ok(messages[i]!.isBinary && messages[i]!.data.equals(data), `size ${sizes[i]}`),
          );
          assert.equal(messages[sizes.length]!.data.toString(), 'héllo ✓');
          assert.ok(
            client.frames.every((frame) => frame.maskKey === null),
            '§5.1: a server never masks',
          );
          assert.deepEqual(client.protocolErrors, []);
          client.sendClose(1000, 'bye');
          const close = await client.waitCloseFrame(5000);
          assert.deepEqual([close.code, close.reason], [1000, 'bye'], '§5.5.1: the close echoed');
          const { peerEndedFirst } = await client.waitClosed(5000);
          assert.ok(peerEndedFirst, '§7.1.1: the server ends TCP first');
        });

        it('RFC 6455 §5.4, §5.5.2: a fragmented message with a ping between fragments', async () => {
          const client = await RawClient.connect(cli.port);
          client.sendFrame({ opcode: OP.TEXT, payload: 'frag', fin: false });
          client.sendPing('between');
          client.sendContinuation('men', false);
          client.sendContinuation('ted', true);
          const [message] = await client.waitMessages(1, 5000);
          assert.equal(message!.data.toString(), 'fragmented');
          assert.deepEqual(client.pongs.map(String), ['between'], 'the pong carries the ping data');
          assert.deepEqual(client.protocolErrors, []);
          client.destroy();
        });

        for (const [name, send, code] of [
          ['an unmasked frame', (c: RawClient) => c.sendFrame({ opcode: OP.TEXT, payload: 'x', maskKey: null }), 1002],
          ['a reserved opcode', (c: RawClient) => c.sendFrame({ opcode: 0x3, payload: 'x' }), 1002],
          [
            'RSV1 without an extension',
            (c: RawClient) => c.sendFrame({ opcode: OP.TEXT, payload: 'x', rsv1: true }),
            1002,
          ],
          ['invalid UTF-8 in a text message', (c: RawClient) => c.sendText(Buffer.from([0x68, 0xc3, 0x28])), 1007],
          ['a message over --max-message-size', (c: RawClient) => c.sendBinary(Buffer.alloc(1024 * 1024 + 1)), 1009],
        ] as const) {
          it(`RFC 6455 §7.4.1: ${name} closes with ${code}`, async () => {
            const client = await RawClient.connect(cli.port);
            send(client);
            const close = await client.waitCloseFrame(5000);
            assert.equal(close.code, code, `close ${close.code} "${close.reason}"`);
            await client.waitClosed(5000);
          });
        }

        it('the wsrfc command from dist/: --version, and `wsrfc connect` with piped lines against this CLI', async () => {
          const wsrfc = join(pkg.installed, 'dist', 'cli', 'wsrfc.js');
          const version = await run(...commandFor(runtime, wsrfc, ['--version']), pkg.consumer, 30_000);
          assert.deepEqual([version.code, version.stdout], [0, `${packageJson.version}\n`], version.stderr);
          const url = `ws://127.0.0.1:${cli.port}/`;
          const input = 'hello from the runtime\n/binary 00 ff\n/ping p\n';
          const session = await run(...commandFor(runtime, wsrfc, ['connect', url]), pkg.consumer, 30_000, input);
          assert.equal(session.code, 0, `${session.stdout}\n${session.stderr}`);
          for (const line of ['< hello from the runtime', '< binary, 2 bytes: 00ff', '< pong "p"'])
            assert.ok(session.stdout.split('\n').includes(line), `${line} in:\n${session.stdout}`);
          assert.match(session.stdout, /^closed: 1000 Normal Closure, cleanly/m);
        });

        it('RFC 7692: permessage-deflate agreed, compressed both ways with context takeover', async () => {
          const client = await RawClient.connect(cli.port, {
            extensions: ['permessage-deflate; client_max_window_bits'],
          });
          const response = client.header('sec-websocket-extensions');
          assert.ok(response !== undefined, 'the CLI accepts permessage-deflate');
          const agreement = negotiated(response);
          client.inflateWith(new StrictInflater(agreement.serverBits, !agreement.serverNoContextTakeover));
          const compressor = new Compressor({
            windowBits: agreement.clientBits,
            contextTakeover: !agreement.clientNoContextTakeover,
          });
          const texts = Array.from(
            { length: 5 },
            (_, i) => `{"event":"tick","n":${i},"payload":"${'abc'.repeat(400)}"}`,
          );
          for (const text of texts) client.sendCompressed(compressor.compress(Buffer.from(text)));
          client.sendCompressed(compressor.compress(randomBytes(5000)), { binary: true, cuts: [10, 2000] });
          const messages = await client.waitMessages(texts.length + 1, 10_000);
          texts.forEach((text, i) => assert.equal(messages[i]!.data.toString(), text));
          assert.equal(messages[texts.length]!.isBinary, true);
          assert.ok(
            client.wire.slice(0, texts.length).every((m) => m.compressed),
            'echoes over the 1024-byte threshold come back compressed',
          );
          const last = client.wire[texts.length - 1]!;
          assert.ok(last.payload.length < 200, `context takeover: a repeat compresses to ${last.payload.length} bytes`);
          assert.deepEqual(client.protocolErrors, []);
          client.destroy();
        });
      });
    }

    if (runtime.kind === 'deno') {
      describe('the WHATWG-streams driver (wsrfc/web-streams) on Deno.listen() and Deno.connect(), against the independent test peer', () => {
        let server: { child: ChildProcess; port: number };
        before(async () => (server = await startDenoStreams(runtime, pkg)));
        after(() => server?.child.kill('SIGKILL'));

        it('RFC 6455 §4.2, §5.2: the handshake, and echoes at every length encoding, unmasked', async () => {
          const client = await RawClient.connect(server.port);
          const sizes = [0, 125, 126, 65_535, 65_536, 300_000];
          const sent = sizes.map((size) => randomBytes(size));
          for (const data of sent) client.sendBinary(data);
          const messages = await client.waitMessages(sizes.length, 10_000);
          sent.forEach((data, i) => assert.ok(messages[i]!.data.equals(data), `size ${sizes[i]}`));
          assert.deepEqual(
            client.frames.map((frame) => frame.lengthEncoding),
            [7, 7, 16, 16, 64, 64],
          );
          assert.ok(
            client.frames.every((frame) => frame.maskKey === null),
            '§5.1: a server never masks',
          );
          client.sendClose(1000, 'bye');
          const close = await client.waitCloseFrame(5000);
          assert.deepEqual([close.code, close.reason], [1000, 'bye'], '§5.5.1: the close echoed');
          await client.waitClosed(5000);
          assert.deepEqual(client.protocolErrors, []);
        });

        it('RFC 6455 §5.4, §5.5.2: a fragmented message with pings between fragments', async () => {
          const client = await RawClient.connect(server.port);
          client.sendFrame({ opcode: OP.TEXT, payload: 'frag', fin: false });
          client.sendPing('one');
          client.sendContinuation('men', false);
          client.sendPing('two');
          client.sendContinuation('ted', true);
          const [message] = await client.waitMessages(1, 5000);
          assert.equal(message!.data.toString(), 'fragmented');
          await client.until(() => client.pongs.length === 2, 5000, 'both pongs');
          assert.deepEqual(client.pongs.map(String), ['one', 'two']);
          client.destroy();
        });

        for (const [name, send, code] of [
          [
            'RSV1 without an extension',
            (c: RawClient) => c.sendFrame({ opcode: OP.TEXT, payload: 'x', rsv1: true }),
            1002,
          ],
          ['invalid UTF-8 in a text message', (c: RawClient) => c.sendText(Buffer.from([0x68, 0xc3, 0x28])), 1007],
          ['a message over maxMessageSize', (c: RawClient) => c.sendBinary(Buffer.alloc(1024 * 1024 + 1)), 1009],
        ] as const) {
          it(`RFC 6455 §7.4.1: ${name} closes with ${code}`, async () => {
            const client = await RawClient.connect(server.port);
            send(client);
            const close = await client.waitCloseFrame(5000);
            assert.equal(close.code, code, `close ${close.code} "${close.reason}"`);
            await client.waitClosed(5000);
          });
        }

        it('the client role over Deno.connect(): masked frames, its echo, a clean close started by the client', async () => {
          const peer = await RawServer.start();
          try {
            const [command, args] = commandFor(runtime, join(pkg.consumer, 'web-streams-deno.mjs'), [
              'client',
              String(peer.port),
            ]);
            const ran = run(command, args, pkg.consumer, 30_000);
            const connection = await peer.nextPeer();
            const [first] = await connection.waitMessages(1, 20_000);
            assert.equal(first!.data.toString(), 'hello from deno');
            connection.sendText(first!.data);
            const [, second] = await connection.waitMessages(2, 10_000);
            assert.equal(second!.data.toString(), String('hello from deno'.length));
            const close = await connection.waitCloseFrame(10_000);
            assert.deepEqual([close.code, close.reason], [1000, 'done']);
            connection.sendClose(1000, 'done');
            connection.end();
            const result = await ran;
            assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
            assert.deepEqual(JSON.parse(result.stdout.trim().split('\n').pop()!), {
              code: 1000,
              reason: 'done',
              wasClean: true,
            });
            assert.ok(
              connection.frames.every((frame) => frame.masked),
              '§5.3: every client frame masked',
            );
            assert.deepEqual(connection.protocolErrors, []);
          } finally {
            await peer.close();
          }
        });
      });
    }
  });
}
