"""Who a request comes from: the peer, or the client a trusted proxy says it forwards."""

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_FORWARDED_HOPS = 32
"""``X-Forwarded-For`` entries looked at, from the right; the rest is ignored."""


def parse_networks(value: str) -> tuple[Network, ...]:
    """Parse a comma-separated list of addresses or CIDR networks; ``ValueError`` if invalid."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False)
        for part in value.split(",")
        if part.strip()
    )


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The address a request comes from, for per-client limits and logs.

    ``X-Forwarded-For`` counts only when the peer itself is a trusted proxy: then the rightmost
    entry that is not a trusted proxy is the client (entries further left are the client's own
    claims). Without trusted proxies every client is its peer address.
    """
    client = peer or "unknown"
    if not forwarded_for or not _trusted(client, trusted):
        return client
    hops = [hop.strip() for hop in forwarded_for.split(",")][-MAX_FORWARDED_HOPS:]
    for hop in reversed(hops):
        if not hop:
            break
        client = hop
        if not _trusted(hop, trusted):
            break
    return client
