/**
 * The Python interpreter that drives an interop peer (a script in this folder), and skipping with
 * a reason when there is none. Tried in order: $PYTHON, Debian's /usr/bin/python3, then `python3`
 * on the PATH; the first that runs `SCRIPT probeArg` successfully is used, and what it printed is
 * kept (a version, or facts about the library). Run from the temporary directory: the
 * repository's autobahn/ folder would shadow the autobahn package.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { whileAlive } from './alive.js';
import { skipBecause } from './library.js';

export type Found = { python: string; output: string } | { python: null; why: string };

export function findPython(script: string, probeArg: string, library: string, debianPackage: string): Found {
  const tried: string[] = [];
  for (const candidate of [process.env['PYTHON'], '/usr/bin/python3', 'python3']) {
    if (candidate === undefined || candidate === '') continue;
    const probe = spawnSync(candidate, [script, probeArg], { encoding: 'utf8', timeout: 20_000, cwd: tmpdir() });
    if (probe.status === 0) return { python: candidate, output: probe.stdout.trim() };
    tried.push(`${candidate}: ${probe.error?.message ?? probe.stderr.trim().split('\n').pop()}`);
  }
  return {
    python: null,
    why: `no Python with ${library} (${tried.join('; ')}); Debian: apt-get install ${debianPackage}`,
  };
}

/** The interpreter found, or null after skipping the test with the reason there is none. */
export function pythonOrSkip(t: { skip(message: string): void }, found: Found): string | null {
  return found.python !== null ? found.python : (skipBecause(t, found.why), null);
}

/**
 * Run `python SCRIPT ...args` to the end, however long a busy machine takes, and resolve with what
 * it printed; reject with the end of its stderr when it fails, or kill it once it shows no sign of
 * life (helpers/alive.ts). `started` gets the child, to kill it if the test ends first.
 */
export function runPython(
  python: string,
  script: string,
  args: string[],
  started: (child: ChildProcess) => void = () => {},
): Promise<string> {
  const child = spawn(python, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: tmpdir() });
  started(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const ended = new Promise<string>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`python exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
    });
  });
  const what = `python ${script.split('/').pop()} ${args[0] ?? ''}`;
  return whileAlive(child, ended, what, () => stdout.length + stderr.length).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
}
