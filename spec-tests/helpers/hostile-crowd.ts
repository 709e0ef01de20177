/**
 * Crowds of hostile peers, over raw TCP with the independent test peer's frames: peers that flood
 * frames and never read the replies, and peers whose request head never ends. For hostile-peers.ts
 * (the tests) and bench/hostile-memory.ts (the measurements); the server is a ServerProcess.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { handshakeRequest } from './peer/http.js';
import type { ServerProcess, State } from './server-process.js';

const sockets = new Set<Socket>();

/** Destroy every peer socket still open (the tests' `after`). */
export function destroyCrowds(): void {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
}

function open(port: number): Socket {
  const socket = netConnect(port, '127.0.0.1');
  sockets.add(socket);
  socket.on('close', () => sockets.delete(socket));
  socket.on('error', () => {});
  return socket;
}

/**
 * `peers` peers that each send a handshake, then `frame` over and over as fast as TCP takes it,
 * and never read a byte. Resolves once the server has stopped reading from every one of them;
 * `check` runs on every state of the server seen meanwhile (to fail at once on what must never
 * happen).
 */
export async function flood(
  server: ServerProcess,
  frame: Buffer,
  peers: number,
  check?: (state: State) => void,
): Promise<Socket[]> {
  // A write's worth: 64 KiB of frames.
  const burst = Buffer.concat(Array.from({ length: Math.max(1, Math.floor(65_536 / frame.length)) }, () => frame));
  const flooders: Socket[] = [];
  for (let i = 0; i < peers; i++) {
    const socket = open(server.port);
    flooders.push(socket);
    socket.pause();
    socket.write(handshakeRequest());
    const pump = (): void => {
      while (!socket.destroyed && socket.write(burst));
    };
    socket.on('drain', pump);
    pump();
  }
  // Every handshake takes its turn, then the server reads from each until its replies pass
  // highWaterMark (on a busy machine, tens of seconds: thousands of frames per read to answer
  // meanwhile). Waited for as long as the server's state changes.
  await server.until(
    'every flooder to be connected and held back',
    (state) => state.clients === peers && state.paused === peers,
    { check, local: () => flooders.map((socket) => socket.bytesWritten) },
  );
  return flooders;
}

export interface HeadPeer {
  socket: Socket;
  /** What the server answered, as latin1 text. */
  answer: string;
  closed: Promise<void>;
}

/** `peers` peers that each send the start of a handshake request and a header line `line` long, unfinished. */
export function unfinishedHeads(port: number, peers: number, line: number): HeadPeer[] {
  const crowd: HeadPeer[] = [];
  for (let i = 0; i < peers; i++) {
    const socket = open(port);
    const peer: HeadPeer = {
      socket,
      answer: '',
      closed: new Promise<void>((resolve) => socket.on('close', () => resolve())),
    };
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => (peer.answer += text));
    socket.write(handshakeRequest().subarray(0, -2));
    socket.write(`X-Long: ${'a'.repeat(line)}`);
    crowd.push(peer);
  }
  return crowd;
}
