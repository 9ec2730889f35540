"""Maintenance windows: pure arithmetic, choosing a window, systemd units."""
