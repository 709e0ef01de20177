// wss:// with node:tls. Make a throwaway certificate first:
//   openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 1 -subj /CN=localhost
import { readFileSync } from 'node:fs';
import { WebSocketServer, connect } from '../src/index.js';

const key = readFileSync('key.pem');
const cert = readFileSync('cert.pem');
const server = new WebSocketServer({ tls: { key, cert } });
server.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })));
const { port } = await server.listen(0, '127.0.0.1');

// The client trusts the self-signed certificate explicitly.
const client = await connect(`wss://localhost:${port}/`, { tls: { ca: cert } });
client.send('over TLS');
client.once('message', async (data) => {
  console.log('echoed:', data.toString());
  client.close(1000);
  await server.close();
});
