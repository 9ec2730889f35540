"""What differs between oned 3.2.1, 3.4.1 and 3.6.0, as the simulator needs it.

Facts from shared/reference/opennebula-3x.md (read from OpenNebula's own source at the
release tags): registered methods and their signatures, vm.action names, DB versions.
"""

from __future__ import annotations

from dataclasses import dataclass

# Signature letters after the session string: i int, s string, b boolean (xmlrpc-c style).
_COMMON: dict[str, tuple[str, str]] = {
    # method: (class-like name used in error messages, parameter types after the session)
    "one.vm.allocate": ("VirtualMachineAllocate", "s"),
    "one.vm.deploy": ("VirtualMachineDeploy", "ii"),
    "one.vm.action": ("VirtualMachineAction", "si"),
    "one.vm.migrate": ("VirtualMachineMigrate", "iib"),
    "one.vm.savedisk": ("VirtualMachineSaveDisk", "iiss"),
    "one.vm.info": ("VirtualMachineInfo", "i"),
    "one.vm.chown": ("VirtualMachineChown", "iii"),
    "one.vm.chmod": ("VirtualMachineChmod", "iiiiiiiiii"),
    "one.vmpool.info": ("VirtualMachinePoolInfo", "iiii"),
    "one.host.delete": ("HostDelete", "i"),
    "one.host.enable": ("HostEnable", "ib"),
    "one.host.update": ("HostUpdateTemplate", "is"),
    "one.host.info": ("HostInfo", "i"),
    "one.hostpool.info": ("HostPoolInfo", ""),
    "one.image.delete": ("ImageDelete", "i"),
    "one.image.info": ("ImageInfo", "i"),
    "one.image.update": ("ImageUpdateTemplate", "is"),
    "one.image.enable": ("ImageEnable", "ib"),
    "one.image.persistent": ("ImagePersistent", "ib"),
    "one.image.chtype": ("ImageChangeType", "is"),
    "one.image.chown": ("ImageChown", "iii"),
    "one.image.chmod": ("ImageChmod", "iiiiiiiiii"),
    "one.imagepool.info": ("ImagePoolInfo", "iii"),
    "one.template.allocate": ("TemplateAllocate", "s"),
    "one.template.delete": ("TemplateDelete", "i"),
    "one.template.info": ("TemplateInfo", "i"),
    "one.template.update": ("TemplateUpdateTemplate", "is"),
    "one.template.chown": ("TemplateChown", "iii"),
    "one.template.chmod": ("TemplateChmod", "iiiiiiiiii"),
    "one.template.instantiate": ("VMTemplateInstantiate", "is"),
    "one.templatepool.info": ("TemplatePoolInfo", "iii"),
    "one.vn.addleases": ("VirtualNetworkAddLeases", "is"),
    "one.vn.rmleases": ("VirtualNetworkRemoveLeases", "is"),
    "one.vn.hold": ("VirtualNetworkHold", "is"),
    "one.vn.release": ("VirtualNetworkRelease", "is"),
    "one.vn.update": ("VirtualNetworkUpdateTemplate", "is"),
    "one.vn.delete": ("VirtualNetworkDelete", "i"),
    "one.vn.info": ("VirtualNetworkInfo", "i"),
    "one.vn.chown": ("VirtualNetworkChown", "iii"),
    "one.vn.chmod": ("VirtualNetworkChmod", "iiiiiiiiii"),
    "one.vnpool.info": ("VirtualNetworkPoolInfo", "iii"),
    "one.user.allocate": ("UserAllocate", "sss"),
    "one.user.delete": ("UserDelete", "i"),
    "one.user.info": ("UserInfo", "i"),
    "one.user.update": ("UserUpdateTemplate", "is"),
    "one.user.passwd": ("UserChangePassword", "is"),
    "one.user.chgrp": ("UserChangeGroup", "ii"),
    "one.user.chauth": ("UserChangeAuth", "iss"),
    "one.userpool.info": ("UserPoolInfo", ""),
    "one.group.allocate": ("GroupAllocate", "s"),
    "one.group.delete": ("GroupDelete", "i"),
    "one.group.info": ("GroupInfo", "i"),
    "one.grouppool.info": ("GroupPoolInfo", ""),
    "one.acl.addrule": ("AclAddRule", "sss"),
    "one.acl.delrule": ("AclDelRule", "i"),
    "one.acl.info": ("AclInfo", ""),
}

_ONLY_32 = {
    "one.host.allocate": ("HostAllocate", "sssss"),
    "one.image.allocate": ("ImageAllocate", "s"),
    "one.vn.allocate": ("VirtualNetworkAllocate", "s"),
}

_SINCE_34 = {
    "one.host.allocate": ("HostAllocate", "ssssi"),
    "one.image.allocate": ("ImageAllocate", "si"),
    "one.vn.allocate": ("VirtualNetworkAllocate", "si"),
    "one.datastore.allocate": ("DatastoreAllocate", "si"),
    "one.datastore.delete": ("DatastoreDelete", "i"),
    "one.datastore.info": ("DatastoreInfo", "i"),
    "one.datastore.update": ("DatastoreUpdateTemplate", "is"),
    "one.datastore.chown": ("DatastoreChown", "iii"),
    "one.datastore.chmod": ("DatastoreChmod", "iiiiiiiiii"),
    "one.datastorepool.info": ("DatastorePoolInfo", ""),
    "one.cluster.allocate": ("ClusterAllocate", "s"),
    "one.cluster.delete": ("ClusterDelete", "i"),
    "one.cluster.info": ("ClusterInfo", "i"),
    "one.cluster.addhost": ("ClusterAddHost", "ii"),
    "one.cluster.delhost": ("ClusterDelHost", "ii"),
    "one.cluster.adddatastore": ("ClusterAddDatastore", "ii"),
    "one.cluster.deldatastore": ("ClusterDelDatastore", "ii"),
    "one.cluster.addvnet": ("ClusterAddVNet", "ii"),
    "one.cluster.delvnet": ("ClusterDelVNet", "ii"),
    "one.clusterpool.info": ("ClusterPoolInfo", ""),
}

_SINCE_36 = {
    "one.vm.monitoring": ("VirtualMachineMonitoring", "i"),
    "one.vm.attach": ("VirtualMachineAttach", "is"),
    "one.vm.detach": ("VirtualMachineDetach", "ii"),
    "one.vmpool.monitoring": ("VirtualMachinePoolMonitoring", "i"),
    "one.vmpool.accounting": ("VirtualMachinePoolAccounting", "iii"),
    "one.host.monitoring": ("HostMonitoring", "i"),
    "one.hostpool.monitoring": ("HostPoolMonitoring", ""),
    "one.image.clone": ("ImageClone", "is"),
    "one.template.clone": ("VMTemplateClone", "is"),
    "one.cluster.update": ("ClusterUpdateTemplate", "is"),
    "one.user.quota": ("UserQuotaInfo", "is"),
    "one.group.quota": ("GroupQuotaInfo", "is"),
    "one.document.allocate": ("DocumentAllocate", "si"),
    "one.document.delete": ("DocumentDelete", "i"),
    "one.document.info": ("DocumentInfo", "i"),
    "one.document.update": ("DocumentUpdateTemplate", "is"),
    "one.document.chown": ("DocumentChown", "iii"),
    "one.document.chmod": ("DocumentChmod", "iiiiiiiiii"),
    "one.document.clone": ("DocumentClone", "is"),
    "one.documentpool.info": ("DocumentPoolInfo", "iiii"),
}

_ACTIONS_32 = (
    "shutdown",
    "hold",
    "release",
    "stop",
    "cancel",
    "suspend",
    "resume",
    "restart",
    "finalize",
    "resubmit",
    "reboot",
)


@dataclass(frozen=True)
class OnedVersion:
    """One oned release the simulator can be."""

    release: str  # "3.2.1"
    series: str  # "3.2"
    db_version: str  # what db_versioning holds for this release
    methods: dict[str, tuple[str, str]]
    actions: tuple[str, ...]

    @property
    def has_clusters(self) -> bool:
        """Datastores and clusters exist from 3.4."""
        return self.series >= "3.4"

    @property
    def is_36(self) -> bool:
        """3.6 adds quotas, RESCHED, history OID/DS_ID, monitoring tables."""
        return self.series >= "3.6"

    @property
    def banner(self) -> str:
        """What `oned -v` names: ``OpenNebula 3.2.1``."""
        return f"OpenNebula {self.release}"


def _build(release: str, series: str, *tables: dict[str, tuple[str, str]]) -> OnedVersion:
    methods: dict[str, tuple[str, str]] = {}
    for table in tables:
        methods.update(table)
    actions = _ACTIONS_32 + (("resched", "unresched", "reset") if series >= "3.6" else ())
    return OnedVersion(release, series, release, methods, actions)


VERSIONS: dict[str, OnedVersion] = {
    "3.2.1": _build("3.2.1", "3.2", _COMMON, _ONLY_32),
    "3.4.1": _build("3.4.1", "3.4", _COMMON, _SINCE_34),
    "3.6.0": _build("3.6.0", "3.6", _COMMON, _SINCE_34, _SINCE_36),
}
