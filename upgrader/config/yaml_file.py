"""YAML with positions: a file composed to nodes, whose checks name file, line, column and key.

``YamlFile`` reads one YAML file with PyYAML's safe loader into nodes (so each value keeps its
position) and only ever constructs values with the safe constructor. Its checks (``fields``,
``text``, ``integer``, ``seconds``, ...) fail with ``<file>:<line>:<column>: <key path>:
<problem>``, key paths counting list items from 0 (``steps[2].serial``), and an unknown key
comes with the nearest valid one. Runbooks (``plan/runbook.py``) and the config file
(``config/site.py``) are both validated with it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from upgrader.errors import InvalidFileError
from upgrader.text import DURATION_EXAMPLES, parse_duration

STR, INT, FLOAT, BOOL, NULL = (
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null")
)
"""The YAML core-schema tags a scalar may carry; ``YamlFile.scalar`` takes one."""
_TYPE_NAMES = {
    STR: "a string",
    INT: "an integer",
    FLOAT: "a number",
    BOOL: "a boolean",
    NULL: "nothing (null)",
    "tag:yaml.org,2002:timestamp": "a timestamp",
}

# The names of steps, storages and environments: lower-case words joined by dashes.
IDENTIFIER = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class YamlFile:
    """One YAML file composed to nodes; its checks fail with ``file:line:column: path:``."""

    def __init__(self, path: Path, data: bytes, error: type[InvalidFileError]) -> None:
        self.name = str(path)
        self.error = error
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{self.name}: not UTF-8 text (byte {exc.start})", file=self.name) from None
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = exc.problem or exc.context or "cannot parse"
            raise error(
                f"{self.name}:{line}:{column}: malformed YAML: {problem}",
                file=self.name,
                line=line,
                column=column,
            ) from None
        except yaml.YAMLError as exc:  # the reader's errors (control characters) carry no mark
            raise error(
                f"{self.name}:1:1: malformed YAML: {exc}", file=self.name, line=1, column=1
            ) from None
        start = yaml.Mark(self.name, 0, 0, 0, None, None)  # an empty file has no nodes
        self.root: yaml.Node = root if root is not None else yaml.ScalarNode(NULL, "", start)

    def fail(self, node: yaml.Node, path: str, problem: str) -> NoReturn:
        """Raise this file's error at ``node``, naming the key ``path``."""
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        where = f"{path}: " if path else ""
        raise self.error(
            f"{self.name}:{line}:{column}: {where}{problem}",
            file=self.name,
            line=line,
            column=column,
            key_path=path or None,
        )

    def fields(
        self, node: yaml.Node, path: str, allowed: Sequence[str], required: Collection[str] = ()
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """The keys of a mapping with their key and value nodes; unknown, duplicate or missing
        keys fail (an unknown one with the nearest allowed key)."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, path, f"expected a mapping, got {describe(node)}")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not (isinstance(key_node, yaml.ScalarNode) and key_node.tag == STR):
                self.fail(key_node, path, f"keys must be strings, got {describe(key_node)}")
            key = key_node.value
            if key not in allowed:
                self.fail(key_node, join(path, key), f"unknown key '{key}'{suggest(key, allowed)}")
            if key in out:
                first = out[key][0].start_mark.line + 1
                self.fail(key_node, join(path, key), f"duplicate key (first on line {first})")
            out[key] = (key_node, value_node)
        for key in allowed:
            if key in required and key not in out:
                self.fail(node, join(path, key), "missing required key")
        return out

    def items(self, node: yaml.Node, path: str) -> list[yaml.Node]:
        """The items of a list."""
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, path, f"expected a list, got {describe(node)}")
        return list(node.value)

    def scalar(self, node: yaml.Node, path: str, tag: str) -> Any:
        """A scalar of one YAML type (``STR``, ``INT``, ``BOOL``), constructed safely."""
        if not (isinstance(node, yaml.ScalarNode) and node.tag == tag):
            self.fail(node, path, f"expected {_TYPE_NAMES[tag]}, got {describe(node)}")
        return self.value(node, path)

    def text(
        self, node: yaml.Node, path: str, *, pattern: re.Pattern[str] | None = None, what: str = ""
    ) -> str:
        """A non-empty string, optionally matching ``pattern`` (then ``what`` describes it)."""
        value: str = self.scalar(node, path, STR)
        if not value.strip():
            self.fail(node, path, "must not be empty")
        if pattern is not None and not pattern.fullmatch(value):
            self.fail(node, path, f"'{value}' is not {what}")
        return value

    def integer(self, node: yaml.Node, path: str, *, minimum: int) -> int:
        """An integer no smaller than ``minimum``."""
        value: int = self.scalar(node, path, INT)
        if value < minimum:
            self.fail(node, path, f"must be at least {minimum}, got {value}")
        return value

    def seconds(self, node: yaml.Node, path: str, *, positive: bool = False) -> float:
        """A duration: a number of seconds, or text like ``90s``, ``5m``, ``1h30m``; with
        ``positive``, longer than 0."""
        if isinstance(node, yaml.ScalarNode) and node.tag in (INT, FLOAT):
            value = float(self.value(node, path))
        elif isinstance(node, yaml.ScalarNode) and node.tag == STR:
            try:
                value = parse_duration(node.value)
            except ValueError:
                self.fail(node, path, f"'{node.value}' is not a duration like {DURATION_EXAMPLES}")
        else:
            self.fail(
                node,
                path,
                f"expected a duration (seconds, or 90s, 5m, 1h30m), got {describe(node)}",
            )
        if not value >= 0 or value == float("inf"):
            self.fail(node, path, f"must be a finite duration of 0 or more, got {node.value}")
        if positive and value == 0:
            self.fail(node, path, "must be longer than 0")
        return value

    def value(self, node: yaml.Node, path: str) -> Any:
        """Any value, constructed with PyYAML's safe constructor."""
        try:
            return SafeConstructor().construct_object(node, deep=True)
        except ConstructorError as exc:
            self.fail(node, path, f"unsupported YAML value: {exc.problem}")


def describe(node: yaml.Node) -> str:
    """What a node is, for messages: ``a list``, ``an integer``, ..."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return _TYPE_NAMES.get(node.tag, f"a value tagged {node.tag}")


def join(path: str, key: str) -> str:
    """``steps[1]`` + ``serial`` -> ``steps[1].serial``."""
    return f"{path}.{key}" if path else key


def suggest(word: str, choices: Collection[str]) -> str:
    """`` (did you mean 'serial'?)`` for the nearest choice, else the choices."""
    near = difflib.get_close_matches(word, list(choices), n=1)
    if near:
        return f" (did you mean '{near[0]}'?)"
    return f" (expected one of: {', '.join(sorted(choices))})"
