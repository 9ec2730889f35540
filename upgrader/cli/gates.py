"""``upgrader gates``: evaluate the health gates now, read-only."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from upgrader.cli.options import config_option, host_workspace, json_option, progress, stage_option
from upgrader.errors import UsageError
from upgrader.gates.model import Verdict
from upgrader.plan.runbook_model import GateSpec


@click.command()
@config_option
@stage_option
@json_option("the gates' results")
@click.option(
    "--gate",
    "names",
    multiple=True,
    metavar="NAME",
    help="evaluate only this gate (repeatable); default: the standing gates",
)
@click.option("--run-id", default="", help="the run the Puppet hold must name (puppet-held)")
@click.option(
    "--wait",
    type=click.FloatRange(0, 3600),
    default=30,
    show_default=True,
    help="seconds a gate may wait for a transient state to settle",
)
def gates(
    config: Path | None,
    stage: bool,
    as_json: bool,
    names: tuple[str, ...],
    run_id: str,
    wait: float,
) -> None:
    """Evaluate the health gates now, read-only; exit 1 if any does not pass."""
    from upgrader.gates.catalogue import STANDING, build_gates
    from upgrader.plan.model import PlannedStep
    from upgrader.run.context import client_for, observer

    ws = host_workspace(config, stage)
    now = PlannedStep(
        "now",
        "",
        "gates",
        "gates",
        "action",
        None,
        None,
        "all",
        (),
        None,
        0,
        True,
        None,
        False,
        (),
        (),
    )
    known = build_gates(client_for(ws.env), progress, observer(ws), run_id=run_id)
    unknown = [n for n in names if n not in known or n == "vms-unchanged"]
    if unknown:
        raise UsageError(
            f"no gate called {', '.join(unknown)}",
            hint="gates: "
            + ", ".join(n for n in known if n != "vms-unchanged")
            + " (vms-unchanged compares before and after a step: only inside a run)",
        )
    spec = {"timeout": wait, "interval": min(5.0, wait) or 1.0}
    chosen = names or STANDING
    known.new_round(chosen)  # one gather of the hosts for every gate asked for
    results = [known[name](GateSpec(name, spec), now) for name in chosen]
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in results], indent=1, default=str))
    for r in results if not as_json else ():
        click.echo(
            f"[gate/{r.gate}] {r.verdict.upper()}: {r.evidence.get('summary', '')}"
            + (f" (hint: {r.hint})" if r.hint and r.verdict != Verdict.PASS else "")
        )
    failed = [r.gate for r in results if r.verdict != Verdict.PASS]
    if failed:  # the one line every non-zero exit prints (DESIGN.md section 4)
        click.echo(
            f"error: {len(failed)} of {len(results)} gates did not pass: "
            f"{', '.join(failed)} (hint: each gate's line says why and what to do)",
            err=True,
        )
        sys.exit(1)
