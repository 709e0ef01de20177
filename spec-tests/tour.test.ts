/**
 * docs/tour.md cannot go stale silently: every file it names exists, every function it names is
 * declared in the file it is named with, every RFC section a spec test is named after is in its
 * index, every index row's source cites its section, and the bytes it quotes are what the frames
 * say they are (decoded here with the test peer, not src/).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FrameDecoder, acceptFor, naiveMask, type DecodedFrame } from './helpers/peer/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TOUR = readFileSync(`${ROOT}docs/tour.md`, 'utf8');
const read = (file: string): string => readFileSync(ROOT + file, 'utf8');
const PATH = /^(src|spec-tests|fuzz|examples|docs)\/[\w./-]+\.(ts|md)$/;

/** The code spans of a line. */
const spans = (line: string): string[] => [...line.matchAll(/`([^`]+)`/g)].map((match) => match[1]!);

/** Is `name` (a function, class, or `Class.method`) declared in `source`? */
function declares(source: string, name: string): boolean {
  const [first, member] = name.split('.') as [string, string | undefined];
  if (member === undefined)
    return new RegExp(`^(export )?(async )?(function|class|const|let) ${first}\\b`, 'm').test(source);
  const start = source.search(new RegExp(`^(export )?(abstract )?class ${first}\\b`, 'm'));
  if (start < 0) return false;
  const next = source.slice(start + 1).search(/^(export )?(abstract )?class /m);
  const body = next < 0 ? source.slice(start) : source.slice(start, start + 1 + next);
  const modifiers = '(?:(?:private|protected|public|readonly|static|async|override|get|set) )*';
  return new RegExp(`^  ${modifiers}${member}(\\(|<| =|:)`, 'm').test(body);
}

describe('docs/tour.md: the life of one connection', () => {
  const codeLines = TOUR.split('\n').filter((line) => line.startsWith('**Code:**'));
  const testLines = TOUR.split('\n').filter((line) => line.startsWith('**Test:**'));

  it('every step names its code (file and functions) and the tests that pin it', () => {
    assert.equal(codeLines.length, 9);
    assert.equal(testLines.length, 9);
  });

  it('every function named is declared in the file it is named with', () => {
    for (const line of codeLines) {
      let file: string | null = null;
      for (const span of spans(line)) {
        if (PATH.test(span)) {
          assert.ok(existsSync(ROOT + span), `${span} does not exist`);
          file = span;
          continue;
        }
        assert.ok(file !== null, `${span} is named before any file`);
        assert.ok(declares(read(file), span), `${span} is not declared in ${file}`);
      }
    }
  });

  it('every file named anywhere in the tour exists', () => {
    // Line by line, outside the fenced blocks of bytes.
    const prose = TOUR.split(/^```[\s\S]*?^```$/m)
      .join('\n')
      .split('\n');
    const named = prose.flatMap(spans).filter((span) => PATH.test(span));
    assert.ok(named.length > 50, `${named.length} files named`);
    for (const file of named) assert.ok(existsSync(ROOT + file), `${file} does not exist`);
  });

  it("the quoted handshake's Sec-WebSocket-Accept follows from its key (RFC 6455 §4.2.2)", () => {
    const key = /<- Sec-WebSocket-Key: (\S+)/.exec(TOUR)![1]!;
    const accept = /-> Sec-WebSocket-Accept: (\S+)/.exec(TOUR)![1]!;
    assert.equal(accept, acceptFor(key));
  });

  it('every quoted frame header decodes to what its trace line says, and its masked bytes are its payload masked', () => {
    const lines = TOUR.split('\n');
    let checked = 0;
    for (let i = 0; i < lines.length; i++) {
      const first = /^(<-|->) (\w+) +fin=(\d) rsv=(\d{3}) (?:mask=([0-9a-f]{8})|unmasked) len=(\d+) ([0-9a-f]+)/.exec(
        lines[i]!,
      );
      if (first === null) continue;
      const explained = /header ([0-9a-f]+) \| length (\d+) in (the 7-bit field|7\+16 bits|7\+64 bits)/.exec(
        lines[i + 1]!,
      );
      assert.ok(explained !== null, `no explanation under ${lines[i]}`);
      const [, , name, fin, rsv, mask, length, preview] = first;
      const header = Buffer.from(explained[1]!, 'hex');
      const payload = Buffer.from(preview!, 'hex');
      const complete = payload.length === Number(length);
      // Decode header + payload with the peer's decoder (masked again when the frame was).
      const key = mask === undefined ? null : Buffer.from(mask, 'hex');
      const frames: DecodedFrame[] = [];
      const decoder = new FrameDecoder((frame) => frames.push(frame));
      decoder.push(Buffer.concat([header, key === null ? payload : naiveMask(payload, key)]));
      if (complete) {
        assert.equal(frames.length, 1, lines[i]);
        const frame = frames[0]!;
        assert.equal(frame.fin, fin === '1');
        assert.equal(`${+frame.rsv1}${+frame.rsv2}${+frame.rsv3}`, rsv);
        const opcodes: Record<string, number> = { TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };
        assert.equal(frame.opcode, opcodes[name!], lines[i]);
        assert.equal(frame.payload.toString('hex'), preview);
        assert.equal(frame.maskKey?.toString('hex') ?? null, mask ?? null);
        const masked = /\| masked ([0-9a-f]+)/.exec(lines[i + 1]!);
        if (key !== null) assert.equal(masked![1], naiveMask(payload, key).toString('hex'));
      }
      const lengthForm = header[1]! & 0x7f;
      const form = lengthForm < 126 ? 'the 7-bit field' : lengthForm === 126 ? '7+16 bits' : '7+64 bits';
      assert.equal(explained[3], form, lines[i]);
      assert.equal(Number(explained[2]), Number(length));
      checked++;
    }
    assert.equal(checked, 8, 'the 8 frames of the run');
  });
});

describe('docs/tour.md: the index from RFC section to source and tests', () => {
  const rows = TOUR.split('\n')
    .filter((line) => /^\| RFC (6455|7692|8441) §/.test(line))
    .map((line) => {
      const cells = line.split('|').map((cell) => cell.trim());
      return { section: cells[1]!, sources: spans(cells[3]!), tests: spans(cells[4]!) };
    });

  it('every RFC section a spec test file is named after is in the index', () => {
    const named = readdirSync(`${ROOT}spec-tests`)
      .map((file) => /^rfc(6455|7692)-([\d.]+)-/.exec(file))
      .filter((match) => match !== null)
      .map((match) => `RFC ${match[1]} §${match[2]}`);
    assert.ok(named.length > 10);
    const sections = new Set(rows.map((row) => row.section));
    for (const section of new Set(named)) assert.ok(sections.has(section), `${section} is not in the index`);
  });

  it('every spec test file named after an RFC section is listed in the index', () => {
    const listed = new Set(rows.flatMap((row) => row.tests));
    for (const file of readdirSync(`${ROOT}spec-tests`).filter((name) => /^rfc\d+-.*\.test\.ts$/.test(name)))
      assert.ok(listed.has(`spec-tests/${file}`), `spec-tests/${file} is not in the index`);
  });

  it("every file in the index exists, and some source of each row cites the row's section", () => {
    assert.ok(rows.length >= 25);
    for (const { section, sources, tests } of rows) {
      for (const file of [...sources, ...tests])
        assert.ok(existsSync(ROOT + file), `${section}: ${file} does not exist`);
      assert.ok(tests.length > 0, `${section} has no test`);
      if (sources.length === 0) continue;
      const number = section.slice(section.indexOf('§'));
      assert.ok(
        // The section or one of its subsections: §7.1 is cited by "§7.1.1", not by "§7.10".
        sources.some((file) => new RegExp(`${number.replace(/\./g, '\\.')}(?!\\d)`).test(read(file))),
        `${section}: none of ${sources.join(', ')} cites ${number}`,
      );
    }
  });
});
