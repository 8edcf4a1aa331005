"""Parsing of the sites document (Consul KV) into an address → site map."""

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_SITES_DOCUMENT_BYTES = 4 * 1024 * 1024
"""Largest sites document accepted."""


class BadSitesDocument(ValueError):
    """The sites document is not JSON, or has none of the accepted shapes."""


@dataclass(frozen=True)
class Site:
    """One site: display name and code."""

    name: str
    code: str | None


@dataclass(frozen=True)
class SitesMap:
    """Node address → site, from the sites document."""

    by_addr: Mapping[str, Site] = field(default_factory=dict)

    def lookup(self, addr: str) -> Site | None:
        """Return the site of a node address, if the document maps it."""
        return self.by_addr.get(addr)


def _site_list(document: Any) -> list[Any]:
    """Find the list of sites in every shape the old backend accepted."""
    if isinstance(document, list):
        return document
    current = document
    for _ in range(3):
        if not isinstance(current, dict):
            break
        sites = current.get("sites")
        if isinstance(sites, list):
            return sites
        current = current.get("data")
    raise BadSitesDocument(
        "sites document has none of the shapes {data:{data:{sites}}}, {data:{sites}}, {sites}, [..]"
    )


def parse_sites(document: Any) -> SitesMap:
    """Map each site's ``prometheus_instance`` and ``prometheus_host`` address to the site."""
    by_addr: dict[str, Site] = {}
    for item in _site_list(document):
        if not isinstance(item, dict):
            continue
        name = item.get("name") or item.get("code")
        if not isinstance(name, str) or not name:
            continue
        code = item.get("code")
        site = Site(name=name, code=code if isinstance(code, str) else None)
        for field_name in ("prometheus_instance", "prometheus_host"):
            addr = item.get(field_name)
            if isinstance(addr, str) and addr:
                by_addr.setdefault(_strip_port(addr), site)
    return SitesMap(by_addr=by_addr)


def _strip_port(addr: str) -> str:
    """Drop a ``:port`` suffix from an IPv4 address or host name (IPv6 kept whole)."""
    if addr.count(":") == 1:
        return addr.split(":", 1)[0]
    return addr


def decode_kv_value(entry: Any) -> Any:
    """Decode the base64 JSON ``Value`` of a Consul KV entry object; ``None`` for no entry."""
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise BadSitesDocument("KV entry is not an object")
    value = entry.get("Value")
    if value is None:
        raise BadSitesDocument("KV entry has no value")
    if not isinstance(value, str):
        raise BadSitesDocument("KV entry Value is not a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadSitesDocument("KV entry Value is not valid base64") from exc
    if len(raw) > MAX_SITES_DOCUMENT_BYTES:
        raise BadSitesDocument("sites document is too large")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadSitesDocument("sites document is not valid JSON") from exc
