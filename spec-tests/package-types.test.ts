/**
 * The package as an embedder meets it: `npm pack`, the tarball installed with npm into a fresh
 * consumer project, and consumers compiled with `skipLibCheck: false` (every declaration file the
 * package ships is checked, as a strict consumer's build would) under the oldest TypeScript the
 * README claims (5.6, the `typescript-oldest` dev dependency) and the project's own (7.0):
 * - for every entry point in package.json's `exports`, a consumer generated from the names its
 *   declarations export (found with the TypeScript API), so a new entry point is covered at once;
 * - for the main entry, a consumer written by hand that uses every exported name the way an
 *   application would; a name it misses fails the test, naming it;
 * - the machinery stays out of reach: internal names are not exported, the WebSocket's internals
 *   are not on its type, and deep imports are closed by the `exports` map.
 * The tarball's file list is checked too: what an embedder needs, nothing from the repository's
 * tests, benchmarks or fixtures. Running the package is spec-tests/runtime-matrix.test.ts's job.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, entryPoints, packAndInstall, packageJson, specifierOf, type Installed } from './helpers/package.js';

type TypeScript = typeof import('typescript-oldest');
const ts = createRequire(import.meta.url)('typescript-oldest') as TypeScript;

const TSC_OLDEST = join(ROOT, 'node_modules', 'typescript-oldest', 'bin', 'tsc');
const TSC_OWN = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
/** Each compiles the same consumers; the module settings are Node's (NodeNext) and a bundler's. */
const COMPILERS = [
  { name: `TypeScript ${ts.version} (the oldest the README claims), NodeNext`, tsc: TSC_OLDEST, options: {} },
  { name: "TypeScript 7 (the project's own), NodeNext", tsc: TSC_OWN, options: {} },
  {
    name: "TypeScript 7 (the project's own), moduleResolution Bundler",
    tsc: TSC_OWN,
    options: { module: 'ESNext', moduleResolution: 'Bundler' },
  },
];

/** A consumer of the main entry written by hand: every exported name used the way an application would. */
const CONSUMER = `
import {
  WebSocketServer, createServer, SERVER_DEFAULTS, WebSocket, connect, openClient, CLIENT_DEFAULTS,
  CONNECTION_DEFAULTS, CloseCode, Opcode, ReadyState, ProtocolError, ProtocolViolation,
  ConnectionTimeoutError, InvalidStateError, HandshakeError, formatFrame, inflateBudget, InflateBudget,
  DEFAULT_INFLATE_BUDGET, MessageStream, MessageAbortedError, type MessageSourceData,
  type ServerOptions, type UpgradeRequest, type VerifyResult, type WebSocketServerEventMap, type ClientSet,
  type WebSocketEventMap, type Message, type ClientOptions, type ConnectionOptions, type SendOptions,
  type Data, type SendCallback, type PerMessageDeflateOptions, type TracedFrame, type FrameTracer,
  LocalBroker, ClusterBroker, runWorkers, WorkerPool, type Broker, type BrokerHost, type PublishOptions,
  type WorkersOptions, type WorkerContext, type StartWorker, type WorkerPoolEventMap, type Http2Options,
  type ConnectionObserver, type ObservedHandshake, type HttpRequestInfo, type HttpResponseInfo,
} from 'wsrfc';
import { Explorer } from 'wsrfc/explorer';
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
// The public hooks: plain requests, and what an observer sees of each handshake; the explorer plugs in through them.
const health = (request: HttpRequestInfo): HttpResponseInfo | undefined =>
  request.target === '/health' ? { status: 200, headers: { 'content-type': 'text/plain' }, body: 'ok' } : undefined;
// Over HTTP/2 (RFC 8441) an observer gets the extended CONNECT's fields; over HTTP/1.1, the key.
const observe: ConnectionObserver = (handshake: ObservedHandshake) => {
  const protocol: string | undefined = handshake.http2?.request.find(([name]) => name === ':protocol')?.[1];
  return handshake.httpVersion === '1.1' ? (handshake.key === '' ? null : trace) : protocol === 'websocket' ? trace : null;
};
const explorer = new Explorer();
const hooked = new WebSocketServer({ ...explorer.serverOptions, onHttpRequest: health, observe });
hooked.on('connection', (socket, request) => void explorer.adopt(socket, request));
const server: WebSocketServer = createServer(options);
const other = new WebSocketServer({ maxConnections: SERVER_DEFAULTS.maxConnections });
// RFC 8441: HTTP/2 beside HTTP/1.1 on the server's own TLS port, and a client over HTTP/2.
const http2: Http2Options = { onRequest: (stream) => stream.respond({ ':status': 404 }, { endStream: true }) };
const secure = new WebSocketServer({ tls: { key: '', cert: '' }, http2 });
secure.on('connection', (socket: WebSocket) => void socket);
async function overHttp2(): Promise<void> {
  const ws = await connect('wss://127.0.0.1:1/', { http2: { fallback: true } });
  ws.close();
}
void overHttp2;
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
// Messages as streams, both ways.
async function streamed(socket: WebSocket): Promise<void> {
  socket.streamMessages = true;
  socket.on('stream', (message: MessageStream) => void socket.send(message, { binary: message.isBinary }));
  const source: MessageSourceData = ['one ', 'message, ', 'in pieces'];
  await socket.sendAsync(source);
  const cutShort: Error = new MessageAbortedError('the connection closed in the middle of the message');
  void [cutShort, MessageStream];
}
void streamed;
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

const COMPILER_OPTIONS = {
  target: 'ES2022',
  module: 'NodeNext',
  moduleResolution: 'NodeNext',
  strict: true,
  skipLibCheck: false,
  noEmit: true,
  types: ['node'],
  typeRoots: [join(ROOT, 'node_modules', '@types')],
};

interface Exported {
  values: string[];
  types: string[];
}

/** What each entry point's declarations export, split into values and type-only names, read with the TypeScript API. */
function exportsOf(consumer: string, entries: string[]): Map<string, Exported> {
  const probe = join(consumer, 'probe.ts');
  writeFileSync(probe, entries.map((entry, i) => `import * as entry${i} from '${specifierOf(entry)}';\n`).join(''));
  const options = ts.convertCompilerOptionsFromJson(COMPILER_OPTIONS, consumer).options;
  const program = ts.createProgram([probe], options);
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(probe)!;
  const result = new Map<string, Exported>();
  source.statements.forEach((statement, i) => {
    assert.ok(ts.isImportDeclaration(statement));
    const module = checker.getSymbolAtLocation(statement.moduleSpecifier);
    assert.ok(module !== undefined, `${specifierOf(entries[i]!)} does not resolve to declarations`);
    const exported: Exported = { values: [], types: [] };
    for (const symbol of checker.getExportsOfModule(module)) {
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      (target.flags & ts.SymbolFlags.Value ? exported.values : exported.types).push(symbol.name);
    }
    result.set(entries[i]!, exported);
  });
  rmSync(probe);
  return result;
}

/** The names a consumer's source imports from `specifier`. */
function importedNames(text: string, specifier: string): Set<string> {
  const source = ts.createSourceFile('consumer.ts', text, ts.ScriptTarget.ES2022);
  const names = new Set<string>();
  for (const statement of source.statements) {
    if (!ts.isImportDeclaration(statement) || !ts.isStringLiteral(statement.moduleSpecifier)) continue;
    if (statement.moduleSpecifier.text !== specifier) continue;
    const bindings = statement.importClause?.namedBindings;
    if (bindings !== undefined && ts.isNamedImports(bindings)) {
      for (const element of bindings.elements) names.add((element.propertyName ?? element.name).text);
    }
  }
  return names;
}

/** Consumers written by hand, per entry point. Entry points without one are covered by the generated consumer alone. */
const HAND_WRITTEN: Record<string, string> = { '.': CONSUMER };

describe('the packed package, compiled by a strict consumer', () => {
  let pkg: Installed;
  let entries: string[];
  let exported: Map<string, Exported>;
  before(() => {
    pkg = packAndInstall();
    entries = entryPoints();
    exported = exportsOf(pkg.consumer, entries);
    const generated = entries.map((entry) => {
      const { values, types } = exported.get(entry)!;
      const from = specifierOf(entry);
      return [
        `// ${from}: every exported name (${values.length} values, ${types.length} types)`,
        values.length > 0 ? `export { ${values.join(', ')} } from '${from}';` : '',
        types.length > 0 ? `export type { ${types.join(', ')} } from '${from}';` : '',
      ].join('\n');
    });
    // One module per entry point: two entry points may export the same name.
    const files: string[] = [];
    entries.forEach((_, i) => {
      writeFileSync(join(pkg.consumer, `generated-${i}.ts`), `${generated[i]}\n`);
      files.push(`generated-${i}.ts`);
    });
    writeFileSync(join(pkg.consumer, 'consumer.ts'), CONSUMER);
    writeFileSync(join(pkg.consumer, 'internals.ts'), INTERNALS);
    COMPILERS.forEach((compiler, i) =>
      writeFileSync(
        join(pkg.consumer, `tsconfig.${i}.json`),
        JSON.stringify({
          compilerOptions: { ...COMPILER_OPTIONS, ...compiler.options },
          files: [...files, 'consumer.ts', 'internals.ts'],
        }),
      ),
    );
  });
  after(() => rmSync(pkg.work, { recursive: true, force: true }));

  it('exports every entry point with its declarations, plus ./package.json', () => {
    assert.equal(packageJson.exports['./package.json'], './package.json');
    for (const entry of entries) {
      const target = packageJson.exports[entry];
      assert.ok(typeof target === 'object' && target !== null, `exports['${entry}'] maps conditions`);
      const conditions = Object.keys(target);
      assert.equal(conditions[0], 'types', `exports['${entry}']: "types" comes first (resolvers take the first match)`);
      for (const file of Object.values(target)) {
        assert.ok(
          existsSync(join(pkg.installed, file)),
          `exports['${entry}'] points at ${file}, which the tarball lacks`,
        );
      }
      const { values, types } = exported.get(entry)!;
      assert.ok(values.length + types.length > 0, `${specifierOf(entry)} exports nothing`);
    }
  });

  it('the hand-written consumers use every name their entry point exports', () => {
    for (const [entry, text] of Object.entries(HAND_WRITTEN)) {
      const { values, types } = exported.get(entry)!;
      const used = importedNames(text, specifierOf(entry));
      const missing = [...values, ...types].filter((name) => !used.has(name));
      assert.deepEqual(missing, [], `the consumer of ${specifierOf(entry)} does not use: ${missing.join(', ')}`);
      const unknown = [...used].filter((name) => !values.includes(name) && !types.includes(name));
      assert.deepEqual(unknown, [], `the consumer of ${specifierOf(entry)} imports names it does not export`);
    }
  });

  COMPILERS.forEach((compiler, i) => {
    it(`compiles with skipLibCheck false under ${compiler.name}`, { timeout: 120_000 }, () => {
      const project = join(pkg.consumer, `tsconfig.${i}.json`);
      const result = spawnSync(process.execPath, [compiler.tsc, '-p', project], { encoding: 'utf8' });
      assert.equal(result.status, 0, `the consumer does not compile:\n${result.stdout}${result.stderr}`);
    });
  });

  it('the compile fails when a consumer uses a name the package does not export', { timeout: 120_000 }, () => {
    // The check above can fail: the same project with one wrong import must not compile.
    writeFileSync(join(pkg.consumer, 'wrong.ts'), `import { NoSuchExport } from 'wsrfc';\nvoid NoSuchExport;\n`);
    writeFileSync(
      join(pkg.consumer, 'tsconfig.wrong.json'),
      JSON.stringify({ compilerOptions: COMPILER_OPTIONS, files: ['wrong.ts'] }),
    );
    const result = spawnSync(process.execPath, [TSC_OWN, '-p', join(pkg.consumer, 'tsconfig.wrong.json')], {
      encoding: 'utf8',
    });
    assert.notEqual(result.status, 0);
    assert.match(result.stdout, /TS2305|NoSuchExport/);
  });
});

describe('the tarball holds what an embedder needs and nothing else', () => {
  let pkg: Installed;
  before(() => (pkg = packAndInstall()));
  after(() => rmSync(pkg.work, { recursive: true, force: true }));

  it('only package.json, README, LICENSE, CHANGELOG, dist/ and src/', () => {
    const allowed =
      /^(package\.json|README\.md|LICENSE|CHANGELOG\.md|dist\/.+\.(js|d\.ts|js\.map|d\.ts\.map)|src\/.+\.ts)$/;
    const strays = pkg.files.filter((file) => !allowed.test(file));
    assert.deepEqual(strays, [], 'files the package should not ship');
    const repositoryOnly = pkg.files.filter((file) => /test|spec|bench|fixture|fuzz|autobahn|example/i.test(file));
    assert.deepEqual(repositoryOnly, [], 'tests, benchmarks or fixtures in the tarball');
    for (const file of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md'])
      assert.ok(pkg.files.includes(file), file);
  });

  it('every source file, and for each its JavaScript, declarations and source map', () => {
    const sources = spawnSync('git', ['ls-files', 'src'], { cwd: ROOT, encoding: 'utf8' })
      .stdout.split('\n')
      .filter((file) => file.endsWith('.ts'));
    assert.ok(sources.length > 0);
    for (const source of sources) {
      const base = source.replace(/^src\//, 'dist/').replace(/\.ts$/, '');
      for (const file of [source, `${base}.js`, `${base}.d.ts`, `${base}.js.map`]) {
        assert.ok(pkg.files.includes(file), `the tarball lacks ${file}`);
      }
    }
    // Nothing in dist/ without a source: a stale build would ship it.
    const stale = pkg.files
      .filter((file) => file.startsWith('dist/') && file.endsWith('.js'))
      .filter((file) => !sources.includes(file.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts')));
    assert.deepEqual(stale, [], 'compiled files without a source');
  });

  it('source maps point at sources the tarball ships', () => {
    const maps = pkg.files.filter((file) => file.endsWith('.map'));
    assert.ok(maps.length > 0);
    for (const map of maps) {
      const { sources } = JSON.parse(readFileSync(join(pkg.installed, map), 'utf8')) as { sources: string[] };
      for (const source of sources) {
        const target = join(map, '..', source);
        assert.ok(pkg.files.includes(target), `${map} points at ${source}, which the tarball lacks`);
      }
    }
  });

  it('the bins are executable JavaScript from dist/, linked by npm, and run through the link; sideEffects names them', () => {
    for (const [name, target] of Object.entries(packageJson.bin ?? {})) {
      const file = target.replace(/^\.\//, '');
      assert.ok(pkg.files.includes(file), `bin ${name}: ${file} is not in the tarball`);
      assert.match(readFileSync(join(pkg.installed, file), 'utf8'), /^#!\/usr\/bin\/env node\n/);
      assert.ok(existsSync(join(pkg.consumer, 'node_modules', '.bin', name)), `npm linked no ${name}`);
    }
    // Through npm's link, as `npx wsrfc` runs them: the echo CLI must see that it is the program
    // started (src/cli/entry.ts) even though the path it was started by is the link's.
    const bin = (name: string, args: string[]): { status: number | null; stdout: string; stderr: string } =>
      spawnSync(join(pkg.consumer, 'node_modules', '.bin', name), args, { cwd: pkg.consumer, encoding: 'utf8' });
    const version = bin('wsrfc', ['--version']);
    assert.deepEqual([version.status, version.stdout], [0, `${packageJson.version}\n`], version.stderr);
    const echoHelp = bin('wsrfc-echo', ['--help']);
    assert.equal(echoHelp.status, 0, echoHelp.stderr);
    assert.match(echoHelp.stdout, /^Usage: wsrfc echo \[options\]/);
    assert.equal(bin('wsrfc', ['echo', '--help']).stdout, echoHelp.stdout, 'wsrfc echo is wsrfc-echo');
    const sideEffects = (packageJson as unknown as { sideEffects: string[] }).sideEffects;
    assert.ok(Array.isArray(sideEffects), 'sideEffects lists the files that have them');
    for (const file of sideEffects) assert.ok(pkg.files.includes(file.replace(/^\.\//, '')), `sideEffects: ${file}`);
  });
});
