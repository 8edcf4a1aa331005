"""Unit tests of ``?filter=`` validation and evaluation against Consul's listed types."""

from typing import Any

import pytest

from devstack.consul_double import BadFilter
from devstack.consul_double.filter_fields import (
    CHECK_SERVICE_NODE,
    HEALTH_CHECK,
    NODE,
    NODE_INFO,
    NODE_SERVICE,
    SERVICE_NODE,
)
from devstack.consul_double.filtering import Field, compile_filter
from devstack.consul_double.gostrconv import go_parse_bool, go_parse_int

PREFIX = "Failed to create boolean expression evaluator: "
OPERATOR = "Invalid match operator"

INSTANCE: dict[str, Any] = {
    "Node": {"Node": "prom-rio-01", "Meta": {"site": "rio", "role": "prom"}, "Datacenter": "dc1"},
    "Service": {
        "ID": "web-1",
        "Service": "web",
        "Tags": ["exporter", "linux"],
        "Port": 9100,
        "Meta": {},
        "Connect": {},
        "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}},
    },
    "Checks": [
        {"CheckID": "serfHealth", "Status": "passing", "ServiceTags": []},
        {"CheckID": "web-http", "Status": "critical", "ServiceTags": ["exporter"]},
    ],
}


def keeps(expression: str, item: Field = CHECK_SERVICE_NODE, data: Any = None) -> bool:
    """Whether ``expression`` keeps ``data`` (the sample instance by default)."""
    return compile_filter(expression, item)(INSTANCE if data is None else data)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('Service.Service == "web"', True),
        ("Service.Service == web", True),
        ("Service.Service != web", False),
        ("Service.Port == 9100", True),
        ('Service.Port == "0x238c"', True),
        ("Service.Port != 9100", False),
        ('"linux" in Service.Tags', True),
        ('Service.Tags contains "windows"', False),
        ('Service.Tags not contains "windows"', True),
        ('"rio" in Node.Node', True),
        ('Node.Node contains ""', True),
        ('"site" in Node.Meta', True),
        ('"zone" not in Node.Meta', True),
        ('Node.Meta.site == "rio"', True),
        ("Node.Meta.zone == rio", False),
        ("Node.Meta.zone != rio", True),
        ('"a" not in Node.Meta.zone', True),
        ('"a" in Node.Meta.zone', False),
        ("Node.Meta.zone matches x", True),
        ('Node.Node matches "^prom-(rio|recife)-\\\\d+$"', True),
        ('Node.Node not matches "recife"', True),
        ("Checks.Status == critical", True),
        ("Checks.Status == warning", False),
        ("Checks.Status != passing", True),
        ('"exporter" in Checks.ServiceTags', True),
        ("Checks.ServiceTags is empty", True),
        ("Checks is not empty", True),
        ("Service.Meta is empty", True),
        ("Service.Kind == ``", True),
        ("Service.EnableTagOverride == false", True),
        ("Service.Weights.Passing == 0", True),
        ("Service.Connect.Native == f", True),
        ("Service.TaggedAddresses.wan.Port == 443", False),
        ("Service.Proxy.Upstreams is empty", True),
        ("Service.Proxy.Upstreams.DestinationName == db", False),
        ("Service.Proxy.Upstreams.DestinationName != db", False),
        ('not (Service.Port == 1 or Node.Meta.site == "x") and Checks is not empty', True),
    ],
)
def test_evaluation_follows_go_bexpr(expression: str, expected: bool) -> None:
    """Operators, maps, lists of structs, zero values and boolean logic evaluate as in go-bexpr."""
    assert keeps(expression) is expected


@pytest.mark.parametrize(
    ("item", "expression", "message"),
    [
        (HEALTH_CHECK, "Nope == 1", 'Selector "Nope" is not valid'),
        (HEALTH_CHECK, "CheckId == x", 'Selector "CheckId" is not valid'),
        (HEALTH_CHECK, "Definition.HTTP == x", 'Selector "Definition" is not valid'),
        (HEALTH_CHECK, "CreateIndex == 1", 'Selector "CreateIndex" is not valid'),
        (NODE, "Meta.site.deeper == x", 'Selector "Meta.site.deeper" is not valid'),
        (NODE_INFO, "Datacenter == dc1", 'Selector "Datacenter" is not valid'),
        (NODE_SERVICE, "Proxy.Config.x == 1", 'Selector "Proxy.Config" is not valid'),
        (SERVICE_NODE, "ServiceLocality is empty", 'Selector "ServiceLocality" is not valid'),
        (HEALTH_CHECK, "Status is empty", f'{OPERATOR} "Is Empty" for selector "Status"'),
        (HEALTH_CHECK, "ServiceTags == x", f'{OPERATOR} "Equal" for selector "ServiceTags"'),
        (CHECK_SERVICE_NODE, "Service == x", f'{OPERATOR} "Equal" for selector "Service"'),
        (NODE_SERVICE, '"1" in Port', f'{OPERATOR} "In" for selector "Port"'),
        (
            NODE_SERVICE,
            "Port == nine",
            'Failed to coerce value "nine" for selector "Port": '
            'strconv.ParseInt: parsing "nine": invalid syntax',
        ),
        (
            NODE_SERVICE,
            "EnableTagOverride == yes",
            'Failed to coerce value "yes" for selector "EnableTagOverride": '
            'strconv.ParseBool: parsing "yes": invalid syntax',
        ),
        (HEALTH_CHECK, "Node ==", "1:8 (7): no match found, expected: "),
    ],
)
def test_refusals_carry_go_bexpr_messages(item: Field, expression: str, message: str) -> None:
    """Invalid selectors, operators and values are refused at creation with go-bexpr's text."""
    with pytest.raises(BadFilter) as caught:
        compile_filter(expression, item)
    assert str(caught.value).startswith(PREFIX + message)


def test_a_bad_regular_expression_is_refused_at_creation() -> None:
    """``matches`` compiles its pattern when the filter is created."""
    with pytest.raises(BadFilter, match=r"^Failed to create .*: Failed to compile regular expr"):
        compile_filter('Node matches "("', HEALTH_CHECK)


def test_validation_runs_left_to_right() -> None:
    """With two bad selectors the first one is reported, as go-bexpr's walk does."""
    with pytest.raises(BadFilter, match='"First" is not valid'):
        compile_filter("First == 1 or Second == 2", HEALTH_CHECK)


@pytest.mark.parametrize(
    ("text", "value"),
    [("42", 42), ("-7", -7), ("+7", 7), ("0x1F", 31), ("017", 15), ("0b101", 5), ("0o17", 15)],
)
def test_go_parse_int_accepts_go_literals(text: str, value: int) -> None:
    """``strconv.ParseInt(s, 0, 64)`` reads base prefixes and leading-zero octal."""
    assert go_parse_int(text) == value


@pytest.mark.parametrize("text", ["", "1.5", " 1", "08", "1_000", "0x", "--1", "9e3"])
def test_go_parse_int_rejects_what_go_rejects(text: str) -> None:
    """Malformed integers fail with Go's NumError text."""
    with pytest.raises(ValueError, match="invalid syntax"):
        go_parse_int(text)


def test_go_parse_int_range_and_bools() -> None:
    """Out-of-range integers and non-boolean words fail as Go's strconv does."""
    with pytest.raises(ValueError, match="value out of range"):
        go_parse_int(str(2**63))
    assert [go_parse_bool(text) for text in ("1", "T", "True", "0", "f", "FALSE")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
