"""The simulator's template syntax and its XML objects, without a server."""

from __future__ import annotations

import pytest

from upgrader.lab.oned import template_attrs as tpl
from upgrader.lab.oned.objects import History, Host, Vm


def test_templates_parse_simple_quoted_and_vector_attributes():
    attrs = tpl.parse(
        'NAME = "web 01"\nCPU=0.5 # half a core\nDISK = [ IMAGE_ID = 3, '
        'target = "hda" ]\nPATH=/srv/a.img'
    )
    assert attrs == [
        ("NAME", "web 01"),
        ("CPU", "0.5"),
        ("DISK", [("IMAGE_ID", "3"), ("TARGET", "hda")]),
        ("PATH", "/srv/a.img"),
    ]


@pytest.mark.parametrize("text", ["NAME", "NAME =", "= x", "DISK = [ A = 1", "A = [ = ]"])
def test_broken_templates_are_syntax_errors(text):
    with pytest.raises(tpl.TemplateSyntaxError):
        tpl.parse(text)


def test_template_xml_is_sorted_and_cdata_wrapped_like_oned():
    xml = tpl.to_xml([("NAME", "a]]>b"), ("CPU", "1"), ("DISK", [("TYPE", "fs"), ("SIZE", "1")])])
    assert xml == (
        "<TEMPLATE><CPU><![CDATA[1]]></CPU><DISK><SIZE><![CDATA[1]]></SIZE>"
        "<TYPE><![CDATA[fs]]></TYPE></DISK>"
        "<NAME><![CDATA[a]]]]><![CDATA[>b]]></NAME></TEMPLATE>"
    )


def test_elements_follow_the_version_and_escape_names():
    host = Host(oid=1, name="n<1>", tm_mad="tm_shared")
    assert "<TM_MAD>tm_shared</TM_MAD>" in host.to_xml("3.2")
    assert "<TM_MAD>" not in host.to_xml("3.4")
    assert "<CLUSTER_ID>-1</CLUSTER_ID><CLUSTER></CLUSTER><HOST_SHARE>" in host.to_xml("3.4")
    assert "<NAME>n&lt;1&gt;</NAME>" in host.to_xml("3.6")


def test_bodies_are_read_by_element_name_even_when_migrators_appended_elements():
    body = (
        "<HOST><ID>4</ID><NAME>n4</NAME><STATE>2</STATE><IM_MAD>im_kvm</IM_MAD>"
        "<VM_MAD>vmm_kvm</VM_MAD><VN_MAD>dummy</VN_MAD><LAST_MON_TIME>7</LAST_MON_TIME>"
        "<HOST_SHARE><RUNNING_VMS>2</RUNNING_VMS></HOST_SHARE><TEMPLATE/>"
        "<CLUSTER_ID>-1</CLUSTER_ID><CLUSTER/></HOST>"
    )
    host = Host.from_xml(body)
    assert (host.oid, host.name, host.state, host.cluster_id) == (4, "n4", 2, -1)
    assert host.share["RUNNING_VMS"] == 2
    assert host.to_xml("3.4").index("<CLUSTER_ID>") < host.to_xml("3.4").index("<HOST_SHARE>")


def test_pool_bodies_carry_the_last_history_record_and_info_all_of_them():
    vm = Vm(
        oid=7,
        name="web",
        history=[History(oid=7, seq=0, hostname="a"), History(oid=7, seq=1, hostname="b")],
    )
    assert vm.to_xml("3.2").count("<HISTORY>") == 1
    assert vm.to_xml("3.2", full=True).count("<HISTORY>") == 2
    assert "<HOSTNAME>b</HOSTNAME>" in vm.to_xml("3.2")
