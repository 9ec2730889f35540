"""Editing stored oned bodies as text, the way the Ruby migrators edit them with REXML.

The migrators only ever touch *direct* children of a body's root element: drop one,
append new ones at the end, change a value. Doing that on the text keeps everything
else byte for byte (CDATA sections, element order), which a round trip through
ElementTree would not. Bodies are oned's own XML: no attributes, no DTD.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape, unescape

_TOKEN = re.compile(
    r"<!\[CDATA\[.*?\]\]>|<!--.*?-->|<\?.*?\?>"
    r"|<(?P<close>/)?(?P<tag>[A-Za-z_][\w.:-]*)(?:\s[^<>]*?)?(?P<empty>/)?>",
    re.S,
)
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.S)
_ENTITIES = {"&quot;": '"', "&apos;": "'"}


class BodyError(ValueError):
    """A stored body is not well-formed XML."""


@dataclass(frozen=True)
class Span:
    """Where one element sits in a body: whole element and content (empty if ``<X/>``)."""

    tag: str
    start: int
    end: int
    inner_start: int
    inner_end: int

    @property
    def self_closing(self) -> bool:
        """``<X/>``."""
        return self.inner_start == self.end


def _scan(body: str) -> tuple[Span, list[Span]]:
    """The root element and its direct children, in document order."""
    stack: list[tuple[str, int, int]] = []
    root: Span | None = None
    kids: list[Span] = []
    for m in _TOKEN.finditer(body):
        tag = m.group("tag")
        if tag is None:  # CDATA, comment or processing instruction
            continue
        if root is not None:
            raise BodyError(f"content after the root element <{root.tag}>")
        if m.group("close"):
            if not stack or stack[-1][0] != tag:
                raise BodyError(f"unexpected </{tag}>")
            open_tag, start, inner = stack.pop()
            span = Span(open_tag, start, m.end(), inner, m.start())
        elif m.group("empty"):
            span = Span(tag, m.start(), m.end(), m.end(), m.end())
        else:
            stack.append((tag, m.start(), m.end()))
            continue
        if not stack:
            root = span
        elif len(stack) == 1:
            kids.append(span)
    if stack:
        raise BodyError(f"<{stack[-1][0]}> is never closed")
    if root is None:
        raise BodyError("no root element")
    return root, kids


def root_tag(body: str) -> str:
    """The name of the root element."""
    return _scan(body)[0].tag


def children(body: str) -> list[Span]:
    """The direct children of the root element."""
    return _scan(body)[1]


def _plain(inner: str) -> str:
    parts: list[str] = []
    pos = 0
    for m in _CDATA.finditer(inner):
        parts.append(unescape(inner[pos : m.start()], _ENTITIES))
        parts.append(m.group(1))
        pos = m.end()
    parts.append(unescape(inner[pos:], _ENTITIES))
    return "".join(parts)


def text(body: str, tag: str) -> str | None:
    """The text of the first direct child called ``tag`` (CDATA unwrapped), or None."""
    for span in children(body):
        if span.tag == tag:
            return _plain(body[span.inner_start : span.inner_end])
    return None


def texts(body: str, path: str) -> list[str]:
    """The texts of every element at ``path`` (``A/B/C``, relative to the root)."""
    first, _, rest = path.partition("/")
    found: list[str] = []
    for span in children(body):
        if span.tag != first:
            continue
        if not rest:
            found.append(_plain(body[span.inner_start : span.inner_end]))
        elif not span.self_closing:
            found.extend(texts(body[span.start : span.end], rest))
    return found


def element(tag: str, value: str | None = None) -> str:
    """``<TAG>value</TAG>``, or ``<TAG/>`` when there is no value (REXML's empty form)."""
    if value is None or value == "":
        return f"<{tag}/>"
    return f"<{tag}>{escape(value)}</{tag}>"


def append(body: str, *fragments: str) -> str:
    """Add elements at the end of the root, as REXML's ``add_element`` does."""
    root, _ = _scan(body)
    added = "".join(fragments)
    if root.self_closing:
        return f"{body[: root.start]}<{root.tag}>{added}</{root.tag}>{body[root.end :]}"
    return body[: root.inner_end] + added + body[root.inner_end :]


def remove(body: str, tag: str) -> str:
    """Drop every direct child called ``tag``."""
    for span in reversed(children(body)):
        if span.tag == tag:
            body = body[: span.start] + body[span.end :]
    return body


def remove_first(body: str, tag: str, value: str) -> str:
    """Drop the first direct child called ``tag`` whose text is ``value``."""
    for span in children(body):
        if span.tag == tag and _plain(body[span.inner_start : span.inner_end]) == value:
            return body[: span.start] + body[span.end :]
    return body


def set_text(body: str, tag: str, value: str) -> str:
    """Give every direct child called ``tag`` the text ``value``."""
    return edit(body, tag, lambda child: element(tag, value) if value else f"<{tag}></{tag}>")


def edit(body: str, tag: str, fn: Callable[[str], str]) -> str:
    """Replace every direct child called ``tag`` by ``fn(child)``."""
    for span in reversed(children(body)):
        if span.tag == tag:
            body = body[: span.start] + fn(body[span.start : span.end]) + body[span.end :]
    return body


def empty(body: str) -> str:
    """The root element with its content dropped: ``<X/>``."""
    return f"<{root_tag(body)}/>"
