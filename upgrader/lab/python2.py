"""Python 2.7.18 from Debian's ``bullseye`` archive: the interpreter of the lab's 2012 hosts.

Debian 11 is the last Debian that serves Python 2. Its packages are fetched with ``apt-get
download`` from a source list of our own (private lists and cache, the machine's apt state and
sources untouched; signatures checked against Debian's archive keyring), and kept in a cache:

* the lab puts the ``.deb`` files into its own apt repository, and each 2012 host installs
  ``python2.7`` from there as a 2012 Debian host had it;
* the tests and the storage benchmark run host code under an extracted copy
  (``dpkg-deb -x``, no root needed), through a wrapper that finds its bullseye libraries.

``python -m upgrader.lab.python2 fetch`` fetches and extracts, and prints the interpreter's path.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from upgrader.errors import UpgraderError

VERSION = "2.7.18"
SOURCE = (
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    "http://deb.debian.org/debian bullseye main\n"
)
# python2.7 and what bookworm does not have of its dependencies (bullseye's libssl1.1, libffi7,
# mime-support), and the packages that make /usr/bin/python2 and /usr/bin/python.
PACKAGES = (
    "python2.7",
    "python2.7-minimal",
    "libpython2.7-minimal",
    "libpython2.7-stdlib",
    "libssl1.1",
    "libffi7",
    "mime-support",
    "python2",
    "python2-minimal",
    "libpython2-stdlib",
    "python-is-python2",
)
# What a 2012 host installs from the lab's repository (apt takes the rest as dependencies).
HOST_PACKAGES = ("python2.7", "python-is-python2")


class Python2Error(UpgraderError):
    """Python 2.7 could not be fetched or extracted."""


def cache_dir() -> Path:
    """``$UPGRADER_LAB_CACHE``, else root's /var/cache/upgrader-lab, else ~/.cache/upgrader-lab."""
    if os.environ.get("UPGRADER_LAB_CACHE"):
        return Path(os.environ["UPGRADER_LAB_CACHE"])
    if os.geteuid() == 0:
        return Path("/var/cache/upgrader-lab")
    return Path.home() / ".cache" / "upgrader-lab"


def debs(cache: Path | None = None) -> list[Path]:
    """The fetched ``.deb`` files, one a package, or [] when any is missing."""
    folder = (cache or cache_dir()) / "bullseye" / "debs"
    found = {p.name.split("_")[0]: p for p in folder.glob("*.deb")} if folder.is_dir() else {}
    return [found[name] for name in PACKAGES] if set(PACKAGES) <= set(found) else []


def fetch(cache: Path | None = None) -> list[Path]:
    """Download the packages once (a second call finds them); return their files."""
    have = debs(cache)
    if have:
        return have
    base = (cache or cache_dir()) / "bullseye"
    for sub in ("lists/partial", "cache/archives/partial", "debs"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "sources.list").write_text(SOURCE)
    options = [
        f"-oDir::Etc::sourcelist={base / 'sources.list'}",
        "-oDir::Etc::sourceparts=-",
        f"-oDir::State::Lists={base / 'lists'}",
        f"-oDir::Cache={base / 'cache'}",
        "-oDir::State::status=/dev/null",
        "-oDebug::NoLocking=1",
        "-oAcquire::Retries=3",
    ]
    if os.geteuid() == 0:  # apt's sandbox user could not write to our directories
        options.append("-oAPT::Sandbox::User=root")
    for args in (["update"], ["download", *PACKAGES]):
        done = subprocess.run(
            ["apt-get", "-q", *options, *args],
            cwd=base / "debs",
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise Python2Error(
                f"apt-get {args[0]} from Debian's bullseye archive failed: "
                f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}",
                hint="the lab's 2012 hosts need Python 2.7 from deb.debian.org; check the "
                "network, or use --profile modern",
            )
    have = debs(cache)
    if not have:
        raise Python2Error("apt-get download did not give every Python 2.7 package")
    return have


def interpreter(cache: Path | None = None) -> Path | None:
    """The extracted Python 2.7 (a wrapper script), extracting it once; None when not fetched."""
    files = debs(cache)
    if not files:
        return None
    base = (cache or cache_dir()) / "bullseye"
    wrapper = base / "bin" / "python2.7"
    if wrapper.exists():
        return wrapper
    root = base / "root"
    for deb in files:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    wrapper.parent.mkdir(exist_ok=True)
    wrapper.write_text(
        "#!/bin/sh\n# Python 2.7 from Debian bullseye's packages (upgrader.lab.python2).\n"
        f'LD_LIBRARY_PATH="{root}/usr/lib/x86_64-linux-gnu${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}" '
        f'exec "{root}/usr/bin/python2.7" "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m upgrader.lab.python2")
    parser.add_argument("command", choices=["fetch", "where"])
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            fetch()
        path = interpreter()
    except Python2Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if path is None:
        print("error: Python 2.7 is not fetched: run its 'fetch'", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
