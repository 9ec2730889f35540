"""pyone's XML-RPC transport, with a per-client timeout and raw ``[ok, body, code]`` replies.

pyone's own ``timeout=`` calls ``socket.setdefaulttimeout`` (process-wide) and its response
handling binds documents to the 7.x schema, which drops 3.x fields; this module avoids both
and keeps pyone's session handling, parameter casting and typed exceptions.
"""

from __future__ import annotations

import xmlrpc.client
from typing import Any, NoReturn

import requests
from pyone.server_xrpc import OneServerXRPC, RequestsTransport  # type: ignore[import-untyped]


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
        )
        if not resp.ok:
            raise xmlrpc.client.ProtocolError(
                url, resp.status_code, resp.reason, dict(resp.headers)
            )
        result: tuple[Any, ...] = self.parse_response(resp)
        return result


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
