#!/usr/bin/python
# WANT_JSON
"""Ansible module: run a few read-only commands and read a few files in one task.

The gate play asks every host the same handful of questions each round (``virsh list``,
libvirtd's init script, ``findmnt``, Puppet's lock, ``crm_mon``...). One task a question
costs one module round trip a question; this module answers them all in one. Commands run
without a shell, each with its own timeout; a missing command or file is an answer (rc 127,
or no content), never a failure of the task. Changes nothing.

It is a "want JSON" module (Ansible hands it its arguments as a JSON file) and needs nothing
but Python's standard library: a module built on AnsibleModule spends about 0.2 s of the
host's CPU compiling ansible.module_utils at every run, and this one runs on every host at
every gate round.
"""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
import sys

DOCUMENTATION = r"""
module: upgrader_probe
short_description: Run read-only commands and read files on a host, in one task
description:
  - Runs each command (no shell) and reads each file, and returns every answer.
    Changes nothing; a command that fails or is missing is reported, not fatal.
options:
  commands:
    description: name -> command (a string split like a shell would, or a list).
    type: dict
    default: {}
  files:
    description: name -> path of a file to read (its content comes back base64-encoded).
    type: dict
    default: {}
  timeout:
    description: Seconds allowed to each command.
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
"""

OPTIONS = {"commands": dict, "files": dict, "timeout": int, "accept_rc": dict}


def finish(**result: object) -> None:
    print(json.dumps(result))
    sys.exit(1 if result.get("failed") else 0)


def arguments(argv: list[str]) -> dict[str, object]:
    """The task's options from the JSON file Ansible names, checked; fails the task if not."""
    try:
        with open(argv[1], encoding="utf-8") as handle:
            given = json.load(handle)
    except (IndexError, OSError, ValueError) as exc:
        finish(failed=True, msg=f"upgrader_probe: cannot read its arguments: {exc}")
    if not isinstance(given, dict):
        finish(failed=True, msg="upgrader_probe: its arguments are not a mapping")
    params: dict[str, object] = {"commands": {}, "files": {}, "timeout": 60, "accept_rc": {}}
    for name, given_value in given.items():
        if name.startswith("_ansible_"):
            continue  # Ansible's own (check mode, verbosity...): read-only either way
        if name not in OPTIONS:
            finish(failed=True, msg=f"upgrader_probe: unsupported option '{name}'")
        kind, value = OPTIONS[name], given_value
        if value is None:
            continue
        if kind is int and isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            finish(failed=True, msg=f"upgrader_probe: option '{name}' must be a {kind.__name__}")
        params[name] = value
    return params


def run(argv: list[str], timeout: int) -> dict[str, object]:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, errors="replace"
        )
    except OSError as exc:  # as a shell says it: 127 not found, 126 found but not runnable
        return {"rc": 127 if isinstance(exc, FileNotFoundError) else 126, "stdout": "",
                "stderr": str(exc)}  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"rc": 124, "stdout": "", "stderr": f"{argv[0]}: no answer in {timeout} s"}
    # Trailing newlines dropped, as the command module does.
    return {
        "rc": done.returncode,
        "stdout": done.stdout.rstrip("\r\n"),
        "stderr": done.stderr.rstrip("\r\n"),
    }


def read(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return base64.b64encode(handle.read()).decode()
    except OSError:
        return None


def main() -> None:
    params = arguments(sys.argv)
    commands = {}
    for name, command in params["commands"].items():  # type: ignore[attr-defined]
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        if not argv:
            finish(failed=True, msg=f"command '{name}' is empty")
        commands[name] = run(argv, params["timeout"])  # type: ignore[arg-type]
    files = {name: read(str(path)) for name, path in params["files"].items()}  # type: ignore[attr-defined]
    for name, accepted in params["accept_rc"].items():  # type: ignore[attr-defined]
        answer = commands.get(name)
        if answer is None:
            finish(failed=True, msg=f"accept_rc names '{name}', which is not a command")
        if answer["rc"] not in [int(rc) for rc in accepted]:
            command = params["commands"][name]  # type: ignore[index]
            shown = command if isinstance(command, str) else shlex.join(map(str, command))
            finish(
                failed=True,
                changed=False,
                commands=commands,
                files=files,
                msg=f"{shown} exited {answer['rc']}: {answer['stderr'] or answer['stdout']}",
            )
    finish(changed=False, commands=commands, files=files)


if __name__ == "__main__":
    main()
