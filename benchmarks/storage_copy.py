"""The datastore copy engine against cp and rsync, under Python 3 and Python 2.7 side by side,
and the downtime of a two-phase migration.

    .venv/bin/python benchmarks/storage_copy.py [--dir DIR] [--repeat 3] [--workers 4] [--keep]
                                                [--smoke]

Builds under ``--dir`` (default: a new temporary directory under /var/tmp, i.e. this machine's
disk, not tmpfs) a datastore like an OpenNebula 3.x one: image datastore ``1/`` with sparse raw
images (640 MiB apparent, 64 MiB of data in 1 MiB extents) and dense images, system datastore
``0/`` with per-VM directories (deployment file, checkpoint, disk symlinks). At least 4 GiB
apparent and 1 GiB allocated. Source and destinations are on the same file system, so every
contender reads and writes the same disk.

The engine runs as a front end runs it: a process of the interpreter the host has, the
package imported standalone (``upgrader/storage`` on ``sys.path``). It is run under this
venv's Python 3 (``py3.11`` on the controller) and, when the lab's Python 2.7 is fetched
(``python -m upgrader.lab.python2 fetch``), under that ``py2.7`` too, each into a destination
of its own, on the same source: one column each in the table, and their ratio. Each engine
figure is measured inside its process, from the call until ``sync`` returned (interpreter
start-up excluded); the order of the interpreters alternates from one trial to the next.

Each figure is the median (and min) of ``--repeat`` wall times; each trial line ends with
the load average, since other work on the machine shows in these figures. Before every trial
the destinations are removed and ``sync`` is run; every timing ends when the data is durable
(``sync`` included):

* ours: ``sync(reread=True)``: copy with checksums computed from the data read, per-file
  fsync, and each file re-read from the disk (O_DIRECT) and its checksum compared as soon as
  it is durable, while the other workers go on writing (the disk reads and writes at once);
* cp: ``cp -a --sparse=always`` then ``sync`` (no verification at all);
* rsync: ``rsync -aHS`` then ``sync``, then the verify pass ``rsync -aHSc --dry-run``;
* stop-the-world downtime: the VMs stopped for a whole copy + verify (= ours);
* two-phase downtime: after the copy above (the pre-sync), 5 % of the allocated data is
  rewritten the way running VMs do it (random 1 MiB writes into one dense image and two sparse
  ones, a checkpoint rewritten); timed: the delta ``sync()`` + ``verify()`` of every entry +
  ``sync``.
* two-phase, window re-reading only what changed (a measured alternative, NOT what the runbook
  does): everything was verified outside the window (by the window above), another 5 % is
  changed, and the window runs the delta + ``verify(reread="unverified")``, which re-reads
  the files the delta copied and checks the others by stat and metadata.

Targets (issue 7, for each interpreter): ours <= 1.3 x cp; ours <= 0.5 x rsync; two-phase <=
0.15 x stop-the-world. Python 2.7 has no target of its own beyond those: its column shows what
a 2012 front end costs against Python 3 on the same disk.

``--smoke`` builds a datastore of about 20 MiB (2 sparse images of 16 MiB with 4 MiB of data,
one dense image of 8 MiB, 2 VMs) and runs one trial of every contender under each interpreter:
seconds, so the test suite runs it and the benchmark cannot rot. Its figures are printed but
are no measurement to quote; without rsync installed, or Python 2.7 not fetched, a smoke run
leaves that contender or column out and says so.
The page cache is not dropped (this machine does not allow it): every contender reads a source
that is warm; our verify reads the destination with O_DIRECT (what the disk holds), so it
costs a full read of the data from the disk, which cp does not do at all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from upgrader.lab.python2 import interpreter
from upgrader.storage import inventory

MIB = 1 << 20
ENGINE_DIR = Path(__file__).resolve().parent.parent / "upgrader" / "storage"
# What runs in the engine's process: Python 2.7 and 3 syntax (it is run by both).
CHILD = """
import json, os, subprocess, sys
job = json.loads(sys.argv[1])
sys.path.insert(0, job["engine"])
import datastore_copy as dc
now = dc.compat.monotonic
out = {}
started = now()
if job["action"] == "copy":
    done = dc.sync(job["src"], job["dst"], job["manifest"], workers=job["workers"], reread=True)
    out["parts"] = {"sync_and_reread": done["seconds"]}
else:
    delta = dc.sync(job["src"], job["dst"], job["manifest"], phase="delta",
                    workers=job["workers"])
    result = dc.verify(job["dst"], job["manifest"], workers=job["workers"],
                       reread=job["reread"])
    if result["mismatches"] or result["missing"]:
        sys.exit("verify found the copy wrong: %r" % (result,))
    out["parts"] = {"delta": delta["seconds"], "delta_files": len(delta["copied"]),
                    "delta_written": delta["bytes_copied"], "delta_read": delta["bytes_total"],
                    "verify": result["seconds"], "reread": result["reread"],
                    "stat_checked": result["stat_checked"]}
if hasattr(os, "sync"):
    os.sync()
else:
    subprocess.check_call(["sync"])
out["seconds"] = now() - started
print(json.dumps(out, sort_keys=True))
"""


@dataclass(frozen=True)
class Shape:
    """The datastore built: images (count, apparent size, data), VMs and their checkpoint."""

    sparse_images: int
    sparse_size: int
    sparse_data: int
    dense_images: int
    dense_size: int
    vms: int
    checkpoint: int


FULL = Shape(6, 640 * MIB, 64 * MIB, 3, 256 * MIB, 4, 16 * MIB)
SMOKE = Shape(2, 16 * MIB, 4 * MIB, 1, 8 * MIB, 2, 1 * MIB)


def image_name(i: int) -> str:
    return f"{i:032x}"


def build(src: Path, rng: random.Random, shape: Shape) -> None:
    """Write the datastore: sparse images with scattered data, dense images, VM directories."""
    (src / "1").mkdir(parents=True)
    for i in range(shape.sparse_images):
        with open(src / "1" / image_name(i), "wb") as fh:
            fh.truncate(shape.sparse_size)
            for block in rng.sample(range(shape.sparse_size // MIB), shape.sparse_data // MIB):
                fh.seek(block * MIB)
                fh.write(rng.randbytes(MIB))
    for i in range(shape.dense_images):
        with open(src / "1" / image_name(100 + i), "wb") as fh:
            for _ in range(shape.dense_size // MIB):
                fh.write(rng.randbytes(MIB))
    for vm in range(shape.vms):
        vm_dir = src / "0" / str(vm)
        vm_dir.mkdir(parents=True)
        (vm_dir / "deployment.0").write_text(f"<domain><name>one-{vm}</name></domain>\n")
        (vm_dir / "checkpoint").write_bytes(rng.randbytes(shape.checkpoint))
        os.symlink(f"../../1/{image_name(vm % shape.sparse_images)}", vm_dir / "disk.0")
        os.symlink(f"../../1/{image_name(100 + vm % shape.dense_images)}", vm_dir / "disk.1")


def change_five_percent(src: Path, rng: random.Random, allocated: int, shape: Shape) -> int:
    """Rewrite 5 % of the allocated bytes as running VMs would; returns the bytes written."""
    budget = allocated // 20
    written = 0
    (src / "0" / "0" / "checkpoint").write_bytes(rng.randbytes(shape.checkpoint))  # VM 0 suspended
    written += shape.checkpoint
    targets = [
        (image_name(100), shape.dense_size),
        (image_name(0), shape.sparse_size),
        (image_name(1), shape.sparse_size),
    ]
    # At least 1 MiB per image: 5 % of the smoke datastore is less than its checkpoint.
    per_target = max(1, (budget - written) // len(targets) // MIB)
    for name, size in targets:
        with open(src / "1" / name, "r+b") as fh:
            for block in rng.sample(range(size // MIB), per_target):
                fh.seek(block * MIB)
                fh.write(rng.randbytes(MIB))
                written += MIB
    os.sync()
    return written


def fresh(dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir()
    os.sync()


def timed(fn) -> float:
    start = time.monotonic()
    fn()
    os.sync()
    return time.monotonic() - start


def run(cmd: list) -> None:
    subprocess.run([str(c) for c in cmd], check=True, stdout=subprocess.DEVNULL)


@dataclass(frozen=True)
class Engine:
    """An interpreter the engine runs under: its column's label and its executable."""

    label: str
    python: str


def engines() -> tuple[list[Engine], str | None]:
    """This venv's Python 3 and, when fetched, the lab's Python 2.7; and why 2.7 is missing."""
    found = [Engine("py{}.{}".format(*sys.version_info[:2]), sys.executable)]
    python2 = interpreter()
    if python2 is None:
        return (
            found,
            "python2.7: not fetched (python -m upgrader.lab.python2 fetch), column left out",
        )
    return [*found, Engine("py2.7", str(python2))], None


def engine_run(engine: Engine, action: str, src: Path, dst: Path, manifest: Path,
               workers: int, reread: str = "all") -> dict:  # fmt: skip
    """One engine call in a process of ``engine``'s interpreter: its seconds and parts."""
    job = {
        "engine": str(ENGINE_DIR),
        "action": action,
        "src": str(src),
        "dst": str(dst),
        "manifest": str(manifest),
        "workers": workers,
        "reread": reread,
    }
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([engine.python, "-c", CHILD, json.dumps(job)], capture_output=True,
                          text=True, env=env, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(
            f"error: the engine under {engine.label} failed ({action}):\n{done.stderr}"
        )
    return json.loads(done.stdout.splitlines()[-1])


def trial(src: Path, work: Path, workers: int, rng: random.Random, allocated: int,
          shape: Shape, runners: list[Engine], *, rsync: bool = True) -> dict:  # fmt: skip
    """One round of every contender (rsync's only when ``rsync``), each engine's into a
    destination of its own; wall times in seconds, per engine under its label."""
    out: dict = {e.label: {} for e in runners}
    places = {
        e.label: (work / f"dst-{e.label}", work / f"manifest-{e.label}.jsonl") for e in runners
    }

    def each(action: str, key: str, reread: str = "all") -> None:
        for e in runners:
            dst, manifest = places[e.label]
            if action == "copy":
                for p in work.glob(f"{manifest.name}*"):
                    p.unlink()
                fresh(dst)
            done = engine_run(e, action, src, dst, manifest, workers, reread)
            out[e.label][key], out[e.label][key + "_parts"] = done["seconds"], done["parts"]

    # The copy is also the two-phase migration's pre-sync.
    each("copy", "ours")
    other = work / "dst-other"
    fresh(other)
    out["cp"] = timed(lambda: run(["cp", "-a", "--sparse=always", f"{src}/.", other]))
    if rsync:
        fresh(other)
        out["rsync"] = timed(lambda: run(["rsync", "-aHS", f"{src}/", f"{other}/"]))
        out["rsync"] += timed(lambda: run(["rsync", "-aHSc", "--dry-run", f"{src}/", f"{other}/"]))
    shutil.rmtree(other)
    out["changed_bytes"] = change_five_percent(src, rng, allocated, shape)
    each("window", "two_phase")
    # The alternative window: all entries verified (by the window above), 5 % changed again.
    out["changed_again"] = change_five_percent(src, rng, allocated, shape)
    each("window", "two_phase_alt", reread="unverified")
    for dst, _ in places.values():
        shutil.rmtree(dst)
    return out


def fs_type(path: Path) -> str:
    return subprocess.run(
        ["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=False
    ).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the built datastore")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a 20 MiB datastore, one trial (seconds): does it still run?",
    )
    args = parser.parse_args()
    shape = SMOKE if args.smoke else FULL
    if args.smoke:
        args.repeat = 1
    rsync = shutil.which("rsync") is not None
    for tool in ("cp", "sync") if args.smoke else ("cp", "rsync", "sync"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not installed (apt-get install -y {tool})", file=sys.stderr)
            return 1
    runners, missing = engines()
    work = args.dir or Path(tempfile.mkdtemp(prefix="storage-bench-", dir="/var/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / "src"
    rng = random.Random(7)
    try:
        if not src.exists():
            build(src, rng, shape)
        inv = inventory(src)
        if args.smoke:
            print("SMOKE run: a 20 MiB datastore once, to show the benchmark runs; "
                  "not figures to quote")  # fmt: skip
        if not rsync:
            print("rsync: not installed (apt-get install -y rsync), its contender left out")
        if missing:
            print(missing)
        print(
            f"machine: nproc={os.cpu_count()} fs={fs_type(work)} kernel={platform.release()} "
            f"engine under {', '.join(e.label for e in runners)} dir={work}"
        )
        print(
            f"datastore: {inv['files']} files, {inv['images']} images, {inv['vm_dirs']} VM dirs, "
            f"apparent {inv['apparent_bytes'] / 2**30:.2f} GiB, "
            f"allocated {inv['allocated_bytes'] / 2**30:.2f} GiB"
        )
        trials = []
        for i in range(args.repeat):
            order = runners if i % 2 == 0 else runners[::-1]
            t = trial(src, work, args.workers, rng, inv["allocated_bytes"], shape, order,
                      rsync=rsync)  # fmt: skip
            trials.append(t)
            load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
            rsync_s = f", rsync {t['rsync']:.2f} s" if rsync else ""
            print(f"  trial {i + 1}: cp {t['cp']:.2f} s{rsync_s}; loadavg {load}", flush=True)
            for e in order:
                r = t[e.label]
                print(
                    f"    {e.label}: ours {r['ours']:.2f} s {r['ours_parts']}, two-phase "
                    f"{r['two_phase']:.2f} s {r['two_phase_parts']}, alternative window "
                    f"{r['two_phase_alt']:.2f} s {r['two_phase_alt_parts']}",
                    flush=True,
                )
        report(trials, [e.label for e in runners])
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


ROWS = [
    ("ours copy + verify", "ours", ""),
    ("stop-the-world downtime", "ours", "copy + verify of everything"),
    ("two-phase downtime", "two_phase", "delta + verify of every entry"),
    ("ALTERNATIVE two-phase downtime", "two_phase_alt",
     "not the default: re-reads only files copied since their verification"),
]  # fmt: skip


def report(trials: list[dict], labels: list[str]) -> None:
    """One table: a column of figures per interpreter, their ratio, then the targets."""

    def figures(values: list[float]) -> str:
        return f"{statistics.median(values):6.2f} s ({min(values):5.2f})"

    def med(label: str, key: str) -> float:
        return statistics.median(t[label][key] for t in trials)

    width = 22
    print(f"median (min) of {len(trials)} (seconds, until durable):")
    head = "".join(f"{label:>{width}s}" for label in labels)
    ratio = f"  {labels[1]}/{labels[0]}" if len(labels) > 1 else ""
    print(f"  {'':40s}{head}{ratio}")
    for name, key, note in ROWS:
        cells = "".join(f"{figures([t[label][key] for t in trials]):>{width}s}" for label in labels)
        if len(labels) > 1:
            cells += f"  {med(labels[1], key) / med(labels[0], key):8.2f}x"
        print(f"  {name:40s}{cells}" + (f"  ({note})" if note else ""))
    for name, key in (
        ("cp -a --sparse=always + sync", "cp"),
        ("rsync -aHS + sync + -c verify", "rsync"),
    ):
        if key in trials[0]:
            print(f"  {name:40s}{figures([t[key] for t in trials]):>{width}s}")
    changed = statistics.median(t["changed_bytes"] for t in trials)
    print(f"  changed before each window: {changed / MIB:.0f} MiB")
    cp = statistics.median(t["cp"] for t in trials)
    rsync = statistics.median(t["rsync"] for t in trials) if "rsync" in trials[0] else None
    print(f"  {'targets':40s}" + "".join(f"{label:>{width}s}" for label in labels))
    targets = [("ours / cp", lambda lb: med(lb, "ours") / cp, 1.3)]
    if rsync:
        targets.append(("ours / rsync", lambda lb: med(lb, "ours") / rsync, 0.5))
    targets += [
        ("two-phase / stop-the-world", lambda lb: med(lb, "two_phase") / med(lb, "ours"), 0.15),
        ("ALTERNATIVE two-phase / stop-the-world",
         lambda lb: med(lb, "two_phase_alt") / med(lb, "ours"), 0.15),
    ]  # fmt: skip
    for name, ratio_of, target in targets:
        cells = ""
        for label in labels:
            value = ratio_of(label)
            cells += f"{value:8.2f}x {'PASS' if value <= target else 'MISS':>4s}".rjust(width)
        print(f"  {name:40s}{cells}  (target <= {target})")


if __name__ == "__main__":
    sys.exit(main())
