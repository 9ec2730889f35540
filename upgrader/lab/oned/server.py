"""The simulator's XML-RPC server, its engine thread and the ``lab.*`` control methods.

``lab.*`` is not part of any oned: it switches the faults operators met (libvirtd
crashed, oned hanging or slow, a host unreachable, migrations failing or hanging) and
is refused (-506, like any unknown method) unless the server runs with lab control.
"""

from __future__ import annotations

import socketserver
import threading
import time
import xmlrpc.client
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

from upgrader.lab.oned import api_objects, api_vms  # noqa: F401 - registers their handlers
from upgrader.lab.oned.api import FAULT_NO_SUCH_METHOD, Api
from upgrader.lab.oned.cloud import Cloud
from upgrader.lab.oned.objects import Host

HOST_FAULTS = {"libvirtd-crash", "host-unreachable"}
FAULTS = HOST_FAULTS | {"oned-hang", "slow-api", "migration-fail", "migration-hang"}


class _Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/RPC2", "/")
    encode_threshold = None  # oned's Abyss server never gzips its answers

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging."""


class OnedServer(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
    """A threaded XML-RPC server answering like oned."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, cloud: Cloud, address: tuple[str, int], *, lab_control: bool) -> None:
        super().__init__(address, requestHandler=_Handler, logRequests=False, allow_none=False)
        self.cloud = cloud
        self.api = Api(cloud)
        self.lab_control = lab_control
        self.stopping = threading.Event()
        self._engine = threading.Thread(target=self._run_engine, name="oned-engine", daemon=True)

    @property
    def url(self) -> str:
        """The endpoint clients use."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/RPC2"

    def _dispatch(self, method: str, params: tuple[Any, ...]) -> Any:
        if method.startswith("lab."):
            if not self.lab_control:
                raise xmlrpc.client.Fault(FAULT_NO_SUCH_METHOD, f"Method '{method}' not defined")
            return self._lab(method, params)
        self._suffer_api_faults()
        return self.api.call(method, params)

    def _suffer_api_faults(self) -> None:
        while not self.stopping.is_set():
            with self.cloud.lock:
                hang = self.cloud.fault("oned-hang") is not None
                slow = self.cloud.fault("slow-api")
            if not hang:
                break
            time.sleep(0.05)
        if slow is not None:
            time.sleep(float(slow.get("delay", 1.0)))

    # ------------------------------------------------------------- lab.*
    def _lab(self, method: str, params: tuple[Any, ...]) -> Any:
        handler = {
            "lab.fault.set": self._fault_set,
            "lab.fault.clear": self._fault_clear,
            "lab.fault.list": self._fault_list,
            "lab.virt.list": self._virt_list,
            "lab.virt.destroy": self._virt_destroy,
            "lab.clock.advance": self._advance,
            "lab.clock.now": self.cloud.clock.now,
            "lab.flush": self._flush,
            "lab.status": self._status,
        }.get(method)
        if handler is None:
            raise xmlrpc.client.Fault(FAULT_NO_SUCH_METHOD, f"Method '{method}' not defined")
        try:
            with self.cloud.lock:
                result = handler(*params)
                self.cloud.wake.notify_all()
                return result
        except TypeError as exc:
            raise xmlrpc.client.Fault(-501, f"bad arguments for {method}: {exc}") from None

    def _fault_set(self, name: str, target: str = "", params: dict[str, Any] | None = None) -> bool:
        if name not in FAULTS:
            raise xmlrpc.client.Fault(-500, f"unknown fault '{name}'; known: {sorted(FAULTS)}")
        if name in HOST_FAULTS:
            host = self.cloud.find(Host, target)
            if host is None:
                raise xmlrpc.client.Fault(
                    -500, f"fault '{name}' needs a known host, not '{target}'"
                )
            self.cloud.virt.set_state(
                target,
                **({"libvirtd": False} if name == "libvirtd-crash" else {"reachable": False}),
            )
        self.cloud.faults[(name, target)] = dict(params or {})
        return True

    def _fault_clear(self, name: str, target: str = "") -> bool:
        if self.cloud.faults.pop((name, target), None) is None:
            return False
        if name == "libvirtd-crash":
            self.cloud.virt.set_state(target, libvirtd=True)
        if name == "host-unreachable":
            self.cloud.virt.set_state(target, reachable=True)
        return True

    def _fault_list(self) -> list[dict[str, Any]]:
        return [
            {"name": n, "target": t, "params": p} for (n, t), p in sorted(self.cloud.faults.items())
        ]

    def _virt_list(self, host: str) -> list[str]:
        return self.cloud.virt.running(host)

    def _virt_destroy(self, host: str, domain: str) -> bool:
        if domain not in self.cloud.virt.running(host):
            return False
        self.cloud.virt.stop(host, domain)
        return True

    def _advance(self, seconds: float) -> float:
        self.cloud.clock.advance(float(seconds))
        return self.cloud.clock.now()

    def _flush(self) -> bool:
        self.cloud.flush()
        self.cloud.virt.flush()
        return True

    def _status(self) -> dict[str, Any]:
        c = self.cloud
        return {
            "version": c.version.release,
            "time": c.clock.now(),
            "speed": c.clock.speed,
            "hosts": len(c.pools[Host]),
            "faults": len(c.faults),
        }

    # ------------------------------------------------------------ engine
    def start_engine(self) -> None:
        """Start the thread that runs timed events and writes changes."""
        self._engine.start()

    def _run_engine(self) -> None:
        last_flush = time.monotonic()
        cond = self.cloud.wake
        while not self.stopping.is_set():
            with cond:
                wait = self.cloud.run_due()
                if time.monotonic() - last_flush >= 0.25:
                    self.cloud.flush()
                    self.cloud.virt.flush()
                    last_flush = time.monotonic()
                cond.wait(timeout=max(0.005, min(wait, 0.25)))

    def stop(self) -> None:
        """Stop serving and write everything out."""
        self.stopping.set()
        with self.cloud.wake:
            self.cloud.wake.notify_all()
        self.shutdown()
        self.server_close()
        if self._engine.is_alive():
            self._engine.join(timeout=5)
        with self.cloud.lock:
            self.cloud.flush()
            self.cloud.virt.flush()
