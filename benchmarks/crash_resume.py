"""Crash and resume, many times: SIGKILL ``upgrader run`` at a random moment of a full lab
run, resume it, check every invariant; print each trial and the tally.

    .venv/bin/python benchmarks/crash_resume.py [--trials 50] [--seed S] [--vms 2]
                                                [--parallel 1] [--lab NAME --subnet A.B.C]
                                                [--smoke]

Needs root (the built-in lab). Each trial brings up a fresh lab, runs one of the three
runbooks a site runs (3.2 -> 3.4, storage OCFS2 -> NFS, 3.4 -> 3.6, in turn), kills the run
at a random moment, resumes it until it finishes, checks, and takes the lab down; what a
trial does and checks is in tests/reliability/crash.py, the same code CI runs 5 times.
A trial takes one to three minutes, so 50 take one to two hours; ``--parallel 2`` runs two
trials at a time on two labs (NAME1, NAME2 on A.B.C+1, A.B.C+2). The last line is the tally:
``N/N resumed with all invariants held``; the exit code is 1 when a trial failed.

``--smoke`` is one trial (the 3.2 -> 3.4 upgrade, 2 VMs, as CI's trials): one to three
minutes, the least a crash trial can be. The test suite runs it on the lab so the benchmark
cannot rot; one trial is no figure to quote.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.crash import run_trial


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    parser.add_argument("--vms", type=int, default=2, help="VMs of the staging cloud")
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        choices=range(1, 5),
        help="trials at a time, each on a lab of its own",
    )
    parser.add_argument("--lab", default="ubench", help="the lab's name (taken down after)")
    parser.add_argument("--subnet", default="10.76.0", help="the lab's /24, as A.B.C")
    parser.add_argument(
        "--smoke", action="store_true", help="one trial (minutes): does the benchmark still run?"
    )
    args = parser.parse_args()
    if args.smoke:
        args.trials, args.parallel = 1, 1
    if os.geteuid() != 0:
        print("crash_resume: needs root (the built-in lab)", file=sys.stderr)
        return 2
    if args.smoke:
        print("SMOKE run: one trial, to show the benchmark runs; not figures to quote")
    print(f"seed {args.seed} (replay with --seed {args.seed}), {args.trials} trials, "
          f"{args.vms} VMs", flush=True)  # fmt: skip
    kinds: Counter[str] = Counter()
    results: list[Any] = []
    numbers = iter(range(args.trials))
    lock = threading.Lock()
    started = time.monotonic()

    def say(line: str) -> None:
        with lock:
            print(line, flush=True)

    def worker(k: int, work: Path) -> None:
        a, b, c = args.subnet.split(".")
        lab = args.lab if args.parallel == 1 else f"{args.lab}{k + 1}"
        subnet = args.subnet if args.parallel == 1 else f"{a}.{b}.{int(c) + k + 1}"
        while True:
            with lock:
                number = next(numbers, None)
            if number is None:
                return
            trial = run_trial(number, lab, subnet, work, seed=args.seed, vms=args.vms, log=say)
            row = trial.row()
            with lock:
                results.append(trial)
                kinds[trial.kind] += 1
            say(
                f"trial {row['trial']} {row['runbook']:<18} killed in {row['killed in']} "
                f"+{row['after s']} s, {row['resumes']} resume(s), {trial.seconds:.0f} s: "
                f"{row['invariants']}" + (f" ({'; '.join(trial.notes)})" if trial.notes else "")
            )

    with tempfile.TemporaryDirectory(prefix="crash-resume-") as work:
        threads = [threading.Thread(target=worker, args=(k, Path(work))) for k in
                   range(args.parallel)]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    held = sum(trial.held for trial in results)
    minutes = (time.monotonic() - started) / 60
    print(f"runbooks: {', '.join(f'{k} x{n}' for k, n in sorted(kinds.items()))}; "
          f"{minutes:.0f} min in all")  # fmt: skip
    print(f"{held}/{args.trials} resumed with all invariants held")
    return 0 if held == args.trials else 1


if __name__ == "__main__":
    sys.exit(main())
