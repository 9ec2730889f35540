"""How long the cloud-wide gates take on a big cloud: hosts-monitored, vms-settled and
no-duplicate-vms, at two sizes.

    .venv/bin/python benchmarks/gates_scale.py [--version 3.2.1] [--sizes 500x10000,1000x20000]
                                               [--repeat 3] [--smoke]

``--smoke`` measures one small size once (100x2000, one repeat: seconds, where the smallest
default size takes half a minute): the test suite runs it so the benchmark cannot rot. Its
figures are printed, but one repeat at one size is no measurement to quote, so it fails only
on a verdict that is not pass, never on a timing target.

For each size (hosts x VMs), with oned_scale.py's helpers: seed a database in a temporary
directory, start the simulator (with ``--lab-control``) and let it settle. Then:

* domains: every hypervisor's running domains are read once with the simulator's
  ``lab.virt.list`` (the libvirt test driver's state). This stands in for ``virsh list`` on
  every host, which in real use is an Ansible play over the hypervisors; it happens **before**
  the timing starts and is not part of any figure. ``no-duplicate-vms`` gets it through a
  stand-in for ``HostObserver`` that hands back what was read.
* gates: each gate of ``upgrader.gates.catalogue.build_gates`` is evaluated as the executor does,
  ``gate(spec, step)``: oned's side (the XML-RPC call, the simulator's handler, marshalling,
  HTTP), then upgrader's (unmarshalling, parsing into models, observation, verdict). One
  uncounted warm-up, then ``--repeat`` timed evaluations, each after a ``gc.collect()``;
  the median wall time is reported, with the benchmark process's CPU time beside it (the
  client side alone, less sensitive to other load on the machine). ``timeout: 0`` in the
  spec: a gate that is not sure answers inconclusive at once instead of waiting; every
  verdict is printed and, on a settled cloud, must be pass.
* breakdown: the two pool calls the gates make, cut into their parts, median of
  ``--repeat``: ``round trip`` (``http.client`` request until the last byte, nothing parsed:
  the simulator's whole side plus HTTP), ``unmarshal`` (the XML-RPC reply to the document
  string, as ``OneClient``'s transport does it), ``parse`` (the document into models). After
  the simulator has stopped, ``handler`` and ``marshal`` measure its side in-process: the
  ``Api.call`` handler alone, and ``xmlrpc.client.dumps`` + encode of its answer (what
  SimpleXMLRPCServer does before sending).

Targets (the issue): every gate under 2 s at the largest size, and at most 1.1 times
linear from the first size to the largest (2.2 times for the default sizes, 2x the VMs).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
if str(ROOT.parent) not in sys.path:  # run as a script: make the package importable
    sys.path.insert(0, str(ROOT.parent))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from oned_scale import (  # noqa: E402
    MB,
    PASSWORD,
    SESSION,
    USER,
    Simulator,
    Size,
    log,
    raw_post,
    seed,
    settle,
    start,
)

from upgrader.gates.catalogue import build_gates  # noqa: E402
from upgrader.gates.model import ALL_PARTS, PASS, Gathered, Observer  # noqa: E402
from upgrader.lab.oned import api_objects, api_vms  # noqa: E402, F401 - registers handlers
from upgrader.lab.oned.api import Api  # noqa: E402
from upgrader.lab.oned.releases import VERSIONS  # noqa: E402
from upgrader.lab.oned.runtime import open_cloud  # noqa: E402
from upgrader.opennebula import OneClient, Secret, parse  # noqa: E402
from upgrader.opennebula.transport import reply_parser  # noqa: E402
from upgrader.plan.model import PlannedStep  # noqa: E402
from upgrader.plan.runbook_model import GateSpec  # noqa: E402

DEFAULT_SIZES = "500x10000,1000x20000"
SMOKE_SIZE = "100x2000"
GATES = ("hosts-monitored", "vms-settled", "no-duplicate-vms")
TARGET_S = 2.0
TARGET_OVER_LINEAR = 1.1
POOLS: dict[str, tuple[tuple[object, ...], Callable[[str], tuple[Any, ...]]]] = {
    "one.hostpool.info": ((), parse.parse_host_pool),
    "one.vmpool.info": ((-2, -1, -1, -1), parse.parse_vm_pool),
}
PARTS = ("round trip", "unmarshal", "parse", "handler", "marshal")
# No waiting: a verdict that is not sure comes back inconclusive at once (and is reported).
SPEC_PARAMS = {"interval": 1, "timeout": 0}
STEP = PlannedStep(
    id="bench/gates",
    hop="",
    step="gates",
    title="gates_scale benchmark",
    kind="action",
    playbook=None,
    action=None,
    target="all",
    hosts=(),
    limit=None,
    estimate=0.0,
    idempotent=True,
    undo=None,
    point_of_no_return=False,
    gates_before=(),
    gates_after=(),
)


@dataclass
class GateTimes:
    """Wall and CPU seconds per timed evaluation, and the last verdict."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    verdict: str = ""
    summary: str = ""


@dataclass
class Result:
    """Everything measured for one size."""

    size: Size
    gates: dict[str, GateTimes] = field(default_factory=dict)
    parts: dict[tuple[str, str], float] = field(default_factory=dict)  # (method, part) -> s
    doc_bytes: dict[str, int] = field(default_factory=dict)


# --- the hypervisors' side, read before timing ----------------------------------------------


def read_domains(sim: Simulator, hosts: list[str]) -> dict[str, dict[str, Any]]:
    """host -> what the gather play reports of ``virsh list``, from ``lab.virt.list``."""
    proxy = xmlrpc.client.ServerProxy(sim.url)
    return {
        host: {"virsh_rc": 0, "virsh": list(proxy.lab.virt.list(host)), "virsh_error": ""}
        for host in hosts
    }


class ReadObserver:
    """Stands in for ``HostObserver`` (an ``Observer``): hands back the domains read before
    the timing, whatever parts are asked for."""

    def __init__(self, hypervisors: Mapping[str, Mapping[str, Any]]) -> None:
        self.hypervisors = hypervisors

    def gather(self, parts: frozenset[str] = ALL_PARTS, *, fresh: bool = False) -> Gathered:
        """What the gather play would have found (the same every time)."""
        return Gathered(hypervisors=self.hypervisors)

    def new_round(self, parts: frozenset[str] = frozenset()) -> None:
        """Nothing to forget: the domains were read once, before the timing."""


# --- the measurements -----------------------------------------------------------------------


def evaluate(gate: Callable[[GateSpec, PlannedStep], Any], name: str, repeat: int) -> GateTimes:
    """One warm-up evaluation, then ``repeat`` timed ones."""
    spec = GateSpec(name, SPEC_PARAMS)
    times = GateTimes()
    result = gate(spec, STEP)
    for _ in range(repeat):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        result = gate(spec, STEP)
        times.cpu.append(time.process_time() - cpu)
        times.wall.append(time.perf_counter() - wall)
    times.verdict = str(result.verdict)
    times.summary = str(result.evidence.get("summary", ""))[:100]
    return times


def median_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The median seconds of ``repeat`` calls after one warm-up, and the last result."""
    result = fn()
    seconds = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def measure_client_parts(sim: Simulator, repeat: int, result: Result) -> None:
    """Round trip, unmarshal and parse of each pool call, against the running simulator."""
    for method, (params, parse_pool) in POOLS.items():
        log(f"{method}: breakdown x{repeat}")
        seconds, data = median_of(lambda m=method, p=params: raw_post(sim.url, m, p), repeat)
        result.parts[method, "round trip"] = seconds

        def unmarshal(data: bytes = data) -> Any:
            parser, target = reply_parser()
            parser.feed(data)
            parser.close()
            return target.close()

        seconds, reply = median_of(unmarshal, repeat)
        result.parts[method, "unmarshal"] = seconds
        doc = reply[0][1]
        result.doc_bytes[method] = len(doc.encode())
        seconds, _ = median_of(lambda d=doc, f=parse_pool: f(d), repeat)
        result.parts[method, "parse"] = seconds


def measure_server_parts(db: Path, version: str, repeat: int, result: Result) -> None:
    """The simulator's handler and marshalling, in-process, once it has stopped."""
    log("server side: loading the database in-process")
    cloud = open_cloud(db, VERSIONS[version], auth=(USER, PASSWORD), virt_dir=None, arm=False)
    try:
        api = Api(cloud)
        for method, (params, _) in POOLS.items():
            log(f"{method}: server side x{repeat}")
            seconds, answer = median_of(
                lambda m=method, p=params: api.call(m, (SESSION, *p)), repeat
            )
            result.parts[method, "handler"] = seconds
            seconds, _ = median_of(
                lambda a=answer: xmlrpc.client.dumps((a,), methodresponse=True).encode(), repeat
            )
            result.parts[method, "marshal"] = seconds
    finally:
        cloud.store.close()


def run_size(version: str, size: Size, repeat: int) -> Result:
    """Seed, start, settle, read the domains, time the gates; the directory is removed after."""
    result = Result(size)
    with tempfile.TemporaryDirectory(prefix="gates-scale-") as tmp:
        workdir = Path(tmp)
        seed(workdir, version, size)
        log("starting the simulator")
        sim, _ = start(workdir, version, ("--lab-control",))
        try:
            log("waiting for the first monitoring cycle to pass")
            settle(sim)
            client = OneClient(sim.url, Secret(SESSION), timeout=600)
            hosts = [host.name for host in client.host_pool()]
            log(f"reading the domains of {len(hosts)} hypervisors (not timed)")
            observer: Observer = ReadObserver(read_domains(sim, hosts))
            gates = build_gates(client, lambda line: None, observer)
            for name in GATES:
                log(f"{name}: x{repeat}")
                result.gates[name] = evaluate(gates[name], name, repeat)
            measure_client_parts(sim, repeat, result)
        finally:
            log("stopping the simulator")
            sim.stop()
        measure_server_parts(workdir / "one.db", version, repeat, result)
    return result


# --- the report -----------------------------------------------------------------------------


def _wall(res: Result, name: str) -> float:
    return statistics.median(res.gates[name].wall)


def report(version: str, repeat: int, results: list[Result], *, smoke: bool = False) -> bool:
    """Print the tables; return whether the targets hold."""
    first, last = results[0], results[-1]
    allowed = TARGET_OVER_LINEAR * last.size.vms / first.size.vms
    cpus, load = os.cpu_count(), os.getloadavg()[0]
    print(f"gates at scale, oned simulator {version}: median of {repeat}, 1 uncounted warm-up")
    if smoke:
        print("SMOKE run: one small size once, to show the benchmark runs; not figures to quote")
    print(f"({cpus} CPUs, load average {load:.2f} at the end; the simulator is another process)")
    print("One evaluation = gate(spec, step): oned's side (handler, marshalling, HTTP) plus")
    print("upgrader's (unmarshalling, parsing into models, observation, verdict).")
    print("NOT timed: the per-host `virsh list` that no-duplicate-vms compares with oned (in")
    print("real use an Ansible play over the hypervisors); it was read before the timing.")
    print("wall = the evaluation's elapsed time; cpu = the benchmark process's (upgrader's) share.")
    print()
    labels = "".join(f" {f'{r.size.hosts}x{r.size.vms}':<16}" for r in results)
    print(f"  {'gate':<18}{labels}   ratio  target")
    print(f"  {'':<18}" + f" {'wall':>8} {'cpu':>7}" * len(results))
    print("  " + "-" * (18 + 17 * len(results) + 16))
    holds = True
    for name in GATES:
        cells = "".join(
            f" {_wall(r, name):7.3f}s {statistics.median(r.gates[name].cpu):6.2f}s" for r in results
        )
        ratio = _wall(last, name) / _wall(first, name)
        passed = all(r.gates[name].verdict == PASS for r in results)
        ok = _wall(last, name) < TARGET_S and ratio <= allowed and passed
        holds &= ok
        print(f"  {name:<18}{cells} {ratio:6.2f}x  {'holds' if ok else 'MISSED'}")
        for res in results:
            if res.gates[name].verdict != PASS:
                print(f"      at {res.size}: {res.gates[name].verdict}: {res.gates[name].summary}")
    print()
    print(f"  targets: every gate under {TARGET_S:.1f} s at {last.size},")
    print(f"  at most {allowed:.2f}x its time at {first.size}, and a pass verdict")
    print()
    print("  where a pool call's time goes, ms (handler + marshal: the simulator, in-process;")
    print("  round trip: both of those plus HTTP, as the client waits for them)")
    header = f"  {'call':<18} {'size':<11} {'doc MB':>6}" + "".join(f" {p:>10}" for p in PARTS)
    print(header)
    print("  " + "-" * (len(header) - 2))
    for method in POOLS:
        for res in results:
            cells = "".join(f" {res.parts[method, p] * 1000:10.1f}" for p in PARTS)
            label = f"{res.size.hosts}x{res.size.vms}"
            print(f"  {method:<18} {label:<11} {res.doc_bytes[method] / MB:6.1f}{cells}")
    print()
    print(f"  overall: the targets {'hold' if holds else 'are MISSED'}")
    return holds


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; exit 1 if a target is missed."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--version", default="3.2.1", choices=sorted(VERSIONS))
    p.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        type=lambda text: [Size.parse(part) for part in text.split(",")],
        help=f"comma-separated HOSTSxVMS (default {DEFAULT_SIZES}); ratios are last/first",
    )
    p.add_argument("--repeat", type=int, default=3, help="timed evaluations (median of N)")
    p.add_argument(
        "--smoke",
        action="store_true",
        help=f"{SMOKE_SIZE}, one repeat (seconds): does it still run?",
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.sizes, args.repeat = [Size.parse(SMOKE_SIZE)], 1
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if any(size.vms < 1 for size in args.sizes):
        p.error("every size needs at least one VM")
    results = [run_size(args.version, size, args.repeat) for size in args.sizes]
    holds = report(args.version, args.repeat, results, smoke=args.smoke)
    if args.smoke:  # one repeat on a shared machine: only a wrong verdict fails
        return 0 if all(t.verdict == PASS for r in results for t in r.gates.values()) else 1
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
