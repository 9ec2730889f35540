"""Reports from hand-written journals: what an operator reads the morning after (and the day
before) must be right to the second, say what to do next, and never run the cloud's markup."""

from __future__ import annotations

import json
from typing import Any

import pytest

from upgrader.journal.events import EventType, JournalEvent
from upgrader.reports import chart
from upgrader.reports.build import build
from upgrader.reports.data import SCHEMA_VERSION, from_plan, hms
from upgrader.reports.render import format_of, render

RUN = "staging-20261121T220000-ab12"
EVIL_VM = "<script>alert(1)</script> & \"quoted\" 'single'"


def plan(findings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    step = {
        "hop": "3.2-3.4",
        "kind": "playbook",
        "playbook": "node-upgrade.yml",
        "action": None,
        "target": "hypervisors",
        "limit": None,
        "hosts": [],
        "point_of_no_return": False,
    }
    return {
        "environment": "staging",
        "current_version": "3.2",
        "target_version": "3.4",
        "hops": [["3.2", "3.4"]],
        "point_of_no_return": "3.2-3.4/front-end",
        "steps": [
            {**step, "id": "3.2-3.4/hold", "title": "Hold Puppet", "estimate": 60.0},
            {
                **step,
                "id": "3.2-3.4/front-end",
                "title": "Upgrade the front end",
                "estimate": 1200.0,
                "point_of_no_return": True,
                "target": "frontends",
            },
            {
                **step,
                "id": "3.2-3.4/nodes@1",
                "title": "Upgrade node01",
                "estimate": 600.0,
                "hosts": ["node01"],
                "limit": "node01",
            },
        ],
        "findings": findings or [],
    }


def events(*rows: tuple[str, str, dict[str, Any]]) -> list[JournalEvent]:
    """Journal events from (ts, type, fields); the first is run_started with ``plan()``."""
    return [
        JournalEvent(n, ts, EventType(kind), fields) for n, (ts, kind, fields) in enumerate(rows, 1)
    ]


def started(ts: str = "2026-11-21T22:00:00.000Z", **extra: Any) -> tuple[str, str, dict]:
    return (
        ts,
        "run_started",
        {
            "run_id": RUN,
            "environment": "staging",
            "target": "3.4",
            "fingerprint": "f" * 64,
            "plan": extra.pop("plan", plan()),
            "dry_run": False,
            **extra,
        },
    )


def gate(ts: str, step: str, verdict: str = "pass", summary: str = "oned answered") -> tuple:
    return (
        ts,
        "gate_verdict",
        {
            "step": step,
            "gate": "oned-reachable",
            "phase": "after",
            "verdict": verdict,
            "hint": "",
            "evidence": {"summary": summary, "host_count": 2},
        },
    )


def finished_run() -> list[JournalEvent]:
    return events(
        started(),
        ("2026-11-21T22:00:00.200Z", "step_started", {"step": "3.2-3.4/hold", "attempt": 1}),
        ("2026-11-21T22:01:02.700Z", "step_finished", {"step": "3.2-3.4/hold", "duration": 62}),
        ("2026-11-21T22:01:03.000Z", "step_started", {"step": "3.2-3.4/front-end"}),
        ("2026-11-21T22:23:04.400Z", "step_finished", {"step": "3.2-3.4/front-end"}),
        gate("2026-11-21T22:23:09.400Z", "3.2-3.4/front-end"),
        ("2026-11-21T22:23:10.000Z", "step_started", {"step": "3.2-3.4/nodes@1"}),
        ("2026-11-21T23:25:10.000Z", "step_finished", {"step": "3.2-3.4/nodes@1"}),
        (
            "2026-11-21T23:25:11.000Z",
            "cloud_state",
            {
                "when": "end",
                "oned_version": "3.4.1",
                "db_version": "3.4.0",
                "hosts": [{"name": "node01", "state": "MONITORED"}],
                "vms": [{"id": 7, "name": "web|1", "state": "ACTIVE", "host": "node01"}],
            },
        ),
        ("2026-11-21T23:25:11.500Z", "run_finished", {}),
    )


def test_the_timeline_gives_every_step_and_gate_start_end_and_duration_to_the_second():
    report = build(finished_run())
    rows = [(e.kind, e.name, e.seconds, e.status) for e in report.timeline]
    assert rows == [
        ("step", "3.2-3.4/hold", 63, "succeeded"),  # 62.5 s, to the second
        ("step", "3.2-3.4/front-end", 1321, "succeeded"),
        # a gate runs from the journal line before it: here the step's end
        ("gate", "oned-reachable (after 3.2-3.4/front-end)", 5, "pass"),
        ("step", "3.2-3.4/nodes@1", 3720, "succeeded"),
    ]
    assert report.status == "succeeded" and report.seconds == 5112 and not report.next_action
    md = render(report, "md")
    assert (
        "| step | `3.2-3.4/nodes@1` | 2026-11-21 22:23:10 UTC | 2026-11-21 23:25:10 UTC "
        "| 1:02:00 | succeeded |" in md
    )
    assert (
        "| 2026-11-21 22:23:09 UTC | `3.2-3.4/front-end` | after | oned-reachable | PASS | "
        "oned answered | host_count=2 |" in md
    )  # the gate's evidence: summary, then details
    # The cloud as the run left it; a pipe in a VM name does not break the table.
    assert "- OpenNebula (oned): 3.4.1, database 3.4.0" in md
    assert "| 7 | web\\|1 | ACTIVE | node01 |" in md


def test_a_run_without_a_recorded_end_state_says_so():
    report = build(finished_run()[:-2] + finished_run()[-1:])
    assert report.cloud_end is None
    assert "Not recorded: the journal holds no state of the cloud" in render(report, "md")
    assert "Not recorded" in render(report, "html")


def test_a_paused_run_says_to_resume_in_the_next_window_and_shows_the_pause():
    window = {
        "start": "2026-11-21T22:00:00+00:00",
        "end": "2026-11-21T22:30:00+00:00",
        "source": "saturday",
    }
    nxt = {
        "start": "2026-11-28T22:00:00+00:00",
        "end": "2026-11-29T02:00:00+00:00",
        "source": "saturday",
    }
    report = build(
        events(
            started(window=window),
            ("2026-11-21T22:00:01.000Z", "step_started", {"step": "3.2-3.4/hold"}),
            ("2026-11-21T22:01:01.000Z", "step_finished", {"step": "3.2-3.4/hold"}),
            (
                "2026-11-21T22:01:02.000Z",
                "run_paused",
                {
                    "reason": "3.2-3.4/front-end needs 0:20:00, the window has 0:28:58 left... no",
                    "next_step": "3.2-3.4/front-end",
                    "window": window,
                    "next_window": nxt,
                    "held": ["Puppet stays disabled on node01"],
                },
            ),
        )
    )
    assert report.status == "paused"
    assert report.next_action == (
        f"run `upgrader resume {RUN} --stage` in the next window (it opens "
        "2026-11-28T22:00:00+00:00); it continues with 3.2-3.4/front-end"
    )
    assert [(e.kind, e.status, e.end) for e in report.timeline][-1] == ("pause", "paused", None)
    md = render(report, "md")
    assert "## What to do next" in md and "Paused at 2026-11-21 22:01:02 UTC" in md
    assert "next window: 2026-11-28 22:00:00 UTC to 2026-11-29 02:00:00 UTC (saturday)" in md
    assert "Held until the run resumes: Puppet stays disabled on node01." in md
    svg = chart.chart(report)
    assert svg is not None and svg["window"] is not None
    assert [i["cls"] for row in svg["rows"] for i in row["items"]] == [
        "bar step succeeded",
        "bar pause",
    ]


def test_a_resumed_pause_is_closed_with_its_duration():
    first = {
        "start": "2026-11-21T22:00:00+00:00",
        "end": "2026-11-21T22:30:00+00:00",
        "source": "saturday",
    }
    second = {
        "start": "2026-11-28T22:00:00+00:00",
        "end": "2026-11-29T02:00:00+00:00",
        "source": "ad hoc --window now+4h",
    }
    report = build(
        events(
            started(),
            ("2026-11-21T22:00:00.100Z", "window", {"window": first, "how": "config"}),
            ("2026-11-21T22:01:02.000Z", "run_paused", {"reason": "window closed"}),
            ("2026-11-28T22:00:05.000Z", "run_resumed", {"fingerprint": "f", "step": "x"}),
            ("2026-11-28T22:00:05.100Z", "window", {"window": second, "how": "ad hoc"}),
        )
    )
    pause = report.timeline[0]
    assert (pause.status, pause.seconds, hms(pause.seconds)) == ("resumed", 604743, "167:59:03")
    assert report.pause is None and report.window == first
    assert (
        "- Window: 2026-11-21 22:00:00 UTC to 2026-11-21 22:30:00 UTC (saturday); "
        "2026-11-28 22:00:00 UTC to 2026-11-29 02:00:00 UTC (ad hoc --window now+4h)"
        in render(report, "md")
    )


def test_a_failed_run_names_the_failed_hosts_its_undo_and_the_journals_hint():
    hint = f"fix the cause, then `upgrader resume {RUN}`"
    report = build(
        events(
            started(),
            (
                "2026-11-21T22:00:01.000Z",
                "undo_registered",
                {"step": "3.2-3.4/hold", "undo_id": "release", "description": "release Puppet"},
            ),
            ("2026-11-21T22:00:02.000Z", "step_started", {"step": "3.2-3.4/hold"}),
            (
                "2026-11-21T22:00:09.000Z",
                "step_failed",
                {
                    "step": "3.2-3.4/hold",
                    "error": "failed",
                    "evidence": {"failures": ["node01: puppet is running", "node02: no agent"]},
                },
            ),
            (
                "2026-11-21T22:00:10.000Z",
                "undo_started",
                {"undo_id": "release", "reason": "run failed"},
            ),
            ("2026-11-21T22:00:40.000Z", "undo_done", {"undo_id": "release"}),
            (
                "2026-11-21T22:00:41.000Z",
                "run_failed",
                {"reason": "step 3.2-3.4/hold failed", "hint": hint},
            ),
        )
    )
    assert report.status == "failed" and report.next_action == hint
    assert report.outcome == "step 3.2-3.4/hold failed"
    failed = report.timeline[0]
    assert (failed.status, failed.seconds, failed.detail) == (
        "failed",
        7,
        "node01: puppet is running; node02: no agent",
    )
    assert [(u.name, u.status, u.seconds, u.detail) for u in report.undo] == [
        ("release", "done", 30, "run failed")
    ]
    html = render(report, "html")
    assert 'class="bar step failed"' in html and hint.replace("`", "") in html.replace("`", "")
    assert report.finished == "2026-11-21T22:00:41.000Z"


def test_an_undo_a_step_did_is_shown_as_done_by_that_step_in_every_format():
    report = build(
        events(
            started(),
            (
                "2026-11-21T22:00:01.000Z",
                "undo_registered",
                {"step": "3.2-3.4/hold", "undo_id": "release", "description": "release Puppet"},
            ),
            ("2026-11-21T22:00:02.000Z", "step_started", {"step": "3.2-3.4/release-now"}),
            ("2026-11-21T22:00:09.000Z", "step_finished", {"step": "3.2-3.4/release-now"}),
            (
                "2026-11-21T22:00:09.500Z",
                "undo_done",
                {"undo_id": "release", "done_by": "3.2-3.4/release-now", "outcome": {}},
            ),
            ("2026-11-21T22:00:10.000Z", "run_finished", {}),
        )
    )
    assert [(u.name, u.status, u.seconds, u.detail) for u in report.undo] == [
        ("release", "done", 0, "done by step 3.2-3.4/release-now")
    ]
    assert "done by step 3.2-3.4/release-now" in render(report, "md")
    assert "done by step 3.2-3.4/release-now" in render(report, "html")  # the chart draws it


def test_an_interrupted_run_says_it_has_no_outcome_and_how_to_go_on():
    report = build(
        events(started(), ("2026-11-21T22:00:02.000Z", "step_started", {"step": "3.2-3.4/hold"}))
    )
    assert report.status == "running" and report.timeline[0].status == "interrupted"
    assert f"`upgrader resume {RUN} --stage`" in report.next_action


def test_html_escapes_every_name_and_evidence_from_the_cloud():
    evil_summary = '<img src=x onerror="alert(2)"> & more'
    rows = finished_run()
    rows[5] = JournalEvent(
        6,
        rows[5].ts,
        rows[5].type,
        {**rows[5].fields, "evidence": {"summary": evil_summary, "vm": EVIL_VM}},
    )
    rows[8] = JournalEvent(
        9,
        rows[8].ts,
        rows[8].type,
        {
            "when": "end",
            "oned_version": "3.4.1",
            "hosts": [{"name": "<b>node01</b>", "state": "MONITORED"}],
            "vms": [{"id": 7, "name": EVIL_VM, "state": "ACTIVE", "host": "<b>node01</b>"}],
        },
    )
    html = render(build(rows), "html")
    for raw in ("<script>", "<img", "<b>node01"):
        assert raw not in html, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quoted&#34; &#39;single&#39;" in html
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt; &amp; more" in html
    # self-contained: no external asset, no script
    assert "<link" not in html and "src=" not in html.replace("src=x", "")
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")


def test_json_carries_the_schema_version_and_the_whole_model():
    doc = json.loads(render(build(finished_run()), "json"))
    assert doc["schema"] == SCHEMA_VERSION == 1
    assert doc["kind"] == "run" and doc["run_id"] == RUN and doc["status"] == "succeeded"
    assert [t["seconds"] for t in doc["timeline"]] == [63, 1321, 5, 3720]
    assert doc["cloud_end"]["oned_version"] == "3.4.1"


FINDINGS = [
    {
        "key": "vm-nonpersistent-disk/7",
        "severity": "error",
        "inhibitor": True,
        "message": "VM 7 loses its changes",
        "remediation": "save the disk",
        "accepted": False,
    },
    {
        "key": "host-error/node02",
        "severity": "warning",
        "inhibitor": False,
        "message": "node02 is in ERROR",
        "remediation": "fix node02",
        "accepted": True,
    },
]


def test_findings_say_how_to_accept_them_and_who_accepted_what():
    report = build(
        events(
            started(plan=plan(FINDINGS)),
            (
                "2026-11-21T22:00:00.100Z",
                "finding_accepted",
                {"key": "host-error/node02", "reason": "accepted on the command line (--accept)"},
            ),
            ("2026-11-21T22:00:01.000Z", "run_finished", {}),
        )
    )
    assert [(f.key, f.inhibitor, f.accepted, f.accept_with) for f in report.findings] == [
        ("vm-nonpersistent-disk/7", True, False, "--accept vm-nonpersistent-disk/7"),
        ("host-error/node02", False, True, "--accept host-error/node02"),
    ]
    md = render(report, "md")  # a run report lists the accepted ones
    assert (
        "| `host-error/node02` | warning | no | accepted: accepted on the command line "
        "(--accept) | node02 is in ERROR | fix node02 | `--accept host-error/node02` |" in md
    )
    assert "vm-nonpersistent-disk/7" not in md
    planned = render(from_plan(plan(FINDINGS)), "md")  # the plan's lists them all
    assert (
        "| `vm-nonpersistent-disk/7` | error | yes | open | VM 7 loses its changes | "
        "save the disk | `--accept vm-nonpersistent-disk/7` |" in planned
    )
    assert "1 inhibitor(s) would stop the run: vm-nonpersistent-disk/7" in planned
    assert "plan only: no preflight gate was evaluated" in planned


def dry_run(window: dict[str, str] | None) -> list[JournalEvent]:
    return events(
        started(dry_run=True, window=window, estimates={"3.2-3.4/nodes@1": 900.0}),
        (
            "2026-11-21T10:00:00.100Z",
            "dry_run_vms",
            {
                "shut_down": [
                    {
                        "id": 3,
                        "name": EVIL_VM,
                        "owner": "oneadmin",
                        "host": "node01",
                        "state": "ACTIVE",
                        "nonpersistent_disks": ["disk 0 (ttylinux)"],
                    }
                ],
                "shut_down_hop": "3.2-3.4",
                "ids_change": False,
                "drains": [
                    {
                        "step": "3.2-3.4/drain@1",
                        "hop": "3.2-3.4",
                        "hosts": ["node01"],
                        "moves": [
                            {"id": 4, "name": "db", "owner": "ann", "to": "node02", "why": ""}
                        ],
                    }
                ],
            },
        ),
        gate("2026-11-21T10:00:01.000Z", "3.2-3.4/hold", "fail", "node02 is in ERROR"),
        (
            "2026-11-21T10:00:09.000Z",
            "dry_run_check",
            {
                "check": 2,
                "label": "3.2-3.4/sync",
                "playbook": "storage-sync.yml",
                "limit": None,
                "predicted": True,
                "changes": {"front": 1},
                "data": {"storage_sync": {"would_copy_bytes": 3 * 2**30, "copied_count": 12}},
            },
        ),
        (
            "2026-11-21T10:00:08.000Z",
            "dry_run_check",
            {
                "check": 1,
                "label": "3.2-3.4/nodes",
                "playbook": "node-upgrade.yml",
                "limit": "node01",
                "predicted": False,
                "changes": {},
                "reason": "node01: apt cannot reach the mirror",
            },
        ),
        (
            "2026-11-21T10:00:10.000Z",
            "run_failed",
            {
                "dry_run": True,
                "reason": "dry run: the preflight gate oned-reachable fails",
                "hint": "fix node02, then dry-run again",
            },
        ),
    )


def test_a_dry_run_places_each_step_in_the_window_and_flags_what_does_not_fit():
    window = {
        "start": "2026-11-21T22:00:00+01:00",
        "end": "2026-11-21T22:30:00+01:00",
        "source": "saturdays 22:00 Europe/Berlin",
    }
    report = build(dry_run(window))
    assert report.kind == "dry-run" and report.estimate == 60 + 1200 + 900  # measured nodes
    assert [(s.expected_start, s.expected_end, s.in_window) for s in report.steps] == [
        ("2026-11-21T22:00:00+01:00", "2026-11-21T22:01:00+01:00", True),
        ("2026-11-21T22:01:00+01:00", "2026-11-21T22:21:00+01:00", True),
        ("2026-11-21T22:21:00+01:00", "2026-11-21T22:36:00+01:00", False),
    ]
    md = render(report, "md")
    assert (
        "| 3 | `3.2-3.4/nodes@1` | node-upgrade.yml | node01 | 0:15:00 | "
        "2026-11-21 22:21:00 UTC+01:00 | 2026-11-21 22:36:00 UTC+01:00 | **NO** |" in md
    )
    assert "- Point of no return: `3.2-3.4/front-end`" in md
    assert "- Data to copy: 3.0 GiB in 12 files" in md
    assert (
        "| node-upgrade.yml | `3.2-3.4/nodes` | node01 | could not predict: node01: apt "
        "cannot reach the mirror |" in md
    )  # check mode, in check order
    assert md.index("node-upgrade.yml | `3.2-3.4/nodes`") < md.index("storage-sync.yml")
    assert "| FAIL | oned-reachable | `3.2-3.4/hold` | node02 is in ERROR |" in md
    assert "| `3.2-3.4/drain@1` | node01 | 4 | db | ann | node02 |" in md
    assert "**dry run: the preflight gate oned-reachable fails**" in md
    assert "Next: fix node02, then dry-run again" in md
    html = render(report, "html")
    assert html.count('class="bar step planned"') == 2
    assert html.count('class="bar step planned outside"') == 1
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "| 3 | \\<script>alert(1)\\</script> & \"quoted\" 'single' | oneadmin |" in md


def test_a_dry_run_without_a_window_counts_from_its_own_start():
    report = build(dry_run(None))
    assert report.steps[0].expected_start == "2026-11-21T22:00:00+00:00"
    assert all(s.in_window is None for s in report.steps)
    assert "- Window: none: no maintenance window applies" in render(report, "md")


def test_the_chart_draws_one_bar_per_step_attempt_and_a_mark_per_gate():
    c = chart.chart(build(finished_run()))
    assert c is not None
    assert [r["label"] for r in c["rows"]] == [
        "3.2-3.4/hold",
        "3.2-3.4/front-end",
        "3.2-3.4/nodes@1",
    ]
    kinds = [(r["label"], [i["kind"] for i in r["items"]]) for r in c["rows"]]
    assert kinds[1] == ("3.2-3.4/front-end", ["bar", "mark"])
    bars = [i for r in c["rows"] for i in r["items"] if i["kind"] == "bar"]
    assert bars[0]["x"] == chart.LABEL  # the run's first moment is the axis' origin
    right = chart.WIDTH - chart.RIGHT  # and its last moment the axis' end
    assert max(b["x"] + b["w"] for b in bars) == pytest.approx(right, abs=0.2)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("r.md", "md"), ("R.HTML", "html"), ("x/r.json", "json"), ("r.txt", None), ("md", None)],
)
def test_the_report_format_comes_from_the_file_suffix(name, fmt):
    assert format_of(name) == fmt


def test_check_mode_of_the_copy_says_how_many_bytes_it_would_copy(tmp_path):
    """What the dry-run report's "data to copy" reads (via storage-sync.yml's set_stats)."""
    from upgrader.storage.datastore_copy import would_sync

    (tmp_path / "src" / "vm").mkdir(parents=True)
    (tmp_path / "dst").mkdir()
    (tmp_path / "src" / "vm" / "disk.0").write_bytes(b"\x01" * 2**20)
    (tmp_path / "src" / "vm" / "empty").write_bytes(b"")
    todo = would_sync(str(tmp_path / "src"), str(tmp_path / "dst"), str(tmp_path / "m.json"))
    assert todo["would_copy_bytes"] == 2**20 and not (tmp_path / "m.json").exists()
