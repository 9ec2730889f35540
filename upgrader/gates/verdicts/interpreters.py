"""Which Python a play uses on a host, worked out as ansible-core 2.16's discovery does.

``ansible.executor.interpreter_discovery`` asks the host ``command -v`` for each name of
``INTERPRETER_PYTHON_FALLBACK`` (python3.12 ... python3.6, /usr/bin/python3,
/usr/libexec/platform-python, python2.7, /usr/bin/python, python), asks the first one found for
the distribution, and takes the distribution's own Python from ``_INTERPRETER_PYTHON_DISTRO_MAP``
when it was found, else the first one found. ``ansible_python_interpreter`` set to a path skips
all of it. ``targets-supported`` judges the interpreter ``discovered`` names.

Pure: no I/O; the names found and their versions come from the host's raw answer.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

AUTO = ("auto", "auto_silent", "auto_legacy", "auto_legacy_silent")  # discovery's modes

# ansible-core 2.16.20's table of the Python each distribution ships (the check play sends the
# controller's own; this is what a case file gets without one).
DISTRO_MAP: Mapping[str, Mapping[str, str]] = {
    "debian": {"8": "/usr/bin/python", "10": "/usr/bin/python3"},
    "fedora": {"23": "/usr/bin/python3"},
    "redhat": {
        "6": "/usr/bin/python",
        "8": "/usr/libexec/platform-python",
        "9": "/usr/bin/python3",
    },
    "ubuntu": {"14": "/usr/bin/python", "16": "/usr/bin/python3"},
}
# The distributions of Ansible's OS families that share a family's entry above (lower case).
_REDHAT = (
    "redhat rhel fedora centos scientific slc ascendos cloudlinux psbm oraclelinux ovs oel amazon "
    "virtuozzo xenserver alibaba euleros openeuler almalinux rocky tencentos eurolinux"
)
_DEBIAN = "debian ubuntu raspbian neon devuan kali steamos parrot uos deepin osmc"
FAMILY: Mapping[str, str] = {
    **{name: "redhat" for name in _REDHAT.split()},
    **{name: "debian" for name in _DEBIAN.split()},
}


@dataclass(frozen=True)
class Interpreter:
    """A Python the host was asked about: ``path`` "" when not found, ``version`` "" when it did
    not run (``error`` says what it printed); ``apt``: whether ``import apt`` works."""

    looked_for: str
    path: str = ""
    version: str = ""
    error: str = ""
    apt: bool | None = None

    @property
    def usable(self) -> bool:
        """Python 2.7 or 3.6+: what ansible-core 2.16 manages."""
        major_minor = loose(self.version)[:2]
        return bool(self.version) and major_minor >= (2, 7) and not (3, 0) <= major_minor < (3, 6)

    def said(self) -> str:
        return f"Python {self.version}" if self.version else f"does not run: {self.error}"


def loose(version: str) -> tuple[int, ...]:
    """``"6.10"`` -> ``(6, 10)``: the numbers of a version, for comparing."""
    return tuple(int(n) for n in re.findall(r"\d+", version))


def platform_python(
    os_id: str, os_version: str, distro_map: Mapping[str, Mapping[str, str]]
) -> str:
    """The distribution's own Python by discovery's table ("" when the table has no entry):
    the entry of its version, else of the nearest older one (of the oldest, if older still)."""
    versions = distro_map.get(os_id) or distro_map.get(FAMILY.get(os_id, ""))
    if not versions or not os_version:
        return ""
    if os_version in versions:
        return versions[os_version]
    keys = sorted(versions, key=loose)
    at = bisect.bisect([loose(k) for k in keys], loose(os_version))
    return versions[keys[max(at - 1, 0)]]


def found(looked: Sequence[Interpreter]) -> list[Interpreter]:
    """The interpreters discovery finds, once a path, in its order."""
    seen: dict[str, Interpreter] = {}
    for i in looked:
        if i.path:
            seen.setdefault(i.path, i)
    return list(seen.values())


def discovered(
    looked: Sequence[Interpreter],
    os_id: str,
    os_version: str,
    setting: str = "auto",
    distro_map: Mapping[str, Mapping[str, str]] = DISTRO_MAP,
) -> Interpreter | None:
    """What discovery in mode ``setting`` picks among ``looked`` (None: it finds none, and
    Ansible then tries /usr/bin/python, which is not there)."""
    first = found(looked)
    if not first:
        return None
    if not first[0].version:
        return first[0]  # discovery asks the first one found for the platform: that fails
    by_path = {i.path: i for i in first}
    platform = platform_python(os_id, os_version, distro_map)
    legacy = "/usr/bin/python" if setting.startswith("auto_legacy") else ""
    if legacy in by_path and platform != legacy:
        return by_path[legacy]
    return by_path.get(platform, first[0])
