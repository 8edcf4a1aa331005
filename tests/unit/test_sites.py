"""The sites document: every accepted shape, address mapping, KV value decoding, bad input."""

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.enricher.sites import (
    MAX_SITES_DOCUMENT_BYTES,
    BadSitesDocument,
    Site,
    SitesMap,
    decode_kv_value,
    parse_sites,
)

SITES: list[dict[str, Any]] = [
    {
        "code": "palmas",
        "name": "Palmas (TO)",
        "is_default": True,
        "color": "blue",
        "prometheus_instance": "127.10.0.10",
        "prometheus_host": "127.10.0.10",
    },
    {
        "code": "rio",
        "name": "Rio de Janeiro (RJ)",
        "is_default": False,
        "color": "green",
        "prometheus_instance": "127.11.0.10",
        "prometheus_host": "127.11.0.10",
    },
    {
        "code": "recife",
        "name": "Recife (PE)",
        "is_default": False,
        "color": "orange",
        "prometheus_instance": "127.12.0.10",
        "prometheus_host": "127.12.0.10",
    },
]

SITES_KV_VALUE = (
    "ewogICJkYXRhIjogewogICAgInNpdGVzIjogWwogICAgICB7CiAgICAgICAgImNvZGUiOiAicGFsbWFzIiwKICAgICAg"
    "ICAibmFtZSI6ICJQYWxtYXMgKFRPKSIsCiAgICAgICAgImlzX2RlZmF1bHQiOiB0cnVlLAogICAgICAgICJjb2xvciI6"
    "ICJibHVlIiwKICAgICAgICAicHJvbWV0aGV1c19pbnN0YW5jZSI6ICIxMjcuMTAuMC4xMCIsCiAgICAgICAgInByb21l"
    "dGhldXNfaG9zdCI6ICIxMjcuMTAuMC4xMCIKICAgICAgfSwKICAgICAgewogICAgICAgICJjb2RlIjogInJpbyIsCiAg"
    "ICAgICAgIm5hbWUiOiAiUmlvIGRlIEphbmVpcm8gKFJKKSIsCiAgICAgICAgImlzX2RlZmF1bHQiOiBmYWxzZSwKICAg"
    "ICAgICAiY29sb3IiOiAiZ3JlZW4iLAogICAgICAgICJwcm9tZXRoZXVzX2luc3RhbmNlIjogIjEyNy4xMS4wLjEwIiwK"
    "ICAgICAgICAicHJvbWV0aGV1c19ob3N0IjogIjEyNy4xMS4wLjEwIgogICAgICB9LAogICAgICB7CiAgICAgICAgImNv"
    "ZGUiOiAicmVjaWZlIiwKICAgICAgICAibmFtZSI6ICJSZWNpZmUgKFBFKSIsCiAgICAgICAgImlzX2RlZmF1bHQiOiBm"
    "YWxzZSwKICAgICAgICAiY29sb3IiOiAib3JhbmdlIiwKICAgICAgICAicHJvbWV0aGV1c19pbnN0YW5jZSI6ICIxMjcu"
    "MTIuMC4xMCIsCiAgICAgICAgInByb21ldGhldXNfaG9zdCI6ICIxMjcuMTIuMC4xMCIKICAgICAgfQogICAgXQogIH0K"
    "fQ=="
)
"""``Value`` of ``GET /v1/kv/skills/eye/metadata/sites`` (a ``{data:{sites}}`` document)."""

SITES_KV_ENTRY: dict[str, Any] = {
    "LockIndex": 0,
    "Key": "skills/eye/metadata/sites",
    "Flags": 0,
    "Value": SITES_KV_VALUE,
    "CreateIndex": 22,
    "ModifyIndex": 22,
}

EXPECTED = {
    "127.10.0.10": Site(name="Palmas (TO)", code="palmas"),
    "127.11.0.10": Site(name="Rio de Janeiro (RJ)", code="rio"),
    "127.12.0.10": Site(name="Recife (PE)", code="recife"),
}


def _entry(raw: bytes) -> dict[str, Any]:
    return {"Key": "skills/eye/metadata/sites", "Value": base64.b64encode(raw).decode()}


@pytest.mark.parametrize(
    "document",
    [
        {"data": {"data": {"sites": SITES}}},
        {"data": {"sites": SITES}},
        {"sites": SITES},
        SITES,
    ],
    ids=["data.data.sites", "data.sites", "sites", "bare-list"],
)
def test_every_shape_of_the_old_backend_is_accepted(document: Any) -> None:
    """Each document shape the old backend read gives the same address → site map."""
    assert dict(parse_sites(document).by_addr) == EXPECTED


def test_the_real_kv_entry_decodes_to_the_sites() -> None:
    """The base64 Value Consul returns for the sites key decodes and maps all three sites."""
    sites = parse_sites(decode_kv_value(SITES_KV_ENTRY))
    assert sites.lookup("127.11.0.10") == Site(name="Rio de Janeiro (RJ)", code="rio")
    assert sites.lookup("127.0.1.1") is None


def test_prometheus_instance_alone_maps_the_site() -> None:
    """A site with only prometheus_instance is found by that address."""
    sites = parse_sites([{"code": "bsb", "name": "Brasilia", "prometheus_instance": "10.0.0.5"}])
    assert sites.lookup("10.0.0.5") == Site(name="Brasilia", code="bsb")


def test_prometheus_host_alone_maps_the_site() -> None:
    """A site with only prometheus_host is found by that address."""
    sites = parse_sites([{"code": "bsb", "name": "Brasilia", "prometheus_host": "10.0.0.6"}])
    assert sites.lookup("10.0.0.6") == Site(name="Brasilia", code="bsb")


def test_instance_and_host_may_name_two_addresses_of_one_site() -> None:
    """Both addresses of a site map to it when they differ."""
    sites = parse_sites(
        [
            {
                "code": "poa",
                "name": "Porto Alegre",
                "prometheus_instance": "10.1.0.1:9090",
                "prometheus_host": "10.1.0.2",
            }
        ]
    )
    assert sites.lookup("10.1.0.1") == sites.lookup("10.1.0.2") == Site("Porto Alegre", "poa")


@pytest.mark.parametrize(
    ("address", "lookup"),
    [
        ("127.10.0.10:9090", "127.10.0.10"),
        ("prom-palmas-01:9090", "prom-palmas-01"),
        ("127.10.0.10", "127.10.0.10"),
        ("fe80::1", "fe80::1"),
    ],
)
def test_a_port_suffix_is_dropped_but_ipv6_is_kept_whole(address: str, lookup: str) -> None:
    """host:port maps by host; an IPv6 address (several colons) is not cut."""
    sites = parse_sites([{"code": "x", "name": "X", "prometheus_instance": address}])
    assert sites.lookup(lookup) == Site(name="X", code="x")


def test_name_falls_back_to_code() -> None:
    """A site without a name (or with an empty one) is labelled by its code."""
    sites = parse_sites(
        [
            {"code": "rio", "prometheus_instance": "10.0.0.1"},
            {"code": "sp", "name": "", "prometheus_instance": "10.0.0.2"},
        ]
    )
    assert sites.lookup("10.0.0.1") == Site(name="rio", code="rio")
    assert sites.lookup("10.0.0.2") == Site(name="sp", code="sp")


def test_a_non_string_code_is_dropped_but_the_name_kept() -> None:
    """A numeric code does not become the site code; the name still maps."""
    sites = parse_sites([{"code": 12, "name": "Doze", "prometheus_instance": "10.0.0.12"}])
    assert sites.lookup("10.0.0.12") == Site(name="Doze", code=None)


@pytest.mark.parametrize(
    "item",
    [
        {"prometheus_instance": "10.0.0.1"},
        {"name": "", "code": "", "prometheus_instance": "10.0.0.1"},
        {"name": 5, "prometheus_instance": "10.0.0.1"},
        {"name": "Sem endereco"},
        {"name": "Vazio", "prometheus_instance": "", "prometheus_host": None},
        {"name": "Numero", "prometheus_instance": 1271000},
        "not-an-object",
        None,
    ],
)
def test_unusable_site_entries_are_skipped(item: Any) -> None:
    """Entries without a name/code or an address map nothing and do not fail the document."""
    sites = parse_sites([item, SITES[0]])
    assert dict(sites.by_addr) == {"127.10.0.10": EXPECTED["127.10.0.10"]}


def test_the_first_site_wins_an_address_mapped_twice() -> None:
    """When two sites claim one address, the first one in the document keeps it."""
    sites = parse_sites(
        [
            {"code": "a", "name": "A", "prometheus_instance": "10.0.0.1"},
            {"code": "b", "name": "B", "prometheus_host": "10.0.0.1"},
        ]
    )
    assert sites.lookup("10.0.0.1") == Site(name="A", code="a")


def test_an_empty_list_maps_nothing() -> None:
    """An empty sites list is a valid document that leaves every node unmapped."""
    assert parse_sites({"sites": []}).by_addr == {}
    assert SitesMap().lookup("127.10.0.10") is None


@pytest.mark.parametrize(
    "document",
    [
        None,
        "sites",
        42,
        {},
        {"sites": {"palmas": SITES[0]}},
        {"data": None},
        {"data": []},
        {"data": {"data": {"data": {"sites": SITES}}}},
        {"Sites": SITES},
    ],
)
def test_documents_without_a_sites_list_are_refused(document: Any) -> None:
    """A document with none of the accepted shapes raises BadSitesDocument."""
    with pytest.raises(BadSitesDocument):
        parse_sites(document)


def test_decode_kv_value_of_no_entry_is_none() -> None:
    """A missing key (no entry) decodes to None, not an error."""
    assert decode_kv_value(None) is None


@pytest.mark.parametrize(
    "entry",
    [
        {"Key": "skills/eye/metadata/sites", "Value": None},
        {"Key": "skills/eye/metadata/sites"},
        {"Key": "skills/eye/metadata/sites", "Value": 12},
        {"Key": "skills/eye/metadata/sites", "Value": "@@not base64@@"},
        {"Key": "skills/eye/metadata/sites", "Value": "abc"},
        [SITES_KV_ENTRY],
        "ewogIH0=",
    ],
    ids=["null", "missing", "number", "bad-alphabet", "bad-padding", "list", "string"],
)
def test_unusable_kv_entries_raise_bad_sites_document(entry: Any) -> None:
    """Entries with no, non-string or invalid base64 Value raise BadSitesDocument."""
    with pytest.raises(BadSitesDocument):
        decode_kv_value(entry)


@pytest.mark.parametrize(
    "raw",
    [b"", b"{not json", b"\xff\xfe\xfa", b"\xc3\x28", b'{"sites": [}'],
    ids=["empty", "broken", "non-utf8", "bad-utf8-sequence", "truncated"],
)
def test_values_that_are_not_json_raise_bad_sites_document(raw: bytes) -> None:
    """A base64 Value whose bytes are not UTF-8 JSON raises BadSitesDocument."""
    with pytest.raises(BadSitesDocument):
        decode_kv_value(_entry(raw))


def test_valid_base64_json_value_decodes() -> None:
    """A base64 JSON value decodes to the document it encodes."""
    document = {"sites": [{"code": "x", "name": "Xique-Xique", "prometheus_host": "10.9.9.9"}]}
    assert decode_kv_value(_entry(json.dumps(document).encode())) == document


def test_oversized_documents_are_refused() -> None:
    """A value larger than MAX_SITES_DOCUMENT_BYTES is refused before parsing."""
    raw = b" " * (MAX_SITES_DOCUMENT_BYTES + 1)
    with pytest.raises(BadSitesDocument, match="too large"):
        decode_kv_value(_entry(raw))


def test_a_huge_integer_in_the_value_is_a_bad_document() -> None:
    """A JSON value holding a 5000-digit integer is a BadSitesDocument, not a bare ValueError."""
    with pytest.raises(BadSitesDocument):
        decode_kv_value(_entry(b'{"sites": [], "n": ' + b"9" * 5000 + b"}"))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["sites", "data", "name", "code", "10.0.0.1:9090", "fe80::1"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["sites", "data", "name", "code", "prometheus_instance", "prometheus_host", "x"]
            )
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@given(document=json_values)
@settings(max_examples=200, deadline=None)
def test_parse_sites_only_ever_raises_bad_sites_document(document: Any) -> None:
    """On arbitrary JSON, parse_sites returns a map of string addresses or BadSitesDocument."""
    try:
        sites = parse_sites(document)
    except BadSitesDocument:
        return
    for addr, site in sites.by_addr.items():
        assert isinstance(addr, str)
        assert addr
        assert isinstance(site.name, str)
        assert site.name


@given(raw=st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_decode_kv_value_only_ever_raises_bad_sites_document(raw: bytes) -> None:
    """Arbitrary bytes behind a valid base64 Value decode or raise BadSitesDocument."""
    with contextlib.suppress(BadSitesDocument):
        decode_kv_value(_entry(raw))
