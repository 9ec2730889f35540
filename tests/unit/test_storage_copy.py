"""The datastore copy engine on real files: sparse, faithful, resumable, and never writing src.

Each test builds a small datastore under ``tmp_path`` (root is available, so ownership is
real) and checks what an operator would notice on the destination or in the manifest.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from upgrader.storage import CopyError, inventory, load_manifest, sync, verify

MIB = 1 << 20
IMAGE = "1/0123456789abcdef0123456789abcdef"
# Files of another owner, as oneadmin's are on a real datastore; a user who is not root can
# only give files to itself (scripts/test --quick), and the copy must keep that owner too.
ROOT = os.geteuid() == 0
OWNER = 9869 if ROOT else os.getuid()
GROUP = 9869 if ROOT else os.getgid()


def plain_checksum(path: Path, chunk: int = MIB) -> str:
    """The manifest checksum recomputed independently: read everything, zeros included."""
    digests = b""
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digests += hashlib.sha256(block).digest()
    return f"sha256-{chunk // MIB}m:" + hashlib.sha256(digests).hexdigest()


def write_at(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def fingerprint(root: Path, rel: str = "") -> dict:
    """Everything about a tree the engine must not change: content, mode, owner, times.

    Read with O_NOATIME, so the access times of files and directories are part of it too
    (a symlink's is not: readlink() touches it and the kernel offers no way around that).
    """
    out = {}
    fd = os.open(root / rel, os.O_RDONLY | os.O_NOATIME)
    with os.scandir(fd) as it:
        names = [e.name for e in it]
    os.close(fd)
    for name in names:
        path = root / rel / name
        st = os.lstat(path)
        item = [
            st.st_mode,
            st.st_uid,
            st.st_gid,
            st.st_mtime_ns,
            st.st_size,
            st.st_ino,
            st.st_blocks,
        ]
        if path.is_symlink():
            item.append(os.readlink(path))
        else:
            item.append(st.st_atime_ns)
        if path.is_file() and not path.is_symlink():
            with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOATIME), "rb") as fh:
                item.append(hashlib.sha256(fh.read()).hexdigest())
        elif path.is_dir() and not path.is_symlink():
            out.update(fingerprint(root, os.path.join(rel, name)))
        out[os.path.join(rel, name)] = item
    return out


def make_datastore(root: Path) -> Path:
    """Image datastore 1 (a sparse 64 MiB image, a dense one) and system datastore 0 (a VM)."""
    src = root / "src"
    (src / "1").mkdir(parents=True)
    (src / "0" / "7").mkdir(parents=True)
    sparse = src / IMAGE
    with open(sparse, "wb") as fh:
        fh.truncate(64 * MIB)
    write_at(sparse, 0, os.urandom(MIB))
    write_at(sparse, 9 * MIB + 12345, os.urandom(3 * MIB))  # straddles chunk boundaries
    write_at(sparse, 63 * MIB, os.urandom(MIB))
    (src / "1" / "fedcba9876543210fedcba9876543210").write_bytes(os.urandom(5 * MIB + 17))
    vm = src / "0" / "7"
    (vm / "deployment.0").write_text("<domain/>\n")
    (vm / "checkpoint").write_bytes(os.urandom(300_000))
    os.symlink(f"../../{IMAGE}", vm / "disk.0")
    os.link(vm / "deployment.0", vm / "deployment.hard")
    os.chown(vm / "checkpoint", OWNER, GROUP)
    os.chmod(vm / "checkpoint", 0o640)
    os.chown(vm / "disk.0", OWNER, GROUP, follow_symlinks=False)
    os.chmod(vm, 0o750)
    old = 1_600_000_000_123_456_789
    for path in (vm / "checkpoint", sparse, vm, src / "1"):
        os.utime(path, ns=(old, old), follow_symlinks=False)
    return src


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    src = make_datastore(tmp_path)
    dst = tmp_path / "dst"
    dst.mkdir()
    return src, dst, tmp_path / "manifest.jsonl"


def test_sparse_image_stays_sparse_and_reads_back_identical(tree):
    src, dst, manifest = tree
    sync(src, dst, manifest)
    s, d = (os.stat(p / IMAGE) for p in (src, dst))
    assert d.st_size == 64 * MIB
    assert abs(d.st_blocks - s.st_blocks) * 512 <= 0.02 * s.st_blocks * 512
    assert d.st_blocks * 512 < 8 * MIB  # not 64 MiB of zeros
    assert (dst / IMAGE).read_bytes() == (src / IMAGE).read_bytes()
    entry = load_manifest(manifest)[IMAGE]
    assert entry["checksum"] == plain_checksum(src / IMAGE)
    assert entry["blocks"] == s.st_blocks * 512 and entry["state"] == "copied"


def test_owner_mode_times_symlink_and_hardlink_are_kept(tree):
    src, dst, manifest = tree
    summary = sync(src, dst, manifest)
    vm_s, vm_d = src / "0" / "7", dst / "0" / "7"
    for rel in ("checkpoint", "deployment.0", ".", "disk.0"):
        s, d = os.lstat(vm_s / rel), os.lstat(vm_d / rel)
        assert (d.st_mode, d.st_uid, d.st_gid, d.st_mtime_ns) == (
            s.st_mode,
            s.st_uid,
            s.st_gid,
            s.st_mtime_ns,
        ), rel
    assert os.readlink(vm_d / "disk.0") == f"../../{IMAGE}"
    assert (vm_d / "disk.0").read_bytes() == (src / IMAGE).read_bytes()
    assert os.stat(vm_d / "deployment.0").st_ino == os.stat(vm_d / "deployment.hard").st_ino
    assert os.stat(dst / "1").st_mtime_ns == os.stat(src / "1").st_mtime_ns
    assert summary["files"] == 5 and summary["skipped"] == 0
    assert load_manifest(manifest)["0/7/deployment.hard"]["type"] == "hardlink"
    header = json.loads(manifest.read_text().splitlines()[0])
    assert header["src"] == str(src) and header["chunk_size"] == MIB
    assert header["algorithm"] == "sha256-1m"


def test_second_sync_copies_nothing_and_a_changed_file_only_its_changed_chunk(tree):
    src, dst, manifest = tree
    sync(src, dst, manifest)
    again = sync(src, dst, manifest)
    assert again["copied"] == [] and again["bytes_copied"] == 0 and again["skipped"] == 4

    write_at(src / IMAGE, 100, b"changed while the VM ran")
    delta = sync(src, dst, manifest, phase="delta")
    assert delta["copied"] == [IMAGE]
    assert delta["bytes_copied"] == MIB  # the data of chunk 0 only, out of 5 MiB
    assert (dst / IMAGE).read_bytes() == (src / IMAGE).read_bytes()
    entries = load_manifest(manifest)
    assert entries[IMAGE]["copies"] == 2 and entries[IMAGE]["phase"] == "delta"
    assert entries["0/7/checkpoint"]["copies"] == 1


def test_delta_punches_a_hole_where_the_source_became_a_hole(tree):
    src, dst, manifest = tree
    sync(src, dst, manifest)
    fd = os.open(src / IMAGE, os.O_RDWR)
    os.truncate(fd, 0)  # rewrite the image sparser: only its first MiB keeps data
    os.close(fd)
    with open(src / IMAGE, "r+b") as fh:
        fh.write(os.urandom(MIB))
        fh.truncate(64 * MIB)
    before = os.stat(dst / IMAGE).st_ino
    sync(src, dst, manifest, phase="delta")
    d = os.stat(dst / IMAGE)
    assert d.st_ino == before  # rewritten in place, chunk by chunk
    assert d.st_blocks * 512 <= 1.02 * MIB + 4096
    assert (dst / IMAGE).read_bytes() == (src / IMAGE).read_bytes()


def test_file_removed_from_source_is_removed_from_destination(tree):
    src, dst, manifest = tree
    sync(src, dst, manifest)
    (src / "0" / "7" / "checkpoint").unlink()
    summary = sync(src, dst, manifest, phase="delta")
    assert summary["deleted"] == ["0/7/checkpoint"]
    assert not (dst / "0" / "7" / "checkpoint").exists()
    assert load_manifest(manifest)["0/7/checkpoint"]["state"] == "deleted"


def test_sigkill_mid_copy_then_delta_recopies_only_files_not_copied(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        (src / f"disk.{i}").write_bytes(os.urandom(2 * MIB))
    dst, manifest = tmp_path / "dst", tmp_path / "m.jsonl"
    dst.mkdir()
    code = (
        "import sys, time; from upgrader.storage import sync; "
        "sync(sys.argv[1], sys.argv[2], sys.argv[3], workers=1, "
        "progress=lambda e: time.sleep(0.1 if e['files_done'] else 0))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, src, dst, manifest])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (
        not manifest.exists() or manifest.read_text().count("\n") < 4
    ):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    copied = set(load_manifest(manifest))
    assert 3 <= len(copied) < 12
    summary = sync(src, dst, manifest, phase="delta", lock_wait=5)
    assert sorted(set(summary["copied"]) | copied) == sorted(f"disk.{i}" for i in range(12))
    assert set(summary["copied"]).isdisjoint(copied)
    assert all(e["copies"] == 1 for e in load_manifest(manifest).values())
    assert all(
        (dst / f"disk.{i}").read_bytes() == (src / f"disk.{i}").read_bytes() for i in range(12)
    )


@pytest.mark.skipif(not ROOT, reason="mounts a small tmpfs: needs root")
def test_a_destination_too_small_stops_before_writing_with_the_numbers(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "disk.0").write_bytes(os.urandom(6 * MIB))
    dst = tmp_path / "nfs"
    dst.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dst], check=True)
    try:
        with pytest.raises(CopyError) as info:
            sync(src, dst, tmp_path / "m.jsonl")
        assert os.listdir(dst) == []
    finally:
        subprocess.run(["umount", dst], check=True)
    err = info.value
    assert err.kind == "full"
    assert err.details["available_bytes"] == 4 * MIB
    assert err.details["needed_bytes"] >= 6 * MIB
    assert "4.0 MiB free" in str(err) and "6.3 MiB" in str(err) and "\n" not in str(err)


def test_a_held_lock_gives_locked_naming_the_pid(tree):
    src, dst, manifest = tree
    fd = os.open(f"{manifest}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"4242\n")
    try:
        with pytest.raises(CopyError) as info:
            sync(src, dst, manifest, lock_wait=0.3)
    finally:
        os.close(fd)
    assert info.value.kind == "locked" and "pid 4242" in str(info.value)
    assert os.listdir(dst) == []


def test_source_is_left_exactly_as_it_was(tree):
    src, dst, manifest = tree
    before = fingerprint(src)
    sync(src, dst, manifest)
    write_at(dst / IMAGE, 5, b"x")  # a delta later must not copy back either
    sync(src, dst, manifest, phase="delta")
    assert fingerprint(src) == before


def test_inventory_counts_images_vm_dirs_and_checkpoints(tree):
    src, _, _ = tree
    inv = inventory(src)
    assert inv["images"] == 2 and inv["vm_dirs"] == 1 and inv["checkpoints"] == 1
    assert inv["files"] == 5 and inv["symlinks"] == 1 and inv["dirs"] == 3
    assert inv["apparent_bytes"] == 64 * MIB + 5 * MIB + 17 + 300_000 + 2 * len("<domain/>\n")


def test_progress_file_ends_finished_with_all_bytes(tree):
    src, dst, manifest = tree
    events = []
    sync(src, dst, manifest, progress=events.append, progress_file=str(manifest) + ".progress")
    final = json.loads(Path(f"{manifest}.progress").read_text())
    assert final["finished"] and final["files_done"] == final["files_total"] == 4
    assert final["bytes_done"] >= final["bytes_total"] - 4 * 4096
    assert final["pid"] == os.getpid() and events[-1] == final
    summary = json.loads(Path(f"{manifest}.summary.json").read_text())
    assert {f["path"] for f in summary["files"]} == {
        IMAGE,
        "1/fedcba9876543210fedcba9876543210",
        "0/7/checkpoint",
        "0/7/deployment.0",
    }


def test_verify_records_copies_verified_and_a_later_sync_still_skips_them(tree):
    src, dst, manifest = tree
    sync(src, dst, manifest)
    assert {e["state"] for e in load_manifest(manifest).values()} == {"copied"}
    result = verify(dst, manifest)
    assert result["verified"] == result["entries"] and result["reread"] == 4
    entries = load_manifest(manifest)
    assert {e["state"] for e in entries.values()} == {"verified"}
    assert all(e["copies"] == 1 for e in entries.values())
    assert entries[IMAGE]["dst"]["ino"] == os.stat(dst / IMAGE).st_ino
    lines = manifest.read_text().count("\n")
    verify(dst, manifest)
    assert manifest.read_text().count("\n") == lines  # nothing new to record
    again = sync(src, dst, manifest, phase="delta")
    assert again["copied"] == [] and again["skipped"] == 4


def test_a_copy_verify_found_corrupt_is_copied_again_by_the_next_sync(tree):
    src, dst, manifest = tree
    sync(src, dst, manifest)
    write_at(dst / IMAGE, 10 * MIB, b"rot")
    result = verify(dst, manifest)
    assert [m["path"] for m in result["mismatches"]] == [IMAGE]
    assert load_manifest(manifest)[IMAGE]["state"] == "mismatch"
    assert sync(src, dst, manifest, phase="delta")["copied"] == [IMAGE]
    assert verify(dst, manifest)["mismatches"] == []
    assert load_manifest(manifest)[IMAGE]["state"] == "verified"
