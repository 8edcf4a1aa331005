"""Client addresses behind proxies: X-Forwarded-For only from trusted proxies."""

import pytest

from services.api.clients import client_address, parse_networks

PROXIES = parse_networks("10.0.0.0/8, 127.0.0.1")


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    """A header from anyone is ignored: the peer address counts."""
    assert client_address("203.0.113.9", "198.51.100.1", ()) == "203.0.113.9"


def test_an_untrusted_peer_cannot_claim_another_address() -> None:
    """X-Forwarded-For from a peer that is not a trusted proxy is ignored."""
    assert client_address("203.0.113.9", "198.51.100.1", PROXIES) == "203.0.113.9"


def test_a_trusted_proxy_names_the_client() -> None:
    """Behind an ingress each user is its own client, not the ingress address."""
    assert client_address("10.1.2.3", "198.51.100.1", PROXIES) == "198.51.100.1"
    assert client_address("10.1.2.3", "198.51.100.2", PROXIES) == "198.51.100.2"


def test_the_rightmost_untrusted_hop_wins_over_client_claims() -> None:
    """Entries left of the first untrusted hop are the client's own claims and do not count."""
    header = "1.2.3.4, 198.51.100.7, 10.9.9.9"
    assert client_address("127.0.0.1", header, PROXIES) == "198.51.100.7"


def test_only_trusted_hops_fall_back_to_the_leftmost() -> None:
    """A chain of trusted proxies only: the leftmost entry is the client."""
    assert client_address("127.0.0.1", "10.0.0.5, 10.0.0.6", PROXIES) == "10.0.0.5"


def test_missing_peer_and_header_is_unknown() -> None:
    """No peer and no header: one shared bucket named unknown."""
    assert client_address(None, None, PROXIES) == "unknown"


def test_bad_networks_are_refused() -> None:
    """A malformed API_TRUSTED_PROXIES value is a configuration error."""
    with pytest.raises(ValueError, match="does not appear to be"):
        parse_networks("10.0.0.0/8, not-a-network")
