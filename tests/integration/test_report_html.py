"""The HTML report in a real browser: Debian's Chromium, headless, renders a dry run's page
of a cloud with a VM named like an attack; the DOM has the SVG timeline (one bar per step)
and the findings table, the VM's name is text (no script element), and the screenshot saved
under the test's directory is a page, not a blank."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import dry_run_cloud, site
from tests.support.dry_run_cloud import ACCEPT

EVIL = "<script>alert(1)</script> & 'q'"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """test_dry_run's 3.2 cloud (two VMs, two inhibitors), plus a running VM named EVIL."""
    sim, config = dry_run_cloud.start(tmp_path)
    vm = sim.call("one.vm.allocate", f'NAME="{EVIL}"\nCPU=0.1\nMEMORY=64\n')
    sim.call("one.vm.deploy", vm, 0)
    deadline = time.monotonic() + 30
    while "<STATE>3</STATE><LCM_STATE>3</LCM_STATE>" not in sim.call("one.vm.info", vm):
        assert time.monotonic() < deadline, "the VM did not come up"
        time.sleep(0.2)
    yield tmp_path, config
    sim.stop()


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("Debian's chromium is not installed (scripts/bootstrap installs it)")
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'chromium'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def png_facts(path: Path) -> tuple[int, int, float, int]:
    """Width, height, the share of pixel rows that differ from the row above (a blank page
    has none: every filtered row of one colour is zeros), and the distinct byte values."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), "8-bit RGB or RGBA expected"
    stride = width * (3 if colour == 2 else 4)
    raw = zlib.decompress(idat)
    assert len(raw) == height * (stride + 1)
    rows = [raw[i * (stride + 1) + 1 : (i + 1) * (stride + 1)] for i in range(height)]
    busy = sum(1 for row in rows[1:] if len(row) - row.count(0) > 8)
    return width, height, busy / height, len(set(raw))


def test_the_html_report_renders_in_headless_chromium(cloud, tmp_path):
    root, config = cloud
    page = root / "dry-run.html"
    result = site.upgrader(
        config, "run", "3.6", "--stage", "--dry-run", *ACCEPT, "--report", str(page)
    )
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.split()[2]
    site.upgrader(
        config, "report", run_id, "--format", "json", "-o", str(root / "r.json"), check=True
    )
    doc = json.loads((root / "r.json").read_text())
    assert EVIL in [vm["name"] for vm in doc["vms"]["shut_down"]]

    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    svg = re.search(r'<svg class="timeline".*?</svg>', dom, re.S)
    assert svg is not None, "no SVG timeline in the rendered DOM"
    bars = re.findall(r'<rect class="bar step planned[^"]*" data-name="([^"]*)"', svg.group(0))
    assert bars == [s["id"] for s in doc["steps"]]  # one bar per step, in plan order
    findings = re.search(r'<table class="findings">.*?</table>', dom, re.S)
    assert findings is not None, "no findings table in the rendered DOM"
    assert [f["key"] for f in doc["findings"]] == re.findall(
        r'<tr class="finding"><td><code>([^<]*)</code>', findings.group(0)
    )
    assert "<script" not in dom.lower()  # the VM's name stayed text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; 'q'" in dom

    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    print(f"\nscreenshot of the dry-run report: {shot}")
    width, height, busy, values = png_facts(shot)
    assert (width, height) == (1280, 2000)
    assert busy > 0.1 and values > 32, (busy, values)  # text, tables and the chart drawn
