// An async verify hook: refuse with 401 unless the token checks out, and attach the user to the
// connection so message handlers know who is talking.
import { WebSocketServer } from '../src/index.js';

interface User {
  name: string;
}

async function lookUp(token: string | null): Promise<User | null> {
  await new Promise((resolve) => setTimeout(resolve, 10)); // a database, say
  return token === 'secret' ? { name: 'ada' } : null;
}

const server = new WebSocketServer({
  verify: async (request) => {
    const user = await lookUp(request.query.get('token'));
    if (user === null)
      return { status: 401, message: 'bad or missing token', headers: { 'WWW-Authenticate': 'Bearer' } };
    return { data: user };
  },
});
server.on('connection', (socket) => {
  const user = socket.data as User;
  socket.send(`hello, ${user.name}`);
});
await server.listen(8080, '127.0.0.1');
console.log('try ws://127.0.0.1:8080/?token=secret');
