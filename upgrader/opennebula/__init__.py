"""The only XML-RPC user of upgrader: a client for OpenNebula 3.2/3.4/3.6 and its models."""

from __future__ import annotations

from upgrader.opennebula.client import OneClient
from upgrader.opennebula.enums import (
    DiskType,
    HistoryReason,
    HostState,
    ImageState,
    ImageType,
    LcmState,
    OneVersion,
    VmState,
)
from upgrader.opennebula.models import (
    Cluster,
    Datastore,
    Group,
    History,
    Host,
    HostShare,
    Image,
    Permissions,
    User,
    Vm,
)
from upgrader.opennebula.secret import Secret
from upgrader.opennebula.template import Template, Vector

__all__ = [
    "Cluster",
    "Datastore",
    "DiskType",
    "Group",
    "History",
    "HistoryReason",
    "Host",
    "HostShare",
    "HostState",
    "Image",
    "ImageState",
    "ImageType",
    "LcmState",
    "OneClient",
    "OneVersion",
    "Permissions",
    "Secret",
    "Template",
    "User",
    "Vector",
    "Vm",
    "VmState",
]
