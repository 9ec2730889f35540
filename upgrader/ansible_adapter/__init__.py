"""Playbook runs through ansible-runner: outcome types, the runner, events."""
