"""Checks the CLI makes on what the operator gave it before anything talks to the hosts.

``cli.py`` calls them; like every check they raise ``UpgraderError``s, which ``cli.main``
turns into one line and an exit code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from upgrader.errors import UsageError


def workspace(config: Path | None, environment: str) -> Any:
    """The workspace of a command that works on the cloud's hosts, its inventory checked
    first: a broken one is then one line naming it, not a crash while gathering facts or
    gates that cannot see their hosts after Ansible ran."""
    from upgrader.config.inventory import check_inventory  # noqa: PLC0415 - likewise
    from upgrader.run import runs  # noqa: PLC0415 - heavy (ansible-runner); only when a command runs

    ws = runs.workspace(config, environment)
    check_inventory(ws.env)
    return ws


def check_accepted(plan: Any, accept: Sequence[str]) -> None:
    """Refuse an ``--accept`` key no finding of the plan has: a typo would otherwise be
    ignored, and the operator would believe a risk was accepted that was not."""
    keys = {f.key for f in plan.findings}
    unknown = [key for key in accept if key not in keys]
    if unknown:
        raise UsageError(
            f"{', '.join(f'--accept {k}' for k in unknown)}: the plan has no such finding "
            f"(its findings: {', '.join(sorted(keys)) or 'none'})",
            hint="`upgrader plan` lists the findings and their keys",
        )
