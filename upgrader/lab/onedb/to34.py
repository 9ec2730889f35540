"""``3.3.0_to_3.3.80.rb``: datastores and clusters appear (the 3.2 -> 3.4 step).

What ``src/onedb/3.3.0_to_3.3.80.rb`` (release-3.4.1 / 3.6.0) does, in the same order:
refuse active VMs; create ``cluster_pool`` and ``datastore_pool``; insert datastore 0
``system``; ``pool_control`` last oid 99 for both; hosts lose ``TM_MAD`` and get
``CLUSTER_ID``/``CLUSTER`` appended at the end; networks get the same; images get
``DATASTORE_ID``/``DATASTORE`` appended and their md5-named SOURCE moved under
``<var>/datastores/1`` (plus an ``ln -s``); datastore 1 ``default`` holds every image.
VM bodies and the ``history`` table are left alone.

One deliberate difference: the Ruby code prints the STAT of an ACTIVE VM by indexing
its LCM state into a list that lacks LCM_INIT, so a RUNNING VM shows as ``migr``. The
lab prints the name ``onevm list`` would show (``runn``).
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from upgrader.lab.oned.store import TABLES
from upgrader.lab.onedb import xmlbody as xb
from upgrader.lab.onedb.base import Context

SHORT_VM_STATES = ("init", "pend", "hold", "actv", "stop", "susp", "done", "fail")
SHORT_LCM_STATES = (
    "actv",
    "prol",
    "boot",
    "runn",
    "migr",
    "save",
    "save",
    "save",
    "migr",
    "prol",
    "epil",
    "epil",
    "shut",
    "shut",
    "fail",
    "clea",
    "unkn",
)
PENDING, ACTIVE, DONE = 1, 3, 6
_MD5_NAME = re.compile(r"[0-9A-Fa-f]{32}")


def short_state(state: int, lcm_state: int) -> str:
    """The STAT column of ``onevm list`` for a VM."""
    if state == ACTIVE:
        return SHORT_LCM_STATES[lcm_state] if 0 <= lcm_state < len(SHORT_LCM_STATES) else "actv"
    return SHORT_VM_STATES[state] if 0 <= state < len(SHORT_VM_STATES) else str(state)


def _vm_state(row_state: object, body: str, tag: str) -> int:
    if row_state is not None:
        return int(str(row_state))
    return int(xb.text(body, tag) or -1)


def refuse_active_vms(ctx: Context) -> bool:
    """Print the VMs that are neither PENDING nor DONE; True if there were any."""
    active = []
    for row in ctx.rows("SELECT oid, name, body, state, lcm_state FROM vm_pool ORDER BY oid"):
        body = str(row["body"] or "<VM/>")
        state = _vm_state(row["state"], body, "STATE")
        if state in (PENDING, DONE):
            continue
        lcm = _vm_state(row["lcm_state"], body, "LCM_STATE")
        active.append((row["oid"], short_state(state, lcm), row["name"]))
    if not active:
        return False
    ctx.say("You can't have active VMs. Please shutdown or delete the following VMs:")
    ctx.say()
    ctx.say("    ID STAT NAME")
    for oid, stat, name in active:
        ctx.say(f"{str(oid)[:6]:>6} {stat} {name}")
    ctx.say()
    return True


def _datastore(
    oid: int,
    name: str,
    names: tuple[str, str],
    *,
    other_u: int,
    ds_mad: str,
    base_path: str,
    images: str,
) -> str:
    """The body the Ruby migrator writes, whitespace between elements included."""
    uname, gname = (escape(n) for n in names)
    return (
        "<DATASTORE>"
        f"  <ID>{oid}</ID>  <UID>0</UID>  <GID>0</GID>"
        f"  <UNAME>{uname}</UNAME>  <GNAME>{gname}</GNAME>  <NAME>{name}</NAME>"
        "  <PERMISSIONS>"
        "    <OWNER_U>1</OWNER_U>    <OWNER_M>1</OWNER_M>    <OWNER_A>0</OWNER_A>"
        "    <GROUP_U>1</GROUP_U>    <GROUP_M>0</GROUP_M>    <GROUP_A>0</GROUP_A>"
        f"    <OTHER_U>{other_u}</OTHER_U>    <OTHER_M>0</OTHER_M>    <OTHER_A>0</OTHER_A>"
        "  </PERMISSIONS>"
        f"  <DS_MAD>{ds_mad}</DS_MAD>  <TM_MAD>shared</TM_MAD>"
        f"  <BASE_PATH>{escape(base_path)}</BASE_PATH>"
        "  <CLUSTER_ID>-1</CLUSTER_ID>  <CLUSTER/>"
        f"{images}"
        "  <TEMPLATE>"
        f"    <DS_MAD><![CDATA[{ds_mad}]]></DS_MAD>    <TM_MAD><![CDATA[shared]]></TM_MAD>"
        "  </TEMPLATE>"
        "</DATASTORE>"
    )


def _insert_datastore(ctx: Context, oid: int, name: str, body: str, other_u: int) -> None:
    ctx.conn.execute(
        "INSERT INTO datastore_pool (oid, name, body, uid, gid, owner_u, group_u, other_u) "
        "VALUES (?, ?, ?, 0, 0, 1, 1, ?)",
        (oid, name, body, other_u),
    )


def _oneadmin_names(ctx: Context) -> tuple[str, str] | None:
    user = ctx.rows("SELECT name FROM user_pool WHERE oid=0")
    if not user:
        ctx.say(
            "Error trying to read oneadmin's user name ('SELECT name FROM user_pool WHERE oid=0')"
        )
        return None
    group = ctx.rows("SELECT name FROM group_pool WHERE oid=0")
    if not group:
        ctx.say(
            "Error trying to read oneadmin's group name ('SELECT name FROM group_pool WHERE oid=0')"
        )
        return None
    return str(user[0]["name"]), str(group[0]["name"])


def _in_no_cluster(body: str) -> str:
    return xb.append(body, xb.element("CLUSTER_ID", "-1"), xb.element("CLUSTER"))


def up(ctx: Context) -> bool:
    """Migrate a 3.3.0 database to 3.3.80."""
    if refuse_active_vms(ctx):
        return False
    names = _oneadmin_names(ctx)
    if names is None:
        return False
    var = ctx.var_location
    for table in ("cluster_pool", "datastore_pool"):
        ctx.conn.execute(f"CREATE TABLE {table} ({TABLES['3.4'][table]})")
    _insert_datastore(
        ctx,
        0,
        "system",
        _datastore(
            0,
            "system",
            names,
            other_u=0,
            ds_mad="-",
            base_path=f"{var}/datastores/0",
            images="  <IMAGES/>",
        ),
        0,
    )
    for table in ("cluster_pool", "datastore_pool"):
        ctx.conn.execute(
            "INSERT OR REPLACE INTO pool_control (tablename, last_oid) VALUES (?, 99)", (table,)
        )

    ctx.rewrite("host_pool", lambda body: _in_no_cluster(xb.remove(body, "TM_MAD")))
    ctx.rewrite("network_pool", _in_no_cluster)

    image_ids: list[int] = []

    def image(body: str) -> str:
        body = xb.append(body, xb.element("DATASTORE_ID", "1"), xb.element("DATASTORE", "default"))
        source = xb.text(body, "SOURCE")
        if source:
            digest = source.split("/")[-1]
            if _MD5_NAME.fullmatch(digest):
                new_source = f"{var}/datastores/1/{digest}"
                body = xb.set_text(body, "SOURCE", new_source)
                ctx.link(source, new_source)
        return body

    for (oid,) in ctx.conn.execute("SELECT oid FROM image_pool ORDER BY oid").fetchall():
        image_ids.append(int(oid))
    ctx.rewrite("image_pool", image)

    images = "<IMAGES>" + "".join(f"<ID>{i}</ID>" for i in image_ids) + "</IMAGES>"
    _insert_datastore(
        ctx,
        1,
        "default",
        _datastore(
            1,
            "default",
            names,
            other_u=1,
            ds_mad="fs",
            base_path=f"{var}/datastores/1",
            images=images,
        ),
        1,
    )
    return True
