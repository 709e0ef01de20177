/**
 * The package as an embedder meets it: `npm pack`, the tarball unpacked into a fresh consumer
 * project, and a consumer that uses every exported name compiled with `skipLibCheck: false` (every
 * declaration file the package ships is checked, as a strict consumer's build would). The same
 * consumer asserts that the machinery stays out of reach: internal names are not exported, the
 * WebSocket's internals are not on its type, and deep imports are closed by the `exports` map.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

const CONSUMER = `
import {
  WebSocketServer, createServer, SERVER_DEFAULTS, WebSocket, connect, openClient, CLIENT_DEFAULTS,
  CONNECTION_DEFAULTS, CloseCode, Opcode, ReadyState, ProtocolError, ProtocolViolation,
  ConnectionTimeoutError, InvalidStateError, HandshakeError, formatFrame, inflateBudget, InflateBudget,
  DEFAULT_INFLATE_BUDGET,
  type ServerOptions, type UpgradeRequest, type VerifyResult, type WebSocketServerEventMap, type ClientSet,
  type WebSocketEventMap, type Message, type ClientOptions, type ConnectionOptions, type SendOptions,
  type Data, type SendCallback, type PerMessageDeflateOptions, type TracedFrame, type FrameTracer,
  LocalBroker, ClusterBroker, runWorkers, WorkerPool, type Broker, type BrokerHost, type PublishOptions,
  type WorkersOptions, type WorkerContext, type StartWorker, type WorkerPoolEventMap,
} from 'wsrfc';
import {
  RedisBroker, connectRedisBroker, type RedisBrokerOptions, type RedisBrokerStats, type RedisBrokerEventMap,
} from 'wsrfc/redis';

const broker: Broker = new LocalBroker();
async function redis(): Promise<void> {
  const redisOptions: RedisBrokerOptions = { prefix: 'app:', waitForRedis: true };
  const viaRedis: Broker = await RedisBroker.connect('redis://127.0.0.1:6379', redisOptions);
  const other: RedisBroker = await connectRedisBroker('redis://127.0.0.1:6379');
  const stats: RedisBrokerStats = other.stats;
  const event: keyof RedisBrokerEventMap = 'down';
  void [viaRedis, stats.dropped, event];
}
void redis;
const host: BrokerHost = { deliver: (topic: string | null, data: Buffer, binary: boolean) => void [topic, data, binary] };
const publishOptions: PublishOptions = { binary: false, compress: true };
const workersOptions: WorkersOptions = { workers: 2, closeTimeout: 1000 };
const start: StartWorker = (context: WorkerContext) => new WebSocketServer({ broker: context.broker });
const poolEvent: keyof WorkerPoolEventMap = 'exit';
async function workers(): Promise<void> {
  const pool: WorkerPool | undefined = await runWorkers(start, workersOptions);
  await pool?.close();
  void ClusterBroker;
}
void [broker, host, publishOptions, poolEvent, workers];

const deflate: PerMessageDeflateOptions = { serverMaxWindowBits: 10 };
const trace: FrameTracer = (frame: TracedFrame) => void formatFrame(frame);
const options: ServerOptions = { path: '/chat', perMessageDeflate: deflate, trace, checkOrigin: (origin) => origin !== undefined };
const server: WebSocketServer = createServer(options);
const other = new WebSocketServer({ maxConnections: SERVER_DEFAULTS.maxConnections });
server.on('connection', (socket: WebSocket, request: UpgradeRequest) => {
  const set: ClientSet = server.clients;
  socket.on('message', (data: Buffer, isBinary: boolean) => socket.send(data, { binary: isBinary } satisfies SendOptions));
  if (socket.subscribe('room')) server.publish('room', 'hi', { except: socket }) + server.subscriberCount('room');
  const topics: ReadonlySet<string> = socket.topics;
  void [topics, socket.unsubscribe('room')];
  socket.on('close', (code: number, reason: string, wasClean: boolean) => void [code, reason, wasClean, set.size, request.path]);
  const state: ReadyState = socket.readyState;
  if (state === ReadyState.OPEN && socket.readyState === WebSocket.OPEN) socket.close(CloseCode.Normal, 'bye');
});
const verify = (): VerifyResult => ({ status: 401 });
const events: keyof WebSocketServerEventMap = 'rejected';
const socketEvents: keyof WebSocketEventMap = 'drain';
const done: SendCallback = (error?: Error) => void error;
const data: Data = new Uint8Array(4);
const clientOptions: ClientOptions = { perMessageDeflate: true, handshakeTimeout: CLIENT_DEFAULTS.handshakeTimeout };
const connectionOptions: ConnectionOptions = { maxMessageSize: CONNECTION_DEFAULTS.maxMessageSize };
async function client(): Promise<void> {
  const ws = await connect('ws://127.0.0.1:1/', clientOptions);
  for await (const message of ws) { const m: Message = message; void m; }
  openClient('ws://127.0.0.1:1/').terminate();
}
const errors: Error[] = [
  new ProtocolError('ReservedBits', 'x'), new ConnectionTimeoutError('pong', 'x'), new InvalidStateError('x'), new HandshakeError('x'),
];
const budget: InflateBudget = inflateBudget;
void [other, verify, events, socketEvents, done, data, connectionOptions, client, errors, budget, DEFAULT_INFLATE_BUDGET,
  Opcode.Text, ProtocolViolation.InvalidUtf8];

// The machinery is out of reach.
declare const ws: WebSocket;
// @ts-expect-error the driver is private
ws.attach;
// @ts-expect-error the driver is private
ws.onMessage;
// @ts-expect-error no timer-wheel fields on the public class
ws.wheelTick;
// @ts-expect-error the id is read-only
ws.id = 3;
`;

const INTERNALS = `
// @ts-expect-error the protocol core is not part of the package's API
import { Protocol } from 'wsrfc';
// @ts-expect-error the receiver neither
import { Receiver } from 'wsrfc';
// @ts-expect-error deep imports are closed by the exports map
import { Sender } from 'wsrfc/dist/sender.js';
void [Protocol, Receiver, Sender];
`;

describe('the packed package, compiled by a strict consumer', () => {
  const work = mkdtempSync(join(tmpdir(), 'wsrfc-consumer-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  it(
    'declares exactly the documented API: every exported name compiles with skipLibCheck false, internals do not',
    { timeout: 120_000 },
    () => {
      // `npm pack` runs the `prepare` script, which builds dist/ from src/.
      const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', work], {
        cwd: ROOT,
        encoding: 'utf8',
      })
        .trim()
        .split('\n')
        .pop()!;
      const consumer = join(work, 'consumer');
      const unpacked = join(consumer, 'node_modules', 'wsrfc');
      mkdirSync(unpacked, { recursive: true });
      execFileSync('tar', ['-xzf', join(work, packed), '-C', unpacked, '--strip-components=1']);
      assert.ok(readdirSync(join(unpacked, 'dist')).includes('index.d.ts'), 'the tarball ships dist/index.d.ts');
      writeFileSync(
        join(consumer, 'package.json'),
        JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
      );
      writeFileSync(join(consumer, 'consumer.ts'), CONSUMER);
      writeFileSync(join(consumer, 'internals.ts'), INTERNALS);
      writeFileSync(
        join(consumer, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            target: 'ES2022',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            strict: true,
            skipLibCheck: false,
            noEmit: true,
            types: ['node'],
            typeRoots: [join(ROOT, 'node_modules', '@types')],
          },
          files: ['consumer.ts', 'internals.ts'],
        }),
      );
      const result = spawnSync(process.execPath, [TSC, '-p', consumer], { encoding: 'utf8' });
      assert.equal(result.status, 0, `the consumer does not compile:\n${result.stdout}${result.stderr}`);
    },
  );
});
