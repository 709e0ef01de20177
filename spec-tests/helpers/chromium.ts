/**
 * Headless Chromium for the browser tests (interop over HTTP/1.1 and HTTP/2, the explorer): find
 * it, start it on a page, and stop it with its helper processes.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, rmSync } from 'node:fs';

export const NO_CHROMIUM =
  'no Chromium found ($CHROMIUM, /usr/bin/chromium, chromium, chromium-browser); Debian: apt-get install chromium';

/** $CHROMIUM, then /usr/bin/chromium, then chromium or chromium-browser on the PATH; null when none runs. */
export function findChromium(): string | null {
  for (const candidate of [process.env['CHROMIUM'], '/usr/bin/chromium', 'chromium', 'chromium-browser']) {
    if (candidate === undefined || candidate === '') continue;
    if (candidate.startsWith('/') && !existsSync(candidate)) continue;
    const probe = spawnSync(candidate, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    if (probe.status === 0) return candidate;
  }
  return null;
}

/**
 * Chromium on `url`, with its profile in `profile`, in a process group of its own (see stopGroup).
 * The flags keep it off the network (this machine has none) and out of any sandbox that needs
 * privileges a CI container lacks; `flags` adds more.
 */
export function launchChromium(
  binary: string,
  url: string,
  profile: string,
  flags: readonly string[] = [],
): ChildProcess {
  return spawn(
    binary,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...flags,
      `--user-data-dir=${profile}`,
      url,
    ],
    { stdio: 'ignore', detached: true },
  );
}

/** Kill a child started with `detached: true` and its process group (Chromium's helpers share it), and wait. */
export async function stopGroup(child: ChildProcess | undefined): Promise<void> {
  if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
  await exited;
}

/**
 * Remove a directory a Chromium just killed may still write to for a moment: retry, and at worst
 * leave it behind, which is no reason to fail a test.
 */
export async function removeProfile(dir: string | undefined): Promise<void> {
  if (dir === undefined) return;
  for (let attempt = 0; ; attempt++) {
    try {
      rmSync(dir, { recursive: true, force: true });
      return;
    } catch (error) {
      if (attempt === 50) {
        console.log(`# could not remove ${dir}: ${(error as Error).message}`);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
