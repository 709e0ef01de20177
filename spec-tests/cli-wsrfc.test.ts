/**
 * The `wsrfc` command (src/cli/wsrfc.ts), each case a child process on loopback: the dispatcher
 * (help, version, unknown commands), `wsrfc echo` as `wsrfc-echo`, `wsrfc connect` against the echo
 * CLI, at a terminal (a pseudo-terminal), and over TLS and HTTP/2 (RFC 8441). `wsrfc connect`
 * against the independent test peer is spec-tests/cli-connect.test.ts.
 * Each case waits for what the program prints or what the peer receives, never for a fixed time.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, afterEach, describe, it } from 'node:test';
import {
  ROOT,
  assertMasked,
  assertNoStack,
  closeServers,
  killChildren,
  peerServer,
  wsrfc,
} from './helpers/cli-process.js';
import { findPython, pythonOrSkip, runPython } from './helpers/python.js';
import { makeTestCertificate } from './helpers/tls.js';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;

afterEach(closeServers);
after(killChildren);

describe('wsrfc: the dispatcher', () => {
  it('--help lists echo, connect and conformance and exits 0', async () => {
    const { code, stdout } = await wsrfc(['--help'], null).finished();
    assert.equal(code, 0);
    for (const command of ['echo', 'connect URL', 'conformance server URL', 'conformance client'])
      assert.match(stdout, new RegExp(`^  ${command}`, 'm'), `--help lists ${command}`);
  });

  it("--version prints package.json's version", async () => {
    const { code, stdout } = await wsrfc(['--version'], null).finished();
    assert.equal(code, 0);
    assert.equal(stdout, `${VERSION}\n`);
  });

  it('an unknown command, or none, prints the usage on stderr and exits 2', async () => {
    for (const args of [['serve'], []]) {
      const { code, stdout, stderr } = await wsrfc(args, null).finished();
      assert.equal(code, 2, `wsrfc ${args.join(' ')}`);
      assert.equal(stdout, '');
      assert.match(stderr, /Usage: wsrfc <command>/);
      if (args.length > 0) assert.match(stderr, /unknown command "serve"/);
    }
  });
});

describe('wsrfc echo is wsrfc-echo', () => {
  it('the same options and help text as the wsrfc-echo program (src/cli/echo.ts)', async () => {
    const [viaWsrfc, viaEcho] = await Promise.all([
      wsrfc(['echo', '--help'], null).finished(),
      wsrfc(['--help'], null, 'src/cli/echo.ts').finished(),
    ]);
    assert.equal(viaWsrfc.code, 0);
    assert.equal(viaEcho.code, 0);
    assert.equal(viaWsrfc.stdout, viaEcho.stdout);
    assert.match(viaWsrfc.stdout, /--max-message-size/);
    // Bad options are refused alike.
    const [badWsrfc, badEcho] = await Promise.all([
      wsrfc(['echo', '--port', 'lots'], null).finished(),
      wsrfc(['--port', 'lots'], null, 'src/cli/echo.ts').finished(),
    ]);
    assert.deepEqual([badWsrfc.code, badEcho.code], [2, 2]);
    assert.equal(badWsrfc.stderr, badEcho.stderr);
  });

  it('`wsrfc echo` serves, and `wsrfc connect` talks to it: text and binary echoed, closed with 1000, exit 0', async () => {
    const echo = wsrfc(['echo', '--host', '127.0.0.1', '--port', '0', '--no-explorer'], null);
    const [, url] = await echo.waitFor(/echo server listening on (ws:\/\/127\.0\.0\.1:\d+\/)/);
    try {
      const client = wsrfc(['connect', url!], 'hello echo\n/binary 00 01 fe ff\n');
      const { code, stdout, stderr } = await client.finished();
      assert.equal(code, 0, stderr);
      assert.match(
        stdout,
        /^connected to ws:\/\/127\.0\.0\.1:\d+\/ \(over HTTP\/1\.1; extensions: permessage-deflate/m,
      );
      assert.match(stdout, /^< hello echo$/m);
      assert.match(stdout, /^< binary, 4 bytes: 0001feff$/m);
      assert.match(stdout, /^closed: 1000 Normal Closure, cleanly/m);
      await echo.waitFor(/- #1 closed 1000/);
    } finally {
      echo.child.kill('SIGINT');
      assert.equal((await echo.finished()).code, 0);
    }
  });
});

describe('wsrfc connect at a terminal (a pseudo-terminal driven by helpers/pty-session.py)', () => {
  const script = fileURLToPath(new URL('helpers/pty-session.py', import.meta.url));
  const found = findPython(script, 'probe', 'the pty module', 'python3');

  /** Type `steps` at `wsrfc connect URL` on a terminal; the screen's lines and the exit status. */
  async function atTerminal(url: string, steps: ({ send: string } | { expect: string })[]) {
    const program = [process.execPath, '--import', 'tsx', 'src/cli/wsrfc.ts', 'connect', url];
    const output = await runPython(found.python!, script, [ROOT, JSON.stringify(steps), ...program]);
    return JSON.parse(output) as { transcript: string; status: number | null; failed: string | null };
  }

  it('a prompt; typed lines sent, what arrives printed above the prompt; /close 4000 ends it (exit 3)', async (t) => {
    if (pythonOrSkip(t, found) === null) return;
    const server = await peerServer({
      autoPong: true,
      onPeer: (peer) => peer.on('message', (m: { data: Buffer }) => peer.sendText(`echo: ${m.data.toString()}`)),
    });
    const session = await atTerminal(server.url(), [
      { expect: '^type a line and Enter to send it' },
      { expect: '^> ' },
      { send: 'hello from a terminal\r' },
      { expect: '^< echo: hello from a terminal\r?$' },
      { expect: '^> ' },
      { send: '/ping tty\r' },
      { expect: '^< pong "tty"' },
      { send: '/close 4000 typed\r' },
      { expect: '^closed: 4000 private use "typed", cleanly' },
    ]);
    assert.equal(session.failed, null, session.transcript);
    assert.equal(session.status, 3);
    const peer = server.peers[0]!;
    assert.deepEqual(
      peer.messages.map((m) => m.data.toString()),
      ['hello from a terminal'],
    );
    assert.deepEqual([peer.closeFrame?.code, peer.closeFrame?.reason], [4000, 'typed']);
    assertMasked(peer);
  });

  it('Ctrl-C closes with 1000 (exit 0); so does Ctrl-D, the end of the input', async (t) => {
    if (pythonOrSkip(t, found) === null) return;
    const server = await peerServer();
    for (const [key, said] of [
      ['\u0003', '^closing \\(Ctrl-C again drops the connection\\)'],
      ['\u0004', '^closed: 1000'],
    ]) {
      const session = await atTerminal(server.url(), [{ expect: '^> ' }, { send: key! }, { expect: said! }]);
      assert.equal(session.failed, null, session.transcript);
      assert.equal(session.status, 0, session.transcript);
      assert.match(session.transcript, /^closed: 1000 Normal Closure, cleanly/m);
    }
    assert.deepEqual(
      server.peers.map((peer) => peer.closeFrame?.code),
      [1000, 1000],
    );
  });
});

describe('wsrfc connect over TLS and HTTP/2 (RFC 8441), against the echo CLI', () => {
  it('--http2 with --ca: one stream of an HTTP/2 connection, echoed; without --ca the certificate is refused; -k skips the check', async (t) => {
    const certificate = makeTestCertificate('wsrfc-connect-');
    if (typeof certificate === 'string') {
      t.skip(certificate);
      return;
    }
    const echo = wsrfc(
      ['echo', '--port', '0', '--tls-cert', certificate.certFile, '--tls-key', certificate.keyFile, '--no-explorer'],
      null,
    );
    try {
      const [, port] = await echo.waitFor(/listening on wss:\/\/127\.0\.0\.1:(\d+)\//);
      const url = `wss://localhost:${port}/`;
      const over2 = await wsrfc(['connect', url, '--http2', '--ca', certificate.certFile], 'over h2\n').finished();
      assert.equal(over2.code, 0, over2.stderr);
      assert.match(
        over2.stdout,
        /^connected to wss:\/\/localhost:\d+\/ \(over HTTP\/2; extensions: permessage-deflate/m,
      );
      assert.match(over2.stdout, /^< over h2$/m);
      assert.match(over2.stdout, /^closed: 1000 Normal Closure, cleanly/m);
      await echo.waitFor(/over HTTP\/2/);

      const untrusted = await wsrfc(['connect', url], '').finished();
      assert.equal(untrusted.code, 1);
      assert.match(untrusted.stderr, /cannot connect to wss:.*certificate/);
      assertNoStack(untrusted.stderr);

      const insecure = await wsrfc(['connect', url, '-k'], 'over h1\n').finished();
      assert.equal(insecure.code, 0, insecure.stderr);
      assert.match(insecure.stdout, /^connected to .*\(over HTTP\/1\.1/m);
      assert.match(insecure.stdout, /^< over h1$/m);
    } finally {
      echo.child.kill('SIGINT');
      await echo.finished();
      certificate.remove();
    }
  });

  it('--http2 against a server that speaks only HTTP/1.1: exit 1, saying HTTP/2 failed', async () => {
    const server = await peerServer();
    const { code, stderr } = await wsrfc(['connect', server.url(), '--http2'], '').finished();
    assert.equal(code, 1);
    assert.match(stderr, /cannot connect to ws:\/\/127\.0\.0\.1:\d+\/ over HTTP\/2: /);
    assertNoStack(stderr);
  });
});
