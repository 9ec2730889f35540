"""Immutable OpenNebula templates: simple attributes and vector attributes (DISK, NIC, ...).

The dicts inside are private and never handed out, so they need no read-only wrapper: a
20,000-VM pool would carry 40,000 more objects for the garbage collector to scan.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping


class Vector(Mapping[str, str]):
    """A vector attribute such as one DISK or NIC: an immutable mapping of sub-attributes."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, str] = dict(items)

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

    __slots__ = ("_entries", "_mapping")

    def __init__(self, entries: Iterable[tuple[str, str | Vector]] = ()) -> None:
        self._entries: tuple[tuple[str, str | Vector], ...] = tuple(entries)
        # Built when first looked up: most templates of a 20,000-VM pool never are.
        self._mapping: dict[str, TemplateValue] | None = None

    @property
    def _view(self) -> dict[str, TemplateValue]:
        """Names in order of first appearance: every vector of a name, else its first value."""
        if self._mapping is not None:
            return self._mapping
        view: dict[str, TemplateValue] = {}
        vectors: dict[str, list[Vector]] = {}
        for name, value in self._entries:
            if isinstance(value, Vector):
                vectors.setdefault(name, []).append(value)
                view.setdefault(name, ())  # the place, filled in below
            else:
                view.setdefault(name, value)
        for name, found in vectors.items():
            view[name] = tuple(found)
        self._mapping = view
        return view

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
