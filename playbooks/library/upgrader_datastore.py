#!/usr/bin/python
"""Ansible module: the storage migration's copy engine, on the host that mounts both file systems.

The engine (the package upgrader/storage/datastore_copy) travels with this module as
module_utils, so the data is copied, checksummed and verified where it lies and never crosses
the controller. Like the engine, this module is one source for Python 2.7 and 3.6+.
A copy takes longer than any one task should block, and a module cannot stream: the playbooks
start ``state: sync`` (or ``verify``) with ``async`` and follow it with ``state: progress``,
whose retries carry the engine's progress file as Ansible events. ``state: changed`` tells
the rollback which files were written on the new file system after the verified copy, so
switching back never silently drops them.
"""

from __future__ import absolute_import, division, print_function

import errno
import io
import json
import os
import stat
import traceback

from ansible.module_utils.basic import AnsibleModule

try:
    from ansible.module_utils.datastore_copy import (
        IN_PLACE,
        CopyError,
        inventory,
        load_manifest,
        stat_key,
        sync,
        verify,
        walk,
        would_sync,
    )
except ImportError:  # reported by main(), as a one-line failure of the task
    ENGINE_ERROR = traceback.format_exc()
    IN_PLACE = ("copied", "verified")
else:
    ENGINE_ERROR = None

DOCUMENTATION = r"""
module: upgrader_datastore
short_description: Copy, verify and compare a datastore tree with the upgrader copy engine
description:
  - Runs the copy engine on the host that has both the old datastore and the NFS export
    mounted. C(inventory) counts the old tree; C(sync) copies it (sparse files stay sparse,
    resumable from the manifest); C(verify) re-reads every manifest entry on the destination;
    C(progress) reports how far a sync or verify started with C(async) has got;
    C(changed) lists the files on the destination that differ from the verified copy.
  - In check mode inventory, verify, progress and changed run (they only read); sync
    reports what it would copy and writes nothing.
options:
  state:
    description: What to do.
    type: str
    required: true
    choices: [inventory, sync, verify, progress, changed]
  src:
    description: The tree to copy (the old datastore); read, never written.
    type: path
  dst:
    description: Where the copy goes (the NFS export, mounted).
    type: path
  manifest:
    description: The engine's manifest (JSON lines), on the host's local disk.
    type: path
  phase:
    description: C(presync) while the VMs run, C(delta) in the window.
    type: str
    default: presync
    choices: [presync, delta]
  workers:
    description: Files copied or verified at the same time.
    type: int
    default: 4
  margin:
    description: Free space the destination must keep beyond the allocated size (fraction).
    type: float
    default: 0.05
  lock_wait:
    description: Seconds to wait for a copy still running on the same manifest (one left
      behind by a controller that was killed) before failing.
    type: float
    default: 60
  reread:
    description: For C(sync), re-read each file from the storage right after its copy is
      durable (while other files are being written) and record it verified; a copy that
      reads back wrong fails the task naming the file. The pre-sync uses it, so a storage
      that does not keep what it is given shows before the window, not in it.
    type: bool
    default: false
  progress_file:
    description: JSON the engine rewrites about once a second while it works.
    type: path
  jid:
    description: For C(progress), the async job id of the sync or verify being followed.
    type: str
  async_dir:
    description: For C(progress), where Ansible keeps async job results on this host.
    type: path
    default: ~/.ansible_async
"""

EXAMPLES = r"""
- name: Count what the old datastore holds
  upgrader_datastore:
    state: inventory
    src: /var/lib/one/datastores

- name: Pre-sync the datastore to the NFS export
  upgrader_datastore:
    state: sync
    src: /var/lib/one/datastores
    dst: /mnt/upgrader-nfs
    manifest: /var/lib/upgrader-storage/manifest.jsonl
    progress_file: /var/lib/upgrader-storage/progress.json
  async: 86400
  poll: 0
  register: copy_job

- name: Follow the copy
  upgrader_datastore:
    state: progress
    progress_file: /var/lib/upgrader-storage/progress.json
    jid: "{{ copy_job.ansible_job_id }}"
  register: copy_progress
  until: copy_progress.finished
  retries: 8640
  delay: 10
"""

RETURN = r"""
inventory:
  description: For C(inventory), the engine's counts (files, dirs, symlinks, apparent_bytes,
    allocated_bytes, images, vm_dirs, checkpoints).
  type: dict
  returned: state is inventory
summary:
  description: For C(sync), the engine's summary (copied, skipped, deleted, bytes_copied,
    bytes_total, apparent_bytes, allocated_bytes, files, seconds); in check mode the plan
    (would_copy, would_delete, skipped).
  type: dict
  returned: state is sync
verify:
  description: For C(verify), entries, verified, mismatches (path, field, expected, found),
    missing, seconds, bytes_read.
  type: dict
  returned: state is verify
problems:
  description: For C(verify), one line per wrong or missing file (empty when all match).
  type: list
  elements: str
  returned: state is verify
finished:
  description: For C(progress), whether the followed job has ended (well or not).
  type: bool
  returned: state is progress
died:
  description: For C(progress), true when the engine's process is gone but the job never
    recorded a result (its async wrapper was killed too); C(job_msg) says so.
  type: bool
  returned: sometimes
job_msg:
  description: For C(progress), the failed job's message, once it has ended.
  type: str
  returned: sometimes
upgrader_progress:
  description: For C(progress), the engine's progress (phase, bytes_done, bytes_total,
    files_done, files_total, current, eta_seconds).
  type: dict
  returned: state is progress
modified:
  description: For C(changed), files whose size or modification time differ from the copy.
  type: list
  elements: str
  returned: state is changed
added:
  description: For C(changed), files on the destination the manifest does not know.
  type: list
  elements: str
  returned: state is changed
removed:
  description: For C(changed), verified files missing from the destination.
  type: list
  elements: str
  returned: state is changed
kind:
  description: On a copy error, its kind (full, mismatch, locked, source, io).
  type: str
  returned: failure
details:
  description: On a copy error, its evidence (bytes needed and available, path, pid...).
  type: dict
  returned: failure
"""

REQUIRED = {
    "inventory": ("src",),
    "sync": ("src", "dst", "manifest"),
    "verify": ("dst", "manifest"),
    "progress": ("progress_file", "jid"),
    "changed": ("dst", "manifest"),
}


def same(recorded, st):
    """Whether a recorded stat still describes ``st`` (any write changes mtime or ctime)."""
    return bool(recorded) and st is not None and recorded == stat_key(st)


def changes(dst, records):
    """Files on ``dst`` written since the verified copy: the engine's recorded stat of each
    copy (inode, size, mtime, ctime) against what is there now."""
    verified = {
        p: r
        for p, r in records.items()
        if r.get("state") in IN_PLACE and r.get("type") in ("file", "hardlink")
    }
    modified, added, seen = [], [], set()
    for rel, st in walk(os.path.abspath(dst)):
        if not stat.S_ISREG(st.st_mode):
            continue
        seen.add(rel)
        if rel not in verified:
            added.append(rel)
        elif not same(verified[rel].get("dst"), st):
            modified.append(rel)
    removed = sorted(set(verified) - seen)
    return {
        "modified": modified,
        "added": added,
        "removed": removed,
        "writes": len(modified) + len(added) + len(removed),
    }


def problems(checked):
    """One line per file the verify found wrong: ``path: checksum expected X, found Y``."""
    lines = [
        "{0}: {1} expected {2}, found {3}".format(
            m["path"], m.get("field", "checksum"), m["expected"], m["found"]
        )
        for m in checked.get("mismatches", [])
    ]
    return lines + ["{0}: missing".format(path) for path in checked.get("missing", [])]


def job_status(jid, async_dir):
    """The async job's result file: None while it runs, its result once it has ended."""
    path = os.path.join(os.path.expanduser(async_dir), jid)
    try:
        with io.open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (IOError, OSError) as exc:
        if exc.errno != errno.ENOENT:
            raise
        return {"failed": True, "msg": "no async job {0} in {1}".format(jid, async_dir)}
    except ValueError:
        return None  # being written
    # While the job runs the wrapper's placeholder says started; then the module's result.
    return None if data.get("started") and not data.get("finished") else data


def alive(pid):
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def follow(params):
    """One look at a job started with async: the engine's progress and whether it ended."""
    try:
        with io.open(params["progress_file"], encoding="utf-8") as handle:
            progress = json.load(handle)
    except (IOError, OSError, ValueError):
        progress = {}
    job = job_status(params["jid"], params["async_dir"])
    result = {"changed": False, "finished": job is not None, "upgrader_progress": progress}
    if job is not None and job.get("failed"):
        result["job_msg"] = str(job.get("msg", "the job failed"))
    elif (
        job is None
        and progress.get("pid")
        and not progress.get("finished")
        and not alive(progress["pid"])
    ):
        # The engine died without the async wrapper recording it (both were killed).
        result.update(
            finished=True,
            died=True,
            job_msg="the copy engine (pid {0}) died before it finished".format(progress["pid"]),
        )
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "required": True, "choices": list(REQUIRED)},
            "src": {"type": "path"},
            "dst": {"type": "path"},
            "manifest": {"type": "path"},
            "phase": {"type": "str", "default": "presync", "choices": ["presync", "delta"]},
            "workers": {"type": "int", "default": 4},
            "margin": {"type": "float", "default": 0.05},
            "lock_wait": {"type": "float", "default": 60},
            "reread": {"type": "bool", "default": False},
            "progress_file": {"type": "path"},
            "jid": {"type": "str"},
            "async_dir": {"type": "path", "default": "~/.ansible_async"},
        },
        supports_check_mode=True,
    )
    p = module.params
    missing = [name for name in REQUIRED[p["state"]] if not p[name]]
    if missing:
        module.fail_json(msg="state {0} needs {1}".format(p["state"], ", ".join(missing)))
    if p["state"] == "progress":
        module.exit_json(**follow(p))
    if ENGINE_ERROR is not None:
        module.fail_json(
            msg="the copy engine (module_utils datastore_copy) is not available",
            exception=ENGINE_ERROR,
        )
    try:
        if p["state"] == "inventory":
            module.exit_json(changed=False, inventory=inventory(p["src"]))
        if p["state"] == "verify":
            checked = verify(
                p["dst"], p["manifest"], workers=p["workers"], progress_file=p["progress_file"]
            )
            module.exit_json(changed=False, verify=checked, problems=problems(checked))
        if p["state"] == "changed":
            module.exit_json(changed=False, **changes(p["dst"], load_manifest(p["manifest"])))
        if module.check_mode:
            todo = would_sync(p["src"], p["dst"], p["manifest"], margin=p["margin"])
            module.exit_json(changed=bool(todo["would_copy"] or todo["would_delete"]), summary=todo)
        summary = sync(
            p["src"],
            p["dst"],
            p["manifest"],
            phase=p["phase"],
            workers=p["workers"],
            margin=p["margin"],
            progress_file=p["progress_file"],
            lock_wait=p["lock_wait"],
            reread=p["reread"],
        )
    except CopyError as exc:
        module.fail_json(msg=str(exc), kind=exc.kind, details=exc.details)
    except OSError as exc:
        module.fail_json(msg="{0}: {1}".format(p["state"], exc), kind="io", details={})
    module.exit_json(changed=bool(summary.get("copied") or summary.get("deleted")), summary=summary)


if __name__ == "__main__":
    main()
