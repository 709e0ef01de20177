/**
 * The protocol explorer's page (served by src/learn/explorer.ts): one HTML document, script and styles
 * inline, no framework, nothing loaded from elsewhere. It is a string module rather than an .html
 * file so that it ships in dist/ with the rest and runs the same under tsx. Everything it shows
 * about frames comes from the server over the observer socket; the browser's API hides frames.
 * (The page's script avoids backquotes and dollar-brace: it lives inside a template string.)
 */
export const EXPLORER_PAGE = String.raw`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>wsrfc protocol explorer</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#f6f6f4}
header{background:#23313f;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:baseline}
header h1{font-size:18px;margin:0} #status{font-family:monospace}
main{display:grid;grid-template-columns:330px minmax(0,1fr);gap:12px;padding:12px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin-bottom:12px}
h2{font-size:15px;margin:4px 0 8px} label{display:block;margin:4px 0} input,select{font:inherit;max-width:160px}
button{font:inherit;margin:2px 0;padding:2px 8px} pre,code,.hex{font-family:ui-monospace,monospace;font-size:12px}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f2f4f7;padding:6px;margin:4px 0}
.frame{border-left:4px solid #888;padding:4px 8px;margin:6px 0;background:#fafafa}
.frame.in{border-color:#2f6fb5}.frame.out{border-color:#2e8b57}.frame.close{background:#fff4e5}
.frame .sum{font-weight:600}.frame table{border-collapse:collapse;margin-top:4px}
.frame td{padding:1px 8px 1px 0;vertical-align:top}.frame td:first-child{color:#555;white-space:nowrap}
#handshake td{padding:1px 8px 1px 0;vertical-align:top}#handshake td:first-child{white-space:nowrap}
.bits span{display:inline-block;border:1px solid #ccc;padding:0 3px;margin-right:2px;font-family:monospace}
#log div{font-family:ui-monospace,monospace;font-size:12px;border-bottom:1px dotted #ddd}
.err{color:#b00020} .small{color:#555;font-size:12px}
</style></head>
<body>
<header><h1>wsrfc protocol explorer</h1><span id="status">connecting</span>
<span class="small" style="color:#cde">your own connection, as the server sees it</span></header>
<main>
<div>
<section><h2>Send from the browser</h2>
<label>text <input id="text" value="Hello, RFC 6455"></label><button id="send-text">send text</button>
<label>size <select id="size"><option>5</option><option>125</option><option>126</option><option>65535</option>
<option>65536</option><option>200000</option></select> bytes</label>
<button id="send-sized-text">send text of this size</button> <button id="send-binary">send binary</button>
<div class="small">125 fits the 7-bit length; 126 takes 7+16 bits; 65536 takes 7+64 (binary is random, so it
does not compress below that).</div>
<button id="browser-close">close from the browser (1000)</button></section>
<section><h2>Ask the server</h2>
<div class="small">The browser API cannot make the server do these; the server does them on your connection.</div>
<label>fragments <input id="frag-count" type="number" value="3" min="1" max="64"></label>
<label>message size <input id="frag-size" type="number" value="30" min="1" max="1048576"></label>
<label><input id="frag-ping" type="checkbox"> a ping between the fragments</label>
<label><input id="frag-binary" type="checkbox"> binary</label>
<button id="send-fragments">send a fragmented message</button>
<label>ping data <input id="ping-data" value="are you there?"></label><button id="ping">ping</button>
<label>close code <input id="close-code" type="number" value="4000"></label>
<label>reason <input id="close-reason" value="goodbye from the server"></label>
<button id="server-close">close</button>
<label>invalid frame <select id="invalid-kind"><option>reserved-opcode</option><option>rsv2</option>
<option>invalid-utf8</option><option>masked</option><option>long-ping</option></select></label>
<button id="send-invalid">send an invalid frame</button></section>
<section><h2>Browser API events</h2><div id="log"></div></section>
<button id="reconnect">new connection</button>
</div>
<div>
<section id="handshake">
<h2>Opening handshake <a href="https://www.rfc-editor.org/rfc/rfc6455#section-4">RFC 6455 §4</a></h2>
<div class="small">waiting for the connection</div></section>
<section><h2>Frames <a href="https://www.rfc-editor.org/rfc/rfc6455#section-5.2">§5.2</a>
<span class="small">newest first; browser → server in blue, server → browser in green</span></h2>
<div id="frames"></div></section>
</div>
</main>
<script>
'use strict';
var RFC = 'https://www.rfc-editor.org/rfc/rfc6455#section-';
var RFC7692 = 'https://www.rfc-editor.org/rfc/rfc7692#section-';
var RFC8441 = 'https://www.rfc-editor.org/rfc/rfc8441#section-';
var MAX_FRAMES = 300;
var obs = null, ws = null;
function $(id) { return document.getElementById(id); }
function el(tag, attrs) {
  var node = document.createElement(tag);
  for (var key in attrs || {}) node.setAttribute(key, attrs[key]);
  for (var i = 2; i < arguments.length; i++) {
    var child = arguments[i];
    if (child === null || child === undefined) continue;
    node.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
  return node;
}
function link(section, text, rfc) { return el('a', { href: (rfc || RFC) + section, target: '_blank' }, text); }
function log(text, cls) {
  var line = el('div', cls ? { 'class': cls } : {}, new Date().toISOString().slice(11, 23) + ' ' + text);
  $('log').prepend(line);
}
function setStatus(text) { $('status').textContent = text; }
var CLOSE_NAMES = { 1000: 'Normal Closure', 1001: 'Going Away', 1002: 'Protocol Error', 1003: 'Unsupported Data',
  1005: 'No Status Received', 1006: 'Abnormal Closure', 1007: 'Invalid Frame Payload Data', 1008: 'Policy Violation',
  1009: 'Message Too Big', 1010: 'Mandatory Extension', 1011: 'Internal Error', 1015: 'TLS Handshake' };

function start() {
  var base = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/';
  $('frames').textContent = '';
  setStatus('connecting the observer');
  obs = new WebSocket(base + '?explorer=observe');
  obs.onmessage = function (event) {
    var ev;
    try { ev = JSON.parse(event.data); } catch (e) { return; } // a server's broadcast reaches observers too
    if (ev.type === 'hello') openOwn(base, ev.token);
    else if (ev.type === 'handshake') showHandshake(ev);
    else if (ev.type === 'frame') showFrame(ev);
    else if (ev.type === 'closed') {
      log('server: the connection closed with ' + ev.code + ' ' + ev.name + (ev.reason ? ' "' + ev.reason + '"' : '') +
        (ev.wasClean ? ', cleanly' : ', not cleanly'));
      setStatus('closed ' + ev.code);
    } else if (ev.type === 'dropped') log('server: ' + ev.count + ' events dropped (this page read too slowly)', 'err');
    else if (ev.type === 'note') log('server: ' + ev.text);
    else if (ev.type === 'error') log('server refused: ' + ev.message, 'err');
  };
  obs.onclose = function () { log('the observer socket closed'); };
}
function openOwn(base, token) {
  setStatus('connecting');
  ws = new WebSocket(base + '?explorer=' + encodeURIComponent(token));
  ws.binaryType = 'arraybuffer';
  ws.onopen = function () {
    setStatus('open');
    log('open event: extensions="' + ws.extensions + '"');
  };
  ws.onmessage = function (event) {
    var d = event.data;
    log('message event: ' + (typeof d === 'string' ? 'text, ' + d.length + ' characters' : 'binary, ' + d.byteLength +
      ' bytes') + ' (the API shows only whole messages)');
  };
  ws.onerror = function () { log('error event', 'err'); };
  ws.onclose = function (e) {
    log('close event: code ' + e.code + ' (' + (CLOSE_NAMES[e.code] || '') + ') reason="' + e.reason + '" wasClean=' +
      e.wasClean, e.code === 1006 ? 'err' : '');
  };
}
function row(name, value, section, rfc) {
  return el('tr', {}, el('td', {}, section ? link(section, name, rfc) : name), el('td', {}, value));
}
function explained(value, why) {
  return el('span', {}, el('code', {}, value), ' ', el('span', { 'class': 'small' }, why));
}
function showHandshake(h) {
  var box = $('handshake');
  box.textContent = '';
  if (h.extendedConnect) return showExtendedConnect(box, h, h.extendedConnect);
  box.appendChild(el('h2', {}, 'Opening handshake ', link('4', 'RFC 6455 §4')));
  box.appendChild(el('div', {}, 'The browser\'s request, as the server read it ', link('4.1', '§4.1'), ':'));
  box.appendChild(el('pre', { id: 'request-head' }, h.request));
  box.appendChild(el('div', {}, 'The server\'s answer ', link('4.2.2', '§4.2.2'), ':'));
  box.appendChild(el('pre', { id: 'response-head' }, h.response));
  var t = el('table', { id: 'accept' });
  t.appendChild(row('Sec-WebSocket-Key', h.key, '4.2.1'));
  t.appendChild(row('+ GUID', h.key + h.guid, '1.3'));
  t.appendChild(row('SHA-1', h.sha1, '4.2.2'));
  t.appendChild(row('base64 = Sec-WebSocket-Accept', h.accept, '4.2.2'));
  t.appendChild(row('extensions offered', h.extensionsOffered || '(none)', '9.1'));
  t.appendChild(row('extension agreed', h.extensionsAgreed || '(none)', '7', RFC7692));
  box.appendChild(t);
}
// RFC 8441: over HTTP/2 the handshake is an extended CONNECT on a new stream of the page's own
// HTTP/2 connection; its fields take the place of HTTP/1.1's request line, Upgrade, Host, key and accept.
function showExtendedConnect(box, h, c) {
  box.appendChild(el('h2', {}, 'Opening handshake over HTTP/2 ', link('4', 'RFC 8441 §4', RFC8441), ' ',
    link('5', '§5', RFC8441)));
  box.appendChild(el('div', {}, 'The browser\'s extended CONNECT: the HEADERS that open a new stream on the ' +
    'page\'s HTTP/2 connection, as the server read them ', link('5.1', '§5.1', RFC8441), ':'));
  box.appendChild(el('pre', { id: 'request-head' }, h.request));
  box.appendChild(el('div', {}, 'The server\'s answer, the HEADERS on the same stream ', link('5', '§5', RFC8441),
    ':'));
  box.appendChild(el('pre', { id: 'response-head' }, h.response));
  var t = el('table', { id: 'extended-connect' });
  t.appendChild(row(':method', explained(c.method, 'not GET: HTTP/2 has no Upgrade; CONNECT opens a tunnel on ' +
    'one stream'), '4', RFC8441));
  t.appendChild(row(':protocol', explained(c.protocol, 'the protocol the tunnel speaks: the "extended" in ' +
    'extended CONNECT'), '4', RFC8441));
  t.appendChild(row(':scheme', explained(c.scheme, 'https for wss://, http for ws://'), '5', RFC8441));
  t.appendChild(row(':path', explained(c.path, 'the WebSocket\'s path and query (a plain CONNECT has none)'), '4',
    RFC8441));
  t.appendChild(row(':authority', explained(c.authority, 'in place of HTTP/1.1\'s Host'), '5', RFC8441));
  t.appendChild(row(':status', explained(c.status, 'accepted: the stream is now the WebSocket\'s connection ' +
    '(HTTP/1.1 answers 101 Switching Protocols)'), '5', RFC8441));
  t.appendChild(row('Sec-WebSocket-Key, -Accept', 'not used: the :protocol pseudo-header field supersedes them ' +
    '(nor Upgrade and Connection, which HTTP/2 does not have)', '5', RFC8441));
  t.appendChild(row('extensions offered', h.extensionsOffered || '(none)', '9.1'));
  t.appendChild(row('extension agreed', h.extensionsAgreed || '(none)', '7', RFC7692));
  box.appendChild(t);
}
function bits(f) {
  var b0 = parseInt(f.header.slice(0, 2), 16), b1 = parseInt(f.header.slice(2, 4), 16);
  function bin(v, n) { var s = v.toString(2); while (s.length < n) s = '0' + s; return s; }
  return el('span', { 'class': 'bits' }, el('span', { title: 'FIN' }, b0 >> 7),
    el('span', { title: 'RSV1' }, (b0 >> 6) & 1),
    el('span', { title: 'RSV2' }, (b0 >> 5) & 1), el('span', { title: 'RSV3' }, (b0 >> 4) & 1),
    el('span', { title: 'opcode' }, bin(b0 & 15, 4)), el('span', { title: 'MASK' }, b1 >> 7),
    el('span', { title: 'Payload len (7 bits)' }, bin(b1 & 127, 7)));
}
function showFrame(f) {
  var dir = f.direction === 'in' ? 'browser → server' : 'server → browser';
  var name = f.opcodeName.toUpperCase();
  var summary = dir + ': ' + name + ' fin=' + (f.fin ? 1 : 0) + ' len=' + f.length;
  if (f.close) summary += ' code=' + (f.close.code === null ? 'none' : f.close.code + ' ' + f.close.name);
  if (f.compressed && f.fin && f.compressed.inflatedBytes !== null)
    summary += ' compressed ' + f.compressed.wireBytes + ' → ' + f.compressed.inflatedBytes + ' bytes';
  var t = el('table');
  t.appendChild(row('header bytes', bits(f), '5.2'));
  t.appendChild(row('header (hex)', el('span', { 'class': 'hex' }, f.header), '5.2'));
  t.appendChild(row('FIN', f.fin ? '1: the last frame of its message' : '0: more frames follow', '5.4'));
  t.appendChild(row('RSV1', f.rsv1 ? '1: a compressed message (permessage-deflate)' : '0', '6', RFC7692));
  t.appendChild(row('RSV2, RSV3', (f.rsv2 ? 1 : 0) + ', ' + (f.rsv3 ? 1 : 0), '5.2'));
  t.appendChild(row('opcode', '0x' + f.opcode.toString(16) + ' ' + f.opcodeName, f.opcode >= 8 ? '5.5' : '5.6'));
  t.appendChild(row('MASK', f.masked ? '1 (a client masks every frame)' : '0 (a server never masks)', '5.1'));
  var form = f.lengthBits === 7 ? 'in the 7-bit field' : f.lengthBits === 16 ? 'in 7+16 bits (126, then 16 bits)' :
    'in 7+64 bits (127, then 64 bits)';
  t.appendChild(row('payload length', f.length + ' bytes, ' + form, '5.2'));
  if (f.masked) {
    t.appendChild(row('masking key', el('span', { 'class': 'hex' }, f.maskKey), '5.3'));
    t.appendChild(row('payload, masked', el('span', { 'class': 'hex' }, f.wire), '5.3'));
  }
  t.appendChild(row(f.masked ? 'payload, unmasked' : 'payload', el('span', { 'class': 'hex' }, f.payload), '5.3'));
  if (f.compressed) {
    t.appendChild(row('compressed', f.fin && f.compressed.inflatedBytes !== null ? f.compressed.wireBytes +
      ' bytes on the wire, ' + f.compressed.inflatedBytes + ' inflated' : f.compressed.note, '7.2', RFC7692));
  }
  if (f.close) {
    t.appendChild(row('close code', f.close.code === null ? f.close.name : f.close.code + ' ' + f.close.name, '7.4.1'));
    t.appendChild(row('close reason', '"' + f.close.reason + '"', '5.5.1'));
  } else if (f.text !== null) t.appendChild(row('text', '"' + f.text + '"', '8.1'));
  var cls = 'frame ' + f.direction + (f.close ? ' close' : '');
  var node = el('div', { 'class': cls, 'data-opcode': f.opcodeName }, el('div', { 'class': 'sum' }, summary), t);
  var frames = $('frames');
  frames.prepend(node);
  while (frames.childNodes.length > MAX_FRAMES) frames.removeChild(frames.lastChild);
}
function ask(request) {
  if (obs && obs.readyState === 1) obs.send(JSON.stringify(request));
}
function randomBytes(n) {
  var bytes = new Uint8Array(n);
  for (var at = 0; at < n; at += 65536) crypto.getRandomValues(bytes.subarray(at, Math.min(n, at + 65536)));
  return bytes;
}
function sized(n) {
  var s = 'RFC 6455 ';
  while (s.length < n) s += s;
  return s.slice(0, n);
}
function sendOwn(data) { if (ws && ws.readyState === 1) ws.send(data); else log('your connection is not open', 'err'); }
$('send-text').onclick = function () { sendOwn($('text').value); };
$('send-sized-text').onclick = function () { sendOwn(sized(Number($('size').value))); };
$('send-binary').onclick = function () { sendOwn(randomBytes(Number($('size').value))); };
$('browser-close').onclick = function () { if (ws) ws.close(1000, 'bye from the browser'); };
$('send-fragments').onclick = function () {
  ask({ 'do': 'fragments', count: Number($('frag-count').value), size: Number($('frag-size').value),
    ping: $('frag-ping').checked, binary: $('frag-binary').checked });
};
$('ping').onclick = function () { ask({ 'do': 'ping', data: $('ping-data').value }); };
$('server-close').onclick = function () {
  ask({ 'do': 'close', code: Number($('close-code').value), reason: $('close-reason').value });
};
$('send-invalid').onclick = function () { ask({ 'do': 'invalid', kind: $('invalid-kind').value }); };
$('reconnect').onclick = function () {
  if (ws) ws.close();
  if (obs) obs.close();
  $('log').textContent = '';
  start();
};
start();
</script>
</body></html>
`;
