"""The one writer of private files: owner-only whatever the umask, whole or not at all."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from upgrader.actions.state import write_json
from upgrader.journal.files import make_private_dir, write_private


@pytest.fixture
def lax_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("lax_umask")
@pytest.mark.parametrize("exclusive", [False, True])
def test_the_file_is_owner_only_even_with_a_lax_umask(tmp_path: Path, exclusive: bool) -> None:
    path = tmp_path / "state.json"
    write_private(path, "{}\n", exclusive=exclusive)
    assert _mode(path) == 0o600
    assert path.read_text() == "{}\n"


@pytest.mark.usefixtures("lax_umask")
def test_a_replaced_file_becomes_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, "new")
    assert _mode(path) == 0o600


def test_a_caller_may_ask_for_another_mode(tmp_path: Path) -> None:
    path = tmp_path / "upgrade.timer"
    write_private(path, "[Timer]\n", mode=0o644)
    assert _mode(path) == 0o644


def test_text_is_utf8_and_bytes_are_kept(tmp_path: Path) -> None:
    write_private(tmp_path / "a", "VM « één »")
    write_private(tmp_path / "b", b"\x00\xff")
    assert (tmp_path / "a").read_bytes() == "VM « één »".encode()
    assert (tmp_path / "b").read_bytes() == b"\x00\xff"


@pytest.mark.parametrize("step", ["write", "replace"])
def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    path = tmp_path / "state.json"
    write_private(path, "old\n")

    def refuse(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, step, refuse)
    with pytest.raises(OSError, match="No space"):
        write_private(path, "new\n" * 1000)
    monkeypatch.undo()
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_exclusive_refuses_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "production.lock"
    write_private(path, "first\n", exclusive=True)
    with pytest.raises(FileExistsError):
        write_private(path, "second\n", exclusive=True)
    assert path.read_text() == "first\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["production.lock"]


def test_nothing_but_the_file_is_left_after_success(tmp_path: Path) -> None:
    for n in range(3):
        write_private(tmp_path / "state.json", f"{n}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_missing_directory_is_an_oserror_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_private(tmp_path / "missing" / "report.md", "text")
    assert list(tmp_path.iterdir()) == []


def test_the_new_name_is_fsynced_in_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[bool] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_private(tmp_path / "state.json", "{}\n")
    assert synced == [False, True]  # the data before the rename, the directory after it


@pytest.mark.usefixtures("lax_umask")
def test_private_directories_are_0700_even_with_a_lax_umask(tmp_path: Path) -> None:
    make_private_dir(tmp_path / "runs" / "r1")
    assert _mode(tmp_path / "runs") == 0o700
    assert _mode(tmp_path / "runs" / "r1") == 0o700


@pytest.mark.usefixtures("lax_umask")
def test_action_state_is_written_through_it(tmp_path: Path) -> None:
    path = tmp_path / "run" / "actions" / "drained.json"
    write_json(path, {"b": 1, "a": [2]})
    write_json(path, {"a": 3})
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert path.read_text() == '{\n "a": 3\n}\n'
    assert sorted(p.name for p in path.parent.iterdir()) == ["drained.json"]
