/**
 * Coverage instrumentation for the fuzzing engine: jazzer.js's own instrumentor (its ES module loader,
 * pure JavaScript, from `@jazzer.js/instrumentor`) rewrites every module of `src/` as it is loaded, so
 * that each branch bumps a counter and each comparison with a literal is reported. The loader expects
 * a global `Fuzzer` with a coverage tracker and a tracer, which jazzer.js implements in its native
 * libFuzzer addon; that addon does not load on this machine (fuzz/README.md says why), so this file
 * implements the same interface in JavaScript for fuzz/engine/engine.ts.
 *
 * Import this module before any module of `src/`: modules loaded earlier are not instrumented.
 */
import { createRequire, register } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** One counter array per instrumented module, in load order: the edges of the whole of `src/`. */
export const moduleCounters: Buffer[] = [];

/**
 * Operands of failed comparisons against literals, most recent last (libFuzzer's "table of recent
 * compares"): a parser that compares a header name with 'sec-websocket-key' gives the mutator that
 * string to insert.
 */
export const recentCompares: string[] = [];
const MAX_RECENT = 1024;
let compareCursor = 0;

function remember(value: string): void {
  if (value.length === 0 || value.length > 64) return;
  if (recentCompares.length < MAX_RECENT) recentCompares.push(value);
  else recentCompares[compareCursor++ % MAX_RECENT] = value;
}

function compareStrings(a: unknown, b: unknown, operator: string): boolean {
  const equal = operator === '==' || operator === '!=' ? a == b : a === b;
  if (!equal) {
    if (typeof a === 'string') remember(a);
    if (typeof b === 'string') remember(b);
  }
  return operator === '==' || operator === '===' ? equal : !equal;
}

function compareNumbers(a: number, b: number, operator: string): boolean {
  if (Number.isInteger(a) && Number.isInteger(b) && a !== b) {
    remember(String(a));
    remember(String(b));
  }
  switch (operator) {
    case '==':
      return a == b;
    case '===':
      return a === b;
    case '!=':
      return a != b;
    case '!==':
      return a !== b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    default:
      throw new Error(`unexpected comparison operator ${operator}`);
  }
}

const tracer = {
  traceStrCmp: (a: unknown, b: unknown, operator: string): boolean => compareStrings(a, b, operator),
  traceNumberCmp: (a: number, b: number, operator: string): boolean => compareNumbers(a, b, operator),
  /** A `case` label of a switch: the label is returned unchanged, the value it is compared with noted. */
  traceAndReturn: (current: unknown, target: unknown): unknown => {
    if (current !== target) {
      if (typeof target === 'string') remember(target);
      else if (typeof target === 'number' && Number.isInteger(target)) remember(String(target));
    }
    return target;
  },
  traceUnequalStrings: (): void => {},
  traceStringContainment: (): void => {},
  tracePcIndir: (): void => {},
  guideTowardsEquality: (): void => {},
  guideTowardsContainment: (): void => {},
  exploreState: (): void => {},
};

const coverageTracker = {
  createModuleCounters(size: number): Buffer {
    const counters = Buffer.alloc(size);
    moduleCounters.push(counters);
    return counters;
  },
};

Object.assign(globalThis, {
  Fuzzer: { coverageTracker, tracer },
  // The loader registers each module's source map for stack traces; ours come from tsx already.
  __jazzer_registerSourceMap: (): void => {},
});

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const loader = createRequire(import.meta.url).resolve('@jazzer.js/instrumentor/dist/esm-loader.mjs');
// Registered after tsx (`node --import tsx`): jazzer's hook runs first and asks tsx for the
// JavaScript of each TypeScript module, then instruments it.
register(pathToFileURL(loader), {
  data: { includes: [SRC], excludes: ['node_modules'], coverage: false, seed: 1 },
});

/** Counters of edges hit since the last reset are non-zero. */
export function resetCounters(): void {
  for (const counters of moduleCounters) counters.fill(0);
}

/** How many edges the instrumented modules have in all. */
export function totalEdges(): number {
  let total = 0;
  for (const counters of moduleCounters) total += counters.length;
  return total;
}
