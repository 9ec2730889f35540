"""`upgrader run 3.6 --dry-run` on production of a lab of its own (3.2.1, two hosts, four VMs),
through the real command line: without a staging pass it exits 5 and still shows the whole
plan; with --without-rehearsal it exits 0; and neither changes anything a user could see:
oned's version and packages, every VM's state, host and owner, the hosts' states, the Puppet
holds, Pacemaker's maintenance mode, /etc/one, the database (but for the monitoring oned
writes all the time), no backup directory, no run lock left behind."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import side_lab, upgrader
from tests.support.report_checks import check_reports, reports_of
from upgrader.lab import hosts as hs
from upgrader.lab import profiles
from upgrader.lab.lab import load_spec
from upgrader.opennebula import OneClient

# Two dry runs of about a minute and a half each on a quiet machine (more under load).
pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]

LAB, SUBNET = side_lab("dr", 130)
BACKUPS = "/var/lib/one/upgrader-backups"
CIB = "CIB_file=/srv/lab/production/pcmk/cib.xml"
# The database as a dry run could change it: its schema and every row, leaving out only what
# oned's monitoring rewrites every few seconds (host and VM bodies, poll times, a host's
# state going MONITORING and back).
DB_DIGEST = r"""
import hashlib, sqlite3
db = sqlite3.connect("file:/srv/lab/production/one/one.db?mode=ro", uri=True)
h = hashlib.sha256()
for name, sql in db.execute("select name, sql from sqlite_master order by name"):
    h.update(repr((name, sql)).encode())
    if sql and sql.startswith("CREATE TABLE"):
        cols = [r[1] for r in db.execute(f'pragma table_info("{name}")')
                if not (name == "vm_pool" and r[1] in ("body", "last_poll"))
                and not (name == "host_pool" and r[1] in ("body", "last_mon_time", "state"))]
        query = f'select {", ".join(cols)} from "{name}" order by 1'
        h.update(repr(db.execute(query).fetchall()).encode())
print(h.hexdigest())
"""


@pytest.fixture(scope="module")
def dry_lab() -> Iterator[dict[str, Any]]:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (CI runs them as root)")
    upgrader("lab", "down", "--name", LAB)
    upgrader(
        "lab", "up", "--name", LAB, "--subnet", f"{SUBNET}.0/24", "--version", "3.2.1",
        "--hosts-staging", "1", "--hosts-production", "2", "--vms", "4",
    )  # fmt: skip
    yield {"name": LAB, "spec": load_spec(LAB), "dir": Path("/var/lib/upgrader-lab") / LAB}
    upgrader("lab", "down", "--name", LAB)


def production(lab: dict[str, Any]) -> list[str]:
    return [h.name for h in lab["spec"].hosts if h.cloud == "production"]


def sh(lab: dict[str, Any], host: str, command: str) -> str:
    return hs.enter(lab["dir"], host, "sh", "-c", command, check=False).stdout.strip()


def client(lab: dict[str, Any]) -> OneClient:
    front = next(h for h in lab["spec"].hosts if h.cloud == "production")
    secret = (lab["dir"] / "production.one_auth").read_text().strip()
    return OneClient(f"http://{front.ip}:2633/RPC2", secret, timeout=10)


def what_a_user_sees(lab: dict[str, Any]) -> dict[str, Any]:
    """Everything a run would change on production, read through XML-RPC and on the hosts."""
    one = client(lab)
    front = production(lab)[0]
    # the host's Puppet lock, and the lab's own interpreter (a 2012 host has no python3)
    profile = profiles.get(lab["spec"].profile)
    return {
        "oned": one.detect_version().value,
        "vms": {
            vm.id: (vm.name, vm.state.name, vm.lcm_state.name, vm.host, vm.uname)
            for vm in one.vm_pool()
        },
        # MONITORING: a monitoring cycle under way, it comes and goes
        "hosts": {h.name: h.state.name.replace("MONITORING", "MONITORED") for h in one.host_pool()},
        "maintenance-mode": sh(
            lab,
            front,
            f"{CIB} crm_attribute --type crm_config --name maintenance-mode --query --quiet 2>&1",
        ),
        "oned is-managed": sh(
            lab,
            front,
            f"{CIB} crm_resource --resource oned --meta --get-parameter is-managed --quiet 2>&1",
        ),
        "database": hs.enter(lab["dir"], front, profile.python, "-c", DB_DIGEST).stdout.strip(),
        **{
            host: {
                "puppet": sh(lab, host, f"cat {profile.puppet_lock} 2>/dev/null || echo enabled"),
                "packages": sh(
                    lab,
                    host,
                    "dpkg-query --show --showformat='${Package} ${Version}\\n' 'opennebula*'",
                ),
                "/etc/one": sh(lab, host, "ls -A /etc/one; sha256sum /etc/one/oned.conf"),
                "backups": sh(lab, host, f"ls -A {BACKUPS} 2>&1"),
            }
            for host in production(lab)
        },
    }


def dry_run(lab: dict[str, Any], *args: str) -> Any:
    """The real command line, timed (the wall time is printed for the record)."""
    started = time.monotonic()
    result = upgrader(
        "run", "3.6", "--dry-run", "--config", str(lab["dir"] / "upgrader.yml"), *args, check=False
    )
    took = time.monotonic() - started
    print(
        f"\n[dry run{' ' if args else ''}{' '.join(args)}] exit {result.returncode} in {took:.0f} s"
    )
    return result


def test_a_production_dry_run_shows_the_plan_and_changes_nothing(dry_lab, tmp_path) -> None:
    lab = dry_lab
    before = what_a_user_sees(lab)
    assert before["oned"] == "3.2" and len(before["vms"]) == 4
    assert before["maintenance-mode"] == "false"
    names = sorted(name for name, *_ in before["vms"].values())

    # No staging pass: the inhibitor decides the exit code, after the whole plan is shown.
    refused = dry_run(lab)
    assert refused.returncode == 5, refused.stderr[-2000:]
    out = refused.stdout
    assert "point of no return: 3.2-3.4/upgrade-frontend, 3.4-3.6/upgrade-frontend" in out
    assert ["3.2-3.4/upgrade-frontend", "600", "s", "<-", "point", "of", "no", "return"] in [
        line.split() for line in out.splitlines()
    ]
    # 36 steps; a drain's estimate grows with the VMs on its host (2 min + 2 min a VM)
    assert re.search(r"plan for production: OpenNebula 3\.2 -> 3\.6, 36 steps, about \d+ min", out)
    drains = re.findall(r"3\.2-3\.4/drain@\d +(\d+) s", out)
    assert sorted(int(d) for d in drains) == sorted(
        120 + 120 * sum(1 for *_, host, _ in before["vms"].values() if host == h)
        for h in production(lab)
    )
    shut = out.split("VMs shut down for onedb in 3.2-3.4")[1].split("VMs live-migrated")[0]
    assert [n for n in names if n in shut] == names
    assert "INHIBITOR: no-rehearsal:" in out
    assert "PASS libvirtd-alive:" in out and "check mode could not predict" not in out
    assert (
        out.strip()
        .splitlines()[-1]
        .startswith(
            "dry run: nothing was changed; inhibitor no-rehearsal stops `upgrader run 3.6`: "
            "rehearse it first: `upgrader run 3.6 --stage --yes`"
        )
    )

    # Knowingly without staging: the real run could start.
    reason = "staging is rebuilt this week, CAB 4711"
    ready = dry_run(lab, "--without-rehearsal", reason)
    assert ready.returncode == 0, ready.stderr[-2000:]
    assert ready.stdout.strip().splitlines()[-1] == (
        f"dry run: nothing was changed; `upgrader run 3.6 --without-rehearsal '{reason}'` does it"
    )

    # Nothing a user could notice changed; no backup of either run, no lock left behind.
    assert what_a_user_sees(lab) == before
    assert not (lab["dir"] / "runs" / "locks" / "production.lock").exists()
    runs = sorted(p.name for p in (lab["dir"] / "runs").glob("production-*"))
    assert len(runs) == 2 and runs[0] in refused.stdout and runs[1] in ready.stdout

    # The report of each, in the three formats: what would happen, and what blocks it.
    config = str(lab["dir"] / "upgrader.yml")
    blocked = reports_of(upgrader, runs[0], tmp_path, "--config", config)
    check_reports(blocked, kind="dry-run", status="failed")  # an inhibitor stops the real run
    assert '`--without-rehearsal "REASON"`' in blocked.md  # how it is lifted, not --accept
    assert "rehearse it first" in blocked.md and "rehearse it first" in blocked.html
    check_reports(
        reports_of(upgrader, runs[1], tmp_path, "--config", config),
        kind="dry-run",
        status="succeeded",
    )
