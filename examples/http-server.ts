// Attach WebSocket endpoints to an existing node:http server: plain HTTP keeps working, and each
// path gets its own WebSocketServer (created without a port of its own).
import { createServer } from 'node:http';
import { WebSocketServer } from '../src/index.js';

const chat = new WebSocketServer({ protocols: ['chat.v2', 'chat.v1'] });
const feed = new WebSocketServer();
chat.on('connection', (socket) => socket.on('message', (data, isBinary) => chat.broadcast(data, { binary: isBinary })));
feed.on('connection', (socket) => socket.send(JSON.stringify({ hello: 'feed' })));

const http = createServer((request, response) => {
  response.writeHead(200, { 'Content-Type': 'text/plain' }).end(`plain HTTP still works at ${request.url}\n`);
});
http.on('upgrade', (request, socket, head) => {
  const path = new URL(request.url ?? '/', 'http://localhost').pathname;
  if (path === '/chat') chat.handleUpgrade(request, socket, head);
  else if (path === '/feed') feed.handleUpgrade(request, socket, head);
  else socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
});
http.listen(8080, '127.0.0.1', () => console.log('http://127.0.0.1:8080/ with ws:// endpoints /chat and /feed'));
