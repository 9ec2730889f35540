"""Validate oned documents against the official OpenNebula 3.x schemas.

The schemas live in shared/reference/opennebula-xsd/<series>/ beside the repository.
oned sends documents without a namespace; the schemas declare one, so it is added to the
root element before validating (what the schemas' own README says to do).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from lxml import etree

NS = "http://opennebula.org/XMLSchema"
ROOT = Path(__file__).resolve().parents[2]


def xsd_dir() -> Path:
    """Where the schemas are; a clear failure when they are not there."""
    base = Path(os.environ.get("UPGRADER_XSD_DIR", ROOT.parent / "shared/reference/opennebula-xsd"))
    if not (base / "3.2" / "vm.xsd").is_file():
        raise RuntimeError(f"OpenNebula XSDs not found in {base}: set UPGRADER_XSD_DIR")
    return base


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
    """Schema complaints about ``doc`` (empty when it validates)."""
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
