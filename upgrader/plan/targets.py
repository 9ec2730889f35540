"""Which runbooks a target means: the version hops 3.2 -> 3.4 -> 3.6, or one storage move.

``upgrader run 3.6`` walks the version path with runbooks/opennebula-<from>-to-<to>.yml;
``upgrader run nfs`` takes the one runbooks/storage-<from>-to-nfs.yml, which works on any
OpenNebula version (and ``upgrader run ocfs2`` the way back, when a runbook for it exists).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from upgrader.config.site import SiteConfig
from upgrader.config.yaml_file import IDENTIFIER
from upgrader.errors import UsageError
from upgrader.plan.planner import runbook_file
from upgrader.plan.runbook import load_runbook
from upgrader.plan.runbook_model import Runbook
from upgrader.plan.versions import SERIES, series_of


def runbooks_for(
    site: SiteConfig, hops: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Runbook]:
    """The runbook of every hop, from runbooks_dir/opennebula-<from>-to-<to>.yml (a version
    hop) or storage-<from>-to-<to>.yml (a storage move)."""
    out = {}
    for hop in hops:
        path = site.runbooks_dir / runbook_file(hop)
        if not path.is_file():
            what = "OpenNebula" if hop[0] in SERIES else "storage"
            raise UsageError(f"no runbook for {what} {hop[0]} -> {hop[1]}: {path} is missing")
        out[hop] = load_runbook(path, playbooks_dir=site.playbooks_dir)
    return out


def storage_hop(site: SiteConfig, target: str) -> tuple[str, str] | None:
    """``("ocfs2", "nfs")`` when ``target`` names the storage a runbook of
    runbooks_dir/storage-*-to-<target>.yml moves to; None when it is a version."""
    name = target.strip().lower()
    if not IDENTIFIER.fullmatch(name) or name[0].isdigit():
        return None
    found = sorted(site.runbooks_dir.glob(f"storage-*-to-{name}.yml"))
    if not found:
        known = sorted(
            p.stem.rsplit("-to-", 1)[-1] for p in site.runbooks_dir.glob("storage-*.yml")
        )
        raise UsageError(
            f"unknown target '{target}': a version ({', '.join(SERIES)}) or a storage a "
            f"runbook moves to ({', '.join(known) or 'none in ' + str(site.runbooks_dir)})"
        )
    if len(found) > 1:
        raise UsageError(
            f"more than one runbook moves storage to '{name}': {', '.join(p.name for p in found)}",
            hint="keep one storage-<from>-to-<to>.yml per destination",
        )
    source = found[0].stem[len("storage-") : -len(f"-to-{name}")]
    return (source, name)


def target_of(hops: Sequence[tuple[str, str]], target: str) -> str:
    """What a plan goes to: the version series, or the storage of a storage move."""
    return hops[-1][1] if hops and hops[0][0] not in SERIES else series_of(target)


def playbook_digests(site: SiteConfig, runbooks: Mapping[Any, Runbook]) -> dict[str, str]:
    """Content digests of every playbook the runbooks name, and of the shared roles."""
    out = {}
    for rb in runbooks.values():
        for step in rb.steps:
            if step.playbook:
                out[step.playbook] = hashlib.sha256(
                    (site.playbooks_dir / step.playbook).read_bytes()
                ).hexdigest()
    roles = site.playbooks_dir / "roles"
    if roles.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in roles.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(roles)).encode() + b"\0" + f.read_bytes())
        out["roles/"] = h.hexdigest()
    return out
