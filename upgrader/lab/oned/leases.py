"""Virtual network leases as oned 3.x keeps them (``src/vnm/*Leases.cc``, same in 3.2.1-3.6.0).

A network's leases are ``(ip, mac, used, vid)`` tuples in ``VNet.leases``, sorted by address
like oned's ``map<unsigned int, Lease*>``. A RANGED network holds only the leases given out
(a released one is deleted); a FIXED network holds every lease its template defined, used or
free. Each lease is a row of the ``leases`` table (``oid, ip, body``), written on every
change and read back at start, so a restarted oned sees the same leases, used and free.

A NIC asking for ``IP=`` gets exactly that address or nothing: inside the range and free
(RANGED), one of the defined leases and free (FIXED). A NIC's ``MAC=`` is not honoured:
oned overwrites it with the lease's MAC. Without ``IP=`` the search for a free lease
starts where the last one ended (oned's in-memory ``current``, back at the first address
after a restart), so an address just released is not necessarily the next one given.
"""

from __future__ import annotations

import math
import re
from xml.etree import ElementTree as ET

from upgrader.lab.oned import template_attrs as tpl
from upgrader.lab.oned.objects import VNet

RANGED, FIXED = 0, 1
MAC_PREFIX = 0x0200  # oned.conf MAC_PREFIX = "02:00"
DEFAULT_SIZE = 254  # oned.conf NETWORK_SIZE
Lease = tuple[str, str, int, int]  # ip, mac, used, vid


class LeaseError(ValueError):
    """A network template oned refuses; the message is oned's."""


# ------------------------------------------------------------------ addresses
def ip_number(text: str) -> int | None:
    """``Lease::ip_to_number``: four decimal bytes, or None."""
    parts = text.strip().split(".")
    if len(parts) != 4 or not all(re.fullmatch(r"\d+", p.strip()) for p in parts):
        return None
    values = [int(p) for p in parts]
    if any(v > 255 for v in values):
        return None
    return (values[0] << 24) | (values[1] << 16) | (values[2] << 8) | values[3]


def ip_text(number: int) -> str:
    """``Lease::ip_to_string``."""
    return ".".join(str((number >> s) & 255) for s in (24, 16, 8, 0))


def mac_number(text: str) -> tuple[int, int] | None:
    """``Lease::mac_to_number``: (16-bit prefix, 32-bit suffix), or None."""
    parts = text.strip().split(":")
    if len(parts) != 6:
        return None
    try:
        values = [int(p, 16) for p in parts]
    except ValueError:
        return None
    prefix = ((values[0] << 8) + values[1]) & 0xFFFFFFFF
    suffix = 0
    for v in values[2:]:
        suffix = ((suffix << 8) + v) & 0xFFFFFFFF
    return prefix, suffix


def mac_text(prefix: int, suffix: int) -> str:
    """``Lease::mac_to_string``: lower-case hex pairs."""
    octets = [(prefix >> 8) & 255, prefix & 255] + [(suffix >> s) & 255 for s in (24, 16, 8, 0)]
    return ":".join(f"{o:02x}" for o in octets)


def erase(attrs: tpl.Attrs, name: str) -> str:
    """oned's ``erase_template_attribute``: the first simple value; every ``name`` goes."""
    value = tpl.get(attrs, name) or ""
    attrs[:] = [(k, v) for k, v in attrs if k != name]
    return value


# ------------------------------------------------------------------ allocation
def ranged(attrs: tpl.Attrs) -> tuple[str, str]:
    """``RangedLeases::process_template``: (IP_START, IP_END), consuming the template's
    IP_START, IP_END, NETWORK_ADDRESS, NETWORK_MASK and NETWORK_SIZE as oned does."""
    st_start, st_end = erase(attrs, "IP_START"), erase(attrs, "IP_END")
    start, end = _given_ip("IP_START", st_start), _given_ip("IP_END", st_end)
    addr = erase(attrs, "NETWORK_ADDRESS")
    if not addr:
        if start and end:
            _check_order(start, end)
            return ip_text(start), ip_text(end)
        raise LeaseError("No NETWORK_ADDRESS in template for Virtual Network.")
    if "/" in addr:
        addr, bits = addr.split("/", 1)
        network_bits = _leading_int(bits)
        if network_bits > 32:
            raise LeaseError(f"A CIDR prefix of {network_bits} bits is not valid.")
        host_bits = 32 - network_bits
    elif mask_text := erase(attrs, "NETWORK_MASK"):
        mask = ip_number(mask_text)
        if mask is None:
            raise LeaseError(f"NETWORK_MASK {mask_text} is not a valid network mask.")
        host_bits = 0
        while host_bits < 32 and not (mask >> host_bits) & 1:
            host_bits += 1
    else:
        size = erase(attrs, "NETWORK_SIZE")
        classes = {"C": 8, "B": 16, "A": 24}
        if size.upper() in classes:
            host_bits = classes[size.upper()]
        else:
            n = _leading_int(size) if size else DEFAULT_SIZE
            host_bits = math.ceil(math.log(n + 2) / math.log(2))
    erase(attrs, "NETWORK_SIZE")
    net_mask = (0xFFFFFFFF << host_bits) & 0xFFFFFFFF if host_bits < 32 else 0
    tpl.put(attrs, "NETWORK_MASK", ip_text(net_mask))
    net_addr = ip_number(addr)
    if net_addr is None:
        raise LeaseError(f"NETWORK_ADDRESS {addr} is not a valid IP.")
    if net_addr != net_addr & net_mask:
        raise LeaseError(
            f"NETWORK_ADDRESS {addr} is not a base address for the network mask "
            f"{ip_text(net_mask)}."
        )
    start = start or net_addr + 1
    end = end or net_addr + (1 << host_bits) - 2
    for what, given, number in (("IP_START", st_start, start), ("IP_END", st_end, end)):
        if number & net_mask != net_addr:
            raise LeaseError(f"{what} {given} is not part of the network {addr}/{32 - host_bits}.")
    _check_order(start, end)
    return ip_text(start), ip_text(end)


def _given_ip(what: str, text: str) -> int:
    """An IP_START/IP_END of the template as a number (0 when not given)."""
    if not text:
        return 0
    number = ip_number(text)
    if number is None:
        raise LeaseError(f"{what} {text} is not a valid IP.")
    return number


def _check_order(start: int, end: int) -> None:
    if end < start:
        raise LeaseError(
            f"IP_START {ip_text(start)} cannot be greater than the IP_END {ip_text(end)}."
        )


def _leading_int(text: str) -> int:
    """What ``istringstream >> unsigned`` reads (0 when nothing)."""
    m = re.match(r"\s*(\d+)", text)
    return int(m.group(1)) if m else 0


def fixed(attrs: tpl.Attrs) -> list[Lease]:
    """``FixedLeases``' constructor: every well-formed, new ``LEASES=[IP, MAC]`` (oned only
    logs the others), then LEASES leaves the template."""
    out: dict[int, Lease] = {}
    for vector in tpl.vectors(attrs, "LEASES"):
        number = ip_number(tpl.vget(vector, "IP") or "")
        if number is None or number in out:
            continue
        given = tpl.vget(vector, "MAC") or ""
        mac = mac_number(given) if given else (MAC_PREFIX, number)
        if mac is None:
            continue
        out[number] = (ip_text(number), mac_text(*mac), 0, -1)
    attrs[:] = [(k, v) for k, v in attrs if k != "LEASES"]
    return [out[n] for n in sorted(out)]


# ------------------------------------------------------------------ leasing
def _index(net: VNet) -> dict[int, int]:
    """Address -> position in ``net.leases``."""
    return {ip_number(le[0]) or 0: i for i, le in enumerate(net.leases)}


def _find(net: VNet, ip: str) -> int | None:
    """The position of the lease of ``ip`` in ``net.leases``, if it has one."""
    number = ip_number(ip)
    return None if number is None else _index(net).get(number)


def _put(net: VNet, lease: Lease) -> None:
    rest = [le for le in net.leases if le[0] != lease[0]]
    net.leases = sorted([*rest, lease], key=lambda le: ip_number(le[0]) or 0)
    net.total_leases = sum(1 for le in net.leases if le[2])


def take(net: VNet, vid: int, ip: str | None) -> tuple[str, str] | None:
    """``Leases::set`` (``ip`` given) or ``Leases::get``: the (ip, mac) now leased to
    ``vid``, or None when oned would fail."""
    if net.type == FIXED:
        return _take_fixed(net, vid, ip)
    if net.range is None:
        return None
    start, end = (ip_number(x) or 0 for x in net.range)
    used = {n for n, i in _index(net).items() if net.leases[i][2]}
    if ip is not None:
        number = ip_number(ip)
        if number is None or not start <= number <= end or number in used:
            return None
    else:
        size = end - start + 1
        offsets = (o % size for o in range(net.cursor, net.cursor + size))
        offset = next((o for o in offsets if start + o not in used), None)
        if offset is None:
            return None
        net.cursor, number = offset, start + offset
    lease = (ip_text(number), mac_text(MAC_PREFIX, number), 1, vid)
    _put(net, lease)
    return lease[0], lease[1]


def _take_fixed(net: VNet, vid: int, ip: str | None) -> tuple[str, str] | None:
    if ip is not None:
        at = _find(net, ip)
        if at is None or net.leases[at][2]:
            return None
    else:
        size = len(net.leases)
        at = next(
            (i % size for i in range(net.cursor, net.cursor + size) if not net.leases[i % size][2]),
            None,
        )
        if at is None:
            return None
        net.cursor = at + 1  # FixedLeases::get leaves its iterator past the lease it gave
    addr, mac, _, _ = net.leases[at]
    _put(net, (addr, mac, 1, vid))
    return addr, mac


def release(net: VNet, ip: str) -> None:
    """``Leases::release``: a RANGED lease is deleted, a FIXED one becomes free again."""
    at = _find(net, ip)
    if at is None:
        return
    if net.type == FIXED:
        _put(net, (net.leases[at][0], net.leases[at][1], 0, -1))
    else:
        del net.leases[at]
        net.total_leases = sum(1 for le in net.leases if le[2])


def owner(net: VNet, ip: str) -> int | None:
    """The VM id a lease is given to (``Leases::is_owner``), None if not leased."""
    at = _find(net, ip)
    return net.leases[at][3] if at is not None and net.leases[at][2] else None


# ------------------------------------------------------------------ database
def to_row(oid: int, lease: Lease) -> dict[str, object]:
    """A ``leases`` table row with ``Lease::to_xml_db``'s body."""
    number = ip_number(lease[0]) or 0
    prefix, suffix = mac_number(lease[1]) or (MAC_PREFIX, number)
    body = (
        f"<LEASE><IP>{number}</IP><MAC_PREFIX>{prefix}</MAC_PREFIX>"
        f"<MAC_SUFFIX>{suffix}</MAC_SUFFIX><USED>{int(bool(lease[2]))}</USED>"
        f"<VID>{lease[3]}</VID></LEASE>"
    )
    return {"oid": oid, "ip": number, "body": body}


def from_bodies(bodies: list[str]) -> list[Lease]:
    """``Leases::select``: the network's leases from their stored bodies, by address."""
    out: dict[int, Lease] = {}
    for body in bodies:
        elem = ET.fromstring(body)
        number = int(elem.findtext("IP") or 0)
        prefix = int(elem.findtext("MAC_PREFIX") or 0)
        suffix = int(elem.findtext("MAC_SUFFIX") or 0)
        used, vid = int(elem.findtext("USED") or 0), int(elem.findtext("VID") or 0)
        out[number] = (ip_text(number), mac_text(prefix, suffix), used, vid)
    return [out[n] for n in sorted(out)]
