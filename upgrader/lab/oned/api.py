"""The ``one.*`` XML-RPC methods: argument checks, authentication, answers.

Every answer is oned's ``[ok, value, code]``. Argument arity and types are checked the
way xmlrpc-c's ``paramList`` does (a fault, not an OpenNebula answer); a method the
version does not register is fault -506 ``Method '...' not defined``.
"""

from __future__ import annotations

import hashlib
import xmlrpc.client
from collections.abc import Callable
from typing import Any

from upgrader.lab.oned import template_attrs as tpl
from upgrader.lab.oned.cloud import (
    AUTHENTICATION,
    AUTHORIZATION,
    INTERNAL,
    XML_RPC_API,
    Cloud,
    OneFailure,
    not_found,
)
from upgrader.lab.oned.monitoring import start_monitoring
from upgrader.lab.oned.objects import (
    POOL_TAGS,
    Cluster,
    Host,
    PoolObject,
    User,
)
from upgrader.lab.oned.states import H_DISABLED, H_INIT

FAULT_TYPE = -501
FAULT_NO_SUCH_METHOD = -506
_TYPE_NAMES = {"i": "integer", "s": "a string", "b": "boolean"}
Handler = Callable[..., Any]
HANDLERS: dict[str, Handler] = {}


def handles(*methods: str) -> Callable[[Handler], Handler]:
    """Register a handler for one or more method names."""

    def deco(fn: Handler) -> Handler:
        for m in methods:
            HANDLERS[m] = fn
        return fn

    return deco


def _type_ok(letter: str, value: Any) -> bool:
    if letter == "i":
        return type(value) is int
    if letter == "b":
        return type(value) is bool
    return isinstance(value, str)


class Api:
    """Dispatches ``one.*`` calls against one ``Cloud``."""

    def __init__(self, cloud: Cloud) -> None:
        self.c = cloud

    def call(self, method: str, params: tuple[Any, ...]) -> list[Any]:
        """Answer one call; raise ``xmlrpc.client.Fault`` where xmlrpc-c would."""
        spec = self.c.version.methods.get(method)
        if spec is None:
            raise xmlrpc.client.Fault(FAULT_NO_SUCH_METHOD, f"Method '{method}' not defined")
        cls_name, sig = spec
        for i, letter in enumerate("s" + sig):
            if i >= len(params):
                raise xmlrpc.client.Fault(FAULT_TYPE, "Not enough parameters")
            if not _type_ok(letter, params[i]):
                raise xmlrpc.client.Fault(
                    FAULT_TYPE, f"Parameter that is supposed to be {_TYPE_NAMES[letter]} is not"
                )
        with self.c.lock:
            user = self._authenticate(params[0])
            if user is None:
                return [
                    False,
                    f"[{cls_name}] User couldn't be authenticated, aborting call.",
                    AUTHENTICATION,
                ]
            handler = HANDLERS.get(method)
            if handler is None:
                return [False, f"[{cls_name}] Not supported by the lab simulator.", INTERNAL]
            try:
                value = handler(self, user, *params[1 : 1 + len(sig)])
            except OneFailure as exc:
                return [False, f"[{cls_name}] {exc.message}", exc.code]
            self.c.wake.notify_all()
            return [True, value, 0]

    def _authenticate(self, session: str) -> User | None:
        name, sep, password = session.partition(":")
        if not sep:
            return None
        user = self.c.find(User, name)
        if user is None or not user.enabled:
            return None
        if user.auth_driver == "server_cipher":
            return None
        digest = hashlib.sha1(password.encode()).hexdigest()  # noqa: S324 - oned's core driver
        return user if digest == user.password else None

    # ---------------------------------------------------------------- helpers
    def admin(self, user: User) -> bool:
        """oneadmin and the oneadmin group may do everything."""
        return user.oid == 0 or user.gid == 0

    def require_admin(self, user: User, what: str) -> None:
        """Refuse a non-admin user, in oned's words."""
        if not self.admin(user):
            raise OneFailure(
                AUTHORIZATION, f"User [{user.oid}] : Not authorized to perform {what}."
            )

    def owned(self, user: User, obj: Any, what: str) -> Any:
        """Return ``obj`` if ``user`` may use it."""
        if not self.admin(user) and getattr(obj, "uid", -1) != user.oid:
            raise OneFailure(
                AUTHORIZATION, f"User [{user.oid}] : Not authorized to perform {what} [{obj.oid}]."
            )
        return obj

    def filtered(
        self, user: User, cls: type[PoolObject], flag: int, start: int, end: int
    ) -> list[Any]:
        """Objects of a pool as ``*pool.info(filter_flag, start, end)`` selects them."""
        if flag < -3:
            raise OneFailure(XML_RPC_API, "Incorrect filter_flag")
        out = []
        for obj in self.c.pool(cls).values():
            if start >= 0 and (obj.oid < start or (end >= 0 and obj.oid > end)):
                continue
            uid, gid = obj.uid, obj.gid
            if flag == -3 and uid != user.oid:
                continue
            if flag == -1 and uid != user.oid and gid != user.gid:
                continue
            if flag >= 0 and uid != flag:
                continue
            if flag == -2 and not self.admin(user) and uid != user.oid:
                continue
            out.append(obj)
        return out

    def pool(self, cls: type[PoolObject], objs: list[Any]) -> str:
        """A pool document of the stored bodies."""
        return self.c.pool_xml(cls, objs, POOL_TAGS[cls])

    def info(self, cls: type[PoolObject], oid: int) -> str:
        """A freshly serialised single object (``*.info``)."""
        return self.c.get(cls, oid).to_xml(self.c.series, full=True)

    def parse(self, text: str, what: str) -> tpl.Attrs:
        """Parse a template or answer oned's allocation error."""
        try:
            return tpl.parse(text)
        except tpl.TemplateSyntaxError as exc:
            raise OneFailure(
                INTERNAL, f"Error allocating a new {what}. Parse error: {exc}"
            ) from None

    def unique(self, cls: type[PoolObject], name: str, what: str, tag: str) -> None:
        """oned's NAME-is-taken refusal."""
        other = self.c.find(cls, name)
        if other is not None:
            raise OneFailure(
                INTERNAL,
                f"Error allocating a new {what}. NAME is already taken by {tag} {other.oid}.",
            )

    @staticmethod
    def owner(user: User) -> dict[str, Any]:
        """The owner fields of an object ``user`` creates."""
        return {"uid": user.oid, "gid": user.gid, "uname": user.name, "gname": user.gname}

    def now(self) -> int:
        """Simulated seconds since the epoch."""
        return int(self.c.clock.now())


# ------------------------------------------------------------------- hosts
@handles("one.hostpool.info")
def _hostpool(api: Api, user: User) -> str:
    return api.pool(Host, list(api.c.pool(Host).values()))


@handles("one.host.info")
def _host_info(api: Api, user: User, hid: int) -> str:
    return api.info(Host, hid)


@handles("one.host.allocate")
def _host_allocate(
    api: Api, user: User, name: str, im: str, vmm: str, vnm: str, last: str | int
) -> int:
    api.require_admin(user, "CREATE HOST")
    api.unique(Host, name, "host", "HOST")
    cluster = None
    if api.c.version.has_clusters:
        if last != -1:
            cluster = api.c.pool(Cluster).get(last)
            if cluster is None:
                raise not_found(Cluster, int(last))
        host = Host(
            name=name,
            im_mad=im,
            vm_mad=vmm,
            vn_mad=vnm,
            cluster_id=last,
            cluster=cluster.name if cluster else "",
        )
    else:
        host = Host(name=name, im_mad=im, vm_mad=vmm, vn_mad=vnm, tm_mad=last)
    hid = api.c.add(Host, host)
    if cluster is not None:
        cluster.hosts.append(hid)
        api.c.save(cluster)
    api.c.vms_on_host[hid] = set()
    api.c.virt.add_host(name)
    start_monitoring(api.c, host)
    return hid


@handles("one.host.enable")
def _host_enable(api: Api, user: User, hid: int, enable: bool) -> int:
    api.require_admin(user, f"MANAGE HOST [{hid}]")
    host = api.c.get(Host, hid)
    host.state = H_INIT if enable else H_DISABLED
    api.c.save(host)
    if enable:
        start_monitoring(api.c, host)
    return hid


@handles("one.host.delete")
def _host_delete(api: Api, user: User, hid: int) -> int:
    api.require_admin(user, f"ADMIN HOST [{hid}]")
    host = api.c.get(Host, hid)
    if host.share["RUNNING_VMS"] > 0:
        raise OneFailure(INTERNAL, "Cannot delete host. Can not remove a host with running VMs")
    for cluster in api.c.pool(Cluster).values():
        if hid in cluster.hosts:
            cluster.hosts.remove(hid)
            api.c.save(cluster)
    api.c.remove(host)
    return hid


@handles("one.host.update")
def _host_update(api: Api, user: User, hid: int, text: str) -> int:
    api.require_admin(user, f"MANAGE HOST [{hid}]")
    host = api.c.get(Host, hid)
    host.template = api.parse(text, "host template")
    api.c.save(host)
    return hid


@handles("one.host.monitoring")
def _host_monitoring(api: Api, user: User, hid: int) -> str:
    api.c.get(Host, hid)
    return (
        "<MONITORING_DATA>"
        + "".join(api.c.monitoring.get(("host", hid), []))
        + "</MONITORING_DATA>"
    )


@handles("one.hostpool.monitoring")
def _hostpool_monitoring(api: Api, user: User) -> str:
    bodies = [b for hid in api.c.pool(Host) for b in api.c.monitoring.get(("host", hid), [])]
    return "<MONITORING_DATA>" + "".join(bodies) + "</MONITORING_DATA>"
