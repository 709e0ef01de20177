/**
 * `npm run fuzz:coverage -- --target NAME [--minutes N] [--runs N] [--seed N] [--corpus DIR] [--no-minimize]`
 *
 * Runs one target of fuzz/targets/ under the coverage-guided engine, starting from and adding to its
 * corpus (fuzz/corpus/NAME/), then minimises the corpus. Prints executions per second and the edges
 * of src/ reached; findings go to fuzz/findings/NAME/ (not committed: a fixed finding's input moves
 * into the corpus). Exits 1 if there was a finding.
 */
import './instrument.js';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runEngine } from './engine.js';
import { TARGETS } from '../targets/index.js';

const { values } = parseArgs({
  options: {
    target: { type: 'string' },
    corpus: { type: 'string' },
    minutes: { type: 'string', default: '1' },
    runs: { type: 'string', default: String(Number.MAX_SAFE_INTEGER) },
    seed: { type: 'string' },
    'no-minimize': { type: 'boolean', default: false },
    'hang-ms': { type: 'string', default: '1000' },
    'rss-limit-mb': { type: 'string', default: '2048' },
  },
});

const name = values.target;
const load = name === undefined ? undefined : TARGETS[name];
if (name === undefined || load === undefined) {
  console.error(
    `usage: npm run fuzz:coverage -- --target NAME --minutes N\ntargets: ${Object.keys(TARGETS).join(', ')}`,
  );
  process.exit(2);
}
const target = await load();
const root = fileURLToPath(new URL('../', import.meta.url));
const seed = values.seed === undefined ? (Math.random() * 2 ** 31) >>> 0 : Number(values.seed);
console.log(`target ${name}: ${target.description}; seed ${seed}`);
const result = await runEngine({
  name,
  target,
  corpusDir: values.corpus ?? `${root}corpus/${name}`,
  findingsDir: `${root}findings/${name}`,
  durationMs: Number(values.minutes) * 60_000,
  maxRuns: Number(values.runs),
  seed,
  hangMs: Number(values['hang-ms']),
  killMs: Math.max(10_000, 10 * Number(values['hang-ms'])),
  rssLimitMb: Number(values['rss-limit-mb']),
  minimize: !values['no-minimize'],
  log: (line) => console.log(line),
});
const rate = Math.round(result.executions / result.seconds);
const percent = ((100 * result.edgesCovered) / Math.max(1, result.edgesTotal)).toFixed(1);
console.log(
  `SUMMARY ${name}: ${result.executions} executions in ${Math.round(result.seconds)} s (${rate}/s); ` +
    `${result.edgesCovered} of ${result.edgesTotal} edges (${percent} %) of the src/ modules it loads; ` +
    `${result.features} features; corpus ${result.corpusSize}; findings ${result.findings.length}`,
);
for (const file of result.findings) console.log(`  finding: ${file}`);
process.exit(result.findings.length > 0 ? 1 : 0);
