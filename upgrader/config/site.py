"""The site config (``upgrader.yml``): environments, their oned, credentials and inventories.

A site config::

    lab: ulab                          # optional: the lab that wrote it
    runs_dir: runs                     # optional, default <config dir>/runs
    runbooks_dir: /srv/upgrader/runbooks    # optional, default the project's runbooks/
    playbooks_dir: /srv/upgrader/playbooks  # optional, default the project's playbooks/
    environments:                      # at least staging and production
      staging:
        oned: http://10.77.0.11:2633/RPC2
        credentials: staging.one_auth  # ONE_AUTH style "user:password", mode 0600 or 0400
        inventory: inventory/staging.yml
      production:
        oned: http://10.77.0.21:2633/RPC2
        credentials: /etc/upgrader/production.one_auth
        inventory: /etc/upgrader/inventory/production.yml
        requires_rehearsal_on: staging # a plan must have passed there first
        batch_size: 2                  # default host batch for per-host steps
        vault_password_file: /etc/upgrader/production.vault  # optional, mode 0600 or 0400
        oned_timeout: 30s              # optional: how long one XML-RPC call may take
        windows:
          - {weekly: "Sat 01:00", duration: 4h, timezone: Europe/Berlin}
          - {start: "2024-06-01T01:00:00+02:00", end: "2024-06-01T05:00:00+02:00"}

Relative paths resolve against the config file's directory. Errors in the file name its
line, column and key path, like runbook errors.
"""

from __future__ import annotations

import os
import re
import subprocess
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import yaml

from upgrader.config.credentials import open_private
from upgrader.config.yaml_file import IDENTIFIER, YamlFile, suggest
from upgrader.errors import ConfigError, ConfigFileError

PROJECT_DIR = Path(__file__).resolve().parents[2]
LAB_ROOT = Path("/var/lib/upgrader-lab")
CONFIG_NAME = "upgrader.yml"
REQUIRED_ENVIRONMENTS = ("staging", "production")
DEFAULT_ONED_TIMEOUT = 30.0

_TOP_KEYS = ("lab", "environments", "runs_dir", "runbooks_dir", "playbooks_dir")
_ENV_KEYS = (
    "oned",
    "credentials",
    "inventory",
    "requires_rehearsal_on",
    "windows",
    "batch_size",
    "vault_password_file",
    "oned_timeout",
)
_WEEKLY_KEYS = ("weekly", "duration", "timezone")
_DATED_KEYS = ("start", "end")
_WEEKLY = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([01]\d|2[0-3]):[0-5]\d")


@dataclass(frozen=True)
class Environment:
    """One cloud of the site: where its oned is, how to log in, which hosts it has."""

    name: str
    oned: str
    credentials: Path
    inventory: Path
    requires_rehearsal_on: str | None
    windows: tuple[Mapping[str, Any], ...]  # validated, not yet interpreted (windows/window.py)
    batch_size: int | None
    # Ansible Vault's password for the inventory's ``!vault`` values (given to every play)
    vault_password_file: Path | None = None
    # how long one call to oned may go unanswered before the run calls oned unreachable
    oned_timeout: float = DEFAULT_ONED_TIMEOUT


@dataclass(frozen=True)
class SiteConfig:
    """The whole site config, with every path made absolute."""

    path: Path
    environments: Mapping[str, Environment]
    runs_dir: Path
    runbooks_dir: Path
    playbooks_dir: Path
    lab: str | None

    def environment(self, name: str) -> Environment:
        """The environment called ``name``, or a ConfigError naming the known ones."""
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(sorted(self.environments))
            raise ConfigError(
                f"no environment '{name}' in {self.path}: it has {known}",
                hint="--stage selects staging; without it, production",
            ) from None


# ------------------------------------------------------------------ discovery
def netns_exists(name: str) -> bool:
    """Whether ``ip netns list`` shows a network namespace called ``name``."""
    try:
        listed = subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.split()[0] == name for line in listed.splitlines() if line.strip())


def find_config(
    explicit: Path | None,
    *,
    environ: Mapping[str, str],
    cwd: Path,
    lab_root: Path = LAB_ROOT,
    lab_is_up: Callable[[str], bool] | None = None,
) -> Path:
    """The site config to use: ``--config``, ``$UPGRADER_CONFIG``, ``./upgrader.yml``, then
    the config of the one lab that is up (``lab_is_up(name)``, default: its ``<name>-ctl``
    network namespace exists)."""
    for given, source in (
        (explicit, "--config"),
        (environ.get("UPGRADER_CONFIG"), "$UPGRADER_CONFIG"),
    ):
        if given:
            path = cwd / Path(given)
            if not path.is_file():
                problem = "is not a file" if path.exists() else "does not exist"
                raise ConfigError(
                    f"site config '{path}' (from {source}) {problem}",
                    hint=f"check the path given by {source}",
                )
            return path
    if (cwd / CONFIG_NAME).is_file():
        return cwd / CONFIG_NAME
    is_up = lab_is_up or (lambda name: netns_exists(f"{name}-ctl"))
    labs = sorted(p for p in lab_root.glob(f"*/{CONFIG_NAME}") if is_up(p.parent.name))
    if len(labs) == 1:
        return labs[0]
    if len(labs) > 1:
        names = ", ".join(p.parent.name for p in labs)
        raise ConfigError(
            f"several labs are up ({names}): say which config to use",
            hint=f"pass --config {labs[0]}",
        )
    raise ConfigError(
        f"no site config: pass --config FILE, set UPGRADER_CONFIG, or create ./{CONFIG_NAME}",
        hint="upgrader lab up writes one for the built-in lab",
    )


# -------------------------------------------------------------------- loading
def load_config(path: Path) -> SiteConfig:
    """Read and validate the site config at ``path``.

    Raises:
        ConfigError: the file is missing or unreadable (``ConfigFileError``: malformed or
            invalid, with line, column and key path).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"site config '{path}' does not exist",
            hint=f"pass --config FILE, set UPGRADER_CONFIG, or create ./{CONFIG_NAME}",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read site config '{path}': {exc.strerror or exc}") from None
    doc = YamlFile(path, data, ConfigFileError)
    base = path.absolute().parent
    top = doc.fields(doc.root, "", _TOP_KEYS, required=("environments",))

    def directory(key: str, default: Path, *, must_exist: bool) -> Path:
        if key not in top:
            return default
        found = base / doc.text(top[key][1], key)
        # runs_dir may be created later, but not in place of a file
        if (must_exist or found.exists()) and not found.is_dir():
            doc.fail(top[key][1], key, f"'{found}' is not a directory")
        return found

    envs_node = top["environments"][1]
    names = doc.fields(envs_node, "environments", sorted(_keys_of(envs_node)))
    for missing in REQUIRED_ENVIRONMENTS:
        if missing not in names:
            doc.fail(envs_node, f"environments.{missing}", "missing required environment")
    environments = {
        name: _environment(doc, name, value, base) for name, (_, value) in names.items()
    }
    _check_rehearsals(doc, environments, names)
    return SiteConfig(
        path=path.absolute(),
        environments=environments,
        runs_dir=directory("runs_dir", base / "runs", must_exist=False),
        runbooks_dir=directory("runbooks_dir", PROJECT_DIR / "runbooks", must_exist=True),
        playbooks_dir=directory("playbooks_dir", PROJECT_DIR / "playbooks", must_exist=True),
        lab=doc.text(top["lab"][1], "lab") if "lab" in top else None,
    )


def _environment(doc: YamlFile, name: str, node: yaml.Node, base: Path) -> Environment:
    path = f"environments.{name}"
    if not IDENTIFIER.fullmatch(name):
        doc.fail(
            node,
            path,
            f"'{name}' is not an environment name (lower-case letters, digits and dashes)",
        )
    keys = doc.fields(node, path, _ENV_KEYS, required=("oned", "credentials", "inventory"))
    oned = doc.text(keys["oned"][1], f"{path}.oned")
    url = urlsplit(oned)
    if url.scheme not in ("http", "https") or not url.hostname or not _valid_port(url):
        doc.fail(
            keys["oned"][1],
            f"{path}.oned",
            f"'{oned}' is not an http(s) URL like http://frontend:2633/RPC2",
        )
    windows = ()
    if "windows" in keys:
        windows = tuple(
            _window(doc, item, f"{path}.windows[{i}]")
            for i, item in enumerate(doc.items(keys["windows"][1], f"{path}.windows"))
        )
    vault = None
    if "vault_password_file" in keys:
        # Checked now, like ssh checks a key: a run must not stop at its first play for it.
        vault = base / doc.text(keys["vault_password_file"][1], f"{path}.vault_password_file")
        os.close(
            open_private(
                vault,
                "vault password file",
                name,
                "write the vault password to it, then chmod 600 it",
            )
        )
    return Environment(
        name=name,
        oned=oned,
        oned_timeout=(
            doc.seconds(keys["oned_timeout"][1], f"{path}.oned_timeout", positive=True)
            if "oned_timeout" in keys
            else DEFAULT_ONED_TIMEOUT
        ),
        credentials=base / doc.text(keys["credentials"][1], f"{path}.credentials"),
        inventory=base / doc.text(keys["inventory"][1], f"{path}.inventory"),
        requires_rehearsal_on=(
            doc.text(keys["requires_rehearsal_on"][1], f"{path}.requires_rehearsal_on")
            if "requires_rehearsal_on" in keys
            else None
        ),
        windows=windows,
        batch_size=(
            doc.integer(keys["batch_size"][1], f"{path}.batch_size", minimum=1)
            if "batch_size" in keys
            else None
        ),
        vault_password_file=vault,
    )


def _valid_port(url: SplitResult) -> bool:
    """Whether the URL's port (if any) is a number from 0 to 65535 (``.port`` raises if not)."""
    try:
        url.port  # noqa: B018 - read for its check
    except ValueError:
        return False
    return True


def _window(doc: YamlFile, node: yaml.Node, path: str) -> Mapping[str, Any]:
    """``{weekly, duration, timezone}`` or ``{start, end}``, checked and kept as text."""
    given = _keys_of(node)
    if "weekly" in given or not given & set(_DATED_KEYS):
        keys = doc.fields(node, path, _WEEKLY_KEYS, required=("weekly", "duration"))
        weekly = doc.text(
            keys["weekly"][1],
            f"{path}.weekly",
            pattern=_WEEKLY,
            what="a weekly start like 'Sat 01:00'",
        )
        doc.seconds(keys["duration"][1], f"{path}.duration", positive=True)
        out: dict[str, Any] = {
            "weekly": weekly,
            "duration": doc.value(keys["duration"][1], f"{path}.duration"),
        }
        if "timezone" in keys:
            zone = doc.text(keys["timezone"][1], f"{path}.timezone")
            try:
                zoneinfo.ZoneInfo(zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                doc.fail(
                    keys["timezone"][1],
                    f"{path}.timezone",
                    f"unknown timezone '{zone}' (expected a name like Europe/Berlin or UTC)",
                )
            out["timezone"] = zone
        return out
    keys = doc.fields(node, path, _DATED_KEYS, required=_DATED_KEYS)
    times = {}
    for key, (_, value) in keys.items():
        # The node's text, not the value: YAML would turn an unquoted time into a datetime.
        text = value.value if isinstance(value, yaml.ScalarNode) else None
        try:
            times[key] = datetime.fromisoformat(str(text))
        except ValueError:
            doc.fail(
                value,
                f"{path}.{key}",
                f"'{text}' is not an ISO 8601 time like 2024-06-01T01:00:00+02:00",
            )
        if times[key].tzinfo is None:
            doc.fail(value, f"{path}.{key}", f"'{text}' has no UTC offset (add one, like +02:00)")
    if times["end"] <= times["start"]:
        doc.fail(keys["end"][1], f"{path}.end", "must be after start")
    return {key: value.value for key, (_, value) in keys.items()}


def _keys_of(node: yaml.Node) -> set[str]:
    """The keys a mapping node spells (empty for anything else)."""
    if not isinstance(node, yaml.MappingNode):
        return set()
    return {str(key.value) for key, _ in node.value}


def _check_rehearsals(
    doc: YamlFile,
    environments: Mapping[str, Environment],
    nodes: Mapping[str, tuple[yaml.Node, yaml.Node]],
) -> None:
    """``requires_rehearsal_on`` names another environment, and never in a circle."""
    for env in environments.values():
        wanted = env.requires_rehearsal_on
        if wanted is None:
            continue
        node = next(v for k, v in nodes[env.name][1].value if k.value == "requires_rehearsal_on")
        path = f"environments.{env.name}.requires_rehearsal_on"
        if wanted not in environments:
            doc.fail(node, path, f"no environment '{wanted}'{suggest(wanted, environments)}")
        seen = [env.name]
        while wanted is not None:
            if wanted in seen:
                doc.fail(
                    node, path, f"rehearsals go round in a circle: {' -> '.join([*seen, wanted])}"
                )
            seen.append(wanted)
            wanted = environments[wanted].requires_rehearsal_on
