"""A string that will not show itself: for OpenNebula sessions and passwords."""

from __future__ import annotations

from typing import Final

_MASK: Final = "***"


class Secret:
    """A secret string: ``str``, ``repr`` and ``format`` show ``***``; ``reveal()`` gives the value.

    Deliberately not a ``str`` subclass: ``+``, ``join`` and slicing on one use the real
    characters whatever ``__str__`` says, and xmlrpc.client refuses to marshal one.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        """Return the secret value; call it only where the value leaves the process."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, spec: str) -> str:
        return format(_MASK, spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> str | tuple[object, ...]:
        # Pickling would write the value in clear to wherever the pickle goes.
        raise TypeError("a Secret cannot be pickled")
