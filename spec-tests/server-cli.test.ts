/**
 * The echo server CLI (src/cli/echo.ts), run as a child process on an ephemeral port: echo, --trace,
 * --max-message-size, --deflate, --stream, and a graceful shutdown on SIGINT (close 1001 to every client, exit 0).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import { connect, type WebSocket } from '../src/index.js';
import { CloseCode, trackClose, withTimeout } from './helpers/library.js';
import { RawClient, destroyRawClients } from './helpers/peer/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Cli {
  child: ChildProcess;
  url: string;
  port: number;
  /** Everything printed on stdout so far. */
  output(): string;
  /** Wait until stdout matches. */
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
  exited: Promise<[number | null, NodeJS.Signals | null]>;
}

const children: ChildProcess[] = [];
const sockets: WebSocket[] = [];
afterEach(() => {
  destroyRawClients();
  for (const ws of sockets.splice(0)) ws.terminate();
});
after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

async function startCli(args: string[]): Promise<Cli> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli/echo.ts', '--host', '127.0.0.1', '--port', '0', ...args],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(child);
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    stdout += text;
    for (const listener of listeners) listener();
  });
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const waitFor = (pattern: RegExp, ms = 5000): Promise<RegExpMatchArray> =>
    withTimeout(
      new Promise<RegExpMatchArray>((resolve, reject) => {
        const check = (): void => {
          const match = stdout.match(pattern);
          if (match !== null) {
            listeners.delete(check);
            resolve(match);
          }
        };
        listeners.add(check);
        exited.then(() => {
          listeners.delete(check);
          reject(new Error(`the CLI exited before printing ${pattern}; stdout: ${stdout} stderr: ${stderr}`));
        });
        check();
      }),
      ms,
      `${pattern} on the CLI's stdout (stdout so far: ${JSON.stringify(stdout.slice(-500))}, stderr: ${JSON.stringify(stderr.slice(-500))})`,
    );
  const match = await waitFor(/echo server listening on (ws:\/\/127\.0\.0\.1:(\d+)\/)/, 10_000);
  return { child, url: match[1]!, port: Number(match[2]), output: () => stdout, waitFor, exited };
}

/** Run the CLI with `args` until it exits by itself (it does on bad options). */
async function runToExit(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/echo.ts', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const [code] = (await withTimeout(once(child, 'exit'), 10_000, 'exit')) as [number | null];
  return { code, stderr };
}

async function open(url: string): Promise<WebSocket> {
  const ws = await connect(url);
  sockets.push(ws);
  return ws;
}

function nextMessage(ws: WebSocket): Promise<[Buffer, boolean]> {
  return withTimeout(once(ws, 'message') as Promise<[Buffer, boolean]>, 3000, 'an echo');
}

describe('the echo CLI: port 0, echo, SIGINT', () => {
  it('listens on an ephemeral port, echoes text and binary, and on SIGINT closes clients with 1001 and exits 0', async () => {
    const cli = await startCli([]);
    assert.ok(cli.port > 0, 'cli.port > 0');
    const a = await open(cli.url);
    const b = await open(cli.url);

    let reply = nextMessage(a);
    a.send('hello cli');
    assert.deepEqual((await reply).map(String), ['hello cli', 'false']);
    reply = nextMessage(b);
    b.send(Buffer.from([0, 1, 2, 255]));
    const [data, isBinary] = await reply;
    assert.deepEqual([...data], [0, 1, 2, 255]);
    assert.equal(isBinary, true);

    // A raw client too: the CLI answers pings and fragmented messages like the library does.
    const raw = await RawClient.connect(cli.port);
    raw.sendText('frag', false);
    raw.sendPing('ping!');
    raw.sendContinuation('mented', true);
    await raw.waitMessages(1);
    assert.equal(raw.messages[0]!.data.toString(), 'fragmented');
    assert.equal(raw.pongs[0]!.toString(), 'ping!');
    raw.destroy();

    const closes = [trackClose(a), trackClose(b)];
    cli.child.kill('SIGINT');
    for (const { closed } of closes) {
      const record = await withTimeout(closed, 5000, 'close 1001');
      assert.equal(record.code, CloseCode.GoingAway);
      assert.equal(record.wasClean, true);
    }
    const [code, signal] = await withTimeout(cli.exited, 5000, 'the CLI to exit');
    assert.equal(signal, null);
    assert.equal(code, 0);
    assert.match(cli.output(), /shutting down/);
    assert.match(cli.output(), /bye/);
  });
});

describe('the echo CLI: --trace', () => {
  let cli: Cli;
  let ws: WebSocket;
  before(async () => {
    cli = await startCli(['--trace']);
    ws = await connect(cli.url);
    // Traffic of every kind: text, binary, ping/pong, close.
    let reply = nextMessage(ws);
    ws.send('trace me');
    await reply;
    reply = nextMessage(ws);
    ws.send(Buffer.from([1, 2, 3]));
    await reply;
    const pong = once(ws, 'pong');
    ws.ping('pp');
    await withTimeout(pong, 3000, 'pong');
    ws.close(1000, 'done');
    await withTimeout(once(ws, 'close'), 3000, 'close');
    await cli.waitFor(/-> CLOSE /);
  });
  after(async () => {
    ws.terminate();
    cli.child.kill('SIGINT');
    await withTimeout(cli.exited, 5000, 'the CLI to exit');
  });

  const lines = (prefix: string): string[] =>
    cli
      .output()
      .split('\n')
      .filter((line) => line.startsWith(prefix));

  it('frames sent by the server are printed with "->", the opcode name, FIN, RSV, "unmasked", the length and a preview', async () => {
    const text = lines('-> TEXT');
    assert.equal(text.length, 1, cli.output());
    assert.match(text[0]!, /^-> TEXT +fin=1 rsv=000 unmasked len=8 7472616365206d65 \|trace me\|$/);
    assert.match(lines('-> BINARY')[0] ?? '', /fin=1 .*unmasked len=3 010203/);
    assert.match(lines('-> PONG')[0] ?? '', /len=2 7070 \|pp\|/);
    assert.match(lines('-> CLOSE')[0] ?? '', /len=6 03e8646f6e65 \|..done\|/);
  });

  it('frames received from the client are printed with "<-", masked with their key (the trace option: "every frame received and sent")', async () => {
    await cli.waitFor(/<- TEXT/, 1000).catch(() => undefined);
    const text = lines('<- TEXT');
    assert.equal(text.length, 1, `no incoming frame was traced; stdout:\n${cli.output()}`);
    assert.match(text[0]!, /^<- TEXT +fin=1 rsv=000 mask=[0-9a-f]{8} len=8 7472616365206d65 \|trace me\|$/);
    assert.match(lines('<- BINARY')[0] ?? '', /mask=[0-9a-f]{8} len=3 010203/);
    assert.match(lines('<- PING')[0] ?? '', /len=2 7070 \|pp\|/);
    assert.match(lines('<- CLOSE')[0] ?? '', /len=6 03e8646f6e65/);
  });
});

describe('the echo CLI: --max-message-size', () => {
  it('--max-message-size 100: a 100-byte message is echoed, a 200-byte one closes with 1009', async () => {
    const cli = await startCli(['--max-message-size', '100']);
    try {
      const ws = await open(cli.url);
      const reply = nextMessage(ws);
      ws.send('x'.repeat(100));
      assert.equal((await reply)[0].length, 100);

      const closed = trackClose(ws);
      ws.send('y'.repeat(200));
      const record = await withTimeout(closed.closed, 3000, 'close 1009');
      assert.equal(record.code, CloseCode.MessageTooBig);
      await cli.waitFor(/closed 1009/);
    } finally {
      cli.child.kill('SIGINT');
      await withTimeout(cli.exited, 5000, 'the CLI to exit');
    }
  });

  it('invalid options exit with status 2 and a message', async () => {
    const { code, stderr } = await runToExit(['--max-message-size', 'lots']);
    assert.equal(code, 2);
    assert.match(stderr, /max-message-size/);
  });
});

describe('the echo CLI: --deflate, --no-deflate', () => {
  const offer = { perMessageDeflate: true };
  for (const [args, expected] of [
    [[], 'permessage-deflate'],
    [['--deflate'], 'permessage-deflate'],
    [['--no-deflate'], ''],
  ] as const) {
    it(`${args.join(' ') || 'no flag'}: a client offering permessage-deflate gets ${expected === '' ? 'no extension' : expected}`, async () => {
      const cli = await startCli([...args]);
      try {
        const ws = await connect(cli.url, offer);
        assert.equal(ws.extensions, expected);
        ws.terminate();
      } finally {
        cli.child.kill('SIGINT');
        await withTimeout(cli.exited, 5000, 'the CLI to exit');
      }
    });
  }

  it('--deflate with --no-deflate exits with status 2 and a message', async () => {
    const { code, stderr } = await runToExit(['--deflate', '--no-deflate']);
    assert.equal(code, 2);
    assert.match(stderr, /choose one/);
  });
});

describe('the echo CLI: --stream', () => {
  it('echoes each fragment as it arrives, before the message ends; answers pings between fragments; --max-message-size still bounds a message', async () => {
    const cli = await startCli(['--stream', '--max-message-size', '100000']);
    try {
      const raw = await RawClient.connect(cli.port);
      raw.sendText('first, ', false);
      // Its echo comes back while the message is still open on both sides.
      await raw.waitFrames(1);
      assert.deepEqual(
        [raw.frames[0]!.opcode, raw.frames[0]!.fin, raw.frames[0]!.payload.toString()],
        [1, false, 'first, '],
      );
      raw.sendPing('between');
      await raw.until(() => raw.pongs.length === 1, 3000, 'the pong');
      raw.sendContinuation('then the rest', true);
      await raw.waitMessages(1);
      assert.equal(raw.messages[0]!.data.toString(), 'first, then the rest');
      raw.sendBinary(Buffer.alloc(200_000, 1));
      assert.equal((await raw.waitCloseFrame()).code, CloseCode.MessageTooBig);
      // The protocol explorer is still served.
      const page = await fetch(`http://127.0.0.1:${cli.port}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i);
    } finally {
      cli.child.kill('SIGINT');
      await withTimeout(cli.exited, 5000, 'the CLI to exit');
    }
  });
});
