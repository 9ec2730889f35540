#!/usr/bin/python
"""Ansible module: read an OpenNebula 3.x ``oned.conf`` and return its attributes.

Read-only. The file's syntax is OpenNebula's template syntax: ``KEY = value`` (the value
bare or in double quotes), ``KEY = [ a = "b", c = "d" ]`` (a vector attribute, which may
span lines), ``#`` comments to the end of the line, and keys that may repeat (``IM_MAD``,
``VM_MAD``, ``HOST_HOOK``...). Keys come back upper-cased, as oned reads them; the keys of
a vector lower-cased, as the shipped files write them.

The result can hold the database password (``DB = [ passwd = ... ]``): the task that calls
this module sets ``no_log``. Error messages name the file, the line and the key, never a
value. One source for Python 2.7 and 3.6+, as every module of ours.
"""

from __future__ import absolute_import, division, print_function

import io
import re

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: oned_conf_facts
short_description: Read an OpenNebula 3.x oned.conf into a dictionary
description:
  - Parses C(KEY = value) and C(KEY = [ a = "b", ... ]) attributes and C(#) comments.
  - Changes nothing; supports check mode.
options:
  path:
    description: The oned.conf to read.
    type: path
    default: /etc/one/oned.conf
"""

RETURN = r"""
attributes:
  description: >-
    Upper-cased key -> list of its values in file order; a value is a string, or a
    dictionary (lower-cased keys) for a vector attribute.
  type: dict
  returned: success
path:
  description: The file read.
  type: str
  returned: always
"""

_NAME = re.compile(r"[A-Za-z0-9_]+")
# A bare value runs to the next blank, comment, quote, comma or bracket (OpenNebula's lexer).
_BARE = re.compile(r"[^\s#\"\[\],=]+")


class ConfError(Exception):
    """The file is not valid oned.conf syntax; the message names the line, never a value."""


class _Scanner:
    """Walks the text with a position and a line number."""

    def __init__(self, text):
        self.text = text
        self.pos = 0
        self.line = 1

    def skip(self, newlines):
        """Skip blanks and comments (and line breaks when ``newlines``)."""
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            elif ch == "\n" and newlines:
                self.line += 1
                self.pos += 1
            elif ch in " \t\r":
                self.pos += 1
            else:
                return

    def peek(self):
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, ch, what):
        if self.peek() != ch:
            raise ConfError("line %d: expected '%s' %s" % (self.line, ch, what))
        self.pos += 1

    def name(self, what):
        match = _NAME.match(self.text, self.pos)
        if not match:
            raise ConfError("line %d: expected %s" % (self.line, what))
        self.pos = match.end()
        return match.group()

    def value(self, key):
        """A quoted (with backslash escapes) or bare value."""
        if self.peek() == '"':
            start_line = self.line
            out = []
            self.pos += 1
            while True:
                if self.pos >= len(self.text):
                    raise ConfError("line %d: unterminated string in %s" % (start_line, key))
                ch = self.text[self.pos]
                if ch == "\\" and self.pos + 1 < len(self.text):
                    out.append(self.text[self.pos + 1])
                    self.pos += 2
                    continue
                if ch == '"':
                    self.pos += 1
                    return "".join(out)
                if ch == "\n":
                    self.line += 1
                out.append(ch)
                self.pos += 1
        match = _BARE.match(self.text, self.pos)
        if not match:
            raise ConfError("line %d: expected a value for %s" % (self.line, key))
        self.pos = match.end()
        return match.group()


def _vector(sc, key):
    sc.expect("[", "after %s =" % key)
    out = {}
    while True:
        sc.skip(newlines=True)
        if sc.peek() == "]":
            sc.pos += 1
            return out
        sub = sc.name("an attribute name inside %s = [ ... ]" % key).lower()
        sc.skip(newlines=True)
        sc.expect("=", "after %s/%s" % (key, sub.upper()))
        sc.skip(newlines=True)
        out[sub] = sc.value("%s/%s" % (key, sub.upper()))
        sc.skip(newlines=True)
        if sc.peek() == ",":
            sc.pos += 1
        elif sc.peek() != "]":
            raise ConfError("line %d: expected ',' or ']' in %s = [ ... ]" % (sc.line, key))


def parse(text):
    """The attributes of an oned.conf: upper-cased key -> its values in file order.

    Raises:
        ConfError: on a syntax error (the message names the line and key, not the value).
    """
    sc = _Scanner(text)
    attributes = {}
    while True:
        sc.skip(newlines=True)
        if not sc.peek():
            return attributes
        key = sc.name("an attribute name").upper()
        sc.skip(newlines=False)
        sc.expect("=", "after %s" % key)
        sc.skip(newlines=False)
        value = _vector(sc, key) if sc.peek() == "[" else sc.value(key)
        attributes.setdefault(key, []).append(value)
        sc.skip(newlines=False)
        if sc.peek() not in ("\n", ""):
            raise ConfError("line %d: unexpected text after %s" % (sc.line, key))


def main():
    """Entry point of the module."""
    module = AnsibleModule(
        argument_spec={"path": {"type": "path", "default": "/etc/one/oned.conf"}},
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        with io.open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot read %s: %s" % (path, exc.strerror), path=path)
    try:
        attributes = parse(text)
    except ConfError as exc:
        module.fail_json(msg="%s %s" % (path, exc), path=path)
    module.exit_json(changed=False, path=path, attributes=attributes)


if __name__ == "__main__":
    main()
