"""Crash and resume, many times: SIGKILL ``upgrader run`` at a random moment of a full lab
run, resume it, check every invariant; print each trial and the tally.

    .venv/bin/python benchmarks/crash_resume.py [--trials 50] [--seed S] [--vms 2]
                                                [--lab NAME --subnet A.B.C]

Needs root (the built-in lab). Each trial brings up a fresh lab, runs one of the three
runbooks a site runs (3.2 -> 3.4, storage OCFS2 -> NFS, 3.4 -> 3.6, in turn), kills the run
at a random moment, resumes it until it finishes, checks, and takes the lab down; what a
trial does and checks is in tests/reliability/crash.py, the same code CI runs 5 times.
A trial takes one to three minutes, so 50 take one to two hours. The last line is the tally:
``N/N resumed with all invariants held``; the exit code is 1 when a trial failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.crash import run_trial


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    parser.add_argument("--vms", type=int, default=2, help="VMs of the staging cloud")
    parser.add_argument("--lab", default="ubench", help="the lab's name (taken down after)")
    parser.add_argument("--subnet", default="10.76.0", help="the lab's /24, as A.B.C")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("crash_resume: needs root (the built-in lab)", file=sys.stderr)
        return 2
    print(f"seed {args.seed} (replay with --seed {args.seed}), {args.trials} trials, "
          f"{args.vms} VMs", flush=True)  # fmt: skip
    held, kinds, started = 0, Counter(), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="crash-resume-") as work:
        for number in range(args.trials):
            trial = run_trial(number, args.lab, args.subnet, Path(work), seed=args.seed,
                              vms=args.vms, log=lambda line: print(line, flush=True))  # fmt: skip
            held += trial.held
            kinds[trial.kind] += 1
            row = trial.row()
            print(f"trial {row['trial']} {row['runbook']:<18} killed in {row['killed in']} "
                  f"+{row['after s']} s, {row['resumes']} resume(s), {trial.seconds:.0f} s: "
                  f"{row['invariants']}", flush=True)  # fmt: skip
    minutes = (time.monotonic() - started) / 60
    print(f"runbooks: {', '.join(f'{k} x{n}' for k, n in sorted(kinds.items()))}; "
          f"{minutes:.0f} min in all")  # fmt: skip
    print(f"{held}/{args.trials} resumed with all invariants held")
    return 0 if held == args.trials else 1


if __name__ == "__main__":
    sys.exit(main())
