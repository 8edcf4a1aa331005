"""Query filters of the API that need more than a type: parsed, bounded, with a named error."""

import re
from collections.abc import Mapping, Sequence

from contracts.views import MAX_NODE_META_KEY_LENGTH, MAX_NODE_META_VALUE_LENGTH

MAX_META_FILTERS = 16
"""``?meta=`` filters accepted in one request."""

META_KEY = re.compile(r"[A-Za-z0-9_-]+")
"""The characters Consul allows in a node meta key: any other key can match no node."""

MetaFilter = tuple[tuple[str, str], ...]
"""``(key, value)`` pairs a node's meta must all hold, sorted and without repeats."""


class BadFilter(ValueError):
    """A query filter is malformed or beyond its limits."""


def parse_meta_filters(values: Sequence[str]) -> MetaFilter:
    """Parse repeated ``?meta=key:value`` into pairs; raise ``BadFilter`` on malformed input."""
    if len(values) > MAX_META_FILTERS:
        raise BadFilter(f"at most {MAX_META_FILTERS} meta filters; got {len(values)}")
    pairs: set[tuple[str, str]] = set()
    for raw in values:
        key, colon, value = raw.partition(":")
        if not colon:
            raise BadFilter(f"meta filter {raw[:40]!r} is not key:value")
        if not 0 < len(key) <= MAX_NODE_META_KEY_LENGTH or not META_KEY.fullmatch(key):
            raise BadFilter(
                f"meta key {key[:40]!r} is not 1 to {MAX_NODE_META_KEY_LENGTH} letters, "
                "digits, '_' or '-'"
            )
        if len(value) > MAX_NODE_META_VALUE_LENGTH:
            raise BadFilter(
                f"meta value of {key!r} is {len(value)} characters; "
                f"at most {MAX_NODE_META_VALUE_LENGTH}"
            )
        pairs.add((key, value))
    return tuple(sorted(pairs))


def meta_matches(meta: Mapping[str, str], wanted: MetaFilter) -> bool:
    """Tell whether ``meta`` holds every wanted pair."""
    return all(key in meta and meta[key] == value for key, value in wanted)
