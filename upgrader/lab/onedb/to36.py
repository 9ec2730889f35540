"""``3.4.1_to_3.5.80.rb`` and ``3.5.80_to_3.6.0.rb``: quotas, accounting, system datastore.

Both as shipped in release-3.6.0. New elements are appended at the end of the stored
bodies, exactly where REXML's ``add_element`` puts them; oned rewrites an object in
canonical order only the next time it saves it. Neither step refuses running VMs.
"""

from __future__ import annotations

from upgrader.lab.oned.store import TABLES
from upgrader.lab.onedb import xmlbody as xb
from upgrader.lab.onedb.base import Context, ruby_to_i

QUOTAS = ("DATASTORE_QUOTA", "NETWORK_QUOTA", "VM_QUOTA", "IMAGE_QUOTA")
DONE = 6


# ------------------------------------------------------------ 3.4.1 -> 3.5.80
def _oneadmin_to_group_0(ctx: Context) -> None:
    """Oneadmin can't be outside the oneadmin group any more (feature #1288)."""
    rows = ctx.rows("SELECT gid, body FROM user_pool WHERE oid=0")
    if not rows or int(rows[0]["gid"] or 0) == 0:
        return
    old_gid = int(rows[0]["gid"])
    ctx.say("    > Oneadmin user will be moved to the oneadmin group")
    body = xb.set_text(xb.set_text(str(rows[0]["body"]), "GID", "0"), "GNAME", "oneadmin")
    ctx.conn.execute("UPDATE user_pool SET body=?, gid=0 WHERE oid=0", (body,))

    ctx.rewrite(
        "group_pool",
        lambda g: xb.edit(g, "USERS", lambda u: xb.remove_first(u, "ID", "0")),
        "oid=?",
        (old_gid,),
    )
    ctx.rewrite(
        "group_pool",
        lambda g: xb.edit(g, "USERS", lambda u: xb.append(u, xb.element("ID", "0"))),
        "oid=0",
    )


def _vm_snapshot(vm_body: str) -> str:
    """The VM as embedded in a 3.6 history record: no history, monitoring zeroed."""
    body = xb.edit(vm_body, "HISTORY_RECORDS", xb.empty)
    for tag in ("MEMORY", "CPU", "NET_TX", "NET_RX"):
        body = xb.set_text(body, tag, "0")
    return body


def _recreate_history(ctx: Context) -> None:
    ctx.conn.execute("ALTER TABLE history RENAME TO old_history")
    ctx.conn.execute(f"CREATE TABLE history ({TABLES['3.6']['history']})")
    vm_bodies = {
        int(oid): str(body)
        for oid, body in ctx.conn.execute("SELECT oid, body FROM vm_pool").fetchall()
    }
    for vid, seq, body in ctx.conn.execute(
        "SELECT vid, seq, body FROM old_history ORDER BY vid, seq"
    ).fetchall():

        def add(record: str, vid: int = int(vid)) -> str:
            record = xb.append(record, xb.element("OID", str(vid)))
            if vid in vm_bodies:
                record = xb.append(
                    record, Context.edit("vm_pool", vid, vm_bodies[vid], _vm_snapshot)
                )
            return record

        new = Context.edit("history", f"{vid}/{seq}", str(body), add)
        stime = ruby_to_i(xb.text(new, "STIME"))
        etime = ruby_to_i(xb.text(new, "ETIME"))
        ctx.conn.execute(
            "INSERT INTO history (vid, seq, body, stime, etime) VALUES (?, ?, ?, ?, ?)",
            (vid, seq, new, stime, etime),
        )
    ctx.conn.execute("DROP TABLE old_history")


def _quotas(ctx: Context, column: str, oid: int) -> list[str]:
    """DATASTORE/NETWORK/VM/IMAGE_QUOTA with limits 0 and usage from VMs and images."""
    cpu = memory = vms = 0
    vnets: dict[str, int] = {}
    images: dict[str, int] = {}
    for (body,) in ctx.conn.execute(
        f"SELECT body FROM vm_pool WHERE {column}=? AND state!={DONE}", (oid,)
    ).fetchall():
        cpu += sum(ruby_to_i(v) for v in xb.texts(body, "TEMPLATE/CPU"))
        memory += sum(ruby_to_i(v) for v in xb.texts(body, "TEMPLATE/MEMORY"))
        vms += 1
        for net in xb.texts(body, "TEMPLATE/NIC/NETWORK_ID"):
            vnets[net] = vnets.get(net, 0) + 1
        for img in xb.texts(body, "TEMPLATE/DISK/IMAGE_ID"):
            images[img] = images.get(img, 0) + 1
    stores: dict[str, list[int]] = {}
    for (body,) in ctx.conn.execute(
        f"SELECT body FROM image_pool WHERE {column}=?", (oid,)
    ).fetchall():
        for ds in xb.texts(body, "DATASTORE_ID"):
            usage = stores.setdefault(ds, [0, 0])
            usage[0] += 1
            usage[1] += sum(ruby_to_i(s) for s in xb.texts(body, "SIZE"))

    def el(tag: str, value: object) -> str:
        return xb.element(tag, str(value))

    def group(tag: str, items: list[str]) -> str:
        return f"<{tag}>{''.join(items)}</{tag}>" if items else xb.element(tag)

    return [
        group(
            "DATASTORE_QUOTA",
            [
                "<DATASTORE>"
                + el("ID", ds)
                + el("IMAGES", 0)
                + el("IMAGES_USED", n)
                + el("SIZE", 0)
                + el("SIZE_USED", size)
                + "</DATASTORE>"
                for ds, (n, size) in stores.items()
            ],
        ),
        group(
            "NETWORK_QUOTA",
            [
                "<NETWORK>" + el("ID", net) + el("LEASES", 0) + el("LEASES_USED", n) + "</NETWORK>"
                for net, n in vnets.items()
            ],
        ),
        "<VM_QUOTA><VM>"
        + el("CPU", 0)
        + el("CPU_USED", cpu)
        + el("MEMORY", 0)
        + el("MEMORY_USED", memory)
        + el("VMS", 0)
        + el("VMS_USED", vms)
        + "</VM></VM_QUOTA>",
        group(
            "IMAGE_QUOTA",
            [
                "<IMAGE>" + el("ID", img) + el("RVMS", 0) + el("RVMS_USED", n) + "</IMAGE>"
                for img, n in images.items()
            ],
        ),
    ]


def _add_quotas(ctx: Context, table: str, column: str) -> None:
    for (oid,) in ctx.conn.execute(f"SELECT oid FROM {table} ORDER BY oid").fetchall():
        if oid == 0:  # oneadmin and its group have no quotas
            elements = [xb.element(tag) for tag in QUOTAS]
        else:
            elements = _quotas(ctx, column, int(oid))
        ctx.rewrite(table, lambda body, e=elements: xb.append(body, *e), "oid=?", (oid,))


def up_3_5_80(ctx: Context) -> bool:
    """Migrate a 3.4.1 database to 3.5.80."""
    _oneadmin_to_group_0(ctx)
    ctx.rewrite("datastore_pool", lambda b: xb.append(b, xb.element("DISK_TYPE", "0")))
    ctx.rewrite(
        "image_pool",
        lambda b: xb.append(
            b,
            xb.element("DISK_TYPE", "0"),
            xb.element("CLONING_ID", "-1"),
            xb.element("CLONING_OPS", "0"),
        ),
    )
    ctx.rewrite("vm_pool", lambda b: xb.append(b, xb.element("RESCHED", "0")))
    _recreate_history(ctx)
    _add_quotas(ctx, "user_pool", "uid")
    _add_quotas(ctx, "group_pool", "gid")
    for table in ("document_pool", "host_monitoring", "vm_monitoring"):
        ctx.conn.execute(f"CREATE TABLE {table} ({TABLES['3.6'][table]})")
    return True


# ------------------------------------------------------------- 3.5.80 -> 3.6.0
def up_3_6_0(ctx: Context) -> bool:
    """Migrate a 3.5.80 database to 3.6.0."""
    ctx.rewrite("cluster_pool", lambda b: xb.append(b, xb.element("TEMPLATE")))
    system = ctx.rows("SELECT body FROM datastore_pool WHERE oid=0")
    system_tm = ""
    if system:
        system_tm = Context.edit(
            "datastore_pool", 0, str(system[0]["body"]), lambda b: xb.text(b, "TM_MAD") or ""
        )
    ctx.rewrite("datastore_pool", lambda b: xb.append(b, xb.element("SYSTEM", "1")), "oid=0")
    ctx.rewrite("datastore_pool", lambda b: xb.append(b, xb.element("SYSTEM", "0")), "oid>0")

    def history(record: str) -> str:
        return xb.append(record, xb.element("TMMAD", system_tm), xb.element("DS_ID", "0"))

    ctx.rewrite(
        "vm_pool",
        lambda b: xb.edit(
            b, "HISTORY_RECORDS", lambda records: xb.edit(records, "HISTORY", history)
        ),
    )
    for vid, seq, body in ctx.conn.execute("SELECT vid, seq, body FROM history").fetchall():
        new = Context.edit("history", f"{vid}/{seq}", str(body), history)
        ctx.conn.execute("UPDATE history SET body=? WHERE vid=? AND seq=?", (new, vid, seq))
    return True
