#!/usr/bin/python3
"""Ansible module: run a few read-only commands and read a few files in one task.

The gate play asks every host the same handful of questions each round (``virsh list``,
libvirtd's init script, ``findmnt``, Puppet's lock, ``crm_mon``...). One task a question
costs one module round trip a question; this module answers them all in one. Commands run
without a shell, each with its own timeout; a missing command or file is an answer (rc 127,
or no content), never a failure of the task. Changes nothing.
"""

from __future__ import annotations

import base64
import shlex
import subprocess

from ansible.module_utils.basic import AnsibleModule

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
"""

RETURN = r"""
commands:
  description: name -> {rc, stdout, stderr}; rc 127 when the command is missing, 124 on timeout.
  type: dict
files:
  description: name -> base64 content, or null when the file cannot be read.
  type: dict
"""


def run(argv: list[str], timeout: int) -> dict[str, object]:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, errors="replace"
        )
    except FileNotFoundError as exc:
        return {"rc": 127, "stdout": "", "stderr": str(exc)}
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
    module = AnsibleModule(
        argument_spec={
            "commands": {"type": "dict", "default": {}},
            "files": {"type": "dict", "default": {}},
            "timeout": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    params = module.params
    commands = {}
    for name, command in params["commands"].items():
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        if not argv:
            module.fail_json(msg=f"command '{name}' is empty")
        commands[name] = run(argv, params["timeout"])
    files = {name: read(str(path)) for name, path in params["files"].items()}
    module.exit_json(changed=False, commands=commands, files=files)


if __name__ == "__main__":
    main()
