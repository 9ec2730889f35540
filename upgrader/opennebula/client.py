"""The OpenNebula 3.x XML-RPC client: raw calls, typed snapshots and version detection.

Every failure becomes an ``upgrader.errors.OneApiError`` subclass. The session never appears in
a message, a log line or a repr: oned's texts are scrubbed of it before they are quoted.
"""

from __future__ import annotations

import ast
import logging
import re
import time
import xmlrpc.client
from typing import Any, Final
from urllib.parse import urlsplit
from xml.parsers.expat import ExpatError

import pyone  # type: ignore[import-untyped]
import requests

from upgrader.errors import (
    ConfigError,
    OneApiError,
    OneArgumentError,
    OneAuthError,
    OneInternalError,
    OneMethodMissingError,
    OneNotFoundError,
    OneResponseError,
    OneStateError,
    OneUnavailableError,
)
from upgrader.opennebula import parse
from upgrader.opennebula.detect import MethodProbe, reconcile, xml_markers
from upgrader.opennebula.enums import OneVersion
from upgrader.opennebula.models import Cluster, Datastore, Group, Host, Image, User, Vm
from upgrader.opennebula.secret import Secret
from upgrader.opennebula.transport import RawOneServer

_log = logging.getLogger(__name__)

FAULT_METHOD_MISSING: Final = -506
AUTHORIZATION: Final = 0x0200

# A Fault reaches us as pyone.OneException(str(fault)): '<Fault -506: "Method \'x\' not defined">'.
_FAULT_RE: Final = re.compile(r"<Fault (-?\d+): (.*)>", re.DOTALL)
# Passwords shorter than this are not scrubbed on their own: they would mangle ordinary words.
_MIN_SCRUBBED_PASSWORD: Final = 4

# Checked in this order: requests' InvalidURL is a ValueError too, and it is no parse error.
_UNREACHABLE: Final = (requests.RequestException, xmlrpc.client.ProtocolError, OSError)
_NOT_XMLRPC: Final = (ExpatError, xmlrpc.client.ResponseError, ValueError)

# pyone's typed exceptions (one per OpenNebula error code) -> ours, with a hint.
_FAILURES: Final[dict[type[pyone.OneException], tuple[type[OneApiError], str]]] = {
    pyone.OneAuthenticationException: (
        OneAuthError,
        "check the username:password session configured for this cloud",
    ),
    pyone.OneAuthorizationException: (
        OneAuthError,
        "use an account of the oneadmin group, or grant this one the rights (oneacl)",
    ),
    pyone.OneNoExistsException: (OneNotFoundError, "list the pool to see which ids exist"),
    pyone.OneActionException: (OneStateError, "wait until the object reaches a stable state"),
    pyone.OneApiException: (OneArgumentError, "check the arguments against the 3.x API"),
    pyone.OneInternalException: (OneInternalError, "read oned.log on the front-end"),
}


def _display_endpoint(endpoint: str) -> str:
    """The endpoint with any password in its user-info part replaced by ``***``."""
    userinfo, at, hostport = urlsplit(endpoint).netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return endpoint
    user = userinfo.split(":", 1)[0]
    return endpoint.replace(f"{userinfo}@{hostport}", f"{user}:***@{hostport}", 1)


def _has_valid_port(endpoint: str) -> bool:
    try:
        urlsplit(endpoint).port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return True


def _describe(value: object) -> str:
    if isinstance(value, list | tuple):
        return f"a {len(value)}-element array"
    return f"a {type(value).__name__}"


class OneClient:
    """A client for one OpenNebula 3.2/3.4/3.6 oned, built on pyone's XML-RPC transport.

    Args:
        endpoint: the XML-RPC URL, e.g. ``http://frontend:2633/RPC2``.
        session: ``username:password``, preferably wrapped in a Secret.
        timeout: seconds to wait for each call (this client only, not process-wide).
        timeout_setting: where the operator sets ``timeout`` (a config key), named in the
            hint when a call times out.
    """

    __slots__ = ("_endpoint", "_secrets", "_server", "_timeout", "_timeout_setting")

    def __init__(
        self,
        endpoint: str,
        session: str | Secret,
        *,
        timeout: float = 30.0,
        timeout_setting: str = "",
    ) -> None:
        self._endpoint = _display_endpoint(endpoint)
        parts = urlsplit(endpoint)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or not _has_valid_port(endpoint)
        ):
            raise ConfigError(
                f"the OpenNebula endpoint {self._endpoint!r} is not an http(s) URL",
                hint="write it like http://frontend:2633/RPC2",
            )
        if not timeout > 0:
            raise ConfigError(f"the OpenNebula timeout must be positive, not {timeout!r}")
        secret = session if isinstance(session, Secret) else Secret(session)
        value = secret.reveal()
        user, colon, password = value.partition(":")
        if not (user and colon and password):
            raise ConfigError(
                "the OpenNebula session must look like username:password",
                hint="check the credentials file configured for this cloud",
            )
        scrub = [value] + ([password] if len(password) >= _MIN_SCRUBBED_PASSWORD else [])
        self._secrets = tuple(scrub)
        self._timeout = float(timeout)
        self._timeout_setting = timeout_setting
        self._server = RawOneServer(endpoint, value, self._timeout)

    @property
    def endpoint(self) -> str:
        """The endpoint, with any password in it masked."""
        return self._endpoint

    @property
    def timeout(self) -> float:
        """Seconds each call may take."""
        return self._timeout

    def __repr__(self) -> str:
        return f"OneClient(endpoint={self._endpoint!r}, timeout={self._timeout})"

    def call(self, method: str, *args: object) -> Any:
        """Call ``method`` (e.g. ``one.vm.info``), session prepended; return the value at [1]."""
        started = time.monotonic()
        try:
            reply = self._send(method, args)
            value = self._check(method, reply)
        except OneApiError as exc:
            _log.debug(
                "[one] %s failed after %.3fs: %s (code %s)",
                method,
                _since(started),
                type(exc).__name__,
                exc.code,
            )
            raise
        _log.debug("[one] %s ok in %.3fs", method, _since(started))
        return value

    def _send(self, method: str, args: tuple[object, ...]) -> Any:
        try:
            return self._server.raw_call(method, args)
        except pyone.OneException as exc:
            raise self._fault(method, str(exc)) from None
        except _UNREACHABLE as exc:
            slow = (
                f" (if it is only slow, raise {self._timeout_setting})"
                if isinstance(exc, requests.Timeout) and self._timeout_setting
                else ""
            )
            raise OneUnavailableError(
                f"cannot reach oned at {self._endpoint} ({method}): {self._reason(exc)}",
                hint=f"check that oned runs and listens at {self._endpoint}{slow}",
            ) from exc
        except _NOT_XMLRPC as exc:
            # xmlrpc's ResponseError says nothing but its own name: say what it means
            detail = (
                "XML, but not an XML-RPC methodResponse"
                if isinstance(exc, xmlrpc.client.ResponseError)
                else f"{type(exc).__name__}: {self._scrub(str(exc))}"
            )
            raise OneResponseError(
                f"{method}: {self._endpoint} did not answer with XML-RPC ({detail})",
                hint="is the endpoint an OpenNebula oned (port 2633, path /RPC2)?",
            ) from None

    def _check(self, method: str, reply: Any) -> Any:
        if not isinstance(reply, list | tuple) or len(reply) != 3:
            raise OneResponseError(
                f"{method}: oned at {self._endpoint} answered {_describe(reply)}, "
                "not the [ok, value, code] array of OpenNebula 3.x",
                hint="is the endpoint an OpenNebula 3.x oned? (2.x answers 2-element arrays)",
            )
        ok, value, code = reply
        if not isinstance(ok, bool) or not isinstance(code, int) or isinstance(code, bool):
            raise OneResponseError(
                f"{method}: oned at {self._endpoint} answered a malformed [ok, value, code] array"
            )
        if ok:
            return value
        if not isinstance(value, str):
            raise OneResponseError(f"{method}: oned reported failure {code} without a message")
        raise self._failure(method, [ok, value, code])

    def _failure(self, method: str, reply: list[Any]) -> OneApiError:
        code: int = reply[2]
        try:
            self._server.raise_failure(reply)
        except pyone.OneException as exc:
            message = f"{method} failed on {self._endpoint}: {self._scrub(str(exc))}"
            known = _FAILURES.get(type(exc))
            if known is None:
                return OneResponseError(f"{message} (unknown error code {code})", code=code)
            error_class, hint = known
            return error_class(message, code=code, hint=hint)
        raise AssertionError("unreachable")  # pragma: no cover

    def _fault(self, method: str, text: str) -> OneApiError:
        match = _FAULT_RE.fullmatch(text.strip())
        if match is None:
            return OneResponseError(f"{method}: unexpected pyone error: {self._scrub(text)}")
        code = int(match[1])
        try:
            detail = str(ast.literal_eval(match[2]))
        except (ValueError, SyntaxError):
            detail = match[2]
        detail = self._scrub(detail)
        if code == FAULT_METHOD_MISSING:
            return OneMethodMissingError(
                f"{method} does not exist on oned at {self._endpoint}: {detail}",
                code=code,
                hint="this OpenNebula version lacks the method (datastores and clusters "
                "exist from 3.4); detect the version first",
            )
        return OneArgumentError(
            f"{method} was rejected by oned at {self._endpoint} (XML-RPC fault {code}): {detail}",
            code=code,
            hint="check the number and types of the arguments for this OpenNebula version",
        )

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, requests.Timeout):
            return f"no answer within {self._timeout:g}s"
        if isinstance(exc, xmlrpc.client.ProtocolError):
            return f"HTTP {exc.errcode} {exc.errmsg}"
        cause = _os_error(exc)
        if cause:
            return cause
        return f"{type(exc).__name__}: {self._scrub(str(exc))}"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # --- typed snapshots -------------------------------------------------------------------

    def host_pool(self) -> tuple[Host, ...]:
        """All hosts (``one.hostpool.info``)."""
        return parse.parse_host_pool(self.call("one.hostpool.info"), "one.hostpool.info")

    def host(self, host_id: int) -> Host:
        """One host (``one.host.info``)."""
        return parse.parse_host(self.call("one.host.info", host_id), "one.host.info")

    def vm_pool(
        self, filter_flag: int = -2, start: int = -1, end: int = -1, state: int = -1
    ) -> tuple[Vm, ...]:
        """VMs (``one.vmpool.info``; defaults: all I may see, any state but DONE)."""
        body = self.call("one.vmpool.info", filter_flag, start, end, state)
        return parse.parse_vm_pool(body, "one.vmpool.info")

    def vm(self, vm_id: int) -> Vm:
        """One VM with all its history records (``one.vm.info``)."""
        return parse.parse_vm(self.call("one.vm.info", vm_id), "one.vm.info")

    def image_pool(self) -> tuple[Image, ...]:
        """All images I may see (``one.imagepool.info -2 -1 -1``)."""
        body = self.call("one.imagepool.info", -2, -1, -1)
        return parse.parse_image_pool(body, "one.imagepool.info")

    def image(self, image_id: int) -> Image:
        """One image (``one.image.info``)."""
        return parse.parse_image(self.call("one.image.info", image_id), "one.image.info")

    def datastore_pool(self) -> tuple[Datastore, ...]:
        """All datastores (``one.datastorepool.info``, 3.4+)."""
        body = self.call("one.datastorepool.info")
        return parse.parse_datastore_pool(body, "one.datastorepool.info")

    def datastore(self, datastore_id: int) -> Datastore:
        """One datastore (``one.datastore.info``, 3.4+)."""
        body = self.call("one.datastore.info", datastore_id)
        return parse.parse_datastore(body, "one.datastore.info")

    def cluster_pool(self) -> tuple[Cluster, ...]:
        """All clusters (``one.clusterpool.info``, 3.4+)."""
        body = self.call("one.clusterpool.info")
        return parse.parse_cluster_pool(body, "one.clusterpool.info")

    def cluster(self, cluster_id: int) -> Cluster:
        """One cluster (``one.cluster.info``, 3.4+)."""
        body = self.call("one.cluster.info", cluster_id)
        return parse.parse_cluster(body, "one.cluster.info")

    def user_pool(self) -> tuple[User, ...]:
        """All users (``one.userpool.info``)."""
        return parse.parse_user_pool(self.call("one.userpool.info"), "one.userpool.info")

    def group_pool(self) -> tuple[Group, ...]:
        """All groups (``one.grouppool.info``)."""
        return parse.parse_group_pool(self.call("one.grouppool.info"), "one.grouppool.info")

    # --- version detection -----------------------------------------------------------------

    def detect_version(self) -> OneVersion:
        """Which of 3.2/3.4/3.6 oned runs, by method probes cross-checked with XML markers.

        Calls only read-only methods. Raises OneResponseError if probes and markers disagree.
        """
        probe = MethodProbe(
            system_version=self._has_method("one.system.version"),
            datastorepool_info=self._has_method("one.datastorepool.info"),
            vmpool_accounting=self._has_method("one.vmpool.accounting", -2, -1, -1),
        )
        version = reconcile(probe, xml_markers(self.host_pool(), self.vm_pool()))
        _log.debug("[one] %s runs OpenNebula %s", self._endpoint, version)
        return version

    def _has_method(self, method: str, *args: object) -> bool:
        """Whether oned knows ``method``: any answer but a -506 fault means it does."""
        try:
            self.call(method, *args)
        except OneMethodMissingError:
            return False
        except OneAuthError as exc:
            if exc.code != AUTHORIZATION:  # a refused session tells nothing about the method
                raise
        except (OneArgumentError, OneNotFoundError, OneStateError, OneInternalError):
            pass
        return True


def _os_error(exc: BaseException) -> str | None:
    """The innermost OS-level reason (e.g. ``Connection refused``) in a chain of exceptions."""
    reason: str | None = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            reason = current.strerror
        current = current.__cause__ or current.__context__
    return reason


def _since(started: float) -> float:
    return time.monotonic() - started
