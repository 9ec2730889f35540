"""What the lab tests of the storage runbook share (tests/lab/test_lab_storage*.py): a lab of
their own with a datastore that looks like a 3.x one, and the independent checks an operator
would make afterwards: what each host mounts, fstab, the CIB, the old volume's tree, the
copy's checksums recomputed here from the files themselves, and the copy's sparseness.

Lab names and subnets come from ``side_lab`` (conftest.py) with the offsets 160, 170 and 180.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import side_lab, upgrader
from tests.lab.test_cluster_playbooks import crm
from tests.lab.test_lab import hosts_of
from upgrader.lab import hosts as hs
from upgrader.lab.lab import load_spec

DATASTORE = "/var/lib/one/datastores"
CHUNK = 1 << 20
MiB = 1 << 20


@contextmanager
def storage_lab(n: int) -> Iterator[dict[str, Any]]:
    """A 2-host staging cloud with 4 running VMs at 3.2.1 and a 3.x-like datastore."""
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (CI runs them as root)")
    name, subnet = side_lab(f"s{n}", 150 + 10 * n)
    upgrader("lab", "down", "--name", name)
    upgrader(
        "lab",
        "up",
        "--name",
        name,
        "--subnet",
        f"{subnet}.0/24",
        "--hosts-staging",
        "2",
        "--hosts-production",
        "1",
        "--vms",
        "4",
    )
    try:
        lab = {"name": name, "spec": load_spec(name), "dir": Path("/var/lib/upgrader-lab") / name}
        lab["config"] = lab["dir"] / "upgrader.yml"
        lab["old"] = lab["dir"] / "share" / "staging" / "datastores"
        lab["export"] = lab["dir"] / "share" / "nfs" / "export" / "staging"
        add_images(lab["old"])
        yield lab
    finally:
        upgrader("lab", "down", "--name", name)


def add_images(ds: Path) -> None:
    """What a 3.2 image datastore holds besides the VM disks: dense images in ``1/``, a sparse
    raw image with data at both ends, a VM directory's symlink to its image."""
    images = ds / "1"
    images.mkdir(exist_ok=True)
    for i in range(3):
        (images / f"{i:032x}").write_bytes(hashlib.sha256(str(i).encode()).digest() * 65536)
    with (images / ("f" * 32)).open("wb") as fh:
        fh.write(b"MBR" * 1000)
        fh.seek(96 * MiB)
        fh.write(b"tail" * 2048)
        fh.truncate(128 * MiB)
    first_vm = min((p for p in (ds / "0").iterdir() if p.is_dir()), key=lambda p: int(p.name))
    (first_vm / "disk.1").symlink_to(f"{DATASTORE}/1/{0:032x}")
    os.chown(first_vm / "disk.1", 0, 0, follow_symlinks=False)


def tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``root``: type, mode, owner, mtime, size and content digest."""
    out: dict[str, tuple[Any, ...]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if rel.startswith("lost+found"):
            continue
        if stat.S_ISLNK(st.st_mode):
            what: Any = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = None
        out[rel] = (
            stat.S_IFMT(st.st_mode),
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            st.st_mtime_ns,
            st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
            what,
        )
    return out


def checksum(path: Path, chunk: int = CHUNK) -> str:
    """The manifest's checksum, computed here by reading the whole file plainly: sha256 over
    the sha256 digests of its chunks (1 MiB unless the manifest says otherwise)."""
    digests = []
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digests.append(hashlib.sha256(block).digest())
    return f"sha256-{chunk >> 20}m:" + hashlib.sha256(b"".join(digests)).hexdigest()


def allocated(path: Path) -> int:
    return path.lstat().st_blocks * 512


def manifest(lab: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The copy's manifest on the front end: relative path -> its latest record."""
    front = hosts_of(lab, "staging")[0]
    text = hs.enter(
        lab["dir"], front, "sh", "-c", "cat /var/lib/upgrader-storage/manifest.jsonl"
    ).stdout
    latest: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        record = json.loads(line)
        if "path" in record:
            latest[record["path"]] = record
    return latest


def mounts(lab: dict[str, Any]) -> dict[str, str]:
    """host -> what findmnt says is mounted at the datastore path (asked as util-linux 2.20
    could be, which a 2012 lab host's findmnt is: no --mountpoint)."""
    return {
        host: hs.enter(
            lab["dir"], host, "findmnt", "-n", "-o", "SOURCE", DATASTORE, check=False
        ).stdout.strip()
        for host in hosts_of(lab, "staging")
    }


def fstab(lab: dict[str, Any], host: str) -> list[str]:
    return hs.enter(lab["dir"], host, "cat", "/etc/fstab").stdout.splitlines()


def cib_device(lab: dict[str, Any]) -> str:
    """The device of Pacemaker's Filesystem resource for the datastore, as the CIB says."""
    return crm(lab, "crm_resource --resource one-datastore-fs --get-parameter device")


def device_of_file(lab: dict[str, Any], host: str, path: str) -> int:
    """The st_dev of ``path`` as ``host`` sees it (which file system its VMs read)."""
    return int(hs.enter(lab["dir"], host, "stat", "-c", "%d", path).stdout)
