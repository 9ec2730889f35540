"""The lab's NFS server: its export, nfs-ganesha in the nfs host, and the storage inventory vars.

The export (``/srv/lab/nfs/export`` in every host) is an ext4 image of its own, so that filling
it (the nfs-full fault) fills only it; each cloud migrates into its own subdirectory, as a
site's NFS server has one export per cloud. Ganesha serves it over NFSv3 (libnfs writes fail
over v4, lab-recipes.md section 4). Lab hosts cannot mount NFS (no kernel client), so the
storage playbooks mount the export with a bind of the same directory Ganesha serves, while
``nfs_probe_command`` still asks the real server from every host.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from upgrader.lab import hosts as hs
from upgrader.lab.hosts import LabError, run

EXPORT = "/srv/lab/nfs/export"  # inside every host (the share is bound at /srv/lab)
DATASTORE = "/var/lib/one/datastores"


def prepare_export(lab: Path, spec: Any) -> None:
    """The export's own file system, mounted under the share before any host starts."""
    export = lab / "share" / "nfs" / "export"
    export.mkdir(parents=True)
    image = lab / "nfs-export.img"
    run("truncate", "-s", "1G", str(image))
    run("mkfs.ext4", "-q", "-F", "-L", f"{spec.name}-nfs", str(image))
    run("mount", "-o", "loop", str(image), str(export))


def make_cloud_export(lab: Path, cloud: str) -> None:
    """``<export>/<cloud>``, owned and moded like the cloud's datastore (the copy's target)."""
    ds = (lab / "share" / cloud / "datastores").stat()
    target = lab / "share" / "nfs" / "export" / cloud
    target.mkdir()
    os.chown(target, ds.st_uid, ds.st_gid)
    target.chmod(ds.st_mode & 0o7777)


def start(lab: Path, spec: Any) -> None:
    """rpcbind and nfs-ganesha in the nfs host, waiting until Ganesha says it serves."""
    nfs = next(h for h in spec.hosts if h.cloud is None)
    conf = lab / "share" / "nfs" / "ganesha.conf"
    conf.write_text(
        "NFS_CORE_PARAM { Protocols = 3, 4; Bind_addr = " + nfs.ip + "; MNT_Port = 20048; "
        "Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; }\n"
        "NFSV4 { Graceless = true; RecoveryBackend = fs; }\n"
        "NFS_KRB5 { Active_krb5 = false; }\n"
        f"EXPORT {{ Export_Id = 1; Path = {EXPORT}; Pseudo = /datastores; "
        "Protocols = 3, 4; Transports = TCP; Access_Type = RW; Squash = No_Root_Squash; "
        "SecType = sys; FSAL { Name = VFS; } }\n"
        "LOG { Default_Log_Level = EVENT; }\n"
    )
    hs.enter(
        lab,
        nfs.name,
        "sh",
        "-c",
        "mkdir -p /run/rpcbind /var/lib/nfs/ganesha && rpcbind -w && "
        "ganesha.nfsd -f /srv/lab/nfs/ganesha.conf -L /var/log/ganesha.log "
        "-p /run/ganesha.pid",
    )
    deadline = time.monotonic() + 15
    while (
        "SERVER INITIALIZED"
        not in hs.enter(lab, nfs.name, "cat", "/var/log/ganesha.log", check=False).stdout
    ):
        if time.monotonic() > deadline:
            raise LabError("nfs-ganesha did not start in the nfs host (see /var/log/ganesha.log)")
        time.sleep(0.1)


def storage_vars(nfs_host: str, cloud: str, pacemaker_fs_resource: str) -> dict[str, Any]:
    """What the storage playbooks read from the inventory, as the lab answers it.

    The old datastore is the bind line hostinit.sh writes into each host's fstab; the "NFS
    mount" is a bind of the cloud's export directory (``nfs_mount_type: none``), and the probe
    lists that directory over NFSv3 (the v3 URL names the real path; Ganesha mounts a
    subdirectory of its export).
    """
    export = f"{EXPORT}/{cloud}"
    return {
        "one_datastore_fstab": {
            "src": f"/srv/lab/{cloud}/datastores",
            "fstype": "none",
            "opts": "bind",
        },
        "nfs_server": nfs_host,
        "nfs_export": export,
        "nfs_mount_src": export,
        "nfs_mount_type": "none",
        "nfs_mount_opts": "bind",
        "nfs_probe_command": "nfs-ls nfs://{{ nfs_server }}{{ nfs_export }}",
        "pacemaker_fs_resource": pacemaker_fs_resource,
    }
