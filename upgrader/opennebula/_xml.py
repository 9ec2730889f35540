"""Element lookups by name for the parsers: typed, with errors that say where they happened.

A 20,000-VM pool is about a million field lookups, so the lookups are lean: every node
indexes its children by name once (the first of each name, as ``Element.find`` gives
it), and where a node sits is only worked out when something about it is reported.
"""

from __future__ import annotations

import gc
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from enum import IntEnum
from functools import partial
from typing import NoReturn, TypeVar

from upgrader.errors import OneResponseError
from upgrader.opennebula.models import Permissions
from upgrader.opennebula.template import Template, Vector

E = TypeVar("E", bound=IntEnum)
T = TypeVar("T")

# Vector attributes oned writes as <X/> when empty; any other childless element is simple.
_VECTOR_NAMES = frozenset({"DISK", "NIC", "CONTEXT", "GRAPHICS", "OS", "FEATURES", "RAW", "INPUT"})
# What to do about a document upgrader cannot read (every error here says where it went wrong).
UNREADABLE_HINT = (
    "is the endpoint an OpenNebula 3.x oned? If so, oned.log on the front end says why it sent this"
)
PERMISSION_BITS = tuple(f"{who}_{bit}" for who in ("OWNER", "GROUP", "OTHER") for bit in "UMA")


class Node:
    """An element plus where it sits, for typed child lookups by name.

    ``where`` may be given as a function: it then runs only if the node is reported on.
    """

    __slots__ = ("_kids", "_where", "el")

    def __init__(self, el: ET.Element, where: str | Callable[[], str]) -> None:
        self.el = el
        self._where = where
        # reversed: the first child of a name wins, as with el.find(name)
        self._kids = {child.tag: child for child in reversed(el)}

    @property
    def where(self) -> str:
        """Where the element sits, e.g. ``one.vmpool.info: <VM> 7 <TEMPLATE>``."""
        where = self._where
        if not isinstance(where, str):
            where = self._where = where()
        return where

    def fail(self, problem: str) -> NoReturn:
        raise OneResponseError(f"{self.where}: {problem}", hint=UNREADABLE_HINT)

    def _missing(self, name: str) -> NoReturn:
        self.fail(f"<{name}> is missing")

    def _not_integer(self, name: str, child: ET.Element) -> NoReturn:
        self.fail(f"<{name}> is not an integer: {(child.text or '')[:40]!r}")

    def opt_text(self, name: str) -> str | None:
        child = self._kids.get(name)
        return None if child is None else child.text or ""

    def text(self, name: str) -> str:
        child = self._kids.get(name)
        if child is None:
            self._missing(name)
        return child.text or ""

    def opt_integer(self, name: str) -> int | None:
        child = self._kids.get(name)
        if child is None:
            return None
        try:
            return int(child.text or "")  # int() ignores surrounding whitespace itself
        except ValueError:
            self._not_integer(name, child)

    def integer(self, name: str) -> int:
        child = self._kids.get(name)
        if child is None:
            self._missing(name)
        try:
            return int(child.text or "")
        except ValueError:
            self._not_integer(name, child)

    def opt_flag(self, name: str) -> bool | None:
        if name not in self._kids:
            return None
        return self.flag(name)

    def flag(self, name: str) -> bool:
        value = self.integer(name)
        if value == 1:
            return True
        if value != 0:
            self.fail(f"<{name}> is {value}, expected 0 or 1")
        return False

    def opt_enum(self, name: str, kind: type[E]) -> E | None:
        if name not in self._kids:
            return None
        return self.enum(name, kind)

    def enum(self, name: str, kind: type[E]) -> E:
        value = self.integer(name)
        try:
            return kind(value)
        except ValueError:
            self.fail(f"<{name}> {value} is not a known {kind.__name__}")

    def opt_child(self, name: str) -> Node | None:
        child = self._kids.get(name)
        return None if child is None else Node(child, partial(_inside, self, f"<{name}>"))

    def child(self, name: str) -> Node:
        node = self.opt_child(name)
        if node is None:
            self._missing(name)
        return node

    def each(self, name: str, key: str) -> Iterator[Node]:
        """Every <name> child, each reported as ``<name> <its key's text>``."""
        for el in self.el.iterfind(name):
            yield Node(el, partial(_keyed, self, el, name, key))

    def ids(self, name: str) -> tuple[int, ...]:
        """The <ID> children of collection ``name`` (e.g. <HOSTS><ID>0</ID></HOSTS>)."""
        node = self.child(name)
        ids: list[int] = []
        for child in node.el.iterfind("ID"):
            try:
                ids.append(int(child.text or ""))
            except ValueError:
                node._not_integer("ID", child)
        return tuple(ids)

    def permissions(self) -> Permissions | None:
        """The <PERMISSIONS> bits, or None if the element is absent (the XSDs allow that)."""
        perms = self.opt_child("PERMISSIONS")
        if perms is None:
            return None
        return Permissions(*map(perms.flag, PERMISSION_BITS))

    def opt_template(self, name: str = "TEMPLATE") -> Template | None:
        child = self._kids.get(name)
        return None if child is None else parse_template_element(child)

    def template(self, name: str = "TEMPLATE") -> Template:
        value = self.opt_template(name)
        if value is None:
            self._missing(name)
        return value


def _inside(parent: Node, label: str) -> str:
    return f"{parent.where} {label}"


def _keyed(parent: Node, el: ET.Element, name: str, key: str) -> str:
    return f"{parent.where} <{name}> {el.findtext(key, '?')}"


def parse_template_element(el: ET.Element) -> Template:
    """Turn a <TEMPLATE> (or <USER_TEMPLATE>) element into a Template."""
    entries: list[tuple[str, str | Vector]] = []
    for child in el:
        if len(child) or child.tag in _VECTOR_NAMES:
            entries.append((child.tag, Vector({sub.tag: sub.text or "" for sub in child})))
        else:
            entries.append((child.tag, child.text or ""))
    return Template(entries)


def document(text: object, root: str, source: str) -> ET.Element:
    """Parse ``text`` and check that its root element is ``root``."""
    if not isinstance(text, str):
        raise OneResponseError(
            f"{source}: expected an XML document, got {type(text).__name__}", hint=UNREADABLE_HINT
        )
    # oned never sends a DTD; refusing one keeps entity tricks out of the parser.
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise OneResponseError(
            f"{source}: the XML document carries a DTD, which oned never sends",
            hint=UNREADABLE_HINT,
        )
    try:
        el = ET.fromstring(text)  # noqa: S314 - no DTD (checked above), expat has entity limits
    except ET.ParseError as exc:
        raise OneResponseError(
            f"{source}: malformed or truncated XML ({exc})", hint=UNREADABLE_HINT
        ) from None
    if el.tag != root:
        raise OneResponseError(
            f"{source}: expected a <{root}> document, got <{el.tag}>", hint=UNREADABLE_HINT
        )
    return el


def where_of(el: ET.Element, source: str) -> str:
    ident = el.findtext("ID")
    return f"{source}: <{el.tag}> {ident.strip()}" if ident else f"{source}: <{el.tag}>"


def parse_one(text: object, tag: str, build: Callable[[Node], T], source: str) -> T:
    el = document(text, tag, source)
    return build(Node(el, partial(where_of, el, source)))


def parse_pool(
    text: object,
    pool: str,
    tag: str,
    build: Callable[[Node], T],
    source: str,
    fast: Callable[[ET.Element], T] | None = None,
) -> tuple[T, ...]:
    """The <tag> elements of a <pool> document, each built by ``fast`` if given and able.

    ``fast`` raises KeyError or ValueError for an element it cannot read (see ``_fast``):
    ``build`` then reads it carefully, and says what is wrong if something is.
    """
    # A 20,000-VM pool makes hundreds of thousands of small objects that are all kept:
    # the cyclic collector would rescan them again and again for nothing.
    paused = gc.isenabled()
    gc.disable()
    try:
        root = document(text, pool, source)
        models: list[T] = []
        for el in root.iterfind(tag):
            if fast is not None:
                try:
                    models.append(fast(el))
                    continue
                except (KeyError, ValueError):
                    pass  # the careful reader says what is wrong, if anything is
            models.append(build(Node(el, partial(where_of, el, source))))
        del root  # the tree goes before the models are handed to the oldest generation
        _to_oldest_generation()
        return tuple(models)
    finally:
        if paused:
            gc.enable()


def _to_oldest_generation() -> None:
    """Move every object the collector tracks to its oldest generation, without a scan.

    Left young, the models of a big pool (200,000 objects for 20,000 VMs, none of them in
    a cycle) would be scanned by the next two collections for nothing, 0.1 s of the pool
    call. Skipped if someone froze objects (``gc.freeze``): unfreezing is not ours to do.
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
