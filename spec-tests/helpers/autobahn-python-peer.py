"""An independent peer for interop tests: autobahn-python (Debian: python3-autobahn), asyncio flavour.
Autobahn|Testsuite is built on this library, so its reading of RFC 7692 is the one the testsuite's
permessage-deflate cases (12.x, 13.x) meet.

  python3 autobahn-python-peer.py facts         one JSON line: the library's version, and what it does
                                                with 8-bit windows
  python3 autobahn-python-peer.py client PLAN   runs each scenario of PLAN (a JSON list, see
                                                run_client_scenario) on a connection of its own and
                                                prints one JSON report line per scenario
  python3 autobahn-python-peer.py server        an echo server on 127.0.0.1: prints "listening PORT",
                                                then one JSON line per connection once it has ended;
                                                how it answers a permessage-deflate offer comes from
                                                the request's query (see EchoServer.onConnect)

Every scenario sends a few hundred text and binary messages, 0 B to 1 MiB, in which later messages
repeat pieces of earlier ones: a compressor that keeps its context refers back into previous
messages, so an inflater that dropped its window fails. The side that sends a message checks its echo.
"""
import asyncio
import json
import random
import sys
import zlib

import autobahn
from autobahn.asyncio.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from autobahn.websocket import compress_deflate
from autobahn.websocket.compress import (
    PerMessageDeflateOffer,
    PerMessageDeflateOfferAccept,
    PerMessageDeflateResponse,
    PerMessageDeflateResponseAccept,
)

# RFC 7692 §7.2.2: the tail a sender strips and a receiver puts back.
TAIL = b"\x00\x00\xff\xff"
# Messages up to this size are re-inflated one output byte at a time (see StrictInflater).
STRICT_MESSAGE_LIMIT = 128 * 1024
CLOSE_REQUEST = "please close"
BATCH = 16

# ---------------------------------------------------------------------------------------------
# The messages
# ---------------------------------------------------------------------------------------------

# Text with one-, two-, three- and four-byte UTF-8 sequences.
ALPHABET = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOP0123456789.,;:-éßñüøç€中文字\U0001d11e\U0001f600"


class Messages:
    """A deterministic stream of messages. Each is built from runs that are either fresh random
    content or a copy of a piece of earlier messages (of the same kind), at distances from a few
    bytes to 64 KiB back: a compressor keeping its context finds those copies in its window."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.binary_history = bytearray()
        self.text_history = ""

    def _distance(self, available):
        # Mostly near (small windows must find something too), sometimes far.
        return 1 + int(self.rng.random() ** 3 * (available - 1))

    def binary(self, size):
        rng = self.rng
        history = self.binary_history
        out = bytearray()
        while len(out) < size:
            take = min(size - len(out), rng.randint(3, 300))
            if len(history) > 0 and rng.random() < 0.6:
                start = len(history) - self._distance(len(history))
                out += history[start:start + take]
            else:
                out += rng.randbytes(take)
        data = bytes(out[:size])
        history += data
        del history[:-65536]
        return data

    def text(self, size):
        """A string whose UTF-8 form is at most `size` bytes (and close to it)."""
        rng = self.rng
        history = self.text_history
        pieces = []
        length = 0
        while length < size:
            take = rng.randint(3, 200)
            if len(history) > 0 and rng.random() < 0.6:
                start = len(history) - self._distance(len(history))
                piece = history[start:start + take]
            else:
                piece = "".join(rng.choices(ALPHABET, k=take))
            pieces.append(piece)
            length += len(piece.encode("utf-8"))
        text = "".join(pieces).encode("utf-8")[:size].decode("utf-8", "ignore")
        self.text_history = (history + text)[-32768:]
        return text


def schedule(seed, big):
    """The messages of one connection, in order: (is_binary, payload bytes)."""
    rng = random.Random(seed)
    messages = Messages(seed + 1)
    out = []
    # Probes: a message of fresh random bytes, then the same again. The second compresses to a few
    # bytes only if the compressor kept its context and its window reaches back that far. 200 B is
    # within every window autobahn can use (zlib finds matches up to 2^bits - 262 back); the peer's
    # threshold for compressing is its own business, so the second probe is larger (1100 B).
    for size in (200, 1100):
        probe = rng.randbytes(size)
        out += [(True, probe), (True, probe)]
    middle = []
    for size in (0, 1, 2, 125, 126, 127, 128, 1023, 1024, 1025, 65535, 65536, 65537):
        middle += [(False, size), (True, size)]
    middle += [(rng.random() < 0.5, rng.randint(1, 700)) for _ in range(220)]
    middle += [(rng.random() < 0.5, rng.randint(700, 20000)) for _ in range(50)]
    middle += [(rng.random() < 0.5, rng.randint(100_000, 300_000)) for _ in range(4)]
    if big:
        middle += [(False, 1 << 20), (True, 1 << 20)]
    rng.shuffle(middle)
    middle += [(rng.random() < 0.5, rng.randint(1, 700)) for _ in range(20)]
    for is_binary, size in middle:
        out.append((True, messages.binary(size)) if is_binary else (False, messages.text(size).encode("utf-8")))
    return out


# ---------------------------------------------------------------------------------------------
# Watching autobahn's compression
# ---------------------------------------------------------------------------------------------

class StrictInflater:
    """Re-inflates what the peer sends with the window the handshake gave it, strictly.

    zlib checks a back-reference against its window only when the reference reaches past what the
    current inflate() call has written; within one call it is lenient. Asking for one byte of output
    per call makes every reference longer than one byte a window reference: a distance beyond
    2^bits then fails with "invalid distance too far back". Large messages are inflated in one go
    (to keep the context in step; checked leniently)."""

    def __init__(self, bits, reset_each_message):
        self.bits = bits
        self.reset_each_message = reset_each_message
        self.inflater = zlib.decompressobj(-bits)
        self.strict_bytes = 0
        self.error = None

    def message(self, compressed, expected):
        if self.error is not None:
            return
        if self.reset_each_message:
            self.inflater = zlib.decompressobj(-self.bits)
        data = compressed + TAIL
        try:
            if len(expected) <= STRICT_MESSAGE_LIMIT:
                out = bytearray()
                while True:
                    chunk = self.inflater.decompress(data, 1)
                    if not chunk and (not self.inflater.unconsumed_tail or self.inflater.unconsumed_tail == data):
                        break
                    data = self.inflater.unconsumed_tail
                    out += chunk
                self.strict_bytes += len(expected)
            else:
                out = self.inflater.decompress(data)
        except zlib.error as error:
            self.error = f"{error} (window {self.bits} bits, message of {len(expected)} B)"
            return
        if bytes(out) != expected:
            self.error = f"a strict {self.bits}-bit inflater read a {len(expected)}-byte message differently"


class Tap:
    """Wraps the methods of autobahn's PerMessageDeflate object of one connection to see what it
    compresses and what compressed messages it receives, and re-inflates the latter strictly."""

    KEEP = 8  # (compressed, plain) sizes kept of the first messages each way, for the probes

    def __init__(self, pmce, is_server):
        self.sent = []
        self.received = []
        self.sent_count = 0
        self.received_count = 0
        # What the handshake allows the peer's compressor: its window, and whether it resets.
        peer_bits = pmce.client_max_window_bits if is_server else pmce.server_max_window_bits
        peer_resets = pmce.client_no_context_takeover if is_server else pmce.server_no_context_takeover
        self.strict = StrictInflater(peer_bits, peer_resets) if peer_bits < 15 else None
        self._wrap_compress(pmce)
        self._wrap_decompress(pmce)

    def _wrap_compress(self, pmce):
        start, data, end = pmce.start_compress_message, pmce.compress_message_data, pmce.end_compress_message
        sizes = [0, 0]

        def start_compress():
            sizes[0] = sizes[1] = 0
            start()

        def compress_data(payload):
            out = data(payload)
            sizes[0] += len(out)
            sizes[1] += len(payload)
            return out

        def end_compress():
            out = end()
            self.sent_count += 1
            if len(self.sent) < self.KEEP:
                self.sent.append([sizes[0] + len(out), sizes[1]])
            return out

        pmce.start_compress_message, pmce.compress_message_data, pmce.end_compress_message = start_compress, compress_data, end_compress

    def _wrap_decompress(self, pmce):
        start, data, end = pmce.start_decompress_message, pmce.decompress_message_data, pmce.end_decompress_message
        compressed, inflated = [], []

        def start_decompress():
            compressed.clear()
            inflated.clear()
            start()

        def decompress_data(payload):
            compressed.append(payload)
            out = data(payload)
            inflated.append(out)
            return out

        def end_decompress():
            end()
            whole, plain = b"".join(compressed), b"".join(inflated)
            self.received_count += 1
            if len(self.received) < self.KEEP:
                self.received.append([len(whole), len(plain)])
            if self.strict is not None:
                self.strict.message(whole, plain)

        pmce.start_decompress_message, pmce.decompress_message_data, pmce.end_decompress_message = start_decompress, decompress_data, end_decompress

    def report(self):
        strict = None
        if self.strict is not None:
            strict = {"bits": self.strict.bits, "strict_bytes": self.strict.strict_bytes, "error": self.strict.error}
        return {
            # Messages compressed by autobahn, and compressed messages it received.
            "sent_compressed": self.sent_count,
            "received_compressed": self.received_count,
            # [compressed size, plain size] of the first few of each.
            "sent_first": self.sent,
            "received_first": self.received,
            "strict": strict,
        }


def pmce_params(pmce):
    """The agreement as autobahn understood it (window 15 where none was said)."""
    if pmce is None:
        return None
    return {
        "server_no_context_takeover": pmce.server_no_context_takeover,
        "client_no_context_takeover": pmce.client_no_context_takeover,
        "server_max_window_bits": pmce.server_max_window_bits,
        "client_max_window_bits": pmce.client_max_window_bits,
    }


class WindowsOf8:
    """autobahn allows window sizes 9..15 only (WINDOW_SIZE_PERMISSIBLE_VALUES), where RFC 7692
    §7.1.2 allows 8..15. Inside this block it allows 8 too, so that a scenario can have it inflate
    with a 256-byte window (zlib can inflate with one; it cannot compress with one)."""

    def __init__(self, active):
        self.active = active

    def __enter__(self):
        if self.active:
            self.saved = compress_deflate.PerMessageDeflateMixin.WINDOW_SIZE_PERMISSIBLE_VALUES
            compress_deflate.PerMessageDeflateMixin.WINDOW_SIZE_PERMISSIBLE_VALUES = list(range(8, 16))

    def __exit__(self, *exc):
        if self.active:
            compress_deflate.PerMessageDeflateMixin.WINDOW_SIZE_PERMISSIBLE_VALUES = self.saved


# ---------------------------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------------------------

class RawOffer(PerMessageDeflateOffer):
    """An offer sent as written (for offers autobahn itself would never make)."""

    def __init__(self, header):
        super().__init__()
        self.header = header

    def get_extension_string(self):
        return self.header


def make_offer(spec):
    if spec is None:
        return []
    if "raw" in spec:
        return [RawOffer(spec["raw"])]
    return [PerMessageDeflateOffer(**spec)]


def accept_response(response):
    if isinstance(response, PerMessageDeflateResponse):
        return PerMessageDeflateResponseAccept(response)
    return None


class ClientProtocol(WebSocketClientProtocol):
    def onConnect(self, response):
        self.factory.session["response_extensions"] = response.headers.get("sec-websocket-extensions")

    def onOpen(self):
        session = self.factory.session
        pmce = self._perMessageCompress
        session["pmce"] = pmce_params(pmce)
        session["tap"] = Tap(pmce, False) if pmce is not None else None
        session["opened"].set_result(True)

    def onMessage(self, payload, isBinary):
        self.factory.session["inbox"].put_nowait((payload, isBinary))

    def onClose(self, wasClean, code, reason):
        session = self.factory.session
        if "response_extensions" not in session:
            # A response autobahn refused never reaches onConnect; its headers were parsed already.
            session["response_extensions"] = getattr(self, "http_headers", {}).get("sec-websocket-extensions")
        session["close"] = {"was_clean": wasClean, "code": code, "reason": reason}
        if not session["opened"].done():
            session["opened"].set_result(False)
        if not session["closed"].done():
            session["closed"].set_result(True)
        session["inbox"].put_nowait(None)


async def run_client_scenario(scenario):
    """scenario: {name, url, offer (PerMessageDeflateOffer's keyword arguments, or {"raw": header},
    or null for no offer), allow8, big (send the 1 MiB messages), close_by ("python" or "node"),
    seed}."""
    loop = asyncio.get_running_loop()
    session = {"opened": loop.create_future(), "closed": loop.create_future(), "inbox": asyncio.Queue()}
    report = {"name": scenario["name"]}
    with WindowsOf8(scenario.get("allow8", False)):
        offers = make_offer(scenario["offer"])
        report["request_extensions"] = ", ".join(offer.get_extension_string() for offer in offers) or None
        factory = WebSocketClientFactory(scenario["url"])
        factory.protocol = ClientProtocol
        factory.session = session
        factory.setProtocolOptions(
            perMessageCompressionOffers=offers,
            perMessageCompressionAccept=accept_response,
            autoPingInterval=0,
            openHandshakeTimeout=20,
            closeHandshakeTimeout=20,
        )
        host, port = scenario["url"].split("/")[2].split(":")
        transport, protocol = await loop.create_connection(factory, host, int(port))
        opened = await asyncio.wait_for(session["opened"], 20)
    report["opened"] = opened
    report["response_extensions"] = session.get("response_extensions")
    report["pmce"] = session.get("pmce")
    if opened:
        messages = schedule(scenario["seed"], scenario.get("big", False))
        report["sent"] = len(messages)
        report["echoed"], report["mismatch"] = await exchange(protocol, session["inbox"], messages)
        tap = session["tap"]
        report["compression"] = tap.report() if tap is not None else None
        if report["mismatch"] is None:
            if scenario["close_by"] == "python":
                protocol.sendClose(1000, "bye from python")
            else:
                protocol.sendMessage(CLOSE_REQUEST.encode(), isBinary=False)
    await asyncio.wait_for(session["closed"], 30)
    report["close"] = session["close"]
    return report


async def exchange(protocol, inbox, messages):
    """Send in batches, check every echo byte for byte; returns (echoes that matched, first problem)."""
    echoed = 0
    for first in range(0, len(messages), BATCH):
        batch = messages[first:first + BATCH]
        for is_binary, payload in batch:
            protocol.sendMessage(payload, isBinary=is_binary)
        for index, (is_binary, payload) in enumerate(batch, first):
            got = await asyncio.wait_for(inbox.get(), 30)
            kind = "binary" if is_binary else "text"
            if got is None:
                return echoed, f"connection closed while waiting for the echo of message {index} ({kind}, {len(payload)} B)"
            if got[1] != is_binary or got[0] != payload:
                return echoed, f"echo of message {index} ({kind}, {len(payload)} B) differs"
            echoed += 1
    return echoed, None


async def client(plan):
    for scenario in plan:
        try:
            report = await run_client_scenario(scenario)
        except Exception as error:  # a report, not a crash: the other scenarios still run
            report = {"name": scenario["name"], "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(report), flush=True)


# ---------------------------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------------------------

class OfferAcceptWith8(PerMessageDeflateOfferAccept):
    """Accepts with request_max_window_bits=8, which autobahn's own class refuses."""

    WINDOW_SIZE_PERMISSIBLE_VALUES = list(range(8, 16))


class EchoServer(WebSocketServerProtocol):
    def onConnect(self, request):
        """The query says how to answer a permessage-deflate offer:
        id=NAME (for the report), accept=none (decline), rnct=1 (request_no_context_takeover),
        rmwb=N (request_max_window_bits), nct=1 (no_context_takeover), wb=N (window_bits),
        allow8=1 (accept with request_max_window_bits=8)."""
        query = {name: values[0] for name, values in request.params.items()}
        self.report = {
            "id": query.get("id"),
            "offered": request.headers.get("sec-websocket-extensions"),
            "opened": False,
            "messages": 0,
        }
        if query.get("accept") == "none":
            # autobahn reads this attribute of the protocol in succeedHandshake, after onConnect.
            self.perMessageCompressionAccept = lambda offers: None
            return None
        settings = {}
        if query.get("rnct") == "1":
            settings["request_no_context_takeover"] = True
        if "rmwb" in query:
            settings["request_max_window_bits"] = int(query["rmwb"])
        if query.get("nct") == "1":
            settings["no_context_takeover"] = True
        if "wb" in query:
            settings["window_bits"] = int(query["wb"])
        accept_class = OfferAcceptWith8 if query.get("allow8") == "1" else PerMessageDeflateOfferAccept
        report = self.report

        def accept(offers):
            for offer in offers:
                if isinstance(offer, PerMessageDeflateOffer):
                    accepted = accept_class(offer, **settings)
                    report["response"] = accepted.get_extension_string()
                    return accepted
            return None

        self.perMessageCompressionAccept = accept
        return None

    def onOpen(self):
        self.report["opened"] = True
        pmce = self._perMessageCompress
        self.report["pmce"] = pmce_params(pmce)
        self.tap = Tap(pmce, True) if pmce is not None else None

    def onMessage(self, payload, isBinary):
        self.report["messages"] += 1
        if not isBinary and payload == CLOSE_REQUEST.encode():
            self.sendClose(1000, "bye from python")
        else:
            self.sendMessage(payload, isBinary=isBinary)

    def onClose(self, wasClean, code, reason):
        report = getattr(self, "report", {"id": None, "opened": False})
        report["close"] = {"was_clean": wasClean, "code": code, "reason": reason}
        tap = getattr(self, "tap", None)
        report["compression"] = tap.report() if tap is not None else None
        print(json.dumps(report), flush=True)


async def server():
    factory = WebSocketServerFactory()
    factory.protocol = EchoServer
    factory.setProtocolOptions(autoPingInterval=0, openHandshakeTimeout=20, closeHandshakeTimeout=20)
    srv = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    print(f"listening {srv.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Future()


# ---------------------------------------------------------------------------------------------
# Facts
# ---------------------------------------------------------------------------------------------

def error_of(action):
    try:
        action()
        return None
    except Exception as error:
        return f"{type(error).__name__}: {error}"


def facts():
    print(json.dumps({
        "version": autobahn.__version__,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "window_sizes": compress_deflate.PerMessageDeflateMixin.WINDOW_SIZE_PERMISSIBLE_VALUES,
        "default_offer": PerMessageDeflateOffer().get_extension_string(),
        # What happens with 8, the smallest window RFC 7692 §7.1.2 allows.
        "offer_8": error_of(lambda: PerMessageDeflateOffer(request_max_window_bits=8)),
        "accept_8": error_of(lambda: PerMessageDeflateOfferAccept(PerMessageDeflateOffer(), request_max_window_bits=8)),
        "parse_offer_8": error_of(lambda: PerMessageDeflateOffer.parse({"server_max_window_bits": ["8"]})),
        "parse_response_8": error_of(lambda: PerMessageDeflateResponse.parse({"server_max_window_bits": ["8"]})),
        "zlib_compress_8": error_of(lambda: zlib.compressobj(6, zlib.DEFLATED, -8)),
        "zlib_decompress_8": error_of(lambda: zlib.decompressobj(-8)),
    }))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "facts":
        facts()
    elif mode == "client":
        asyncio.run(client(json.loads(sys.argv[2])))
    elif mode == "server":
        asyncio.run(server())
