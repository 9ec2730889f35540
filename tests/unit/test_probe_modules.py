"""playbooks/library/upgrader_probe.py and upgrader_agents.py, run as Ansible runs a "want
JSON" module: the interpreter, the module file and the path of a JSON file of arguments.

Each behaviour is asked of Python 3 and, when the lab's Python 2.7 is here, of Python 2.7:
the hosts of a 3.x cloud run these modules under 2.7."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from upgrader.lab.python2 import interpreter

LIBRARY = Path(__file__).resolve().parents[2] / "playbooks" / "library"
PY27 = interpreter()


@pytest.fixture(
    params=[
        sys.executable,
        pytest.param(
            str(PY27),
            marks=pytest.mark.skipif(PY27 is None, reason="the lab's Python 2.7 is not fetched"),
            id="python2.7",
        ),
    ],
    ids=lambda p: "python3" if p == sys.executable else "python2.7",
)
def python(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def module(
    name: str,
    args: dict[str, object],
    tmp_path: Path,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
) -> tuple[int, dict[str, object]]:
    args_file = tmp_path / "args"
    args_file.write_text(json.dumps({"_ansible_check_mode": True, **args}))
    done = subprocess.run(
        [python, str(LIBRARY / f"{name}.py"), str(args_file)],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, LIBRARY / f"{name}.py")
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def test_the_modules_are_want_json_modules_that_import_nothing_of_ansible():
    for name in ("upgrader_probe", "upgrader_agents"):
        text = (LIBRARY / f"{name}.py").read_text()
        assert "WANT_JSON" in text
        assert "import ansible" not in text and "from ansible" not in text


def test_probe_answers_every_command_and_file_and_a_missing_one_is_an_answer(tmp_path, python):
    lock = tmp_path / "lock"
    lock.write_bytes(b'{"disabled_message": "held"}')
    rc, result = module(
        "upgrader_probe",
        {
            "commands": {"echo": "echo 'two words'", "list": ["printf", "%s\\n", "a", "b"],
                         "fails": ["sh", "-c", "echo no >&2; exit 3"],
                         "missing": "no-such-command-here", "accent": ["echo", "café"]},
            "files": {"lock": str(lock), "absent": str(tmp_path / "absent")},
            "timeout": "5",
        },
        tmp_path,
        python,
    )  # fmt: skip
    assert rc == 0 and result["changed"] is False and not result.get("failed")
    commands = result["commands"]
    assert commands["echo"] == {"rc": 0, "stdout": "two words", "stderr": ""}
    assert commands["list"]["stdout"] == "a\nb"
    assert commands["fails"] == {"rc": 3, "stdout": "", "stderr": "no"}
    assert commands["missing"]["rc"] == 127
    assert commands["accent"]["stdout"] == "café"
    assert base64.b64decode(result["files"]["lock"]) == lock.read_bytes()
    assert result["files"]["absent"] is None


def test_probe_gives_up_on_a_command_and_its_children_at_its_timeout(tmp_path, python):
    started = tmp_path / "child"
    command = ["sh", "-c", f"(sleep 2; touch {started}) & sleep 5"]
    rc, result = module("upgrader_probe", {"commands": {"slow": command}, "timeout": 1},
                        tmp_path, python)  # fmt: skip
    assert rc == 0
    assert result["commands"]["slow"]["rc"] == 124
    assert "no answer in 1 s" in result["commands"]["slow"]["stderr"]
    subprocess.run(["sleep", "2.5"], check=True)
    assert not started.exists()  # the command's child was killed with it


def test_probe_and_agents_fail_the_task_on_an_unknown_or_mistyped_option(tmp_path):
    rc, result = module("upgrader_probe", {"comands": {"x": "true"}}, tmp_path)
    assert rc == 1 and result["failed"] is True
    assert result["msg"] == "upgrader_probe: unsupported option 'comands'"
    rc, result = module("upgrader_probe", {"commands": ["true"]}, tmp_path)
    assert rc == 1 and result["msg"] == "upgrader_probe: option 'commands' must be a dict"
    rc, result = module("upgrader_probe", {"commands": {"empty": ""}}, tmp_path)
    assert rc == 1 and result["msg"] == "command 'empty' is empty"
    rc, result = module("upgrader_probe", {"system": "maybe"}, tmp_path)
    assert rc == 1 and result["msg"] == "upgrader_probe: option 'system' must be a bool"
    rc, result = module("upgrader_agents", {"ocf": "/usr/lib/ocf"}, tmp_path)
    assert rc == 1 and result["msg"] == "upgrader_agents: unsupported option 'ocf'"
    rc, result = module("upgrader_agents", {"timeout": "soon"}, tmp_path)
    assert rc == 1 and result["msg"] == "upgrader_agents: option 'timeout' has a wrong type"


def test_a_module_without_its_arguments_file_fails_with_a_message(tmp_path, python):
    done = subprocess.run(
        [python, str(LIBRARY / "upgrader_probe.py"), str(tmp_path / "nothing")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert json.loads(done.stdout)["msg"].startswith("upgrader_probe: cannot read its arguments")


def test_probe_fails_the_task_when_a_command_answers_a_code_not_accepted(tmp_path, python):
    commands = {"unset": ["sh", "-c", "exit 6"], "broken": ["sh", "-c", "echo no cib >&2; exit 1"]}
    rc, result = module("upgrader_probe", {"commands": commands, "accept_rc": {"unset": [0, 6]}},
                        tmp_path, python)  # fmt: skip
    assert rc == 0 and result["commands"]["unset"]["rc"] == 6 and not result.get("failed")
    rc, result = module("upgrader_probe",
                        {"commands": commands, "accept_rc": {"unset": [0, 6], "broken": [0]}},
                        tmp_path, python)  # fmt: skip
    assert rc == 1 and result["failed"] is True
    assert result["msg"] == "sh -c 'echo no cib >&2; exit 1' exited 1: no cib"
    assert result["commands"]["unset"]["rc"] == 6  # every answer still comes back


# ------------------------------------------------------------------ mounts


def test_probe_says_which_file_system_holds_a_path_and_whether_it_is_mounted_there(
    tmp_path, python
):
    rc, result = module(
        "upgrader_probe",
        {"mounts": {"root": "/", "below": str(tmp_path / "not" / "there"), "proc": "/proc"}},
        tmp_path,
        python,
    )
    assert rc == 0
    mounts = result["mounts"]
    assert mounts["root"]["target"] == "/" and mounts["root"]["mountpoint"] is True
    assert mounts["root"]["size"] > 0 and 0 <= mounts["root"]["avail"] <= mounts["root"]["size"]
    assert mounts["proc"]["fstype"] == "proc" and mounts["proc"]["mountpoint"] is True
    below = mounts["below"]
    assert below["mountpoint"] is False and below["path"] == str(tmp_path / "not" / "there")
    assert str(tmp_path).startswith(below["target"])


def in_mount_namespace(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``script`` run by sh in a mount namespace of its own (as root there, any user here)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to make a mount namespace")
    done = subprocess.run(
        ["unshare", "-Urm", "sh", "-ec", script],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"no mount namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    return done


def test_probe_reads_a_mount_point_with_spaces_a_read_only_bind_mount_and_fstab(tmp_path, python):
    spaced, bound = tmp_path / "data store", tmp_path / "bound"
    spaced.mkdir()
    bound.mkdir()
    fstab = tmp_path / "fstab"
    fstab.write_text(
        "# <file system> <mount point> <type> <options>\n"
        f"UUID=1234 {str(spaced).replace(' ', chr(92) + '040')} ocfs2 _netdev,rw 0 0\n"
        f"#/dev/sdc1 {str(spaced).replace(' ', chr(92) + '040')} ext4 defaults 0 0\n"
        "proc /proc proc defaults 0 0\n"
    )
    args = tmp_path / "args"
    args.write_text(json.dumps({"mounts": {"spaced": str(spaced), "bound": str(bound)}}))
    done = in_mount_namespace(
        f'mount -t tmpfs -o size=1m tmpfs "{spaced}"\n'
        f'mkdir "{spaced}/sub"\n'
        f'mount --bind "{spaced}/sub" "{bound}"\n'
        f'mount -o remount,bind,ro "{bound}"\n'
        f'mount --bind "{fstab}" /etc/fstab\n'
        f'"{python}" "{LIBRARY / "upgrader_probe.py"}" "{args}"\n',
        tmp_path,
    )
    mounts = json.loads(done.stdout)["mounts"]
    assert mounts["spaced"]["target"] == str(spaced) and mounts["spaced"]["mountpoint"]
    assert mounts["spaced"]["fstype"] == "tmpfs" and mounts["spaced"]["size"] == 1024 * 1024
    assert mounts["spaced"]["fstab"] == [
        {"source": "UUID=1234", "fstype": "ocfs2", "options": "_netdev,rw"}
    ]
    assert mounts["bound"]["source"] == "tmpfs[/sub]"  # as findmnt shows a bind mount
    assert "ro" in mounts["bound"]["options"].split(",")
    assert "rw" not in mounts["bound"]["options"].split(",")
    assert mounts["bound"]["fstab"] == []


def test_mountinfo_lines_decode_escapes_bind_mounts_and_read_only_sides():
    probe = load("upgrader_probe")
    table = probe.parse_mountinfo(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
        "40 22 8:17 / /var/lib/one/data\\040stores rw,noatime shared:20 - ocfs2 /dev/sdb1 rw\n"
        "41 22 0:50 / /mnt/nfs rw,relatime - nfs4 nfs1:/export/one rw,vers=4.0\n"
        "42 22 8:33 /staging /srv/bind rw - ext4 /dev/loop3 ro,data=ordered\n"
        "garbage line\n"
    )
    assert table == [
        ("/", "/dev/sda1", "ext4", "rw,relatime,errors=remount-ro"),
        ("/var/lib/one/data stores", "/dev/sdb1", "ocfs2", "rw,noatime"),
        ("/mnt/nfs", "nfs1:/export/one", "nfs4", "rw,relatime,vers=4.0"),
        ("/srv/bind", "/dev/loop3[/staging]", "ext4", "ro,data=ordered"),
    ]
    assert probe.parse_mounts("/dev/sdb1 /var/lib/one/data\\040stores ocfs2 rw 0 0\n") == [
        ("/var/lib/one/data stores", "/dev/sdb1", "ocfs2", "rw")
    ]


# ------------------------------------------------------------------ the distribution


OS_RELEASE = "/etc/os-release"
DISTRIBUTIONS = [
    pytest.param({OS_RELEASE: 'ID=debian\nVERSION_ID="7"\n'}, "debian 7 libvirt-bin", id="debian7"),
    pytest.param({OS_RELEASE: 'ID=debian\nVERSION_ID="8"\n'}, "debian 8 libvirt-bin", id="debian8"),
    pytest.param({OS_RELEASE: 'ID=debian\nVERSION_ID="9"\n'}, "debian 9 libvirtd", id="debian9"),
    pytest.param({OS_RELEASE: "ID=debian\n"}, "debian  libvirtd", id="debian-sid"),
    pytest.param({"/etc/debian_version": "6.0.10\n"}, "debian 6.0.10 libvirt-bin", id="debian6"),
    pytest.param(
        {
            "/etc/lsb-release": "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=10.04\n",
            "/etc/debian_version": "squeeze/sid\n",
        },
        "ubuntu 10.04 libvirt-bin",
        id="ubuntu1004",
    ),
    pytest.param(
        {OS_RELEASE: 'ID=ubuntu\nVERSION_ID="18.04"'}, "ubuntu 18.04 libvirt-bin", id="u1804"
    ),
    pytest.param(
        {OS_RELEASE: 'ID=ubuntu\nVERSION_ID="18.10"'}, "ubuntu 18.10 libvirtd", id="u1810"
    ),
    pytest.param(
        {"/etc/redhat-release": "CentOS release 6.10 (Final)\n"},
        "centos 6.10 libvirtd",
        id="centos6",
    ),
    pytest.param({}, "  libvirtd", id="unknown"),
]


@pytest.mark.parametrize(("files", "expected"), DISTRIBUTIONS)
def test_libvirtds_init_script_is_named_by_the_distribution(monkeypatch, files, expected):
    probe = load("upgrader_probe")
    monkeypatch.setattr(probe, "read", lambda path: files[path].encode() if path in files else None)
    facts = probe.Facts().get()
    assert f"{facts['os_id']} {facts['os_version']} {facts['libvirtd_service']}" == expected


def test_a_command_may_name_libvirtds_init_script_and_the_host_says_which_it_is(tmp_path, python):
    rc, result = module(
        "upgrader_probe",
        {"commands": {"status": ["echo", "/etc/init.d/{libvirtd_service}", "{other}"]}},
        tmp_path,
        python,
    )
    assert rc == 0
    service = result["system"]["libvirtd_service"]
    assert service in ("libvirtd", "libvirt-bin")
    assert result["commands"]["status"]["stdout"] == f"/etc/init.d/{service} {{other}}"
    assert "python_apt" not in result["system"]  # looked for only when asked
    rc, result = module("upgrader_probe", {"commands": {"x": "true"}}, tmp_path, python)
    assert "system" not in result  # read only when asked for or used
    rc, result = module("upgrader_probe", {"system": True}, tmp_path, python)
    assert isinstance(result["system"]["python_apt"], bool)
    if python != sys.executable:  # the lab's Python 2.7 has no python-apt
        assert result["system"]["python_apt"] is False


# ------------------------------------------------------------------ puppet


def puppet(tmp_path: Path, python: str, run_locks: tuple[str, ...] = ()) -> dict[str, object]:
    state = tmp_path / "state"
    spec = {
        "locks": [str(state / "agent_disabled.lock"), str(state / "puppetdlock")],
        "run_locks": [str(state / name) for name in run_locks],
    }
    rc, result = module("upgrader_probe", {"puppet": spec}, tmp_path, python)
    assert rc == 0
    return result["puppet"]  # type: ignore[return-value]


def test_puppet_3_holds_its_reason_in_the_lock(tmp_path, python):
    (tmp_path / "state").mkdir()
    assert puppet(tmp_path, python)["lock"] is None
    assert puppet(tmp_path, python)["disabled"] is False
    lock = tmp_path / "state" / "agent_disabled.lock"
    lock.write_text('{"disabled_message":"upgrader run R1"}')
    (tmp_path / "state" / "puppetdlock").write_text("")  # a 2.7 leftover: the 3.x lock wins
    held = puppet(tmp_path, python)
    assert (held["lock"], held["disabled"], held["reason"]) == (str(lock), True, "upgrader run R1")
    assert held["message_in_lock"] is True and held["running"] is False


def test_puppet_27s_empty_lock_takes_its_reason_from_the_note_written_for_it(tmp_path, python):
    state = tmp_path / "state"
    state.mkdir()
    lock = state / "puppetdlock"
    lock.write_text("")
    held = puppet(tmp_path, python)
    assert (held["lock"], held["disabled"], held["reason"]) == (str(lock), True, "")
    assert held["message_in_lock"] is False and held["note"] == f"{lock}.upgrader"
    # the lock's identity as a shell tool can write it into a note (the lab's faults do)
    stat = subprocess.run(
        ["stat", "-c", "%i:%Y", str(lock)], capture_output=True, text=True, check=True
    )
    assert held["lock_id"] == stat.stdout.strip()
    note = {"disabled_message": "upgrader run R1", "lock_id": held["lock_id"]}
    Path(str(held["note"])).write_text(json.dumps(note))
    assert puppet(tmp_path, python)["reason"] == "upgrader run R1"
    # someone enabled the agent and someone disabled it again: the note is not for this lock
    lock.unlink()
    lock.write_text("")
    os.utime(lock, (1_000_000, 1_000_000))
    assert puppet(tmp_path, python)["reason"] == ""


def test_puppet_27s_lock_with_a_live_pid_is_a_run_under_way_not_a_hold(tmp_path, python):
    state = tmp_path / "state"
    state.mkdir()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (state / "puppetdlock").write_text(f"{sleeper.pid}")
        running = puppet(tmp_path, python)
        assert (running["disabled"], running["running"], running["running_pid"]) == (
            False, True, sleeper.pid,
        )  # fmt: skip
        (state / "agent_catalog_run.lock").write_text(f"{sleeper.pid}")
        (state / "puppetdlock").unlink()
        assert puppet(tmp_path, python)["running"] is False
        assert puppet(tmp_path, python, ("agent_catalog_run.lock",))["running"] is True
    finally:
        sleeper.kill()
        sleeper.wait()
    assert puppet(tmp_path, python, ("agent_catalog_run.lock",))["running"] is False


# ------------------------------------------------------------------ agents


def agents_site(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An OCF root with one agent per shebang, and a cibadmin that lists them."""
    agents = tmp_path / "ocf" / "resource.d" / "test"
    agents.mkdir(parents=True)
    scripts = {
        "bash_ok": "#!/bin/bash\n[[ -n x ]] && echo meta\n",
        "bash_broken": "#!/bin/bash\nif true; then\n  echo x\nfi fi\n",
        "sh_broken": "#!/bin/sh\nif true; then\n  echo x\n",
        "py3_broken": "#!/usr/bin/env python3\ndef broken(:\n    pass\n",
        "perl_broken": "#!/usr/bin/perl -w\nmy $x = ;\n",
        "py_missing": "#!/opt/nowhere/bin/python2.6\nprint 'x'\n",
        "ruby": "#!/usr/bin/ruby\nputs 'x'\n",
    }
    if PY27 is not None:
        scripts["py27_ok"] = f"#!{PY27}\nprint 'meta'\n"
    primitives = []
    for name, body in scripts.items():
        path = agents / name
        path.write_text(body)
        path.chmod(0o755)
        primitives.append(f'<primitive id="r-{name}" class="ocf" provider="test" type="{name}"/>')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cibadmin = bin_dir / "cibadmin"
    cibadmin.write_text(
        "#!/bin/sh\ncat <<'EOF'\n<resources>" + "".join(primitives) + "</resources>\nEOF\n"
    )
    cibadmin.chmod(0o755)
    return tmp_path / "ocf", {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_agents_are_checked_with_the_interpreter_their_shebang_names(tmp_path, python):
    if shutil.which("perl") is None:
        pytest.skip("no perl here to check a Perl agent with")
    ocf_root, env = agents_site(tmp_path)
    rc, result = module("upgrader_agents", {"ocf_root": str(ocf_root)}, tmp_path, python, env)
    assert rc == 0, result
    found = {Path(str(a["path"])).name: a for a in result["agents"]}  # type: ignore[union-attr]
    assert found["bash_ok"]["language"] == "bash" and found["bash_ok"]["syntax_rc"] == 0
    assert found["bash_broken"]["syntax_rc"] != 0
    assert "line 4" in found["bash_broken"]["syntax_stderr"]
    assert found["sh_broken"]["language"] == "sh" and found["sh_broken"]["syntax_rc"] != 0
    assert found["py3_broken"]["language"] == "python"
    assert found["py3_broken"]["interpreter"] == "python3"
    assert "line 2" in found["py3_broken"]["syntax_stderr"]
    assert found["perl_broken"]["language"] == "perl" and found["perl_broken"]["syntax_rc"] != 0
    missing = found["py_missing"]
    assert (missing["syntax_rc"], missing["unchecked"]) == (
        None, "interpreter /opt/nowhere/bin/python2.6 not on the host",
    )  # fmt: skip
    assert missing["metadata_rc"] is None
    assert (found["ruby"]["language"], found["ruby"]["syntax_rc"]) == ("other", None)
    if PY27 is not None:  # Python 2 syntax passes the check of the Python 2 it names
        assert found["py27_ok"]["syntax_rc"] == 0 and found["py27_ok"]["language"] == "python"
    assert found["bash_ok"]["resources"] == ["r-bash_ok"]
    written = {p.name for p in (ocf_root / "resource.d" / "test").iterdir()}
    assert written == set(found)  # no .pyc (nor Python 2's fence_xc) left next to an agent
