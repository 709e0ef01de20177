/**
 * The payloads of groups 12 and 13. The reference suite cuts its messages from five files it
 * ships (a JSON document, a bitmap, a German text, an HTML page, a PDF); this engine generates five
 * of the same kinds and about the same sizes instead, deterministically (a seeded generator), so
 * every run sends the same bytes: as compressible, or not, as the originals. Text sets are cut by
 * characters and sent as text, binary sets by octets and sent as binary, as the suite does (its
 * German text is sent as binary).
 */
import { deflateRawSync } from 'node:zlib';

export interface TestData {
  key: string;
  description: string;
  binary: boolean;
  /** Binary sets: the octets. */
  bytes: Buffer;
  /** Text sets: the text (every character in the Basic Multilingual Plane, so a JS index is a character). */
  text: string;
}

/** mulberry32: a small, good enough, seeded generator. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(next: () => number, items: readonly T[]): T => items[Math.floor(next() * items.length)]!;

/** A JSON document like a conformance report: agents, cases, verdicts, durations (~190 KB). */
function jsonData(): string {
  const next = random(1);
  const verdicts = ['OK', 'OK', 'OK', 'NON-STRICT', 'INFORMATIONAL', 'FAILED'];
  const agents: Record<string, Record<string, unknown>> = {};
  for (const agent of ['EchoServer/1.4.2', 'Relay/0.9.0-beta', 'Gateway/2.1']) {
    const cases: Record<string, unknown> = {};
    for (let i = 0; i < 315; i++) {
      const id = `${1 + Math.floor(i / 40)}.${1 + Math.floor((i % 40) / 8)}.${1 + (i % 8)}`;
      cases[id] = {
        behavior: pick(next, verdicts),
        behaviorClose: pick(next, verdicts.slice(0, 3)),
        duration: Math.floor(next() * 400),
        remoteCloseCode: pick(next, [1000, 1000, 1002, 1007, null]),
        reportfile: `${agent.toLowerCase().replace(/[^a-z0-9]+/g, '_')}_case_${id.replace(/\./g, '_')}.json`,
      };
    }
    agents[agent] = cases;
  }
  return JSON.stringify(agents, null, 3);
}

const SYLLABLES = [
  'der',
  'die',
  'das',
  'und',
  'ich',
  'nicht',
  'mit',
  'sich',
  'ein',
  'auf',
  'für',
  'ist',
  'wir',
  'schön',
  'Glück',
];
const WORDS = [
  'Geist',
  'Nacht',
  'Herz',
  'Welt',
  'Himmel',
  'Erde',
  'Leben',
  'Tat',
  'Wort',
  'Kraft',
  'Sinn',
  'Mädchen',
  'Zauber',
  'Tür',
  'Wünsche',
  'Träume',
  'Frühling',
  'hören',
  'größer',
  'Straße',
];

/** Verse in German (umlauts, ß), UTF-8 with a byte order mark, cut into lines and scenes (~220 KB). */
function germanText(): Buffer {
  const next = random(2);
  const lines: string[] = ['\ufeffEin Spiel in Versen, zum Prüfen von Kompression', ''];
  let size = 0;
  for (let scene = 1; size < 220_000; scene++) {
    lines.push(`${scene}. Szene`, '');
    for (let i = 0; i < 40; i++) {
      // Common words, and made-up ones from syllables, so the text compresses like prose, not like a list.
      const made = (): string =>
        Array.from({ length: 2 + Math.floor(next() * 3) }, () => pick(next, SYLLABLES)).join('');
      const words = Array.from({ length: 4 + Math.floor(next() * 6) }, () =>
        next() < 0.4 ? pick(next, SYLLABLES) : next() < 0.5 ? pick(next, WORDS) : made(),
      );
      const line = words.join(' ');
      lines.push(line.charAt(0).toUpperCase() + line.slice(1) + pick(next, [',', '.', '!', '?', ';']));
      size += Buffer.byteLength(lines[lines.length - 1]!) + 1;
    }
    lines.push('');
  }
  return Buffer.from(lines.join('\n'));
}

/** A report page: a style sheet, then table rows (~260 KB, a few characters outside ASCII). */
function htmlData(): string {
  const next = random(3);
  const parts = ['<!DOCTYPE html>\n<html>\n   <head>\n      <meta charset="utf-8" />\n      <style lang="css">\n'];
  for (const selector of ['body', 'p#intro', 'table', 'td.case_ok', 'td.case_failed', 'td.case_info', 'pre.wirelog'])
    parts.push(
      `${selector} {\n   color: #${Math.floor(next() * 0xffffff)
        .toString(16)
        .padStart(6, '0')};\n   margin: 4px;\n}\n\n`,
    );
  parts.push(
    '      </style>\n   </head>\n   <body>\n' +
      '      <p id="intro">Bericht über die Fälle — générés</p>\n      <table>\n',
  );
  for (let i = 0; parts.join('').length < 255_000; i++) {
    const rows = [];
    for (let j = 0; j < 50; j++) {
      const id = `${1 + ((i * 50 + j) % 13)}.${1 + (j % 9)}.${1 + (i % 18)}`;
      const ok = next() < 0.9;
      rows.push(
        `         <tr class="agent_case_result_row"><td class="case">` +
          `<a href="#case_desc_${id.replace(/\./g, '_')}">Case ${id}</a></td>` +
          `<td class="${ok ? 'case_ok' : 'case_failed'}">${ok ? 'Pass' : 'Fail'}</td>` +
          `<td>${Math.floor(next() * 2000)} ms</td></tr>\n`,
      );
    }
    parts.push(rows.join(''));
  }
  parts.push('      </table>\n   </body>\n</html>\n');
  return parts.join('');
}

/** A 512x512 8-bit grey bitmap (BMP): smooth shapes and some noise (~263 KB). */
function bitmap(): Buffer {
  const next = random(4);
  const width = 512;
  const header = Buffer.alloc(54 + 1024);
  header.write('BM', 0, 'latin1');
  header.writeUInt32LE(header.length + width * width, 2);
  header.writeUInt32LE(header.length, 10);
  header.writeUInt32LE(40, 14);
  header.writeInt32LE(width, 18);
  header.writeInt32LE(width, 22);
  header.writeUInt16LE(1, 26);
  header.writeUInt16LE(8, 28);
  header.writeUInt32LE(width * width, 34);
  for (let i = 0; i < 256; i++) header.writeUInt32LE(i * 0x010101, 54 + i * 4);
  const pixels = Buffer.alloc(width * width);
  for (let y = 0; y < width; y++)
    for (let x = 0; x < width; x++) {
      const shade = 128 + 60 * Math.sin(x / 37) * Math.cos(y / 23) + 40 * Math.sin((x + y) / 91);
      pixels[y * width + x] = Math.max(0, Math.min(255, Math.round(shade + (next() - 0.5) * 14)));
    }
  return Buffer.concat([header, pixels]);
}

/** A PDF-like file: compressed streams alternating with plain page content (~1 MB, compresses somewhat). */
function pdfLike(): Buffer {
  const next = random(5);
  const parts: Buffer[] = [Buffer.from('%PDF-1.2\n%\xe2\xe3\xcf\xd3\n', 'latin1')];
  let size = 0;
  for (let object = 1; size < 1_040_000; object++) {
    let stream: Buffer;
    if (object % 2 === 1) {
      const content = Buffer.alloc(24_000);
      for (let i = 0; i < content.length; i++) content[i] = next() < 0.45 ? Math.floor(next() * 256) : 0x20 + (i % 60);
      stream = deflateRawSync(content);
    } else {
      const lines = [];
      for (let y = 720; y > 40; y -= 14)
        lines.push(
          `BT /F${1 + Math.floor(next() * 3)} 10 Tf 72 ${y} Td ` +
            `(${pick(next, WORDS)} ${Math.floor(next() * 1e6)}) Tj ET`,
        );
      stream = Buffer.from(lines.join('\n'));
    }
    const filter = object % 2 === 1 ? ' /Filter /FlateDecode' : '';
    const head = Buffer.from(`${object} 0 obj\n<< /Length ${stream.length}${filter} >>\nstream\n`);
    const tail = Buffer.from(`\nendstream\nendobj\n`);
    parts.push(head, stream, tail);
    size += head.length + stream.length + tail.length;
  }
  parts.push(Buffer.from('trailer\n<< /Root 1 0 R >>\n%%EOF\n'));
  return Buffer.concat(parts);
}

let cache: Map<string, TestData> | null = null;

/** The five data sets, by key, in the suite's order (12.1 to 12.5). Generated once per process. */
export function testData(): Map<string, TestData> {
  if (cache !== null) return cache;
  const json = jsonData();
  const html = htmlData();
  const sets: TestData[] = [
    { key: 'json_data1', description: 'A large JSON document', binary: false, bytes: Buffer.from(json), text: json },
    { key: 'lena512', description: 'A 512x512 grey bitmap', binary: true, bytes: bitmap(), text: '' },
    { key: 'gutenberg_faust', description: 'German verse, UTF-8', binary: true, bytes: germanText(), text: '' },
    { key: 'html_data1', description: 'A large HTML page', binary: false, bytes: Buffer.from(html), text: html },
    { key: 'ooms', description: 'A PDF-like file of compressed streams', binary: true, bytes: pdfLike(), text: '' },
  ];
  cache = new Map(sets.map((set) => [set.key, set]));
  return cache;
}

/** The order of 12.1-12.5. */
export const DATA_ORDER = ['json_data1', 'lena512', 'gutenberg_faust', 'html_data1', 'ooms'] as const;

/**
 * The next message of `length` characters (text) or octets (binary) from `data`, starting at
 * `from` and wrapping around; returns it and where the next one starts (the suite's sendOne).
 */
export function nextMessage(data: TestData, from: number, length: number): { payload: Buffer; next: number } {
  if (length === 0) return { payload: Buffer.alloc(0), next: from };
  const total = data.binary ? data.bytes.length : data.text.length;
  const to = (from + length) % total;
  if (data.binary) {
    const payload =
      to > from
        ? data.bytes.subarray(from, to)
        : Buffer.concat([data.bytes.subarray(from), data.bytes.subarray(0, to)]);
    return { payload, next: to };
  }
  const text = to > from ? data.text.slice(from, to) : data.text.slice(from) + data.text.slice(0, to);
  return { payload: Buffer.from(text), next: to };
}
