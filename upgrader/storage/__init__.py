"""Storage migration: the datastore copy engine, for the controller side and the benchmark.

The engine itself is ``datastore_copy.py``, one self-contained stdlib module, because Ansible
ships it to the front end as a module_utils file (``playbooks/library/upgrader_datastore.py``).
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
