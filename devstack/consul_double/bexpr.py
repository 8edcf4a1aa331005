"""The expression tree of go-bexpr filters (Consul's ``?filter=``) and its operator words."""

from dataclasses import dataclass
from enum import Enum
from typing import Literal


class Operator(Enum):
    """Match operators, valued by the names go-bexpr prints in its errors."""

    EQUAL = "Equal"
    NOT_EQUAL = "Not Equal"
    IN = "In"
    NOT_IN = "Not In"
    IS_EMPTY = "Is Empty"
    IS_NOT_EMPTY = "Is Not Empty"
    MATCHES = "Matches"
    NOT_MATCHES = "Not Matches"


@dataclass(frozen=True)
class Match:
    """``<selector> <operator> <value>``; ``value`` is the raw text (``None`` for emptiness)."""

    selector: tuple[str, ...]
    operator: Operator
    value: str | None

    @property
    def path(self) -> str:
        """The selector as go-bexpr prints it (``Node.Meta.site``)."""
        return ".".join(self.selector)


@dataclass(frozen=True)
class Not:
    """``not <expression>``."""

    operand: "Expression"


@dataclass(frozen=True)
class Binary:
    """``<left> and|or <right>``."""

    operator: Literal["and", "or"]
    left: "Expression"
    right: "Expression"


Expression = Match | Not | Binary

Steps = tuple[str, ...]
"""A grammar sequence of operator words: ``_`` is whitespace, ``_?`` optional whitespace."""

AFTER_SELECTOR: tuple[tuple[Operator, Steps], ...] = (
    (Operator.EQUAL, ("_?", "==", "_?")),
    (Operator.NOT_EQUAL, ("_?", "!=", "_?")),
    (Operator.IN, ("_", "contains", "_")),
    (Operator.NOT_IN, ("_", "not", "_", "contains", "_")),
    (Operator.MATCHES, ("_", "matches", "_")),
    (Operator.NOT_MATCHES, ("_", "not", "_", "matches", "_")),
)
"""Operators of ``<selector> <op> <value>``, in the grammar's order of alternatives."""

EMPTINESS: tuple[tuple[Operator, Steps], ...] = (
    (Operator.IS_EMPTY, ("_", "is", "_", "empty")),
    (Operator.IS_NOT_EMPTY, ("_", "is", "_", "not", "_", "empty")),
)
"""Operators of ``<selector> is [not] empty``."""

MEMBERSHIP: tuple[tuple[Operator, Steps], ...] = (
    (Operator.IN, ("_", "in", "_")),
    (Operator.NOT_IN, ("_", "not", "_", "in", "_")),
)
"""Operators of ``<value> [not] in <selector>``."""

WHITESPACE = "[ \\t\\r\\n]"
"""The whitespace class as pigeon lists it among expected tokens."""
