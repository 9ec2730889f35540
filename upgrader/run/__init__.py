"""Runs: context, prepare, start/resume/abort, executor, undo, dry run, lock, status."""
