/**
 * Interoperability: our server with an independent client implementation, Node's built-in
 * WebSocket (undici, the WHATWG API), and the same scenario with our own client.
 *
 * On Node 20 the global WebSocket exists only with `--experimental-websocket`, so when the test
 * process has none, the scenario runs in a child `node --experimental-websocket`. If even that
 * has none, the test is skipped, saying why.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer, connect, type WebSocket } from '../src/index.js';
import { record } from './helpers/client-events.js';
import { withTimeout } from './helpers/library.js';

const CLIENT_SCRIPT = fileURLToPath(new URL('./helpers/node-websocket-client.mjs', import.meta.url));

const BIG_TEXT = 'ü€'.repeat(35_000);
const BIG_BINARY = Buffer.from(Buffer.alloc(70_000).map((_, i) => (i * 7) & 0xff));
const sha256 = (bytes: string | Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

interface SessionResult {
  protocol: string | null;
  messages: { type: 'text' | 'binary'; length: number; sha256: string; preview: string }[];
  close: { code: number; reason: string; wasClean: boolean } | null;
  errors: string[];
}

interface ScenarioResult {
  available: boolean;
  reason?: string;
  crashed?: string;
  echo: SessionResult;
  noProtocol: SessionResult;
  serverCloses: SessionResult;
}

interface ServerLog {
  path: string;
  offered: string[];
  protocol: string;
  close: [number, string, boolean] | null;
}

/** The server under test: echoes on /echo, closes with 4001 on /server-closes when asked. */
async function startServer(): Promise<{ server: WebSocketServer; base: string; log: ServerLog[] }> {
  const log: ServerLog[] = [];
  const server = new WebSocketServer({ protocols: ['superchat', 'chat'], pingInterval: 0 });
  server.on('connection', (connection, request) => {
    const entry: ServerLog = {
      path: request.path,
      offered: request.protocols,
      protocol: connection.protocol,
      close: null,
    };
    log.push(entry);
    connection.on('message', (data, isBinary) => {
      if (request.path === '/server-closes') {
        if (data.toString() === 'close me') connection.close(4001, 'server bye');
      } else {
        connection.send(data, { binary: isBinary });
      }
    });
    connection.on('close', (code, reason, wasClean) => (entry.close = [code, reason, wasClean]));
  });
  const address = await server.listen(0, '127.0.0.1');
  return { server, base: `ws://127.0.0.1:${address.port}`, log };
}

/** Run the scenario in a child `node --experimental-websocket`. */
function runInChild(base: string): Promise<ScenarioResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--experimental-websocket', '--no-warnings', CLIENT_SCRIPT, base], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill(), 20_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as ScenarioResult);
      } catch {
        if (/bad option|unknown option/i.test(stderr)) {
          resolve({
            available: false,
            reason: `this node does not know --experimental-websocket: ${stderr.trim()}`,
          } as ScenarioResult);
        } else {
          reject(new Error(`the child exited with ${code}; stdout: ${stdout}; stderr: ${stderr}`));
        }
      }
    });
  });
}

/** Run the scenario with Node's WebSocket: in-process when the global exists, else in a child. */
async function runNodeClient(base: string): Promise<ScenarioResult> {
  if (typeof (globalThis as { WebSocket?: unknown }).WebSocket === 'function') {
    // A plain JavaScript module (see its header); imported by path so it is not type-checked.
    const path: string = CLIENT_SCRIPT;
    const module = (await import(path)) as { run(base: string): Promise<ScenarioResult> };
    return module.run(base);
  }
  return runInChild(base);
}

/** The same scenario with our client. */
async function runOurClient(base: string): Promise<ScenarioResult> {
  const session = async (
    url: string,
    protocols: string[] | undefined,
    onOpen: (ws: WebSocket) => void,
    onMessage: (ws: WebSocket, result: SessionResult) => void = () => {},
  ): Promise<SessionResult> => {
    const result: SessionResult = { protocol: null, messages: [], close: null, errors: [] };
    const ws = await connect(url, { ...(protocols !== undefined ? { protocols } : {}), pingInterval: 0 });
    const events = record(ws);
    result.protocol = ws.protocol;
    ws.on('message', (data, isBinary) => {
      result.messages.push({
        type: isBinary ? 'binary' : 'text',
        length: data.length,
        sha256: sha256(data),
        preview: isBinary ? data.subarray(0, 8).toString('hex') : data.toString().slice(0, 40),
      });
      onMessage(ws, result);
    });
    ws.on('error', (error) => result.errors.push(error.message));
    onOpen(ws);
    const closed = await withTimeout(events.closed, 8_000, "'close'");
    result.close = { code: closed.code, reason: closed.reason, wasClean: closed.wasClean };
    return result;
  };
  const echo = await session(
    `${base}/echo`,
    ['x-unknown', 'chat', 'superchat'],
    (ws) => {
      ws.send('hello ü');
      ws.send(new Uint8Array([0, 1, 2, 255]));
      ws.send(BIG_TEXT);
      ws.send(BIG_BINARY);
      ws.send('');
    },
    (ws, result) => {
      if (result.messages.length === 5) ws.close(4000, 'client bye');
    },
  );
  const noProtocol = await session(`${base}/echo`, undefined, (ws) => ws.close(1000));
  const serverCloses = await session(`${base}/server-closes`, [], (ws) => ws.send('close me'));
  return { available: true, echo, noProtocol, serverCloses };
}

function checkScenario(result: ScenarioResult, log: ServerLog[]): void {
  assert.equal(result.crashed, undefined, result.crashed);
  const { echo, noProtocol, serverCloses } = result;

  // Subprotocol: the client's most preferred one that the server speaks.
  assert.equal(echo.protocol, 'chat');
  assert.deepEqual(echo.errors, []);
  assert.deepEqual(
    echo.messages.map((m) => [m.type, m.length, m.sha256]),
    [
      ['text', Buffer.byteLength('hello ü'), sha256('hello ü')],
      ['binary', 4, sha256(new Uint8Array([0, 1, 2, 255]))],
      ['text', Buffer.byteLength(BIG_TEXT), sha256(BIG_TEXT)],
      ['binary', BIG_BINARY.length, sha256(BIG_BINARY)],
      ['text', 0, sha256('')],
    ],
  );
  // Close started by the client, with a code and a reason: both sides see them, cleanly.
  assert.deepEqual(echo.close, { code: 4000, reason: 'client bye', wasClean: true });
  assert.equal(noProtocol.protocol, '');
  assert.deepEqual(noProtocol.close, { code: 1000, reason: '', wasClean: true });
  // Close started by the server.
  assert.deepEqual(serverCloses.close, { code: 4001, reason: 'server bye', wasClean: true });

  assert.equal(log.length, 3);
  assert.deepEqual(log[0], {
    path: '/echo',
    offered: ['x-unknown', 'chat', 'superchat'],
    protocol: 'chat',
    close: [4000, 'client bye', true],
  });
  assert.deepEqual(log[1], { path: '/echo', offered: [], protocol: '', close: [1000, '', true] });
  // The server reports the close frame it received: the client's reply, which echoes the code
  // (§5.5.1); whether the reply repeats the reason is up to the client.
  assert.deepEqual(
    { ...log[2], close: [log[2]!.close?.[0], log[2]!.close?.[2]] },
    { path: '/server-closes', offered: [], protocol: '', close: [4001, true] },
  );
}

/** The server's 'close' may come a moment after the client's. */
async function settled(log: ServerLog[]): Promise<void> {
  await withTimeout(
    (async () => {
      while (log.length < 3 || log.some((entry) => entry.close === null))
        await new Promise((resolve) => setTimeout(resolve, 10));
    })(),
    5_000,
    'every server-side connection to close',
  );
}

describe('interop: our server with Node’s built-in WebSocket client (undici)', () => {
  let env: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    env = await startServer();
  });
  after(() => env.server.close());

  it(
    'echoes text and binary, selects the subprotocol, closes cleanly with code and reason both ways',
    { timeout: 25_000 },
    async (t) => {
      const result = await runNodeClient(env.base);
      if (!result.available) {
        const reason = `Node's WebSocket client is not available: ${result.reason ?? 'unknown reason'}`;
        console.log(`# skipped: ${reason}`);
        t.skip(reason);
        return;
      }
      t.diagnostic(
        `Node's WebSocket ran ${typeof (globalThis as { WebSocket?: unknown }).WebSocket === 'function' ? 'in-process' : 'in a child node --experimental-websocket'}`,
      );
      await settled(env.log);
      checkScenario(result, env.log);
    },
  );
});

describe('interop: our client with our server, the same scenario', () => {
  let env: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    env = await startServer();
  });
  after(() => env.server.close());

  it(
    'echoes text and binary, selects the subprotocol, closes cleanly with code and reason both ways',
    { timeout: 15_000 },
    async () => {
      const result = await runOurClient(env.base);
      await settled(env.log);
      checkScenario(result, env.log);
    },
  );
});
