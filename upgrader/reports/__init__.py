"""Reports: before the night what will happen (dry run, plan), after it what did (run)."""
