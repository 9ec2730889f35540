"""Element lookups by name for the parsers: typed, with errors that say where they happened."""

from __future__ import annotations

import gc
import xml.etree.ElementTree as ET
from collections.abc import Callable
from enum import IntEnum
from typing import NoReturn, TypeVar

from upgrader.errors import OneResponseError
from upgrader.opennebula.models import Permissions
from upgrader.opennebula.template import Template, Vector

E = TypeVar("E", bound=IntEnum)
T = TypeVar("T")

# Vector attributes oned writes as <X/> when empty; any other childless element is simple.
_VECTOR_NAMES = frozenset({"DISK", "NIC", "CONTEXT", "GRAPHICS", "OS", "FEATURES", "RAW", "INPUT"})
_PERMISSION_BITS = tuple(f"{who}_{bit}" for who in ("OWNER", "GROUP", "OTHER") for bit in "UMA")


class Node:
    """An element plus where it sits, for typed child lookups by name."""

    __slots__ = ("el", "where")

    def __init__(self, el: ET.Element, where: str) -> None:
        self.el = el
        self.where = where

    def fail(self, problem: str) -> NoReturn:
        raise OneResponseError(f"{self.where}: {problem}")

    def opt_text(self, name: str) -> str | None:
        child = self.el.find(name)
        if child is None:
            return None
        return child.text or ""

    def text(self, name: str) -> str:
        value = self.opt_text(name)
        if value is None:
            self.fail(f"<{name}> is missing")
        return value

    def opt_integer(self, name: str) -> int | None:
        value = self.opt_text(name)
        if value is None:
            return None
        try:
            return int(value.strip())
        except ValueError:
            self.fail(f"<{name}> is not an integer: {value[:40]!r}")

    def integer(self, name: str) -> int:
        value = self.opt_integer(name)
        if value is None:
            self.fail(f"<{name}> is missing")
        return value

    def opt_flag(self, name: str) -> bool | None:
        value = self.opt_integer(name)
        if value is None:
            return None
        if value not in (0, 1):
            self.fail(f"<{name}> is {value}, expected 0 or 1")
        return bool(value)

    def flag(self, name: str) -> bool:
        value = self.opt_flag(name)
        if value is None:
            self.fail(f"<{name}> is missing")
        return value

    def opt_enum(self, name: str, kind: type[E]) -> E | None:
        value = self.opt_integer(name)
        if value is None:
            return None
        try:
            return kind(value)
        except ValueError:
            self.fail(f"<{name}> {value} is not a known {kind.__name__}")

    def enum(self, name: str, kind: type[E]) -> E:
        value = self.opt_enum(name, kind)
        if value is None:
            self.fail(f"<{name}> is missing")
        return value

    def opt_child(self, name: str) -> Node | None:
        child = self.el.find(name)
        return None if child is None else Node(child, f"{self.where} <{name}>")

    def child(self, name: str) -> Node:
        node = self.opt_child(name)
        if node is None:
            self.fail(f"<{name}> is missing")
        return node

    def ids(self, name: str) -> tuple[int, ...]:
        """The <ID> children of collection ``name`` (e.g. <HOSTS><ID>0</ID></HOSTS>)."""
        node = self.child(name)
        ids: list[int] = []
        for child in node.el.findall("ID"):
            try:
                ids.append(int((child.text or "").strip()))
            except ValueError:
                node.fail(f"<ID> is not an integer: {(child.text or '')[:40]!r}")
        return tuple(ids)

    def permissions(self) -> Permissions | None:
        """The <PERMISSIONS> bits, or None if the element is absent (the XSDs allow that)."""
        perms = self.opt_child("PERMISSIONS")
        if perms is None:
            return None
        return Permissions(*(perms.flag(bit) for bit in _PERMISSION_BITS))

    def opt_template(self, name: str = "TEMPLATE") -> Template | None:
        node = self.opt_child(name)
        return None if node is None else parse_template_element(node.el)

    def template(self, name: str = "TEMPLATE") -> Template:
        value = self.opt_template(name)
        if value is None:
            self.fail(f"<{name}> is missing")
        return value


def parse_template_element(el: ET.Element) -> Template:
    """Turn a <TEMPLATE> (or <USER_TEMPLATE>) element into a Template."""
    entries: list[tuple[str, str | Vector]] = []
    for child in el:
        subs = list(child)
        if subs or child.tag in _VECTOR_NAMES:
            entries.append((child.tag, Vector((sub.tag, sub.text or "") for sub in subs)))
        else:
            entries.append((child.tag, child.text or ""))
    return Template(entries)


def document(text: object, root: str, source: str) -> ET.Element:
    """Parse ``text`` and check that its root element is ``root``."""
    if not isinstance(text, str):
        raise OneResponseError(f"{source}: expected an XML document, got {type(text).__name__}")
    # oned never sends a DTD; refusing one keeps entity tricks out of the parser.
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise OneResponseError(f"{source}: the XML document carries a DTD, which oned never sends")
    try:
        el = ET.fromstring(text)  # noqa: S314 - no DTD (checked above), expat has entity limits
    except ET.ParseError as exc:
        raise OneResponseError(f"{source}: malformed or truncated XML ({exc})") from None
    if el.tag != root:
        raise OneResponseError(f"{source}: expected a <{root}> document, got <{el.tag}>")
    return el


def where_of(el: ET.Element, source: str) -> str:
    ident = el.findtext("ID")
    return f"{source}: <{el.tag}> {ident.strip()}" if ident else f"{source}: <{el.tag}>"


def parse_one(text: object, tag: str, build: Callable[[Node], T], source: str) -> T:
    el = document(text, tag, source)
    return build(Node(el, where_of(el, source)))


def parse_pool(
    text: object, pool: str, tag: str, build: Callable[[Node], T], source: str
) -> tuple[T, ...]:
    # A 20,000-VM pool makes hundreds of thousands of small objects that are all kept:
    # the cyclic collector would rescan them again and again for nothing.
    paused = gc.isenabled()
    gc.disable()
    try:
        root = document(text, pool, source)
        return tuple(build(Node(el, where_of(el, source))) for el in root.findall(tag))
    finally:
        if paused:
            gc.enable()
