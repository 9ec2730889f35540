"""Security checks (issue 9): secrets, file modes, hostile names, safe YAML, stale locks."""
