"""The simulator answers like oned 3.x: methods per version, argument checks, error codes."""

from __future__ import annotations

import hashlib
import sqlite3
import xmlrpc.client
from collections.abc import Iterator

import pytest

from tests.support import oned

VERSIONS = ["3.2.1", "3.4.1", "3.6.0"]


@pytest.fixture(scope="module", params=VERSIONS)
def sim(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[oned.Simulator]:
    work = tmp_path_factory.mktemp(f"api-{request.param}")
    oned.seed(work, request.param, hosts=2, vms=2)
    s = oned.start(work, request.param, speed=100)
    yield s
    s.stop()


def raw(sim: oned.Simulator, method: str, *args):
    return getattr(sim.rpc(), method)(sim.session, *args)


def fault_of(sim: oned.Simulator, method: str, *args) -> xmlrpc.client.Fault:
    with pytest.raises(xmlrpc.client.Fault) as info:
        raw(sim, method, *args)
    return info.value


@pytest.mark.parametrize(
    "method,since",
    [
        ("one.datastorepool.info", "3.4"),
        ("one.clusterpool.info", "3.4"),
        ("one.vmpool.accounting", "3.6"),
        ("one.host.monitoring", "3.6"),
        ("one.documentpool.info", "3.6"),
        ("one.system.version", "9"),
    ],
)
def test_a_method_the_version_lacks_is_fault_506(sim, method, since):
    if sim.version[:3] >= since:
        pytest.skip(f"{method} exists in {sim.version}")
    fault = fault_of(sim, method)
    assert fault.faultCode == -506
    assert fault.faultString == f"Method '{method}' not defined"


def test_answers_are_ok_body_code_triples(sim):
    ok = raw(sim, "one.hostpool.info")
    assert ok[0] is True and ok[1].startswith("<HOST_POOL>") and ok[2] == 0
    assert raw(sim, "one.host.enable", 1, True) == [True, 1, 0]


@pytest.mark.parametrize("session", ["oneadmin:wrong", "nobody:x", "no-colon", ""])
def test_bad_sessions_are_refused_with_0x100(sim, session):
    answer = sim.rpc().one.vm.info(session, 0)
    assert answer == [
        False,
        "[VirtualMachineInfo] User couldn't be authenticated, aborting call.",
        0x100,
    ]


def test_not_found_uses_the_object_name(sim):
    assert raw(sim, "one.vm.info", 99) == [
        False,
        "[VirtualMachineInfo] Error getting virtual machine [99].",
        0x400,
    ]
    assert raw(sim, "one.host.info", 42) == [False, "[HostInfo] Error getting host [42].", 0x400]
    assert raw(sim, "one.image.info", 7)[2] == 0x400


def test_an_action_in_the_wrong_state_is_0x800(sim):
    vmid = sim.call("one.vm.allocate", "NAME=waiting\nCPU=1\nMEMORY=999999999")  # never fits
    assert raw(sim, "one.vm.action", "shutdown", vmid) == [
        False,
        "[VirtualMachineAction] Wrong state to perform action",
        0x800,
    ]
    assert raw(sim, "one.vm.migrate", vmid, 0, True)[2] == 0x800


def test_bad_filter_flags_are_0x1000(sim):
    assert raw(sim, "one.vmpool.info", -4, -1, -1, -1) == [
        False,
        "[VirtualMachinePoolInfo] Incorrect filter_flag",
        0x1000,
    ]
    assert raw(sim, "one.vmpool.info", -2, -1, -1, 9) == [
        False,
        "[VirtualMachinePoolInfo] Incorrect filter_flag, state",
        0x1000,
    ]


def test_internal_errors_are_0x2000(sim):
    assert raw(sim, "one.vm.action", "explode", 0) == [
        False,
        "[VirtualMachineAction] Internal error. Action result not defined",
        0x2000,
    ]
    busy = raw(sim, "one.host.delete", 0)
    assert busy[0] is False and busy[2] == 0x2000 and "running VMs" in busy[1]


def test_a_user_without_rights_gets_0x200(sim):
    name = f"bob{sim.version.replace('.', '')}"
    sim.call("one.user.allocate", name, "pw", "core")
    answer = sim.rpc().one.host.enable(f"{name}:pw", 0, False)
    assert answer[0] is False and answer[2] == 0x200
    assert answer[1].startswith("[HostEnable] User [")


def test_missing_and_mistyped_parameters_are_xmlrpc_faults(sim):
    assert fault_of(sim, "one.vm.info").faultString == "Not enough parameters"
    wrong = fault_of(sim, "one.vm.info", "zero")
    assert wrong.faultCode == -501
    assert wrong.faultString == "Parameter that is supposed to be integer is not"
    assert fault_of(sim, "one.host.enable", 0, 1).faultCode == -501  # int where bool is due


def test_allocate_calls_take_their_versions_arguments(sim):
    if sim.version == "3.2.1":
        assert raw(sim, "one.host.allocate", "h32", "im_kvm", "vmm_kvm", "dummy", "tm_shared")[0]
        assert fault_of(sim, "one.host.allocate", "h", "im", "vmm", "vn", -1).faultCode == -501
        assert raw(sim, "one.image.allocate", 'NAME="i32"\nPATH=/x')[0]
    else:
        assert raw(sim, "one.host.allocate", "h34", "im_kvm", "vmm_kvm", "dummy", -1)[0]
        assert (
            fault_of(sim, "one.image.allocate", 'NAME="i"\nPATH=/x').faultString
            == "Not enough parameters"
        )
        assert raw(sim, "one.image.allocate", 'NAME="sys"\nPATH=/x', 0) == [
            False,
            "[ImageAllocate] New images cannot be allocated in the system datastore.",
            0x2000,
        ]
        assert raw(sim, "one.image.allocate", 'NAME="i34"\nPATH=/x', 1)[0]


def test_action_names_are_those_of_the_version(sim):
    answer = raw(sim, "one.vm.action", "resched", 0)
    if sim.version == "3.6.0":
        assert answer == [True, 0, 0]
        assert "<RESCHED>1</RESCHED>" in sim.call("one.vm.info", 0)
        assert raw(sim, "one.vm.action", "unresched", 0) == [True, 0, 0]
    else:
        assert answer[2] == 0x2000


def test_the_password_is_stored_as_sha1(sim):
    user = sim.call("one.user.info", 0)
    digest = hashlib.sha1(oned.PASSWORD.encode()).hexdigest()
    assert f"<PASSWORD>{digest}</PASSWORD>" in user
    sim.lab("lab.flush")
    with sqlite3.connect(sim.db) as db:
        dump = "\n".join(db.iterdump())
    assert oned.PASSWORD not in dump and digest in dump


def test_lab_methods_are_absent_without_lab_control(tmp_path):
    s = oned.start(tmp_path, "3.2.1", lab_control=False)
    try:
        with pytest.raises(xmlrpc.client.Fault) as info:
            s.rpc().lab.fault.list()
        assert info.value.faultCode == -506
    finally:
        s.stop()


def test_vmpool_info_filters_by_range_and_state(sim):
    everything = sim.call("one.vmpool.info", -2, -1, -1, -2)
    assert everything.count("<VM>") >= 2
    only_first = sim.call("one.vmpool.info", -2, 0, 0, -1)
    assert only_first.count("<VM>") == 1 and "<ID>0</ID>" in only_first
    pending = sim.call("one.vmpool.info", -2, -1, -1, 1)
    assert "<STATE>3</STATE>" not in pending


def test_a_template_instantiates_into_a_named_vm(sim):
    tid = sim.call("one.template.allocate", f"NAME=t-{sim.version}\nCPU=1\nMEMORY=99999999")
    vmid = sim.call("one.template.instantiate", tid, "from-template")
    doc = sim.call("one.vm.info", vmid)
    assert "<NAME>from-template</NAME>" in doc
    assert "<MEMORY><![CDATA[99999999]]></MEMORY>" in doc


def test_acl_list_holds_the_default_rules(sim):
    acl = sim.call("one.acl.info")
    assert acl.startswith("<ACL_POOL><ACL><ID>0</ID>") and acl.count("<ACL>") >= 2


def test_datastore_and_cluster_updates_exist_where_the_version_has_them(sim):
    if sim.version == "3.2.1":
        assert fault_of(sim, "one.datastore.update", 1, "TM_MAD=ssh").faultCode == -506
        return
    assert raw(sim, "one.datastore.update", 1, 'DS_MAD="fs"\nTM_MAD="ssh"') == [True, 1, 0]
    assert "<TM_MAD>ssh</TM_MAD>" in sim.call("one.datastore.info", 1)
    sim.call("one.datastore.update", 1, 'DS_MAD="fs"\nTM_MAD="shared"')
    if sim.version == "3.4.1":
        assert fault_of(sim, "one.cluster.update", 100, "A=1").faultCode == -506
