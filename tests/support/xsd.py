"""Validate oned documents against the official OpenNebula 3.x schemas.

The schemas are not part of the clone. They are taken from ``$UPGRADER_XSD_DIR`` when it is
set, else from ``../shared/reference/opennebula-xsd`` beside the checkout; each holds one
folder per series (``3.2/``, ``3.4/``, ``3.6/``). Where neither holds them, a test that needs
them is skipped with a one-line reason that says how to provide them (``xsd_dir()``).
oned sends documents without a namespace; the schemas declare one, so it is added to the
root element before validating (what the schemas' own README says to do).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest
from lxml import etree

NS = "http://opennebula.org/XMLSchema"
ROOT = Path(__file__).resolve().parents[2]
BESIDE = Path("../shared/reference/opennebula-xsd")  # relative to the checkout
ENV = "UPGRADER_XSD_DIR"


def _holds_schemas(base: Path) -> bool:
    return all((base / series / "vm.xsd").is_file() for series in ("3.2", "3.4", "3.6"))


def xsd_dir() -> Path:
    """Where the schemas are; the calling test is skipped when they are nowhere."""
    places = [Path(os.environ[ENV])] if os.environ.get(ENV) else []
    places.append(ROOT / BESIDE)
    for base in places:
        if _holds_schemas(base):
            return base
    looked = f"${ENV} ({os.environ[ENV]}) nor {BESIDE}" if os.environ.get(ENV) else BESIDE
    pytest.skip(
        f"the OpenNebula 3.x XSDs are not in {looked}: set {ENV} to a directory with "
        f"3.2/, 3.4/ and 3.6/ holding the official schemas (vm.xsd, host.xsd...)"
    )


def _file_for(root: str, series: str) -> str:
    if root == "HISTORY_RECORDS":
        return "acct.xsd"
    if root.startswith("VMTEMPLATE"):
        stem = "template" if series == "3.2" else "vmtemplate"
        return f"{stem}_pool.xsd" if root.endswith("_POOL") else f"{stem}.xsd"
    return root.lower() + ".xsd"


@cache
def schema(root: str, series: str) -> etree.XMLSchema:
    """The compiled schema for a document whose root element is ``root``."""
    return etree.XMLSchema(etree.parse(str(xsd_dir() / series / _file_for(root, series))))


def validate(doc: str, series: str) -> list[str]:
    """Schema complaints about ``doc`` (empty when it validates); skips without schemas."""
    tree = etree.fromstring(doc.encode())
    root = tree.tag
    if root == "MONITORING_DATA":  # no schema of its own: each sample is a HOST or a VM
        errors: list[str] = []
        for child in tree:
            errors += validate(etree.tostring(child, encoding="unicode"), series)
        return errors
    namespaced = etree.fromstring(doc.replace(f"<{root}>", f'<{root} xmlns="{NS}">', 1).encode())
    s = schema(root, series)
    if s.validate(namespaced):
        return []
    return [f"line {e.line}: {e.message}" for e in s.error_log]
