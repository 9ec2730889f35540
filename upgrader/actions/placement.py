"""Pure: which host a VM drained off a host being upgraded goes to.

Room is what oned's scheduler counts: MAX_MEM - MEM_USAGE (KB) and MAX_CPU - CPU_USAGE
(percent of a core) of HOST_SHARE, where the usage is what the VMs placed on the host
reserve (a migration in flight is already counted on its target).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from upgrader.opennebula.enums import HostState
from upgrader.opennebula.models import Host, Vm

_UNUSABLE = frozenset({HostState.DISABLED, HostState.ERROR, HostState.MONITORING_ERROR})


@dataclass(frozen=True)
class Need:
    """What one VM asks of a host: memory in KB and CPU in percent of a core."""

    memory_kb: int
    cpu_percent: int

    @classmethod
    def of(cls, memory_mb: float, cpu: float) -> Need:
        """From the VM template's MEMORY (MB) and CPU (cores)."""
        return cls(int(memory_mb * 1024), round(cpu * 100))


def need_of(vm: Vm) -> Need:
    """What ``vm`` asks of a host, from its template's MEMORY and CPU (0 when unset or not a
    number)."""

    def number(name: str) -> float:
        try:
            return float(vm.template.text(name) or 0)
        except ValueError:
            return 0.0

    return Need.of(number("MEMORY"), number("CPU"))


def free(host: Host) -> tuple[int, int]:
    """(memory KB, CPU percent) the host still has for new VMs."""
    share = host.share
    return share.max_mem - share.mem_usage, share.max_cpu - share.cpu_usage


def candidates(hosts: Iterable[Host], batch: Collection[str]) -> list[Host]:
    """Hosts a VM may go to: not in the batch being upgraded, not disabled, not in error."""
    return [h for h in hosts if h.name not in batch and h.state not in _UNUSABLE]


def choose(
    hosts: Sequence[Host],
    batch: Collection[str],
    need: Need,
    reserved: Mapping[int, Need] | None = None,
) -> Host | None:
    """The eligible host with room for ``need`` that has the most free memory, or None.

    ``reserved`` is what earlier choices not yet known to oned take from a host (a dry run
    plans every move before making any).
    """
    taken = reserved or {}

    def room(host: Host) -> tuple[int, int]:
        mem, cpu = free(host)
        held = taken.get(host.id, Need(0, 0))
        return mem - held.memory_kb, cpu - held.cpu_percent

    fitting = [
        h
        for h in candidates(hosts, batch)
        if room(h)[0] >= need.memory_kb and room(h)[1] >= need.cpu_percent
    ]
    if not fitting:
        return None
    return min(fitting, key=lambda h: (-room(h)[0], h.share.running_vms, h.id))


def place(
    hosts: Sequence[Host], batch: Collection[str], need: Need, reserved: dict[int, Need]
) -> Host | None:
    """``choose`` for a plan of moves made later: the chosen host's room for ``need`` is
    counted in ``reserved``, so that the next choices see it taken."""
    host = choose(hosts, batch, need, reserved)
    if host is not None:
        held = reserved.get(host.id, Need(0, 0))
        reserved[host.id] = Need(
            held.memory_kb + need.memory_kb, held.cpu_percent + need.cpu_percent
        )
    return host
