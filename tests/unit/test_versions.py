"""Hop paths and the refusals around them."""

from __future__ import annotations

import pytest

from upgrader.errors import UsageError
from upgrader.plan.versions import hop_path, series_of


@pytest.mark.parametrize(
    "current,target,hops",
    [
        ("3.2", "3.6", (("3.2", "3.4"), ("3.4", "3.6"))),
        ("3.2", "3.4.1", (("3.2", "3.4"),)),
        ("3.4", "v3.6", (("3.4", "3.6"),)),
    ],
)
def test_hop_paths(current, target, hops):
    assert hop_path(current, target) == hops


@pytest.mark.parametrize(
    "target,message",
    [
        ("3.8", "unknown target version '3.8': upgrader knows 3.2, 3.4, 3.6"),
        ("3.6.2", "unknown target version '3.6.2'"),
        ("latest", "unknown target version 'latest'"),
        ("3", "unknown target version '3'"),
    ],
)
def test_unknown_targets_are_refused(target, message):
    with pytest.raises(UsageError, match=message.replace(".", r"\.")) as info:
        hop_path("3.2", target)
    assert info.value.exit_code == 2


def test_a_downgrade_is_refused():
    with pytest.raises(UsageError, match=r"3\.6 -> 3\.4 is a downgrade") as info:
        hop_path("3.6", "3.4")
    assert "restore the backup" in info.value.hint


def test_already_there_is_refused():
    with pytest.raises(UsageError, match=r"already runs OpenNebula 3\.4"):
        hop_path("3.4", "3.4.1")


def test_series_of_accepts_the_releases_of_the_packages():
    assert [series_of(v) for v in ("3.2.1", "3.4.1", "3.6.0")] == ["3.2", "3.4", "3.6"]
