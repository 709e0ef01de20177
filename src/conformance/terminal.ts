/**
 * What a run prints: progress while it runs (a line that updates in place on a terminal; elsewhere
 * a line per finished group), a line for each case that does not pass as it ends, and at the end a
 * summary table per agent, one row per group, in the columns `npm run autobahn:check` uses (a case
 * counts in the column of the worse of its two verdicts).
 */
import { GROUPS } from './catalogue.js';
import { passes, type CaseResult, type Results } from './result.js';
import type { CaseDefinition } from './script.js';

/** The table's verdict columns, best first; anything else the suite writes counts as "other". */
export const COLUMNS = ['OK', 'INFORMATIONAL', 'NON-STRICT', 'UNIMPLEMENTED', 'FAILED', 'other'] as const;
export type Column = (typeof COLUMNS)[number];
/**
 * A case goes in the column of the worse of its two values. FAILED is the worst; the close-only
 * failures (WRONG CODE, UNCLEAN, FAILED BY CLIENT) and unknown values sit just above it.
 */
const RANK: Record<Column, number> = {
  OK: 0,
  INFORMATIONAL: 1,
  'NON-STRICT': 2,
  UNIMPLEMENTED: 3,
  other: 4,
  FAILED: 5,
};

export const columnOf = (verdict: string): Column =>
  (COLUMNS as readonly string[]).includes(verdict) && verdict !== 'other' ? (verdict as Column) : 'other';

/** The column of a case: the worse of its two verdicts. */
export function caseColumn(r: { behavior: string; behaviorClose: string }): Column {
  const a = columnOf(r.behavior);
  const b = columnOf(r.behaviorClose);
  return RANK[a] >= RANK[b] ? a : b;
}

/** The summary table of one agent, as Markdown (so it pastes into an issue). */
export function summaryTable(agent: string, results: Map<string, CaseResult>): string {
  const rows = new Map<string, Record<Column, number>>();
  const total = Object.fromEntries(COLUMNS.map((c) => [c, 0])) as Record<Column, number>;
  for (const r of results.values()) {
    const group = r.id.split('.')[0]!;
    const row = rows.get(group) ?? (Object.fromEntries(COLUMNS.map((c) => [c, 0])) as Record<Column, number>);
    row[caseColumn(r)]++;
    total[caseColumn(r)]++;
    rows.set(group, row);
  }
  const header = ['Group', 'Name', 'cases', ...COLUMNS];
  const lines: string[][] = [header];
  const sum = (row: Record<Column, number>): number => COLUMNS.reduce((n, c) => n + row[c], 0);
  for (const group of [...rows.keys()].sort((a, b) => Number(a) - Number(b))) {
    const row = rows.get(group)!;
    lines.push([group, GROUPS[group] ?? '', String(sum(row)), ...COLUMNS.map((c) => String(row[c]))]);
  }
  lines.push(['', 'Total', String(sum(total)), ...COLUMNS.map((c) => String(total[c]))]);
  const widths = header.map((_, i) => Math.max(...lines.map((line) => line[i]!.length)));
  const format = (line: string[]): string =>
    `| ${line.map((cell, i) => (i === 1 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `| ${widths.map((w, i) => (i === 1 ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`;
  const failing = [...results.values()].filter((r) => !passes(r));
  const verdict = failing.length === 0 ? 'all OK or INFORMATIONAL' : `${failing.length} not OK or INFORMATIONAL`;
  return [
    `## ${agent}: ${results.size} cases, ${verdict}`,
    '',
    format(lines[0]!),
    rule,
    ...lines.slice(1).map(format),
  ].join('\n');
}

/** Every table, and the cases that did not pass. */
export function summary(results: Results): string {
  const parts: string[] = [];
  for (const agent of [...results.keys()].sort()) {
    const byCase = results.get(agent)!;
    parts.push(summaryTable(agent, byCase));
    const failing = [...byCase.values()].filter((r) => !passes(r));
    if (failing.length > 0)
      parts.push(
        failing
          .map(
            (r) =>
              `  ${r.id.padEnd(8)} ${r.behavior} / ${r.behaviorClose} ` +
              `(close code ${r.remoteCloseCode ?? '-'}): ${r.result}`,
          )
          .join('\n'),
      );
  }
  return parts.join('\n\n');
}

/** Progress while cases run. */
export class Progress {
  private done = 0;
  private running = new Set<string>();
  private readonly left = new Map<string, number>();
  private readonly started = performance.now();
  private readonly live: boolean;

  constructor(
    private readonly total: number,
    cases: CaseDefinition[],
    private readonly write: (text: string) => void,
    live: boolean,
  ) {
    this.live = live;
    for (const c of cases) {
      const group = c.id.split('.')[0]!;
      this.left.set(group, (this.left.get(group) ?? 0) + 1);
    }
  }

  private seconds(): string {
    return `${((performance.now() - this.started) / 1000).toFixed(1)} s`;
  }

  private status(): void {
    if (!this.live) return;
    const running = [...this.running].slice(0, 6).join(' ');
    this.write(
      `\r\x1b[K[${String(this.done).padStart(String(this.total).length)}/${this.total}] ` +
        `${this.seconds()}  running ${running}`,
    );
  }

  start(id: string): void {
    this.running.add(id);
    this.status();
  }

  end(result: CaseResult): void {
    this.running.delete(result.id);
    this.done++;
    const clear = this.live ? '\r\x1b[K' : '';
    if (!passes(result))
      this.write(`${clear}  ${result.id.padEnd(8)} ${result.behavior} / ${result.behaviorClose}: ${result.result}\n`);
    const group = result.id.split('.')[0]!;
    const left = (this.left.get(group) ?? 1) - 1;
    this.left.set(group, left);
    if (left === 0 && !this.live)
      this.write(`group ${group} (${GROUPS[group] ?? ''}) done: ${this.done}/${this.total} cases, ${this.seconds()}\n`);
    this.status();
  }

  finish(): void {
    if (this.live) this.write('\r\x1b[K');
    this.write(`${this.done} cases in ${this.seconds()}\n`);
  }
}
