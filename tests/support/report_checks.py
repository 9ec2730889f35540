"""What every report must show, checked the same way after any run, dry run or lab scenario.

``reports_of`` asks the real CLI for a run's report in all three formats; ``check_reports``
asserts what holds for every report of that kind (the lab tests call both after their runs):

    reports = reports_of(upgrader, run_id, tmp_path, "--config", str(config))
    check_reports(reports, kind="run", status="paused")
"""

from __future__ import annotations

import html as htmllib
import json
import re
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import markupsafe

Cli = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class Reports:
    """One run's report in the three formats (and where the files went)."""

    run_id: str
    md: str
    html: str
    doc: dict[str, Any]
    html_path: Path
    json_path: Path


def reports_of(cli: Cli, run_id: str, out_dir: Path, *args: str) -> Reports:
    """``upgrader report RUN_ID`` as Markdown on stdout, and as HTML and JSON files
    (``args``: e.g. ``--config FILE``). ``cli(*argv)`` runs the real command line."""
    md = _ok(cli("report", run_id, *args))
    again = _ok(cli("report", run_id, "--format", "md", *args))
    assert again == md, "md is the default format"
    paths = {}
    for fmt in ("html", "json"):
        path = out_dir / f"report-{run_id}.{fmt}"
        assert _ok(cli("report", run_id, "--format", fmt, "-o", str(path), *args)) == ""
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} is readable by others"
        paths[fmt] = path
    doc = json.loads(paths["json"].read_text())
    return Reports(run_id, md, paths["html"].read_text(), doc, paths["html"], paths["json"])


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return result.stdout


def check_reports(r: Reports, *, kind: str, status: str) -> None:
    """Assert what every report of ``kind`` ("run" or "dry-run") and ``status`` shows."""
    doc = r.doc
    assert doc["schema"] == 1 and doc["kind"] == kind and doc["run_id"] == r.run_id
    assert doc["status"] == status, (doc["status"], doc["outcome"])
    _check_html_is_safe_and_self_contained(r)
    for step in doc["steps"]:  # every step, in every format
        assert f"`{step['id']}`" in r.md and step["id"] in r.html, step["id"]
    if kind == "dry-run":
        _check_dry_run(r)
    else:
        _check_run(r)


def _check_html_is_safe_and_self_contained(r: Reports) -> None:
    page = r.html
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page), "external asset"
    assert page.count("<svg") == 1 and '<svg class="timeline"' in page
    for name in _cloud_names(r.doc):  # the cloud's names, escaped
        if any(c in name for c in "<>&\"'"):
            assert name not in page, f"unescaped: {name}"
            assert (
                htmllib.escape(name, quote=True)
                .replace("&#x27;", "&#39;")
                .replace("&quot;", "&#34;")
                in page
            ), f"not shown: {name}"


def _cloud_names(doc: dict[str, Any]) -> list[str]:
    names = []
    for state in (doc.get("cloud_start"), doc.get("cloud_end")):
        for item in (state or {}).get("vms", []) + (state or {}).get("hosts", []):
            names.append(str(item["name"]))
    for vm in (doc.get("vms") or {}).get("shut_down") or []:
        names.append(str(vm["name"]))
    return names


def _check_dry_run(r: Reports) -> None:
    doc, md = r.doc, r.md
    assert md.startswith("# Dry-run report: ")
    assert f"Detected version: **{doc['current_version']}**" in md
    assert f"target: **{doc['target_version']}**" in md
    assert "- Hop path: " in md and "- Point of no return: " in md and "- Window: " in md
    if doc["point_of_no_return"]:
        assert f"`{doc['point_of_no_return']}`" in md
    assert all(s["expected_start"] and s["expected_end"] for s in doc["steps"])
    assert r.html.count('<rect class="bar step planned') == len(doc["steps"])
    for f in doc["findings"]:  # key, severity, inhibitor or not, how to accept it
        way = f["accept_with"]
        assert f"`{way}`" in md and f"<code>{markupsafe.escape(way)}</code>" in r.html, way
    if doc["findings"]:
        assert '<table class="findings">' in r.html
    assert "## Preflight gates" in md and "## VMs" in md and "## Ansible check mode" in md
    for check in doc["checks"]:
        assert f"`{check['label']}`" in md
    assert doc["outcome"] and f"**{doc['outcome']}**".replace("|", "\\|") in md


def _check_run(r: Reports) -> None:
    doc, md = r.doc, r.md
    assert md.startswith("# Run report: ") and f"`{r.run_id}`: **{doc['status']}**" in md
    attempts = [e for e in doc["timeline"] if e["kind"] == "step"]
    assert r.html.count('<rect class="bar step') == len(attempts)
    for e in doc["timeline"]:
        if e["end"] and e["start"]:  # to the second, and shown so
            assert isinstance(e["seconds"], int) and e["seconds"] >= 0
            h, m, s = e["seconds"] // 3600, e["seconds"] % 3600 // 60, e["seconds"] % 60
            assert f"| {h}:{m:02d}:{s:02d} |" in md
    for g in doc["gates"]:
        assert g["gate"] in md and g["verdict"].upper() in md
    assert "## The cloud at the end" in md
    if doc["cloud_end"] is None:
        assert "Not recorded" in md
    else:
        for host in doc["cloud_end"].get("hosts", []):
            assert f"| {host['name']} | {host['state']} |" in md
    if doc["status"] in ("failed", "paused", "running"):
        assert "## What to do next" in md and doc["next_action"]
        assert f"upgrader resume {r.run_id}" in doc["next_action"] or doc["next_action"] in md
    else:
        assert "## What to do next" not in md
    if doc["status"] == "paused":
        assert "Paused at " in md and '<rect class="bar pause"' in r.html
    if doc["status"] == "failed":
        assert 'class="bar step failed"' in r.html or any(
            g["verdict"] != "pass" for g in doc["gates"]
        )
