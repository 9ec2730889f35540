"""The built-in lab, checked with the real tools: Ansible over SSH, apt, the client, the
Pacemaker CLI, virsh, nfs-ls, every fault with its --clear, and what a host of the lab's
profile (2012 by default) runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import ansible_runner
import pytest

from tests.lab.conftest import side_lab, upgrader
from tests.support.oned import wait_for
from upgrader.lab import hosts as hs
from upgrader.lab import profiles
from upgrader.opennebula import OneClient

pytestmark = pytest.mark.lab


def ssh(lab, host: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    ip = next(h.ip for h in lab["spec"].hosts if h.name == host)
    key = lab["dir"] / "share" / "key" / "id_ed25519"
    result = subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=3",
            f"root@{ip}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def hosts_of(lab, cloud: str) -> list[str]:
    return [h.name for h in lab["spec"].hosts if h.cloud == cloud]


def profile_of(lab) -> profiles.HostProfile:
    return profiles.get(lab["spec"].profile)


def client(lab, cloud: str) -> OneClient:
    config = (lab["dir"] / "upgrader.yml").read_text()
    endpoint = re.search(rf"{cloud}:\n\s+oned: (\S+)", config).group(1)
    return OneClient(endpoint, (lab["dir"] / f"{cloud}.one_auth").read_text().strip(), timeout=5)


def ansible(lab, cloud: str, module: str, args: str = "", limit: str = "all", tmp_path=None):
    venv_bin = os.path.dirname(sys.executable)
    return ansible_runner.run(
        private_data_dir=str(tmp_path),
        host_pattern="all",
        module=module,
        module_args=args,
        inventory=str(lab["dir"] / "inventory" / f"{cloud}.yml"),
        limit=limit,
        quiet=True,
        envvars={"PATH": f"{venv_bin}:{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1"},
        suppress_env_files=True,
    )


@pytest.mark.parametrize("cloud", ["staging", "production"])
def test_ansible_reaches_every_host_over_ssh(lab, cloud, tmp_path):
    result = ansible(lab, cloud, "ansible.builtin.ping", tmp_path=tmp_path)
    assert result.status == "successful"
    # the cloud's hosts and the NFS server (group nfs_servers, read by datastores-healthy)
    assert sorted(result.stats["ok"]) == sorted([*hosts_of(lab, cloud), f"{lab['name']}-nfs"])


def test_an_apt_upgrade_changes_only_that_host(lab, tmp_path):
    target = hosts_of(lab, "production")[-1]
    result = ansible(  # apt-get: a 2012 host has no python-apt for Ansible's apt module
        lab,
        "production",
        "ansible.builtin.command",
        "apt-get install -y -qq opennebula=3.4.1-1",
        limit=target,
        tmp_path=tmp_path,
    )
    assert result.status == "successful", result.stdout.read()
    for host in hosts_of(lab, "production"):
        version = ssh(lab, host, "dpkg-query -W -f='${Version}' opennebula").stdout
        assert version == ("3.4.1-1" if host == target else "3.2.1-1")
    assert "DATASTORE_LOCATION" in ssh(lab, target, "cat /etc/one/oned.conf").stdout
    ssh(lab, target, "apt-get install -y -qq --allow-downgrades opennebula=3.2.1-1")


def test_a_2012_host_offers_ansible_python_2_7_only_and_the_tools_of_the_time(lab, tmp_path):
    if lab["spec"].profile != "2012":
        pytest.skip("a lab of the modern profile")
    front = hosts_of(lab, "production")[0]
    facts = ansible(
        lab, "production", "ansible.builtin.setup", "gather_subset=!all,!min,python,distribution",
        limit=f"{front}:{lab['name']}-nfs", tmp_path=tmp_path,
    )  # fmt: skip
    assert facts.status == "successful"
    answers = {
        e["event_data"]["host"]: e["event_data"]["res"]["ansible_facts"]
        for e in facts.events
        if e["event"] == "runner_on_ok"
    }
    assert sorted(answers) == sorted([front, f"{lab['name']}-nfs"])
    for seen in answers.values():
        assert seen["discovered_interpreter_python"] == "/usr/bin/python"
        python = seen["ansible_python"]
        assert python["executable"] == "/usr/bin/python"
        assert "{major}.{minor}.{micro}".format(**python["version"]) == "2.7.18"
        assert seen["ansible_distribution"] == "Debian"
        assert seen["ansible_distribution_version"] == "7.11"
        assert seen["ansible_distribution_release"] == "wheezy"
    # No python3 where Ansible looks (hidden in the host's overlay only), no python-apt
    names = ssh(lab, front, "ls /usr/bin /usr/local/bin /usr/libexec").stdout.split()
    assert [n for n in names if n.startswith("python3") or n == "platform-python"] == []
    assert list(Path("/usr/bin").glob("python3*")), "the machine's own python3 must stay"
    assert ssh(lab, front, "readlink -f /usr/bin/python").stdout == "/usr/bin/python2.7\n"
    for python in ("python", "/usr/lib/upgrader-lab/python/bin/python"):
        no_apt = ssh(lab, front, f"{python} -c 'import apt'", check=False)
        assert no_apt.returncode == 1 and "No module named" in no_apt.stderr
    # the lab's oned runs from its own interpreter
    oned = ssh(lab, front, "ps -eo args | grep '[u]pgrader.lab.oned'").stdout
    assert oned.startswith("/usr/lib/upgrader-lab/python/bin/python -m upgrader.lab.oned")
    # util-linux 2.20, Pacemaker 1.1, libvirt-bin, Puppet 2.7
    refused = ssh(lab, front, "findmnt --json /var/lib/one/datastores", check=False)
    assert refused.returncode == 1 and "unrecognized option '--json'" in refused.stderr
    refused = ssh(lab, front, "crm_mon -1 --output-as=xml", check=False)
    assert refused.returncode == 64 and "unrecognized option" in refused.stderr
    assert ssh(lab, front, "ls /etc/init.d").stdout.split().count("libvirt-bin") == 1
    assert ssh(lab, front, "test -e /etc/init.d/libvirtd", check=False).returncode == 1
    assert ssh(lab, front, "puppet --version").stdout == "2.7.23\n"
    lock = ssh(lab, front, "puppet agent --configprint puppetdlockfile").stdout
    assert lock == "/var/lib/puppet/state/puppetdlock\n"


@pytest.mark.parametrize("cloud", ["staging", "production"])
def test_oned_of_the_right_version_answers_on_the_front_end(lab, cloud):
    one = client(lab, cloud)
    assert str(one.detect_version()) == "3.2"
    assert sorted(h.name for h in one.host_pool()) == sorted(hosts_of(lab, cloud))
    assert len(one.vm_pool()) == 8
    front = hosts_of(lab, cloud)[0]
    assert "running" in ssh(lab, front, "/etc/init.d/opennebula status").stdout
    assert "OpenNebula 3.2.1" in ssh(lab, front, "oned -v").stdout
    assert ssh(lab, front, f"onedb version -s /srv/lab/{cloud}/one/one.db").stdout == "3.2.1\n"


def test_pacemaker_tools_read_the_cib(lab):
    for host in hosts_of(lab, "staging"):
        mon = ssh(lab, host, "crm_mon -1 --as-xml").stdout  # Pacemaker 1.1's way, and 2.x's
        assert mon.count('online="true"') == 2
        assert re.search(r'<resource id="oned"[^>]*role="Started"', mon)
        assert 'resource_agent="stonith:fence_ipmilan"' in mon
        ssh(lab, host, "crm_verify -L")
        prop = ssh(lab, host, "crm_attribute --type crm_config --name stonith-enabled --query")
        assert "value=true" in prop.stdout


@pytest.mark.parametrize("cloud", ["staging", "production"])
def test_virsh_shows_the_domains_oned_placed_there(lab, cloud):
    placed: dict[str, set[str]] = {h: set() for h in hosts_of(lab, cloud)}
    for vm in client(lab, cloud).vm_pool():
        placed[vm.host].add(f"one-{vm.id}")
    for host, domains in placed.items():
        assert set(ssh(lab, host, "virsh list --name").stdout.split()) == domains


def test_the_datastore_and_the_nfs_export(lab):
    for host in hosts_of(lab, "staging") + hosts_of(lab, "production"):
        assert ssh(lab, host, "findmnt -n -o FSTYPE /var/lib/one/datastores").stdout == "ext4\n"
    ssh(lab, hosts_of(lab, "staging")[0], "touch /var/lib/one/datastores/.from-s1")
    assert (
        ssh(lab, hosts_of(lab, "staging")[1], "ls -a /var/lib/one/datastores").stdout.count(
            ".from-s1"
        )
        == 1
    )
    assert (
        ssh(
            lab, hosts_of(lab, "production")[0], "ls -a /var/lib/one/datastores", check=False
        ).stdout.count(".from-s1")
        == 0
    )  # each cloud has its own
    listing = ssh(
        lab, hosts_of(lab, "staging")[0], f"nfs-ls nfs://{lab['name']}-nfs/srv/lab/nfs/export"
    ).stdout
    assert "lost+found" in listing


def _fault(lab, name: str, *args: str, clear: bool = False) -> str:
    extra = ("--clear",) if clear else ()
    return upgrader("lab", "fault", name, "--name", lab["name"], *args, *extra).stdout


def test_libvirtd_crash_and_clear(lab):
    host = hosts_of(lab, "production")[-1]
    one = client(lab, "production")
    hid = next(h.id for h in one.host_pool() if h.name == host)
    script = f"/etc/init.d/{profile_of(lab).libvirtd_service}"
    _fault(lab, "libvirtd-crash", "--cloud", "production")
    assert ssh(lab, host, f"{script} status", check=False).returncode == 3
    wait_for(lambda: one.host(hid).state.name == "ERROR", 30)
    _fault(lab, "libvirtd-crash", "--cloud", "production", clear=True)
    assert ssh(lab, host, f"{script} status").returncode == 0
    wait_for(lambda: one.host(hid).state.name == "MONITORED", 30)
    test_virsh_shows_the_domains_oned_placed_there(lab, "production")


def test_oned_down_and_clear(lab):
    one = client(lab, "staging")
    _fault(lab, "oned-down", "--cloud", "staging")
    with pytest.raises(Exception, match="cannot reach oned"):
        one.host_pool()
    _fault(lab, "oned-down", "--cloud", "staging", clear=True)
    assert len(one.host_pool()) == 2


def test_host_unreachable_and_clear(lab):
    host = hosts_of(lab, "staging")[-1]
    _fault(lab, "host-unreachable", "--cloud", "staging")
    assert ssh(lab, host, "true", check=False).returncode == 255
    _fault(lab, "host-unreachable", "--cloud", "staging", clear=True)
    ssh(lab, host, "true")


def test_stonith_agent_broken_and_clear(lab):
    host = hosts_of(lab, "staging")[-1]
    # the agent's own interpreter (a 2012 host's fence agents are Python 2 scripts)
    check = (
        "$(sed -n '1s/^#!\\([^ ]*\\).*/\\1/p' /usr/sbin/fence_ipmilan) -c "
        "'import sys; compile(open(sys.argv[1]).read(), sys.argv[1], \"exec\")' "
        "/usr/sbin/fence_ipmilan"
    )
    _fault(lab, "stonith-agent-broken", "--cloud", "staging")
    broken = ssh(lab, host, check, check=False)
    assert broken.returncode != 0 and "line 3" in broken.stderr
    _fault(lab, "stonith-agent-broken", "--cloud", "staging", clear=True)
    ssh(lab, host, check)


def test_nfs_full_and_clear(lab):
    nfs = f"{lab['name']}-nfs"
    _fault(lab, "nfs-full")
    avail = int(ssh(lab, nfs, "df --output=avail -B1 /srv/lab/nfs/export | tail -1").stdout)
    assert avail < 1024 * 1024
    _fault(lab, "nfs-full", clear=True)
    avail = int(ssh(lab, nfs, "df --output=avail -B1 /srv/lab/nfs/export | tail -1").stdout)
    assert avail > 100 * 1024 * 1024


def test_corrupt_copy_and_clear(lab):
    nfs = f"{lab['name']}-nfs"
    ssh(lab, nfs, "head -c 100000 /dev/urandom > /srv/lab/nfs/export/image.raw")
    before = ssh(lab, nfs, "sha256sum /srv/lab/nfs/export/image.raw").stdout
    _fault(lab, "corrupt-copy")
    assert ssh(lab, nfs, "sha256sum /srv/lab/nfs/export/image.raw").stdout != before
    _fault(lab, "corrupt-copy", clear=True)
    assert ssh(lab, nfs, "sha256sum /srv/lab/nfs/export/image.raw").stdout == before
    ssh(lab, nfs, "rm /srv/lab/nfs/export/image.raw")


def test_slow_migration_and_clear(lab):
    one = client(lab, "staging")
    vm = one.vm_pool()[0]
    target = next(h.id for h in one.host_pool() if h.name != vm.host)
    _fault(lab, "slow-migration", "--cloud", "staging")
    one.call("one.vm.migrate", vm.id, target, True)
    time.sleep(2)
    assert one.vm(vm.id).lcm_state.name == "MIGRATE"
    _fault(lab, "slow-migration", "--cloud", "staging", clear=True)
    wait_for(lambda: one.vm(vm.id).lcm_state.name == "RUNNING", 30)


def test_puppet_enabled_and_clear(lab):
    host = hosts_of(lab, "staging")[-1]
    profile = profile_of(lab)
    lock = profile.puppet_lock
    ssh(lab, host, "puppet agent --disable 'upgrade run 42'")
    _fault(lab, "puppet-enabled", "--cloud", "staging")
    assert ssh(lab, host, f"test -e {lock}", check=False).returncode == 1
    _fault(lab, "puppet-enabled", "--cloud", "staging", clear=True)
    held = ssh(lab, host, f"cat {lock}").stdout
    if profile.puppet_message:
        assert json.loads(held)["disabled_message"] == "upgrade run 42"
    else:
        assert held == ""  # Puppet 2.7's hold keeps no message
    ssh(lab, host, "puppet agent --enable")


def test_no_python_and_clear(lab, tmp_path):
    cloud = "staging"
    front = hosts_of(lab, cloud)[0]
    before = ssh(lab, front, "ls /usr/bin").stdout.split()
    assert _fault(lab, "no-python", "--host", front) == f"no-python injected on {front}\n"
    try:
        names = ssh(lab, front, "ls /usr/bin /usr/local/bin").stdout.split()
        assert [n for n in names if re.fullmatch(r"python[0-9.]*", n)] == []
        pinged = ansible(lab, cloud, "ansible.builtin.ping", limit=front, tmp_path=tmp_path)
        assert pinged.status == "failed"
        # the lab's own programs run from an interpreter of their own
        assert ssh(lab, front, f"onedb version -s /srv/lab/{cloud}/one/one.db").stdout == "3.2.1\n"
    finally:
        _fault(lab, "no-python", "--host", front, clear=True)
    assert ssh(lab, front, "ls /usr/bin").stdout.split() == before
    (tmp_path / "again").mkdir()
    pinged = ansible(lab, cloud, "ansible.builtin.ping", limit=front, tmp_path=tmp_path / "again")
    assert pinged.status == "successful"


def test_lab_commands_without_root_say_so_in_one_line(lab):
    result = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-m",
            "upgrader",
            "lab",
            "status",
            "--name",
            lab["name"],
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
        env={**os.environ, "HOME": "/"},
    )
    assert result.returncode != 0
    assert "needs root" in result.stderr and "Traceback" not in result.stderr


def test_lab_down_leaves_nothing_behind(lab, tmp_path):
    name, subnet = side_lab("down", 140)
    upgrader("lab", "up", "--name", name, "--subnet", f"{subnet}.0/24", "--vms", "2")
    started = time.monotonic()
    upgrader("lab", "down", "--name", name)
    print(f"\n[lab] lab down took {time.monotonic() - started:.1f} s")
    assert not [ns for ns in hs.netns_list() if ns.startswith(f"{name}-")]
    assert f"/var/lib/upgrader-lab/{name}" not in Path("/proc/self/mountinfo").read_text()
    assert (
        f"/var/lib/upgrader-lab/{name}"
        not in subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    )
    assert not Path(f"/var/lib/upgrader-lab/{name}").exists()
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert f"upgrader-lab/{name}" not in procs and f"{name}-" not in procs
    upgrader("lab", "down", "--name", name)  # idempotent


def test_missing_debian_packages_are_named_with_the_command_that_installs_them(lab):
    result = subprocess.run(
        [sys.executable, "-m", "upgrader", "lab", "up", "--name", "utmiss"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": "/nonexistent"},
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert "Debian packages missing for the lab" in lines[0]
    assert "apt-get install -y --no-install-recommends" in lines[0]
    assert "libvirt-clients" in lines[0]
    assert not Path("/var/lib/upgrader-lab/utmiss").exists()


def test_commands_on_a_lab_that_is_not_up_say_so(lab):
    result = upgrader("lab", "status", "--name", "utnone", check=False)
    assert result.returncode != 0
    assert result.stderr.strip() == ("error: lab 'utnone' is not up (hint: upgrader lab up)")
