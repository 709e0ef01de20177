"""An independent peer for interop tests: the Python `websockets` library (Debian: python3-websockets).

  python3 python-websockets-peer.py client URL   runs the client scenario against URL and prints
                                                 one JSON line with what it saw
  python3 python-websockets-peer.py stream URL   sends a message fragmented from an async iterator
                                                 (each fragment once the server acknowledged the one
                                                 before), receives one message whole, prints JSON
  python3 python-websockets-peer.py server       runs an echo server (permessage-deflate on,
                                                 subprotocol "chat" when offered) on 127.0.0.1 and
                                                 prints "listening PORT"
  python3 python-websockets-peer.py version      prints the library's version
"""
import asyncio
import hashlib
import json
import sys

import websockets
from websockets.exceptions import ConnectionClosed

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20, 16 << 20]


def pattern(size):
    return bytes((i * 7 + (i >> 9)) & 255 for i in range(size)) if size <= 65536 else (bytes(range(256)) * (size // 256 + 1))[:size]


def text_of(size):
    return ("héllo € 𝄞 " * (size // 10 + 1))[:size]


async def echo_session(url, compression):
    seen = {"compression": compression, "steps": []}
    async with websockets.connect(url, compression=compression, max_size=None, subprotocols=["x-unknown", "echo"]) as ws:
        seen["extensions"] = ws.response_headers.get("Sec-WebSocket-Extensions")
        seen["protocol"] = ws.subprotocol
        for size in SIZES:
            data = pattern(size)
            await ws.send(data)
            got = await ws.recv()
            if got != data:
                raise AssertionError(f"binary echo differs at size {size}")
            text = text_of(size)
            await ws.send(text)
            got = await ws.recv()
            if got != text:
                raise AssertionError(f"text echo differs at size {size}")
        seen["steps"].append("echo ok")
        # A fragmented message (one frame per item), text and binary.
        await ws.send(["frag1 ", "frag2 ", "ünïcode"])
        assert await ws.recv() == "frag1 frag2 ünïcode"
        await ws.send([b"\x00\x01", b"", b"\x02"])
        assert await ws.recv() == b"\x00\x01\x02"
        seen["steps"].append("fragmented ok")
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        seen["steps"].append("pong ok")
        for i in range(1000):
            await ws.send(f"m{i}")
        for i in range(1000):
            if await ws.recv() != f"m{i}":
                raise AssertionError("pipelined messages out of order")
        seen["steps"].append("pipelined ok")
        await ws.close(4000, "bye from python")
        seen["close"] = [ws.close_code, ws.close_reason]
    return seen


def raw_client_frame(opcode, payload):
    """A masked client frame built by hand, for frames the library itself refuses to send."""
    key = b"\x12\x34\x56\x78"
    length = len(payload)
    header = bytes([0x80 | opcode]) + (bytes([0x80 | length]) if length < 126 else bytes([0x80 | 126]) + length.to_bytes(2, "big"))
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def violation_session(url, payload, opcode):
    """Send one frame the server must refuse; report the close code it answers with."""
    async with websockets.connect(url, compression=None) as ws:
        ws.transport.write(raw_client_frame(opcode, payload))
        try:
            await asyncio.wait_for(ws.recv(), 5)
            return None
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


async def client(url):
    result = {
        "deflate": await echo_session(url, "deflate"),
        "plain": await echo_session(url, None),
        # RFC 6455 §8.1: invalid UTF-8 in a text message: 1007.
        "bad_utf8": await violation_session(url, b"\xce\xba\xed\xa0\x80", 0x1),
        # RFC 6455 §5.5: a control frame over 125 bytes: 1002.
        "long_ping": await violation_session(url, b"x" * 126, 0x9),
        # RFC 6455 §5.5.1: close code 1005 must not be sent on the wire: 1002.
        "close_1005": await violation_session(url, b"\x03\xed", 0x8),
    }
    print(json.dumps(result))


STREAM_PARTS = ["the first fragment, ", "ünïcode 𝄞 in the second, ", "", "and the last"]


async def stream_session(url, compression):
    """A message fragmented from an async iterator: the server acknowledges each fragment as it
    arrives ("got " + its text), before the message ends; then a message the server streams comes
    whole through recv()."""
    seen = {"compression": compression}
    async with websockets.connect(url, compression=compression, max_size=None) as ws:
        seen["extensions"] = ws.response_headers.get("Sec-WebSocket-Extensions")

        async def fragments():
            for part in STREAM_PARTS:
                yield part
                if part:
                    ack = await asyncio.wait_for(ws.recv(), 10)
                    if ack != "got " + part:
                        raise AssertionError(f"acknowledged {ack!r} for {part!r}")

        await ws.send(fragments())
        seen["sent"] = "".join(STREAM_PARTS)
        whole = await asyncio.wait_for(ws.recv(), 30)
        data = whole.encode("utf-8") if isinstance(whole, str) else whole
        seen["received"] = {"text": isinstance(whole, str), "length": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        await ws.close(1000, "streamed")
    return seen


async def stream_client(url):
    print(json.dumps({"deflate": await stream_session(url, "deflate"), "plain": await stream_session(url, None)}))


async def handler(ws):
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass  # closes with codes other than 1000/1001 end the loop this way


async def server():
    async with websockets.serve(handler, "127.0.0.1", 0, max_size=None, compression="deflate", subprotocols=["chat"]) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        print(f"listening {port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "version":
        print(websockets.__version__)
    elif mode == "client":
        asyncio.run(client(sys.argv[2]))
    elif mode == "stream":
        asyncio.run(stream_client(sys.argv[2]))
    elif mode == "server":
        asyncio.run(server())
