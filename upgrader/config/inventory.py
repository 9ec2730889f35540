"""The environment's Ansible inventory, checked before a command relies on it.

Without this check a missing inventory surfaced as a crash while gathering facts, and a
malformed one only as gates that could not see their hosts, after the tool had already
talked to oned and started Ansible. A YAML inventory (``.yml``/``.yaml``, the format the
lab writes and the README describes) is read like the site config: composed with the safe
loader, and every problem is one line naming the file, line, column and key path. Other
inventories (INI files, directories, scripts) are Ansible's to read; only their existence
is checked.

What upgrader needs of it: the groups ``frontends`` and ``hypervisors`` with at least one
host each, and every ``ansible_host`` given a non-empty address.
"""

from __future__ import annotations

from collections.abc import Iterator

import yaml

from upgrader.config.site import Environment
from upgrader.config.yaml_file import NULL, YamlFile, describe, join
from upgrader.errors import ConfigError, InventoryFileError

REQUIRED_GROUPS = ("frontends", "hypervisors")
_GROUP_KEYS = ("hosts", "vars", "children")
_YAML_SUFFIXES = (".yml", ".yaml")


def check_inventory(env: Environment) -> None:
    """Refuse an inventory that is missing, malformed or lacks the groups upgrader uses.

    Raises:
        ConfigError: the inventory does not exist or cannot be read.
        InventoryFileError: a YAML inventory is malformed or incomplete (file:line:column).
    """
    path = env.inventory
    where = f"inventory '{path}' of environment '{env.name}'"
    if path.is_dir():
        return
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{where} does not exist",
            hint=f"fix environments.{env.name}.inventory in the site config",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror or exc}") from None
    if path.suffix not in _YAML_SUFFIXES:
        return
    doc = YamlFile(path, data, InventoryFileError)
    if not isinstance(doc.root, yaml.MappingNode):
        doc.fail(doc.root, "", f"expected a mapping of groups, got {describe(doc.root)}")
    own: dict[str, set[str]] = {}
    children: dict[str, set[str]] = {}
    for name, keys, key_path in _groups(doc, doc.root, ""):
        own.setdefault(name, set()).update(_hosts(doc, keys, key_path))
        kids = keys.get("children", (None, None))[1]
        if isinstance(kids, yaml.MappingNode):
            children.setdefault(name, set()).update(str(k.value) for k, _ in kids.value)

    def members(group: str, seen: frozenset[str] = frozenset()) -> set[str]:
        """A group's hosts: its own and, as Ansible counts them, its children's."""
        found = set(own.get(group, ()))
        for child in children.get(group, set()) - seen:
            found |= members(child, seen | {group})
        return found

    for group in REQUIRED_GROUPS:
        if not members(group):
            doc.fail(
                doc.root,
                group,
                f"no group '{group}' with a host: upgrader needs the "
                f"groups {' and '.join(REQUIRED_GROUPS)}",
            )


Keys = dict[str, tuple[yaml.Node, yaml.Node]]


def _groups(doc: YamlFile, mapping: yaml.MappingNode, path: str) -> Iterator[tuple[str, Keys, str]]:
    """Every group of a mapping of groups (with its keys), then the groups of its children."""
    for key, value in mapping.value:
        name, group_path = str(key.value), join(path, str(key.value))
        if _is_null(value):  # an empty group
            yield name, {}, group_path
            continue
        if not isinstance(value, yaml.MappingNode):
            doc.fail(
                value,
                group_path,
                f"expected a group (hosts, vars, children), got {describe(value)}",
            )
        keys = doc.fields(value, group_path, _GROUP_KEYS)
        yield name, keys, group_path
        for part in ("vars", "children"):
            node = keys.get(part, (None, None))[1]
            if node is not None and not _is_null(node) and not isinstance(node, yaml.MappingNode):
                doc.fail(node, f"{group_path}.{part}", f"expected a mapping, got {describe(node)}")
        if "children" in keys and not _is_null(keys["children"][1]):
            yield from _groups(doc, keys["children"][1], f"{group_path}.children")


def _hosts(doc: YamlFile, keys: Keys, path: str) -> set[str]:
    """The group's own hosts; each host's vars a mapping, its ansible_host an address."""
    if "hosts" not in keys or _is_null(keys["hosts"][1]):
        return set()
    node = keys["hosts"][1]
    if not isinstance(node, yaml.MappingNode):
        doc.fail(
            node,
            f"{path}.hosts",
            f"expected a mapping of hosts to their vars, got {describe(node)}",
        )
    names = set()
    for host_key, host_vars in node.value:
        host = str(host_key.value)
        host_path = f"{path}.hosts.{host}"
        names.add(host)
        if _is_null(host_vars):
            continue
        if not isinstance(host_vars, yaml.MappingNode):
            doc.fail(
                host_vars,
                host_path,
                f"expected the host's vars (a mapping), got {describe(host_vars)}",
            )
        for var_key, value in host_vars.value:
            if var_key.value == "ansible_host":
                if _is_null(value):
                    doc.fail(value, f"{host_path}.ansible_host", "must not be empty")
                doc.text(value, f"{host_path}.ansible_host")
    return names


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == NULL
