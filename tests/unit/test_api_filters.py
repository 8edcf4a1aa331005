"""The ``?meta=key:value`` filter: parsing, its limits and matching node meta."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.views import MAX_NODE_META_KEY_LENGTH, MAX_NODE_META_VALUE_LENGTH
from services.api.filters import MAX_META_FILTERS, BadFilter, meta_matches, parse_meta_filters


def test_pairs_are_split_at_the_first_colon_sorted_and_deduplicated() -> None:
    """``key:value`` splits once (values may hold colons); repeats collapse."""
    parsed = parse_meta_filters(["site:palmas", "url:http://x:80", "site:palmas", "empty:"])
    assert parsed == (("empty", ""), ("site", "palmas"), ("url", "http://x:80"))


def test_no_filter_is_an_empty_tuple() -> None:
    """Without ``?meta=`` nothing is filtered."""
    assert parse_meta_filters([]) == ()


@pytest.mark.parametrize(
    "raw",
    [
        "site",
        ":palmas",
        "si te:palmas",
        "site.code:palmas",
        "k" * (MAX_NODE_META_KEY_LENGTH + 1) + ":v",
        "k:" + "v" * (MAX_NODE_META_VALUE_LENGTH + 1),
    ],
    ids=["no-colon", "empty-key", "space", "dot", "long-key", "long-value"],
)
def test_malformed_filters_are_refused(raw: str) -> None:
    """A filter without a colon, with a key Consul cannot hold, or beyond the limits is refused."""
    with pytest.raises(BadFilter):
        parse_meta_filters([raw])


def test_filters_at_the_limits_are_accepted_and_one_more_is_refused() -> None:
    """The longest key and value pass, and so do MAX_META_FILTERS filters; one more does not."""
    longest = "k" * MAX_NODE_META_KEY_LENGTH + ":" + "v" * MAX_NODE_META_VALUE_LENGTH
    assert len(parse_meta_filters([longest])) == 1
    many = [f"k{i}:v" for i in range(MAX_META_FILTERS)]
    assert len(parse_meta_filters(many)) == MAX_META_FILTERS
    with pytest.raises(BadFilter, match="at most"):
        parse_meta_filters([*many, "one:more"])


def test_every_pair_must_match() -> None:
    """A node matches when its meta holds each wanted pair, exactly."""
    meta = {"site": "palmas", "os": "linux", "empty": ""}
    assert meta_matches(meta, ())
    assert meta_matches(meta, (("os", "linux"), ("site", "palmas")))
    assert meta_matches(meta, (("empty", ""),))
    assert not meta_matches(meta, (("os", "linux"), ("site", "rio")))
    assert not meta_matches(meta, (("rack", ""),))
    assert not meta_matches(meta, (("os", "Linux"),))


@given(values=st.lists(st.text(max_size=80), max_size=MAX_META_FILTERS))
@settings(max_examples=200, deadline=None)
def test_parsing_raises_only_bad_filter(values: list[str]) -> None:
    """Any query text parses to bounded pairs or raises BadFilter, nothing else."""
    try:
        parsed = parse_meta_filters(values)
    except BadFilter:
        return
    assert all(0 < len(key) <= MAX_NODE_META_KEY_LENGTH for key, _ in parsed)
    assert all(f"{key}:{value}" in values for key, value in parsed)
