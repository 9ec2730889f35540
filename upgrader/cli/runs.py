"""``plan``, ``run``, ``resume``, ``status`` and ``abort``: the commands of a run's life.

Each parses its flags, builds the workspace and calls the run machinery (imported only when
the command runs, so ``upgrader --help`` stays fast); the renderings of a plan and of a dry
run for a terminal live here too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from upgrader.cli.options import (
    accept_option,
    check_accepted,
    config_option,
    host_workspace,
    json_option,
    progress,
    site_workspace,
    stage_option,
    window_option,
)
from upgrader.cli.report import report_option
from upgrader.errors import EXIT_INHIBITED, UsageError
from upgrader.gates.model import Verdict


@click.command()
@click.argument("target", required=False, default="3.6")
@config_option
@stage_option
@json_option("the plan")
@accept_option
@report_option("plan")
def plan(
    target: str, config: Path | None, stage: bool, as_json: bool, accept: tuple[str, ...]
) -> None:
    """Read-only: detect the version and print the plan and its findings."""
    from upgrader.run.context import client_for
    from upgrader.run.prepare import prepare_plan

    ws = host_workspace(config, stage)
    the_plan, _ = prepare_plan(ws, client_for(ws.env), target, accept)
    check_accepted(the_plan, accept)
    if as_json:
        click.echo(json.dumps(the_plan.to_dict(), indent=1, default=str))
    else:
        click.echo(render_plan(the_plan))
    if the_plan.inhibitors:
        sys.exit(EXIT_INHIBITED)


def render_plan(p: Any) -> str:
    """The plan as lines for a terminal."""
    what = "OpenNebula" if p.current_version[:1].isdigit() else "storage"
    lines = [
        f"plan for {p.environment}: {what} {p.current_version} -> {p.target_version}, "
        f"{len(p.steps)} steps, about {p.estimate / 60:.0f} min"
    ]
    for s in p.steps:
        mark = "  <- point of no return" if s.point_of_no_return else ""
        hosts = f" [{s.limit}]" if s.limit else ""
        lines.append(f"  {s.id:<40} {s.estimate:>6.0f} s{hosts}{mark}")
    for f in p.findings:
        kind = "accepted" if f.accepted else "INHIBITOR" if f.inhibitor else f.severity
        lines.append(f"  {kind}: {f.key}: {f.message} ({f.remediation})")
    lines.append(f"fingerprint {p.fingerprint[:12]}")
    return "\n".join(lines)


@click.command()
@click.argument("target")
@config_option
@stage_option
@click.option(
    "--dry-run",
    is_flag=True,
    help="change nothing: show the plan, the VMs it moves, the preflight and check mode",
)
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@accept_option
@click.option("--take-over", is_flag=True, help="take over a stale run lock")
@click.option(
    "--without-rehearsal",
    metavar="REASON",
    help="run although staging has not passed this plan (the reason is journaled)",
)
@window_option
@report_option("run")
def run(
    target: str,
    config: Path | None,
    stage: bool,
    dry_run: bool,
    yes: bool,
    accept: tuple[str, ...],
    take_over: bool,
    without_rehearsal: str | None,
    window: str | None,
) -> None:
    """Run the plan that takes the cloud to TARGET: a version (3.4, 3.6) or a storage (nfs)."""
    from upgrader.run.start import StartOptions, start_run

    if dry_run and take_over:
        raise UsageError(
            "--take-over with --dry-run: a dry run takes no lock, so there is none to take over",
            hint="drop --take-over; the dry run says whether the real run needs it",
        )
    ws = host_workspace(config, stage)

    def confirm(p: Any) -> bool:
        check_accepted(p, accept)
        click.echo(render_plan(p), err=True)
        return yes or click.confirm(f"run this plan on {ws.env.name}?", err=True)

    if without_rehearsal is not None and not without_rehearsal.strip():
        raise UsageError(
            "--without-rehearsal needs a reason",
            hint='e.g. --without-rehearsal "staging is down, CAB 4711 approved"',
        )
    opts = StartOptions(
        target, dry_run, accept, take_over, without_rehearsal, progress, confirm, window
    )
    if dry_run:
        from upgrader.run import dryrun

        result = dryrun.start(ws, opts)
        click.echo(render_dry_run(result))
        sys.exit(result.verdict.exit_code)
    click.echo(start_run(ws, opts))


def render_dry_run(d: Any) -> str:
    """What a dry run found, ending with the line that says what the real run would do."""
    lines = [f"dry run {d.run_id} (journal {d.journal})", render_plan(d.plan)]
    points = [s.id for s in d.plan.steps if s.point_of_no_return]
    if points:
        lines.append(
            f"point of no return: {', '.join(points)} (once past it, going back "
            "means restoring the hop's backup)"
        )
    lines += _render_vms(d.impact)
    lines.append(
        f"preflight: the gates before {d.preflight_step}, on the cloud as it is now:"
        if d.preflight
        else "preflight: the first step names no gates"
    )
    for r in d.preflight:
        hint = f" (hint: {r.hint})" if r.hint and r.verdict != Verdict.PASS else ""
        lines.append(f"  {r.verdict.upper()} {r.gate}: {r.evidence.get('summary', '')}{hint}")
    if d.skipped_gates:
        lines.append(
            f"  {d.skipped_gates} later gate checks skipped: they would judge a cloud "
            "the steps before them had changed"
        )
    lines.append(
        "check mode, each playbook once with diff (host: tasks that would change; "
        "commands do not run in check mode and are not counted):"
    )
    for c in d.checks:
        said = (
            ", ".join(f"{h}: {n}" for h, n in c.changes.items() if n) or "no change"
            if c.predicted
            else f"check mode could not predict this step: {c.reason}"
        )
        lines.append(f"  {c.group.label:<34} {c.group.playbook:<26} {said}")
    if d.lock_note:
        lines.append(f"run lock: {d.lock_note}: the real run needs --take-over")
    lines.append(d.verdict.line)
    return "\n".join(lines)


def _render_vms(impact: Any) -> list[str]:
    lines = []
    if impact.shut_down_hop:
        lines.append(
            f"VMs shut down for onedb in {impact.shut_down_hop} and re-created on "
            f"their hosts ({len(impact.shut_down)}):"
        )
        lines.append(
            f"  {'id':>4}  {'name':<20} {'owner':<12} {'host':<12} {'state':<10} "
            "non-persistent disks"
        )
        for vm in impact.shut_down:
            lines.append(
                f"  {vm.id:>4}  {vm.name:<20} {vm.owner:<12} {vm.host or '-':<12} "
                f"{vm.state:<10} {', '.join(vm.nonpersistent_disks) or 'none'}"
            )
    if impact.drains:
        lines.append("VMs live-migrated off each host before its upgrade, and moved back after:")
    for drain in impact.drains:
        moves = ", ".join(
            f"{m.id} {m.name} ({m.owner}) -> {m.to or 'nowhere: ' + m.why}" for m in drain.moves
        )
        lines.append(f"  {drain.step:<24} {','.join(drain.hosts)}: {moves or 'no VMs'}")
    if impact.ids_change:
        lines.append("  (the ids are today's: the VMs re-created for onedb get new ones)")
    return lines


@click.command()
@click.argument("run_id", required=False)
@config_option
@stage_option
@click.option("--yes", is_flag=True, help="run an interrupted non-idempotent step again")
@click.option("--take-over", is_flag=True, help="take over a stale run lock of another run")
@window_option
def resume(
    run_id: str | None,
    config: Path | None,
    stage: bool,
    yes: bool,
    take_over: bool,
    window: str | None,
) -> None:
    """Continue a paused, failed or interrupted run from its journal."""
    from upgrader.run.resume import resume_run

    ws = host_workspace(config, stage)
    click.echo(
        resume_run(ws, run_id, yes=yes, take_over=take_over, progress=progress, window_spec=window)
    )


@click.command()
@click.argument("run_id", required=False)
@config_option
@stage_option
@json_option("the runs")
def status(run_id: str | None, config: Path | None, stage: bool, as_json: bool) -> None:
    """Where a run stands; without RUN_ID: the latest runs."""
    from upgrader.journal.store import read_events, replay
    from upgrader.run.status import find_run, run_summaries, summary

    ws = site_workspace(config, stage)
    if run_id:
        data: Any = summary(replay(read_events(find_run(ws, run_id) / "journal.jsonl")))
    else:
        data = run_summaries(ws)
    if as_json:
        click.echo(json.dumps(data, indent=1, default=str))
        return
    for row in [data] if run_id else data:
        word = row.get("status", "?") + (" (dry run)" if row.get("dry_run") else "")
        click.echo(
            f"{row['run_id']:<36} {word:<10} "
            f"{row.get('steps_done', 0)}/{row.get('steps', 0)} steps"
            + (f", next {row['next_step']}" if row.get("next_step") else "")
        )


@click.command()
@click.argument("run_id")
@config_option
@stage_option
def abort(run_id: str, config: Path | None, stage: bool) -> None:
    """Stop a run at the next safe point and run its undo actions."""
    from upgrader.run.abort import abort_run

    click.echo(abort_run(site_workspace(config, stage), run_id, progress=progress))
