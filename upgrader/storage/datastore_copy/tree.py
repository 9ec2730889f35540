"""The datastore as a tree: a walk that changes nothing, its inventory, and file metadata.

The walk lists each directory through an O_NOATIME descriptor, so even the directories'
access times stay as they were; a copy gets its owner, mode and times to the nanosecond.
"""

from __future__ import absolute_import, division, print_function

import os
import shutil
import stat

from .compat import list_dir, lstat_or_none, native_path, set_times_ns, stat_ns


def stat_key(st):
    """What the manifest records of each side of a copy (its ``src`` and ``dst`` fields):
    any write changes the mtime or the ctime, a replaced file its inode."""
    return {
        "ino": st.st_ino,
        "size": st.st_size,
        "mtime_ns": stat_ns(st, "mtime"),
        "ctime_ns": stat_ns(st, "ctime"),
    }


def walk(root):
    """Yield ``(rel, lstat)`` for every entry under root, parents before children, sorted."""
    root = native_path(root)
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        subdirs = []
        for name, st in list_dir(os.path.join(root, rel_dir)):
            rel = os.path.join(rel_dir, name)
            yield rel, st
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(rel)
        stack.extend(reversed(subdirs))


def _is_image(name):
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)


def inventory(src):
    """Read-only walk of a datastore: counts and totals for the preflight and the report.

    ``images`` are OpenNebula image files (32-hex names), ``vm_dirs`` the system datastore's
    per-VM directories (numeric names holding ``disk.*`` or ``deployment.*`` files),
    ``checkpoints`` the saved memory of suspended VMs.
    """
    keys = (
        "files",
        "dirs",
        "symlinks",
        "other",
        "apparent_bytes",
        "allocated_bytes",
        "images",
        "vm_dirs",
        "checkpoints",
    )
    out = dict.fromkeys(keys, 0)
    vm_dirs = set()
    for rel, st in walk(src):
        name = os.path.basename(rel)
        if stat.S_ISDIR(st.st_mode):
            out["dirs"] += 1
        elif stat.S_ISLNK(st.st_mode):
            out["symlinks"] += 1
        elif stat.S_ISREG(st.st_mode):
            out["files"] += 1
            out["apparent_bytes"] += st.st_size
            out["allocated_bytes"] += st.st_blocks * 512
            out["images"] += int(_is_image(name))
            out["checkpoints"] += int(name.startswith("checkpoint"))
            parent = os.path.dirname(rel)
            if os.path.basename(parent).isdigit() and name.startswith(("disk.", "deployment.")):
                vm_dirs.add(parent)
        else:
            out["other"] += 1
    out["vm_dirs"] = len(vm_dirs)
    return out


def remove(path):
    """Remove whatever is at path (file, link or directory tree); nothing there is fine."""
    st = lstat_or_none(path)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def apply_meta(path, st, is_link=False):
    """Owner first (chown clears setuid bits), then mode, then times."""
    os.lchown(path, st.st_uid, st.st_gid)
    if not is_link:
        os.chmod(path, stat.S_IMODE(st.st_mode))
    set_times_ns(path, stat_ns(st, "atime"), stat_ns(st, "mtime"))


def type_letter(mode):
    """``ls -l``'s first letter for a file type (``stat.filemode`` is 3.3+)."""
    for test, letter in (
        (stat.S_ISDIR, "d"),
        (stat.S_ISLNK, "l"),
        (stat.S_ISREG, "-"),
        (stat.S_ISCHR, "c"),
        (stat.S_ISBLK, "b"),
        (stat.S_ISFIFO, "p"),
        (stat.S_ISSOCK, "s"),
    ):
        if test(mode):
            return letter
    return "?"
