// A broadcast chat: a node:http server serves the page at /, hands WebSocket upgrades on /chat to
// the WebSocketServer, and every message goes to everyone, framed once (server.broadcast).
// Run: npx tsx examples/chat.ts, then open http://127.0.0.1:8080/ in two browser windows.
import { createServer } from 'node:http';
import { WebSocketServer } from '../src/index.js';

const PAGE = `<!doctype html><meta charset="utf-8"><title>wsrfc chat</title>
<style>body{font:15px system-ui;margin:2em} #log{border:1px solid #ccc;height:20em;overflow:auto;padding:.5em}</style>
<div id="log"></div>
<form id="form"><input id="name" placeholder="name" size="8"> <input id="text" size="40" autofocus>
<button>send</button></form>
<script>
const log = document.getElementById('log');
const show = (text) => { const line = document.createElement('div'); line.textContent = text; log.append(line); };
const ws = new WebSocket('ws://' + location.host + '/chat');
ws.onopen = () => show('(connected)');
ws.onmessage = (event) => { const m = JSON.parse(event.data); show(m.from + ': ' + m.text); };
ws.onclose = (event) => show('(closed ' + event.code + ')');
document.getElementById('form').onsubmit = (event) => {
  event.preventDefault();
  const text = document.getElementById('text');
  ws.send(JSON.stringify({ from: document.getElementById('name').value || 'anonymous', text: text.value }));
  text.value = '';
};
</script>`;

const chat = new WebSocketServer({
  // RFC 6455 §10.2: only pages from this server may join (a browser sends Origin on every handshake).
  checkOrigin: (origin, request) => origin === undefined || origin === `http://${request.headers['host']}`,
  maxMessageSize: 4096,
});
chat.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => {
    if (isBinary) return socket.close(1003, 'text only'); // §7.4.1: 1003, data of a type we do not accept
    let message: { from?: unknown; text?: unknown };
    try {
      message = JSON.parse(data.toString()) as typeof message;
    } catch {
      return socket.close(1007, 'not JSON'); // §7.4.1: 1007, data inconsistent with its type
    }
    const from = String(message.from ?? 'anonymous').slice(0, 32);
    chat.broadcast(JSON.stringify({ from, text: String(message.text ?? '') }));
  });
});

const http = createServer((request, response) => {
  if (request.url !== '/') return void response.writeHead(404).end('not found\n');
  response
    .writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(PAGE) })
    .end(PAGE);
});
http.on('upgrade', (request, socket, head) => {
  if (request.url === '/chat') chat.handleUpgrade(request, socket, head);
  else socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
});
http.listen(Number(process.env['PORT'] ?? 8080), '127.0.0.1', () => {
  const { port } = http.address() as { port: number };
  console.log(`chat on http://127.0.0.1:${port}/`);
});
