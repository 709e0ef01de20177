/**
 * The package as an embedder gets it: `npm pack` of this repository, the tarball installed with npm
 * into a fresh consumer project in a temporary directory. Also the runtimes the matrix runs it on
 * (scripts/runtimes.json, installed by scripts/install-runtimes.mjs), each found in the cache or
 * skipped with the reason.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { copyFileSync, readdirSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface PackageJson {
  name: string;
  version: string;
  exports: Record<string, string | Record<string, string>>;
  peerDependencies?: Record<string, string>;
  bin?: Record<string, string>;
  engines?: Record<string, string>;
}

export const packageJson = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;

/** The package's entry points (`exports` keys such as '.', './core'), without './package.json'. */
export function entryPoints(): string[] {
  return Object.keys(packageJson.exports).filter((key) => key !== './package.json');
}

/** The specifier a consumer imports an entry point with: '.' is 'wsrfc', './core' is 'wsrfc/core'. */
export function specifierOf(entry: string): string {
  return entry === '.' ? packageJson.name : `${packageJson.name}/${entry.slice(2)}`;
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * `npm pack` runs the `prepare` script, which empties and rebuilds dist/: two test files packing at
 * once would read each other's half-built dist/. A directory made with mkdir (atomic) serializes them.
 */
function withPackLock<T>(body: () => T): T {
  const lock = join(tmpdir(), `wsrfc-pack-${createHash('sha256').update(ROOT).digest('hex').slice(0, 12)}.lock`);
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // A lock left by a killed run is older than any pack takes.
      if (existsSync(lock) && Date.now() - statSync(lock).mtimeMs > 180_000) rmSync(lock, { recursive: true });
      if (Date.now() > deadline) throw new Error(`waited 180 s for ${lock}`);
      sleep(200);
    }
  }
  try {
    return body();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

export interface Installed {
  /** The temporary directory holding the tarball and the consumer; remove it when done. */
  work: string;
  tarball: string;
  /** The consumer project: package.json, node_modules/wsrfc installed by npm from the tarball. */
  consumer: string;
  /** The package as installed. */
  installed: string;
  /** The tarball's file list, paths relative to the package root, sorted. */
  files: string[];
}

/**
 * Pack the repository and install the tarball with npm into a fresh consumer project (`type:
 * module`), with the round-trip scripts of helpers/consumer/ copied in. Optional peer dependencies
 * the repository has installed (for its own tests) are linked in, so that their entry points compile.
 */
export function packAndInstall(): Installed {
  const work = mkdtempSync(join(tmpdir(), 'wsrfc-package-'));
  const packed = withPackLock(() =>
    execFileSync('npm', ['pack', '--silent', '--pack-destination', work], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const tarball = join(work, packed.trim().split('\n').pop()!);
  const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line !== '' && !line.endsWith('/'))
    .map((line) => line.replace(/^package\//, ''))
    .sort();
  const consumer = join(work, 'consumer');
  mkdirSync(consumer);
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // The package has no dependencies, so this needs no network.
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], {
    cwd: consumer,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const peer of Object.keys(packageJson.peerDependencies ?? {})) {
    const from = join(ROOT, 'node_modules', peer);
    const to = join(consumer, 'node_modules', peer);
    if (existsSync(from) && !existsSync(to)) {
      mkdirSync(join(to, '..'), { recursive: true });
      symlinkSync(from, to, 'dir');
    }
  }
  const scripts = fileURLToPath(new URL('consumer', import.meta.url));
  for (const name of readdirSync(scripts)) copyFileSync(join(scripts, name), join(consumer, name));
  return { work, tarball, consumer, installed: join(consumer, 'node_modules', packageJson.name), files };
}

export interface Runtime {
  name: string;
  label: string;
  package: string;
  version: string;
  kind: 'node' | 'bun' | 'deno';
  /** The binary, when installed; otherwise why not. */
  binary: string | null;
  skipReason: string | null;
}

/** The pinned runtimes, each with its binary from the cache of scripts/install-runtimes.mjs, or why it is missing. */
export function runtimes(): Runtime[] {
  const pins = JSON.parse(readFileSync(join(ROOT, 'scripts', 'runtimes.json'), 'utf8')) as {
    cache: string;
    runtimes: Array<{ name: string; label: string; package: string; version: string; binary: string }>;
  };
  const cache = join(process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), pins.cache);
  return pins.runtimes.map((pin) => {
    const id = `${pin.name}-${pin.version}`;
    const binary = join(cache, id, pin.binary);
    const kind = pin.name.startsWith('node') ? 'node' : (pin.name as 'bun' | 'deno');
    if (existsSync(binary)) return { ...pin, kind, binary, skipReason: null };
    const failed = join(cache, `${id}.failed`);
    const skipReason = existsSync(failed)
      ? `${pin.package}@${pin.version} did not install: ${readFileSync(failed, 'utf8').trim()}`
      : `${pin.package}@${pin.version} is not installed in ${cache} (node scripts/install-runtimes.mjs installs it)`;
    return { ...pin, kind, binary: null, skipReason };
  });
}

/** The command line that runs a script file under a runtime. */
export function commandFor(runtime: Runtime, script: string, args: string[] = []): [string, string[]] {
  if (runtime.kind === 'deno') return [runtime.binary!, ['run', '--allow-all', script, ...args]];
  return [runtime.binary!, [script, ...args]];
}

/** Environment for a runtime: no update checks, nothing from the test runner's Node options. */
export function environmentFor(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' };
  delete env['NODE_OPTIONS'];
  delete env['NODE_TEST_CONTEXT'];
  return env;
}
