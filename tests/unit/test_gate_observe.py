"""What the gather play and oned answered, turned into the verdicts' observations, then judged.

The crm_mon documents are recorded from the lab's Pacemaker tools (node names changed):
``--output-as=xml`` (``<pacemaker-result>``) and ``--as-xml`` (the ``<crm_mon>`` document
Pacemaker 2.1 still prints); crm_mon-1.1.xml has the shape Pacemaker 1.1.7's crm_mon --as-xml
prints (Debian 7's backports): no cluster_options, no failures, ``ocf::provider:type``. The
mount, virsh, Puppet and agent answers have the shape the gather play hands back.
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


def probed_mount(path: str, *, target: str | None = None, **over: Any) -> dict[str, Any]:
    """upgrader_probe's answer about the file system holding ``path``."""
    target = target or path
    answer = {"path": path, "target": target, "source": "/dev/sdb1", "fstype": "ocfs2",
              "options": "rw,relatime", "mountpoint": target == path, "size": 1000,
              "avail": 500, "fstab": []}  # fmt: skip
    return {**answer, **over}


def mount(
    path: str = "/var/lib/one/datastores",
    *,
    fstype: str = "ocfs2",
    options: str = "rw",
    size: int = 1000,
    avail: int = 500,
    mounted: bool = True,
) -> dict[str, Any]:
    answer = probed_mount(path, fstype=fstype, options=options, size=size, avail=avail)
    if not mounted:  # the datastore path is a directory of the root file system
        answer = probed_mount(path, target="/", fstype="ext4", source="/dev/sda1")
    return {"datastore_path": path, "datastore_fstype": "ocfs2", "mount": answer}


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
        (mount(mounted=False), "/var/lib/one/datastores not mounted"),
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
    # the export is a directory of the server's /srv file system, not a mount of its own
    answer = probed_mount("/srv/export", target="/srv", fstype="xfs", size=10**9, avail=4096)
    export = {"export_path": "/srv/export", "export": answer}
    gathered = Gathered({"h1": mount()}, nfs_servers={"nfs1": export})
    obs = observe.datastore_observation(Oned("3.2"), gathered)
    result = verdicts.datastores_healthy(obs, min_free="5%")
    assert result.verdict == "fail"
    assert "nfs1: NFS export /srv/export 0.0% free" in result.evidence["summary"]
    roomy = {**export, "export": {**answer, "avail": 900_000_000}}
    obs = observe.datastore_observation(Oned("3.2"), Gathered({"h1": mount()}, {}, {"nfs1": roomy}))
    assert verdicts.datastores_healthy(obs, min_free="5%").verdict == "pass"


def test_a_mount_the_probe_could_not_read_leaves_the_datastore_unreadable_not_healthy():
    hung = {**mount(), "mount": {"path": "/var/lib/one/datastores", "error": "no answer in 60 s"}}
    obs = observe.datastore_observation(Oned("3.2"), Gathered({"h1": mount(), "h2": hung}))
    result = verdicts.datastores_healthy(obs)
    assert result.verdict == "inconclusive"
    assert "h2 (no answer in 60 s)" in result.evidence["summary"]


def test_the_mounted_source_is_compared_as_findmnt_shows_a_bind_mount():
    bound = mount()
    bound["mount"]["source"] = "/dev/loop3[/staging]"
    gathered = Gathered({"h1": {**bound, "old_source": "/dev/loop3[/staging]"}})
    obs = observe.datastore_observation(Oned("3.2"), gathered)
    assert obs.mounts[0].source == "/dev/loop3[/staging]"
    assert verdicts.datastores_healthy(obs, storage="old").verdict == "pass"


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


def lock(disabled: bool, reason: str = "", *, running: bool = False) -> dict[str, Any]:
    """upgrader_probe's reading of Puppet's lock (``running``: a run lock names a live pid)."""
    return {"lock": "/var/lib/puppet/state/puppetdlock" if disabled or running else None,
            "disabled": disabled, "reason": reason, "message_in_lock": False,
            "running": running, "running_pid": 4242 if running else None}  # fmt: skip


def test_virsh_and_libvirtd_and_puppet_from_the_hypervisors():
    hv = {
        "h1": {
            "virsh_rc": 0,
            "virsh": ["one-1", ""],
            "virsh_error": "",
            "libvirtd_rc": 0,
            "libvirtd": "libvirtd is running",
            "puppet": lock(True, "upgrader run R1"),
        },
        "h2": {
            "virsh_rc": 1,
            "virsh": [],
            "virsh_error": "error: failed to connect to the hypervisor\n",
            "libvirtd_rc": 3,
            "libvirtd": "libvirtd is not running",
            "puppet": lock(False),
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


def test_a_puppet_run_under_way_keeps_the_hold_waiting_and_an_unread_lock_is_unknown():
    hv = {
        "h1": {"puppet": lock(True, "upgrader run R1", running=True)},
        "h2": {"puppet": lock(True, "upgrader run R1")},
        "h3": {"virsh_rc": 0},  # a gather play that did not read the lock
    }
    agents = observe.puppet_observation(hv).agents
    assert [(a.host, a.disabled, a.run_in_progress) for a in agents] == [
        ("h1", True, True),
        ("h2", True, False),
        ("h3", None, False),
    ]
    result = verdicts.puppet_held(observe.puppet_observation(hv), run_id="R1")
    assert result.verdict == "inconclusive"
    assert "a Puppet run is still in progress on h1" in result.evidence["summary"]


# ------------------------------------------------------------------ crm_mon of every era


def test_crm_mon_as_xml_parses_as_its_output_as_xml_does():
    legacy = observe.pacemaker_observation(Gathered({}, {"node01": frontend("crm_mon-as-xml.xml")}))
    assert [(n.name, n.online) for n in legacy.nodes] == [("node01", True), ("node02", True)]
    assert [(r.id, r.node) for r in legacy.resources] == [
        ("fence-ipmi", "node02"),
        ("one-datastore-fs", "node01"),
    ]
    assert legacy.stonith_enabled and not legacy.maintenance_mode
    assert verdicts.pacemaker_healthy(legacy).verdict == "pass"


def test_pacemaker_11s_crm_mon_without_cluster_options_takes_them_from_the_cib():
    crm_config = (
        '<crm_config><cluster_property_set id="cib-bootstrap-options">'
        '<nvpair id="o1" name="stonith-enabled" value="true"/>'
        '<nvpair id="o2" name="maintenance-mode" value="on"/>'
        "</cluster_property_set></crm_config>"
    )
    held = frontend("crm_mon-1.1.xml", crm_config=crm_config)
    obs = observe.pacemaker_observation(Gathered({}, {"node1": held}))
    assert [n.name for n in obs.nodes] == ["node1", "node2"]
    assert {r.agent for r in obs.resources} == {
        "stonith:fence_ipmilan",
        "ocf::heartbeat:Filesystem",
        "lsb:opennebula",
        "lsb:libvirt-bin",
    }
    assert obs.maintenance_mode and obs.stonith_enabled and obs.failed_actions == ()
    assert verdicts.pacemaker_healthy(obs, maintenance_mode=True).verdict == "pass"
    assert verdicts.pacemaker_healthy(obs).verdict == "fail"
    unread = observe.pacemaker_observation(Gathered({}, {"node1": frontend("crm_mon-1.1.xml")}))
    assert unread.stonith_enabled and not unread.maintenance_mode  # Pacemaker's defaults
    seen = observe.version_observation(Oned("3.4"), Gathered({}, {"node1": held}))
    assert seen.package_version == "3.4.1"


def test_a_failure_keyed_by_id_without_its_task_names_resource_and_operation():
    doc = (
        (FIXTURES / "crm_mon-1.1.xml")
        .read_text()
        .replace(
            "</crm_mon>",
            '<failures><failure id="libvirtd_monitor_30000" node="node2" exitstatus="not running" '
            'exitcode="7" call="12" status="complete"/></failures></crm_mon>',
        )
    )
    gathered = Gathered({}, {"node1": {**frontend(), "crm_mon": doc}})
    failed = observe.pacemaker_observation(gathered).failed_actions
    assert [(f.resource, f.operation, f.node, f.rc) for f in failed] == [
        ("libvirtd", "monitor", "node2", 7)
    ]


@pytest.mark.parametrize(
    ("answer", "expect"),
    [
        (
            {
                "crm_mon_rc": 102,
                "crm_mon": '<pacemaker-result api-version="2.25" request="crm_mon -1 '
                '--output-as=xml"><status code="102" message="Not connected"><errors>'
                "<error>crm_mon: Error: cluster is not available on this node</error>"
                "</errors></status></pacemaker-result>",
            },
            "Not connected; crm_mon: Error: cluster is not available on this node",
        ),
        (
            {
                "crm_mon_rc": 64,
                "crm_mon": "",
                "crm_mon_error": "crm_mon: unrecognized option '--output-as=xml'",
            },
            "crm_mon: unrecognized option '--output-as=xml'",
        ),
        ({"crm_mon": "<cib/>"}, "crm_mon answered a <cib> document, not the cluster's status"),
    ],
    ids=["result-error", "option-refused", "not-a-status"],
)
def test_a_crm_mon_that_could_not_say_leaves_pacemaker_inconclusive_with_its_words(answer, expect):
    obs = observe.pacemaker_observation(Gathered({}, {"n1": frontend(**answer)}))
    result = verdicts.pacemaker_healthy(obs)
    assert result.verdict == "inconclusive"
    assert obs.error == expect


class NoVms(Oned):
    def vm_pool(self) -> tuple[Any, ...]:
        return ()


@pytest.mark.parametrize(
    "virsh",
    [
        # libvirt 0.8/0.9.8 (Debian 6, Ubuntu 12.04): the table is all virsh list prints
        [" Id Name                 State", "----------------------------------",
         "  3 one-7                running", "  4 one-12               running", ""],
        # today's table
        [" Id   Name     State", "------------------------", " 1    one-7    running",
         " 2    one-12   running"],
        # virsh list --name (libvirt 0.9.10+)
        ["one-7", "one-12", ""],
    ],
    ids=["libvirt-0.8", "libvirt-9", "names"],
)  # fmt: skip
def test_the_domains_come_from_virsh_lists_table_or_its_names(virsh):
    seen = {"h1": {"virsh_rc": 0, "virsh": virsh, "virsh_error": ""}}
    assert observe.domain_map(NoVms("3.2"), seen).hypervisors[0].domains == ("one-7", "one-12")


def test_a_hypervisor_running_no_domain_lists_none():
    table = [" Id   Name   State", "--------------------", ""]
    seen = {"h1": {"virsh_rc": 0, "virsh": table, "virsh_error": ""}}
    assert observe.domain_map(NoVms("3.2"), seen).hypervisors[0].domains == ()
