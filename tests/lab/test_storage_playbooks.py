"""The storage playbooks on the lab's staging cloud: preflight, sync, verify, switch, switch back.

Real ansible-runner over SSH, the copy engine shipped as module_utils, the lab's loop-mounted
ext4 datastore as the old volume and its nfs-ganesha export (mounted by bind, as the lab's
inventory says). Own lab (2 staging hosts, few VMs), because the switch changes every host's
mounts and the CIB. The tests run in file order and share the copy: the pipeline test leaves
the staging cloud switched back, with the copy still on the export for the corrupt-copy test.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.conftest import side_lab, upgrader
from tests.lab.storage_runs import checksum
from tests.lab.storage_runs import tree as snapshot
from upgrader.ansible_adapter.outcome import PlaybookCall, PlaybookOutcome
from upgrader.ansible_adapter.runner import run_playbook
from upgrader.lab import hosts as hs

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]

NAME, SUBNET = side_lab("st", 150)
REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
DATASTORE = "/var/lib/one/datastores"
EXPORT = "/srv/lab/nfs/export/staging"
MANIFEST = "/var/lib/upgrader-storage/manifest.jsonl"
CIB = "CIB_file=/srv/lab/staging/pcmk/cib.xml"
RUN_ID = "staging-20261124T0600Z"
DENSE = "1/0123456789abcdef0123456789abcdef"  # an image, 6 MiB of random data
SPARSE = "1/fedcba9876543210fedcba9876543210"  # a raw image: 64 MiB, 3 MiB of data
MiB = 1 << 20


@dataclass
class Lab:
    dir: Path
    hosts: list[str]
    tmp: Path
    runs: int = 0

    @property
    def fe(self) -> str:
        return self.hosts[0]

    @property
    def old(self) -> Path:
        """The old datastore, as the machine sees it."""
        return self.dir / "share" / "staging" / "datastores"

    @property
    def export(self) -> Path:
        return self.dir / "share" / "nfs" / "export" / "staging"

    def out(self, host: str, command: str) -> str:
        done = hs.enter(self.dir, host, "sh", "-c", command, check=False, timeout=60)
        assert done.returncode == 0, f"{host}: {command}: {done.stderr}"
        return done.stdout

    def play(self, name: str, lines: list[str] | None = None, **extra: object) -> PlaybookOutcome:
        self.runs += 1
        check = bool(extra.pop("check", False))
        call = PlaybookCall(
            step_id=name,
            playbook=PLAYBOOKS / f"{name}.yml",
            project_dir=PLAYBOOKS,
            inventory=self.dir / "inventory" / "staging.yml",
            private_data_dir=self.tmp / f"pdd-{self.runs:02d}",
            extra_vars={"upgrader_state_dir": str(self.tmp / "state"), **extra},
            check=check,
            timeout=300,
        )
        started = time.monotonic()
        outcome = run_playbook(call, progress=(lines.append if lines is not None else None))
        print(f"[storage] {name} {extra}: {outcome.status} in {time.monotonic() - started:.1f} s")
        return outcome

    def failure(self, outcome: PlaybookOutcome) -> str:
        return "\n".join(outcome.stdout_tail)

    def cib(self, param: str) -> str:
        return self.out(
            self.fe,
            f"{CIB} crm_resource --resource one-datastore-fs --get-parameter {param} "
            "--quiet 2>/dev/null",
        ).strip()


def _write_data(old: Path) -> None:
    """What a datastore holds besides the lab's VM disks: a dense image, a sparse raw image
    with data in three places, a VM's deployment file owned by oneadmin, a link to an image."""
    (old / "1").mkdir(exist_ok=True)
    (old / DENSE).write_bytes(os.urandom(6 * MiB))
    with (old / SPARSE).open("wb") as fh:
        for offset in (0, 20 * MiB, 63 * MiB):
            fh.seek(offset)
            fh.write(os.urandom(MiB))
        fh.truncate(64 * MiB)
    vm = next(p for p in sorted((old / "0").iterdir()) if p.is_dir())
    deployment = vm / "deployment.0"
    deployment.write_text("<domain type='kvm'><name>one-0</name></domain>\n")
    os.chown(deployment, 9869, 9869)
    deployment.chmod(0o640)
    os.utime(deployment, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    (vm / "disk.1").symlink_to(f"../../{DENSE}")


def same_dir(lab: Lab, host: str, a: str, b: str) -> bool:
    """Whether two paths in a host are the same directory (a bind mount shows its source)."""
    return len(set(lab.out(host, f"stat -c %d:%i {a} {b}").split())) == 1


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (CI runs them as root)")
    upgrader("lab", "down", "--name", NAME)
    started = time.monotonic()
    upgrader(
        "lab",
        "up",
        "--name",
        NAME,
        "--subnet",
        f"{SUBNET}.0/24",
        "--hosts-staging",
        "2",
        "--hosts-production",
        "1",
        "--vms",
        "3",
    )
    print(f"\n[storage] lab up took {time.monotonic() - started:.1f} s")
    directory = Path("/var/lib/upgrader-lab") / NAME
    spec = json.loads((directory / "spec.json").read_text())
    hosts = [h["name"] for h in spec["hosts"] if h["cloud"] == "staging"]
    state = Lab(directory, hosts, tmp_path_factory.mktemp("storage"))
    _write_data(state.old)
    try:
        yield state
    finally:
        upgrader("lab", "down", "--name", NAME)


def test_a_dry_run_of_the_sync_lists_every_file_and_writes_nothing(lab):
    outcome = lab.play("storage-sync", storage_phase="presync", check=True)
    assert outcome.ok, lab.failure(outcome)
    plan = outcome.data["storage_sync"]
    files = sorted(r for r, e in snapshot(lab.old).items() if e[0] == stat.S_IFREG)
    assert plan["check_mode"] is True
    assert (plan["copied_count"], sorted(plan["copied_first"])) == (len(files), files)
    assert sorted(p.name for p in lab.export.iterdir()) == []


def test_preflight_passes_on_a_fresh_lab_and_counts_the_datastore(lab):
    outcome = lab.play("storage-preflight")
    assert outcome.ok, lab.failure(outcome)
    inventory = outcome.data["storage_inventory"]
    assert inventory["frontend"] == lab.fe
    assert inventory["files"] == 3 + 3  # the VMs' disks, two images and a deployment file
    assert inventory["symlinks"] == 1
    assert 9 * MiB <= inventory["allocated_bytes"] < 10 * MiB  # sparse parts are not counted
    assert inventory["apparent_bytes"] > 250 * MiB


def test_preflight_with_a_full_export_fails_with_both_numbers(lab):
    upgrader("lab", "fault", "nfs-full", "--name", NAME)
    try:
        outcome = lab.play("storage-preflight")
    finally:
        upgrader("lab", "fault", "nfs-full", "--name", NAME, "--clear")
    assert not outcome.ok
    assert outcome.failed_hosts == (lab.fe,)
    assert re.search(
        rf"NFS export {EXPORT} has 0\.0 MiB free, the datastore needs 9\.\d MiB "
        r"\(allocated 9\.\d MiB \+ 5 %\)",
        lab.failure(outcome),
    ), lab.failure(outcome)


def test_sync_verify_switch_then_switch_back(lab):
    fstab_before = {h: lab.out(h, "cat /etc/fstab") for h in lab.hosts}
    device_before = lab.cib("device")
    assert device_before.startswith("/dev/loop")

    # pre-sync while the VMs run, then a VM writes, then the delta copies only that file
    presync = lab.play("storage-sync", storage_phase="presync")
    assert presync.ok, lab.failure(presync)
    assert presync.data["storage_sync"]["copied_count"] == 6
    with (lab.old / DENSE).open("r+b") as fh:
        fh.seek(3 * MiB)
        fh.write(os.urandom(4096))
    before = snapshot(lab.old)
    delta = lab.play("storage-sync", storage_phase="delta")
    assert delta.ok, lab.failure(delta)
    assert (delta.data["storage_sync"]["copied_first"], delta.data["storage_sync"]["skipped"]) == (
        [DENSE],
        5,
    )
    assert (
        json.loads((lab.tmp / "state" / "storage-delta-summary.json").read_text())["totals"][
            "files"
        ]
        == 6
    )

    verify = lab.play("storage-verify")
    assert verify.ok, lab.failure(verify)
    assert verify.data["storage_verify"]["verified"] == verify.data["storage_verify"]["entries"]

    switch = lab.play("storage-switch", upgrader_run_id=RUN_ID)
    assert switch.ok, lab.failure(switch)
    for host in lab.hosts:
        assert same_dir(lab, host, DATASTORE, EXPORT), host
        assert lab.out(host, f"ls {DATASTORE}/1").split() == sorted(
            Path(p).name for p in (DENSE, SPARSE)
        )
        assert lab.out(host, "cat /etc/fstab").splitlines()[1:] == [
            f"#upgrader-storage {RUN_ID}: /srv/lab/staging/datastores {DATASTORE} none bind 0 0",
            f"{EXPORT} {DATASTORE} none bind 0 0",
        ]
    assert (lab.cib("device"), lab.cib("fstype"), lab.cib("options")) == (EXPORT, "none", "bind")

    # every manifest checksum matches one computed here from the copy and from the source
    lines = [json.loads(line) for line in lab.out(lab.fe, f"cat {MANIFEST}").splitlines()]
    chunk = next(r for r in lines if "manifest" in r)["chunk_size"]
    records = {r["path"]: r for r in lines if "path" in r}
    files = {p: r for p, r in records.items() if r["type"] == "file"}
    assert sorted(files) == sorted(r for r, e in before.items() if e[0] == stat.S_IFREG)
    for rel, record in files.items():
        assert record["state"] == "verified"
        assert (
            checksum(lab.export / rel, chunk)
            == record["checksum"]
            == checksum(lab.old / rel, chunk)
        ), rel
    assert snapshot(lab.old) == before  # the old volume: content, mode, owner, mtime
    assert snapshot(lab.export) == before
    for rel in (SPARSE, *[p for p in files if p.endswith("disk.0")]):
        old, new = (lab.old / rel).stat(), (lab.export / rel).stat()
        assert abs(new.st_blocks - old.st_blocks) <= old.st_blocks * 0.02, rel
        assert new.st_blocks * 512 < new.st_size / 10, rel  # still sparse

    back = lab.play("storage-switchback")
    assert back.ok, lab.failure(back)
    for host in lab.hosts:
        assert lab.out(host, "cat /etc/fstab") == fstab_before[host]
        assert same_dir(lab, host, DATASTORE, "/srv/lab/staging/datastores"), host
        assert lab.out(host, f"findmnt -n -o FSTYPE {DATASTORE}").strip() == "ext4"
    assert (lab.cib("device"), lab.cib("fstype"), lab.cib("options")) == (device_before, "ext4", "")
    assert snapshot(lab.old) == before
    again = lab.play("storage-switchback")  # idempotent: only the export's stage mount comes
    assert again.ok, lab.failure(again)  # and goes (to look for writes made on it)
    assert {c.task for c in again.changed} <= {
        "Mount the NFS export at the stage path",
        "Unmount the stage mount",
    }


def test_a_corrupted_copy_fails_verify_naming_the_file(lab):
    synced = lab.play("storage-sync", storage_phase="presync")
    assert synced.ok, lab.failure(synced)
    said = upgrader("lab", "fault", "corrupt-copy", "--name", NAME, "--cloud", "staging").stdout
    corrupted = re.search(r"\((.+)\)", said).group(1)
    assert corrupted.startswith(f"{EXPORT}/")  # the largest file of staging's copy
    rel = corrupted.removeprefix(f"{EXPORT}/")
    try:
        outcome = lab.play("storage-verify")
    finally:
        upgrader("lab", "fault", "corrupt-copy", "--name", NAME, "--cloud", "staging", "--clear")
    assert not outcome.ok
    assert re.search(
        rf"1 of \d+ files on the NFS export {EXPORT} are not what was copied, the datastore was "
        rf"not switched: {re.escape(rel)}: checksum expected sha256-1m:[0-9a-f]{{64}}, "
        r"found sha256-1m:[0-9a-f]{64}",
        lab.failure(outcome),
    ), lab.failure(outcome)
