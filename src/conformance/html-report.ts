/**
 * The HTML report: one self-contained page (styles and its few lines of script inline, nothing
 * fetched), with the grid of cases coloured by verdict, one column pair per agent, and, per case
 * and agent, its description, what it expects, the verdicts and why, the events expected and
 * received, the closing handshake's bookkeeping, the opening handshake's heads, and the frames both
 * ways decoded field by field.
 */
import { compareIds, GROUPS, subgroupTitle } from './catalogue.js';
import type { CaseResult, ObservedView, Results } from './result.js';
import type { FrameView, WireEntry } from './wirelog.js';

/** Frames shown per case: the first ones and the last ones (the per-case JSON has what was recorded). */
const SHOWN_HEAD = 40;
const SHOWN_TAIL = 12;

const escape = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** The CSS class of a verdict. */
function tone(verdict: string): string {
  switch (verdict) {
    case 'OK':
      return 'ok';
    case 'INFORMATIONAL':
      return 'info';
    case 'NON-STRICT':
      return 'nonstrict';
    case 'UNIMPLEMENTED':
      return 'unimpl';
    default:
      return 'failed';
  }
}

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 24px 48px; color: #222; background: #fafafa; }
h1 { font-size: 22px; margin: 20px 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
table { border-collapse: collapse; }
td, th { padding: 2px 8px; border: 1px solid #ddd; vertical-align: top; }
th { background: #eee; text-align: left; }
.grid td.v { text-align: center; min-width: 90px; }
.grid tr.group th { background: #333; color: #fff; }
.grid tr.sub th { background: #ddd; font-weight: normal; }
.ok { background: #b7e4b0; } .info { background: #bcd9f2; } .nonstrict { background: #f6e7a6; }
.unimpl { background: #d9d9d9; } .failed { background: #f2aaa6; }
a { color: inherit; }
details.case { background: #fff; border: 1px solid #ccc; margin: 8px 0; padding: 4px 12px; }
details.case > summary { cursor: pointer; font-weight: 600; }
details.case:target { outline: 3px solid #6a9fd8; }
.verdict { display: inline-block; padding: 0 6px; border-radius: 3px; }
pre { background: #f3f3f3; padding: 6px; overflow-x: auto; font-size: 12px; }
table.frames td { font: 12px ui-monospace, monospace; white-space: nowrap; }
table.frames td.wrap { white-space: normal; word-break: break-all; max-width: 420px; }
tr.tx td:first-child { color: #0b5394; } tr.rx td:first-child { color: #7f3f00; }
tr.event td { color: #666; font-style: italic; }
.legend td:first-child { width: 130px; }
`;

/** Open the case a link points at (details elements do not open for :target by themselves). */
const SCRIPT = `
function openTarget() {
  var el = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (el && el.tagName === 'DETAILS') el.open = true;
}
window.addEventListener('hashchange', openTarget);
window.addEventListener('DOMContentLoaded', openTarget);
`;

const LEGEND: [string, string][] = [
  ['OK', 'The implementation did what the RFC requires, in the strictest reading.'],
  [
    'NON-STRICT',
    'Conformant, but not the strictest behaviour (for instance, invalid UTF-8 noticed only at the end of the message).',
  ],
  ['INFORMATIONAL', 'The RFC leaves the outcome open; the case records what happened.'],
  ['UNIMPLEMENTED', 'The feature was not negotiated (permessage-deflate not agreed, for groups 12 and 13).'],
  ['FAILED', 'A violation of the RFC (or, for performance cases, an echo that did not come back right or in time).'],
  ['WRONG CODE', 'Closed with a close code the case does not allow.'],
  ['UNCLEAN', 'The closing handshake was not completed cleanly where it had to be.'],
  ['FAILED BY CLIENT', 'The engine, not the server, had to end the TCP connection.'],
];

export const anchor = (agentIndex: number, id: string): string => `a${agentIndex}-${id}`;

function grid(results: Results, agents: string[], ids: string[]): string {
  const rows: string[] = [];
  let group = '';
  let sub = '';
  const span = 1 + agents.length * 2;
  for (const id of ids) {
    const parts = id.split('.');
    if (parts[0] !== group) {
      group = parts[0]!;
      rows.push(
        `<tr class="group"><th>${escape(`${group} ${GROUPS[group] ?? ''}`)}</th>${agents
          .map((a) => `<th colspan="2">${escape(a)}</th>`)
          .join('')}</tr>`,
      );
    }
    const subKey = parts.slice(0, 2).join('.');
    if (parts.length > 2 && subKey !== sub) {
      sub = subKey;
      rows.push(`<tr class="sub"><th colspan="${span}">${escape(`${subKey} ${subgroupTitle(id) ?? ''}`)}</th></tr>`);
    }
    const cells = agents.map((agent, i) => {
      const r = results.get(agent)?.get(id);
      if (r === undefined) return '<td class="v">-</td><td class="v">-</td>';
      const code =
        r.behaviorClose === 'UNCLEAN'
          ? 'Unclean'
          : r.behaviorClose === 'FAILED'
            ? 'Fail'
            : String(r.remoteCloseCode ?? '');
      const time = r.reportTime ? ` <small>${r.duration} ms</small>` : '';
      return (
        `<td class="v ${tone(r.behavior)}"><a href="#${anchor(i, id)}">${escape(r.behavior)}</a>${time}</td>` +
        `<td class="v ${tone(r.behaviorClose)}" title="${escape(r.behaviorClose)}">${escape(code)}</td>`
      );
    });
    rows.push(`<tr><td>${escape(id)}</td>${cells.join('')}</tr>`);
  }
  return `<table class="grid">${rows.join('\n')}</table>`;
}

function events(list: ObservedView[] | undefined): string {
  if (list === undefined || list.length === 0) return 'nothing';
  return list
    .map((e) =>
      e.type === 'timeout'
        ? `step ${escape(e.tag)} reached with the connection open`
        : e.type === 'pong'
          ? `pong (${e.length} octets) ${escape(e.payload)}`
          : `${e.binary ? 'binary' : 'text'} message (${e.length} octets) ${escape(e.payload)}`,
    )
    .join('<br>');
}

function frameRow(f: FrameView): string {
  const rsv = `${f.rsv1 ? 1 : 0}${f.rsv2 ? 1 : 0}${f.rsv3 ? 1 : 0}`;
  const length = `${f.length} (${f.lengthForm === 7 ? '7 bits' : f.lengthForm === 16 ? '7+16 bits' : '7+64 bits'})`;
  let meaning = '';
  if (f.close !== null)
    meaning = `close ${f.close.code ?? ''} ${f.close.name}${f.close.reason === '' ? '' : ` "${f.close.reason}"`}`;
  else if (f.text !== null) meaning = `"${f.text}"`;
  if (f.compressed) meaning = `compressed (RSV1) ${meaning}`;
  if (f.chopSize !== null) meaning += ` [written in chops of ${f.chopSize}]`;
  return (
    `<tr class="${f.dir}"><td>${f.dir === 'tx' ? 'engine →' : '← peer'}</td><td>${f.at}</td>` +
    `<td>${f.fin ? 1 : 0}</td>` +
    `<td>${rsv}</td><td>${f.opcode} ${escape(f.opcodeName)}</td><td>${f.masked ? escape(f.maskKey ?? '') : '-'}</td>` +
    `<td>${escape(length)}</td><td>${escape(f.header)}</td><td class="wrap">${escape(f.masked ? f.wire : '')}</td>` +
    `<td class="wrap">${escape(f.payload)}</td><td class="wrap">${escape(meaning)}</td></tr>`
  );
}

function wire(entries: WireEntry[]): string {
  const shown =
    entries.length <= SHOWN_HEAD + SHOWN_TAIL
      ? entries
      : [
          ...entries.slice(0, SHOWN_HEAD),
          {
            kind: 'note' as const,
            at: 0,
            text: `${entries.length - SHOWN_HEAD - SHOWN_TAIL} more entries in the case's JSON report`,
          },
          ...entries.slice(-SHOWN_TAIL),
        ];
  const rows = shown.map((e) =>
    e.kind === 'frame'
      ? frameRow(e.frame)
      : `<tr class="event"><td></td><td>${e.at}</td>` +
        `<td colspan="9">${escape(e.kind === 'timer' ? `timer: ${e.what}` : e.text)}</td></tr>`,
  );
  return (
    '<table class="frames"><tr><th>who</th><th>ms</th><th>FIN</th><th>RSV</th><th>opcode</th><th>mask key</th>' +
    '<th>length</th><th>header</th><th>payload on the wire</th><th>payload</th><th>meaning</th></tr>' +
    `${rows.join('\n')}</table>`
  );
}

function details(r: CaseResult, agentIndex: number): string {
  const bookkeeping: [string, unknown][] = [
    ['the engine was the', r.isServer ? 'server' : 'client'],
    ['closedByMe (the engine started the closing handshake)', r.closedByMe],
    ['failedByMe (the engine failed the connection)', r.failedByMe],
    ['droppedByMe (the engine ended TCP)', r.droppedByMe],
    ['wasClean', r.wasClean],
    ['wasNotCleanReason', r.wasNotCleanReason],
    ['local close code / reason', `${r.localCloseCode ?? '-'} ${r.localCloseReason ?? ''}`],
    ['remote close code / reason', `${r.remoteCloseCode ?? '-'} ${r.remoteCloseReason ?? ''}`],
    [
      'expected close',
      `closed by the engine: ${r.expectedClose.closedByMe}, codes ${r.expectedClose.closeCode.join(', ')}, ` +
        `clean: ${r.expectedClose.requireClean}`,
    ],
    ['permessage-deflate', r.extensions ?? 'not agreed'],
  ];
  if (r.reportCompressionRatio && r.trafficStats.outgoingCompressionRatio !== null)
    bookkeeping.push([
      'compression ratio out / in',
      `${r.trafficStats.outgoingCompressionRatio.toFixed(3)} / ` +
        `${r.trafficStats.incomingCompressionRatio?.toFixed(3) ?? '-'}`,
    ]);
  const expected = Object.entries(r.expected)
    .map(([verdict, list]) => `<b>${escape(verdict)}</b>: ${events(list)}`)
    .join('<br>');
  return `<details class="case" id="${anchor(agentIndex, r.id)}"><summary>Case ${escape(r.id)} - ${escape(r.agent)}:
<span class="verdict ${tone(r.behavior)}">${escape(r.behavior)}</span>
<span class="verdict ${tone(r.behaviorClose)}">${escape(r.behaviorClose)}</span>
<small>${r.duration} ms</small></summary>
<p><b>Description.</b> ${escape(r.description)}</p>
<p><b>Expectation.</b> ${escape(r.expectation)}</p>
<p><b>Verdict.</b> ${escape(r.behavior)}: ${escape(r.result)}<br>
<b>Close.</b> ${escape(r.behaviorClose)}: ${escape(r.resultClose)}</p>
<p><b>Expected</b><br>${expected === '' ? 'see the verdict' : expected}</p>
<p><b>Received</b><br>${events(r.received)}</p>
<table>${bookkeeping.map(([k, v]) => `<tr><td>${escape(k)}</td><td>${escape(String(v))}</td></tr>`).join('')}</table>
<p><b>Opening handshake</b></p><pre>${escape(r.httpRequest)}</pre><pre>${escape(r.httpResponse)}</pre>
<p><b>Frames and timers</b> (ms since the connection opened)</p>${wire(r.wirelog)}
</details>`;
}

/** The whole page. */
export function htmlReport(results: Results, title: string): string {
  const agents = [...results.keys()].sort();
  const ids = [...new Set(agents.flatMap((a) => [...results.get(a)!.keys()]))].sort(compareIds);
  const summary = agents.map((agent) => {
    const counts = new Map<string, number>();
    for (const r of results.get(agent)!.values()) {
      const key = r.behavior === r.behaviorClose ? r.behavior : `${r.behavior} / close ${r.behaviorClose}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const text = [...counts].map(([k, n]) => `${n} ${k}`).join(', ');
    return `<li><b>${escape(agent)}</b>: ${results.get(agent)!.size} cases: ${escape(text)}</li>`;
  });
  const legend = LEGEND.map(([v, text]) => `<tr><td class="${tone(v)}">${v}</td><td>${escape(text)}</td></tr>`).join(
    '',
  );
  const body = agents.flatMap((agent, i) =>
    ids.flatMap((id) => {
      const r = results.get(agent)!.get(id);
      return r === undefined ? [] : [details(r, i)];
    }),
  );
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)}</title>
<style>${STYLE}</style>
<script>${SCRIPT}</script>
</head>
<body>
<h1>${escape(title)}</h1>
<p>Written ${escape(new Date().toISOString())} by wsrfc's conformance engine, which runs the cases of Autobahn|Testsuite
(release 0.8.2) and gives its verdicts.</p>
<ul>${summary.join('')}</ul>
<table class="legend">${legend}</table>
<h2>Cases</h2>
<p>Per agent: the verdict on what the implementation did (click it for the case), and the close code it sent,
coloured by the verdict on how the connection ended.</p>
${grid(results, agents, ids)}
<h2>Each case</h2>
${body.join('\n')}
</body>
</html>
`;
}
