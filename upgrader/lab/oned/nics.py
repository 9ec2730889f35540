"""A VM's NICs and its networks' leases, per version.

``lease_all`` is ``VirtualMachine::get_network_leases`` (at ``one.vm.allocate`` and
``one.template.instantiate``, before any disk is bound): each NIC naming a network gets
the address it asks for with ``IP=`` or the next free one, and oned's own NIC attributes
(NETWORK, NETWORK_ID, BRIDGE, MAC, IP, VLAN, ...) replace whatever the template said.
``release_all`` is ``VirtualMachine::release_network_leases`` (a failed allocation, DONE):
oned 3.2 releases the IP of every NIC with a NETWORK_ID, even a lease another VM holds
when the NIC asked for a taken IP; 3.4 and 3.6 release only the leases the VM owns.
"""

from __future__ import annotations

import re

from upgrader.lab.oned import leases
from upgrader.lab.oned import template_attrs as tpl
from upgrader.lab.oned.cloud import INTERNAL, Cloud, OneFailure
from upgrader.lab.oned.objects import User, VNet


def lease_all(c: Cloud, user: User, vid: int, nics: list[tpl.Vector]) -> None:
    """Lease every NIC of VM ``vid`` in place; raise oned's failure at the first that fails."""
    for nic in nics:
        net = _network(c, user, nic)
        if net is None:
            continue  # no NETWORK nor NETWORK_ID: the NIC is used as written
        got = leases.take(net, vid, tpl.vget(nic, "IP") or None)
        if got is None:
            raise _failure(c, "Cannot get IP/MAC lease from virtual network.")
        ip, mac = got
        for key, value in (
            ("NETWORK", net.name),
            ("NETWORK_ID", str(net.oid)),
            ("BRIDGE", net.bridge),
            ("MAC", mac),
            ("IP", ip),
            ("VLAN", "YES" if net.vlan == 1 else "NO"),
            ("PHYDEV", net.phydev),
            ("VLAN_ID", net.vlan_id),
        ):
            if value:
                tpl.vset(nic, key, value)
        if c.version.has_clusters and net.cluster_id != -1:
            tpl.vset(nic, "CLUSTER_ID", str(net.cluster_id))
        c.save(net)


def release_all(c: Cloud, vid: int, nics: list[tpl.Vector]) -> None:
    """Give back the leases named by the NICs of VM ``vid`` (see the module docstring)."""
    for nic in nics:
        nid, ip = tpl.vget(nic, "NETWORK_ID") or "", tpl.vget(nic, "IP") or ""
        if not nid or not ip:
            continue
        net = c.pool(VNet).get(_atoi(nid))
        if net is None:
            continue
        if c.series == "3.2" or leases.owner(net, ip) == vid:
            leases.release(net, ip)
            c.save(net)


def _failure(c: Cloud, why: str) -> OneFailure:
    """The allocation error: 3.2 says one thing for every NIC failure, 3.4+ says which."""
    if c.series == "3.2":
        why = "Could not get virtual network for VM."
    return OneFailure(INTERNAL, f"Error allocating a new virtual machine. {why}")


def _network(c: Cloud, user: User, nic: tpl.Vector) -> VNet | None:
    """``VirtualNetworkPool::get_nic_by_name`` / ``get_nic_by_id``: NETWORK is looked up
    among the networks of NETWORK_UID, NETWORK_UNAME's user or the VM's owner."""
    name = tpl.vget(nic, "NETWORK") or ""
    if name:
        uid_s, uname = tpl.vget(nic, "NETWORK_UID") or "", tpl.vget(nic, "NETWORK_UNAME") or ""
        if uid_s:
            uid = _int(uid_s)
            if uid is None:
                raise _failure(c, "Cannot get user in NETWORK_UID")
        elif uname:
            owner = c.find(User, uname)
            if owner is None:
                raise _failure(c, "User set in NETWORK_UNAME does not exist")
            uid = owner.oid
        else:
            uid = user.oid
        for net in c.pool(VNet).values():
            if net.name == name and net.uid == uid:
                return net
        raise _failure(c, f"Virtual network {name} does not exist for user {uid}")
    id_s = tpl.vget(nic, "NETWORK_ID") or ""
    if not id_s:
        return None
    number = _int(id_s)
    net = c.pool(VNet).get(number) if number is not None else None
    if net is None:
        raise _failure(c, f"Virtual network with ID: {id_s} does not exist")
    return net


def _int(text: str) -> int | None:
    """What ``istringstream >> int`` reads, or None when it fails."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else None


def _atoi(text: str) -> int:
    """C's ``atoi``."""
    return _int(text) or 0
