"""The user's main job on a lab of its own, through the real command line: production is
refused before staging passed; `upgrader run 3.6 --stage --yes` then `upgrader run 3.6 --yes`
take both clouds from 3.2.1 to 3.6.0 with every gate passing; afterwards each cloud has the
VMs it had (names, owners, disks, addresses, hosts), every one running, and Pacemaker and
Puppet are as they were before; the journal shows every step with its duration.

This is the longest lab test (two full runs, about ten minutes a lab), so the lab is small:
two hosts a cloud, four VMs each. It runs on a lab of each host profile: 2012 hosts (Debian 7,
Python 2.7 only, the tools of the time; the default) and modern ones (the machine's Debian 12
and Python 3), since a site's hosts may be of either era."""

from __future__ import annotations

import json
import os
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

RUN_TIMEOUT = 1500
pytestmark = [pytest.mark.lab, pytest.mark.timeout(3 * RUN_TIMEOUT)]

# Labs beside the session's, one a host profile: each its own name and /24 (the session lab
# stays at 3.2.1).
LABS = {"2012": side_lab("w", 50), "modern": side_lab("wm", 60)}


@pytest.fixture(scope="module", params=list(LABS))
def job_lab(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (CI runs them as root)")
    profile = request.param
    name, subnet = LABS[profile]
    upgrader("lab", "down", "--name", name)
    upgrader(
        "lab", "up", "--name", name, "--subnet", f"{subnet}.0/24", "--profile", profile,
        "--hosts-staging", "2", "--hosts-production", "2", "--vms", "4",
    )  # fmt: skip
    directory = Path("/var/lib/upgrader-lab") / name
    yield {"name": name, "spec": load_spec(name), "dir": directory}
    upgrader("lab", "down", "--name", name)


def run_cli(*args: str, timeout: float = RUN_TIMEOUT) -> Any:
    from subprocess import run
    from sys import executable

    return run(
        [executable, "-m", "upgrader", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def members(lab: dict[str, Any], cloud: str) -> list[Any]:
    return [h for h in lab["spec"].hosts if h.cloud == cloud]


def client(lab: dict[str, Any], cloud: str) -> OneClient:
    front = members(lab, cloud)[0]
    secret = (lab["dir"] / f"{cloud}.one_auth").read_text().strip()
    return OneClient(f"http://{front.ip}:2633/RPC2", secret, timeout=10)


def sh(lab: dict[str, Any], host: str, command: str) -> str:
    return hs.enter(lab["dir"], host, "sh", "-c", command, check=False).stdout.strip()


def vms_of(lab: dict[str, Any], cloud: str) -> dict[str, dict[str, Any]]:
    """name -> what the user knows a VM by: owner, disks, addresses, host, whether it runs."""
    seen = {}
    for vm in client(lab, cloud).vm_pool():
        if vm.is_done:
            continue
        seen[vm.name] = {
            "owner": vm.uname,
            "group": vm.gname,
            # the image and its file (onedb 3.2 -> 3.4 moves image files under the datastore's
            # directory, so the path changes; the file's name, the image's hash, does not)
            "disks": sorted(
                (d.get("IMAGE_ID", ""), d.get("IMAGE", ""), Path(d.get("SOURCE", "")).name)
                for d in vm.disks
            ),
            "addresses": sorted((n.get("NETWORK", ""), n.get("IP", "")) for n in vm.nics),
            "host": vm.host,
            "running": vm.is_running,
        }
    return seen


def cluster_state(lab: dict[str, Any], cloud: str) -> dict[str, Any]:
    """Pacemaker's settings the run touches, and the Puppet agent's hold on every host."""
    front = members(lab, cloud)[0].name
    crm = f"CIB_file=/srv/lab/{cloud}/pcmk/cib.xml"
    lock = profiles.get(lab["spec"].profile).puppet_lock
    return {
        "maintenance-mode": sh(
            lab,
            front,
            f"{crm} crm_attribute --type crm_config --name maintenance-mode --query --quiet 2>&1",
        ),
        "oned is-managed": sh(
            lab,
            front,
            f"{crm} crm_resource --resource oned --meta --get-parameter is-managed --quiet 2>&1",
        ),
        "puppet": {
            h.name: sh(lab, h.name, f"cat {lock} 2>/dev/null || echo enabled")
            for h in members(lab, cloud)
        },
    }


def oned_version(lab: dict[str, Any], cloud: str) -> str:
    """The series oned answers as (its API) and the package installed on the front end."""
    series = client(lab, cloud).detect_version().value
    front = members(lab, cloud)[0].name
    package = sh(lab, front, "dpkg-query --show --showformat='${Version}' opennebula")
    return f"{series} {package}"


def journal_of(lab: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    path = lab["dir"] / "runs" / run_id / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_journal(events: list[dict[str, Any]]) -> list[str]:
    """Every planned step started and finished with a duration, every gate passed, the run
    finished; returns the table of step durations (printed for the record)."""
    plan = events[0]["plan"]["steps"]
    finished = {e["step"]: e for e in events if e["type"] == "step_finished"}
    assert [s["id"] for s in plan if s["id"] not in finished] == []
    assert all(isinstance(finished[s["id"]]["duration"], (int, float)) for s in plan)
    verdicts = [e for e in events if e["type"] == "gate_verdict"]
    assert verdicts and [e for e in verdicts if e["verdict"] != "pass"] == []
    assert events[-1]["type"] == "run_finished"
    assert not any(e["type"] in ("run_failed", "step_failed") for e in events)
    return [f"{s['id']:<34} {finished[s['id']]['duration']:8.1f} s" for s in plan]


def check_backups_journaled(lab: dict[str, Any], cloud: str, events: list[dict[str, Any]]) -> None:
    """Each hop's backup step journaled the checksums of the database and /etc/one backups
    on the controller, and they are the files' checksums on the front end."""
    backups = [
        e["outcome"]["data"]["upgrader_backup"]
        for e in events
        if e["type"] == "step_finished" and e["step"].endswith("/backup")
    ]
    assert len(backups) == 2  # 3.2 -> 3.4 and 3.4 -> 3.6
    front = members(lab, cloud)[0].name
    for backup in backups:
        for kind in ("db", "conf"):
            entry = backup[front]["files"][kind]
            on_host = sh(lab, front, f"sha256sum {entry['path']}").split()[0]
            assert entry["sha256"] == on_host


def test_staging_then_production_take_both_clouds_to_3_6_with_nothing_lost(
    job_lab, tmp_path
) -> None:
    lab = job_lab
    config = str(lab["dir"] / "upgrader.yml")
    before = {c: (vms_of(lab, c), cluster_state(lab, c)) for c in ("staging", "production")}
    assert all(oned_version(lab, c) == "3.2 3.2.1-1" for c in before)
    assert all(vm["running"] for c in before for vm in before[c][0].values())

    # Production first is refused: an inhibitor, with the command that lifts it.
    refused = run_cli("run", "3.6", "--yes", "--config", config, timeout=300)
    assert refused.returncode == 5, refused.stderr
    assert "upgrader run 3.6 --stage" in refused.stderr
    assert not (lab["dir"] / "runs").exists() or not any(
        p.name.startswith("production-") for p in (lab["dir"] / "runs").iterdir()
    )

    for cloud, args in (("staging", ("--stage",)), ("production", ())):
        result = run_cli("run", "3.6", *args, "--yes", "--config", config)
        assert result.returncode == 0, result.stderr[-3000:]
        run_id = result.stdout.strip().splitlines()[-1]
        assert run_id.startswith(f"{cloud}-")
        events = journal_of(lab, run_id)
        table = check_journal(events)
        print(f"\n[{lab['spec'].profile} hosts, {cloud}] {run_id}\n" + "\n".join(table))
        check_backups_journaled(lab, cloud, events)
        report = reports_of(upgrader, run_id, tmp_path, *args, "--config", config)
        check_reports(report, kind="run", status="succeeded")

        assert oned_version(lab, cloud) == "3.6 3.6.0-1"
        vms_before, cluster_before = before[cloud]
        assert vms_of(lab, cloud) == vms_before
        assert cluster_state(lab, cloud) == cluster_before
        for host in members(lab, cloud):
            assert sh(
                lab, host.name, "dpkg-query --show --showformat='${Version}' opennebula-node"
            ).startswith("3.6.0")

    # Both runs are journaled as the passing rehearsal and the production run that used it.
    status = upgrader("status", "--config", config)
    assert "staging-" in status.stdout and "production-" in status.stdout
