"""targets-supported: the raw check's answers of real 3.x-era hosts, read and judged.

The answers below are what ``playbooks/files/check-targets.sh`` prints on such hosts (through
ssh's pty: CRLF line ends, a stray line). The names looked for are ansible-core 2.16's
discovery list, as the play sends it.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from upgrader.config.site import PROJECT_DIR
from upgrader.errors import UpgraderError
from upgrader.gates.catalogue import STANDING, build_gates
from upgrader.gates.model import FAIL, INCONCLUSIVE, PASS, Gathered
from upgrader.gates.targets import observation
from upgrader.gates.verdicts import TargetHost, TargetsObservation, parse_answer, targets_supported
from upgrader.plan.model import PlannedStep
from upgrader.plan.runbook import load_runbook
from upgrader.plan.runbook_model import GateSpec

# ansible-core 2.16's INTERPRETER_PYTHON_FALLBACK
LOOKED = [*(f"python3.{n}" for n in range(12, 5, -1)), "/usr/bin/python3"]
LOOKED += ["/usr/libexec/platform-python", "python2.7", "/usr/bin/python", "python"]
SCRIPT = PROJECT_DIR / "playbooks" / "files" / "check-targets.sh"


def answer(os_lines: str, found: dict[str, tuple[str, str]], tail: str = "", *, end=True) -> str:
    """An answer: the OS lines, every name looked for (``found``: name -> (path, version or
    !error)), then ``tail`` (crm_mon, puppet, libvirt, the configured interpreter)."""
    lines = [line.strip() for line in os_lines.strip().splitlines()]
    for n, name in enumerate(LOOKED, 1):
        lines.append(f"py.{n}.look={name}")
        if name in found:
            path, version = found[name]
            lines.append(f"py.{n}.path={path}")
            if version.startswith("!"):
                lines.append(f"py.{n}.error={version[1:]}")
            else:
                lines += [f"py.{n}.version={version}", f"py.{n}.apt=no"]
    lines += [line.strip() for line in tail.strip().splitlines()]
    lines += ["end=ok"] if end else []
    return "\r\n".join(lines) + "\r\nShared connection to 10.0.0.7 closed.\r\n"


DEBIAN_7 = """
os.ID=debian
os.VERSION_ID=7
os.PRETTY_NAME=Debian GNU/Linux 7 (wheezy)
debian_version=7.11
"""
CENTOS_6 = "redhat_release=CentOS release 6.10 (Final)"
UBUNTU_1004 = """
lsb.DISTRIB_ID=Ubuntu
lsb.DISTRIB_RELEASE=10.04
debian_version=squeeze/sid
"""
DEBIAN_12 = """
os.ID=debian
os.VERSION_ID=12
os.PRETTY_NAME=Debian GNU/Linux 12 (bookworm)
debian_version=12.11
"""
PY27 = {
    "python2.7": ("/usr/bin/python2.7", "2.7.3"),
    "/usr/bin/python": ("/usr/bin/python", "2.7.3"),
    "python": ("/usr/bin/python", "2.7.3"),
}
PY26 = {"/usr/bin/python": ("/usr/bin/python", "2.6.6"), "python": ("/usr/bin/python", "2.6.6")}
HYPERVISOR_TOOLS = "puppet.path=/usr/bin/puppet\npuppet.version=2.7.23\nlibvirt.initd=libvirt-bin"
FRONTEND_TOOLS = (
    "crm_mon.path=/usr/sbin/crm_mon\ncrm_mon.version=Pacemaker 1.1.7\n"
    "puppet.path=/usr/bin/puppet\npuppet.version=3.8.7"
)
HV, FE = ("hypervisors", "puppet"), ("frontends", "puppet")


def judge(*hosts):
    return targets_supported(TargetsObservation(tuple(hosts)))


def summary(*hosts) -> str:
    return judge(*hosts).evidence["summary"]


def test_debian_7_with_python_27_passes_on_the_python_discovery_picks():
    host = parse_answer("ulab-h1", answer(DEBIAN_7, PY27, HYPERVISOR_TOOLS), roles=HV)
    assert (host.os_id, host.os_version, host.os_name) == (
        "debian",
        "7",
        "Debian GNU/Linux 7 (wheezy)",
    )
    assert host.libvirt == ("libvirt-bin (init script)",) and host.puppet == "2.7.23"
    result = judge(host)
    assert result.verdict == PASS
    assert result.evidence["summary"].startswith("1 hosts can be managed: Python 2.7.3 on 1")
    seen = result.evidence["hosts"]["ulab-h1"]
    # Debian 7 is older than the table's first entry (8: /usr/bin/python): discovery takes that
    assert (seen["python"], seen["python_by"]) == ("/usr/bin/python", "discovery")
    assert "no python-apt on ulab-h1" in result.evidence["summary"]


def test_centos_6_with_python_266_only_fails_in_one_line_naming_the_host_and_the_way_out():
    host = parse_answer("ulab-s2", answer(CENTOS_6, PY26), roles=("nfs_servers",))
    assert (host.os_id, host.os_version) == ("centos", "6.10")
    result = judge(host)
    assert result.verdict == FAIL
    assert result.evidence["summary"] == (
        "ulab-s2: Python 2.6.6 only; install python2.7 (e.g. from EPEL/IUS/SCL) or manage it "
        "with ansible-core 2.12"
    )
    assert "\n" not in result.evidence["summary"] and result.hint


def test_a_host_with_no_python_at_all_says_where_it_was_looked_for():
    host = parse_answer("ulab-h2", answer(DEBIAN_7, {}, HYPERVISOR_TOOLS), roles=HV)
    assert [i.looked_for for i in host.looked] == LOOKED and not any(i.path for i in host.looked)
    assert summary(host) == (
        "ulab-h2: no Python found (looked for python3.12 ... python, as Ansible does); install "
        "python2.7 or python3.6+, or set ansible_python_interpreter"
    )


def test_debian_12_with_python_311_uses_python3_as_the_distro_table_says():
    found = {
        "python3.11": ("/usr/bin/python3.11", "3.11.2"),
        "/usr/bin/python3": ("/usr/bin/python3", "3.11.2"),
    }
    host = parse_answer("h12", answer(DEBIAN_12, found, FRONTEND_TOOLS), roles=FE)
    result = judge(host)
    assert result.verdict == PASS, result.evidence["summary"]
    assert result.evidence["hosts"]["h12"]["python"] == "/usr/bin/python3"
    assert result.evidence["hosts"]["h12"]["crm_mon"] == "Pacemaker 1.1.7"


def test_an_interpreter_set_to_a_missing_path_fails_and_names_one_that_works():
    tail = HYPERVISOR_TOOLS + "\npy.set.look=/opt/python27/bin/python"
    host = parse_answer(
        "ulab-h3", answer(DEBIAN_7, PY27, tail), roles=HV, setting="/opt/python27/bin/python"
    )
    assert summary(host) == (
        "ulab-h3: ansible_python_interpreter /opt/python27/bin/python not found; point it at "
        "a Python 2.7 or 3.6+, such as /usr/bin/python2.7 (Python 2.7.3)"
    )
    # the inventory's interpreter is used as it is, even where discovery would find a good one
    tail = HYPERVISOR_TOOLS + "\npy.set.look=/usr/bin/python2.6\npy.set.path=/usr/bin/python2.6"
    tail += "\npy.set.version=2.6.8\npy.set.apt=no"
    host = parse_answer("h", answer(DEBIAN_7, PY27, tail), roles=HV, setting="/usr/bin/python2.6")
    assert "ansible_python_interpreter /usr/bin/python2.6 is Python 2.6.8; point" in summary(host)


def test_an_unreachable_host_is_never_passed_and_keeps_its_line_beside_a_failure():
    good = parse_answer("ulab-h1", answer(DEBIAN_7, PY27, HYPERVISOR_TOOLS), roles=HV)
    (gone,) = observation(
        {
            "target_members": {"hypervisors": ["ulab-h9"]},
            "target_answers": {"ulab-h9": {"unreachable": True, "msg": "ssh: No route to host"}},
        }
    ).hosts
    waited = judge(good, gone)
    assert waited.verdict == INCONCLUSIVE
    assert waited.evidence["summary"] == "ulab-h9: unreachable (ssh: No route to host)"
    old = parse_answer("ulab-s2", answer(CENTOS_6, PY26), roles=("nfs_servers",))
    failed = judge(good, gone, old)
    assert failed.verdict == FAIL
    assert failed.evidence["summary"].startswith("ulab-s2: Python 2.6.6 only;")
    assert failed.evidence["summary"].endswith("; ulab-h9: unreachable (ssh: No route to host)")


def test_old_pythons_of_the_time_and_what_each_needs():
    ubuntu = parse_answer("u", answer(UBUNTU_1004, {"python": ("/usr/bin/python", "2.6.5")}))
    assert (ubuntu.os_id, ubuntu.os_version) == ("ubuntu", "10.04")
    assert (
        summary(ubuntu)
        == "u: Python 2.6.5 only; install python2.7 or manage it with ansible-core 2.12"
    )
    stretch = parse_answer(
        "s", answer(DEBIAN_7, {"/usr/bin/python3": ("/usr/bin/python3", "3.5.3")})
    )
    assert summary(stretch) == (
        "s: Python 3.5.3 only; install python2.7 or python3.6+, or manage it with ansible-core 2.12"
    )


def test_a_first_interpreter_that_does_not_run_is_what_discovery_takes():
    found = {
        "python3.12": ("/root/.pyenv/shims/python3.12", "!pyenv: python3.12: command not found"),
        "/usr/bin/python3": ("/usr/bin/python3", "3.11.2"),
    }
    host = parse_answer("ctl", answer(DEBIAN_12, found))
    assert summary(host) == (
        "ctl: Ansible would use /root/.pyenv/shims/python3.12 (does not run: pyenv: python3.12: "
        "command not found); set ansible_python_interpreter=/usr/bin/python3 (Python 3.11.2)"
    )


def test_auto_legacy_prefers_usr_bin_python():
    found = {
        "/usr/bin/python3": ("/usr/bin/python3", "3.11.2"),
        "/usr/bin/python": ("/usr/bin/python", "2.7.18"),
    }
    host = parse_answer("h", answer(DEBIAN_12, found), setting="auto_legacy_silent")
    assert judge(host).evidence["hosts"]["h"]["python"] == "/usr/bin/python"
    host = parse_answer("h", answer(DEBIAN_12, found), setting="auto_silent")
    assert judge(host).evidence["hosts"]["h"]["python"] == "/usr/bin/python3"


def test_the_tools_each_role_needs_are_named_with_how_to_provide_them():
    host = parse_answer("f1", answer(DEBIAN_7, PY27), roles=("frontends", "hypervisors", "puppet"))
    line = summary(host)
    assert line.startswith("f1: crm_mon not found; install Pacemaker's command-line tools")
    assert "puppet not found; install puppet (2.7 or 3.x) or set puppet_command" in line
    assert line.endswith(
        "; no libvirtd init script /etc/init.d/libvirt-bin; install libvirt-bin (Debian/Ubuntu) "
        "or libvirt (CentOS), or set libvirtd_status_command"
    )
    # the inventory's own way to ask libvirtd is enough; an NFS server needs none of them
    host = parse_answer(
        "h",
        answer(DEBIAN_7, PY27, HYPERVISOR_TOOLS.split("\nlibvirt")[0]),
        roles=HV,
        libvirtd_status_command="service libvirt-bin status",
    )
    nfs = parse_answer("n", answer(DEBIAN_7, PY27), roles=("nfs_servers",))
    assert judge(host, nfs).verdict == PASS


def test_libvirtd_init_script_is_the_one_the_playbooks_will_run():
    found = {"/usr/bin/python3": ("/usr/bin/python3", "3.11.2")}
    tools = "puppet.path=/usr/bin/puppet\npuppet.version=7.23.0\nlibvirt.initd=libvirt-bin"
    tools += "\nlibvirt.unit=libvirtd"
    host = parse_answer("h", answer(DEBIAN_12, found, tools), roles=HV)
    assert host.libvirt == ("libvirt-bin (init script)", "libvirtd (systemd unit)")
    # Debian 12's default is libvirtd: its init script is what the gates would run
    assert (
        summary(host)
        == "h: no /etc/init.d/libvirtd, but libvirt-bin; set libvirtd_service: libvirt-bin"
    )
    host = parse_answer(
        "h", answer(DEBIAN_12, found, tools), roles=HV, libvirtd_service="libvirt-bin"
    )
    assert judge(host).verdict == PASS


def test_an_answer_cut_short_fails_and_says_what_the_host_printed():
    host = parse_answer("h", "sh: 1: Syntax error: end of file unexpected\r\n", rc=2)
    assert summary(host) == (
        "h: the check did not finish (rc 2): sh: 1: Syntax error: end of file unexpected; "
        "check that /bin/sh runs commands there"
    )


def test_the_play_data_becomes_every_member_with_its_roles():
    data = {
        "target_members": {
            "frontends": ["f1"],
            "hypervisors": ["h2", "h1"],
            "nfs_servers": [],
            "puppet": ["f1", "h1", "h2", "elsewhere"],
        },
        "target_answers": {
            "f1": {"rc": 0, "stdout": answer(DEBIAN_7, PY27, FRONTEND_TOOLS), "setting": "auto"},
            "h1": {"rc": 0, "stdout": answer(DEBIAN_7, PY27, HYPERVISOR_TOOLS)},
        },
        "target_distro_map": {"debian": {"6": "/usr/bin/python2.7"}},
    }
    obs = observation(data)
    assert [(h.host, h.roles) for h in obs.hosts] == [
        ("f1", ("frontends", "puppet")),
        ("h1", ("hypervisors", "puppet")),
        ("h2", ("hypervisors", "puppet")),
    ]
    assert obs.hosts[2].unreachable == "no answer"
    result = targets_supported(obs)
    assert (
        result.verdict == INCONCLUSIVE
        and result.evidence["summary"] == "h2: unreachable (no answer)"
    )
    # the controller's own table decides (here: Debian 7 takes python2.7)
    assert result.evidence["hosts"]["f1"]["python"] == "/usr/bin/python2.7"
    with pytest.raises(UpgraderError, match="did not say which hosts"):
        observation({"target_answers": {}})


# ------------------------------------------------------------------ the script itself


def fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def run_script(tmp_path: Path, pythons: str, interpreter: str = "auto") -> str:
    """check-targets.sh under sh, with PATH only a directory of stand-ins."""
    prelude = (
        f"UPGRADER_PYTHONS='{pythons}'\nUPGRADER_INTERPRETER='{interpreter}'\n"
        "UPGRADER_PUPPET=puppet\n"
    )
    done = subprocess.run(
        ["/bin/sh", "-c", prelude + SCRIPT.read_text()],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": str(tmp_path / "bin"), "LC_ALL": "C"},
    )
    assert done.stderr == ""
    return done.stdout


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """sed and cut (the script's only outside tools), and stand-ins for the rest."""
    path = tmp_path / "bin"
    path.mkdir()
    for tool in ("sed", "cut"):
        os.symlink(
            subprocess.run(
                ["sh", "-c", f"command -v {tool}"], capture_output=True, text=True, check=True
            ).stdout.strip(),
            path / tool,
        )
    return path


def test_the_script_finds_each_python_by_name_and_tells_a_broken_one(tmp_path, bin_dir):
    fake(bin_dir, "python2.6", "echo 2.6.6")
    fake(bin_dir, "python9", 'echo "python9: hidden by the test" >&2; exit 127')
    fake(bin_dir, "puppet", "echo 2.7.23")
    out = run_script(tmp_path, "python2.7 python9 python2.6")
    host = parse_answer("h", out, roles=("puppet",))
    assert [(i.looked_for, i.path != "", i.version, i.error) for i in host.looked] == [
        ("python2.7", False, "", "not found"),
        ("python9", True, "", "python9: hidden by the test"),
        ("python2.6", True, "2.6.6", ""),
    ]
    assert host.puppet == "2.7.23" and host.cut_short == ""
    # discovery takes python9 first, and it does not run: what remains is too old
    assert summary(host) == (
        "h: Python 2.6.6 only; install python2.7 or manage it with ansible-core 2.12"
    )


def test_the_script_probes_the_configured_interpreter_with_its_arguments(tmp_path, bin_dir):
    fake(bin_dir, "env", 'exec "$@"')  # /usr/bin/env python2.7, as a shebang has it
    fake(bin_dir, "python2.7", 'case "$2" in "import apt") exit 1;; esac; echo 2.7.18')
    out = run_script(tmp_path, "python", interpreter=f"{bin_dir}/env python2.7")
    host = parse_answer("h", out, setting=f"{bin_dir}/env python2.7")
    assert host.configured is not None
    assert (host.configured.version, host.configured.apt) == ("2.7.18", False)
    assert judge(host).verdict == PASS


# ------------------------------------------------------------------ the gate in the catalogue


class Reader:
    """An observer that also runs the target check (a ``TargetReader``), counting its looks."""

    def __init__(self, *observations: TargetsObservation) -> None:
        self.observations = list(observations)
        self.looks = 0

    def targets(self) -> TargetsObservation:
        self.looks += 1
        return self.observations[min(self.looks, len(self.observations)) - 1]

    def gather(self, parts=frozenset(), *, fresh=False) -> Gathered:
        raise AssertionError("the target check must not need the gather play")

    def new_round(self, parts=frozenset()) -> None:
        pass


class GatherOnly:
    def gather(self, parts=frozenset(), *, fresh=False) -> Gathered:
        return Gathered(hypervisors={})

    def new_round(self, parts=frozenset()) -> None:
        pass


CLIENT = object()  # the target check never asks oned
STEP = PlannedStep(
    "now", "", "gates", "gates", "action", None, None, "all", (), None, 0, True, None, False, (), ()
)


def test_the_gate_comes_first_and_reads_only_its_own_play():
    assert STANDING[0] == "targets-supported"
    old = parse_answer("ulab-s2", answer(CENTOS_6, PY26), roles=("nfs_servers",))
    reader = Reader(TargetsObservation((old,)))
    gates = build_gates(CLIENT, observer=reader)
    assert next(iter(gates)) == "targets-supported"
    gates.new_round(["targets-supported"])
    result = gates["targets-supported"](GateSpec("targets-supported", {"timeout": 0}), STEP)
    assert result.verdict == FAIL and result.evidence["summary"].startswith("ulab-s2: Python 2.6.6")
    assert reader.looks == 1
    # without a target check (no observer, or one that only gathers) the gate is not there
    assert "targets-supported" not in build_gates(CLIENT)
    assert "targets-supported" not in build_gates(CLIENT, observer=GatherOnly())


def test_an_unreachable_host_is_looked_at_again_within_the_gate_budget():
    gone = TargetsObservation((TargetHost("h", unreachable="ssh: Connection timed out"),))
    good = TargetsObservation((parse_answer("h", answer(DEBIAN_7, PY27)),))
    reader = Reader(gone, good)
    gate = build_gates(CLIENT, observer=reader)["targets-supported"]
    result = gate(GateSpec("targets-supported", {"timeout": 30, "interval": 0}), STEP)
    assert result.verdict == PASS and reader.looks == 2


@pytest.mark.parametrize(
    "book", sorted((PROJECT_DIR / "runbooks").glob("*.yml")), ids=lambda p: p.stem
)
def test_every_runbook_checks_the_targets_first_in_its_preflight(book):
    first = load_runbook(book, playbooks_dir=PROJECT_DIR / "playbooks").steps[0]
    assert first.gates_before[0].name == "targets-supported"
