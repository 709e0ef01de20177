/**
 * Expected verdicts (`--expect FILE`): a run passes when each case's two verdicts are the ones the
 * file gives. The file is either an object of case ids, each with its [behavior, behaviorClose]:
 *
 *   { "1.1.1": ["OK", "OK"], "6.4.1": ["NON-STRICT", "OK"], ... }
 *
 * or an index.json as a run writes it (one agent's verdicts are then the expectation).
 */
import { readFileSync } from 'node:fs';
import { compareIds } from './catalogue.js';
import { VERDICTS } from './case.js';
import type { CaseResult } from './result.js';

export type Expectations = Map<string, [string, string]>;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const known = (value: unknown): value is string =>
  typeof value === 'string' && (VERDICTS as readonly string[]).includes(value);

/** Read an expectations file; throws an Error saying what is wrong with it. */
export function readExpectations(path: string): Expectations {
  const data: unknown = JSON.parse(readFileSync(path, 'utf8'));
  if (!isObject(data)) throw new Error(`${path}: expected an object of case ids`);
  let entries = Object.entries(data);
  // An index.json: { agent: { id: { behavior, behaviorClose } } }.
  if (entries.length > 0 && entries.every(([key, value]) => !/^\d/.test(key) && isObject(value))) {
    if (entries.length !== 1) throw new Error(`${path}: an index.json with ${entries.length} agents; keep one`);
    entries = Object.entries(entries[0]![1] as Record<string, unknown>).map(([id, entry]) => [
      id,
      isObject(entry) ? [entry.behavior, entry.behaviorClose] : entry,
    ]);
  }
  const expectations: Expectations = new Map();
  for (const [id, value] of entries) {
    if (!Array.isArray(value) || value.length !== 2 || !known(value[0]) || !known(value[1]))
      throw new Error(`${path}: case ${id}: expected [behavior, behaviorClose], two of ${VERDICTS.join(', ')}`);
    expectations.set(id, [value[0], value[1]]);
  }
  return expectations;
}

/** The file a set of results would be expected by (one line per case). */
export function expectationsText(results: Iterable<CaseResult>): string {
  const sorted = [...results].sort((a, b) => compareIds(a.id, b.id));
  // As prettier writes it, so a file written here and checked in stays as it is.
  const lines = sorted.map(
    (r) => `  ${JSON.stringify(r.id)}: [${JSON.stringify(r.behavior)}, ${JSON.stringify(r.behaviorClose)}]`,
  );
  return `{\n${lines.join(',\n')}\n}\n`;
}

/** How results differ from the expectations: one line per case that differs or is not in the file. */
export function differences(results: Iterable<CaseResult>, expectations: Expectations): string[] {
  const out: string[] = [];
  for (const r of [...results].sort((a, b) => compareIds(a.id, b.id))) {
    const expected = expectations.get(r.id);
    if (expected === undefined) out.push(`${r.id}: ${r.behavior} / ${r.behaviorClose}, and no expectation for it`);
    else if (expected[0] !== r.behavior || expected[1] !== r.behaviorClose)
      out.push(`${r.id}: ${r.behavior} / ${r.behaviorClose}, expected ${expected[0]} / ${expected[1]} (${r.result})`);
  }
  return out;
}
