#!/usr/bin/python
# WANT_JSON
"""Ansible module: answer a host's read-only questions in one task.

The gate play asks every host the same handful of questions each round (``virsh list``,
libvirtd's init script, the datastore's mount, Puppet's lock, ``crm_mon``...). One task a
question costs one module round trip a question; this module answers them all in one.
Commands run without a shell, each with its own timeout; a missing command or file is an
answer (rc 127, or no content), never a failure of the task. Changes nothing.

It is a "want JSON" module (Ansible hands it its arguments as a JSON file) and needs nothing
but Python's standard library: a module built on AnsibleModule spends about 0.2 s of the
host's CPU compiling ansible.module_utils at every run, and this one runs on every host at
every gate round. One source for Python 2.7 and 3.6+, and no tool newer than a 2012 host's:
mounts come from /proc/self/mountinfo and statvfs (util-linux 2.17-2.20 has no
``findmnt --json``), the distribution from the release files such a host has.
"""

from __future__ import absolute_import, division, print_function

import base64
import errno
import json
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import threading
import time

DOCUMENTATION = r"""
module: upgrader_probe
short_description: Answer a host's read-only questions (commands, files, mounts, Puppet) at once
description:
  - Runs each command (no shell), reads each file, looks up each mount and Puppet's lock, and
    returns every answer. Changes nothing; a command that fails or is missing is reported, not
    fatal.
options:
  commands:
    description:
      - name -> command (a string split like a shell would, or a list). A word may name a
        fact of the host, replaced before the command runs - C({libvirtd_service}) (libvirtd's
        init script - libvirt-bin on Debian <= 8 and Ubuntu <= 18.04, else libvirtd),
        C({os_id}), C({os_version}).
    type: dict
    default: {}
  files:
    description: name -> path of a file to read (its content comes back base64-encoded).
    type: dict
    default: {}
  mounts:
    description:
      - name -> path; the file system that holds the path (the one mounted at it, if any),
        from /proc/self/mountinfo (else /proc/mounts), its size and room from statvfs, and
        the lines of /etc/fstab that mount something at the path.
    type: dict
    default: {}
  puppet:
    description:
      - C(locks), the paths where the Puppet agent's disable lock may be (the first that
        exists is the lock; Puppet 3.x's agent_disabled.lock holds JSON with the hold's
        disabled_message, Puppet 2.7's puppetdlock is empty while the agent is disabled and
        holds a pid during a run); C(run_locks), the locks of a run under way. A lock
        without a message gets its reason from the note next to it (<lock>.upgrader, JSON
        with disabled_message and the lock_id it was written for - the lock's inode and mtime
        in whole seconds, as C(stat -c %i:%Y <lock>) prints them).
    type: dict
  system:
    description:
      - Also return the host's facts (os_id, os_version, libvirtd_service, and python_apt,
        whether the interpreter running the module has python-apt).
    type: bool
    default: false
  timeout:
    description: Seconds allowed to each command and each mount lookup.
    type: int
    default: 60
  accept_rc:
    description:
      - name -> the return codes that are an answer for that command; any other fails the
        task, with the command and its stderr in the message. Commands not named here never
        fail the task.
    type: dict
    default: {}
"""

RETURN = r"""
commands:
  description: name -> {rc, stdout, stderr}; rc 127 when the command is missing, 124 on timeout.
  type: dict
files:
  description: name -> base64 content, or null when the file cannot be read.
  type: dict
mounts:
  description: >-
    name -> {path, target, source, fstype, options, size, avail, mountpoint (whether the file
    system is mounted at the path itself), fstab: [{source, fstype, options}]}, or {path, error}.
    The source is shown as findmnt shows it (device[/subdir] for a bind mount).
  type: dict
puppet:
  description: >-
    {lock, disabled, reason, message_in_lock, note, lock_id, running, running_pid}: the lock
    found (null: none), whether the agent is disabled and why, whether the lock itself holds
    the reason (Puppet 3.x) or a note must (2.7), and whether a run is under way.
  type: dict
system:
  description: "{os_id, os_version, libvirtd_service, python_apt} when asked for or used."
  type: dict
"""

OPTIONS = {
    "commands": dict,
    "files": dict,
    "mounts": dict,
    "puppet": dict,
    "system": bool,
    "timeout": int,
    "accept_rc": dict,
}
PY2 = sys.version_info[0] == 2
TEXT = type(b"".decode("ascii"))  # unicode on Python 2, str on 3
NETWORK_FS = ("nfs", "nfs4", "cifs", "smbfs", "smb3", "ncpfs", "afs", "ceph", "9p", "glusterfs")
NOTE_SUFFIX = ".upgrader"


def finish(**result):
    print(json.dumps(result))
    sys.exit(1 if result.get("failed") else 0)


def arguments(argv):
    """The task's options from the JSON file Ansible names, checked; fails the task if not."""
    try:
        with open(argv[1], "rb") as handle:
            given = json.loads(handle.read().decode("utf-8"))
    except (IndexError, IOError, OSError, ValueError) as exc:
        finish(failed=True, msg="upgrader_probe: cannot read its arguments: %s" % exc)
    if not isinstance(given, dict):
        finish(failed=True, msg="upgrader_probe: its arguments are not a mapping")
    params = {"commands": {}, "files": {}, "mounts": {}, "puppet": None, "system": False,
              "timeout": 60, "accept_rc": {}}  # fmt: skip
    for name, given_value in given.items():
        if name.startswith("_ansible_"):
            continue  # Ansible's own (check mode, verbosity...): read-only either way
        if name not in OPTIONS:
            finish(failed=True, msg="upgrader_probe: unsupported option '%s'" % name)
        if given_value is not None:
            params[name] = checked(name, OPTIONS[name], given_value)
    return params


def checked(name, kind, value):
    """An option's value of its kind (digits for an int, yes/no for a bool), or the task fails."""
    if kind is int and isinstance(value, (TEXT, str)) and value.strip().isdigit():
        value = int(value)
    if kind is bool and isinstance(value, (TEXT, str)):
        value = {"true": True, "yes": True, "false": False, "no": False}.get(value.lower(), value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        finish(failed=True, msg="upgrader_probe: option '%s' must be a %s" % (name, kind.__name__))
    return value


def native(value):
    """A word as the OS takes it: text on Python 3, UTF-8 bytes on Python 2."""
    if PY2 and isinstance(value, TEXT):
        return value.encode("utf-8")
    return value if isinstance(value, (TEXT, str)) else str(value)


def text(data):
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def word(value):
    """A word (or a path) as text, whatever JSON gave."""
    return text(native(value))


# ------------------------------------------------------------------ commands


def run(argv, timeout):
    """Run ``argv`` in a session of its own, killed with its children after ``timeout``."""
    session = {"preexec_fn": os.setsid} if PY2 else {"start_new_session": True}
    devnull = open(os.devnull, "rb")
    try:
        proc = subprocess.Popen(argv, stdin=devnull, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, close_fds=True, **session)  # fmt: skip
    except OSError as exc:  # as a shell says it: 127 not found, 126 found but not runnable
        return {"rc": 127 if exc.errno == errno.ENOENT else 126, "stdout": "", "stderr": str(exc)}
    finally:
        devnull.close()
    expired = []
    timer = threading.Timer(timeout, _kill, [proc, expired])
    timer.start()
    try:
        stdout, stderr = proc.communicate()
    finally:
        timer.cancel()
    if expired:
        return {
            "rc": 124,
            "stdout": "",
            "stderr": "%s: no answer in %s s" % (word(argv[0]), timeout),
        }
    # Trailing newlines dropped, as the command module does.
    return {"rc": proc.returncode, "stdout": text(stdout).rstrip("\r\n"),
            "stderr": text(stderr).rstrip("\r\n")}  # fmt: skip


def _kill(proc, expired):
    expired.append(True)
    try:  # noqa: SIM105 - contextlib.suppress is Python 3 only
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass  # already gone


def command_argv(name, command, facts):
    words = shlex.split(native(command)) if isinstance(command, (TEXT, str)) else list(command)
    if not words:
        finish(failed=True, msg="command '%s' is empty" % name)
    return [native(facts.fill(word(w))) for w in words]


def quote(value):
    """``value`` as a shell reads it back as one word (shlex.quote is Python 3 only)."""
    if value and not re.search(r"[^\w@%+=:,./-]", value):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


def shown(command):
    if isinstance(command, (TEXT, str)):
        return command
    return " ".join(quote(word(w)) for w in command)


# ------------------------------------------------------------------ files and facts


def read(path):
    try:
        with open(native(path), "rb") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def key_values(path):
    """KEY=value lines (os-release, lsb-release), quotes removed."""
    out = {}
    for line in text(read(path) or b"").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip().strip("\"'")
    return out


def numbers(version):
    return tuple(int(n) for n in re.findall(r"\d+", version)[:2])


class Facts(object):
    """The host's distribution and what follows from it, read once and only when used."""

    def __init__(self):
        self.values = None

    def get(self):
        if self.values is None:
            os_id, version = distribution()
            old = (os_id == "debian" and (0,) < numbers(version) <= (8, 99)) or (
                os_id == "ubuntu" and (0,) < numbers(version) <= (18, 4)
            )
            self.values = {"os_id": os_id, "os_version": version,
                           "libvirtd_service": "libvirt-bin" if old else "libvirtd"}  # fmt: skip
        return self.values

    def fill(self, word):
        if "{" not in word:
            return word
        for key in ("os_id", "os_version", "libvirtd_service"):
            if "{%s}" % key in word:
                word = word.replace("{%s}" % key, self.get()[key])
        return word


def importable(name):
    """Whether this interpreter (the one Ansible runs modules with) finds module ``name``,
    without importing it (python-apt takes a while to load). The finders are imported here:
    importlib.util costs every gate round's probe some milliseconds it does not need."""
    try:
        from importlib.util import find_spec  # noqa: PLC0415  # novermin - 2.7: except branch
    except ImportError:  # Python 2
        import imp  # noqa: PLC0415

        try:
            imp.find_module(name)
        except ImportError:
            return False
        return True
    return find_spec(name) is not None


def distribution():
    """(id, version) from /etc/os-release, else the files of hosts older than it."""
    release = key_values("/etc/os-release")
    if release.get("ID"):
        return release["ID"].lower(), release.get("VERSION_ID", "")
    lsb = key_values("/etc/lsb-release")
    if lsb.get("DISTRIB_ID"):
        return lsb["DISTRIB_ID"].lower(), lsb.get("DISTRIB_RELEASE", "")
    redhat = text(read("/etc/redhat-release") or b"").strip()
    if redhat:
        found = re.search(r"release\s+([\d.]+)", redhat)
        name = "rhel" if redhat.startswith("Red Hat") else redhat.split()[0].lower()
        return name, found.group(1) if found else ""
    debian = text(read("/etc/debian_version") or b"").strip()
    if debian:
        return "debian", debian if re.match(r"^\d", debian) else ""
    return "", ""


# ------------------------------------------------------------------ mounts


def unescape(field):
    """mountinfo's and fstab's octal escapes (``\\040`` a space) decoded."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_table():
    """[(target, source, fstype, options)] in mount order, from mountinfo or /proc/mounts."""
    table = parse_mountinfo(text(read("/proc/self/mountinfo") or b""))
    return table or parse_mounts(text(read("/proc/mounts") or b""))


def parse_mountinfo(content):
    """mountinfo's lines as mount_table's entries: the source of a bind mount shown as
    findmnt shows it (device[/subdir]), and the mount's options before the file system's,
    where a read-only side makes the mount read-only."""
    table = []
    for line in content.splitlines():
        fields = line.split()
        if len(fields) < 9 or "-" not in fields[6:]:
            continue
        sep = fields.index("-", 6)
        root, target, fstype = unescape(fields[3]), unescape(fields[4]), fields[sep + 1]
        source = unescape(fields[sep + 2]) if len(fields) > sep + 2 else ""
        if root != "/" and fstype not in NETWORK_FS:
            source = "%s[%s]" % (source, root)
        options = fields[5].split(",")
        fs_options = fields[sep + 3].split(",") if len(fields) > sep + 3 else []
        if "ro" in fs_options:
            options = ["ro" if o == "rw" else o for o in options]
        options += [o for o in fs_options if o not in options and o not in ("rw", "ro")]
        table.append((target, source, fstype, ",".join(options)))
    return table


def parse_mounts(content):
    """/proc/mounts' lines (kernels without mountinfo) as mount_table's entries."""
    table = []
    for line in content.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            table.append((unescape(fields[1]), unescape(fields[0]), fields[2], fields[3]))
    return table


def under(path, target):
    return path == target or path.startswith(target.rstrip("/") + "/")


def fstab_lines(path):
    found = []
    for line in text(read("/etc/fstab") or b"").splitlines():
        fields = line.split()
        if len(fields) >= 3 and not fields[0].startswith("#"):
            target = os.path.normpath(unescape(fields[1]))
            if target == path:
                found.append({"source": unescape(fields[0]), "fstype": fields[2],
                              "options": fields[3] if len(fields) > 3 else "defaults"})  # fmt: skip
    return found


def look_up_mount(path):
    """The file system holding ``path`` (may block on a dead NFS server: see bounded)."""
    real = word(os.path.realpath(native(path)))
    found = None
    for entry in mount_table():
        if under(real, entry[0]) and (found is None or len(entry[0]) >= len(found[0])):
            found = entry  # the deepest, and of those the last mounted (on top)
    if found is None:
        return {"path": path, "error": "no file system holds %s" % path}
    target, source, fstype, options = found
    answer = {"path": path, "target": target, "source": source, "fstype": fstype,
              "options": options, "mountpoint": real == target, "size": None, "avail": None,
              "fstab": fstab_lines(os.path.normpath(path))}  # fmt: skip
    try:
        st = os.statvfs(native(target))
        answer["size"], answer["avail"] = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    except OSError as exc:
        answer["error"] = "statvfs %s: %s" % (target, exc.strerror)
    return answer


def bounded(func, arg, timeout):
    """``func(arg)`` in a child process: a hung NFS mount keeps the child, not the module.

    The child lets go of stdout, so Ansible's read of this module's answer ends even if the
    child cannot be killed."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 1)
        os.dup2(null, 2)
        try:
            data = json.dumps(func(arg))
        except Exception as exc:  # any failure is the answer
            data = json.dumps({"path": arg, "error": str(exc)})
        data = data.encode("utf-8")
        while data:
            data = data[os.write(write_end, data) :]
        os._exit(0)
    os.close(write_end)
    chunks, deadline = [], time.time() + timeout
    try:
        while True:
            left = deadline - time.time()
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                return {"path": arg, "error": "no answer in %s s" % timeout}
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        try:  # noqa: SIM105 - contextlib.suppress is Python 3 only
            os.waitpid(pid, os.WNOHANG)  # reaped if it ended; a killed one when the module ends
        except OSError:
            pass
    return json.loads(b"".join(chunks).decode("utf-8"))


# ------------------------------------------------------------------ puppet


def puppet_state(spec):
    """The Puppet agent's hold, from the first disable lock that exists and its note."""
    locks = [word(p) for p in spec.get("locks") or []]
    out = {"lock": None, "disabled": False, "reason": "", "message_in_lock": True,
           "note": None, "lock_id": None, "running": False, "running_pid": None}  # fmt: skip
    for path in locks:
        content = read(path)
        if content is None:
            continue
        body = text(content).strip()
        out.update(lock=path, note=path + NOTE_SUFFIX, lock_id=lock_id(path))
        if body.isdigit():  # Puppet 2.7's puppetdlock during a run: a run, not a hold
            out["running_pid"] = int(body) if alive(int(body)) else None
            out["running"] = out["running_pid"] is not None
        elif body.startswith("{"):
            out["disabled"] = True
            out["reason"] = text(json_field(body, "disabled_message"))
        else:  # empty: disabled without a message (Puppet 2.7), the reason is in our note
            out.update(disabled=True, message_in_lock=False)
            note = text(read(out["note"]) or b"")
            if json_field(note, "lock_id") == out["lock_id"]:
                out["reason"] = text(json_field(note, "disabled_message"))
        break
    for path in spec.get("run_locks") or []:
        body = text(read(word(path)) or b"").strip()
        if body.isdigit() and alive(int(body)) and not out["running"]:
            out.update(running=True, running_pid=int(body))
    return out


def lock_id(path):
    """The lock file's identity, ``stat -c %i:%Y``: a note written for it names it, and a
    lock made again later (someone enabled and disabled the agent) has another."""
    try:
        st = os.stat(native(path))
    except OSError:
        return None
    return "%d:%d" % (st.st_ino, int(st.st_mtime))


def json_field(body, key):
    try:
        value = json.loads(body).get(key, "")
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, (TEXT, str)) else ""


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return pid > 0


# ------------------------------------------------------------------ main


def main():
    params = arguments(sys.argv)
    facts, timeout = Facts(), params["timeout"]
    # Mounts first: their child processes are forked before any thread runs.
    mounts = dict((name, bounded(look_up_mount, word(path), timeout))
                  for name, path in params["mounts"].items())  # fmt: skip
    commands = {}
    for name, command in params["commands"].items():
        commands[name] = run(command_argv(name, command, facts), timeout)
    files = {}
    for name, path in params["files"].items():
        content = read(word(path))
        files[name] = None if content is None else base64.b64encode(content).decode("ascii")
    result = {"changed": False, "commands": commands, "files": files, "mounts": mounts}
    if params["puppet"] is not None:
        result["puppet"] = puppet_state(params["puppet"])
    if params["system"] or facts.values is not None:
        result["system"] = dict(facts.get())
    if params["system"]:
        result["system"]["python_apt"] = importable("apt") and importable("apt_pkg")
    for name, accepted in params["accept_rc"].items():
        answer = commands.get(name)
        if answer is None:
            finish(failed=True, msg="accept_rc names '%s', which is not a command" % name)
        if answer["rc"] not in [int(rc) for rc in accepted]:
            shown_command = shown(params["commands"][name])
            reason = answer["stderr"] or answer["stdout"]
            result.update(
                failed=True, msg="%s exited %s: %s" % (shown_command, answer["rc"], reason)
            )
            finish(**result)
    finish(**result)


if __name__ == "__main__":
    main()
