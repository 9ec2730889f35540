#!/usr/bin/python
# WANT_JSON
"""Ansible module: check every fence and resource agent the Pacemaker CIB references.

Read-only. For each primitive of ``cibadmin -Q -o resources`` (the live CIB, or the file
named by the ``CIB_file`` environment variable) it finds the agent's file, and reports
whether it exists, is executable, passes the syntax check of the interpreter its shebang
names (``bash -n``, ``sh -n`` for sh and dash, ``perl -c``, or that very Python's
``compile`` without writing a ``.pyc``) and answers its ``metadata`` action. An agent whose
interpreter is not on the host is reported as such: it could not run either. Only file
names, return codes and the checkers' messages are returned, never the primitives'
parameters (they hold the fencing devices' passwords).

A "want JSON" module on the standard library alone, like upgrader_probe (which says why),
and one source for Python 2.7 and 3.6+.
"""

from __future__ import absolute_import, division, print_function

import errno
import json
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET

DOCUMENTATION = r"""
module: upgrader_agents
short_description: Check the fence and resource agents the Pacemaker CIB references
description:
  - Lists the CIB's primitives and checks each agent file (exists, executable, syntax with
    the interpreter its shebang names, metadata). Changes nothing.
options:
  ocf_root:
    description: Root of the OCF resource agents.
    type: str
    default: /usr/lib/ocf
  timeout:
    description: Seconds allowed to each syntax check and metadata call.
    type: int
    default: 20
"""

STONITH_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
TEXT = type(b"".decode("ascii"))  # unicode on Python 2, str on 3
# That Python's own syntax check, without writing the .pyc that py_compile would leave next
# to the agent (fence_x -> fence_xc on Python 2); the same text runs on Python 2 and 3.
PY_CHECK = """
import sys, traceback
try:
    compile(open(sys.argv[1], "rb").read(), sys.argv[1], "exec")
except SyntaxError:
    exc = sys.exc_info()[1]
    sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
    sys.exit(1)
"""
# The interpreter's family -> (language, the check's arguments before the agent's path).
CHECKS = (
    ("bash", ("bash", ["-n"])),
    ("dash", ("sh", ["-n"])),
    ("sh", ("sh", ["-n"])),
    ("python", ("python", ["-c", PY_CHECK])),
    ("perl", ("perl", ["-c"])),
)


def agent_path(cls, provider, kind, ocf_root):
    """Where the agent of a primitive lives; None for classes without a file (systemd)."""
    if cls == "stonith":
        for d in STONITH_DIRS:
            path = os.path.join(d, kind)
            if os.path.exists(path):
                return path
        return os.path.join(STONITH_DIRS[0], kind)
    if cls == "ocf":
        return os.path.join(ocf_root, "resource.d", provider or "heartbeat", kind)
    if cls == "lsb":
        return os.path.join("/etc/init.d", kind)
    return None


def shebang(path):
    """The interpreter the first line names (``/usr/bin/env python2``: python2), or None."""
    try:
        with open(path, "rb") as f:
            first = f.readline(200).decode("utf-8", "replace")
    except (IOError, OSError):
        return None
    words = first[2:].split() if first.startswith("#!") else []
    if words and os.path.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    return words[0] if words else None


def which(name):
    """``name`` as the system finds it: itself when it is a path, else the first on PATH."""
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    for folder in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(os.pathsep):
        found = os.path.join(folder, name)
        if os.path.isfile(found) and os.access(found, os.X_OK):
            return found
    return None


def syntax_check(path):
    """(language, interpreter named, argv of its check or None when it is not on the host)."""
    named = shebang(path)
    if named is None:
        return "other", "", None
    base = os.path.basename(named)
    for family, (language, args) in CHECKS:
        if base == family or (base.startswith(family) and base[len(family) :][:1] in "0123456789."):
            found = which(named)
            return language, named, None if found is None else [found] + args + [path]
    return "other", named, None


def run(argv, timeout, env=None):
    """(rc, stdout, stderr) of ``argv``; 124 when killed after ``timeout``, 126 unrunnable."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.PIPE, env=env, close_fds=True)  # fmt: skip
    except OSError as exc:
        return 127 if exc.errno == errno.ENOENT else 126, "", str(exc)
    expired = []
    timer = threading.Timer(timeout, _kill, [proc, expired])
    timer.start()
    try:
        stdout, stderr = proc.communicate(b"")
    finally:
        timer.cancel()
    if expired:
        return 124, "", "timed out after %s s" % timeout
    return proc.returncode, text(stdout), text(stderr)


def _kill(proc, expired):
    expired.append(True)
    try:  # noqa: SIM105 - contextlib.suppress is Python 3 only
        proc.kill()
    except OSError:
        pass  # already gone


def text(data):
    return data.decode("utf-8", "replace")


def check(prim, ocf_root, timeout, checked):
    """The agent of a primitive, checked once for all the primitives that use it."""
    cls, provider, kind = prim.get("class", ""), prim.get("provider", ""), prim.get("type", "")
    path = agent_path(cls, provider, kind, ocf_root)
    if path is None:
        return None
    if path not in checked:
        checked[path] = checked_agent(path, cls, ocf_root, timeout)
    return checked[path]


def checked_agent(path, cls, ocf_root, timeout):
    out = {
        "resources": [],
        "path": path,
        "kind": "stonith" if cls == "stonith" else "resource",
        "agent_class": cls,
        "exists": os.path.isfile(path),
        "executable": os.access(path, os.X_OK),
        "language": "other",
        "interpreter": "",
        "unchecked": "",
        "syntax_rc": None,
        "syntax_stderr": "",
        "metadata_rc": None,
        "metadata_output": "",
    }
    if not out["exists"]:
        return out
    language, named, argv = syntax_check(path)
    out["language"], out["interpreter"] = language, named
    if language != "other" and argv is None:
        out["unchecked"] = "interpreter %s not on the host" % named
        return out  # it cannot answer metadata either
    if argv is not None:
        rc, _, err = run(argv, timeout)
        out["syntax_rc"], out["syntax_stderr"] = rc, err[-2000:]
    if not out["executable"] or out["syntax_rc"] not in (None, 0):
        return out
    env = dict(os.environ, OCF_ROOT=ocf_root)
    if cls == "stonith":
        rc, stdout, err = run([path, "-o", "metadata"], timeout, env)
    elif cls == "ocf":
        rc, stdout, err = run([path, "meta-data"], timeout, env)
    else:  # LSB init scripts have no metadata action
        return out
    out["metadata_rc"] = rc
    # Enough to see the <resource-agent> element; the full document is long.
    out["metadata_output"] = (stdout[:400] if rc == 0 else err[-400:]).strip()
    return out


def finish(**result):
    print(json.dumps(result))
    sys.exit(1 if result.get("failed") else 0)


def arguments(argv):
    """The task's options from the JSON file Ansible names, checked; fails the task if not.

    The same reader as upgrader_probe's: a want-JSON module travels to the host as one file,
    without module_utils, so the two cannot share it."""
    try:
        with open(argv[1], "rb") as handle:
            given = json.loads(handle.read().decode("utf-8"))
    except (IndexError, IOError, OSError, ValueError) as exc:
        finish(failed=True, msg="upgrader_agents: cannot read its arguments: %s" % exc)
    if not isinstance(given, dict):
        finish(failed=True, msg="upgrader_agents: its arguments are not a mapping")
    params = {"ocf_root": "/usr/lib/ocf", "timeout": 20}
    for name, value in given.items():
        if name.startswith("_ansible_") or value is None:
            continue  # Ansible's own (check mode, verbosity...): read-only either way
        if name == "ocf_root" and isinstance(value, (TEXT, str)):
            params[name] = value
        elif name == "timeout" and str(value).isdigit():
            params[name] = int(value)
        elif name in params:
            finish(failed=True, msg="upgrader_agents: option '%s' has a wrong type" % name)
        else:
            finish(failed=True, msg="upgrader_agents: unsupported option '%s'" % name)
    return params


def main():
    params = arguments(sys.argv)
    ocf_root, timeout = str(params["ocf_root"]), int(params["timeout"])
    rc, stdout, err = run(["cibadmin", "-Q", "-o", "resources"], timeout)
    if rc != 0:
        finish(failed=True, msg="cibadmin -Q -o resources failed (rc %s): %s" % (rc, err.strip()))
    try:
        root = ET.fromstring(stdout.encode("utf-8"))  # noqa: S314 - the local cibadmin's answer
    except ET.ParseError as exc:
        finish(failed=True, msg="cibadmin answered something that is not XML: %s" % exc)
    agents, order = {}, []
    for prim in root.iter("primitive"):
        found = check(prim, ocf_root, timeout, agents)
        if found is not None:
            if found["path"] not in order:
                order.append(found["path"])
            found["resources"].append(prim.get("id", ""))
    finish(changed=False, agents=[agents[path] for path in order])


if __name__ == "__main__":
    main()
