"""Immutable OpenNebula templates: simple attributes and vector attributes (DISK, NIC, ...)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType


class Vector(Mapping[str, str]):
    """A vector attribute such as one DISK or NIC: an immutable mapping of sub-attributes."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._items: Mapping[str, str] = MappingProxyType(dict(items))

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"Vector({dict(self._items)!r})"


TemplateValue = str | tuple[Vector, ...]


class Template(Mapping[str, TemplateValue]):
    """An immutable template: simple attributes map to ``str``, vector ones to a tuple of Vectors.

    OpenNebula templates are multimaps: DISK, NIC and the like repeat, and so may a simple
    attribute. The mapping view gives every occurrence of a vector attribute (in document
    order) and, like oned's ``Template::get``, the first occurrence of a simple one;
    ``get_all`` and ``entries`` keep every occurrence.
    """

    __slots__ = ("_entries", "_view")

    def __init__(self, entries: Iterable[tuple[str, str | Vector]] = ()) -> None:
        self._entries: tuple[tuple[str, str | Vector], ...] = tuple(entries)
        vectors: dict[str, tuple[Vector, ...]] = {}
        simple: dict[str, str] = {}
        for name, value in self._entries:
            if isinstance(value, Vector):
                vectors[name] = (*vectors.get(name, ()), value)
            else:
                simple.setdefault(name, value)
        view: dict[str, TemplateValue] = {}
        for name, _ in self._entries:
            if name not in view:
                view[name] = vectors[name] if name in vectors else simple[name]
        self._view: Mapping[str, TemplateValue] = MappingProxyType(view)

    @property
    def entries(self) -> tuple[tuple[str, str | Vector], ...]:
        """Every attribute in document order, repeated ones included."""
        return self._entries

    def get_all(self, name: str) -> tuple[str | Vector, ...]:
        """Every value of attribute ``name``, in document order."""
        return tuple(value for key, value in self._entries if key == name)

    def text(self, name: str) -> str | None:
        """The first simple value of ``name``, or None if absent or only a vector."""
        value = self._view.get(name)
        return value if isinstance(value, str) else None

    def vectors(self, name: str) -> tuple[Vector, ...]:
        """Every vector value of ``name`` (e.g. all DISKs); empty if there is none."""
        value = self._view.get(name)
        return value if isinstance(value, tuple) else ()

    def __getitem__(self, key: str) -> TemplateValue:
        return self._view[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._view)

    def __len__(self) -> int:
        return len(self._view)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Template):
            return self._entries == other._entries
        return super().__eq__(other)

    def __hash__(self) -> int:
        return hash(self._entries)

    def __repr__(self) -> str:
        return f"Template({dict(self._view)!r})"
