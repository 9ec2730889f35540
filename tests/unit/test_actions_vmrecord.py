"""The pure parts of the VM actions: the re-allocation template, the shut-down moves, the
end state of a re-created VM, and where a drained VM may go."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from upgrader.actions import placement, vmrecord
from upgrader.actions.state import seconds
from upgrader.actions.vmrecord import GRACEFUL, HARD, next_move
from upgrader.actions.vms import _bits
from upgrader.errors import UsageError
from upgrader.opennebula import HostShare, HostState, LcmState, Template, VmState
from upgrader.opennebula.models import Host


def record(**template: object) -> dict[str, object]:
    entries = [[k, v] for k, v in template.items()]
    return {"id": 7, "name": "web 01", "template": entries}


def test_reallocation_binds_image_disks_by_id_and_drops_what_oned_added() -> None:
    text = vmrecord.reallocation_template(
        record(
            CPU="1",
            DISK=[
                ["CLONE", "NO"],
                ["DISK_ID", "0"],
                ["IMAGE", "db"],
                ["IMAGE_ID", "3"],
                ["READONLY", "NO"],
                ["SAVE", "YES"],
                ["SOURCE", "/var/lib/one/images/abc"],
                ["TARGET", "vda"],
                ["TYPE", "DISK"],
                ["DRIVER", "qcow2"],
            ],
            NIC=[
                ["BRIDGE", "br0"],
                ["IP", "10.0.0.7"],
                ["MAC", "02:00:0a:00:00:07"],
                ["NETWORK", "lan"],
                ["NETWORK_ID", "2"],
                ["VLAN", "NO"],
                ["MODEL", "virtio"],
            ],
            GRAPHICS=[["TYPE", "vnc"], ["PORT", "5907"]],
            NAME="web 01",
            VMID="7",
        )
    )
    assert text == (
        'NAME = "web 01"\n'
        'CPU = "1"\n'
        'DISK = [\n  IMAGE_ID = "3",\n  TARGET = "vda",\n  DRIVER = "qcow2" ]\n'
        'NIC = [\n  IP = "10.0.0.7",\n  NETWORK_ID = "2",\n  MODEL = "virtio" ]\n'
        'GRAPHICS = [\n  TYPE = "vnc" ]\n'
    )


def test_reallocation_keeps_volatile_disks_a_fixed_vnc_port_and_uses_a_saved_disk() -> None:
    text = vmrecord.reallocation_template(
        record(
            DISK=[["DISK_ID", "1"], ["TYPE", "swap"], ["SIZE", "1024"]],
            GRAPHICS=[["TYPE", "vnc"], ["PORT", "6000"]],
            CONTEXT=[["HOSTNAME", 'say "hi"']],
        )
    )
    assert 'DISK = [\n  TYPE = "swap",\n  SIZE = "1024" ]' in text
    assert 'PORT = "6000"' in text
    assert 'HOSTNAME = "say \\"hi\\""' in text
    saved = vmrecord.reallocation_template(
        record(DISK=[["IMAGE_ID", "3"], ["SAVE_AS", "9"], ["CLONE", "YES"]])
    )
    assert 'DISK = [\n  IMAGE_ID = "9" ]' in saved


@pytest.mark.parametrize(
    ("state", "lcm", "phase", "sent", "move"),
    [
        (VmState.ACTIVE, LcmState.RUNNING, GRACEFUL, [], "shutdown"),
        (VmState.ACTIVE, LcmState.RUNNING, GRACEFUL, ["shutdown"], None),
        (VmState.ACTIVE, LcmState.RUNNING, HARD, ["shutdown"], "cancel"),
        (VmState.ACTIVE, LcmState.SHUTDOWN, GRACEFUL, ["shutdown"], None),
        (
            VmState.ACTIVE,
            LcmState.RUNNING,
            GRACEFUL,
            ["shutdown", vmrecord.SHUTTING_DOWN],
            "cancel",
        ),
        (VmState.ACTIVE, LcmState.RUNNING, HARD, ["shutdown", "cancel"], None),
        (VmState.ACTIVE, LcmState.SHUTDOWN, HARD, ["shutdown"], None),
        (VmState.ACTIVE, LcmState.UNKNOWN, GRACEFUL, [], None),
        (VmState.ACTIVE, LcmState.UNKNOWN, HARD, [], "finalize"),
        (VmState.PENDING, LcmState.LCM_INIT, GRACEFUL, [], "finalize"),
        (VmState.HOLD, LcmState.LCM_INIT, GRACEFUL, [], "finalize"),
        (VmState.FAILED, LcmState.LCM_INIT, GRACEFUL, [], "finalize"),
        (VmState.SUSPENDED, LcmState.LCM_INIT, GRACEFUL, [], "resume"),
        (VmState.STOPPED, LcmState.LCM_INIT, GRACEFUL, [], "resume"),
        (VmState.PENDING, LcmState.LCM_INIT, GRACEFUL, ["resume"], None),
        (VmState.STOPPED, LcmState.LCM_INIT, HARD, ["resume"], "finalize"),
        (None, None, HARD, [], None),
    ],
)
def test_next_move_on_the_way_to_done(state, lcm, phase, sent, move) -> None:
    assert next_move(state, lcm, phase, sent) == move


@pytest.mark.parametrize(
    ("state", "end"),
    [
        ("ACTIVE", "running"),
        ("SUSPENDED", "running"),
        ("STOPPED", "running"),
        ("PENDING", "pending"),
        ("HOLD", "hold"),
        ("FAILED", "hold"),
    ],
)
def test_a_recreated_vm_ends_as_it_was_or_held(state: str, end: str) -> None:
    assert vmrecord.end_state({"state": state}) == end


def test_octal_rights_become_the_nine_chmod_bits() -> None:
    assert _bits("640") == [1, 1, 0, 1, 0, 0, 0, 0, 0]


def host(
    hid: int, name: str, state: HostState = HostState.MONITORED, used_mb: int = 0, vms: int = 0
) -> Host:
    share = HostShare(0, used_mb * 1024, vms * 50, 0, 4096 * 1024, 800, 0, 0, 0, 0, 0, 0, vms)
    return Host(
        hid, name, state, "im_kvm", "vmm_kvm", "dummy", None, 0, None, None, share, Template()
    )


def test_a_drained_vm_goes_to_the_roomiest_host_outside_the_batch_that_is_enabled() -> None:
    hosts = [
        host(0, "a"),
        host(1, "b"),
        host(2, "c", HostState.DISABLED),
        host(3, "d", used_mb=1024),
        host(4, "e", HostState.ERROR),
        host(5, "f", HostState.MONITORING, used_mb=512),
    ]
    need = placement.Need.of(512, 0.5)
    assert placement.choose(hosts, {"a", "b"}, need).name == "f"
    assert placement.choose(hosts, {"a", "b", "f"}, need).name == "d"
    assert placement.choose(hosts, {"a", "b", "d", "f"}, need) is None
    assert placement.choose(hosts, {"a"}, placement.Need.of(4000, 1)).name == "b"
    assert placement.choose(hosts, {"a"}, placement.Need.of(8000, 1)) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(300, 300.0), (0.5, 0.5), ("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0)],
)
def test_step_durations_read_like_runbook_durations(value: object, expected: float) -> None:
    step = SimpleNamespace(vars={"shutdown_timeout": value})
    assert seconds(step, "shutdown_timeout", 1.0) == expected


@pytest.mark.parametrize("value", [0, -1, "soon", True, ""])
def test_a_bad_duration_is_a_one_line_usage_error(value: object) -> None:
    with pytest.raises(UsageError, match="step var migration_timeout must be a duration"):
        seconds(SimpleNamespace(vars={"migration_timeout": value}), "migration_timeout", 1.0)


def test_a_planned_move_takes_its_room_before_the_next_is_placed() -> None:
    hosts = [host(0, "a"), host(1, "b", used_mb=1024), host(2, "c", used_mb=1536)]
    need = placement.Need.of(1024, 0.5)
    assert placement.choose(hosts, {"a"}, need).name == "b"
    assert placement.choose(hosts, {"a"}, need, {1: need}).name == "c"
    full = placement.Need.of(2560, 1)
    assert placement.choose(hosts, {"a"}, need, {1: full, 2: placement.Need.of(2048, 1)}) is None
