"""A stand-in for oned that answers badly: garbage, truncated XML-RPC, faults, HTTP 500, silence.

One threaded HTTP server on 127.0.0.1 (port 0) serves every mode; the first part of the URL
path picks the mode (``http://127.0.0.1:PORT/garbage/RPC2``), so a site config points an
environment at one misbehaviour by its ``oned:`` URL. The server remembers which XML-RPC
methods each mode was asked, so a test can show the tool only ever asked read-only ones.

Modes that answer the probes like a 3.2 oned (``one.system.version``, ``one.datastorepool.info``
and ``one.vmpool.accounting`` are unknown methods there) and spoil only ``one.hostpool.info``
let version detection get as far as the pools, where the body of a valid reply is bad.
"""

from __future__ import annotations

import threading
import xmlrpc.client
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Methods a 3.2 oned does not know: an XML-RPC fault -506, like the real one.
_UNKNOWN_ON_32 = ("one.system.version", "one.datastorepool.info", "one.vmpool.accounting")
_POOL = "one.hostpool.info"


def _reply(*values: Any) -> bytes:
    return xmlrpc.client.dumps((list(values),), methodresponse=True).encode()


def _fault(code: int, text: str) -> bytes:
    return xmlrpc.client.dumps(xmlrpc.client.Fault(code, text), methodresponse=True).encode()


def _like_32(method: str, pool_body: str) -> bytes:
    """A 3.2 oned whose host pool body is ``pool_body``; empty pools elsewhere."""
    if method in _UNKNOWN_ON_32:
        return _fault(-506, f"Method '{method}' not defined")
    if method == _POOL:
        return _reply(True, pool_body, 0)
    return _reply(True, "<VM_POOL></VM_POOL>", 0)


def answer(mode: str, method: str) -> tuple[int, bytes] | None:
    """(HTTP status, body) of ``mode`` for a call of ``method``; None: never answer."""
    if mode == "garbage":
        return 200, b"\x00\x01 this is not XML at all <<<"
    if mode == "html":
        return 200, b"<html><body><h1>Proxy login</h1><form>...</form></body></html>"
    if mode == "truncated":
        whole = _reply(True, "<HOST_POOL></HOST_POOL>", 0)
        return 200, whole[: len(whole) // 2]
    if mode == "fault":
        return 200, _fault(-32500, "internal server error: database is locked")
    if mode == "http500":
        return 500, b"Internal Server Error"
    if mode == "two-values":  # an OpenNebula 2.x style [ok, value] reply
        return 200, _reply(True, "<HOST_POOL></HOST_POOL>")
    if mode == "pool-truncated":
        return 200, _like_32(method, "<HOST_POOL><HOST>")
    if mode == "pool-garbage":
        return 200, _like_32(method, "HOST_POOL: none of this is XML")
    if mode == "pool-wrong-type":  # a host whose ID is not a number
        host = "<HOST><ID>seven</ID><NAME>node01</NAME><STATE>2</STATE></HOST>"
        return 200, _like_32(method, f"<HOST_POOL>{host}</HOST_POOL>")
    if mode == "silent":
        return None
    return 404, b"no such stand-in mode"


@dataclass
class StandIn:
    """The running server: its base URL and the methods each mode was asked."""

    base: str
    calls: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, mode: str) -> str:
        """The endpoint that misbehaves as ``mode``."""
        return f"{self.base}/{mode}/RPC2"


def _handler(stand_in: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's name for it
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                method = xmlrpc.client.loads(body)[1] or "?"
            except Exception:  # whatever was sent: record that it was not XML-RPC
                method = "<not xml-rpc>"
            mode = self.path.strip("/").split("/")[0]
            stand_in.calls[mode].append(method)
            reply = answer(mode, method)
            if reply is None:  # hold the connection open without a word until the end
                stand_in.release.wait()
                return
            status, data = reply
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            """Quiet: pytest captures nothing from server threads anyway."""

    return Handler


@contextmanager
def serve() -> Iterator[StandIn]:
    """Run the stand-in for the duration of the ``with`` block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    stand_in = StandIn(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(stand_in)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        stand_in.release.set()
        server.shutdown()
        server.server_close()
