"""Parsing recorded 3.2/3.4/3.6 IMAGE, DATASTORE, CLUSTER, USER and GROUP documents."""

from __future__ import annotations

from typing import Any

import pytest

from upgrader.errors import OneResponseError
from upgrader.opennebula import (
    Cluster,
    Datastore,
    DiskType,
    Group,
    Image,
    ImageState,
    ImageType,
    Permissions,
    Template,
    User,
)
from upgrader.opennebula.parse import (
    parse_cluster,
    parse_cluster_pool,
    parse_datastore,
    parse_datastore_pool,
    parse_group_pool,
    parse_image,
    parse_image_pool,
    parse_user_pool,
)


def compact(xml: str) -> str:
    """Drop the indentation: oned writes no whitespace between elements."""
    return "".join(line.strip() for line in xml.splitlines())


PERMISSIONS = """
<PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A>
  <GROUP_U>1</GROUP_U><GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A>
  <OTHER_U>1</OTHER_U><OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A></PERMISSIONS>"""
UM_U_U = Permissions(True, True, False, True, False, False, True, False, False)

IMAGE_HEAD = f"""
<ID>3</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME>
<NAME>ubuntu</NAME>{PERMISSIONS}"""
IMAGE_TEMPLATE = """
<TEMPLATE>
  <DEV_PREFIX><![CDATA[hd]]></DEV_PREFIX><NAME><![CDATA[ubuntu]]></NAME>
  <PATH><![CDATA[/srv/images/ubuntu.img]]></PATH>
</TEMPLATE>"""
EXPECTED_IMAGE_TEMPLATE = Template(
    [("DEV_PREFIX", "hd"), ("NAME", "ubuntu"), ("PATH", "/srv/images/ubuntu.img")]
)

IMAGE_32 = compact(f"""
<IMAGE>{IMAGE_HEAD}
  <TYPE>0</TYPE><PERSISTENT>0</PERSISTENT><REGTIME>1338900000</REGTIME>
  <SOURCE>/var/lib/one/images/6fc2a6d1</SOURCE>
  <PATH>/srv/images/ubuntu.img</PATH><FSTYPE></FSTYPE><SIZE>2048</SIZE>
  <STATE>2</STATE><RUNNING_VMS>1</RUNNING_VMS>{IMAGE_TEMPLATE}
</IMAGE>""")

IMAGE_34 = compact(f"""
<IMAGE>{IMAGE_HEAD}
  <TYPE>2</TYPE><PERSISTENT>1</PERSISTENT><REGTIME>1338900000</REGTIME>
  <SOURCE>/var/lib/one/datastores/1/6fc2a6d1</SOURCE>
  <PATH>/srv/images/ubuntu.img</PATH><FSTYPE>ext3</FSTYPE><SIZE>2048</SIZE>
  <STATE>1</STATE><RUNNING_VMS>0</RUNNING_VMS>
  <DATASTORE_ID>1</DATASTORE_ID><DATASTORE>default</DATASTORE>{IMAGE_TEMPLATE}
</IMAGE>""")

IMAGE_36 = compact(f"""
<IMAGE>{IMAGE_HEAD}
  <TYPE>1</TYPE><DISK_TYPE>1</DISK_TYPE><PERSISTENT>1</PERSISTENT><REGTIME>1338900000</REGTIME>
  <SOURCE>/var/lib/one/datastores/1/6fc2a6d1</SOURCE>
  <PATH>/srv/images/ubuntu.iso</PATH><FSTYPE></FSTYPE><SIZE>700</SIZE>
  <STATE>8</STATE><RUNNING_VMS>1</RUNNING_VMS>
  <CLONING_OPS>0</CLONING_OPS><CLONING_ID>-1</CLONING_ID>
  <DATASTORE_ID>1</DATASTORE_ID><DATASTORE>default</DATASTORE>{IMAGE_TEMPLATE}
</IMAGE>""")

COMMON_IMAGE: dict[str, Any] = {
    "id": 3,
    "uid": 0,
    "gid": 0,
    "uname": "oneadmin",
    "gname": "oneadmin",
    "name": "ubuntu",
    "permissions": UM_U_U,
    "regtime": 1338900000,
    "template": EXPECTED_IMAGE_TEMPLATE,
}


def test_image_32_has_no_datastore_nor_3_6_fields() -> None:
    assert parse_image(IMAGE_32) == Image(
        **COMMON_IMAGE,
        type=ImageType.OS,
        disk_type=None,
        persistent=False,
        source="/var/lib/one/images/6fc2a6d1",
        path="/srv/images/ubuntu.img",
        fstype="",
        size=2048,
        state=ImageState.USED,
        running_vms=1,
        cloning_ops=None,
        cloning_id=None,
        datastore_id=None,
        datastore=None,
    )


def test_image_34_has_datastore() -> None:
    assert parse_image(IMAGE_34) == Image(
        **COMMON_IMAGE,
        type=ImageType.DATABLOCK,
        disk_type=None,
        persistent=True,
        source="/var/lib/one/datastores/1/6fc2a6d1",
        path="/srv/images/ubuntu.img",
        fstype="ext3",
        size=2048,
        state=ImageState.READY,
        running_vms=0,
        cloning_ops=None,
        cloning_id=None,
        datastore_id=1,
        datastore="default",
    )


def test_image_36_has_disk_type_cloning_and_used_pers() -> None:
    assert parse_image(IMAGE_36) == Image(
        **COMMON_IMAGE,
        type=ImageType.CDROM,
        disk_type=DiskType.CD_ROM,
        persistent=True,
        source="/var/lib/one/datastores/1/6fc2a6d1",
        path="/srv/images/ubuntu.iso",
        fstype="",
        size=700,
        state=ImageState.USED_PERS,
        running_vms=1,
        cloning_ops=0,
        cloning_id=-1,
        datastore_id=1,
        datastore="default",
    )


def test_image_pool() -> None:
    pool = f"<IMAGE_POOL>{IMAGE_32}{IMAGE_34}{IMAGE_36}</IMAGE_POOL>"
    assert [image.state for image in parse_image_pool(pool)] == [
        ImageState.USED,
        ImageState.READY,
        ImageState.USED_PERS,
    ]


DS_HEAD = f"""
<ID>1</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME>
<NAME>default</NAME>{PERMISSIONS}
<DS_MAD>fs</DS_MAD><TM_MAD>shared</TM_MAD>
<BASE_PATH>/var/lib/one/datastores/1</BASE_PATH>"""
DS_TEMPLATE = """
<TEMPLATE><DS_MAD><![CDATA[fs]]></DS_MAD><TM_MAD><![CDATA[shared]]></TM_MAD></TEMPLATE>"""

DATASTORE_34 = compact(f"""
<DATASTORE>{DS_HEAD}
  <CLUSTER_ID>-1</CLUSTER_ID><CLUSTER></CLUSTER>
  <IMAGES><ID>3</ID><ID>4</ID></IMAGES>{DS_TEMPLATE}
</DATASTORE>""")

DATASTORE_36 = compact(f"""
<DATASTORE>{DS_HEAD}<SYSTEM>0</SYSTEM><DISK_TYPE>2</DISK_TYPE>
  <CLUSTER_ID>100</CLUSTER_ID><CLUSTER>production</CLUSTER>
  <IMAGES></IMAGES>{DS_TEMPLATE}
</DATASTORE>""")

# Right after `onedb upgrade` 3.4 -> 3.6: DISK_TYPE and SYSTEM appended at the end.
DATASTORE_36_AFTER_ONEDB = compact("""
<DATASTORE>
  <ID>0</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME>
  <NAME>system</NAME>
  <DS_MAD>-</DS_MAD><TM_MAD>shared</TM_MAD><BASE_PATH>/var/lib/one/datastores/0</BASE_PATH>
  <CLUSTER_ID>-1</CLUSTER_ID><CLUSTER/><IMAGES/>
  <TEMPLATE/><DISK_TYPE>0</DISK_TYPE><SYSTEM>1</SYSTEM>
</DATASTORE>""")

COMMON_DS: dict[str, Any] = {
    "id": 1,
    "uid": 0,
    "gid": 0,
    "uname": "oneadmin",
    "gname": "oneadmin",
    "name": "default",
    "permissions": UM_U_U,
    "ds_mad": "fs",
    "tm_mad": "shared",
    "base_path": "/var/lib/one/datastores/1",
    "template": Template([("DS_MAD", "fs"), ("TM_MAD", "shared")]),
}


def test_datastore_34_has_no_system_nor_disk_type() -> None:
    assert parse_datastore(DATASTORE_34) == Datastore(
        **COMMON_DS,
        system=None,
        disk_type=None,
        cluster_id=-1,
        cluster="",
        images=(3, 4),
    )


def test_datastore_36_has_system_and_disk_type() -> None:
    assert parse_datastore(DATASTORE_36) == Datastore(
        **COMMON_DS,
        system=False,
        disk_type=DiskType.BLOCK,
        cluster_id=100,
        cluster="production",
        images=(),
    )


def test_datastore_36_after_onedb_reads_fields_appended_at_the_end() -> None:
    ds = parse_datastore(DATASTORE_36_AFTER_ONEDB)
    assert (ds.id, ds.name, ds.system, ds.disk_type) == (0, "system", True, DiskType.FILE)
    assert ds.permissions is None  # the XSD lets PERMISSIONS be absent
    assert (ds.images, ds.template, ds.cluster) == ((), Template(), "")


def test_datastore_pool() -> None:
    pool = f"<DATASTORE_POOL>{DATASTORE_36_AFTER_ONEDB}{DATASTORE_36}</DATASTORE_POOL>"
    assert [ds.id for ds in parse_datastore_pool(pool)] == [0, 1]


CLUSTER_34 = compact("""
<CLUSTER><ID>100</ID><NAME>production</NAME>
  <HOSTS><ID>0</ID><ID>1</ID></HOSTS><DATASTORES><ID>100</ID></DATASTORES><VNETS></VNETS>
</CLUSTER>""")

CLUSTER_36 = compact("""
<CLUSTER><ID>101</ID><NAME>staging</NAME>
  <HOSTS></HOSTS><DATASTORES><ID>101</ID><ID>102</ID></DATASTORES><VNETS><ID>0</ID></VNETS>
  <TEMPLATE><SYSTEM_DS><![CDATA[101]]></SYSTEM_DS></TEMPLATE>
</CLUSTER>""")


def test_cluster_34_has_no_template() -> None:
    assert parse_cluster(CLUSTER_34) == Cluster(
        id=100, name="production", hosts=(0, 1), datastores=(100,), vnets=(), template=None
    )


def test_cluster_36_has_template() -> None:
    assert parse_cluster(CLUSTER_36) == Cluster(
        id=101,
        name="staging",
        hosts=(),
        datastores=(101, 102),
        vnets=(0,),
        template=Template([("SYSTEM_DS", "101")]),
    )


def test_cluster_pool_and_bad_member_id() -> None:
    pool = f"<CLUSTER_POOL>{CLUSTER_34}{CLUSTER_36}</CLUSTER_POOL>"
    assert [cluster.name for cluster in parse_cluster_pool(pool)] == ["production", "staging"]
    with pytest.raises(OneResponseError, match=r"<CLUSTER> 100 <HOSTS>: <ID> is not an integer"):
        parse_cluster(CLUSTER_34.replace("<ID>1</ID>", "<ID>x</ID>"))


USER_POOL_32 = compact("""
<USER_POOL>
  <USER><ID>0</ID><GID>0</GID><GNAME>oneadmin</GNAME><NAME>oneadmin</NAME>
    <PASSWORD>5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8</PASSWORD>
    <AUTH_DRIVER>core</AUTH_DRIVER><ENABLED>1</ENABLED><TEMPLATE/></USER>
  <USER><ID>1</ID><GID>0</GID><GNAME>oneadmin</GNAME><NAME>serveradmin</NAME>
    <PASSWORD>abc</PASSWORD><AUTH_DRIVER>server_cipher</AUTH_DRIVER><ENABLED>0</ENABLED>
    <TEMPLATE/></USER>
</USER_POOL>""")

USER_POOL_36 = compact("""
<USER_POOL>
  <USER><ID>2</ID><GID>100</GID><GNAME>users</GNAME><NAME>alice</NAME><PASSWORD>x</PASSWORD>
    <AUTH_DRIVER>core</AUTH_DRIVER><ENABLED>1</ENABLED><TEMPLATE/>
    <DATASTORE_QUOTA/><NETWORK_QUOTA/><VM_QUOTA/><IMAGE_QUOTA/></USER>
</USER_POOL>""")


def test_user_pools_32_and_36_without_passwords() -> None:
    assert parse_user_pool(USER_POOL_32) == (
        User(id=0, gid=0, gname="oneadmin", name="oneadmin", auth_driver="core", enabled=True),
        User(
            id=1,
            gid=0,
            gname="oneadmin",
            name="serveradmin",
            auth_driver="server_cipher",
            enabled=False,
        ),
    )
    (alice,) = parse_user_pool(USER_POOL_36)
    assert alice == User(2, 100, "users", "alice", "core", True)
    assert "5baa61e4" not in repr(parse_user_pool(USER_POOL_32))


def test_group_pool() -> None:
    pool = compact("""
    <GROUP_POOL>
      <GROUP><ID>0</ID><NAME>oneadmin</NAME><USERS><ID>0</ID><ID>1</ID></USERS></GROUP>
      <GROUP><ID>1</ID><NAME>users</NAME><USERS></USERS><DATASTORE_QUOTA/></GROUP>
    </GROUP_POOL>""")
    assert parse_group_pool(pool) == (
        Group(id=0, name="oneadmin", users=(0, 1)),
        Group(id=1, name="users", users=()),
    )


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (IMAGE_36.replace("<DISK_TYPE>1<", "<DISK_TYPE>7<"), ["<IMAGE> 3", "DiskType"]),
        (IMAGE_36.replace("<STATE>8<", "<STATE>11<"), ["ImageState"]),
        (IMAGE_32.replace("<PERSISTENT>0<", "<PERSISTENT>yes<"), ["<PERSISTENT>"]),
        (IMAGE_32.replace("<SOURCE>/var/lib/one/images/6fc2a6d1</SOURCE>", ""), ["<SOURCE>"]),
        (IMAGE_32.replace("<OWNER_A>0<", "<OWNER_A>3<"), ["<PERMISSIONS>: <OWNER_A> is 3"]),
    ],
)
def test_bad_image_documents(document: str, words: list[str]) -> None:
    with pytest.raises(OneResponseError) as caught:
        parse_image(document, "one.image.info")
    for word in words:
        assert word in str(caught.value)
