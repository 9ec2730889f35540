"""OneClient against the oned 3.x simulator over a real socket, for 3.2.1, 3.4.1 and 3.6.0.

One simulator per version (module-scoped): 3 hosts and 5 running VMs seeded, then, through
plain XML-RPC calls, a virtual network, a VM template, a persistent DATABLOCK image, a user,
a PENDING VM instantiated from the template, a SUSPENDED VM and a live migration held in
progress by the ``migration-hang`` lab fault. The tests then read everything back through
OneClient and check every field of every model, so a field the client drops, mistypes or
invents fails here. Fields a version lacks must come out None.

Placement after the setup (seeded round-robin, then the actions):

    vm 0 vm001 node01 RUNNING          vm 3 vm004 node01 SUSPENDED
    vm 1 vm002 node02 RUNNING          vm 4 vm005 node02 -> node03 MIGRATE (hangs)
    vm 2 vm003 node03 RUNNING          vm 5 pending-web  PENDING (REQUIREMENTS fit no host)
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.oned import PASSWORD, Simulator, seed, start, wait_for
from upgrader.errors import (
    OneApiError,
    OneArgumentError,
    OneAuthError,
    OneInternalError,
    OneMethodMissingError,
    OneNotFoundError,
    OneStateError,
    OneUnavailableError,
)
from upgrader.opennebula import (
    DiskType,
    HistoryReason,
    Host,
    HostState,
    ImageState,
    ImageType,
    LcmState,
    OneClient,
    OneVersion,
    Permissions,
    Secret,
    Template,
    Vector,
    Vm,
    VmState,
)

VERSIONS = ("3.2.1", "3.4.1", "3.6.0")
SPEED = 100.0

HOSTS = ("node01", "node02", "node03")
SEEDED_VMS = 5
# vm id -> (name, index of the seeded host): seed_cloud places VMs round-robin.
SEEDED = {n: (f"vm{n + 1:03d}", n % len(HOSTS)) for n in range(SEEDED_VMS)}
RUNNING_IDS = (0, 1, 2)
SUSPENDED_ID = 3
MIGRATING_ID = 4
MIGRATION_TARGET = 2  # node03
PENDING_NAME = "pending-web"

SEED_MEMORY_MB = 512  # seed_cloud's defaults
SEED_CPU = "0.5"
TOTALCPU = 800  # what the simulator's probes report
TOTALMEMORY = 16777216

VNET_NAME = "lab-net"
VNET_TEXT = (
    f'NAME = "{VNET_NAME}"\nTYPE = RANGED\nBRIDGE = br0\n'
    "NETWORK_ADDRESS = 192.168.50.0\nNETWORK_SIZE = C\n"
)
TEMPLATE_TEXT = (
    'NAME = "web-template"\nCPU = 1\nMEMORY = 256\n'
    'DISK = [ IMAGE = "base-image" ]\n'
    f'NIC = [ NETWORK = "{VNET_NAME}" ]\n'
    'REQUIREMENTS = "HOSTNAME = \\"nowhere\\""\n'
)
SCRATCH_TEXT = 'NAME = "scratch"\nTYPE = DATABLOCK\nPERSISTENT = YES\nSIZE = 64\nFSTYPE = ext3\n'

OWNER_UM = Permissions(True, True, False, False, False, False, False, False, False)

_LOG = "upgrader.opennebula"


# --- matching models field by field ------------------------------------------------------------


@dataclass(frozen=True)
class That:
    """Stands for a value that depends on timing or randomness: a predicate and its description."""

    test: Callable[[Any], bool]
    what: str


def between(low: int, high: int) -> That:
    """An int in ``[low, high]``."""
    return That(lambda v: type(v) is int and low <= v <= high, f"an int in [{low}, {high}]")


def matches(pattern: str) -> That:
    """A str matching ``pattern`` in full."""
    return That(lambda v: type(v) is str and re.fullmatch(pattern, v) is not None, pattern)


def match(got: object, want: object, where: str) -> None:
    """Assert ``got`` is ``want``: dataclasses field by field (every field must be given),
    Templates and Vectors key by key (same keys), tuples element by element; anything else
    must have the same type and value (so an int is no bool and an enum no plain int).
    """
    if isinstance(want, That):
        assert want.test(got), f"{where} = {got!r}, expected {want.what}"
    elif dataclasses.is_dataclass(got) and isinstance(want, dict):
        names = {f.name for f in dataclasses.fields(got)}
        assert set(want) == names, (
            f"{where}: fields not checked {sorted(names - set(want))}, "
            f"not in the model {sorted(set(want) - names)}"
        )
        for name in sorted(names):
            match(getattr(got, name), want[name], f"{where}.{name}")
    elif isinstance(want, dict):
        assert isinstance(got, Template | Vector), f"{where} is a {type(got).__name__}"
        assert sorted(got) == sorted(want), f"{where} keys {sorted(got)} != {sorted(want)}"
        for key in sorted(want):
            match(got[key], want[key], f"{where}[{key}]")
    elif isinstance(want, list | tuple):
        assert isinstance(got, tuple), f"{where} = {got!r} is not a tuple"
        assert len(got) == len(want), f"{where} has {len(got)} items, expected {len(want)}"
        for i, (item, expected) in enumerate(zip(got, want, strict=True)):
            match(item, expected, f"{where}[{i}]")
    else:
        assert type(got) is type(want) and got == want, f"{where} = {got!r}, expected {want!r}"


# --- the simulated cloud -----------------------------------------------------------------------


@dataclass
class Lab:
    """A seeded, running simulator with the extra objects, and what the tests expect of it."""

    release: str
    sim: Simulator
    client: OneClient
    seeded_from: int  # wall clock before seeding: the seeded objects' times are after it
    seeded_until: int  # ... and before this
    started_at: int  # wall clock before the simulator started (simulated time begins here)
    vnet_id: int
    template_id: int
    scratch_id: int
    user_id: int
    pending_id: int

    @property
    def series(self) -> OneVersion:
        """3.2, 3.4 or 3.6."""
        return OneVersion(self.release.rsplit(".", 1)[0])

    def per(self, v32: object, v34: object, v36: object) -> object:
        """The value for this lab's version."""
        return {OneVersion.V3_2: v32, OneVersion.V3_4: v34, OneVersion.V3_6: v36}[self.series]

    def since_32(self, value: object) -> object:
        """``value`` from 3.4 on (clusters and datastores), None on 3.2."""
        return None if self.series is OneVersion.V3_2 else value

    def now(self) -> int:
        """The simulator's clock, rounded up: no time it reports can be later."""
        return int(self.sim.lab("lab.clock.now")) + 1

    def seeded_time(self) -> That:
        """A time set while seeding (real time, before the simulator ran)."""
        return between(self.seeded_from, self.seeded_until)

    def sim_time(self) -> That:
        """A time set by the running simulator (simulated time)."""
        return between(self.started_at, self.now())


def _raw_vms(sim: Simulator) -> dict[int, ET.Element]:
    """The VM pool as plain XML (setup waits must not depend on the client under test)."""
    root = ET.fromstring(sim.call("one.vmpool.info", -2, -1, -1, -1))
    return {int(el.findtext("ID", "-1")): el for el in root.findall("VM")}


def _polled(vm: ET.Element) -> bool:
    """The VMM poll has seen the VM since it was placed (LAST_POLL moved past its STIME)."""
    return int(vm.findtext("LAST_POLL", "0")) > int(
        vm.findtext("HISTORY_RECORDS/HISTORY/STIME", "0")
    )


def _in_state(sim: Simulator, vm_id: int, state: VmState, lcm: LcmState) -> bool:
    vm = _raw_vms(sim)[vm_id]
    return (int(vm.findtext("STATE", "-1")), int(vm.findtext("LCM_STATE", "-1"))) == (state, lcm)


def _close(sim: Simulator) -> None:
    sim.stop()
    for pipe in (sim.proc.stdout, sim.proc.stderr):
        if pipe is not None:
            pipe.close()


@pytest.fixture(scope="module", params=VERSIONS)
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The simulator of one version, seeded and driven into the states described above."""
    release: str = request.param
    workdir: Path = tmp_path_factory.mktemp(f"oned-{release}")
    seeded_from = int(time.time())
    seed(workdir, release, hosts=len(HOSTS), vms=SEEDED_VMS)
    seeded_until = int(time.time()) + 1
    started_at = int(time.time())
    sim = start(workdir, release, speed=SPEED)
    try:
        # Act only after the first poll, so every seeded VM has been polled exactly once
        # before it was suspended or migrated (the poll skips both states afterwards).
        wait_for(lambda: all(_polled(vm) for vm in _raw_vms(sim).values()))
        cluster: tuple[int, ...] = () if release == "3.2.1" else (-1,)
        vnet_id = sim.call("one.vn.allocate", VNET_TEXT, *cluster)
        template_id = sim.call("one.template.allocate", TEMPLATE_TEXT)
        datastore: tuple[int, ...] = () if release == "3.2.1" else (1,)
        scratch_id = sim.call("one.image.allocate", SCRATCH_TEXT, *datastore)
        user_id = sim.call("one.user.allocate", "alice", "alice-pw", "")
        pending_id = sim.call("one.template.instantiate", template_id, PENDING_NAME)
        sim.call("one.vm.action", "suspend", SUSPENDED_ID)
        assert sim.lab("lab.fault.set", "migration-hang", HOSTS[MIGRATION_TARGET])
        sim.call("one.vm.migrate", MIGRATING_ID, MIGRATION_TARGET, True)
        wait_for(lambda: _in_state(sim, SUSPENDED_ID, VmState.SUSPENDED, LcmState.LCM_INIT))
        client = OneClient(sim.url, Secret(sim.session), timeout=10)
        yield Lab(
            release,
            sim,
            client,
            seeded_from,
            seeded_until,
            started_at,
            vnet_id,
            template_id,
            scratch_id,
            user_id,
            pending_id,
        )
    finally:
        _close(sim)


# --- expectations ------------------------------------------------------------------------------


def _holders(vm_id: int) -> tuple[int, ...]:
    """Indexes of the hosts whose capacity a VM holds (a migrating VM holds both ends)."""
    if vm_id == MIGRATING_ID:
        return (SEEDED[vm_id][1], MIGRATION_TARGET)
    if vm_id in SEEDED:
        return (SEEDED[vm_id][1],)
    return ()


def expected_host(lab: Lab, host: Host) -> dict[str, object]:
    """Every field of host ``host.id`` (probe values random on 3.6 are checked for range)."""
    index = host.id
    placed = [vm for vm in SEEDED if index in _holders(vm)]
    random_probe = lab.series is OneVersion.V3_6
    used_mem = int(str(host.template.get("USEDMEMORY", "-1")))
    used_cpu = int(str(host.template.get("USEDCPU", "-1")))
    numeric = That(str.isdigit, "digits")
    return {
        "id": index,
        "name": HOSTS[index],
        "state": HostState.MONITORED,
        "im_mad": "im_kvm",
        "vm_mad": "vmm_kvm",
        "vn_mad": "dummy",
        "tm_mad": lab.per("tm_shared", None, None),
        "last_mon_time": lab.sim_time(),
        "cluster_id": lab.since_32(-1),
        "cluster": lab.since_32(""),
        "share": {
            "disk_usage": 0,
            "mem_usage": len(placed) * SEED_MEMORY_MB * 1024,
            "cpu_usage": len(placed) * int(float(SEED_CPU) * 100),
            "max_disk": 0,
            "max_mem": TOTALMEMORY,
            "max_cpu": TOTALCPU,
            "free_disk": 0,
            "free_mem": TOTALMEMORY - used_mem,
            "free_cpu": TOTALCPU - used_cpu,
            "used_disk": 0,
            "used_mem": used_mem,
            "used_cpu": used_cpu,
            "running_vms": len(placed),
        },
        "template": {
            "CPUSPEED": "2.2GHz",
            "FREECPU": str(TOTALCPU - used_cpu),
            "FREEMEMORY": str(TOTALMEMORY - used_mem),
            "HOSTNAME": HOSTS[index],
            "HYPERVISOR": "kvm",
            "TOTALCPU": str(TOTALCPU),
            "TOTALMEMORY": str(TOTALMEMORY),
            "USEDCPU": numeric if random_probe else "0",
            "USEDMEMORY": numeric if random_probe else "0",
        },
    }


def expected_disk(lab: Lab, image_source: str) -> dict[str, object]:
    """The DISK vector oned binds to a VM from the non-persistent image 0 ``base-image``."""
    disk: dict[str, object] = {
        "CLONE": "YES",
        "DISK_ID": "0",
        "IMAGE": "base-image",
        "IMAGE_ID": "0",
        "READONLY": "NO",
        "SAVE": "NO",
        "SOURCE": image_source,
        "TARGET": "hda",
        "TYPE": "DISK",
    }
    if lab.series is not OneVersion.V3_2:
        disk.update(DATASTORE="default", DATASTORE_ID="1", TM_MAD="shared")
    return disk


def expected_history(
    lab: Lab, vm_id: int, seq: int, host: int, *, stime: That, placed: bool
) -> dict[str, object]:
    """A history record still open (no ETIME): seeded ones are placed straight into RUNNING
    (prolog and boot times equal STIME); a live migration's target record has only PSTIME.
    """
    zero_or_same = stime if placed else 0
    return {
        "oid": lab.per(None, None, vm_id),
        "seq": seq,
        "hostname": HOSTS[host],
        "vm_dir": lab.per("/var/lib/one/", None, None),
        "hid": host,
        "stime": stime,
        "etime": 0,
        "vmmmad": "vmm_kvm",
        "vnmmad": "dummy",
        "tmmad": lab.per("tm_shared", None, "shared"),
        "ds_id": lab.per(None, None, 0),
        "pstime": stime,
        "petime": zero_or_same,
        "rstime": zero_or_same,
        "retime": 0,
        "estime": 0,
        "eetime": 0,
        "reason": HistoryReason.NONE,
    }


def expected_vm(lab: Lab, vm: Vm, image_source: str, *, full: bool) -> dict[str, object]:
    """Every field of VM ``vm.id``; ``full`` = one.vm.info (all history records)."""
    polled_36 = {
        "memory": between(SEED_MEMORY_MB * 1024 // 5, SEED_MEMORY_MB * 1024 * 99 // 100),
        "cpu": between(5, 99),
        "net_tx": between(0, 10**9),
        "net_rx": between(0, 10**9),
    }
    polled_old = {"memory": 0, "cpu": 0, "net_tx": 12345, "net_rx": 0}
    common = {
        "id": vm.id,
        "uid": 0,
        "gid": 0,
        "uname": "oneadmin",
        "gname": "oneadmin",
        "permissions": OWNER_UM,
        "resched": lab.per(None, None, False),
        "etime": 0,
    }
    if vm.id == lab.pending_id:
        return {
            **common,
            "name": PENDING_NAME,
            "last_poll": 0,
            "state": VmState.PENDING,
            "lcm_state": LcmState.LCM_INIT,
            "stime": lab.sim_time(),
            "deploy_id": "",
            "memory": 0,
            "cpu": 0,
            "net_tx": 0,
            "net_rx": 0,
            "template": {
                "CPU": "1",
                "DISK": [expected_disk(lab, image_source)],
                "MEMORY": "256",
                "NAME": PENDING_NAME,
                "NIC": [
                    {
                        "BRIDGE": "br0",
                        "IP": "192.168.50.1",
                        "MAC": "02:00:c0:a8:32:01",
                        "NETWORK": VNET_NAME,
                        "NETWORK_ID": str(lab.vnet_id),
                        "VLAN": "NO",
                    }
                ],
                "REQUIREMENTS": 'HOSTNAME = "nowhere"',
                "VMID": str(vm.id),
            },
            "history": [],
        }
    name, host = SEEDED[vm.id]
    history = [expected_history(lab, vm.id, 0, host, stime=lab.seeded_time(), placed=True)]
    if vm.id == MIGRATING_ID:
        target = expected_history(
            lab, vm.id, 1, MIGRATION_TARGET, stime=lab.sim_time(), placed=False
        )
        history = [*history, target] if full else [target]
    state, lcm = {
        SUSPENDED_ID: (VmState.SUSPENDED, LcmState.LCM_INIT),
        MIGRATING_ID: (VmState.ACTIVE, LcmState.MIGRATE),
    }.get(vm.id, (VmState.ACTIVE, LcmState.RUNNING))
    return {
        **common,
        **(polled_36 if lab.series is OneVersion.V3_6 else polled_old),
        "name": name,
        # Polled by the running simulator (simulated time) after being placed while seeding.
        "last_poll": lab.sim_time(),
        "state": state,
        "lcm_state": lcm,
        "stime": lab.seeded_time(),
        "deploy_id": f"one-{vm.id}",
        "template": {
            "CPU": SEED_CPU,
            "DISK": [expected_disk(lab, image_source)],
            "MEMORY": str(SEED_MEMORY_MB),
            "NAME": name,
            "VMID": str(vm.id),
        },
        "history": history,
    }


def _base_source(lab: Lab) -> str:
    image = next(image for image in lab.client.image_pool() if image.id == 0)
    return image.source


def _monitored(read: Callable[[], Any]) -> Callable[[], Any]:
    """``read`` again until every host in it is MONITORED (not in a monitoring cycle)."""

    def attempt() -> Any:
        value = read()
        hosts = value if isinstance(value, tuple) else (value,)
        return value if all(host.state is HostState.MONITORED for host in hosts) else None

    return attempt


# --- reading every model -----------------------------------------------------------------------


def test_detect_version(lab: Lab) -> None:
    assert lab.client.detect_version() is lab.series


def test_host_pool_reads_every_field(lab: Lab) -> None:
    hosts: tuple[Host, ...] = wait_for(_monitored(lab.client.host_pool))
    assert [host.id for host in hosts] == [0, 1, 2]
    for host in hosts:
        match(host, expected_host(lab, host), f"host_pool[{host.id}]")
        assert host.is_enabled and host.error_message is None


@pytest.mark.parametrize("host_id", range(len(HOSTS)))
def test_host_info_reads_every_field(lab: Lab, host_id: int) -> None:
    host: Host = wait_for(_monitored(lambda: lab.client.host(host_id)))
    match(host, expected_host(lab, host), f"host({host_id})")


def test_vm_pool_reads_every_field_with_the_last_history_record(lab: Lab) -> None:
    source = _base_source(lab)
    vms = lab.client.vm_pool()
    assert [vm.id for vm in vms] == [*range(SEEDED_VMS), lab.pending_id]
    for vm in vms:
        match(vm, expected_vm(lab, vm, source, full=False), f"vm_pool[{vm.id}]")


def test_vm_info_reads_every_history_record(lab: Lab) -> None:
    source = _base_source(lab)
    for vm_id in [*range(SEEDED_VMS), lab.pending_id]:
        vm = lab.client.vm(vm_id)
        match(vm, expected_vm(lab, vm, source, full=True), f"vm({vm_id})")
        if vm_id in SEEDED:  # placed straight into RUNNING after allocation, then polled
            placed = vm.history[0]
            assert vm.stime <= placed.stime == placed.pstime == placed.petime == placed.rstime
            assert vm.last_poll > placed.stime
    migrating = lab.client.vm(MIGRATING_ID)
    assert [record.seq for record in migrating.history] == [0, 1]
    assert migrating.history[1].stime >= migrating.history[0].stime


def test_vm_hosts_match_the_seeded_placement(lab: Lab) -> None:
    by_id = {vm.id: vm for vm in lab.client.vm_pool()}
    for vm_id, (name, host) in SEEDED.items():
        now_on = MIGRATION_TARGET if vm_id == MIGRATING_ID else host
        assert (by_id[vm_id].name, by_id[vm_id].host, by_id[vm_id].host_id) == (
            name,
            HOSTS[now_on],
            now_on,
        )
    source = lab.client.vm(MIGRATING_ID).history[0]
    assert (source.hostname, source.hid) == (
        HOSTS[SEEDED[MIGRATING_ID][1]],
        SEEDED[MIGRATING_ID][1],
    )
    pending = by_id[lab.pending_id]
    assert pending.host is None and pending.host_id is None and pending.last_history is None


def test_vm_derived_properties(lab: Lab) -> None:
    by_id = {vm.id: vm for vm in lab.client.vm_pool()}
    assert [vm_id for vm_id, vm in by_id.items() if vm.is_running] == list(RUNNING_IDS)
    assert [vm_id for vm_id, vm in by_id.items() if vm.is_transient] == [MIGRATING_ID]
    assert not any(vm.is_done for vm in by_id.values())
    assert all(
        vm.permissions is not None and vm.permissions.octal == "600" for vm in by_id.values()
    )
    pending = by_id[lab.pending_id]
    assert [nic["IP"] for nic in pending.nics] == ["192.168.50.1"]
    assert [disk["IMAGE"] for disk in pending.disks] == ["base-image"]


def test_images_read_every_field(lab: Lab) -> None:
    images = lab.client.image_pool()
    assert [image.id for image in images] == [0, lab.scratch_id]
    base = lab.per("/var/lib/one/images", "/var/lib/one/datastores/1", "/var/lib/one/datastores/1")
    common = {
        "uid": 0,
        "gid": 0,
        "uname": "oneadmin",
        "gname": "oneadmin",
        "permissions": OWNER_UM,
        "disk_type": lab.per(None, None, DiskType.FILE),
        "path": "",
        "cloning_ops": lab.per(None, None, 0),
        "cloning_id": lab.per(None, None, -1),
        "datastore_id": lab.since_32(1),
        "datastore": lab.since_32("default"),
        "source": matches(re.escape(str(base)) + r"/[0-9a-f]{32}"),
    }
    # 5 seeded VMs (suspended and migrating ones included) and the pending one use it.
    expected_base = {
        **common,
        "id": 0,
        "name": "base-image",
        "type": ImageType.OS,
        "persistent": False,
        "regtime": lab.seeded_time(),
        "path": "/srv/images/base.img",
        "fstype": "",
        "size": 2048,
        "state": ImageState.USED,
        "running_vms": SEEDED_VMS + 1,
        "template": {"NAME": "base-image", "PATH": "/srv/images/base.img", "SIZE": "2048"},
    }
    expected_scratch = {
        **common,
        "id": lab.scratch_id,
        "name": "scratch",
        "type": ImageType.DATABLOCK,
        "persistent": True,
        "regtime": lab.sim_time(),
        "fstype": "ext3",
        "size": 64,
        "state": ImageState.READY,
        "running_vms": 0,
        "template": {
            "FSTYPE": "ext3",
            "NAME": "scratch",
            "PERSISTENT": "YES",
            "SIZE": "64",
            "TYPE": "DATABLOCK",
        },
    }
    match(images[0], expected_base, "image_pool[0]")
    match(images[1], expected_scratch, "image_pool[1]")
    match(lab.client.image(0), expected_base, "image(0)")
    match(lab.client.image(lab.scratch_id), expected_scratch, f"image({lab.scratch_id})")
    assert images[0].source != images[1].source


def test_datastores_and_clusters_read_every_field(lab: Lab) -> None:
    if lab.series is OneVersion.V3_2:  # no such methods: xmlrpc-c's fault -506
        for call in (
            lab.client.datastore_pool,
            lambda: lab.client.datastore(0),
            lab.client.cluster_pool,
            lambda: lab.client.cluster(100),
        ):
            with pytest.raises(OneMethodMissingError) as caught:
                call()
            assert caught.value.code == -506
        return
    is_36 = lab.series is OneVersion.V3_6
    owner = {"uid": 0, "gid": 0, "uname": "oneadmin", "gname": "oneadmin"}
    none_cluster = {"cluster_id": -1, "cluster": ""}
    system = {
        **owner,
        **none_cluster,
        "id": 0,
        "name": "system",
        "permissions": Permissions(True, True, False, True, False, False, False, False, False),
        "ds_mad": "-",
        "tm_mad": "shared",
        "base_path": "/var/lib/one/datastores/0",
        "system": True if is_36 else None,
        "disk_type": DiskType.FILE if is_36 else None,
        "images": [],
        "template": {"DS_MAD": "-", "TM_MAD": "shared", **({"SYSTEM": "YES"} if is_36 else {})},
    }
    default = {
        **owner,
        **none_cluster,
        "id": 1,
        "name": "default",
        "permissions": Permissions(True, True, False, True, False, False, True, False, False),
        "ds_mad": "fs",
        "tm_mad": "shared",
        "base_path": "/var/lib/one/datastores/1",
        "system": False if is_36 else None,
        "disk_type": DiskType.FILE if is_36 else None,
        "images": [0, lab.scratch_id],
        "template": {"DS_MAD": "fs", "TM_MAD": "shared"},
    }
    datastores = lab.client.datastore_pool()
    assert [ds.id for ds in datastores] == [0, 1]
    match(datastores[0], system, "datastore_pool[0]")
    match(datastores[1], default, "datastore_pool[1]")
    match(lab.client.datastore(0), system, "datastore(0)")
    match(lab.client.datastore(1), default, "datastore(1)")
    # 3.4 and 3.6 start without clusters (cluster -1 = none); see test_cluster_members_are_read.
    assert lab.client.cluster_pool() == ()
    with pytest.raises(OneNotFoundError) as missing:
        lab.client.cluster(100)
    assert missing.value.code == 0x400


def test_users_and_groups_read_every_field(lab: Lab) -> None:
    users = lab.client.user_pool()
    expected = [
        {"id": 0, "gid": 0, "gname": "oneadmin", "name": "oneadmin", "auth_driver": "core"},
        {
            "id": 1,
            "gid": 0,
            "gname": "oneadmin",
            "name": "serveradmin",
            "auth_driver": "server_cipher",
        },
        {"id": lab.user_id, "gid": 1, "gname": "users", "name": "alice", "auth_driver": "core"},
    ]
    match(users, [{**user, "enabled": True} for user in expected], "user_pool")
    groups = lab.client.group_pool()
    match(
        groups,
        [
            {"id": 0, "name": "oneadmin", "users": [0, 1]},
            {"id": 1, "name": "users", "users": [lab.user_id]},
        ],
        "group_pool",
    )


# --- errors ------------------------------------------------------------------------------------


def _error_cases(lab: Lab) -> list[tuple[str, Callable[[], object], type[OneApiError], int, str]]:
    """(label, call, error class, code, text the message must quote)."""
    wrong = OneClient(lab.sim.url, "oneadmin:not-the-password", timeout=10)
    cases: list[tuple[str, Callable[[], object], type[OneApiError], int, str]] = [
        (
            "vm 999",
            lambda: lab.client.vm(999),
            OneNotFoundError,
            0x400,
            "Error getting virtual machine [999]",
        ),
        ("wrong password", wrong.host_pool, OneAuthError, 0x100, "User couldn't be authenticated"),
        (
            "unknown action",
            lambda: lab.client.call("one.vm.action", "explode", 0),
            OneInternalError,
            0x2000,
            "Action result not defined",
        ),
        (
            "shutdown pending",
            lambda: lab.client.call("one.vm.action", "shutdown", lab.pending_id),
            OneStateError,
            0x800,
            "Wrong state to perform action",
        ),
        (
            "no such method",
            lambda: lab.client.call("one.system.version"),
            OneMethodMissingError,
            -506,
            "one.system.version",
        ),
        (
            "wrong type",
            lambda: lab.client.call("one.vm.info", "zero"),
            OneArgumentError,
            -501,
            "supposed to be integer",
        ),
    ]
    if lab.series is OneVersion.V3_2:
        cases += [
            (
                "datastore_pool on 3.2",
                lab.client.datastore_pool,
                OneMethodMissingError,
                -506,
                "one.datastorepool.info",
            ),
            (
                "datastore on 3.2",
                lambda: lab.client.datastore(1),
                OneMethodMissingError,
                -506,
                "one.datastore.info",
            ),
            (
                "cluster_pool on 3.2",
                lab.client.cluster_pool,
                OneMethodMissingError,
                -506,
                "one.clusterpool.info",
            ),
            (
                "cluster on 3.2",
                lambda: lab.client.cluster(100),
                OneMethodMissingError,
                -506,
                "one.cluster.info",
            ),
        ]
    return cases


def test_errors_come_out_typed(lab: Lab) -> None:
    for label, call, error_class, code, quoted in _error_cases(lab):
        with pytest.raises(OneApiError) as caught:
            call()
        error = caught.value
        assert type(error) is error_class, f"{label}: {type(error).__name__}: {error}"
        assert error.code == code, f"{label}: code {error.code}"
        assert quoted in str(error), f"{label}: {error}"
        assert error.hint, label
        assert not error.retryable, label
    # The failed calls changed nothing.
    assert lab.client.vm(lab.pending_id).state is VmState.PENDING
    assert lab.client.vm(0).is_running


def test_the_session_never_shows(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    host_port = lab.sim.url.removeprefix("http://").split("/", 1)[0]
    # The password in the endpoint too: it must be masked wherever the endpoint is quoted.
    in_url = OneClient(f"http://oneadmin:{PASSWORD}@{host_port}/RPC2", lab.sim.session)
    assert [host.name for host in in_url.host_pool()] == list(HOSTS)
    texts = [repr(lab.client), str(lab.client), repr(in_url), str(in_url), in_url.endpoint]
    caplog.set_level(logging.DEBUG, logger=_LOG)
    calls: list[Callable[[], object]] = [call for _, call, _, _, _ in _error_cases(lab)]
    calls += [
        lambda: in_url.vm(999),
        lambda: in_url.call("one.vm.action", "explode", 0),
        lambda: in_url.call("one.vm.action", "shutdown", lab.pending_id),
        lambda: in_url.call("one.system.version"),
        lambda: in_url.call("one.vm.info", "zero"),
    ]
    for call in calls:
        with pytest.raises(OneApiError) as caught:
            call()
        texts += [str(caught.value), repr(caught.value), str(caught.value.hint)]
        texts += [str(arg) for arg in caught.value.args]
    texts.append(caplog.text)
    assert "one.vm.info" in caplog.text  # the calls were logged, without the session
    for text in texts:
        assert PASSWORD not in text, text
        assert "not-the-password" not in text, text


# --- simulators of their own -------------------------------------------------------------------


@pytest.mark.parametrize("release", VERSIONS)
def test_a_stopped_simulator_is_unavailable(tmp_path: Path, release: str) -> None:
    sim = start(tmp_path, release, speed=SPEED)
    try:
        client = OneClient(sim.url, sim.session, timeout=5)
        assert client.detect_version() is OneVersion(release.rsplit(".", 1)[0])
    finally:
        _close(sim)
    with pytest.raises(OneUnavailableError) as caught:
        client.host_pool()
    error = caught.value
    assert type(error) is OneUnavailableError and error.retryable and error.code is None
    assert sim.url in str(error) and "one.hostpool.info" in str(error)
    assert PASSWORD not in str(error) and PASSWORD not in repr(error)


@pytest.mark.parametrize("release", ["3.4.1", "3.6.0"])
def test_cluster_members_are_read(tmp_path: Path, release: str) -> None:
    seed(tmp_path, release, hosts=2, vms=0)
    sim = start(tmp_path, release, speed=SPEED)
    try:
        cluster_id = sim.call("one.cluster.allocate", "production")
        sim.call("one.cluster.addhost", cluster_id, 1)
        sim.call("one.cluster.adddatastore", cluster_id, 1)
        client = OneClient(sim.url, sim.session, timeout=10)
        template = {} if release == "3.6.0" else None
        expected = {
            "id": 100,
            "name": "production",
            "hosts": [1],
            "datastores": [1],
            "vnets": [],
            "template": template,
        }
        match(client.cluster_pool(), [expected], "cluster_pool")
        match(client.cluster(100), expected, "cluster(100)")
        host = client.host(1)
        assert (host.cluster_id, host.cluster) == (100, "production")
        assert (client.datastore(1).cluster_id, client.datastore(1).cluster) == (100, "production")
    finally:
        _close(sim)
