"""The lab ``onedb`` against databases written by the oned simulator itself.

Every database here is made by running ``python -m upgrader.lab.oned`` for real and
driving it over XML-RPC; ``onedb`` runs as ``python -m upgrader.lab.onedb``.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.support.oned import wait_for as wait_until
from upgrader.lab.onedb import xmlbody as xb

ENV_KNOBS = ("ONEDB_LAB_PACKAGE", "ONEDB_LAB_ROOT", "ONE_LOCATION")
RUNNING, DONE = 3, 6


def onedb(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the lab onedb; the lab's environment knobs only when given."""
    base = {k: v for k, v in os.environ.items() if k not in ENV_KNOBS}
    return subprocess.run(
        [sys.executable, "-m", "upgrader.lab.onedb", *map(str, args)],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=120,
        check=False,
    )


def dump(db: Path) -> list[str]:
    """The whole content of a database, as SQL."""
    conn = sqlite3.connect(db)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of one query."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def body(db: Path, table: str, oid: int) -> str:
    """The stored body of one object."""
    return str(query(db, f"SELECT body FROM {table} WHERE oid=?", (oid,))[0][0])


def vm_states(oned: Any, vmid: int) -> tuple[int, int]:
    """(STATE, LCM_STATE) of a VM from ``one.vm.info``."""
    vm = ET.fromstring(oned.call("one.vm.info", vmid))
    return int(vm.findtext("STATE") or -1), int(vm.findtext("LCM_STATE") or -1)


def one_line(text: str) -> str:
    """The only line of ``text``."""
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
def db321(oned_factory: Any) -> Path:
    """A stopped 3.2.1 cloud: a disabled host, a network, images, PENDING VMs, user alice."""
    oned = oned_factory("3.2.1")
    hid = oned.call("one.host.allocate", "h1", "im_kvm", "vmm_kvm", "dummy", "tm_shared")
    oned.call("one.host.enable", hid, False)  # nothing gets deployed: VMs stay PENDING
    oned.call("one.vn.allocate", "NAME=net\nTYPE=FIXED\nBRIDGE=br0\nLEASES=[IP=10.0.0.1]")
    oned.call("one.image.allocate", 'NAME="img"\nPATH=/x')
    oned.call("one.user.allocate", "alice", "alice-pw", "core")
    alice = oned.session
    oned.session = "alice:alice-pw"
    iid = oned.call("one.image.allocate", 'NAME="alices"\nPATH=/y\nSIZE=2048')
    oned.call("one.vm.allocate", f"NAME=a\nCPU=0.5\nMEMORY=256\nDISK=[IMAGE_ID={iid}]")
    oned.session = alice
    oned.call("one.vm.allocate", "NAME=p\nCPU=1\nMEMORY=128\nDISK=[IMAGE_ID=0]")
    assert oned.stop() == 0
    assert not oned.lock.exists()
    return Path(oned.db)


# ------------------------------------------------------------------ body editing
def test_body_edits_keep_cdata_and_touch_direct_children_only() -> None:
    host = (
        "<HOST><ID>0</ID><TM_MAD>tm_shared</TM_MAD><TEMPLATE><TM_MAD><![CDATA[a<b]]></TM_MAD>"
        "</TEMPLATE></HOST>"
    )
    edited = xb.append(
        xb.remove(host, "TM_MAD"), xb.element("CLUSTER_ID", "-1"), xb.element("CLUSTER")
    )
    assert edited == (
        "<HOST><ID>0</ID><TEMPLATE><TM_MAD><![CDATA[a<b]]></TM_MAD></TEMPLATE>"
        "<CLUSTER_ID>-1</CLUSTER_ID><CLUSTER/></HOST>"
    )
    assert xb.texts(host, "TEMPLATE/TM_MAD") == ["a<b"]
    assert xb.text(host, "TM_MAD") == "tm_shared"
    with pytest.raises(xb.BodyError):
        xb.children("<HOST><ID>0</ID>")


# ------------------------------------------------------------------ command line
def test_usage_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    for args in (
        [],
        ["frobnicate", "-s", tmp_path / "one.db"],
        ["version", "extra", "-s", "x"],
        ["upgrade", "9.9.9", "-s", "x"],
        ["backup", "a", "b", "-s", "x"],
        ["version", "--bogus"],
    ):
        result = onedb(*args)
        assert result.returncode == 2, (args, result)
        assert one_line(result.stderr).startswith("upgrader.lab.onedb: error: ")
        assert result.stdout == ""
    result = onedb("version", "-s", "x", env={"ONEDB_LAB_PACKAGE": "9.0"})
    assert result.returncode == 2
    assert "ONEDB_LAB_PACKAGE" in one_line(result.stderr)


def test_connection_options(tmp_path: Path) -> None:
    result = onedb("version")
    assert result.returncode == 255
    assert result.stderr == "You need to specify the SQLite or MySQL connection options.\n"
    result = onedb("version", "-u", "oneadmin", "-d", "opennebula")
    assert result.returncode == 255
    assert "supports SQLite only" in one_line(result.stderr)
    result = onedb("version", "-s", tmp_path / "missing.db")
    assert result.returncode == 255
    assert result.stderr == f"File {tmp_path / 'missing.db'} doesn't exist\n"
    assert onedb("-h").returncode == 0


def test_version_and_history(db321: Path) -> None:
    result = onedb("version", "-s", db321)
    assert (result.returncode, result.stdout, result.stderr) == (0, "3.2.1\n", "")
    lines = onedb("version", "-v", "-s", db321).stdout.splitlines()
    assert lines[0] == "Version:   3.2.1"
    assert lines[1].startswith("Timestamp: ")
    assert lines[2] == "Comment:   Database created by OpenNebula 3.2.1 (lab simulator)"
    history = onedb("history", "-s", db321)
    assert history.returncode == 0
    assert history.stdout.splitlines()[0] == "Version:   3.2.1"


# ------------------------------------------------------------------ backup/restore
def test_backup_default_file_force_and_explicit_file(db321: Path) -> None:
    default = db321.parent / "one.db.bck"
    result = onedb("backup", "-s", db321)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"Sqlite database backup stored in {default}"
    assert dump(default) == dump(db321)

    query_change = "UPDATE host_pool SET name='renamed'"
    conn = sqlite3.connect(db321)
    conn.execute(query_change)
    conn.commit()
    conn.close()
    refused = onedb("backup", "-s", db321)
    assert refused.returncode == 255
    assert refused.stderr == f"File {default} exists, backup aborted. Use -f to overwrite.\n"
    assert dump(default) != dump(db321)
    assert onedb("backup", "-f", "-s", db321).returncode == 0
    assert dump(default) == dump(db321)

    other = db321.parent / "elsewhere.sql"
    assert onedb("backup", other, "-s", db321).returncode == 0
    assert dump(other) == dump(db321)


def test_restore_needs_force_no_lock_and_a_backup(db321: Path) -> None:
    before = dump(db321)
    assert onedb("backup", "-s", db321).returncode == 0
    conn = sqlite3.connect(db321)
    conn.execute("DELETE FROM vm_pool")
    conn.commit()
    conn.close()

    missing = onedb("restore", db321.parent / "nope.bck", "-s", db321)
    assert missing.returncode == 255
    assert "doesn't exist, backup restoration aborted." in one_line(missing.stderr)
    no_force = onedb("restore", "-s", db321)
    assert no_force.returncode == 255
    assert no_force.stderr == f"File {db321} exists, use -f to overwrite.\n"

    lock = db321.parent / ".lock"
    lock.write_text(f"{os.getpid()}\n")
    locked = onedb("restore", "-f", "-s", db321)
    assert locked.returncode == 255
    assert locked.stderr == f"First stop OpenNebula. Lock file found: {lock}\n"
    lock.unlink()

    done = onedb("restore", "-f", "-s", db321)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"Sqlite database backup restored in {db321}\n"
    assert dump(db321) == before


# ------------------------------------------------------------------------ upgrade
def test_existing_backup_is_refused_before_migrating(db321: Path) -> None:
    bck = db321.parent / "one.db.bck"
    bck.write_text("an older backup\n")
    refused = onedb("upgrade", "-s", db321)
    assert refused.returncode == 255
    assert refused.stderr == f"File {bck} exists, backup aborted. Use -f to overwrite.\n"
    assert bck.read_text() == "an older backup\n"
    assert onedb("version", "-s", db321).stdout == "3.2.1\n"

    forced = onedb("upgrade", "-f", "-s", db321, "3.4.1")
    assert forced.returncode == 0, forced.stderr
    assert onedb("version", "-s", db321).stdout == "3.4.1\n"
    assert onedb("version", "-s", bck).stdout == "3.2.1\n"

    chosen = db321.parent / "before-3.6.bck"
    result = onedb("upgrade", "-s", db321, "--backup", chosen)
    assert result.returncode == 0, result.stderr
    assert onedb("version", "-s", chosen).stdout == "3.4.1\n"


def test_upgrade_to_newest_runs_every_step_and_rewrites_bodies(db321: Path) -> None:
    result = onedb("upgrade", "-v", "-s", db321)
    assert result.returncode == 0, result.stderr
    steps = [
        line.rsplit("/", 1)[-1]
        for line in result.stdout.splitlines()
        if line.startswith("  > Running migrator /usr/lib/one/ruby/onedb/")
    ]
    assert steps == [
        "3.2.1_to_3.3.0.rb",
        "3.3.0_to_3.3.80.rb",
        "3.3.80_to_3.4.0.rb",
        "3.4.0_to_3.4.1.rb",
        "3.4.1_to_3.5.80.rb",
        "3.5.80_to_3.6.0.rb",
    ]
    assert result.stdout.splitlines()[-1] == (
        "Database migrated from 3.2.1 to 3.6.0 (OpenNebula 3.6.0) by onedb command."
    )
    assert query(db321, "SELECT version, comment FROM db_versioning ORDER BY oid")[-1] == (
        "3.6.0",
        "Database migrated from 3.2.1 to 3.6.0 (OpenNebula 3.6.0) by onedb command.",
    )

    tables = {r[0] for r in query(db321, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "cluster_pool",
        "datastore_pool",
        "document_pool",
        "host_monitoring",
        "vm_monitoring",
    } <= tables
    assert [r[1] for r in query(db321, "PRAGMA table_info(history)")] == [
        "vid",
        "seq",
        "body",
        "stime",
        "etime",
    ]
    assert dict(
        query(
            db321,
            "SELECT tablename, last_oid FROM pool_control WHERE tablename "
            "IN ('cluster_pool', 'datastore_pool')",
        )
    ) == {"cluster_pool": 99, "datastore_pool": 99}

    host = body(db321, "host_pool", 0)
    assert "<TM_MAD>" not in host
    assert host.endswith("</TEMPLATE><CLUSTER_ID>-1</CLUSTER_ID><CLUSTER/></HOST>")
    assert body(db321, "network_pool", 0).endswith("<CLUSTER_ID>-1</CLUSTER_ID><CLUSTER/></VNET>")
    image = body(db321, "image_pool", 0)
    assert image.endswith(
        "<DATASTORE_ID>1</DATASTORE_ID><DATASTORE>default</DATASTORE>"
        "<DISK_TYPE>0</DISK_TYPE><CLONING_ID>-1</CLONING_ID>"
        "<CLONING_OPS>0</CLONING_OPS></IMAGE>"
    )
    source = ET.fromstring(image).findtext("SOURCE") or ""
    assert source.startswith("/var/lib/one/datastores/1/") and len(source.split("/")[-1]) == 32
    system, default = (ET.fromstring(body(db321, "datastore_pool", i)) for i in (0, 1))
    assert (
        system.findtext("NAME"),
        system.findtext("DS_MAD"),
        system.findtext("TM_MAD"),
        system.findtext("SYSTEM"),
    ) == ("system", "-", "shared", "1")
    assert (
        default.findtext("NAME"),
        default.findtext("DS_MAD"),
        default.findtext("SYSTEM"),
        default.findtext("BASE_PATH"),
    ) == ("default", "fs", "0", "/var/lib/one/datastores/1")
    assert [e.text for e in default.iter("ID")][1:] == ["0", "1"]  # IMAGES
    assert default.findtext("PERMISSIONS/OTHER_U") == "1"
    assert system.findtext("PERMISSIONS/GROUP_U") == "1"
    assert body(db321, "vm_pool", 0).endswith("<RESCHED>0</RESCHED></VM>")

    alice = ET.fromstring(body(db321, "user_pool", 2))
    assert alice.findtext("VM_QUOTA/VM/MEMORY_USED") == "256"
    assert alice.findtext("VM_QUOTA/VM/CPU_USED") == "0"  # Ruby's "0.5".to_i
    assert alice.findtext("VM_QUOTA/VM/VMS_USED") == "1"
    assert alice.findtext("DATASTORE_QUOTA/DATASTORE/SIZE_USED") == "2048"
    assert alice.findtext("IMAGE_QUOTA/IMAGE/RVMS_USED") == "1"
    assert body(db321, "user_pool", 0).endswith(
        "<DATASTORE_QUOTA/><NETWORK_QUOTA/><VM_QUOTA/><IMAGE_QUOTA/></USER>"
    )

    bck = db321.parent / "one.db.bck"
    bck.unlink()
    again = onedb("upgrade", "-s", db321)
    assert (again.returncode, again.stdout) == (0, "Database already uses version 3.6.0\n")
    assert not bck.exists()


def test_package_env_chooses_the_onedb_release(db321: Path) -> None:
    result = onedb("upgrade", "-s", db321, env={"ONEDB_LAB_PACKAGE": "3.4.1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(
        "Database migrated from 3.2.1 to 3.4.1 (OpenNebula 3.4.1) by onedb command.\n"
    )
    assert onedb("upgrade", "-f", "-s", db321, env={"ONEDB_LAB_PACKAGE": "3.4.1"}).stdout == (
        "Database already uses version 3.4.1\n"
    )


def test_image_links_are_made_under_the_lab_root(db321: Path, tmp_path: Path) -> None:
    root = tmp_path / "frontend"
    (root / "opt/one/var/datastores/1").mkdir(parents=True)
    old = str(ET.fromstring(body(db321, "image_pool", 0)).findtext("SOURCE"))
    env = {"ONEDB_LAB_ROOT": str(root), "ONE_LOCATION": "/opt/one"}
    result = onedb("upgrade", "-s", db321, "3.4.1", env=env)
    assert result.returncode == 0, result.stderr
    new = str(ET.fromstring(body(db321, "image_pool", 0)).findtext("SOURCE"))
    assert new == f"/opt/one/var/datastores/1/{old.rsplit('/', 1)[-1]}"
    link = root / new.lstrip("/")
    assert link.is_symlink() and os.readlink(link) == str(root / old.lstrip("/"))
    base = ET.fromstring(body(db321, "datastore_pool", 1)).findtext("BASE_PATH")
    assert base == "/opt/one/var/datastores/1"


def test_failing_migrator_restores_the_backup(db321: Path) -> None:
    conn = sqlite3.connect(db321)
    conn.execute("UPDATE host_pool SET body='<HOST><ID>0</ID>' WHERE oid=0")
    conn.commit()
    conn.close()
    before = dump(db321)
    result = onedb("upgrade", "-s", db321)
    assert result.returncode == 255
    assert "Malformed body in host_pool (oid 0)" in one_line(result.stderr)
    assert result.stdout.splitlines()[-2:] == [
        "The database will be restored",
        f"Sqlite database backup restored in {db321}",
    ]
    assert dump(db321) == before


# ------------------------------------------------------------------ end to end
def test_upgrade_path_with_the_simulator(oned_factory: Any) -> None:
    oned = oned_factory("3.2.1")
    workdir, db = oned.workdir, oned.db
    oned.call("one.host.allocate", "h1", "im_kvm", "vmm_kvm", "dummy", "tm_shared")
    iid = oned.call("one.image.allocate", 'NAME="img"\nPATH=/x')
    vms = [
        oned.call("one.vm.allocate", f"NAME=v{i}\nCPU=1\nMEMORY=128\nDISK=[IMAGE_ID={iid}]")
        for i in range(2)
    ]
    wait_until(lambda: all(vm_states(oned, v) == (3, RUNNING) for v in vms))

    # 1. The simulator holds the database: refused before any backup.
    held = onedb("upgrade", "-s", db)
    assert held.returncode == 255
    assert held.stderr == f"First stop OpenNebula. Lock file found: {workdir / '.lock'}\n"
    assert not (workdir / "one.db.bck").exists()
    live = onedb("backup", workdir / "live.bck", "-s", db)  # allowed, and consistent
    assert live.returncode == 0, live.stderr
    assert onedb("version", "-s", workdir / "live.bck").stdout == "3.2.1\n"

    # 2. Stopped, but VMs are running: listed, backup restored, exit 255.
    assert oned.stop() == 0
    assert not (workdir / ".lock").exists()
    before = dump(db)
    refused = onedb("upgrade", "-s", db, "3.4.1")
    assert refused.returncode == 255
    assert refused.stderr == "Error while upgrading from 3.2.1 to 3.3.80\n"
    out = refused.stdout.splitlines()
    assert "You can't have active VMs. Please shutdown or delete the following VMs:" in out
    table = out.index("    ID STAT NAME")
    assert out[table + 1 : table + 3] == ["     0 runn v0", "     1 runn v1"]
    assert out[-2:] == ["The database will be restored", f"Sqlite database backup restored in {db}"]
    assert dump(db) == before

    # 3. VMs shut down: 3.2.1 -> 3.4.1 (-f: the failed attempt left one.db.bck).
    oned = oned_factory("3.2.1", workdir=workdir)
    for vm in vms:
        oned.call("one.vm.action", "shutdown", vm)
    wait_until(lambda: all(vm_states(oned, v)[0] == DONE for v in vms))
    assert oned.stop() == 0
    upgraded = onedb("upgrade", "-f", "-s", db, "3.4.1")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.endswith(
        "Database migrated from 3.2.1 to 3.4.1 (OpenNebula 3.4.1) by onedb command.\n"
    )
    assert onedb("version", "-s", db).stdout == "3.4.1\n"

    # 4. The 3.2.1 simulator refuses the migrated database.
    with pytest.raises(RuntimeError) as refusal:
        oned_factory("3.2.1", workdir=workdir)
    assert refusal.value.returncode not in (0, None)  # type: ignore[attr-defined]
    assert (
        "Database version mismatch. Installed OpenNebula 3.2.1 uses DB version '3.2.1', "
        "and existing DB version is '3.4.1'."
    ) in refusal.value.stderr  # type: ignore[attr-defined]

    # 5. The 3.4.1 simulator serves the migrated bodies as stored. Speed 1: its first
    #    host monitoring (5 simulated seconds) must not rewrite the host before we look.
    oned = oned_factory("3.4.1", workdir=workdir, speed=1)
    pool = ET.fromstring(oned.call("one.datastorepool.info"))
    stores = {d.findtext("ID"): d for d in pool.findall("DATASTORE")}
    assert sorted(stores) == ["0", "1"]
    assert stores["0"].findtext("NAME") == "system"
    assert stores["1"].findtext("NAME") == "default"
    assert [e.text for e in stores["1"].findall("IMAGES/ID")] == [str(iid)]
    host = ET.fromstring(oned.call("one.hostpool.info")).find("HOST")
    assert host is not None
    tags = [child.tag for child in host]
    assert "TM_MAD" not in tags
    assert tags[-2:] == ["CLUSTER_ID", "CLUSTER"]
    assert host.findtext("CLUSTER_ID") == "-1"
    image = ET.fromstring(oned.call("one.image.info", iid))
    assert (image.findtext("SOURCE") or "").startswith("/var/lib/one/datastores/1/")
    assert oned.stop() == 0

    # 6. 3.4.1 -> 3.6.0 with a VM running (no refusal in that step).
    oned = oned_factory("3.4.1", workdir=workdir)
    new_vm = oned.call("one.vm.allocate", f"NAME=w\nCPU=1\nMEMORY=128\nDISK=[IMAGE_ID={iid}]")
    wait_until(lambda: vm_states(oned, new_vm) == (3, RUNNING))
    assert oned.stop() == 0
    bck = workdir / "before-3.6.bck"
    to36 = onedb("upgrade", "-v", "-s", db, "-b", bck)
    assert to36.returncode == 0, to36.stderr
    assert "  > Running migrator /usr/lib/one/ruby/onedb/3.4.1_to_3.5.80.rb" in to36.stdout
    assert "  > Running migrator /usr/lib/one/ruby/onedb/3.5.80_to_3.6.0.rb" in to36.stdout
    assert onedb("version", "-s", db).stdout == "3.6.0\n"
    assert onedb("version", "-s", bck).stdout == "3.4.1\n"
    record = str(query(db, "SELECT body FROM history WHERE vid=?", (new_vm,))[0][0])
    assert f"<OID>{new_vm}</OID><VM><ID>{new_vm}</ID>" in record
    assert record.endswith("</VM><TMMAD>shared</TMMAD><DS_ID>0</DS_ID></HISTORY>")
    history = onedb("history", "-s", db).stdout
    assert [line for line in history.splitlines() if line.startswith("Version:")] == [
        "Version:   3.2.1",
        "Version:   3.4.1",
        "Version:   3.6.0",
    ]

    # 7. The 3.6.0 simulator starts on it and answers accounting.
    oned = oned_factory("3.6.0", workdir=workdir)
    records = ET.fromstring(oned.call("one.vmpool.accounting", -2, -1, -1))
    oids = [h.findtext("OID") for h in records.findall("HISTORY")]
    assert str(new_vm) in oids
    assert vm_states(oned, new_vm) == (3, RUNNING)
    assert oned.stop() == 0
