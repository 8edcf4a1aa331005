"""Consul's ``?filter=``: go-bexpr validation against a listed type and evaluation over its JSON.

Validation follows go-bexpr v0.1.2 (the version Consul vendors): every selector must name a field
of the listed type, the operator must be one the field's kind supports and the value must coerce
to the field's kind. Evaluation walks the JSON the double renders as go-bexpr walks Consul's
structs: a list of structs matches when any element does, a missing map key matches only the
negative operators, and fields left out of the JSON hold their Go zero value.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from devstack.consul_double.bexpr import Binary, Expression, Match, Not, Operator
from devstack.consul_double.bexpr_grammar import parse
from devstack.consul_double.errors import BadFilter
from devstack.consul_double.gostrconv import go_parse_bool, go_parse_int, go_quote

Item = Mapping[str, Any]
Predicate = Callable[[Item], bool]

EVALUATOR_ERROR_PREFIX = "Failed to create boolean expression evaluator: "
"""How ``bexpr.CreateFilter`` wraps every parse and validation error."""

ANY = ""
"""Subfield name standing for any key of a map (go-bexpr's ``FieldNameAny``)."""

_MISSING_KEY_FALSE = frozenset({Operator.EQUAL, Operator.IS_NOT_EMPTY, Operator.IN})
"""Operators that a missing map key fails; every other operator passes on a missing key."""


class Kind(Enum):
    """The Go kinds go-bexpr distinguishes when it generates field configurations."""

    STRING = "string"
    INT = "int"
    BOOL = "bool"
    STRUCT = "struct"
    LIST = "list"
    STRUCT_LIST = "struct list"
    MAP = "map"


_STRING_OPS = frozenset(
    {
        Operator.EQUAL,
        Operator.NOT_EQUAL,
        Operator.IN,
        Operator.NOT_IN,
        Operator.MATCHES,
        Operator.NOT_MATCHES,
    }
)
_CONTAINER_OPS = frozenset({Operator.IS_EMPTY, Operator.IS_NOT_EMPTY, Operator.IN, Operator.NOT_IN})
_OPERATORS: dict[Kind, frozenset[Operator]] = {
    Kind.STRING: _STRING_OPS,
    Kind.INT: frozenset({Operator.EQUAL, Operator.NOT_EQUAL}),
    Kind.BOOL: frozenset({Operator.EQUAL, Operator.NOT_EQUAL}),
    Kind.STRUCT: frozenset(),
    Kind.LIST: _CONTAINER_OPS,
    Kind.STRUCT_LIST: frozenset({Operator.IS_EMPTY, Operator.IS_NOT_EMPTY}),
    Kind.MAP: _CONTAINER_OPS,
}
"""Operators go-bexpr allows per kind (lists hold strings; maps have string keys)."""


@dataclass(frozen=True)
class Field:
    """A selectable field: its kind and, for structs, lists of structs and maps, its subfields."""

    kind: Kind
    subfields: Mapping[str, "Field"] = field(default_factory=dict)

    @property
    def operators(self) -> frozenset[Operator]:
        """Operators this field supports."""
        return _OPERATORS[self.kind]

    def zero(self) -> Any:
        """The Go zero value of the field, for fields the JSON leaves out."""
        zeros: dict[Kind, Any] = {Kind.STRING: "", Kind.INT: 0, Kind.BOOL: False}
        if self.kind in zeros:
            return zeros[self.kind]
        return [] if self.kind in (Kind.LIST, Kind.STRUCT_LIST) else {}


STRING = Field(Kind.STRING)
INT = Field(Kind.INT)
BOOL = Field(Kind.BOOL)
STRINGS = Field(Kind.LIST)
STRING_MAP = Field(Kind.MAP, {ANY: STRING})


def struct(**members: Field) -> Field:
    """A struct with the given selectable members."""
    return Field(Kind.STRUCT, members)


def struct_list(element: Field) -> Field:
    """A list of structs: selectors go straight to the element's members."""
    return Field(Kind.STRUCT_LIST, element.subfields)


def struct_map(value: Field) -> Field:
    """A map from strings to structs."""
    return Field(Kind.MAP, {ANY: value})


def compile_filter(expression: str, item: Field) -> Predicate:
    """A predicate over one listed item's JSON; :class:`BadFilter` with Consul's message if bad."""
    try:
        return _compile(parse(expression), item)
    except BadFilter as error:
        raise BadFilter(EVALUATOR_ERROR_PREFIX + str(error)) from None


def _compile(node: Expression, item: Field) -> Predicate:
    """Validate ``node`` (left to right, as go-bexpr does) and build its predicate."""
    if isinstance(node, Not):
        operand = _compile(node.operand, item)
        return lambda data: not operand(data)
    if isinstance(node, Binary):
        left, right = _compile(node.left, item), _compile(node.right, item)
        if node.operator == "and":
            return lambda data: left(data) and right(data)
        return lambda data: left(data) or right(data)
    return _Test.of(node, item).matches


@dataclass(frozen=True)
class _Test:
    """One validated match expression with its value coerced to the selected field's kind."""

    match: Match
    item: Field
    leaf: Field
    value: Any

    @classmethod
    def of(cls, match: Match, item: Field) -> "_Test":
        """Validate ``match`` against the fields of ``item``."""
        leaf = _resolve(match.selector, item)
        if match.operator not in leaf.operators:
            raise BadFilter(
                f"Invalid match operator {go_quote(match.operator.value)} "
                f"for selector {go_quote(match.path)}"
            )
        return cls(match, item, leaf, _coerce(match, leaf))

    def matches(self, data: Item) -> bool:
        """Whether one listed item passes."""
        return self._reach(data, self.item, 0)

    def _reach(self, value: Any, owner: Field, depth: int) -> bool:
        """go-bexpr's walk: ``value`` is data of type ``owner`` at selector ``depth``."""
        path = self.match.selector
        if depth == len(path):
            return self._apply(value)
        if owner.kind is Kind.STRUCT_LIST:
            element = Field(Kind.STRUCT, owner.subfields)
            return any(self._reach(entry, element, depth) for entry in value or [])
        if owner.kind is Kind.MAP:
            if path[depth] not in (value or {}):
                return self.match.operator not in _MISSING_KEY_FALSE
            return self._reach(value[path[depth]], owner.subfields[ANY], depth + 1)
        member = owner.subfields[path[depth]]
        found = (value or {}).get(path[depth])
        return self._reach(member.zero() if found is None else found, member, depth + 1)

    def _apply(self, value: Any) -> bool:
        """The operator applied to the selected value."""
        operator = self.match.operator
        if operator in (Operator.IS_EMPTY, Operator.IS_NOT_EMPTY):
            return (len(value or ()) == 0) == (operator is Operator.IS_EMPTY)
        if operator in (Operator.MATCHES, Operator.NOT_MATCHES):
            found = self.value.search(str(value)) is not None
            return found == (operator is Operator.MATCHES)
        if operator in (Operator.IN, Operator.NOT_IN):
            found = self.value in (value if isinstance(value, str) else value or ())
            return found == (operator is Operator.IN)
        return bool(value == self.value) == (operator is Operator.EQUAL)


def _resolve(selector: tuple[str, ...], item: Field) -> Field:
    """The field a selector names, or go-bexpr's ``Selector "..." is not valid``."""
    fields = item.subfields
    chosen = item
    for depth, name in enumerate(selector):
        found = fields.get(name) or fields.get(ANY)
        if found is None:
            raise BadFilter(f"Selector {go_quote('.'.join(selector[: depth + 1]))} is not valid")
        chosen, fields = found, found.subfields
    return chosen


def _coerce(match: Match, leaf: Field) -> Any:
    """The match value as the field's kind (a compiled pattern for ``matches``)."""
    raw = match.value
    if raw is None:
        return None
    try:
        if match.operator in (Operator.MATCHES, Operator.NOT_MATCHES):
            return _pattern(raw)
        if leaf.kind is Kind.INT:
            return go_parse_int(raw)
        if leaf.kind is Kind.BOOL:
            return go_parse_bool(raw)
    except ValueError as error:
        raise BadFilter(
            f"Failed to coerce value {go_quote(raw)} for selector {go_quote(match.path)}: {error}"
        ) from None
    return raw


def _pattern(raw: str) -> re.Pattern[str]:
    """A regular expression, or go-bexpr's compile error."""
    try:
        return re.compile(raw)
    except re.error as error:
        raise BadFilter(f"Failed to compile regular expression {go_quote(raw)}: {error}") from None
