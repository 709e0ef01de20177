/**
 * `npm run coverage [-- TEST_FILE...]`: the suite's line and branch coverage of src/, per folder, with
 * Node's own test coverage (V8's block coverage, mapped to the TypeScript sources through the source
 * maps tsx gives Node). Runs the test files of `npm test` but the two that test the packed package
 * (or the ones named), writes the LCOV report
 * to reports/coverage/lcov.info and the untaken branches of every file to reports/coverage/untaken.txt,
 * and prints the table per folder and the untaken branches of src/protocol/ (the pure core).
 *
 * Node 20 has no --test-coverage-include, so the report covers every file the tests load and this
 * script keeps src/. Node counts every line of a file (comments and blank lines too) and a branch per
 * block V8 reports; a function never called counts as one untaken branch, its inner blocks unseen.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';

const out = 'reports/coverage';
mkdirSync(out, { recursive: true });
/**
 * These test the packed package: one compiles consumers against dist/'s declarations, the other runs
 * dist/ on other runtimes in a fresh project. Neither runs a line of src/, and they are the slowest.
 */
const PACKAGE_TESTS = ['spec-tests/package-types.test.ts', 'spec-tests/runtime-matrix.test.ts'];
const files =
  process.argv.length > 2
    ? process.argv.slice(2)
    : ['spec-tests', 'fuzz'].flatMap((dir) =>
        readdirSync(dir)
          .filter((name) => name.endsWith('.test.ts') && !PACKAGE_TESTS.includes(`${dir}/${name}`))
          .sort()
          .map((name) => `${dir}/${name}`),
      );
const run = spawnSync(
  process.execPath,
  [
    '--experimental-test-coverage',
    '--import',
    'tsx',
    '--test',
    '--test-reporter=dot',
    '--test-reporter-destination=stdout',
    '--test-reporter=lcov',
    `--test-reporter-destination=${out}/lcov.info`,
    ...files,
  ],
  { stdio: ['ignore', 'inherit', 'inherit'] },
);

/** LCOV records of src/: lines found and hit, branches found and hit, untaken branch lines. */
const records = [];
let current = null;
for (const line of readFileSync(`${out}/lcov.info`, 'utf8').split('\n')) {
  if (line.startsWith('SF:')) {
    const file = line.slice(3).replace(`${process.cwd()}/`, '');
    current = file.startsWith('src/') ? { file, lf: 0, lh: 0, brf: 0, brh: 0, untaken: [] } : null;
    if (current !== null) records.push(current);
  } else if (current !== null) {
    const [key, value] = line.split(':');
    if (key === 'LF') current.lf = Number(value);
    else if (key === 'LH') current.lh = Number(value);
    else if (key === 'BRF') current.brf = Number(value);
    else if (key === 'BRH') current.brh = Number(value);
    else if (key === 'BRDA') {
      const [lineNumber, , , taken] = value.split(',');
      if (taken === '0' || taken === '-') current.untaken.push(Number(lineNumber));
    }
  }
}

const folderOf = (file) => {
  const parts = file.split('/');
  return parts.length > 2 ? `src/${parts[1]}/` : 'src/ (entry points)';
};
const folders = new Map();
for (const record of records) {
  const folder = folderOf(record.file);
  const sum = folders.get(folder) ?? { lf: 0, lh: 0, brf: 0, brh: 0, files: 0 };
  for (const key of ['lf', 'lh', 'brf', 'brh']) sum[key] += record[key];
  sum.files++;
  folders.set(folder, sum);
}
const percent = (hit, found) => (found === 0 ? '-' : `${((100 * hit) / found).toFixed(1)} %`);
const order = [
  'src/protocol/',
  'src/driver/',
  'src/websocket/',
  'src/scale/',
  'src/learn/',
  'src/cli/',
  'src/ (entry points)',
];
const total = { lf: 0, lh: 0, brf: 0, brh: 0 };
const rows = [];
for (const folder of [...order, ...[...folders.keys()].filter((f) => !order.includes(f))]) {
  const sum = folders.get(folder);
  if (sum === undefined) continue;
  for (const key of Object.keys(total)) total[key] += sum[key];
  rows.push(
    `| \`${folder}\` | ${sum.files} | ${percent(sum.lh, sum.lf)} (${sum.lh}/${sum.lf}) | ` +
      `${percent(sum.brh, sum.brf)} (${sum.brh}/${sum.brf}) |`,
  );
}
const table = [
  '| folder | files | lines | branches |',
  '|---|---|---|---|',
  ...rows,
  `| **all of src/** | ${records.length} | ${percent(total.lh, total.lf)} | ${percent(total.brh, total.brf)} |`,
];
const untaken = records
  .filter((r) => r.untaken.length > 0)
  .map((r) => `${r.file}: ${percent(r.brh, r.brf)} of ${r.brf} branches; untaken at lines ${r.untaken.join(', ')}`);
writeFileSync(`${out}/untaken.txt`, untaken.join('\n') + '\n');
console.log(`\nCoverage of src/ by ${files.length} test files (Node ${process.versions.node}):\n`);
console.log(table.join('\n'));
console.log('\nUntaken branches of src/protocol/ (every file: reports/coverage/untaken.txt):');
for (const line of untaken.filter((l) => l.startsWith('src/protocol/'))) console.log(`  ${line}`);
process.exit(run.status ?? 1);
