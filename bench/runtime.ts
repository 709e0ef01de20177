/**
 * The runtime the benchmark's servers run on (`--runtime` of bench/server.ts); the load generator
 * always runs on the Node that runs the benchmark, so the load is the same whatever serves it.
 *
 *   node (default)   this Node, the server scripts through tsx
 *   node22, bun, ... a runtime pinned in scripts/runtimes.json, from the cache scripts/install-runtimes.mjs fills
 *   PATH             a binary: bun and deno by their name, anything else is taken for a node
 *
 * Bun and Deno run the TypeScript server scripts themselves. Deno needs sloppy imports: the scripts
 * import `./common.js` for `./common.ts`, as tsc's NodeNext resolution wants.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

export interface BenchRuntime {
  kind: 'node' | 'bun' | 'deno';
  binary: string;
  /** What `--version` says. */
  version: string;
  /** The argv that runs a server script; `nodeFlags` (--cpu-prof ...) only apply to node. */
  command(script: string, nodeFlags: string[]): string[];
}

function cached(name: string): string | null {
  const pins = JSON.parse(readFileSync(join(ROOT, 'scripts', 'runtimes.json'), 'utf8')) as {
    cache: string;
    runtimes: Array<{ name: string; version: string; binary: string }>;
  };
  const pin = pins.runtimes.find((runtime) => runtime.name === name);
  if (pin === undefined) return null;
  const cache = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), pins.cache);
  const binary = join(cache, `${pin.name}-${pin.version}`, pin.binary);
  if (!existsSync(binary))
    throw new Error(`--runtime ${name}: ${binary} is missing; node scripts/install-runtimes.mjs`);
  return binary;
}

export function benchRuntime(spec: string | undefined): BenchRuntime {
  const binary = spec === undefined || spec === 'node' ? process.execPath : (cached(spec) ?? spec);
  if (!existsSync(binary)) throw new Error(`--runtime: no such runtime or binary: ${spec}`);
  const name = basename(binary);
  const kind = name.startsWith('bun') ? 'bun' : name.startsWith('deno') ? 'deno' : 'node';
  const probe = spawnSync(binary, ['--version'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  if (probe.status !== 0) throw new Error(`--runtime: ${binary} --version failed: ${probe.stderr}`);
  // `deno 2.9.6 (stable, release, x86_64-unknown-linux-gnu)`, `1.4.5`, `v22.23.5`: the number is enough.
  const version = `${kind} ${/\d+\.\d+\.\d+/.exec(probe.stdout)?.[0] ?? probe.stdout.trim()}`;
  return {
    kind,
    binary,
    version,
    command(script, nodeFlags) {
      if (kind === 'bun') return [binary, script];
      if (kind === 'deno') return [binary, 'run', '--allow-all', '--unstable-sloppy-imports', script];
      return [binary, ...nodeFlags, '--import', 'tsx', script];
    },
  };
}
