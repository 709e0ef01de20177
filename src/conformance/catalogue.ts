/**
 * The case set: Autobahn|Testsuite's 517 cases (release 0.8.2: groups 1-7, 9, 10, 12 and 13), in
 * the suite's order, with its group and subgroup titles, and the selection of cases by pattern
 * (`--cases 1.*,6.4.*,12.2.3`).
 */
import { closeCases } from './cases-close.js';
import { deflateCases, deflateSubgroups } from './cases-deflate.js';
import { framingCases } from './cases-framing.js';
import { limitsCases } from './cases-limits.js';
import { UTF8_SUBGROUPS, utf8Cases } from './cases-utf8.js';
import type { CaseDefinition } from './script.js';

/** The suite's group titles. */
export const GROUPS: Readonly<Record<string, string>> = {
  1: 'Framing',
  2: 'Pings/Pongs',
  3: 'Reserved Bits',
  4: 'Opcodes',
  5: 'Fragmentation',
  6: 'UTF-8 Handling',
  7: 'Close Handling',
  9: 'Limits/Performance',
  10: 'Auto-Fragmentation',
  12: 'WebSocket Compression (different payloads)',
  13: 'WebSocket Compression (different parameters)',
};

const SUBGROUPS: Readonly<Record<string, string>> = {
  '1.1': 'Text Messages',
  '1.2': 'Binary Messages',
  '4.1': 'Non-control Opcodes',
  '4.2': 'Control Opcodes',
  '6.1': 'Valid UTF-8 with zero payload fragments',
  '6.2': 'Valid UTF-8 unfragmented, fragmented on code-points and within code-points',
  '6.3': 'Invalid UTF-8 differently fragmented',
  '6.4': 'Fail-fast on invalid UTF-8',
  '7.1': 'Basic close behavior (fuzzer initiated)',
  '7.3': 'Close frame structure: payload length (fuzzer initiated)',
  '7.5': 'Close frame structure: payload value (fuzzer initiated)',
  '7.7': 'Close frame structure: valid close codes (fuzzer initiated)',
  '7.9': 'Close frame structure: invalid close codes (fuzzer initiated)',
  '7.13': 'Informational close information (fuzzer initiated)',
  '9.1': 'Text Message (increasing size)',
  '9.2': 'Binary Message (increasing size)',
  '9.3': 'Fragmented Text Message (fixed size, increasing fragment size)',
  '9.4': 'Fragmented Binary Message (fixed size, increasing fragment size)',
  '9.5': 'Text Message (fixed size, increasing chop size)',
  '9.6': 'Binary Text Message (fixed size, increasing chop size)',
  '9.7': 'Text Message Roundtrip Time (fixed number, increasing size)',
  '9.8': 'Binary Message Roundtrip Time (fixed number, increasing size)',
  '10.1': 'Auto-Fragmentation',
};

/** The title of a case's subgroup (the first two numbers of its id), when it has one. */
export function subgroupTitle(id: string): string | null {
  const key = id.split('.').slice(0, 2).join('.');
  return SUBGROUPS[key] ?? UTF8_SUBGROUPS[key] ?? deflateSubgroups()[key] ?? null;
}

/** Compare case ids as tuples of numbers ('9.10' after '9.9'). */
export function compareIds(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? -1) - (y[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

let all: CaseDefinition[] | null = null;

/** Every case, in order. */
export function allCases(): CaseDefinition[] {
  all ??= [...framingCases(), ...utf8Cases(), ...closeCases(), ...limitsCases(), ...deflateCases()].sort((a, b) =>
    compareIds(a.id, b.id),
  );
  return all;
}

/**
 * The cases a comma-separated list of patterns selects, in order, without repeats. A pattern names
 * one case, or with `*` standing for anything, the ids it spells out whole: `6.4.*` is 6.4.1-6.4.4,
 * `13.*.1` is 13.1.1, 13.2.1 ... (the suite's configuration matches only the start, so there
 * `13.*.1` also takes 13.1.10). Throws a RangeError for a pattern that selects nothing.
 */
export function selectCases(patterns: string): CaseDefinition[] {
  const cases = allCases();
  const chosen = new Set<string>();
  for (const raw of patterns.split(',')) {
    const pattern = raw.trim();
    if (pattern === '') continue;
    let matched = 0;
    if (pattern.includes('*')) {
      const regex = new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
      for (const c of cases)
        if (regex.test(c.id)) {
          chosen.add(c.id);
          matched++;
        }
    } else if (cases.some((c) => c.id === pattern)) {
      chosen.add(pattern);
      matched++;
    }
    if (matched === 0) throw new RangeError(`no case matches "${pattern}"`);
  }
  return cases.filter((c) => chosen.has(c.id));
}
