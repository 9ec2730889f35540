"""upgrader: plans, runs, checks and reports OpenNebula 3.x upgrades and storage moves."""

from __future__ import annotations

__version__ = "0.1.0"
