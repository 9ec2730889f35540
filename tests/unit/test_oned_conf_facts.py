"""playbooks/library/oned_conf_facts.py: an oned.conf read into the values the templates use."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from upgrader.lab.packages import oned_conf

MODULE = Path(__file__).resolve().parents[2] / "playbooks" / "library" / "oned_conf_facts.py"


def _load():
    spec = importlib.util.spec_from_file_location("oned_conf_facts", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ocf = _load()

# The settings a real 3.2 file has that an upgrade must carry, in the shipped file's layout.
SITE_32 = """\
#*******************************************************************************
#                       OpenNebula Configuration file
#*******************************************************************************
#MANAGER_TIMER = 30

HOST_MONITORING_INTERVAL = 300   # every five minutes
VM_POLLING_INTERVAL      = 450

VM_DIR=/srv/cloud/one/var
SCRIPTS_REMOTE_DIR=/var/tmp/one
PORT=2634

DB = [ backend = "mysql",
       server  = "db.example.org",
       port    = 0,
       user    = "oneadmin",
       passwd  = "s3cr#t, \\"quoted\\"",
       db_name = "opennebula" ]

MAC_PREFIX = "02:00"
IM_MAD = [
      name       = "im_kvm",
      executable = "one_im_ssh",
      arguments  = "-r 0 -t 15 kvm" ]
IM_MAD = [ name = "im_dummy", executable = "one_im_dummy" ]
HOST_HOOK = [
    name      = "error",
    on        = "ERROR",
    command   = "ft/host_error.rb",
    arguments = "$HID -r n",
    remote    = "no" ]
ENABLE_OTHER_PERMISSIONS = "YES"
"""


def test_single_and_vector_attributes_come_back_by_upper_case_key():
    attrs = ocf.parse(SITE_32)
    assert attrs["HOST_MONITORING_INTERVAL"] == ["300"]
    assert attrs["PORT"] == ["2634"]
    assert attrs["VM_DIR"] == ["/srv/cloud/one/var"]
    assert attrs["MAC_PREFIX"] == ["02:00"]
    assert attrs["HOST_HOOK"] == [
        {
            "name": "error",
            "on": "ERROR",
            "command": "ft/host_error.rb",
            "arguments": "$HID -r n",
            "remote": "no",
        }
    ]


def test_repeated_keys_keep_every_entry_in_file_order():
    attrs = ocf.parse(SITE_32)
    assert [v["name"] for v in attrs["IM_MAD"]] == ["im_kvm", "im_dummy"]


def test_comments_are_ignored_but_quoted_hashes_commas_and_escaped_quotes_are_kept():
    attrs = ocf.parse(SITE_32)
    assert "MANAGER_TIMER" not in attrs
    assert attrs["DB"][0]["passwd"] == 's3cr#t, "quoted"'
    assert attrs["DB"][0]["db_name"] == "opennebula"


def test_vector_keys_are_lower_cased_and_bare_vector_values_read():
    attrs = ocf.parse("db = [ BACKEND = sqlite, Port = 0 ]\n")
    assert attrs == {"DB": [{"backend": "sqlite", "port": "0"}]}


@pytest.mark.parametrize("version", ["3.2.1", "3.4.1", "3.6.0"])
def test_every_lab_package_file_parses(version):
    attrs = ocf.parse(oned_conf(version))
    assert attrs["PORT"] == ["2633"]
    assert attrs["IM_MAD"][0]["executable"] == "one_im_ssh"
    assert ("DATASTORE_LOCATION" in attrs) is (version != "3.2.1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PORT 2633\n", "line 1: expected '=' after PORT"),
        (
            'A = 1\nDB = [ backend = "sqlite"\nPORT = 1\n',
            "line 3: expected ',' or ']' in DB = [ ... ]",
        ),
        ('A = 1\n\nB = "never closed\n', "line 3: unterminated string in B"),
        ("PORT = 1 2\n", "line 1: unexpected text after PORT"),
        ("= 1\n", "line 1: expected an attribute name"),
    ],
)
def test_syntax_errors_name_the_line_and_key(text, expected):
    with pytest.raises(ocf.ConfError) as err:
        ocf.parse(text)
    assert str(err.value) == expected


def test_a_syntax_error_in_the_db_vector_never_shows_the_password():
    with pytest.raises(ocf.ConfError) as err:
        ocf.parse('DB = [ passwd = "hunter2" user = "one" ]\n')
    assert "hunter2" not in str(err.value)
    assert "DB" in str(err.value)


def _run_module(args: dict, tmp_path: Path) -> tuple[int, dict]:
    """The module as ansible-core 2.16's AnsibleModule reads its arguments: a JSON file of
    ANSIBLE_MODULE_ARGS named on the command line (AnsiballZ does the same on a host)."""
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"_ansible_check_mode": True, **args}}))
    done = subprocess.run(
        [sys.executable, str(MODULE), str(args_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)


def test_the_module_returns_the_attributes_and_changes_nothing(tmp_path):
    conf = tmp_path / "oned.conf"
    conf.write_text(SITE_32)
    code, result = _run_module({"path": str(conf)}, tmp_path)
    assert code == 0
    assert result["changed"] is False
    assert result["attributes"]["PORT"] == ["2634"]
    assert result["attributes"]["DB"][0]["passwd"] == 's3cr#t, "quoted"'


def test_the_module_fails_in_one_line_on_a_missing_or_broken_file(tmp_path):
    code, result = _run_module({"path": str(tmp_path / "nope.conf")}, tmp_path)
    assert code == 1
    assert result["msg"] == f"cannot read {tmp_path / 'nope.conf'}: No such file or directory"
    broken = tmp_path / "broken.conf"
    broken.write_text("PORT = 1\nDB = [ x = 1\n")
    code, result = _run_module({"path": str(broken)}, tmp_path)
    assert code == 1
    assert result["msg"] == f"{broken} line 3: expected ',' or ']' in DB = [ ... ]"
