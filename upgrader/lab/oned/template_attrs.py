"""OpenNebula template attributes: parsing the text syntax and writing the XML form.

A template is an ordered list of ``(NAME, value)`` where value is a string (simple
attribute) or a list of ``(NAME, string)`` pairs (vector attribute such as DISK).
oned keeps attributes in a multimap, so XML comes out sorted by name.
"""

from __future__ import annotations

import re
from xml.etree import ElementTree as ET

Vector = list[tuple[str, str]]
Value = str | Vector
Attrs = list[tuple[str, Value]]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*)
      | (?P<eq>=)
      | (?P<open>\[)
      | (?P<close>\])
      | (?P<comma>,)
      | "(?P<quoted>(?:[^"\\]|\\.)*)"
      | (?P<word>[^\s,\[\]=\#"]+)
    )""",
    re.VERBOSE,
)


_NAME = re.compile(r"[A-Za-z0-9_]+")


class TemplateSyntaxError(ValueError):
    """The template text cannot be parsed; the message is oned's style of complaint."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise TemplateSyntaxError(f"syntax error, unexpected character at position {pos}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "comment" or kind is None:
            continue
        value = m.group(kind)
        if kind == "quoted":
            value = re.sub(r"\\(.)", r"\1", value)
        out.append((kind, value))
    return out


def parse(text: str) -> Attrs:
    """Parse ``NAME = value`` / ``NAME = [ K = V, ... ]`` text into attributes."""
    toks = _tokens(text)
    attrs: Attrs = []
    i = 0
    while i < len(toks):
        kind, name = toks[i]
        if (
            kind != "word"
            or not _NAME.fullmatch(name)
            or i + 2 > len(toks)
            or toks[i + 1][0] != "eq"
        ):
            raise TemplateSyntaxError(f"syntax error near '{name}'")
        i += 2
        if i >= len(toks):
            raise TemplateSyntaxError(f"syntax error, no value for '{name}'")
        kind, value = toks[i]
        if kind == "open":
            vector: Vector = []
            i += 1
            while i < len(toks) and toks[i][0] != "close":
                if toks[i][0] == "comma":
                    i += 1
                    continue
                if i + 2 >= len(toks) or toks[i][0] != "word" or toks[i + 1][0] != "eq":
                    raise TemplateSyntaxError(f"syntax error in vector attribute '{name}'")
                vector.append((toks[i][1].upper(), toks[i + 2][1]))
                i += 3
            if i >= len(toks):
                raise TemplateSyntaxError(f"syntax error, unterminated vector '{name}'")
            attrs.append((name.upper(), vector))
            i += 1
        elif kind in ("quoted", "word"):
            attrs.append((name.upper(), value))
            i += 1
        else:
            raise TemplateSyntaxError(f"syntax error near '{name}'")
    return attrs


def _cdata(value: str) -> str:
    # "]]>" cannot sit inside one CDATA section: split it across two.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def to_xml(attrs: Attrs, tag: str = "TEMPLATE") -> str:
    """The XML form oned writes: attributes sorted by name, values in CDATA."""
    parts = [f"<{tag}>"]
    for name, value in sorted(attrs, key=lambda a: a[0]):
        if isinstance(value, list):
            if not value:
                parts.append(f"<{name}/>")
                continue
            inner = "".join(f"<{k}>{_cdata(v)}</{k}>" for k, v in sorted(value, key=lambda a: a[0]))
            parts.append(f"<{name}>{inner}</{name}>")
        else:
            parts.append(f"<{name}>{_cdata(value)}</{name}>")
    parts.append(f"</{tag}>")
    return "".join(parts)


def from_element(elem: ET.Element | None) -> Attrs:
    """Read a TEMPLATE element back (element with children = vector attribute)."""
    attrs: Attrs = []
    if elem is None:
        return attrs
    for child in elem:
        if len(child):
            attrs.append((child.tag, [(c.tag, c.text or "") for c in child]))
        else:
            attrs.append((child.tag, child.text or ""))
    return attrs


def get(attrs: Attrs, name: str, default: str | None = None) -> str | None:
    """First simple value of ``name``."""
    for key, value in attrs:
        if key == name and isinstance(value, str):
            return value
    return default


def vectors(attrs: Attrs, name: str) -> list[Vector]:
    """Every vector attribute called ``name`` (e.g. all DISKs)."""
    return [value for key, value in attrs if key == name and isinstance(value, list)]


def vget(vector: Vector, name: str, default: str | None = None) -> str | None:
    """A sub-attribute of a vector attribute."""
    for key, value in vector:
        if key == name:
            return value
    return default


def vset(vector: Vector, name: str, value: str) -> None:
    """Set (replace) a sub-attribute of a vector attribute."""
    for i, (key, _) in enumerate(vector):
        if key == name:
            vector[i] = (name, value)
            return
    vector.append((name, value))


def put(attrs: Attrs, name: str, value: Value) -> None:
    """Replace every attribute ``name`` with one value."""
    attrs[:] = [(k, v) for k, v in attrs if k != name]
    attrs.append((name, value))
