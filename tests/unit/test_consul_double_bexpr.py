"""Unit tests of the go-bexpr parser: the tree it builds and pigeon's error texts."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstack.consul_double import BadFilter
from devstack.consul_double.bexpr import Binary, Expression, Match, Not, Operator
from devstack.consul_double.bexpr_grammar import parse
from devstack.consul_double.gostrconv import go_quote, go_unquote

OPERATOR_TEXT = {
    Operator.EQUAL: "==",
    Operator.NOT_EQUAL: "!=",
    Operator.MATCHES: "matches",
    Operator.NOT_MATCHES: "not matches",
    Operator.IN: "contains",
    Operator.NOT_IN: "not contains",
}
KEYWORDS = {"and", "or", "not", "in", "is", "empty", "contains", "matches"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('CheckID == "serfHealth"', Match(("CheckID",), Operator.EQUAL, "serfHealth")),
        ("Status != passing", Match(("Status",), Operator.NOT_EQUAL, "passing")),
        ("Port==9090", Match(("Port",), Operator.EQUAL, "9090")),
        ("Weight == -1.5", Match(("Weight",), Operator.EQUAL, "-1.5")),
        ('Node.Meta["site"] == `a"b`', Match(("Node", "Meta", "site"), Operator.EQUAL, 'a"b')),
        ('"web" in Service.Tags', Match(("Service", "Tags"), Operator.IN, "web")),
        ('"web" not in Tags', Match(("Tags",), Operator.NOT_IN, "web")),
        ("Tags contains web", Match(("Tags",), Operator.IN, "web")),
        ('Tags not contains "x"', Match(("Tags",), Operator.NOT_IN, "x")),
        ('Node matches "^a.*\\\\d$"', Match(("Node",), Operator.MATCHES, "^a.*\\d$")),
        ("Node not matches `x`", Match(("Node",), Operator.NOT_MATCHES, "x")),
        ("Checks is empty", Match(("Checks",), Operator.IS_EMPTY, None)),
        ("Checks is not empty", Match(("Checks",), Operator.IS_NOT_EMPTY, None)),
        ("  ( a == 1 )  ", Match(("a",), Operator.EQUAL, "1")),
        ("not not a == 1", Match(("a",), Operator.EQUAL, "1")),
        ('Name == "tab\\there"', Match(("Name",), Operator.EQUAL, "tab\there")),
    ],
)
def test_parses_match_expressions(text: str, expected: Expression) -> None:
    """Each operator form parses to the selector, operator and raw value go-bexpr keeps."""
    assert parse(text) == expected


def test_and_binds_tighter_than_or_and_parentheses_override() -> None:
    """``a or b and c`` is ``a or (b and c)``; parentheses regroup; ``not`` binds tightest."""
    a, b, c = (Match((name,), Operator.EQUAL, "1") for name in "abc")
    assert parse("a == 1 or b == 1 and c == 1") == Binary("or", a, Binary("and", b, c))
    assert parse("(a == 1 or b == 1) and c == 1") == Binary("and", Binary("or", a, b), c)
    assert parse("not a == 1 and b == 1") == Binary("and", Not(a), b)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "foo",
            '1:4 (3): no match found, expected: "!=", ".", "==", "[", [ \\t\\r\\n] or [a-zA-Z0-9_]',
        ),
        ("Address == 10.10.10.10 ", '1:17 (16): rule "number": Invalid number literal'),
        (
            "Node==host-name",
            '1:11 (10): no match found, expected: ".", "[", [ \\t\\r\\n], [a-zA-Z0-9_] or EOF',
        ),
        ("(a == 1", '1:8 (7): rule "grouping": Unmatched parentheses'),
        ('Node == "abc', '1:13 (12): rule "string": Unterminated string literal'),
        ('Node == "a\\qb"', '1:9 (8): rule "string": invalid syntax'),
        ("a[1] == 2", '1:3 (2): rule "index": Invalid index'),
        ('a["b" == 1', '1:7 (6): rule "index": Unclosed index expression'),
        ('"x" in 5', '1:8 (7): rule "match": Invalid selector'),
        ("a == 1 or", "1:10 (9): no match found, expected: [ \\t\\r\\n]"),
    ],
)
def test_errors_read_like_go_bexpr(text: str, message: str) -> None:
    """Malformed expressions fail with pigeon's position, rule and reason (as seen from Consul)."""
    with pytest.raises(BadFilter) as caught:
        parse(text)
    assert str(caught.value) == message


def test_positions_count_bytes_for_the_offset_and_runes_for_the_column() -> None:
    """After a multibyte character the column counts characters and the offset counts bytes."""
    with pytest.raises(BadFilter, match=r"^1:14 \(15\): no match found"):
        parse('Node == "éé" x')


def test_go_quote_and_unquote() -> None:
    """Quoting escapes like Go's %q; unquoting accepts Go's escapes and rejects the others."""
    assert go_quote('a"b\\c\n\x07\x7f é') == '"a\\"b\\\\c\\n\\a\\x7f é"'
    assert go_unquote('"\\x41\\u00e9\\101\\U0001F600"') == "Aé" + "A" + "\U0001f600"
    assert go_unquote("`raw\\n\r`") == "raw\\n"
    for bad in ('"\\\'"', '"\\400"', '"\\uD800"', '"a\nb"', '"\\x4"'):
        with pytest.raises(ValueError, match="invalid syntax"):
            go_unquote(bad)


identifiers = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,6}", fullmatch=True).filter(
    lambda name: name not in KEYWORDS
)
values = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="`\r"), max_size=8)
matches = st.builds(
    Match,
    st.lists(identifiers, min_size=1, max_size=3).map(tuple),
    st.sampled_from(sorted(OPERATOR_TEXT, key=lambda op: op.value)),
    values,
)
trees = st.recursive(
    matches,
    lambda inner: st.one_of(
        st.builds(Not, inner.filter(lambda node: not isinstance(node, Not))),
        st.builds(Binary, st.sampled_from(["and", "or"]), inner, inner),
    ),
    max_leaves=6,
)


def render(node: Expression) -> str:
    """Filter text for a tree: operands of ``and``/``or`` are parenthesized."""
    if isinstance(node, Not):
        return f"not ({render(node.operand)})"
    if isinstance(node, Binary):
        return f"({render(node.left)}) {node.operator} ({render(node.right)})"
    return f"{'.'.join(node.selector)} {OPERATOR_TEXT[node.operator]} `{node.value}`"


@given(trees)
def test_rendered_trees_parse_back(tree: Expression) -> None:
    """Any expression tree written as filter text parses back to the same tree."""
    assert parse(render(tree)) == tree


@given(st.text(max_size=40))
def test_arbitrary_text_parses_or_fails_with_bad_filter(text: str) -> None:
    """Whatever the text, the parser returns a tree or raises BadFilter, nothing else."""
    try:
        parse(text)
    except BadFilter as error:
        message = str(error)
    else:
        message = "parsed"
    assert message
