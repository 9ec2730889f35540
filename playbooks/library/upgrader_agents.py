#!/usr/bin/python
# WANT_JSON
"""Ansible module: check every fence and resource agent the Pacemaker CIB references.

Read-only. For each primitive of ``cibadmin -Q -o resources`` (the live CIB, or the file
named by the ``CIB_file`` environment variable) it finds the agent's file, and reports
whether it exists, is executable, passes its interpreter's own syntax check (``bash -n``,
or Python's ``compile`` without writing a ``.pyc``) and answers its ``metadata`` action.
Only file names, return codes and the checkers' messages are returned, never the
primitives' parameters (they hold the fencing devices' passwords).

A "want JSON" module on the standard library alone, like upgrader_probe (which says why).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

DOCUMENTATION = r"""
module: upgrader_agents
short_description: Check the fence and resource agents the Pacemaker CIB references
description:
  - Lists the CIB's primitives and checks each agent file (exists, executable, syntax,
    metadata). Changes nothing.
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
# Python's own syntax check, without writing the .pyc that py_compile would leave behind.
PY_CHECK = """
import sys, traceback
try:
    compile(open(sys.argv[1], "rb").read(), sys.argv[1], "exec")
except SyntaxError as exc:
    sys.stderr.write("".join(traceback.format_exception_only(exc)))
    sys.exit(1)
"""


def agent_path(cls: str, provider: str, kind: str, ocf_root: str) -> str | None:
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


def language(path: str) -> str:
    """ "python", "bash" (also for /bin/sh scripts) or "other", from the shebang line."""
    try:
        with open(path, "rb") as f:
            first = f.readline(200).decode("utf-8", "replace")
    except OSError:
        return "other"
    if not first.startswith("#!"):
        return "other"
    if "python" in first:
        return "python"
    if "sh" in os.path.basename(first.split()[0]) or " sh" in first or "bash" in first:
        return "bash"
    return "other"


def run(argv: list[str], timeout: int, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    try:
        p = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout} s"
    except OSError as exc:
        return 126, "", str(exc)
    return p.returncode, p.stdout, p.stderr


def check(prim: ET.Element, ocf_root: str, timeout: int) -> dict[str, object] | None:
    cls, provider, kind = prim.get("class", ""), prim.get("provider", ""), prim.get("type", "")
    path = agent_path(cls, provider, kind, ocf_root)
    if path is None:
        return None
    out: dict[str, object] = {
        "path": path,
        "kind": "stonith" if cls == "stonith" else "resource",
        "agent_class": cls,
        "exists": os.path.isfile(path),
        "executable": os.access(path, os.X_OK),
        "language": "other",
        "syntax_rc": None,
        "syntax_stderr": "",
        "metadata_rc": None,
        "metadata_output": "",
    }
    if not out["exists"]:
        return out
    lang = language(path)
    out["language"] = lang
    if lang == "bash":
        rc, _, err = run([shutil.which("bash") or "/bin/bash", "-n", path], timeout)
        out["syntax_rc"], out["syntax_stderr"] = rc, err[-2000:]
    elif lang == "python":
        rc, _, err = run(["/usr/bin/python3", "-c", PY_CHECK, path], timeout)
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


def finish(**result: object) -> None:
    print(json.dumps(result))
    sys.exit(1 if result.get("failed") else 0)


def arguments(argv: list[str]) -> dict[str, object]:
    """The task's options from the JSON file Ansible names, checked; fails the task if not.

    The same reader as upgrader_probe's: a want-JSON module travels to the host as one file,
    without module_utils, so the two cannot share it."""
    try:
        with open(argv[1], encoding="utf-8") as handle:
            given = json.load(handle)
    except (IndexError, OSError, ValueError) as exc:
        finish(failed=True, msg=f"upgrader_agents: cannot read its arguments: {exc}")
    if not isinstance(given, dict):
        finish(failed=True, msg="upgrader_agents: its arguments are not a mapping")
    params: dict[str, object] = {"ocf_root": "/usr/lib/ocf", "timeout": 20}
    for name, value in given.items():
        if name.startswith("_ansible_") or value is None:
            continue  # Ansible's own (check mode, verbosity...): read-only either way
        if name == "ocf_root" and isinstance(value, str):
            params[name] = value
        elif name == "timeout" and str(value).isdigit():
            params[name] = int(value)
        elif name in params:
            finish(failed=True, msg=f"upgrader_agents: option '{name}' has a wrong type")
        else:
            finish(failed=True, msg=f"upgrader_agents: unsupported option '{name}'")
    return params


def main() -> None:
    params = arguments(sys.argv)
    ocf_root, timeout = str(params["ocf_root"]), int(params["timeout"])  # type: ignore[call-overload]
    rc, stdout, err = run(["cibadmin", "-Q", "-o", "resources"], timeout)
    if rc != 0:
        finish(failed=True, msg=f"cibadmin -Q -o resources failed (rc {rc}): {err.strip()}")
    try:
        root = ET.fromstring(stdout)  # noqa: S314 - the local cibadmin's answer
    except ET.ParseError as exc:
        finish(failed=True, msg=f"cibadmin answered something that is not XML: {exc}")
    agents: dict[str, dict[str, object]] = {}
    for prim in root.iter("primitive"):
        found = check(prim, ocf_root, timeout)
        if found is None:
            continue
        entry = agents.setdefault(str(found["path"]), {**found, "resources": []})
        entry["resources"].append(prim.get("id", ""))  # type: ignore[union-attr]
    finish(changed=False, agents=list(agents.values()))


if __name__ == "__main__":
    main()
