"""HTTP content negotiation of the API: conditional requests and gzip."""

GZIP_MIN_BYTES = 1024
"""Smaller bodies are sent as they are: compressing them saves less than it costs."""


def etag_matches(etag: str, if_none_match: str) -> bool:
    """Weak comparison of ``If-None-Match`` against a strong ETag (RFC 9110 13.1.2)."""
    tags = (t.strip() for t in if_none_match.split(","))
    return any(t == "*" or t.removeprefix("W/") == etag for t in tags)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Tell whether ``Accept-Encoding`` allows gzip (absent, or ``q=0``, means no)."""
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            q = params.strip().removeprefix("q=").strip()
            try:
                return float(q or "1") > 0
            except ValueError:
                return False
    return False
