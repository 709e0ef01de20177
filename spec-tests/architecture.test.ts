/**
 * The shape the code keeps (README, "How the code is laid out"): a protocol core that touches no
 * socket, no timer and no clock, drivers above it, no import cycles, and files small enough to read
 * in one sitting. Read off the sources themselves, so a change that breaks the layering fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

/** Bytes in, events and bytes out: these never do I/O, never read a clock, never schedule. */
const CORE = [
  'close.ts',
  'constants.ts',
  'errors.ts',
  'extensions.ts',
  'frame.ts',
  'handshake.ts',
  'http1.ts',
  'inflate-budget.ts',
  'mask.ts',
  'options.ts',
  'payload-buffer.ts',
  'permessage-deflate.ts',
  'protocol.ts',
  'receiver.ts',
  'sender.ts',
  'trace.ts',
  'utf8.ts',
  'writer.ts',
];
/** Sockets, timers, zlib jobs, queues: what carries the core's decisions out. */
const DRIVERS = [
  'broker.ts',
  'broker-cluster.ts',
  'client.ts',
  'client-http2.ts',
  'connection.ts',
  'deflate-zlib.ts',
  'http2.ts',
  'http2-stream.ts',
  'redis.ts',
  'server.ts',
  'server-options.ts',
  'timer-wheel.ts',
  'topics.ts',
  'websocket.ts',
  'workers.ts',
  // The learner's layer: the teaching trace (it inflates with node:zlib) and the explorer's server side.
  'explain.ts',
  'explorer.ts',
];
/** The package's entry points and the CLIs. */
const APPS = [
  'chat.ts',
  'cli.ts',
  'index.ts',
  // The package's second entry point, wsrfc/core (examples/core-echo.ts).
  'core.ts',
  // The explorer's page: the browser's script, as a string.
  'explorer-page.ts',
];

const MAX_LINES = 650;
/** Prettier's print width (.prettierrc.json): it wraps code; comments and strings in src/ are wrapped by hand. */
const MAX_COLUMNS = 120;

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

function localImports(file: string): string[] {
  return imports(file)
    .filter((specifier) => specifier.startsWith('./'))
    .map((specifier) => specifier.slice(2).replace(/\.js$/, '.ts'));
}

/** Code without comments, so a comment that mentions `Date.now()` is not a use of it. */
function code(file: string): string {
  return source(file)
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '');
}

describe('the layers of src/', () => {
  it('every file of src/ is in exactly one layer (core, drivers, apps)', () => {
    const files = readdirSync(SRC)
      .filter((file) => file.endsWith('.ts'))
      .sort();
    assert.deepEqual(files, [...CORE, ...DRIVERS, ...APPS].sort());
  });

  it('the core imports nothing but the core (and node:crypto for keys and masks, node:buffer)', () => {
    for (const file of CORE) {
      for (const specifier of imports(file)) {
        if (specifier.startsWith('./')) {
          const target = specifier.slice(2).replace(/\.js$/, '.ts');
          assert.ok(CORE.includes(target), `${file} imports ${target}, which is not part of the core`);
        } else {
          assert.ok(['node:crypto', 'node:buffer'].includes(specifier), `${file} imports ${specifier}`);
        }
      }
    }
  });

  it('the core reads no clock and schedules nothing: time comes in as an argument', () => {
    const forbidden =
      /\b(Date\.now|new Date|performance\.now|setTimeout|setInterval|setImmediate|queueMicrotask|process\.nextTick|process\.hrtime)\b/;
    for (const file of CORE) {
      const found = forbidden.exec(code(file));
      assert.equal(found, null, `${file} uses ${found?.[0]}`);
    }
  });

  it("no file of src/ reaches into Node's internals (underscore properties, bindings): only documented APIs", () => {
    // The library runs on Bun and Deno too, and Node's internals change without notice.
    const INTERNAL =
      /\._(handle|writableState|readableState|events|eventsCount|socket|parent|pendingData)\b|\b(process\.binding|internalBinding)\b/;
    const found = [...CORE, ...DRIVERS, ...APPS].flatMap((file) =>
      code(file)
        .split('\n')
        .filter((line) => INTERNAL.test(line))
        .map((line) => `${file}: ${line.trim()}`),
    );
    assert.deepEqual(found, []);
  });

  it('there is no import cycle in src/', () => {
    const graph = new Map<string, string[]>();
    for (const file of [...CORE, ...DRIVERS, ...APPS]) graph.set(file, localImports(file));
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
    for (const file of [...CORE, ...DRIVERS, ...APPS]) {
      source(file)
        .split('\n')
        .forEach((line, index) => {
          assert.ok(line.length <= MAX_COLUMNS, `${file}:${index + 1} is ${line.length} columns wide`);
        });
    }
  });

  it(`no file of src/ is longer than ${MAX_LINES} lines`, () => {
    for (const file of [...CORE, ...DRIVERS, ...APPS]) {
      const lines = source(file).split('\n').length;
      assert.ok(lines <= MAX_LINES, `${file} has ${lines} lines`);
    }
  });

  it('only src/redis.ts (the wsrfc/redis entry point) imports the redis package; the main entry never loads it', () => {
    const loadsRedis = /(?:from\s+|import\s*\(\s*)'(?:redis|@redis\/[^']*)'/;
    for (const file of [...CORE, ...DRIVERS, ...APPS]) {
      if (file === 'redis.ts') continue;
      assert.equal(loadsRedis.exec(source(file)), null, `${file} imports redis`);
    }
    // What `import 'wsrfc'` loads, followed through every static import: never redis.ts.
    const seen = new Set<string>();
    const walk = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const next of localImports(file)) walk(next);
    };
    walk('index.ts');
    assert.ok(!seen.has('redis.ts'), 'index.ts reaches redis.ts');
  });
});
