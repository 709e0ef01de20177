/**
 * The reports of a run, in a directory, as the reference suite writes its own: `index.json` (per
 * agent, per case: behavior, behaviorClose, duration, remoteCloseCode, reportfile; what
 * `npm run autobahn:check` reads), one JSON file per case with everything recorded, and
 * `index.html`, one self-contained page (html-report.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compareIds } from './catalogue.js';
import { expectationsText } from './expect.js';
import { htmlReport } from './html-report.js';
import type { CaseResult, Results } from './result.js';

/** The suite's file names: the agent lower-cased, anything but letters and digits made '_'. */
export function reportFileName(agent: string, id: string, extension: string): string {
  const clean = agent
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]/g, ' ')
    .trim()
    .replace(/ /g, '_');
  return `${clean}_case_${id.replace(/\./g, '_')}.${extension}`;
}

export interface IndexEntry {
  behavior: string;
  behaviorClose: string;
  duration: number;
  remoteCloseCode: number | null;
  reportfile: string;
}

/** The index.json object. */
export function indexOf(results: Results): Record<string, Record<string, IndexEntry>> {
  const index: Record<string, Record<string, IndexEntry>> = {};
  for (const agent of [...results.keys()].sort()) {
    const cases: Record<string, IndexEntry> = {};
    const byCase = results.get(agent)!;
    for (const id of [...byCase.keys()].sort(compareIds)) {
      const r = byCase.get(id)!;
      cases[id] = {
        behavior: r.behavior,
        behaviorClose: r.behaviorClose,
        duration: r.duration,
        remoteCloseCode: r.remoteCloseCode,
        reportfile: reportFileName(agent, id, 'json'),
      };
    }
    index[agent] = cases;
  }
  return index;
}

/** Group results by agent and case id. */
export function collect(results: Iterable<CaseResult>, into: Results = new Map()): Results {
  for (const result of results) {
    const byCase = into.get(result.agent) ?? new Map<string, CaseResult>();
    byCase.set(result.id, result);
    into.set(result.agent, byCase);
  }
  return into;
}

/**
 * Write index.json, index.html and one JSON file per case into `dir` (created if needed), and per
 * agent `<agent>_expected.json`: its verdicts in the form `--expect` reads, to keep as golden results.
 */
export function writeReports(dir: string, results: Results, title: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'index.json'), `${JSON.stringify(indexOf(results), null, 3)}\n`);
  for (const [agent, byCase] of results) {
    for (const [id, result] of byCase)
      writeFileSync(join(dir, reportFileName(agent, id, 'json')), `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(
      join(dir, reportFileName(agent, 'expected', 'json').replace('_case_', '_')),
      expectationsText(byCase.values()),
    );
  }
  writeFileSync(join(dir, 'index.html'), htmlReport(results, title));
}
