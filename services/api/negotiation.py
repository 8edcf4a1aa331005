"""HTTP content negotiation of the API: conditional requests and gzip."""

GZIP_MIN_BYTES = 1024
"""Smaller bodies are sent as they are: compressing them saves less than it costs."""


def etag_matches(etag: str, if_none_match: str) -> bool:
    """Weak comparison of ``If-None-Match`` against a strong ETag (RFC 9110 13.1.2)."""
    tags = (t.strip() for t in if_none_match.split(","))
    return any(t == "*" or t.removeprefix("W/") == etag for t in tags)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Tell whether ``Accept-Encoding`` allows gzip, by name or ``*`` (RFC 9110 12.5.3)."""
    qualities: dict[str, float] = {}
    for item in (accept_encoding or "").split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        qualities.setdefault(coding.lower(), quality)
    for coding in ("gzip", "x-gzip", "*"):
        if coding in qualities:
            return qualities[coding] > 0
    return False
