"""``python -m upgrader.lab.oned``: start the oned 3.x simulator.

    python -m upgrader.lab.oned --version 3.2.1 --listen 127.0.0.1:2633 \
        --db PATH/one.db --one-auth FILE [--speed N] [--virt-dir DIR] [--lab-control]

Prints ``listening on URL`` when ready and stops cleanly on SIGTERM. Bad input gets
one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import NoReturn

from upgrader.lab.oned.cloud import Timings
from upgrader.lab.oned.releases import VERSIONS
from upgrader.lab.oned.runtime import StartError, open_cloud, read_one_auth
from upgrader.lab.oned.server import OnedServer
from upgrader.lab.oned.store import LockHeldError, acquire_lock, release_lock

PROG = "upgrader.lab.oned"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{PROG}: error: {message} (see --help)\n")
        sys.exit(2)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port), or a one-line complaint."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"malformed --listen '{text}': expected HOST:PORT")
    return host.strip("[]"), int(port)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive number")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of the simulator."""
    p = _Parser(prog=PROG, description="An OpenNebula 3.x oned simulator (XML-RPC).")
    p.add_argument(
        "--version",
        required=True,
        dest="release",
        help=f"oned release to behave like: {', '.join(VERSIONS)}",
    )
    p.add_argument("--listen", required=True, type=parse_listen, help="HOST:PORT to serve on")
    p.add_argument("--db", required=True, type=Path, help="SQLite database file")
    p.add_argument(
        "--one-auth",
        required=True,
        type=Path,
        help="file holding USER:PASSWORD (creates user 0 on a new database)",
    )
    p.add_argument(
        "--speed", type=_positive, default=1.0, help="make every simulated duration N times shorter"
    )
    p.add_argument(
        "--virt-dir",
        type=Path,
        help="where the hypervisor view is written (default: <db dir>/virt)",
    )
    p.add_argument("--lab-control", action="store_true", help="enable the lab.* fault methods")
    p.add_argument(
        "--host-error-hook",
        choices=("none", "resubmit", "delete"),
        default="none",
        help="HOST_HOOK on ERROR: ft/host_error.rb -r (resubmit) or -d (delete)",
    )
    p.add_argument(
        "--monitoring-interval",
        type=_positive,
        default=60.0,
        help="HOST_MONITORING_INTERVAL in simulated seconds",
    )
    p.add_argument(
        "--polling-interval",
        type=_positive,
        default=60.0,
        help="VM_POLLING_INTERVAL in simulated seconds",
    )
    p.add_argument(
        "--sched-interval",
        type=_positive,
        default=30.0,
        help="the scheduler's SCHED_INTERVAL in simulated seconds",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until SIGTERM/SIGINT."""
    args = build_parser().parse_args(argv)
    version = VERSIONS.get(args.release)
    if version is None:
        sys.stderr.write(
            f"{PROG}: error: unknown --version '{args.release}'; known: {', '.join(VERSIONS)}\n"
        )
        return 2
    timings = Timings(
        monitoring_interval=args.monitoring_interval,
        polling_interval=args.polling_interval,
        sched_interval=args.sched_interval,
    )
    db = args.db.resolve()
    try:
        auth = read_one_auth(args.one_auth)
        acquire_lock(db)
    except (StartError, LockHeldError) as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 2 if isinstance(exc, StartError) else 1
    try:
        cloud = open_cloud(
            db,
            version,
            auth=auth,
            virt_dir=args.virt_dir or db.parent / "virt",
            speed=args.speed,
            timings=timings,
            host_error_hook=args.host_error_hook,
        )
        server = OnedServer(cloud, args.listen, lab_control=args.lab_control)
    except StartError as exc:
        release_lock(db)
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 1
    except OSError as exc:
        release_lock(db)
        sys.stderr.write(
            f"{PROG}: error: cannot listen on {args.listen[0]}:{args.listen[1]}: "
            f"{exc.strerror or exc}\n"
        )
        return 1
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    server.start_engine()
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    ).start()
    print(f"listening on {server.url}", flush=True)
    done.wait()
    server.stop()
    cloud.store.close()
    release_lock(db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
