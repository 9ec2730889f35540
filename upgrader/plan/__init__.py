"""Runbooks, versions and the hop graph, targets, facts, rehearsal, the pure planner, estimates."""
