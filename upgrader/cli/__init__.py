"""The ``upgrader`` command line: the only place where errors become messages and exit codes."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from upgrader import __version__
from upgrader.cli.checks import check_accepted, workspace
from upgrader.cli.report import report_option
from upgrader.cli.windows import schedule, windows
from upgrader.errors import EXIT_INHIBITED, UpgraderError, UsageError
from upgrader.plan.runbook import GateSpec


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="upgrader")
def cli() -> None:
    """Plan, run, check and report OpenNebula 3.x upgrades and storage migrations."""


def _env(stage: bool) -> str:
    return "staging" if stage else "production"


def _progress(line: str) -> None:
    click.echo(f"{time.strftime('%H:%M:%S')} {line}", err=True)


_config = click.option("--config", type=click.Path(path_type=Path), help="the site config file")
_stage = click.option("--stage", is_flag=True, help="the staging environment (else production)")


@cli.command()
@click.argument("target", required=False, default="3.6")
@_config
@_stage
@click.option("--json", "as_json", is_flag=True, help="the plan as JSON on stdout")
@click.option("--accept", multiple=True, metavar="KEY", help="accept a finding by its key")
@report_option("plan")
def plan(target: str, config: Path | None, stage: bool, as_json: bool,
         accept: tuple[str, ...]) -> None:
    """Read-only: detect the version and print the plan and its findings."""
    from upgrader.run import runs

    ws = workspace(config, _env(stage))
    the_plan, _ = runs.prepare_plan(ws, runs.client_for(ws.env), target, accept)
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
    lines = [f"plan for {p.environment}: {what} {p.current_version} -> {p.target_version}, "
             f"{len(p.steps)} steps, about {p.estimate / 60:.0f} min"]
    for s in p.steps:
        mark = "  <- point of no return" if s.point_of_no_return else ""
        hosts = f" [{s.limit}]" if s.limit else ""
        lines.append(f"  {s.id:<40} {s.estimate:>6.0f} s{hosts}{mark}")
    for f in p.findings:
        kind = "accepted" if f.accepted else "INHIBITOR" if f.inhibitor else f.severity
        lines.append(f"  {kind}: {f.key}: {f.message} ({f.remediation})")
    lines.append(f"fingerprint {p.fingerprint[:12]}")
    return "\n".join(lines)


def _window(f: Any) -> Any:
    return click.option(
        "--window", metavar="SPEC",
        help="an ad-hoc maintenance window (journaled): now+2h, START/END or START+4h "
        "(ISO 8601 with a UTC offset); default: the window configured for the environment",
    )(f)


@cli.command()
@click.argument("target")
@_config
@_stage
@click.option("--dry-run", is_flag=True,
              help="change nothing: show the plan, the VMs it moves, the preflight and check mode")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--accept", multiple=True, metavar="KEY", help="accept a finding by its key")
@click.option("--take-over", is_flag=True, help="take over a stale run lock")
@click.option("--without-rehearsal", metavar="REASON",
              help="run although staging has not passed this plan (the reason is journaled)")
@_window
@report_option("run")
def run(target: str, config: Path | None, stage: bool, dry_run: bool, yes: bool,
        accept: tuple[str, ...], take_over: bool, without_rehearsal: str | None,
        window: str | None) -> None:
    """Run the plan that takes the cloud to TARGET: a version (3.4, 3.6) or a storage (nfs)."""
    from upgrader.run import runs

    if dry_run and take_over:
        raise UsageError("--take-over with --dry-run: a dry run takes no lock, so there is "
                         "none to take over", hint="drop --take-over; the dry run says "
                         "whether the real run needs it")
    ws = workspace(config, _env(stage))

    def confirm(p: Any) -> bool:
        check_accepted(p, accept)
        click.echo(render_plan(p), err=True)
        return yes or click.confirm(f"run this plan on {ws.env.name}?", err=True)

    if without_rehearsal is not None and not without_rehearsal.strip():
        raise UsageError("--without-rehearsal needs a reason",
                         hint='e.g. --without-rehearsal "staging is down, CAB 4711 approved"')
    opts = runs.StartOptions(target, dry_run, accept, take_over, without_rehearsal, _progress,
                             confirm, window)
    if dry_run:
        from upgrader.run import dryrun

        result = dryrun.start(ws, opts)
        click.echo(render_dry_run(result))
        sys.exit(result.verdict.exit_code)
    click.echo(runs.start_run(ws, opts))


def render_dry_run(d: Any) -> str:
    """What a dry run found, ending with the line that says what the real run would do."""
    lines = [f"dry run {d.run_id} (journal {d.journal})", render_plan(d.plan)]
    points = [s.id for s in d.plan.steps if s.point_of_no_return]
    if points:
        lines.append(f"point of no return: {', '.join(points)} (once past it, going back "
                     "means restoring the hop's backup)")
    lines += _render_vms(d.impact)
    lines.append(f"preflight: the gates before {d.preflight_step}, on the cloud as it is now:"
                 if d.preflight else "preflight: the first step names no gates")
    for r in d.preflight:
        hint = f" (hint: {r.hint})" if r.hint and r.verdict != "pass" else ""
        lines.append(f"  {r.verdict.upper()} {r.gate}: {r.evidence.get('summary', '')}{hint}")
    if d.skipped_gates:
        lines.append(f"  {d.skipped_gates} later gate checks skipped: they would judge a cloud "
                     "the steps before them had changed")
    lines.append("check mode, each playbook once with diff (host: tasks that would change; "
                 "commands do not run in check mode and are not counted):")
    for c in d.checks:
        said = (", ".join(f"{h}: {n}" for h, n in c.changes.items() if n) or "no change"
                if c.predicted else f"check mode could not predict this step: {c.reason}")
        lines.append(f"  {c.group.label:<34} {c.group.playbook:<26} {said}")
    if d.lock_note:
        lines.append(f"run lock: {d.lock_note}: the real run needs --take-over")
    lines.append(d.verdict.line)
    return "\n".join(lines)


def _render_vms(impact: Any) -> list[str]:
    lines = []
    if impact.shut_down_hop:
        lines.append(f"VMs shut down for onedb in {impact.shut_down_hop} and re-created on "
                     f"their hosts ({len(impact.shut_down)}):")
        lines.append(f"  {'id':>4}  {'name':<20} {'owner':<12} {'host':<12} {'state':<10} "
                     "non-persistent disks")
        for vm in impact.shut_down:
            lines.append(f"  {vm.id:>4}  {vm.name:<20} {vm.owner:<12} {vm.host or '-':<12} "
                         f"{vm.state:<10} {', '.join(vm.nonpersistent_disks) or 'none'}")
    if impact.drains:
        lines.append("VMs live-migrated off each host before its upgrade, and moved back after:")
    for drain in impact.drains:
        moves = ", ".join(f"{m.id} {m.name} ({m.owner}) -> {m.to or 'nowhere: ' + m.why}"
                          for m in drain.moves)
        lines.append(f"  {drain.step:<24} {','.join(drain.hosts)}: {moves or 'no VMs'}")
    if impact.ids_change:
        lines.append("  (the ids are today's: the VMs re-created for onedb get new ones)")
    return lines


@cli.command()
@click.argument("run_id", required=False)
@_config
@_stage
@click.option("--yes", is_flag=True, help="run an interrupted non-idempotent step again")
@click.option("--take-over", is_flag=True, help="take over a stale run lock of another run")
@_window
def resume(run_id: str | None, config: Path | None, stage: bool, yes: bool,
           take_over: bool, window: str | None) -> None:
    """Continue a paused, failed or interrupted run from its journal."""
    from upgrader.run import runs

    ws = workspace(config, _env(stage))
    click.echo(runs.resume_run(ws, run_id, yes=yes, take_over=take_over, progress=_progress,
                               window_spec=window))


@cli.command()
@click.argument("run_id", required=False)
@_config
@_stage
@click.option("--json", "as_json", is_flag=True)
def status(run_id: str | None, config: Path | None, stage: bool, as_json: bool) -> None:
    """Where a run stands; without RUN_ID: the latest runs."""
    from upgrader.journal.store import read_events, replay
    from upgrader.run import runs

    ws = runs.workspace(config, _env(stage))
    if run_id:
        data: Any = runs.summary(replay(read_events(runs.find_run(ws, run_id) / "journal.jsonl")))
    else:
        data = runs.run_summaries(ws)
    if as_json:
        click.echo(json.dumps(data, indent=1, default=str))
        return
    for row in [data] if run_id else data:
        word = row.get("status", "?") + (" (dry run)" if row.get("dry_run") else "")
        click.echo(f"{row['run_id']:<36} {word:<10} "
                   f"{row.get('steps_done', 0)}/{row.get('steps', 0)} steps"
                   + (f", next {row['next_step']}" if row.get("next_step") else ""))


@cli.command()
@click.argument("run_id")
@_config
@_stage
def abort(run_id: str, config: Path | None, stage: bool) -> None:
    """Stop a run at the next safe point and run its undo actions."""
    from upgrader.run import runs

    click.echo(runs.abort_run(runs.workspace(config, _env(stage)), run_id, progress=_progress))


@cli.command()
@click.argument("run_id")
@_config
@_stage
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json"]), default="md",
              show_default=True, help="Markdown, a self-contained HTML page, or JSON")
@click.option("-o", "output", type=click.Path(path_type=Path), help="write to FILE (mode 0600)")
def report(run_id: str, config: Path | None, stage: bool, fmt: str, output: Path | None) -> None:
    """The report of a run (what happened) or of a dry run (what would happen)."""
    from upgrader.cli import report as cli_report
    from upgrader.run import runs

    text = cli_report.report_text(runs.workspace(config, _env(stage)), run_id, fmt)
    if output:
        cli_report.write_private(output, text)
    else:
        click.echo(text, nl=False)


@cli.command()
@_config
@_stage
@click.option("--json", "as_json", is_flag=True)
@click.option("--gate", "names", multiple=True, metavar="NAME",
              help="evaluate only this gate (repeatable); default: the standing gates")
@click.option("--run-id", default="", help="the run the Puppet hold must name (puppet-held)")
@click.option("--wait", type=click.FloatRange(0, 3600), default=30, show_default=True,
              help="seconds a gate may wait for a transient state to settle")
def gates(config: Path | None, stage: bool, as_json: bool, names: tuple[str, ...],
          run_id: str, wait: float) -> None:
    """Evaluate the health gates now, read-only; exit 1 if any does not pass."""
    from upgrader.gates.catalogue import STANDING, build_gates
    from upgrader.plan.planner import PlannedStep
    from upgrader.run import runs

    ws = workspace(config, _env(stage))
    now = PlannedStep("now", "", "gates", "gates", "action", None, None, "all", (), None, 0,
                      True, None, False, (), ())
    known = build_gates(runs.client_for(ws.env), _progress, runs.observer(ws), run_id=run_id)
    unknown = [n for n in names if n not in known or n == "vms-unchanged"]
    if unknown:
        raise UsageError(
            f"no gate called {', '.join(unknown)}",
            hint="gates: " + ", ".join(n for n in known if n != "vms-unchanged")
            + " (vms-unchanged compares before and after a step: only inside a run)",
        )
    spec = {"timeout": wait, "interval": min(5.0, wait) or 1.0}
    chosen = names or STANDING
    known.new_round(chosen)  # one gather of the hosts for every gate asked for
    results = [known[name](GateSpec(name, spec), now) for name in chosen]
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in results], indent=1, default=str))
    for r in results if not as_json else ():
        click.echo(f"[gate/{r.gate}] {r.verdict.upper()}: {r.evidence.get('summary', '')}"
                   + (f" (hint: {r.hint})" if r.hint and r.verdict != "pass" else ""))
    failed = [r.gate for r in results if r.verdict != "pass"]
    if failed:  # the one line every non-zero exit prints (DESIGN.md section 4)
        click.echo(f"error: {len(failed)} of {len(results)} gates did not pass: "
                   f"{', '.join(failed)} (hint: each gate's line says why and what to do)",
                   err=True)
        sys.exit(1)


@cli.group()
def lab() -> None:
    """The built-in lab: two small OpenNebula 3.x clouds and an NFS server (needs root)."""


@lab.command("up")
@click.option("--name", default="ulab", show_default=True, help="prefix of every lab object")
@click.option("--subnet", default="10.77.0.0/24", show_default=True, help="the lab's /24")
@click.option("--hosts-staging", type=click.IntRange(1, 9), default=2, show_default=True)
@click.option("--hosts-production", type=click.IntRange(1, 9), default=3, show_default=True)
@click.option("--vms", type=click.IntRange(0, 200), default=8, show_default=True,
              help="VMs per cloud")
@click.option("--version", "release", type=click.Choice(["3.2.1", "3.4.1", "3.6.0"]),
              default="3.2.1", show_default=True, help="the starting OpenNebula version")
def lab_up(name: str, subnet: str, hosts_staging: int, hosts_production: int, vms: int,
           release: str) -> None:
    """Build the lab."""
    from upgrader.lab.lab import LabSpec, parse_subnet, up

    spec = LabSpec(name=name, subnet=parse_subnet(subnet), hosts_staging=hosts_staging,
                   hosts_production=hosts_production, vms=vms, version=release)
    up(spec, log=lambda line: click.echo(line, err=True))


@lab.command("down")
@click.option("--name", default="ulab", show_default=True)
def lab_down(name: str) -> None:
    """Remove everything of the lab (also a crashed or half-built one)."""
    from upgrader.lab.lab import down, preflight

    preflight()
    down(name)
    click.echo(f"[lab] '{name}' is down", err=True)


@lab.command("status")
@click.option("--name", default="ulab", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output on stdout")
def lab_status(name: str, as_json: bool) -> None:
    """Hosts, addresses, installed versions, oned, VMs per host, datastore mount type."""
    import json

    from upgrader.lab.lab import preflight
    from upgrader.lab.status import collect, render

    preflight()
    status = collect(name)
    click.echo(json.dumps(status, indent=1) if as_json else render(status))


@lab.command("fault")
@click.argument("fault")
@click.option("--name", default="ulab", show_default=True)
@click.option("--host", help="the lab host (default: the cloud's last host)")
@click.option("--cloud", type=click.Choice(["staging", "production"]))
@click.option("--clear", is_flag=True, help="undo the fault")
def lab_fault(fault: str, name: str, host: str | None, cloud: str | None, clear: bool) -> None:
    """Inject or clear a fault (libvirtd-crash, oned-down, host-unreachable, ...)."""
    from upgrader.lab.faults import apply
    from upgrader.lab.lab import preflight

    preflight()
    click.echo(apply(name, fault, host=host, cloud=cloud, clear=clear))


cli.add_command(windows)
cli.add_command(schedule)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; an ``UpgraderError`` becomes one line on stderr and its exit code."""
    try:
        cli.main(args=argv, prog_name="upgrader", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except click.exceptions.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except UpgraderError as exc:
        # One line, ending with what to do next (DESIGN.md section 4).
        hint = f" (hint: {exc.hint})" if exc.hint else ""
        click.echo(f"error: {exc}{hint}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug of ours: one line here, the traceback kept for the report
        kept = _keep_traceback()
        click.echo(f"error: internal error: {type(exc).__name__}: {exc} (hint: this is a bug "
                   f"in upgrader; the traceback is in {kept}; the journal says where the run "
                   "stands, `upgrader status`)", err=True)
        sys.exit(1)
    sys.exit(0)


def _keep_traceback() -> str:
    """Write the current exception's traceback to an owner-only file; return its path."""
    import os
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="upgrader-traceback-", suffix=".txt")
    with os.fdopen(fd, "w") as handle:
        handle.write(traceback.format_exc())
    return path
