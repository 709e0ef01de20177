/**
 * The shape the code keeps (README, "How the code is laid out"): the layers are the folders of
 * src/, declared once here from the bottom up; each folder imports only itself and the folders
 * below it; the protocol core touches no socket, no timer and no clock; there are no import
 * cycles; files stay small enough to read in one sitting. Read off the sources themselves, so a
 * change that breaks the layering fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

/**
 * The layers, bottom first: a folder may import the folders before it in this list, never those
 * after it. The README draws the same list.
 */
const LAYERS = [
  // The protocol core: bytes in, events and bytes out, every decision returned as data.
  'protocol',
  // Moving bytes between a stream and the core: the node:stream driver, the WHATWG-streams driver,
  // the timer wheel, the zlib jobs.
  'driver',
  // The public classes on node:net, node:tls and node:http2: WebSocket, WebSocketServer, the client
  // handshakes, RFC 8441, topics.
  'websocket',
  // More than one process: brokers across workers and hosts, the worker pool.
  'scale',
  // The learner's layer: frames explained, the protocol explorer (it plugs into a server through
  // the server's public hooks).
  'learn',
  // The conformance engine: Autobahn|Testsuite's cases against any server or client. It judges
  // implementations, ours included, so it shares none of the library's code (see below).
  'conformance',
  // The command-line programs.
  'cli',
] as const;

/** The package's entry points (package.json `exports`), the only files at the top of src/. */
const ENTRY_POINTS = ['core.ts', 'explorer.ts', 'index.ts', 'redis.ts', 'web-streams.ts'];

/** The only things the core may import from outside itself. */
const CORE_NODE_MODULES = ['node:crypto', 'node:buffer'];

const MAX_LINES = 650;
/** Prettier's print width (.prettierrc.json): it wraps code; comments and strings in src/ are wrapped by hand. */
const MAX_COLUMNS = 120;

/** Every .ts file of src/, as a path relative to it ('protocol/frame.ts', 'index.ts'). */
function allFiles(): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(SRC + dir)) {
      const path = dir === '' ? entry : `${dir}/${entry}`;
      if (statSync(SRC + path).isDirectory()) walk(path);
      else if (entry.endsWith('.ts')) files.push(path);
    }
  };
  walk('');
  return files.sort();
}

function source(file: string): string {
  return readFileSync(SRC + file, 'utf8');
}

/** Module specifiers a file imports (static imports and re-exports, type-only ones included). */
function imports(file: string): string[] {
  const specifiers: string[] = [];
  for (const match of source(file).matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'/gm))
    specifiers.push(match[1]!);
  return specifiers;
}

/** The files of src/ a file imports, as paths relative to src/. */
function localImports(file: string): string[] {
  return imports(file)
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) => posix.normalize(posix.join(posix.dirname(file), specifier)).replace(/\.js$/, '.ts'));
}

/** The layer a file belongs to (its folder), or null for an entry point. */
function layerOf(file: string): string | null {
  const slash = file.indexOf('/');
  return slash === -1 ? null : file.slice(0, slash);
}

/** Code without comments, so a comment that mentions `Date.now()` is not a use of it. */
function code(file: string): string {
  return source(file)
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '');
}

describe('the layers of src/ are its folders', () => {
  it('src/ holds the entry points and one folder per layer, nothing else; folders are not nested', () => {
    for (const file of allFiles()) {
      const layer = layerOf(file);
      if (layer === null) assert.ok(ENTRY_POINTS.includes(file), `${file} is at the top of src/ but is no entry point`);
      else {
        assert.ok((LAYERS as readonly string[]).includes(layer), `${file} is in ${layer}/, which is not a layer`);
        assert.equal(file.split('/').length, 2, `${file} is nested deeper than its layer's folder`);
      }
    }
    for (const layer of LAYERS)
      assert.ok(
        allFiles().some((file) => layerOf(file) === layer),
        `${layer}/ is empty`,
      );
  });

  it('each folder imports only itself and the folders below it; no folder imports an entry point', () => {
    const violations: string[] = [];
    for (const file of allFiles()) {
      const layer = layerOf(file);
      if (layer === null) continue;
      const rank = LAYERS.indexOf(layer as (typeof LAYERS)[number]);
      for (const target of localImports(file)) {
        const targetLayer = layerOf(target);
        const targetRank = targetLayer === null ? Infinity : LAYERS.indexOf(targetLayer as (typeof LAYERS)[number]);
        if (targetRank > rank) violations.push(`${file} imports ${target}`);
      }
    }
    assert.deepEqual(violations, []);
  });

  it('the core imports nothing but the core (and node:crypto for keys and masks, node:buffer)', () => {
    for (const file of allFiles().filter((file) => layerOf(file) === 'protocol')) {
      for (const specifier of imports(file)) {
        if (specifier.startsWith('.')) {
          const target = posix.normalize(posix.join('protocol', specifier));
          assert.equal(layerOf(target), 'protocol', `${file} imports ${specifier}, which is not part of the core`);
        } else {
          assert.ok(CORE_NODE_MODULES.includes(specifier), `${file} imports ${specifier}`);
        }
      }
    }
  });

  it('the core reads no clock and schedules nothing: time comes in as an argument', () => {
    const forbidden =
      /\b(Date\.now|new Date|performance\.now|setTimeout|setInterval|setImmediate|queueMicrotask|process\.nextTick|process\.hrtime)\b/;
    for (const file of allFiles().filter((file) => layerOf(file) === 'protocol')) {
      const found = forbidden.exec(code(file));
      assert.equal(found, null, `${file} uses ${found?.[0]}`);
    }
  });

  it("no file of src/ reaches into Node's internals (underscore properties, bindings): only documented APIs", () => {
    // The library runs on Bun and Deno too, and Node's internals change without notice.
    const INTERNAL =
      /\._(handle|writableState|readableState|events|eventsCount|socket|parent|pendingData)\b|\b(process\.binding|internalBinding)\b/;
    const found = allFiles().flatMap((file) =>
      code(file)
        .split('\n')
        .filter((line) => INTERNAL.test(line))
        .map((line) => `${file}: ${line.trim()}`),
    );
    assert.deepEqual(found, []);
  });

  it('there is no import cycle in src/', () => {
    const graph = new Map<string, string[]>();
    for (const file of allFiles()) graph.set(file, localImports(file));
    const state = new Map<string, 'visiting' | 'done'>();
    const walk = (file: string, path: string[]): void => {
      if (state.get(file) === 'done') return;
      assert.notEqual(state.get(file), 'visiting', `import cycle: ${[...path, file].join(' -> ')}`);
      state.set(file, 'visiting');
      for (const next of graph.get(file) ?? []) walk(next, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of graph.keys()) walk(file, []);
  });

  it(`no line of src/ is wider than ${MAX_COLUMNS} columns, comments included`, () => {
    for (const file of allFiles()) {
      source(file)
        .split('\n')
        .forEach((line, index) => {
          assert.ok(line.length <= MAX_COLUMNS, `${file}:${index + 1} is ${line.length} columns wide`);
        });
    }
  });

  it(`no file of src/ is longer than ${MAX_LINES} lines`, () => {
    for (const file of allFiles()) {
      const lines = source(file).split('\n').length;
      assert.ok(lines <= MAX_LINES, `${file} has ${lines} lines`);
    }
  });

  it('the conformance engine imports nothing of src/ outside its folder: it must not share our reading of the RFC', () => {
    // It judges the library in npm test, so its codec, handshake, deflate and UTF-8 checks are its
    // own; it may use node: modules only.
    const outside: string[] = [];
    for (const file of allFiles().filter((file) => layerOf(file) === 'conformance')) {
      for (const specifier of imports(file)) {
        if (specifier.startsWith('node:')) continue;
        const target = specifier.startsWith('.') ? posix.normalize(posix.join('conformance', specifier)) : specifier;
        if (layerOf(target) !== 'conformance') outside.push(`${file} imports ${specifier}`);
      }
    }
    assert.deepEqual(outside, []);
  });

  it('only scale/redis-broker.ts (behind the wsrfc/redis entry point) imports the redis package', () => {
    const loadsRedis = /(?:from\s+|import\s*\(\s*)'(?:redis|@redis\/[^']*)'/;
    for (const file of allFiles()) {
      if (file === 'scale/redis-broker.ts') continue;
      assert.equal(loadsRedis.exec(source(file)), null, `${file} imports redis`);
    }
    // What `import 'wsrfc'` loads, followed through every static import: never the Redis broker.
    const seen = new Set<string>();
    const walk = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const next of localImports(file)) walk(next);
    };
    walk('index.ts');
    assert.ok(!seen.has('scale/redis-broker.ts'), 'index.ts reaches scale/redis-broker.ts');
  });
});
