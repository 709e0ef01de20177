/**
 * Autobahn|Testsuite's case ids, for the tests that check a run is complete: the report checker's
 * (autobahn-check.test.ts) and the conformance engine's.
 */

/**
 * Every case id of a full run of Autobahn|Testsuite 0.8.x (517), per subgroup: the case classes of
 * autobahntestsuite/case/ (6.5 to 6.23 from case6_x_x.py, 7.7 and 7.9 from the valid and invalid
 * close code lists, 12.x: 5 data sets x 18 message sizes, 13.x: 7 deflate parameter sets x 18).
 */
export const SUBGROUPS: [string, number][] = [
  ['1.1', 8],
  ['1.2', 8],
  ...Array.from({ length: 11 }, (_, i): [string, number] => [`2.${i + 1}`, 0]),
  ...Array.from({ length: 7 }, (_, i): [string, number] => [`3.${i + 1}`, 0]),
  ['4.1', 5],
  ['4.2', 5],
  ...Array.from({ length: 20 }, (_, i): [string, number] => [`5.${i + 1}`, 0]),
  ...[3, 4, 2, 4, 5, 11, 4, 2, 4, 3, 5, 8, 5, 10, 1, 3, 5, 5, 5, 7, 8, 34, 7].map((n, i): [string, number] => [
    `6.${i + 1}`,
    n,
  ]),
  ['7.1', 6],
  ['7.3', 6],
  ['7.5', 1],
  ['7.7', 13],
  ['7.9', 9],
  ['7.13', 2],
  ['9.1', 6],
  ['9.2', 6],
  ['9.3', 9],
  ['9.4', 9],
  ['9.5', 6],
  ['9.6', 6],
  ['9.7', 6],
  ['9.8', 6],
  ['10.1', 1],
  ...Array.from({ length: 5 }, (_, i): [string, number] => [`12.${i + 1}`, 18]),
  ...Array.from({ length: 7 }, (_, i): [string, number] => [`13.${i + 1}`, 18]),
];
/** A count of 0 means the subgroup id is itself the case (2.1, 3.4, 5.20). */
export const ALL_CASES = SUBGROUPS.flatMap(([prefix, n]) =>
  n === 0 ? [prefix] : Array.from({ length: n }, (_, i) => `${prefix}.${i + 1}`),
);
/** Cases per group in a full run. */
export const FULL_GROUPS: Record<string, number> = {
  1: 16,
  2: 11,
  3: 7,
  4: 10,
  5: 20,
  6: 145,
  7: 37,
  9: 54,
  10: 1,
  12: 90,
  13: 126,
};
