"""What the gather play and oned answered, turned into the verdicts' observations, then judged.

The crm_mon documents are recorded from the lab's Pacemaker tools (node names changed);
the findmnt, virsh and agent answers have the shape the gather play hands back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from upgrader.errors import OneUnavailableError
from upgrader.gates import observe, verdicts
from upgrader.gates.gather import Gathered
from upgrader.opennebula import OneVersion

FIXTURES = Path(__file__).parents[1] / "fixtures" / "gates"


class Oned:
    """Answers the two calls the observations make of oned besides the pools."""

    def __init__(self, version: str | None, datastores: tuple[Any, ...] = ()) -> None:
        self.version = version
        self.datastores = datastores

    def detect_version(self) -> OneVersion:
        if self.version is None:
            raise OneUnavailableError("cannot reach oned at http://fe:2633/RPC2")
        return OneVersion(self.version)

    def datastore_pool(self) -> tuple[Any, ...]:
        return self.datastores


def frontend(doc: str = "crm_mon-healthy.xml", **over: Any) -> dict[str, Any]:
    data = {
        "agents": [],
        "agents_error": "",
        "oned_rc": 0,
        "oned": "Copyright 2002-2012, OpenNebula Project Leads (OpenNebula.org)\n"
        "OpenNebula 3.4.1 is distributed and licensed for use under the terms of the Apache "
        "License, Version 2.0",
        "crm_mon_rc": 0,
        "crm_mon": (FIXTURES / doc).read_text(),
        "crm_mon_error": "",
        "crm_verify_rc": 0,
        "crm_verify": "",
        "onedb_rc": 0,
        "onedb": "3.4.1\n",
        "onedb_error": "",
    }
    return {**data, **over}


def mount(
    path: str = "/var/lib/one/datastores",
    *,
    fstype: str = "ocfs2",
    options: str = "rw",
    size: int = 1000,
    avail: int = 500,
    rc: int = 0,
) -> dict[str, Any]:
    doc = {
        "filesystems": [
            {
                "target": path,
                "source": "/dev/sdb1",
                "fstype": fstype,
                "options": options,
                "size": size,
                "avail": avail,
            }
        ]
    }
    return {
        "datastore_path": path,
        "datastore_fstype": "ocfs2",
        "mount_rc": rc,
        "mount": json.dumps(doc) if rc == 0 else "",
        "mount_error": "",
    }


def test_a_healthy_cluster_from_crm_mon_passes_pacemaker_healthy():
    obs = observe.pacemaker_observation(Gathered({}, {"node1": frontend(), "node2": frontend()}))
    assert [n.name for n in obs.nodes] == ["node1", "node2"]
    assert {r.agent for r in obs.resources} >= {"stonith:fence_ipmilan", "lsb:opennebula"}
    result = verdicts.pacemaker_healthy(obs)
    assert result.verdict == "pass", result.evidence


def test_maintenance_mode_standby_and_disabled_stonith_are_reported():
    maintenance = frontend("crm_mon-maintenance.xml")
    obs = observe.pacemaker_observation(Gathered({}, {"node1": maintenance}))
    assert obs.maintenance_mode and not obs.stonith_enabled
    assert [n.name for n in obs.nodes if n.standby] == ["node2"]
    result = verdicts.pacemaker_healthy(obs)
    assert result.verdict == "fail"
    assert "stonith" in result.evidence["summary"].lower()
    # a step that put the cluster in maintenance still wants STONITH on
    assert verdicts.pacemaker_healthy(obs, maintenance_mode=True).verdict == "fail"


def test_a_failed_monitor_and_a_fenced_node_fail_pacemaker_and_fencing():
    gathered = Gathered({}, {"node1": frontend("crm_mon-fenced.xml")})
    pcmk = observe.pacemaker_observation(gathered)
    assert [(f.resource, f.operation, f.node, f.rc) for f in pcmk.failed_actions] == [
        ("libvirtd", "monitor", "node2", 7)
    ]
    result = verdicts.pacemaker_healthy(pcmk)
    assert result.verdict == "fail" and "node2" in result.evidence["summary"]
    fencing = observe.fencing_observation(gathered)
    assert fencing.fenced_nodes == ("node2",) and fencing.unclean_nodes == ("node2",)


def test_crm_mon_that_failed_is_unreadable_not_healthy():
    down = frontend(
        crm_mon_rc=102,
        crm_mon="",
        crm_mon_error="crm_mon: Connection to cluster failed: Transport endpoint is not connected",
    )
    result = verdicts.pacemaker_healthy(observe.pacemaker_observation(Gathered({}, {"n1": down})))
    assert result.verdict == "inconclusive" and "Transport endpoint" in result.evidence["summary"]
    nobody = verdicts.pacemaker_healthy(observe.pacemaker_observation(Gathered({}, {"n1": None})))
    assert nobody.verdict == "inconclusive" and "n1" in nobody.evidence["summary"]


AGENT = {
    "path": "/usr/sbin/fence_ipmilan",
    "kind": "stonith",
    "agent_class": "stonith",
    "resources": ["fence-ipmi"],
    "exists": True,
    "executable": True,
    "language": "python",
    "syntax_rc": 0,
    "syntax_stderr": "",
    "metadata_rc": 0,
    "metadata_output": '<?xml version="1.0" ?>\n<resource-agent name="fence_ipmilan">',
}
LSB = {
    **AGENT,
    "path": "/etc/init.d/opennebula",
    "kind": "resource",
    "agent_class": "lsb",
    "language": "bash",
    "resources": ["oned"],
    "metadata_rc": None,
    "metadata_output": "",
}


def test_agents_pass_fencing_ready_and_lsb_scripts_need_no_metadata():
    gathered = Gathered(
        {}, {"node1": frontend(agents=[AGENT, LSB]), "node2": frontend(agents=[AGENT, LSB])}
    )
    result = verdicts.fencing_ready(observe.fencing_observation(gathered))
    assert result.verdict == "pass", result.evidence
    assert result.evidence["hosts"] == ["node1", "node2"]


def test_a_python_syntax_error_names_the_file_and_line_on_its_host():
    broken = {
        **AGENT,
        "syntax_rc": 1,
        "metadata_rc": None,
        "syntax_stderr": '  File "/usr/sbin/fence_ipmilan", line 3\n'
        "    def broken(:\n               ^\n"
        "SyntaxError: invalid syntax\n",
    }
    gathered = Gathered({}, {"node1": frontend(agents=[AGENT]), "node2": frontend(agents=[broken])})
    result = verdicts.fencing_ready(observe.fencing_observation(gathered))
    assert result.verdict == "fail"
    assert result.evidence["summary"].startswith("/usr/sbin/fence_ipmilan:3 on node2")


def test_a_front_end_that_did_not_answer_leaves_fencing_inconclusive():
    gathered = Gathered({}, {"node1": frontend(agents=[AGENT]), "node2": None})
    result = verdicts.fencing_ready(observe.fencing_observation(gathered))
    assert result.verdict == "inconclusive" and "node2" in result.evidence["summary"]


def test_cibadmin_failure_is_reported_as_unreadable():
    gathered = Gathered({}, {"node1": frontend(agents_error="cibadmin -Q -o resources failed")})
    result = verdicts.fencing_ready(observe.fencing_observation(gathered))
    assert result.verdict == "inconclusive" and "cibadmin" in json.dumps(result.evidence)


def test_datastore_mounts_of_the_expected_type_with_room_pass():
    gathered = Gathered({"h1": mount(), "h2": mount()})
    obs = observe.datastore_observation(Oned("3.2"), gathered)
    assert obs.series == "3.2" and obs.oned_datastores is None
    assert verdicts.datastores_healthy(obs, min_free="10%").verdict == "pass"


@pytest.mark.parametrize(
    ("host", "expect"),
    [
        (mount(rc=1), "/var/lib/one/datastores not mounted"),
        (mount(fstype="ext4"), "is ext4, expected ocfs2"),
        (mount(options="ro,relatime"), "not writable"),
        (mount(avail=50), "5.0% free"),
    ],
    ids=["unmounted", "wrong-type", "read-only", "full"],
)
def test_a_bad_datastore_mount_fails_naming_host_and_problem(host, expect):
    obs = observe.datastore_observation(Oned("3.2"), Gathered({"h1": mount(), "h2": host}))
    result = verdicts.datastores_healthy(obs, min_free="10%")
    assert result.verdict == "fail"
    assert result.evidence["summary"].startswith("h2: ") and expect in result.evidence["summary"]


def test_a_full_nfs_export_fails_and_its_type_does_not_matter():
    export = {
        "export_path": "/srv/export",
        "export_rc": 0,
        "export_error": "",
        "export": json.dumps(
            {
                "filesystems": [
                    {
                        "target": "/srv",
                        "fstype": "xfs",
                        "options": "rw",
                        "size": 10**9,
                        "avail": 4096,
                    }
                ]
            }
        ),
    }
    gathered = Gathered({"h1": mount()}, nfs_servers={"nfs1": export})
    obs = observe.datastore_observation(Oned("3.2"), gathered)
    result = verdicts.datastores_healthy(obs, min_free="5%")
    assert result.verdict == "fail"
    assert "nfs1: NFS export /srv/export 0.0% free" in result.evidence["summary"]
    roomy = {**export, "export": export["export"].replace('"avail": 4096', '"avail": 900000000')}
    obs = observe.datastore_observation(Oned("3.2"), Gathered({"h1": mount()}, {}, {"nfs1": roomy}))
    assert verdicts.datastores_healthy(obs, min_free="5%").verdict == "pass"


def test_from_34_oned_must_list_its_datastores():
    gathered = Gathered({"h1": mount()})
    assert (
        verdicts.datastores_healthy(observe.datastore_observation(Oned("3.4"), gathered)).verdict
        == "fail"
    )
    unreachable = observe.datastore_observation(Oned(None), gathered)
    assert unreachable.oned_datastores is None


def test_versions_from_probe_onedb_and_the_installed_oned():
    gathered = Gathered({}, {"node1": frontend()})
    seen = observe.version_observation(Oned("3.4"), gathered)
    assert (seen.probed_series, seen.onedb_version, seen.package_version) == (
        "3.4",
        "3.4.1",
        "3.4.1",
    )
    assert verdicts.oned_version(seen, expect="3.4").verdict == "pass"


def test_a_database_one_migration_short_fails_oned_version():
    gathered = Gathered({}, {"node1": frontend(onedb="3.3.80\n")})
    result = verdicts.oned_version(observe.version_observation(Oned("3.4"), gathered))
    assert result.verdict == "fail"
    assert "database is at 3.3.80 but oned 3.4.1 needs 3.4.1" in result.evidence["summary"]


def test_onedb_that_could_not_run_leaves_oned_version_inconclusive():
    gathered = Gathered(
        {},
        {
            "node1": frontend(
                onedb_rc=255, onedb="", onedb_error="File /var/lib/one/one.db doesn't exist"
            )
        },
    )
    seen = observe.version_observation(Oned("3.4"), gathered)
    assert seen.onedb_version is None
    assert verdicts.oned_version(seen).verdict == "inconclusive"


def test_virsh_and_libvirtd_and_puppet_from_the_hypervisors():
    lock = "eyJkaXNhYmxlZF9tZXNzYWdlIjogInVwZ3JhZGVyIHJ1biBSMSJ9"  # {"disabled_message": ...}
    hv = {
        "h1": {
            "virsh_rc": 0,
            "virsh": ["one-1", ""],
            "virsh_error": "",
            "libvirtd_rc": 0,
            "libvirtd": "libvirtd is running",
            "puppet_lock": lock,
        },
        "h2": {
            "virsh_rc": 1,
            "virsh": [],
            "virsh_error": "error: failed to connect to the hypervisor\n",
            "libvirtd_rc": 3,
            "libvirtd": "libvirtd is not running",
            "puppet_lock": "",
        },
        "h3": None,
    }
    alive = observe.libvirtd_observation(hv)
    assert [(h.host, h.running) for h in alive.hosts] == [("h1", True), ("h2", False), ("h3", None)]
    puppet = observe.puppet_observation(hv)
    assert [(a.host, a.disabled, a.reason) for a in puppet.agents] == [
        ("h1", True, "upgrader run R1"),
        ("h2", False, ""),
        ("h3", None, ""),
    ]
    result = verdicts.puppet_held(puppet, run_id="R1")
    assert result.verdict == "fail" and "h2" in result.evidence["summary"]
