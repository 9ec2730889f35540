"""Runbooks: the YAML description of one hop as ordered steps, loaded and validated.

A runbook (``runbooks/opennebula-3.2-to-3.4.yml``)::

    name: opennebula-3.2-to-3.4
    kind: upgrade                  # or: storage (then from_storage / to_storage)
    from_version: "3.2"
    to_version: "3.4"
    steps:
      - id: backup-db              # [a-z0-9-]+, unique in the runbook
        title: Back up the oned database
        playbook: backup-db.yml    # relative to the playbooks directory; or `action: NAME`
        target: frontends          # inventory group (default: all)
        serial: 1                  # host batch size; implies per_host: true
        gates_before: [oned-responding]
        gates_after:
          - name: hosts-monitored  # a gate with parameters
            timeout: 5m
        estimate: 2m               # seconds, or "90s", "5m", "1h30m"
        estimate_per_host: 30s     # optional: added per host of the step's batch/target
        estimate_per_vm: 1m        # optional: added per VM on those hosts (a drain)
        idempotent: true
        undo: restore-db           # an `undo_only: true` step that reverses this one
        does_undo: release-puppet  # this step does that undo step's work: once it finished,
                                   # the undo is no longer pending (not run again at the end)
        point_of_no_return: false  # at most one step in a runbook
        sequence_start: false      # starts a sequence that must finish in the same window
        sequence_end: false        # ...up to and including the step marked sequence_end
        vars: {keep_backups: 3}
      - id: restore-db
        undo_only: true            # runs when a step that names it is undone: always at the
        rollback: true             # end of the run, or with rollback only on a failure before
        ...                        # the point of no return

Every validation error reads ``<file>:<line>:<column>: <key path>: <problem>``, key paths
count list items from 0 (``steps[2].serial``), and an unknown key comes with the nearest
valid one. The YAML is composed into nodes with PyYAML's safe loader (so each value keeps
its position) and only ever constructed with the safe constructor: that machinery,
``YamlFile`` and its helpers, is in ``config/yaml_file.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from upgrader.config.yaml_file import BOOL, IDENTIFIER, YamlFile, describe, suggest
from upgrader.errors import RunbookError
from upgrader.plan.runbook_model import KNOWN_ACTIONS, GateSpec, Runbook, Step
from upgrader.plan.versions import SERIES

__all__ = ["load_runbook"]


_TOP_KEYS = ("name", "kind", "from_version", "to_version", "from_storage", "to_storage", "steps")
_KIND_KEYS = {"upgrade": ("from_version", "to_version"), "storage": ("from_storage", "to_storage")}
_STEP_KEYS = (
    "id",
    "title",
    "playbook",
    "action",
    "target",
    "serial",
    "per_host",
    "gates_before",
    "gates_after",
    "estimate",
    "idempotent",
    "undo",
    "undo_only",
    "point_of_no_return",
    "sequence_start",
    "sequence_end",
    "vars",
    "rollback",
    "does_undo",
    "estimate_per_host",
    "estimate_per_vm",
)


# ------------------------------------------------------------------- loading
def load_runbook(
    path: Path,
    *,
    playbooks_dir: Path,
    actions: Collection[str] = KNOWN_ACTIONS,
    gates: Collection[str] | None = None,
) -> Runbook:
    """Read and validate a runbook; ``gates`` (if given) are the gate names it may use.

    Raises:
        RunbookError: the file is unreadable, malformed YAML, or not a valid runbook.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RunbookError(
            f"{path}: cannot read runbook: {exc.strerror or exc}", file=str(path)
        ) from None
    doc = YamlFile(path, data, RunbookError)
    top = doc.fields(doc.root, "", _TOP_KEYS, required=("name", "kind", "steps"))
    name = doc.text(top["name"][1], "name")
    kind = doc.text(top["kind"][1], "kind")
    if kind not in _KIND_KEYS:
        doc.fail(top["kind"][1], "kind", f"unknown kind '{kind}'{suggest(kind, _KIND_KEYS)}")
    ends = _ends(doc, top, kind)
    context = _StepContext(doc, playbooks_dir, actions, gates)
    step_nodes = doc.items(top["steps"][1], "steps")
    if not step_nodes:
        doc.fail(top["steps"][1], "steps", "a runbook needs at least one step")
    steps = tuple(context.step(node, f"steps[{i}]") for i, node in enumerate(step_nodes))
    context.check_together(steps)
    return Runbook(
        name=name,
        kind=kind,
        steps=steps,
        path=path,
        digest=hashlib.sha256(data).hexdigest(),
        **ends,
    )


def _ends(
    doc: YamlFile, top: Mapping[str, tuple[yaml.Node, yaml.Node]], kind: str
) -> dict[str, str | None]:
    """from/to of the kind's pair; the other kind's keys are refused."""
    ends: dict[str, str | None] = dict.fromkeys(_TOP_KEYS[2:6])
    for other, keys in _KIND_KEYS.items():
        for key in keys:
            if other != kind and key in top:
                doc.fail(top[key][0], key, f"not allowed in a runbook of kind '{kind}'")
            if other == kind and key not in top:
                doc.fail(doc.root, key, f"missing required key (kind '{kind}')")
    first, second = _KIND_KEYS[kind]
    if kind == "upgrade":
        for key in (first, second):
            node = top[key][1]
            # `from_version: 3.2` is a float to YAML: its text is what was meant.
            if not isinstance(node, yaml.ScalarNode) or node.value not in SERIES:
                doc.fail(
                    node,
                    key,
                    f"'{getattr(node, 'value', '')}' is not a version "
                    f"upgrader knows ({', '.join(SERIES)})",
                )
            ends[key] = node.value
        old, new = ends[first], ends[second]
        if SERIES.index(str(new)) != SERIES.index(str(old)) + 1:
            doc.fail(
                top[second][1],
                second,
                f"a runbook is one hop: {old} goes to {_next_series(str(old))}, not {new}",
            )
    else:
        for key in (first, second):
            ends[key] = doc.text(
                top[key][1], key, pattern=IDENTIFIER, what="a storage name like ocfs2 or nfs"
            )
        if ends[first] == ends[second]:
            doc.fail(top[second][1], second, f"the same as {first} ('{ends[first]}')")
    return ends


def _next_series(version: str) -> str:
    index = SERIES.index(version) + 1
    return SERIES[index] if index < len(SERIES) else "nowhere (it is the newest)"


class _StepContext:
    """Validates the steps of one runbook and remembers what the cross-checks need."""

    def __init__(
        self,
        doc: YamlFile,
        playbooks_dir: Path,
        actions: Collection[str],
        gates: Collection[str] | None,
    ) -> None:
        self.doc, self.playbooks_dir, self.actions, self.gates = doc, playbooks_dir, actions, gates
        self.id_nodes: dict[str, yaml.Node] = {}
        self.undo_nodes: dict[str, yaml.Node] = {}
        self.does_undo_nodes: dict[str, yaml.Node] = {}
        self.ponr_node: dict[str, yaml.Node] = {}

    def step(self, node: yaml.Node, path: str) -> Step:
        """One step, checked on its own (ids, types, playbook file, action name)."""
        doc = self.doc
        keys = doc.fields(node, path, _STEP_KEYS, required=("id", "estimate", "idempotent"))
        sid = doc.text(
            keys["id"][1],
            f"{path}.id",
            pattern=IDENTIFIER,
            what="a step id (lower-case letters, digits and dashes)",
        )
        if sid in self.id_nodes:
            first = self.id_nodes[sid].start_mark.line + 1
            doc.fail(
                keys["id"][1], f"{path}.id", f"duplicate step id '{sid}' (first on line {first})"
            )
        self.id_nodes[sid] = keys["id"][1]

        def get(key: str, read: Any, default: Any, **kw: Any) -> Any:
            return read(keys[key][1], f"{path}.{key}", **kw) if key in keys else default

        def flag(key: str, default: bool = False) -> bool:
            return bool(get(key, doc.scalar, default, tag=BOOL))

        playbook, action = self._work(node, keys, path, sid)
        serial = get("serial", doc.integer, None, minimum=1)
        per_host = flag("per_host", serial is not None)
        if serial is not None and not per_host:
            doc.fail(keys["serial"][0], f"{path}.serial", "serial needs per_host: true")
        step = Step(
            id=sid,
            title=get("title", doc.text, sid),
            kind="playbook" if playbook else "action",
            playbook=playbook,
            action=action,
            target=get("target", doc.text, "all"),
            serial=serial,
            per_host=per_host,
            gates_before=get("gates_before", self._gates, ()),
            gates_after=get("gates_after", self._gates, ()),
            estimate=doc.seconds(keys["estimate"][1], f"{path}.estimate"),
            idempotent=doc.scalar(keys["idempotent"][1], f"{path}.idempotent", BOOL),
            undo=get("undo", doc.text, None),
            point_of_no_return=flag("point_of_no_return"),
            vars=get("vars", self._vars, {}),
            undo_only=flag("undo_only"),
            sequence_start=flag("sequence_start"),
            sequence_end=flag("sequence_end"),
            rollback=flag("rollback"),
            does_undo=get("does_undo", doc.text, None),
            estimate_per_host=get("estimate_per_host", doc.seconds, 0.0),
            estimate_per_vm=get("estimate_per_vm", doc.seconds, 0.0),
        )
        if step.rollback and not step.undo_only:
            doc.fail(keys["rollback"][0], f"{path}.rollback", "rollback needs undo_only: true")
        if step.undo is not None:
            self.undo_nodes[sid] = keys["undo"][1]
        if step.does_undo is not None:
            self.does_undo_nodes[sid] = keys["does_undo"][1]
            if step.per_host:  # the first batch would mark the undo done for every host
                doc.fail(
                    keys["does_undo"][0],
                    f"{path}.does_undo",
                    "does_undo needs a step that runs on all its hosts at once (no per_host"
                    " or serial)",
                )
        if step.point_of_no_return:
            self.ponr_node[sid] = keys["point_of_no_return"][0]
        for key, value in (
            ("undo", step.undo),
            ("point_of_no_return", step.point_of_no_return),
            ("does_undo", step.does_undo),
        ):
            if step.undo_only and value:
                doc.fail(keys[key][0], f"{path}.{key}", "not allowed on an undo_only step")
        return step

    def _work(
        self, node: yaml.Node, keys: Mapping[str, tuple[yaml.Node, yaml.Node]], path: str, sid: str
    ) -> tuple[str | None, str | None]:
        """The step's playbook (which must exist) or action (which must be known)."""
        doc = self.doc
        if "playbook" in keys and "action" in keys:
            later = max(keys["playbook"][0], keys["action"][0], key=lambda n: n.start_mark.index)
            doc.fail(
                later, f"{path}.{later.value}", "a step runs a playbook or an action, not both"
            )
        if "playbook" in keys:
            value = keys["playbook"][1]
            playbook = doc.text(value, f"{path}.playbook")
            relative = PurePosixPath(playbook)
            if relative.is_absolute() or ".." in relative.parts:
                doc.fail(
                    value,
                    f"{path}.playbook",
                    f"playbook '{playbook}' must be a path "
                    f"inside the playbooks directory ({self.playbooks_dir})",
                )
            if not (self.playbooks_dir / relative).is_file():
                doc.fail(
                    value,
                    f"{path}.playbook",
                    f"step '{sid}': playbook '{self.playbooks_dir / relative}' not found",
                )
            return playbook, None
        if "action" in keys:
            value = keys["action"][1]
            action = doc.text(value, f"{path}.action")
            if action not in self.actions:
                doc.fail(
                    value,
                    f"{path}.action",
                    f"step '{sid}': unknown action '{action}'{suggest(action, self.actions)}",
                )
            return None, action
        doc.fail(node, path, f"step '{sid}' needs a 'playbook' or an 'action'")

    def _gates(self, node: yaml.Node, path: str) -> tuple[GateSpec, ...]:
        """``[name, {name: ..., <param>: ...}, ...]``."""
        specs = []
        for i, item in enumerate(self.doc.items(node, path)):
            where = f"{path}[{i}]"
            if isinstance(item, yaml.MappingNode):
                params = self._vars(item, where)
                name_node = next((v for k, v in item.value if k.value == "name"), None)
                if name_node is None:
                    self.doc.fail(item, f"{where}.name", "missing required key")
                params.pop("name")
                where = f"{where}.name"
            else:
                name_node, params = item, {}
            name = self.doc.text(
                name_node, where, pattern=IDENTIFIER, what="a gate name like hosts-monitored"
            )
            if self.gates is not None and name not in self.gates:
                self.doc.fail(name_node, where, f"unknown gate '{name}'{suggest(name, self.gates)}")
            specs.append(GateSpec(name, params))
        return tuple(specs)

    def _vars(self, node: yaml.Node, path: str) -> dict[str, Any]:
        """A mapping of string keys to any safe values."""
        if not isinstance(node, yaml.MappingNode):
            self.doc.fail(node, path, f"expected a mapping, got {describe(node)}")
        keys = self.doc.fields(node, path, [str(k.value) for k, _ in node.value])
        return {key: self.doc.value(value, f"{path}.{key}") for key, (_, value) in keys.items()}

    def check_together(self, steps: Sequence[Step]) -> None:
        """Undo references, unused undo steps, the single point of no return.

        An undo_only step may not have an undo itself, so "every step is undo_only" is caught
        as an unused undo step.
        """
        doc, by_id = self.doc, {s.id: s for s in steps}
        for sid, node in self.undo_nodes.items():
            path = self._path(sid, "undo")
            undo = by_id.get(node.value)
            if undo is None:
                candidates = [s.id for s in steps if s.undo_only]
                hint = (
                    suggest(node.value, candidates)
                    if candidates
                    else " (no step is marked undo_only: true)"
                )
                doc.fail(node, path, f"no step '{node.value}' to undo step '{sid}'{hint}")
            if not undo.undo_only:
                doc.fail(
                    node,
                    path,
                    f"step '{undo.id}' undoes step '{sid}' but is not marked undo_only: true",
                )
        for sid, node in self.does_undo_nodes.items():
            undo = by_id.get(node.value)
            if undo is None or not undo.undo_only:
                candidates = [s.id for s in steps if s.undo_only]
                doc.fail(
                    node,
                    self._path(sid, "does_undo"),
                    f"step '{sid}' does the work of "
                    f"'{node.value}', which is not an undo_only step of this runbook"
                    f"{suggest(node.value, candidates)}",
                )
        used = {s.undo for s in steps}
        for step in steps:
            if step.undo_only and step.id not in used:
                doc.fail(
                    self.id_nodes[step.id],
                    self._path(step.id, "id"),
                    f"undo_only step '{step.id}' is not the undo of any step",
                )
        if len(self.ponr_node) > 1:
            (first, _), (second, node) = list(self.ponr_node.items())[:2]
            doc.fail(
                node,
                self._path(second, "point_of_no_return"),
                "a second point of no "
                f"return (the first is step '{first}', line "
                f"{self.ponr_node[first].start_mark.line + 1})",
            )

    def _path(self, sid: str, key: str) -> str:
        return f"steps[{list(self.id_nodes).index(sid)}].{key}"
