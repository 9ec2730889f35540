"""The lab's Pacemaker CIB: one file per cloud, read by the real tools through CIB_file.

Nodes online, a STONITH resource with a real fence agent from fence-agents, the front-end
group (the datastore's Filesystem resource and oned as ``lsb:opennebula``) and a clone of
the site's libvirtd watcher (``ocf:lab:libvirtd``). The status section records the
resources started where the lab started them, so ``crm_mon`` shows the cluster as it runs.
(crm_simulate cannot write injected operations on this kernel setup, hence the hand-made
status section.) The feature set is Debian 12's Pacemaker 2.1.5 one: a CIB claiming a newer
set is read fine but every write (crm_attribute, cibadmin --modify) is refused.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

_OCF_LIBVIRTD = """#!/bin/sh
# OCF resource agent watching libvirtd (the site wrote one after libvirtd segfaulted), through
# its init script /etc/init.d/@SERVICE@.
: ${OCF_ROOT:=/usr/lib/ocf}
PIDFILE=/var/run/libvirtd.pid
meta_data() {
cat <<END
<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="libvirtd" version="1.0">
<version>1.0</version>
<longdesc lang="en">Starts, stops and monitors libvirtd through /etc/init.d/@SERVICE@.</longdesc>
<shortdesc lang="en">libvirtd watcher</shortdesc>
<parameters/>
<actions>
<action name="start" timeout="30s"/>
<action name="stop" timeout="30s"/>
<action name="monitor" timeout="20s" interval="10s"/>
<action name="meta-data" timeout="5s"/>
<action name="validate-all" timeout="5s"/>
</actions>
</resource-agent>
END
}
case "$1" in
  meta-data) meta_data; exit 0 ;;
  start) /etc/init.d/@SERVICE@ start; exit $? ;;
  stop) /etc/init.d/@SERVICE@ stop; exit 0 ;;
  monitor|status) /etc/init.d/@SERVICE@ status >/dev/null 2>&1 && exit 0; exit 7 ;;
  validate-all) exit 0 ;;
  *) exit 3 ;;
esac
"""


def ocf_libvirtd(service: str) -> str:
    """The agent ``ocf:lab:libvirtd`` for a host whose libvirtd init script is ``service``
    (``libvirt-bin`` on a 2012 Debian host, ``libvirtd`` today)."""
    return _OCF_LIBVIRTD.replace("@SERVICE@", service)


def _nv(prefix: str, items: dict[str, str]) -> str:
    return "".join(
        f'<nvpair id="{prefix}-{k}" name="{k}" value={quoteattr(v)}/>' for k, v in items.items()
    )


def _op(rid: str, cls: str, typ: str, node: str, call: int, provider: str | None = None) -> str:
    prov = f' provider="{provider}"' if provider else ""
    key = f"{call}:1:0:00000000-0000-0000-0000-000000000000"
    return (
        f'<lrm_resource id="{rid}" class="{cls}" type="{typ}"{prov}>'
        f'<lrm_rsc_op id="{rid}_last_0" operation_key="{rid}_start_0" operation="start" '
        f'crm-debug-origin="upgrader-lab" crm_feature_set="3.16.1" transition-key="{key}" '
        f'transition-magic="0:0;{key}" on_node="{node}" call-id="{call}" rc-code="0" '
        f'op-status="0" interval="0" last-rc-change="1700000000" exec-time="10" '
        f'queue-time="0"/></lrm_resource>'
    )


def build_cib(
    nodes: list[str], frontend: str, fence_ip: str, datastore_device: str, datastore_fstype: str
) -> str:
    """A CIB for ``nodes`` with the front end running on ``frontend``."""
    stonith_node = next((n for n in nodes if n != frontend), frontend)
    node_xml = "".join(f'<node id="{i}" uname="{n}"/>' for i, n in enumerate(nodes, 1))
    fence = _nv(
        "fence",
        {
            "ip": fence_ip,
            "username": "admin",
            "password": "lab-ipmi-pw",
            "lanplus": "1",
            "pcmk_host_list": " ".join(nodes),
        },
    )
    fs = _nv(
        "fs",
        {
            "device": datastore_device,
            "directory": "/var/lib/one/datastores",
            "fstype": datastore_fstype,
        },
    )
    config = (
        '<configuration><crm_config><cluster_property_set id="cib-bootstrap-options">'
        + _nv(
            "opt",
            {
                "stonith-enabled": "true",
                "maintenance-mode": "false",
                "no-quorum-policy": "stop",
                "cluster-name": "one",
            },
        )
        + f"</cluster_property_set></crm_config><nodes>{node_xml}</nodes><resources>"
        f'<primitive id="fence-ipmi" class="stonith" type="fence_ipmilan">'
        f'<instance_attributes id="fence-ipmi-ia">{fence}</instance_attributes>'
        '<operations><op id="fence-ipmi-monitor" name="monitor" interval="60s"/></operations>'
        '</primitive><group id="one-frontend">'
        '<primitive id="one-datastore-fs" class="ocf" provider="heartbeat" type="Filesystem">'
        f'<instance_attributes id="one-datastore-fs-ia">{fs}</instance_attributes></primitive>'
        '<primitive id="oned" class="lsb" type="opennebula"/></group>'
        '<clone id="libvirtd-clone"><primitive id="libvirtd" class="ocf" provider="lab" '
        'type="libvirtd"/></clone></resources><constraints>'
        f'<rsc_location id="frontend-prefers-{frontend}" rsc="one-frontend" node="{frontend}" '
        'score="100"/></constraints></configuration>'
    )
    states = []
    call = 1
    for i, n in enumerate(nodes, 1):
        ops = []
        if n == stonith_node:
            ops.append(_op("fence-ipmi", "stonith", "fence_ipmilan", n, call))
            call += 1
        if n == frontend:
            ops.append(_op("one-datastore-fs", "ocf", "Filesystem", n, call, "heartbeat"))
            ops.append(_op("oned", "lsb", "opennebula", n, call + 1))
            call += 2
        ops.append(_op("libvirtd", "ocf", "libvirtd", n, call, "lab"))
        call += 1
        states.append(
            f'<node_state id="{i}" uname="{n}" in_ccm="true" crmd="online" '
            f'join="member" expected="member"><lrm id="{i}"><lrm_resources>'
            + "".join(ops)
            + "</lrm_resources></lrm></node_state>"
        )
    return (
        '<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="1" '
        'num_updates="0" admin_epoch="0" have-quorum="1" dc-uuid="1">'
        + config
        + "<status>"
        + "".join(states)
        + "</status></cib>\n"
    )
