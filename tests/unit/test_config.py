"""Site config: discovery order, the lab's config as written, validation, credentials."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

import upgrader
from upgrader.config.credentials import read_credentials
from upgrader.config.site import Environment, find_config, load_config
from upgrader.errors import EXIT_USAGE, ConfigError, ConfigFileError

PROJECT = Path(upgrader.__file__).parents[1]

LAB_CONFIG = """\
lab: ulab
environments:
  staging:
    oned: http://10.77.0.11:2633/RPC2
    credentials: /var/lib/upgrader-lab/ulab/staging.one_auth
    inventory: /var/lib/upgrader-lab/ulab/inventory/staging.yml
  production:
    oned: http://10.77.0.21:2633/RPC2
    credentials: /var/lib/upgrader-lab/ulab/production.one_auth
    inventory: /var/lib/upgrader-lab/ulab/inventory/production.yml
    requires_rehearsal_on: staging
"""

MINIMAL = """\
environments:
  staging:
    oned: http://s:2633/RPC2
    credentials: s.auth
    inventory: s.yml
  production:
    oned: http://p:2633/RPC2
    credentials: p.auth
    inventory: p.yml
"""


def write(tmp_path: Path, text: str, name: str = "upgrader.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigFileError) as info:
        load_config(path)
    assert info.value.exit_code == EXIT_USAGE
    assert "\n" not in str(info.value)
    return str(info.value).replace(str(path), "upgrader.yml")


# ------------------------------------------------------------------- loading
def test_lab_config_loads_as_written(tmp_path):
    config = load_config(write(tmp_path, LAB_CONFIG))
    assert config.lab == "ulab"
    assert config.path == tmp_path / "upgrader.yml"
    assert sorted(config.environments) == ["production", "staging"]
    assert config.environment("production") == Environment(
        name="production",
        oned="http://10.77.0.21:2633/RPC2",
        credentials=Path("/var/lib/upgrader-lab/ulab/production.one_auth"),
        inventory=Path("/var/lib/upgrader-lab/ulab/inventory/production.yml"),
        requires_rehearsal_on="staging",
        windows=(),
        batch_size=None,
    )
    assert config.environment("staging").requires_rehearsal_on is None
    assert config.runs_dir == tmp_path / "runs"
    assert config.runbooks_dir == PROJECT / "runbooks"
    assert config.playbooks_dir == PROJECT / "playbooks"


def test_relative_paths_resolve_against_the_config_directory(tmp_path, monkeypatch):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "books").mkdir()
    monkeypatch.chdir(tmp_path)
    config = load_config(
        write(
            tmp_path / "etc",
            MINIMAL + "runs_dir: state/runs\nrunbooks_dir: books\nplaybooks_dir: .\n",
        )
    )
    staging = config.environment("staging")
    assert staging.credentials == tmp_path / "etc" / "s.auth"
    assert staging.inventory == tmp_path / "etc" / "s.yml"
    assert config.runs_dir == tmp_path / "etc" / "state" / "runs"
    assert config.runbooks_dir == tmp_path / "etc" / "books"
    assert config.playbooks_dir == tmp_path / "etc" / "."
    assert config.lab is None


def test_windows_and_batch_size(tmp_path):
    config = load_config(
        write(
            tmp_path,
            MINIMAL
            + """\
    batch_size: 3
    windows:
      - {weekly: "Sat 01:00", duration: 4h, timezone: Europe/Berlin}
      - {weekly: "Sun 23:30", duration: 5400}
      - {start: 2024-06-01T01:00:00+02:00, end: "2024-06-01T05:00:00+02:00"}
""",
        )
    )
    production = config.environment("production")
    assert production.batch_size == 3
    assert production.windows == (
        {"weekly": "Sat 01:00", "duration": "4h", "timezone": "Europe/Berlin"},
        {"weekly": "Sun 23:30", "duration": 5400},
        {"start": "2024-06-01T01:00:00+02:00", "end": "2024-06-01T05:00:00+02:00"},
    )


def test_oned_timeout_is_per_environment_and_defaults_to_30_s(tmp_path):
    config = load_config(write(tmp_path, MINIMAL + "    oned_timeout: 2m\n"))
    assert config.environment("production").oned_timeout == 120.0
    assert config.environment("staging").oned_timeout == 30.0


def test_unknown_environment_lists_the_known_ones(tmp_path):
    config = load_config(write(tmp_path, LAB_CONFIG))
    with pytest.raises(ConfigError) as info:
        config.environment("prod")
    assert str(info.value) == (
        f"no environment 'prod' in {tmp_path / 'upgrader.yml'}: it has production, staging"
    )
    assert info.value.exit_code == EXIT_USAGE


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yml")
    assert str(info.value) == f"site config '{tmp_path / 'nope.yml'}' does not exist"
    assert info.value.exit_code == EXIT_USAGE


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_config_file(tmp_path):
    path = write(tmp_path, LAB_CONFIG)
    path.chmod(0)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"cannot read site config '{path}': Permission denied"


def test_config_that_is_a_directory(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value) == f"cannot read site config '{tmp_path}': Is a directory"


PROD = MINIMAL.index("  production:")
BAD = {
    "malformed": (
        "environments:\n  staging: [\n",
        "upgrader.yml:3:1: malformed YAML: expected the node content, but found '<stream end>'",
    ),
    "unknown-top-key": (
        MINIMAL + "run_dir: x\n",
        "upgrader.yml:10:1: run_dir: unknown key 'run_dir' (did you mean 'runs_dir'?)",
    ),
    "unknown-env-key": (
        MINIMAL + "    inventroy: x\n",
        "upgrader.yml:10:5: environments.production.inventroy: unknown key "
        "'inventroy' (did you mean 'inventory'?)",
    ),
    "missing-environments": ("lab: x\n", "upgrader.yml:1:1: environments: missing required key"),
    "missing-production": (
        MINIMAL[:PROD],
        "upgrader.yml:2:3: environments.production: missing required environment",
    ),
    "missing-oned": (
        MINIMAL.replace("    oned: http://p:2633/RPC2\n", ""),
        "upgrader.yml:7:5: environments.production.oned: missing required key",
    ),
    "bad-oned": (
        MINIMAL.replace("http://p:2633/RPC2", "p:2633"),
        "upgrader.yml:7:11: environments.production.oned: 'p:2633' is not an "
        "http(s) URL like http://frontend:2633/RPC2",
    ),
    "bad-env-name": (
        MINIMAL + "  Lab_Env:\n    oned: http://x/\n",
        "upgrader.yml:11:5: environments.Lab_Env: 'Lab_Env' is not an environment "
        "name (lower-case letters, digits and dashes)",
    ),
    "rehearsal-unknown": (
        MINIMAL + "    requires_rehearsal_on: stagin\n",
        "upgrader.yml:10:28: environments.production.requires_rehearsal_on: "
        "no environment 'stagin' (did you mean 'staging'?)",
    ),
    "rehearsal-circle": (
        MINIMAL.replace(
            "    inventory: s.yml\n",
            "    inventory: s.yml\n    requires_rehearsal_on: production\n",
        )
        + "    requires_rehearsal_on: staging\n",
        "upgrader.yml:6:28: environments.staging.requires_rehearsal_on: "
        "rehearsals go round in a circle: staging -> production -> staging",
    ),
    "rehearsal-self": (
        MINIMAL + "    requires_rehearsal_on: production\n",
        "upgrader.yml:10:28: environments.production.requires_rehearsal_on: "
        "rehearsals go round in a circle: production -> production",
    ),
    "batch-size-zero": (
        MINIMAL + "    batch_size: 0\n",
        "upgrader.yml:10:17: environments.production.batch_size: must be at least 1, got 0",
    ),
    "windows-not-list": (
        MINIMAL + "    windows: weekly\n",
        "upgrader.yml:10:14: environments.production.windows: expected a list, got a string",
    ),
    "window-bad-weekly": (
        MINIMAL + "    windows: [{weekly: Saturday, duration: 4h}]\n",
        "upgrader.yml:10:24: environments.production.windows[0].weekly: "
        "'Saturday' is not a weekly start like 'Sat 01:00'",
    ),
    "window-typo": (
        MINIMAL + "    windows: [{weekly: Sat 01:00, duraton: 4h}]\n",
        "upgrader.yml:10:35: environments.production.windows[0].duraton: unknown "
        "key 'duraton' (did you mean 'duration'?)",
    ),
    "window-no-duration": (
        MINIMAL + "    windows: [{weekly: Sat 01:00}]\n",
        "upgrader.yml:10:15: environments.production.windows[0].duration: missing required key",
    ),
    "window-bad-timezone": (
        MINIMAL + "    windows: [{weekly: Sat 01:00, duration: 4h, timezone: Mars/Olympus}]\n",
        "upgrader.yml:10:59: environments.production.windows[0].timezone: "
        "unknown timezone 'Mars/Olympus' (expected a name like "
        "Europe/Berlin or UTC)",
    ),
    "window-naive-start": (
        MINIMAL + "    windows: [{start: 2024-06-01T01:00, end: 2024-06-01T05:00+02:00}]\n",
        "upgrader.yml:10:23: environments.production.windows[0].start: "
        "'2024-06-01T01:00' has no UTC offset (add one, like +02:00)",
    ),
    "window-end-before-start": (
        MINIMAL + "    windows: [{start: 2024-06-01T05:00+02:00, end: 2024-06-01T01:00+02:00}]\n",
        "upgrader.yml:10:52: environments.production.windows[0].end: must be after start",
    ),
    "window-bad-time": (
        MINIMAL + "    windows: [{start: tonight, end: 2024-06-01T01:00Z}]\n",
        "upgrader.yml:10:23: environments.production.windows[0].start: "
        "'tonight' is not an ISO 8601 time like 2024-06-01T01:00:00+02:00",
    ),
    "runbooks-dir-missing": (
        MINIMAL + "runbooks_dir: nowhere\n",
        "upgrader.yml:10:15: runbooks_dir: '{dir}/nowhere' is not a directory",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_is_refused_with_line_and_key_path(tmp_path, case):
    text, expected = BAD[case]
    assert error_of(tmp_path, text) == expected.replace("{dir}", str(tmp_path))


def test_config_error_is_a_config_error_with_its_location(tmp_path):
    path = write(tmp_path, MINIMAL + "    inventroy: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert isinstance(info.value, ConfigFileError)
    assert (info.value.file, info.value.line, info.value.column, info.value.key_path) == (
        str(path),
        10,
        5,
        "environments.production.inventroy",
    )


# ----------------------------------------------------------------- discovery
def never_up(name: str) -> bool:
    raise AssertionError(f"asked whether lab {name} is up")


def lab(root: Path, name: str) -> Path:
    (root / name).mkdir(parents=True)
    return write(root / name, LAB_CONFIG.replace("ulab", name))


def test_explicit_config_wins(tmp_path):
    write(tmp_path, MINIMAL)
    given = write(tmp_path, MINIMAL, "site.yml")
    found = find_config(
        Path("site.yml"),
        environ={"UPGRADER_CONFIG": str(tmp_path / "x")},
        cwd=tmp_path,
        lab_root=tmp_path / "labs",
        lab_is_up=never_up,
    )
    assert found == given


def test_environment_variable_comes_second(tmp_path):
    write(tmp_path, MINIMAL)
    env_config = write(tmp_path, MINIMAL, "from-env.yml")
    found = find_config(
        None,
        environ={"UPGRADER_CONFIG": str(env_config)},
        cwd=tmp_path,
        lab_root=tmp_path / "labs",
        lab_is_up=never_up,
    )
    assert found == env_config


def test_working_directory_comes_third(tmp_path):
    here = write(tmp_path, MINIMAL)
    assert (
        find_config(
            None,
            environ={"UPGRADER_CONFIG": ""},
            cwd=tmp_path,
            lab_root=tmp_path / "labs",
            lab_is_up=never_up,
        )
        == here
    )


def test_a_running_lab_comes_last(tmp_path):
    root = tmp_path / "labs"
    lab(root, "old")
    running = lab(root, "ulab")
    asked = []

    def is_up(name: str) -> bool:
        asked.append(name)
        return name == "ulab"

    assert find_config(None, environ={}, cwd=tmp_path, lab_root=root, lab_is_up=is_up) == running
    assert sorted(asked) == ["old", "ulab"]


def test_no_config_anywhere(tmp_path):
    lab(tmp_path / "labs", "down")
    with pytest.raises(ConfigError) as info:
        find_config(
            None, environ={}, cwd=tmp_path, lab_root=tmp_path / "labs", lab_is_up=lambda name: False
        )
    assert str(info.value) == (
        "no site config: pass --config FILE, set UPGRADER_CONFIG, or create ./upgrader.yml"
    )
    assert info.value.exit_code == EXIT_USAGE


def test_two_running_labs_are_ambiguous(tmp_path):
    root = tmp_path / "labs"
    lab(root, "a")
    lab(root, "b")
    with pytest.raises(ConfigError) as info:
        find_config(None, environ={}, cwd=tmp_path, lab_root=root, lab_is_up=lambda n: True)
    assert str(info.value) == "several labs are up (a, b): say which config to use"


@pytest.mark.parametrize(
    ("explicit", "environ", "source"),
    [
        (Path("missing.yml"), {}, "--config"),
        (None, {"UPGRADER_CONFIG": "missing.yml"}, "$UPGRADER_CONFIG"),
    ],
)
def test_a_named_config_that_does_not_exist_is_refused(tmp_path, explicit, environ, source):
    write(tmp_path, MINIMAL)  # not used as a fallback
    with pytest.raises(ConfigError) as info:
        find_config(explicit, environ=environ, cwd=tmp_path, lab_root=tmp_path, lab_is_up=never_up)
    assert str(info.value) == (
        f"site config '{tmp_path / 'missing.yml'}' (from {source}) does not exist"
    )


# --------------------------------------------------------------- credentials
def environment(credentials: Path) -> Environment:
    return Environment(
        name="staging",
        oned="http://s:2633/RPC2",
        credentials=credentials,
        inventory=credentials.parent / "inv.yml",
        requires_rehearsal_on=None,
        windows=(),
        batch_size=None,
    )


def credentials_file(tmp_path: Path, mode: int, text: str = "oneadmin:s3cret-pw\n") -> Path:
    path = tmp_path / "one_auth"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_credentials_are_read(tmp_path, mode):
    secret = read_credentials(environment(credentials_file(tmp_path, mode)))
    assert secret.reveal() == "oneadmin:s3cret-pw"
    assert "s3cret" not in f"{secret} {secret!r}"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_credentials_readable_by_others_are_refused(tmp_path, mode):
    path = credentials_file(tmp_path, mode)
    with pytest.raises(ConfigError) as info:
        read_credentials(environment(path))
    assert str(info.value) == (
        f"permissions {mode:04o} for '{path}' are too open: it must be "
        f"readable by its owner only (chmod 600 {path})"
    )
    assert info.value.exit_code == EXIT_USAGE


def test_missing_credentials_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        read_credentials(environment(tmp_path / "none"))
    assert str(info.value) == (
        f"credentials file '{tmp_path / 'none'}' for environment 'staging' does not exist"
    )


def test_credentials_that_are_not_a_file(tmp_path):
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(ConfigError) as info:
        read_credentials(environment(tmp_path / "dir"))
    assert str(info.value) == f"credentials file '{tmp_path / 'dir'}' is not a regular file"


@pytest.mark.parametrize(
    "text", ["", "oneadmin\n", "oneadmin:\n", ":pw\n", "oneadmin:s3cret-pw\nother:s3cret-pw\n"]
)
def test_malformed_credentials_never_show_their_content(tmp_path, text):
    path = credentials_file(tmp_path, 0o600, text)
    with pytest.raises(ConfigError) as info:
        read_credentials(environment(path))
    assert str(info.value) == f"credentials file '{path}' must hold one line 'user:password'"
    assert "s3cret" not in str(info.value) and "oneadmin" not in str(info.value)
