"""playbooks/library/upgrader_probe.py and upgrader_agents.py, run as Ansible runs a "want
JSON" module: the interpreter, the module file and the path of a JSON file of arguments."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "playbooks" / "library"


def module(name: str, args: dict[str, object], tmp_path: Path) -> tuple[int, dict[str, object]]:
    args_file = tmp_path / "args"
    args_file.write_text(json.dumps({"_ansible_check_mode": True, **args}))
    done = subprocess.run(
        [sys.executable, str(LIBRARY / f"{name}.py"), str(args_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def test_the_modules_are_want_json_modules_that_import_nothing_of_ansible():
    for name in ("upgrader_probe", "upgrader_agents"):
        text = (LIBRARY / f"{name}.py").read_text()
        assert "WANT_JSON" in text
        assert "import ansible" not in text and "from ansible" not in text


def test_probe_answers_every_command_and_file_and_a_missing_one_is_an_answer(tmp_path):
    lock = tmp_path / "lock"
    lock.write_bytes(b'{"disabled_message": "held"}')
    rc, result = module(
        "upgrader_probe",
        {
            "commands": {"echo": "echo 'two words'", "list": ["printf", "%s\\n", "a", "b"],
                         "fails": ["sh", "-c", "echo no >&2; exit 3"],
                         "missing": "no-such-command-here"},
            "files": {"lock": str(lock), "absent": str(tmp_path / "absent")},
            "timeout": "5",
        },
        tmp_path,
    )  # fmt: skip
    assert rc == 0 and result["changed"] is False and not result.get("failed")
    commands = result["commands"]
    assert commands["echo"] == {"rc": 0, "stdout": "two words", "stderr": ""}
    assert commands["list"]["stdout"] == "a\nb"
    assert commands["fails"] == {"rc": 3, "stdout": "", "stderr": "no"}
    assert commands["missing"]["rc"] == 127
    assert base64.b64decode(result["files"]["lock"]) == lock.read_bytes()
    assert result["files"]["absent"] is None


def test_probe_gives_up_on_a_command_at_its_timeout(tmp_path):
    rc, result = module("upgrader_probe", {"commands": {"slow": "sleep 5"}, "timeout": 1},
                        tmp_path)  # fmt: skip
    assert rc == 0
    assert result["commands"]["slow"]["rc"] == 124
    assert "no answer in 1 s" in result["commands"]["slow"]["stderr"]


def test_probe_and_agents_fail_the_task_on_an_unknown_or_mistyped_option(tmp_path):
    rc, result = module("upgrader_probe", {"comands": {"x": "true"}}, tmp_path)
    assert rc == 1 and result["failed"] is True
    assert result["msg"] == "upgrader_probe: unsupported option 'comands'"
    rc, result = module("upgrader_probe", {"commands": ["true"]}, tmp_path)
    assert rc == 1 and result["msg"] == "upgrader_probe: option 'commands' must be a dict"
    rc, result = module("upgrader_probe", {"commands": {"empty": ""}}, tmp_path)
    assert rc == 1 and result["msg"] == "command 'empty' is empty"
    rc, result = module("upgrader_agents", {"ocf": "/usr/lib/ocf"}, tmp_path)
    assert rc == 1 and result["msg"] == "upgrader_agents: unsupported option 'ocf'"
    rc, result = module("upgrader_agents", {"timeout": "soon"}, tmp_path)
    assert rc == 1 and result["msg"] == "upgrader_agents: option 'timeout' has a wrong type"


def test_a_module_without_its_arguments_file_fails_with_a_message(tmp_path):
    done = subprocess.run(
        [sys.executable, str(LIBRARY / "upgrader_probe.py"), str(tmp_path / "nothing")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert json.loads(done.stdout)["msg"].startswith("upgrader_probe: cannot read its arguments")


def test_probe_fails_the_task_when_a_command_answers_a_code_not_accepted(tmp_path):
    commands = {"unset": ["sh", "-c", "exit 6"], "broken": ["sh", "-c", "echo no cib >&2; exit 1"]}
    rc, result = module("upgrader_probe", {"commands": commands, "accept_rc": {"unset": [0, 6]}},
                        tmp_path)  # fmt: skip
    assert rc == 0 and result["commands"]["unset"]["rc"] == 6 and not result.get("failed")
    rc, result = module("upgrader_probe",
                        {"commands": commands, "accept_rc": {"unset": [0, 6], "broken": [0]}},
                        tmp_path)  # fmt: skip
    assert rc == 1 and result["failed"] is True
    assert result["msg"] == "sh -c 'echo no cib >&2; exit 1' exited 1: no cib"
    assert result["commands"]["unset"]["rc"] == 6  # every answer still comes back
