/**
 * `wsrfc/explorer`: the protocol explorer (src/learn/explorer.ts), a page that shows a browser its
 * own connection frame by frame. It plugs into any WebSocketServer through the server's public
 * hooks; `import 'wsrfc'` never loads it.
 *
 *     const explorer = new Explorer();
 *     const server = new WebSocketServer({ ...explorer.serverOptions });
 *     server.on('connection', (socket, request) => {
 *       if (explorer.adopt(socket, request)) return;
 *       socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
 *     });
 */
export { Explorer } from './learn/explorer.js';
