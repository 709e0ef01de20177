/**
 * Waiting on another process without betting on how fast the machine is today. A busy machine
 * makes a process slow, not idle: it keeps using CPU, or printing, as it goes. So a wait on a child
 * process is given up only when the child and every process under it have used no CPU time and it
 * has printed nothing for QUIET_MS: it is stuck (or waiting on something that never comes), however
 * long a slow start or a long run takes. Where there is no /proc (not Linux), the CPU time cannot be
 * read and only the output counts as a sign of life.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';

/** How long a process may show no sign of life at all before a wait on it fails. */
export const QUIET_MS = 60_000;

const PROC = existsSync('/proc/self/stat');

/** utime + stime + cutime + cstime of one /proc/PID/stat, and its parent; null when it is gone. */
function readStat(pid: string): { parent: string; ticks: number } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name, in parentheses, may hold spaces and parentheses: the fields follow the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // From there: state, ppid, ... utime is field 14 of the line, so index 11 here; then stime, cutime, cstime.
  const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  return { parent: fields[1]!, ticks };
}

/** The CPU time (in clock ticks) used so far by `root` and every process under it; null without /proc. */
export function treeCpuTicks(root: number): number | null {
  if (!PROC) return null;
  const children = new Map<string, string[]>();
  const ticks = new Map<string, number>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = readStat(pid);
    if (stat === null) continue;
    ticks.set(pid, stat.ticks);
    const siblings = children.get(stat.parent);
    if (siblings === undefined) children.set(stat.parent, [pid]);
    else siblings.push(pid);
  }
  let total = 0;
  const todo = [String(root)];
  while (todo.length > 0) {
    const pid = todo.pop()!;
    total += ticks.get(pid) ?? 0;
    todo.push(...(children.get(pid) ?? []));
  }
  return total;
}

/**
 * Resolve or reject as `waiting` does; reject earlier only when `child` shows no sign of life for
 * QUIET_MS: no CPU time used by it or its descendants, and no change in `output()` (what it printed
 * so far, say its length).
 */
export function whileAlive<T>(
  child: ChildProcess,
  waiting: Promise<T>,
  what: string,
  output: () => unknown = () => null,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let last = '';
    let changedAt = Date.now();
    const look = (): void => {
      const seen = JSON.stringify([child.pid === undefined ? null : treeCpuTicks(child.pid), output()]);
      if (seen !== last) [last, changedAt] = [seen, Date.now()];
      else if (Date.now() - changedAt >= QUIET_MS) {
        clearInterval(timer);
        reject(new Error(`${what}: the process used no CPU and printed nothing for ${QUIET_MS} ms`));
      }
    };
    const timer = setInterval(look, 500);
    look();
    waiting.then(
      (value) => {
        clearInterval(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearInterval(timer);
        reject(error);
      },
    );
  });
}
