"""``python -m upgrader`` runs the command line."""

from upgrader.cli import main

main()
