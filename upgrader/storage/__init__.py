"""Storage migration: the datastore copy engine, for the controller side and the benchmark.

The engine itself is the package ``datastore_copy``: standard library only, relative imports,
nothing of ``upgrader``, one source for Python 2.7 and 3.6+, because Ansible ships it to the
front end as module_utils (``playbooks/library/upgrader_datastore.py``), where the host's own
interpreter runs it.
"""

from __future__ import annotations

from upgrader.storage.datastore_copy import (
    CopyError,
    file_checksum,
    inventory,
    load_manifest,
    sync,
    verify,
)

__all__ = ["CopyError", "file_checksum", "inventory", "load_manifest", "sync", "verify"]
