"""Go-style duration strings (``100ms``, ``10s``, ``1m30s``) as used by Consul query parameters."""

import re

from devstack.consul_double.errors import BadDuration

_UNITS_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Parse a Go duration such as ``1m30s`` into seconds; a bare ``0`` is accepted like Go does."""
    raw = text.strip()
    if raw in ("0", "+0", "-0"):
        return 0.0
    sign = 1.0
    if raw[:1] in ("+", "-"):
        sign = -1.0 if raw[0] == "-" else 1.0
        raw = raw[1:]
    if not raw:
        raise BadDuration(f"invalid duration {text!r}")
    total = 0.0
    position = 0
    while position < len(raw):
        match = _PART.match(raw, position)
        if match is None:
            raise BadDuration(f"invalid duration {text!r}")
        total += float(match.group(1)) * _UNITS_SECONDS[match.group(2)]
        position = match.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """Render seconds as a compact Go-style duration (``250ms``, ``10s``)."""
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{seconds}s"
