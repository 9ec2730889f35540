"""The command line: the only importer of click, and the only place where errors become
messages and exit codes.

One module per command family: ``runs`` (plan, run, resume, status, abort), ``report``,
``gates``, ``windows`` (windows, schedule) and ``lab``; ``options`` defines what they share
once; ``main`` gathers them into the ``upgrader`` group and translates errors.
"""

from upgrader.cli.main import cli, main

__all__ = ["cli", "main"]
