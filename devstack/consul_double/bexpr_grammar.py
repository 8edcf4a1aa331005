"""Parser of go-bexpr filter expressions, with the errors go-bexpr gives for bad ones.

The grammar is go-bexpr v0.1.2's (the version Consul vendors), a PEG parsed by a pigeon-generated
parser. Each rule below mirrors one grammar rule, alternative by alternative, so that a failed
parse names the same farthest position and the same expected tokens as pigeon does.
"""

from collections.abc import Callable
from typing import Literal

from devstack.consul_double.bexpr import (
    AFTER_SELECTOR,
    EMPTINESS,
    MEMBERSHIP,
    WHITESPACE,
    Binary,
    Expression,
    Match,
    Not,
    Operator,
    Steps,
)
from devstack.consul_double.errors import BadFilter
from devstack.consul_double.gostrconv import go_quote, go_unquote


def _is_letter(char: str) -> bool:
    """``[a-zA-Z]``."""
    return char.isascii() and char.isalpha()


def _is_word(char: str) -> bool:
    """``[a-zA-Z0-9_]``."""
    return char.isascii() and (char.isalnum() or char == "_")


def _is_digit(char: str) -> bool:
    """``[0-9]``."""
    return "0" <= char <= "9"


def _is_nonzero_digit(char: str) -> bool:
    """``[1-9]``."""
    return "1" <= char <= "9"


def parse(text: str) -> Expression:
    """Parse a filter expression; :class:`BadFilter` carries go-bexpr's error text."""
    return _Parser(text).parse()


class _Parser:
    """A backtracking PEG parser that records failures the way pigeon does."""

    def __init__(self, text: str) -> None:
        """Start at the beginning of ``text``."""
        self.text = text
        self.pos = 0
        self.inverted = False
        self.farthest = 0
        self.expected: list[str] = []
        self.errors: list[str] = []

    def parse(self) -> Expression:
        """The expression, or :class:`BadFilter` with pigeon's error list."""
        try:
            result = self._input()
        except RecursionError:
            raise BadFilter("expression nests too deeply") from None
        errors = list(dict.fromkeys(self.errors))
        if result is None and not errors:
            errors = [self._no_match()]
        if errors:
            raise BadFilter("\n".join(errors))
        assert result is not None
        return result

    # --- reporting ------------------------------------------------------------------------

    def _where(self, index: int) -> str:
        """pigeon's ``line:col (offset)`` of a character index."""
        line = self.text.count("\n", 0, index) + 1
        column = index - self.text.rfind("\n", 0, index)
        if self.text[index : index + 1] == "\n":
            line, column = line + 1, 0
        return f"{line}:{column} ({len(self.text[:index].encode())})"

    def _note(self, matched: bool, at: int, want: str) -> None:
        """Remember what was wanted at ``at`` (pigeon's ``failAt``, inverted under ``!``)."""
        if matched != self.inverted or at < self.farthest:
            return
        if at > self.farthest:
            self.farthest = at
            self.expected = []
        self.expected.append("!" + want if self.inverted else want)

    def _error(self, rule: str, message: str, at: int | None = None) -> None:
        """An error raised by a rule's code (pigeon's ``addErr``)."""
        where = self._where(self.pos if at is None else at)
        self.errors.append(f"{where}: rule {rule}: {message}")

    def _no_match(self) -> str:
        """pigeon's message when nothing matched: the tokens wanted at the farthest position."""
        wanted = set(self.expected)
        eof = "!." in wanted
        wanted.discard("!.")
        listed = sorted(wanted) + (["EOF"] if eof else [])
        joined = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " or " + listed[-1]
        return f"{self._where(self.farthest)}: no match found, expected: {joined}"

    # --- matchers -------------------------------------------------------------------------

    def _literal(self, word: str) -> bool:
        """Match ``word`` exactly."""
        start = self.pos
        matched = self.text.startswith(word, start)
        self._note(matched, start, go_quote(word))
        if matched:
            self.pos = start + len(word)
        return matched

    def _char(self, label: str, test: Callable[[str], bool]) -> bool:
        """Match one character of a class."""
        start = self.pos
        matched = start < len(self.text) and test(self.text[start])
        self._note(matched, start, label)
        if matched:
            self.pos = start + 1
        return matched

    def _any(self) -> bool:
        """Match any one character (``.``)."""
        return self._char(".", lambda _: True)

    def _not(self, rule: Callable[[], object]) -> bool:
        """``!rule``: succeed, consuming nothing, when ``rule`` fails."""
        start = self.pos
        self.inverted = not self.inverted
        matched = rule()
        self.inverted = not self.inverted
        self.pos = start
        return not matched

    def _ahead(self, rule: Callable[[], object]) -> bool:
        """``&rule``: succeed, consuming nothing, when ``rule`` matches."""
        start = self.pos
        matched = bool(rule())
        self.pos = start
        return matched

    def _ws(self) -> bool:
        """``_ <- [ \\t\\r\\n]+``."""
        if not self._char(WHITESPACE, _is_space):
            return False
        while self._char(WHITESPACE, _is_space):
            pass
        return True

    def _eof(self) -> bool:
        """``EOF <- !.``."""
        return self._not(self._any)

    def _steps(self, steps: Steps) -> bool:
        """A sequence of words and whitespace; restores the position when it fails."""
        start = self.pos
        for step in steps:
            if step == "_?":
                self._ws()
            elif not (self._ws() if step == "_" else self._literal(step)):
                self.pos = start
                return False
        return True

    def _operator(self, choices: tuple[tuple[Operator, Steps], ...]) -> Operator | None:
        """The first operator whose words match."""
        for operator, steps in choices:
            if self._steps(steps):
                return operator
        return None

    # --- expressions ----------------------------------------------------------------------

    def _input(self) -> Expression | None:
        """``Input <- _? "(" _? Or _? ")" _? EOF / _? Or _? EOF``."""
        start = self.pos
        self._ws()
        if self._literal("("):
            expr = self._inside_parentheses()
            if expr is not None:
                self._ws()
                if self._eof():
                    return expr
        self.pos = start
        self._ws()
        expr = self._or()
        if expr is not None:
            self._ws()
            if self._eof():
                return expr
        self.pos = start
        return None

    def _inside_parentheses(self) -> Expression | None:
        """``_? Or _? ")"`` after an opening parenthesis."""
        self._ws()
        expr = self._or()
        if expr is None:
            return None
        self._ws()
        return expr if self._literal(")") else None

    def _or(self) -> Expression | None:
        """``Or <- And _ "or" _ Or / And``."""
        return self._binary("or", self._and, self._or)

    def _and(self) -> Expression | None:
        """``And <- Not _ "and" _ And / Not``."""
        return self._binary("and", self._negation, self._and)

    def _binary(
        self,
        word: Literal["and", "or"],
        side: Callable[[], Expression | None],
        rest: Callable[[], Expression | None],
    ) -> Expression | None:
        """``side _ word _ rest / side``."""
        start = self.pos
        left = side()
        if left is not None and self._steps(("_", word, "_")):
            right = rest()
            if right is not None:
                return Binary(word, left, right)
        self.pos = start
        return side()

    def _negation(self) -> Expression | None:
        """``Not <- "not" _ Not / Paren`` (``not not x`` is ``x``)."""
        start = self.pos
        if self._steps(("not", "_")):
            inner = self._negation()
            if inner is not None:
                return inner.operand if isinstance(inner, Not) else Not(inner)
        self.pos = start
        return self._grouping()

    def _grouping(self) -> Expression | None:
        """``"grouping" <- "(" _? Or _? ")" / Match / "(" _? Or _? !")" &{Unmatched}``."""
        start = self.pos
        if self._literal("("):
            expr = self._inside_parentheses()
            if expr is not None:
                return expr
        self.pos = start
        match = self._match()
        if match is not None:
            return match
        self.pos = start
        if self._literal("("):
            self._ws()
            if self._or() is not None:
                self._ws()
                if self._not(lambda: self._literal(")")):
                    self._error('"grouping"', "Unmatched parentheses")
        self.pos = start
        return None

    def _match(self) -> Match | None:
        """``"match" <- SelectorOpValue / SelectorOp / ValueOpSelector``."""
        for rule in (self._selector_op_value, self._selector_op, self._value_op_selector):
            match = rule()
            if match is not None:
                return match
        return None

    def _selector_op_value(self) -> Match | None:
        """``Selector (== / != / contains / not contains / matches / not matches) Value``."""
        start = self.pos
        selector = self._selector()
        if selector is not None:
            operator = self._operator(AFTER_SELECTOR)
            if operator is not None:
                value = self._value()
                if value is not None:
                    return Match(selector, operator, value)
        self.pos = start
        return None

    def _selector_op(self) -> Match | None:
        """``Selector (is empty / is not empty)``."""
        start = self.pos
        selector = self._selector()
        if selector is not None:
            operator = self._operator(EMPTINESS)
            if operator is not None:
                return Match(selector, operator, None)
        self.pos = start
        return None

    def _value_op_selector(self) -> Match | None:
        """``Value (in / not in) Selector / Value (in / not in) !Selector &{Invalid selector}``."""
        start = self.pos
        value = self._value()
        if value is not None:
            operator = self._operator(MEMBERSHIP)
            if operator is not None:
                selector = self._selector()
                if selector is not None:
                    return Match(selector, operator, value)
        self.pos = start
        if (
            self._value() is not None
            and self._operator(MEMBERSHIP) is not None
            and self._not(self._selector)
        ):
            self._error('"match"', "Invalid selector")
        self.pos = start
        return None

    # --- selectors and values -------------------------------------------------------------

    def _selector(self) -> tuple[str, ...] | None:
        """``"selector" <- Identifier SelectorOrIndex*``."""
        first = self._identifier()
        if first is None:
            return None
        path = [first]
        while (part := self._selector_or_index()) is not None:
            path.append(part)
        return tuple(path)

    def _identifier(self) -> str | None:
        """``Identifier <- [a-zA-Z] [a-zA-Z0-9_]*``."""
        start = self.pos
        if not self._char("[a-zA-Z]", _is_letter):
            return None
        while self._char("[a-zA-Z0-9_]", _is_word):
            pass
        return self.text[start : self.pos]

    def _selector_or_index(self) -> str | None:
        """``"." Identifier / Index``."""
        start = self.pos
        if self._literal("."):
            name = self._identifier()
            if name is not None:
                return name
        self.pos = start
        return self._index()

    def _index(self) -> str | None:
        """``"index" <- "[" _? String _? "]" / ... &{Invalid index} / ... &{Unclosed index}``."""
        start = self.pos
        if self._literal("["):
            self._ws()
            key = self._string()
            if key is not None:
                self._ws()
                if self._literal("]"):
                    return key
        self.pos = start
        if self._literal("["):
            self._ws()
            if self._not(self._string):
                self._error('"index"', "Invalid index")
        self.pos = start
        if self._literal("["):
            self._ws()
            if self._string() is not None:
                self._ws()
                if self._not(lambda: self._literal("]")):
                    self._error('"index"', "Unclosed index expression")
        self.pos = start
        return None

    def _value(self) -> str | None:
        """``"value" <- Selector / Number / String``."""
        selector = self._selector()
        if selector is not None:
            return ".".join(selector)
        number = self._number()
        if number is not None:
            return number
        return self._string()

    def _number(self) -> str | None:
        """``"number" <- "-"? IntOrFloat &After / "-"? IntOrFloat !After &{Invalid number}``."""
        start = self.pos
        if self._signed_number() and self._ahead(self._after_number):
            return self.text[start : self.pos]
        self.pos = start
        if self._signed_number() and self._not(self._after_number):
            self._error('"number"', "Invalid number literal")
        self.pos = start
        return None

    def _signed_number(self) -> bool:
        """``"-"? ("0" / [1-9][0-9]*) ("." [0-9]+)?``."""
        start = self.pos
        self._literal("-")
        if not self._literal("0"):
            if not self._char("[1-9]", _is_nonzero_digit):
                self.pos = start
                return False
            while self._char("[0-9]", _is_digit):
                pass
        fraction = self.pos
        if self._literal(".") and self._char("[0-9]", _is_digit):
            while self._char("[0-9]", _is_digit):
                pass
        else:
            self.pos = fraction
        return True

    def _after_number(self) -> bool:
        """``AfterNumbers <- &(_ / EOF / ")")``."""
        return self._ahead(lambda: self._ws() or self._eof() or self._literal(")"))

    def _string(self) -> str | None:
        """``"string" <- quoted { Unquote } / unterminated EOF &{Unterminated string literal}``."""
        start = self.pos
        for quote in ("`", '"'):
            if self._quoted(quote) and self._literal(quote):
                literal = self.text[start : self.pos]
                try:
                    return go_unquote(literal)
                except ValueError as error:
                    self._error('"string"', str(error), start)
                    return ""
            self.pos = start
        for quote in ("`", '"'):
            if self._quoted(quote) and self._eof():
                self._error('"string"', "Unterminated string literal")
                break
            self.pos = start
        self.pos = start
        return None

    def _quoted(self, quote: str) -> bool:
        """An opening ``quote`` and the characters up to (not including) the next one."""
        if not self._literal(quote):
            return False
        while self._not(lambda: self._literal(quote)) and self._any():
            pass
        return True


def _is_space(char: str) -> bool:
    """``[ \\t\\r\\n]``."""
    return char in " \t\r\n"
