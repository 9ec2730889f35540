"""How the oned 3.x simulator and OneClient cope with big pools: seeding, start-up, pool calls.

    .venv/bin/python benchmarks/oned_scale.py [--version 3.2.1] [--sizes 100x2000,1000x20000]
                                              [--repeat 3] [--smoke]

``--smoke`` measures the smallest default size once (100x2000, one repeat: seconds): the test
suite runs it so the benchmark cannot rot; its figures are printed, but one repeat at one
size is no measurement to quote.

For each size (hosts x VMs): seed a database in a temporary directory with the seeder's CLI
(timed), start the simulator (timed until it prints ``listening on``), let it settle, then
measure ``one.hostpool.info`` and ``one.vmpool.info(-2, -1, -1, -1)`` ``--repeat`` times each,
after one warm-up call that is not counted:

* client:  wall time of ``OneClient.host_pool()`` / ``vm_pool()`` over the socket, parsing the
           XML into models included. This is what upgrader pays.
* raw:     wall time of the same XML-RPC request sent with ``http.client`` over the socket,
           until the last byte of the answer is read; nothing is unmarshalled or parsed.
           ``raw - server`` is the simulator's XML-RPC marshalling plus HTTP.
* server:  the time the simulator spends producing the answer, measured **in-process**:
           ``Api.call`` on a Cloud opened with ``open_cloud(..., arm=False)`` against the same
           database once the simulator has stopped (so the two never compete for the CPU or
           the database). That is the handler alone (pool lookup and the join of the stored
           bodies), without XML-RPC marshalling. Chosen over a raw call because a raw call
           also counts marshalling, the HTTP exchange and the client's socket reads.

Sizes are the XML document (what the handler returns) and the HTTP body on the wire (the
document escaped inside an XML-RPC envelope), in MB (10^6 bytes). The simulator's memory is
read from ``/proc/<pid>/status``: VmRSS once it has settled, VmHWM (peak) after the last call.

The simulator runs with host monitoring and VM polling once per simulated day, at --speed 10:
the first monitoring and polling cycle happens right after start (it re-serialises and writes
every VM) and the script waits for that to finish (the process's CPU time stops growing)
before measuring; no further cycle falls inside the measurements.

Baseline: the first size given. Each figure of a larger size is also printed as a ratio to
the same figure of the baseline (the object counts grow 10x with the default sizes, so 10x
is linear scaling).
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the package importable
    sys.path.insert(0, str(ROOT))

from upgrader.lab.oned import api_objects, api_vms  # noqa: E402, F401 - registers handlers
from upgrader.lab.oned.api import Api  # noqa: E402
from upgrader.lab.oned.releases import VERSIONS  # noqa: E402
from upgrader.lab.oned.runtime import open_cloud  # noqa: E402
from upgrader.opennebula import OneClient, Secret  # noqa: E402

USER = "oneadmin"
PASSWORD = "bench-secret-pw"
SESSION = f"{USER}:{PASSWORD}"
SPEED = 10.0
QUIET_INTERVAL = 86400.0  # simulated seconds between monitoring/polling cycles
DEFAULT_SIZES = "100x2000,1000x20000"
CALLS: dict[str, tuple[object, ...]] = {
    "one.hostpool.info": (),
    "one.vmpool.info": (-2, -1, -1, -1),
}
MB = 1e6
# The benchmark being run: gates_scale.py reuses this module's helpers.
PROGRAM = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "oned_scale"


def log(message: str) -> None:
    """Progress on stderr (the figures go to stdout), tagged with the running benchmark."""
    print(f"[{PROGRAM} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Size:
    """One cloud size."""

    hosts: int
    vms: int

    @classmethod
    def parse(cls, text: str) -> Size:
        """``100x2000`` -> Size(100, 2000)."""
        hosts, sep, vms = text.strip().lower().partition("x")
        if not sep or not hosts.isdigit() or not vms.isdigit() or int(hosts) < 1:
            raise argparse.ArgumentTypeError(f"size {text!r} is not HOSTSxVMS, e.g. 100x2000")
        return cls(int(hosts), int(vms))

    def __str__(self) -> str:
        return f"{self.hosts:,} hosts, {self.vms:,} VMs"


@dataclass
class Timings:
    """Seconds per repetition, and the answer sizes in bytes."""

    seconds: list[float] = field(default_factory=list)
    doc_bytes: int = 0
    wire_bytes: int = 0

    @property
    def median(self) -> float:
        """The median of the repetitions."""
        return statistics.median(self.seconds)


@dataclass
class Result:
    """Everything measured for one size."""

    size: Size
    seed_s: float = 0.0
    start_s: float = 0.0
    settle_s: float = 0.0
    rss_settled_kb: int = 0
    hwm_kb: int = 0
    load_s: float = 0.0  # in-process open_cloud (for the server-side figures)
    # (method, side) -> timings; side is "server", "raw" or "client"
    calls: dict[tuple[str, str], Timings] = field(default_factory=dict)


# --- the simulator process ---------------------------------------------------------------------


def write_auth(workdir: Path) -> Path:
    """The ONE_AUTH file, owner-readable only."""
    auth = workdir / "one_auth"
    auth.write_text(f"{SESSION}\n")
    auth.chmod(0o600)
    return auth


@contextmanager
def heartbeat(what: str, every: float = 15.0) -> Iterator[None]:
    """Log ``what ... N s`` every ``every`` seconds until the block ends."""
    done = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not done.wait(every):
            log(f"{what} ... {time.monotonic() - started:.0f} s")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def seed(workdir: Path, version: str, size: Size) -> float:
    """Seed ``workdir/one.db`` with the seeder's CLI; return the seconds it took."""
    auth = write_auth(workdir)
    cmd = [
        sys.executable,
        "-m",
        "upgrader.lab.oned.seed",
        "--version",
        version,
        "--db",
        str(workdir / "one.db"),
        "--one-auth",
        str(auth),
        "--hosts",
        str(size.hosts),
        "--vms",
        str(size.vms),
    ]
    log(f"seeding {size} ({version})")
    started = time.perf_counter()
    with heartbeat(f"seeding {size}"):
        subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - started
    log(f"seeded in {elapsed:.1f} s ({(workdir / 'one.db').stat().st_size / MB:.1f} MB database)")
    return elapsed


@dataclass
class Simulator:
    """A started simulator process."""

    proc: subprocess.Popen[str]
    url: str
    stderr_path: Path

    def status_kb(self, key: str) -> int:
        """A ``kB`` figure of /proc/<pid>/status (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
        raise RuntimeError(f"{key} not in /proc/{self.proc.pid}/status")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM (the simulator writes everything out), wait."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start(workdir: Path, version: str, extra: tuple[str, ...] = ()) -> tuple[Simulator, float]:
    """Start the simulator; return it and the seconds until it printed ``listening on``.

    ``extra`` is added to its command line (e.g. ``("--lab-control",)``).
    """
    quiet = str(QUIET_INTERVAL)
    cmd = [
        sys.executable,
        "-m",
        "upgrader.lab.oned",
        "--version",
        version,
        "--listen",
        "127.0.0.1:0",
        "--db",
        str(workdir / "one.db"),
        "--one-auth",
        str(write_auth(workdir)),
        "--speed",
        str(SPEED),
        "--monitoring-interval",
        quiet,
        "--polling-interval",
        quiet,
        *extra,
    ]
    stderr_path = workdir / "simulator.stderr"
    started = time.perf_counter()
    with stderr_path.open("w") as err:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - started
    if not line.startswith("listening on "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"simulator did not start: {line!r} {stderr_path.read_text()}")
    return Simulator(proc, line.split()[-1], stderr_path), elapsed


def settle(sim: Simulator, *, quiet_for: float = 1.0, timeout: float = 600.0) -> float:
    """Wait past the first monitoring/polling cycle until the simulator is idle; return seconds.

    Idle = under 5 % of one CPU over ``quiet_for`` seconds, checked only once the first
    polling cycle is due (7.5 simulated seconds after start).
    """
    started = time.perf_counter()
    time.sleep((5.0 + 2.0 + 0.5) / SPEED + 0.2)
    before = sim.cpu_seconds()
    while time.perf_counter() - started < timeout:
        time.sleep(quiet_for)
        now = sim.cpu_seconds()
        if now - before < 0.05 * quiet_for:
            return time.perf_counter() - started
        before = now
    raise RuntimeError(f"the simulator was still busy after {timeout:.0f} s")


# --- the three measurements --------------------------------------------------------------------


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """One warm-up call, then ``repeat`` timed ones; the seconds and the last result."""
    result = fn()
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - started)
    return seconds, result


def raw_post(url: str, method: str, params: tuple[object, ...]) -> bytes:
    """POST one XML-RPC call with http.client; the answer's bytes, unparsed."""
    parts = urlsplit(url)
    body = xmlrpc.client.dumps((SESSION, *params), method).encode()
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=600)
    try:
        conn.request("POST", parts.path, body, {"Content-Type": "text/xml"})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    if response.status != 200 or b"<boolean>1</boolean>" not in data[:200]:
        raise RuntimeError(f"{method} failed: HTTP {response.status} {data[:300]!r}")
    return data


def measure_socket(sim: Simulator, size: Size, repeat: int, result: Result) -> None:
    """The client and raw figures, against the running simulator."""
    client = OneClient(sim.url, Secret(SESSION), timeout=600)
    readers: dict[str, Callable[[], tuple[Any, ...]]] = {
        "one.hostpool.info": client.host_pool,
        "one.vmpool.info": client.vm_pool,
    }
    expected = {"one.hostpool.info": size.hosts, "one.vmpool.info": size.vms}
    for method, params in CALLS.items():
        log(f"{method}: raw x{repeat}")
        seconds, data = timed(lambda m=method, p=params: raw_post(sim.url, m, p), repeat)
        result.calls[method, "raw"] = Timings(seconds, wire_bytes=len(data))
        log(f"{method}: client x{repeat}")
        seconds, models = timed(readers[method], repeat)
        if len(models) != expected[method]:
            raise RuntimeError(f"{method}: {len(models)} objects, expected {expected[method]}")
        result.calls[method, "client"] = Timings(seconds)


def measure_server(db: Path, version: str, repeat: int, result: Result) -> None:
    """The server figures: ``Api.call`` in-process on the same database."""
    log("server side: loading the database in-process")
    started = time.perf_counter()
    cloud = open_cloud(db, VERSIONS[version], auth=(USER, PASSWORD), virt_dir=None, arm=False)
    result.load_s = time.perf_counter() - started
    try:
        api = Api(cloud)
        for method, params in CALLS.items():
            log(f"{method}: server x{repeat}")
            seconds, answer = timed(lambda m=method, p=params: api.call(m, (SESSION, *p)), repeat)
            if not answer[0]:
                raise RuntimeError(f"{method} failed in-process: {answer[1]}")
            timings = Timings(seconds, doc_bytes=len(answer[1].encode()))
            result.calls[method, "server"] = timings
            socket = result.calls[method, "raw"]
            socket.doc_bytes = timings.doc_bytes
    finally:
        cloud.store.close()


def run_size(version: str, size: Size, repeat: int) -> Result:
    """Seed, start, settle, measure one size; the temporary directory is removed after."""
    result = Result(size)
    with tempfile.TemporaryDirectory(prefix="oned-scale-") as tmp:
        workdir = Path(tmp)
        result.seed_s = seed(workdir, version, size)
        log("starting the simulator")
        sim, result.start_s = start(workdir, version)
        try:
            log(f"listening after {result.start_s:.2f} s; waiting for the first cycle to pass")
            result.settle_s = settle(sim)
            result.rss_settled_kb = sim.status_kb("VmRSS")
            measure_socket(sim, size, repeat, result)
            result.hwm_kb = sim.status_kb("VmHWM")
        finally:
            log("stopping the simulator")
            sim.stop()
        measure_server(workdir / "one.db", version, repeat, result)
    return result


# --- the report --------------------------------------------------------------------------------


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:6.1f}x" if base else ""


def report(version: str, repeat: int, results: list[Result], *, smoke: bool = False) -> None:
    """Print one table per size, with ratios to the first size (the baseline)."""
    base = results[0]
    print(f"oned simulator {version} scale benchmark (repeat {repeat}, 1 uncounted warm-up)")
    if smoke:
        print("SMOKE run: the smallest size once, to show the benchmark runs; not figures to quote")
    print(f"baseline for the ratios: {base.size}")
    print("server = Api.call in-process (handler only); raw = HTTP round trip, body unparsed;")
    print("client = OneClient over the socket, parsed into models. Call times in ms.")
    for res in results:
        is_base = res is base
        print()
        print(f"== {res.size} ==")
        rows = [
            ("seed the database", res.seed_s, base.seed_s),
            ("start until 'listening on'", res.start_s, base.start_s),
            ("open_cloud in-process (load)", res.load_s, base.load_s),
        ]
        for label, value, base_value in rows:
            ratio = "" if is_base else _ratio(value, base_value)
            print(f"  {label:<30} {value:9.2f} s  {ratio}".rstrip())
        rss, hwm = res.rss_settled_kb / 1024, res.hwm_kb / 1024
        hwm_ratio = "" if is_base else _ratio(res.hwm_kb, base.hwm_kb)
        print(f"  {'simulator RSS after settling':<30} {rss:9.1f} MiB")
        print(f"  {'simulator peak RSS (VmHWM)':<30} {hwm:9.1f} MiB  {hwm_ratio}".rstrip())
        print()
        header = (
            f"  {'call':<18} {'side':<7} {'median':>9} {'min':>9} {'max':>9}"
            f" {'doc MB':>7} {'wire MB':>8}  {'vs base':>7}"
        )
        print(header)
        print("  " + "-" * (len(header) - 2))
        for method in CALLS:
            for side in ("server", "raw", "client"):
                t = res.calls[method, side]
                doc = f"{t.doc_bytes / MB:7.2f}" if t.doc_bytes else " " * 7
                wire = f"{t.wire_bytes / MB:8.2f}" if t.wire_bytes else " " * 8
                ratio = "" if is_base else _ratio(t.median, base.calls[method, side].median)
                low, high = min(t.seconds) * 1000, max(t.seconds) * 1000
                print(
                    f"  {method:<18} {side:<7} {t.median * 1000:9.1f} {low:9.1f} {high:9.1f}"
                    f" {doc} {wire}  {ratio:>7}".rstrip()
                )
        client = res.calls["one.vmpool.info", "client"].median
        raw = res.calls["one.vmpool.info", "raw"].median
        server = res.calls["one.vmpool.info", "server"].median
        per_vm_us = client / res.size.vms * 1e6 if res.size.vms else 0.0
        print(
            f"  vm_pool(): {per_vm_us:.0f} us per VM on the client, of which the socket round "
            f"trip {raw / client:.0%} and the server handler {server / client:.1%}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--version", default="3.2.1", choices=sorted(VERSIONS))
    p.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        type=lambda text: [Size.parse(part) for part in text.split(",")],
        help=f"comma-separated HOSTSxVMS (default {DEFAULT_SIZES}); the first is the baseline",
    )
    p.add_argument("--repeat", type=int, default=3, help="timed calls per measurement")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="the smallest default size, one repeat (seconds): does it still run?",
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.sizes, args.repeat = [Size.parse(DEFAULT_SIZES.partition(",")[0])], 1
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    results = [run_size(args.version, size, args.repeat) for size in args.sizes]
    report(args.version, args.repeat, results, smoke=args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
