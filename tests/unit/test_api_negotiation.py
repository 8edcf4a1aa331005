"""Conditional requests and gzip negotiation of the API."""

import pytest

from services.api.negotiation import accepts_gzip, etag_matches

TAG = '"0123abcd"'


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (TAG, True),
        ("W/" + TAG, True),
        ('"other", ' + TAG, True),
        ('"other" ,W/' + TAG, True),
        ("*", True),
        ('"other"', False),
        ('"0123abc"', False),
        ("", False),
        ("0123abcd", False),
    ],
)
def test_if_none_match_uses_weak_comparison(header: str, matches: bool) -> None:
    """A weak or listed tag matches; a different or unquoted one does not."""
    assert etag_matches(TAG, header) is matches


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("GZIP", True),
        ("deflate, gzip;q=0.5, br", True),
        ("x-gzip", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("gzip;q=bad", False),
        ("br, deflate", False),
        ("identity", False),
        ("gzip;Q=1", True),
        ("gzip;q=0.5;level=1", True),
        ("*", True),
        ("*;q=0", False),
        ("gzip;q=0, *", False),
        ("br, *;q=0.1", True),
    ],
)
def test_gzip_is_used_only_when_accepted(header: str | None, accepted: bool) -> None:
    """``Accept-Encoding`` allows gzip when listed with a non-zero quality."""
    assert accepts_gzip(header) is accepted
