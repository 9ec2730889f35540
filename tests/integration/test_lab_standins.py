"""The 2012 profile's stand-ins (upgrader/lab/files/2012): what they refuse as the old tools
did, and that everything else reaches the real tool.

Each script is run as written, except for the one path it names the real tool (or Puppet's
state) by, pointed here at a stand-in that records its arguments: the scripts live in a lab
host's overlay, where those paths exist.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

FILES = Path(__file__).resolve().parents[2] / "upgrader" / "lab" / "files" / "2012"


def standin(tmp_path: Path, name: str, real: str, replacement: str) -> Path:
    """The stand-in ``name`` with the path ``real`` replaced by ``replacement``."""
    text = (FILES / name).read_text()
    assert text.count(real) == 1
    assert "lab stand-in: " in text.splitlines()[1]
    script = tmp_path / name
    script.write_text(text.replace(real, replacement))
    script.chmod(0o755)
    return script


def recorder(tmp_path: Path) -> Path:
    """A "real tool" that prints the arguments it got, one a line."""
    fake = tmp_path / "real-tool"
    fake.write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    fake.chmod(0o755)
    return fake


def run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([script, *args], capture_output=True, text=True, check=False, timeout=30)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--json", "/"], "findmnt: unrecognized option '--json'"),
        (["-n", "--mountpoint", "/"], "findmnt: unrecognized option '--mountpoint'"),
        (["--mountpoint=/srv"], "findmnt: unrecognized option '--mountpoint=/srv'"),
        (["-J", "/"], "findmnt: invalid option -- 'J'"),
        (["-nbM", "/"], "findmnt: invalid option -- 'M'"),
    ],
)
def test_findmnt_refuses_json_and_mountpoint_as_util_linux_2_20(tmp_path, args, message) -> None:
    script = standin(tmp_path, "findmnt", "/usr/lib/upgrader-lab/real/findmnt", "/bin/false")
    refused = run(script, *args)
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[0] == message
    assert refused.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["-n", "-o", "SOURCE,FSTYPE", "/var/lib/one/datastores"],
        ["-noSOURCE", "--target", "/srv/lab"],
        ["-o", "-M", "/"],  # -M here is -o's argument, not an option
        ["--output", "--json"],
        ["--", "--json"],
        ["-t", "ext4", "--bytes"],
    ],
)
def test_findmnt_hands_every_other_argument_to_the_real_one(tmp_path, args) -> None:
    real = recorder(tmp_path)
    script = standin(tmp_path, "findmnt", "/usr/lib/upgrader-lab/real/findmnt", str(real))
    passed = run(script, *args)
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.splitlines() == args


@pytest.mark.parametrize("arg", ["--output-as=xml", "--output-as", "--output-to=/tmp/x"])
def test_crm_mon_refuses_the_formatted_output_of_pacemaker_2(tmp_path, arg) -> None:
    script = standin(tmp_path, "crm_mon", "/usr/lib/upgrader-lab/real/crm_mon", "/bin/false")
    refused = run(script, "--one-shot", arg, "xml")
    assert refused.returncode == 64
    assert refused.stderr.splitlines()[0] == f"crm_mon: unrecognized option '{arg}'"


def test_crm_mon_hands_as_xml_to_the_real_one(tmp_path) -> None:
    real = recorder(tmp_path)
    script = standin(tmp_path, "crm_mon", "/usr/lib/upgrader-lab/real/crm_mon", str(real))
    passed = run(script, "--one-shot", "--as-xml", "--inactive")
    assert passed.returncode == 0
    assert passed.stdout.splitlines() == ["--one-shot", "--as-xml", "--inactive"]


def test_puppet_2_7_holds_with_an_empty_lock_and_takes_no_message(tmp_path) -> None:
    vardir = tmp_path / "var-lib-puppet"
    script = standin(tmp_path, "puppet", "VARDIR=/var/lib/puppet", f"VARDIR={vardir}")
    lock = vardir / "state" / "puppetdlock"
    assert run(script, "--version").stdout == "2.7.23\n"
    assert run(script, "agent", "--version").stdout == "2.7.23\n"
    assert run(script, "agent", "--configprint", "puppetdlockfile").stdout == f"{lock}\n"
    assert run(script, "agent", "--configprint", "vardir,puppetdlockfile").stdout == (
        f"vardir = {vardir}\npuppetdlockfile = {lock}\n"
    )
    held = run(script, "agent", "--disable", "upgrader run 42")
    assert held.returncode == 0
    assert lock.read_bytes() == b""
    assert run(script, "agent", "--enable").returncode == 0
    assert not lock.exists()
    other = run(script, "config", "print", "vardir")  # Puppet 3's way: not imitated
    assert other.returncode == 1 and "does not imitate" in other.stderr


def test_puppet_2_7_cannot_be_held_during_a_run_and_clears_a_stale_run_lock(tmp_path) -> None:
    vardir = tmp_path / "var-lib-puppet"
    script = standin(tmp_path, "puppet", "VARDIR=/var/lib/puppet", f"VARDIR={vardir}")
    lock = vardir / "state" / "puppetdlock"
    lock.parent.mkdir(parents=True)
    lock.write_text(f"{os.getpid()}\n")  # a run under way holds puppetdlock
    for action in ("--disable", "--enable"):
        assert run(script, "agent", action).returncode == 0
        assert lock.read_text() == f"{os.getpid()}\n"
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock.write_text(f"{dead.pid}\n")  # left by a run that died
    assert run(script, "agent", "--disable").returncode == 0
    assert lock.read_bytes() == b""
    before = lock.stat()
    assert run(script, "agent", "--disable").returncode == 0  # held already: the same lock
    assert (lock.stat().st_ino, lock.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
