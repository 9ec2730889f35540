"""verify() and the checksum: what the maintenance window relies on before switching mounts."""

from __future__ import annotations

import ast
import fcntl
import hashlib
import os
import sys
from pathlib import Path

import pytest

from upgrader.storage import datastore_copy, file_checksum, sync, verify

MIB = 1 << 20


def plain_checksum(path: Path, chunk: int = MIB) -> str:
    digests = b""
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digests += hashlib.sha256(block).digest()
    return f"sha256-{chunk // MIB}m:" + hashlib.sha256(digests).hexdigest()


@pytest.fixture
def copied(tmp_path: Path) -> tuple[Path, Path, Path]:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "vm").mkdir(parents=True)
    dst.mkdir()
    with open(src / "sparse.img", "wb") as fh:
        fh.truncate(40 * MIB)
        fh.seek(6 * MIB - 100)
        fh.write(os.urandom(200))  # a chunk that is part hole, part data
        fh.seek(20 * MIB)
        fh.write(os.urandom(4 * MIB))
    (src / "vm" / "disk.0").write_bytes(os.urandom(9 * MIB))
    (src / "vm" / "empty").write_bytes(b"")
    manifest = tmp_path / "m.jsonl"
    sync(src, dst, manifest)
    return src, dst, manifest


def test_checksum_equals_an_independent_plain_read(copied):
    src, _, _ = copied
    for rel in ("sparse.img", "vm/disk.0", "vm/empty"):
        assert file_checksum(src / rel) == plain_checksum(src / rel), rel
        assert file_checksum(src / rel, 4 * MIB) == plain_checksum(src / rel, 4 * MIB), rel


def test_checksum_depends_on_content_not_on_holes(tmp_path):
    dense, sparse = tmp_path / "dense", tmp_path / "sparse"
    dense.write_bytes(b"\0" * 5 * MIB + b"end")
    with open(sparse, "wb") as fh:
        fh.seek(5 * MIB)
        fh.write(b"end")
    assert os.stat(sparse).st_blocks < os.stat(dense).st_blocks
    assert file_checksum(dense) == file_checksum(sparse) == plain_checksum(dense)


def test_verify_of_a_good_copy_reads_every_data_byte_and_finds_nothing(copied):
    _, dst, manifest = copied
    result = verify(dst, manifest)
    assert result["mismatches"] == [] and result["missing"] == []
    assert result["verified"] == result["entries"] == 4  # 3 files and the vm directory
    assert 4 * MIB + 200 <= result["bytes_read"] - 9 * MIB <= 4 * MIB + 8192


def test_verify_names_the_file_with_a_flipped_byte_and_the_missing_one(copied):
    _, dst, manifest = copied
    path = dst / "sparse.img"
    st = os.stat(path)
    with open(path, "r+b") as fh:
        fh.seek(22 * MIB)
        byte = fh.read(1)
        fh.seek(22 * MIB)
        fh.write(bytes([byte[0] ^ 1]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # a silent corruption: same mtime
    (dst / "vm" / "empty").unlink()
    result = verify(dst, manifest)
    assert [(m["path"], m["field"]) for m in result["mismatches"]] == [("sparse.img", "checksum")]
    assert result["mismatches"][0]["found"] == plain_checksum(path)
    assert result["missing"] == ["vm/empty"] and result["verified"] == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="gives a file to another user: needs root")
def test_verify_reports_mode_and_owner_drift(copied):
    _, dst, manifest = copied
    os.chmod(dst / "vm" / "disk.0", 0o600)
    os.chown(dst / "vm", 1234, 0)
    found = {(m["path"], m["field"]) for m in verify(dst, manifest)["mismatches"]}
    assert found == {("vm/disk.0", "mode"), ("vm", "uid")}


ENGINE = Path(datastore_copy.__file__).parent


def test_engine_package_is_stdlib_only_and_imports_nothing_of_upgrader():
    """Ansible ships the package to the front end as module_utils: each module imports the
    standard library or its siblings (relative imports, which AnsiballZ packs), and writes
    the ``__future__`` imports that make 2.7 read it as 3.x does. That it parses under 2.7
    is test_host_python's; that it runs there, test_copy_engine_pythons'."""
    files = sorted(ENGINE.glob("*.py"))
    assert {"extents.py", "manifest.py", "syncing.py", "verifying.py"} <= {f.name for f in files}
    for path in files:
        source = path.read_text()
        tree = ast.parse(source, feature_version=(3, 6))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1, f"{path.name}: import from outside the package"
                siblings = [node.module] if node.module else [a.name for a in node.names]
                for name in siblings:
                    assert (ENGINE / f"{name}.py").exists(), f"{path.name}: from .{name}"
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
        assert imported <= set(sys.stdlib_module_names) | {"__future__"}, (path.name, imported)
        assert "from __future__ import absolute_import, division, print_function" in source
        assert "from __future__ import annotations" not in source, path.name


def test_verify_rereading_only_unverified_reads_the_delta_and_copies_whose_stat_changed(copied):
    """The measured alternative for the window: what was verified earlier is checked by stat."""
    src, dst, manifest = copied
    assert verify(dst, manifest)["reread"] == 3  # after the pre-sync: everything re-read
    (src / "vm" / "disk.0").write_bytes(os.urandom(9 * MIB))
    sync(src, dst, manifest, phase="delta")
    result = verify(dst, manifest, reread="unverified")
    assert (result["reread"], result["stat_checked"], result["bytes_read"]) == (1, 2, 9 * MIB)
    assert result["verified"] == result["entries"] and result["mismatches"] == []
    with open(dst / "sparse.img", "r+b") as fh:  # written after its verification: re-read
        fh.seek(21 * MIB)
        fh.write(b"x")
    result = verify(dst, manifest, reread="unverified")
    assert result["reread"] == 1
    assert [(m["path"], m["field"]) for m in result["mismatches"]] == [("sparse.img", "checksum")]


def test_verify_waits_for_a_running_copy_then_gives_locked_naming_the_pid(copied):
    """verify records its results in the manifest: it never runs beside a sync on it."""
    _, dst, manifest = copied
    fd = os.open(f"{manifest}.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.pwrite(fd, b"4343\n", 0)
    try:
        with pytest.raises(datastore_copy.CopyError) as info:
            verify(dst, manifest, lock_wait=0.3)
    finally:
        os.close(fd)
    assert info.value.kind == "locked" and "pid 4343" in str(info.value)


def test_a_sync_that_reads_back_records_every_copy_verified(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "vm").mkdir(parents=True)
    dst.mkdir()
    (src / "vm" / "disk.0").write_bytes(os.urandom(3 * MIB))
    os.link(src / "vm" / "disk.0", src / "vm" / "disk.0.link")
    (src / "empty").write_bytes(b"")
    manifest = tmp_path / "m.jsonl"
    sync(src, dst, manifest, reread=True)
    entries = datastore_copy.load_manifest(str(manifest))
    files = {p: e for p, e in entries.items() if e["type"] in ("file", "hardlink")}
    assert {e["state"] for e in files.values()} == {"verified"}, files
    assert files["vm/disk.0"]["checksum"] == plain_checksum(dst / "vm" / "disk.0")
    # the window's verify of a copy read back already, and not touched since: by stat only
    again = verify(dst, manifest, reread="unverified")
    assert (again["reread"], again["mismatches"]) == (0, [])


def test_a_copy_that_reads_back_wrong_stops_the_sync_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "disk.0").write_bytes(os.urandom(2 * MIB))
    real = datastore_copy.extents.hash_segment

    def bad_storage(task):  # what a destination that flips a bit would give back
        rel, first, digests, nread = real(task)
        return rel, first, [hashlib.sha256(b"flipped").digest(), *digests[1:]], nread

    monkeypatch.setattr(datastore_copy.extents, "hash_segment", bad_storage)
    with pytest.raises(datastore_copy.CopyError) as failed:
        sync(src, dst, tmp_path / "m.jsonl", reread=True)
    assert failed.value.kind == "mismatch"
    assert str(failed.value).startswith("disk.0: the copy on ")
    assert "reads back as sha256-1m:" in str(failed.value)
    entries = datastore_copy.load_manifest(str(tmp_path / "m.jsonl"))
    assert entries.get("disk.0", {}).get("state") not in ("copied", "verified")


def test_would_sync_names_what_the_next_sync_copies_and_writes_nothing(copied) -> None:
    src, dst, manifest = copied
    (src / "vm" / "disk.0").write_bytes(os.urandom(MIB))
    (src / "vm" / "empty").unlink()
    before = manifest.read_bytes()
    todo = datastore_copy.would_sync(str(src), str(dst), str(manifest))
    assert manifest.read_bytes() == before and (dst / "vm" / "empty").exists()
    done = sync(src, dst, manifest, phase="delta")
    assert todo["would_copy"] == done["copied"] == ["vm/disk.0"]
    assert todo["would_delete"] == done["deleted"] == ["vm/empty"]
    assert todo["skipped"] == done["skipped"]
