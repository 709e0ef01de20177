// The second driver (wsrfc/web-streams) on Deno's own sockets, as the runtime matrix runs it:
//   deno run --allow-all web-streams-deno.mjs server        echoes on Deno.listen()'s connections,
//                                                          printing {"port":N} once listening
//   deno run --allow-all web-streams-deno.mjs client PORT   Deno.connect() to PORT, then sends a text
//                                                          message, its echo's length as a second,
//                                                          closes with 1000, prints the close report
import { acceptWebStream, connectWebStream } from 'wsrfc/web-streams';

const [mode, port] = Deno.args;
if (mode === 'server') {
  const listener = Deno.listen({ hostname: '127.0.0.1', port: 0 });
  console.log(JSON.stringify({ port: listener.addr.port }));
  for await (const conn of listener) {
    acceptWebStream(conn, { pingInterval: 0, maxMessageSize: 1024 * 1024 }).then(
      async (ws) => {
        for await (const message of ws) await ws.send(message.data, { binary: message.isBinary }).catch(() => {});
      },
      () => {},
    );
  }
} else {
  const conn = await Deno.connect({ hostname: '127.0.0.1', port: Number(port) });
  const ws = await connectWebStream(conn, `ws://127.0.0.1:${port}/deno`, { pingInterval: 0 });
  await ws.send('hello from deno');
  const iterator = ws[Symbol.asyncIterator]();
  const echo = await iterator.next();
  await ws.send(String(echo.value.data.length));
  ws.close(1000, 'done');
  console.log(JSON.stringify(await ws.closed));
}
