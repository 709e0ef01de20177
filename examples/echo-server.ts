// The smallest useful server: every message comes back as it came.
// Run: npx tsx examples/echo-server.ts, then connect to ws://127.0.0.1:8080/
import { WebSocketServer } from '../src/index.js';

const server = new WebSocketServer();
server.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
});
const address = await server.listen(8080, '127.0.0.1');
console.log(`listening on ws://127.0.0.1:${address.port}/`);
