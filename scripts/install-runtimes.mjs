#!/usr/bin/env node
/**
 * Installs the runtimes the matrix test (spec-tests/runtime-matrix.test.ts) runs the package on:
 * the exact versions pinned in scripts/runtimes.json, from the npm registry (`npm pack`, which checks
 * the tarball's integrity against the registry), into a cache outside the repository:
 * `${XDG_CACHE_HOME:-~/.cache}/wsrfc-runtimes/<name>-<version>/`. A runtime already there is reused.
 *
 * Plain JavaScript on purpose: `.ci/run` calls it before `npm ci`, with nothing but Node and npm.
 * It never fails the build: a runtime that cannot be installed gets a line saying it is skipped and
 * why, and a `<name>-<version>.failed` file holding the reason, which the matrix test reports when
 * it skips that runtime.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const pins = JSON.parse(readFileSync(new URL('runtimes.json', import.meta.url), 'utf8'));
const cache = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), pins.cache);
mkdirSync(cache, { recursive: true });

async function install(runtime) {
  const started = Date.now();
  const id = `${runtime.name}-${runtime.version}`;
  const home = join(cache, id);
  const failed = join(cache, `${id}.failed`);
  const binary = join(home, runtime.binary);
  const seconds = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  try {
    if (!existsSync(binary)) {
      if (process.platform !== 'linux' || process.arch !== 'x64') {
        throw new Error(`the pinned packages are for linux-x64, this is ${process.platform}-${process.arch}`);
      }
      // Unpacked beside the cache entry, then renamed into place: a half-written entry is never reused.
      const work = mkdtempSync(join(cache, `.${id}-`));
      try {
        const spec = `${runtime.package}@${runtime.version}`;
        const { stdout } = await run('npm', ['pack', '--loglevel=error', '--pack-destination', work, spec], {
          timeout: 300_000,
        });
        const tarball = stdout.trim().split('\n').pop();
        const unpacked = join(work, 'package');
        mkdirSync(unpacked);
        await run('tar', ['-xzf', join(work, tarball), '-C', unpacked, '--strip-components=1']);
        rmSync(home, { recursive: true, force: true });
        renameSync(unpacked, home);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    }
    const { stdout } = await run(binary, ['--version'], { timeout: 60_000 });
    const version = stdout.trim().split('\n')[0];
    if (!version.includes(runtime.version)) throw new Error(`${binary} --version says ${version}`);
    rmSync(failed, { force: true });
    console.log(`runtime ${runtime.label}: ${version} at ${binary} (${seconds()})`);
  } catch (error) {
    // npm's own words (its first two `npm error` lines) say more than "Command failed".
    const npmSays = String(error.stderr ?? '')
      .split('\n')
      .filter((line) => line.startsWith('npm error') && !line.includes('A complete log'))
      .slice(0, 2)
      .join('; ');
    const reason = npmSays || String(error.message ?? error).split('\n')[0];
    writeFileSync(failed, `${reason}\n`);
    console.log(`runtime ${runtime.label}: skipped, ${runtime.package}@${runtime.version} did not install: ${reason}`);
  }
}

const started = Date.now();
await Promise.all(pins.runtimes.map(install));
console.log(`runtimes: ready in ${((Date.now() - started) / 1000).toFixed(1)} s, cache ${cache}`);
