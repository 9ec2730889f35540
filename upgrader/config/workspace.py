"""The workspace a command works in: the site config and one of its environments."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from upgrader.config.site import Environment, SiteConfig, find_config, load_config


@dataclass(frozen=True)
class Workspace:
    """The site config and the environment a command works on."""

    site: SiteConfig
    env: Environment

    @property
    def lock_dir(self) -> Path:
        """Where the environments' run locks live."""
        return self.site.runs_dir / "locks"


def workspace(config: Path | None, environment: str) -> Workspace:
    """Find and load the site config, and pick the environment."""
    path = find_config(config, environ=os.environ, cwd=Path.cwd())
    site = load_config(path)
    return Workspace(site, site.environment(environment))
