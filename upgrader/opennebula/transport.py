"""pyone's XML-RPC transport, with a per-client timeout and raw ``[ok, body, code]`` replies.

pyone's own ``timeout=`` calls ``socket.setdefaulttimeout`` (process-wide) and its response
handling binds documents to the 7.x schema, which drops 3.x fields; this module avoids both
and keeps pyone's session handling, parameter casting and typed exceptions.

Replies are unmarshalled by xmlrpc.client's own Unmarshaller and expat parser, with one
change: expat buffers character data. Unbuffered, expat hands over the text between two
entity references as a separate piece, and a pool document travels escaped (``&lt;VM&gt;``),
so a 20,000-VM pool (44 MB) became millions of Python calls and took 1.7 s; buffered it
takes about 0.35 s. The values, the faults and the parse errors are the stock ones, because
the parser and the unmarshaller are.
"""

from __future__ import annotations

import xmlrpc.client
from typing import Any, Final, NoReturn
from xml.parsers import expat

import requests
from pyone.server_xrpc import OneServerXRPC, RequestsTransport  # type: ignore[import-untyped]

# Characters of text expat gathers before calling the unmarshaller (its default is 8 KiB).
TEXT_BUFFER: Final = 1 << 16
# Bytes read from the socket at a time.
READ_CHUNK: Final = 1 << 20


class BufferedExpatParser:
    """``xmlrpc.client.ExpatParser``, with contiguous character data in one callback."""

    def __init__(self, target: xmlrpc.client.Unmarshaller) -> None:
        self._parser = parser = expat.ParserCreate(None, None)
        parser.buffer_text = True  # the one change to xmlrpc.client's parser
        parser.buffer_size = TEXT_BUFFER
        parser.StartElementHandler = target.start
        parser.EndElementHandler = target.end
        parser.CharacterDataHandler = target.data
        target.xml(None, None)

    def feed(self, data: bytes) -> None:
        """Parse the next piece of the reply."""
        self._parser.Parse(data, False)

    def close(self) -> None:
        """End of the reply (raises ExpatError if it was not complete)."""
        self._parser.Parse(b"", True)


def reply_parser(
    *, use_datetime: bool = False, use_builtin_types: bool = False
) -> tuple[BufferedExpatParser, xmlrpc.client.Unmarshaller]:
    """What ``xmlrpc.client.getparser()`` gives on CPython 3, with buffered character data.

    (CPython 3 has no C accelerated parser: getparser() pairs this same Unmarshaller with
    an unbuffered ExpatParser.)
    """
    target = xmlrpc.client.Unmarshaller(
        use_datetime=use_datetime, use_builtin_types=use_builtin_types
    )
    return BufferedExpatParser(target), target


class TimeoutTransport(RequestsTransport):  # type: ignore[misc]  # pyone is untyped
    """pyone's requests-based transport with a timeout of its own for every request."""

    def __init__(self, timeout: float, *, https: bool, verify: bool = True) -> None:
        super().__init__()
        self.set_https(https)
        self.set_https_verify(verify)
        self.timeout = timeout

    def request(
        self, host: str, handler: str, request_body: bytes, verbose: bool = False
    ) -> tuple[Any, ...]:
        """POST one XML-RPC request and parse the reply (HTTP errors raise ProtocolError)."""
        url = self._build_url(host, handler)
        resp = requests.post(
            url,
            data=request_body,
            headers=self.headers,
            verify=self.https_verify,
            timeout=self.timeout,
            stream=True,
        )
        with resp:
            if not resp.ok:
                raise xmlrpc.client.ProtocolError(
                    url, resp.status_code, resp.reason, dict(resp.headers)
                )
            # resp.content would read in 10 KB pieces: twice the CPU time on a 44 MB pool.
            body = b"".join(resp.iter_content(READ_CHUNK))
        return self.unmarshal(body)

    def unmarshal(self, body: bytes) -> tuple[Any, ...]:
        """The reply's values (``xmlrpc.client.Fault`` for a fault), as pyone's parse_response."""
        parser, target = self.getparser()
        parser.feed(body)
        parser.close()
        result: tuple[Any, ...] = target.close()
        return result

    def getparser(self) -> tuple[BufferedExpatParser, xmlrpc.client.Unmarshaller]:
        """The stock Unmarshaller with a buffered expat parser: see the module docstring."""
        return reply_parser(
            use_datetime=self._use_datetime, use_builtin_types=self._use_builtin_types
        )


class RawOneServer(OneServerXRPC):  # type: ignore[misc]  # pyone is untyped
    """pyone's XML-RPC server proxy, answering raw replies instead of 7.x bindings."""

    def __init__(self, endpoint: str, session: str, timeout: float, *, verify: bool = True) -> None:
        # timeout=None: pyone would otherwise set the process-wide socket default timeout.
        super().__init__(endpoint, session, timeout=None, https_verify=verify)
        self._ServerProxy__transport = TimeoutTransport(
            timeout, https=endpoint.startswith("https:"), verify=verify
        )

    def raw_call(self, method: str, args: tuple[object, ...]) -> Any:
        """Send ``method`` with the session prepended; return the unmarshalled reply."""
        return self._do_request(method, self._cast_parms(args))

    def raise_failure(self, reply: list[Any]) -> NoReturn:
        """Let pyone raise its typed exception for a failure reply ``[False, message, code]``."""
        self._OneServerXRPC__response(reply)
        raise AssertionError("pyone accepted a failure reply")  # pragma: no cover
