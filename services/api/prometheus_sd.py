"""Prometheus HTTP service discovery: the view's service instances as ``http_sd_configs`` groups."""

import re
from collections.abc import Iterable
from typing import Any

from contracts.views import NodeView

LABEL_PREFIX = "__meta_nodeview_"
"""Prefix of every discovered label: Prometheus drops ``__meta_*`` after relabeling."""

TAG_SEPARATOR = ","
"""Joins an instance's tags, with one before and after (as Prometheus' ``consul_sd`` does), so a
relabel regex such as ``.*,prod,.*`` needs no case for the first or last tag."""

_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def sanitize_label_name(name: str) -> str:
    """A label name part from any text: each character Prometheus refuses becomes ``_``."""
    return _INVALID_LABEL_CHARS.sub("_", name)


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _prefixed(kind: str, pairs: dict[str, str]) -> dict[str, str]:
    """Labels ``__meta_nodeview_<kind>_<key>``; of keys that sanitize alike, the first wins."""
    labels: dict[str, str] = {}
    for key in sorted(pairs):
        labels.setdefault(f"{LABEL_PREFIX}{kind}_{sanitize_label_name(key)}", pairs[key])
    return labels


def _node_labels(view: NodeView) -> dict[str, str]:
    """The labels every instance of one node shares."""
    return {
        f"{LABEL_PREFIX}node": view.node,
        f"{LABEL_PREFIX}node_id": view.id,
        f"{LABEL_PREFIX}address": view.addr,
        f"{LABEL_PREFIX}datacenter": view.datacenter,
        f"{LABEL_PREFIX}site": view.site_name,
        f"{LABEL_PREFIX}site_code": view.site_code or "",
        f"{LABEL_PREFIX}status": view.status,
        **_prefixed("node_meta", view.meta),
        **_prefixed("tagged_address", view.tagged_addresses),
    }


def in_site(view: NodeView, site: str | None) -> bool:
    """Tell whether a node is in ``site`` (its name or code); ``None`` keeps every node."""
    return site is None or site in (view.site_name, view.site_code)


def node_groups(view: NodeView) -> list[tuple[str, dict[str, Any]]]:
    """One node's target groups, one per service instance, each with its service name, sorted.

    The address is the instance's own when set, else its node's. An instance without a port
    (0), or without any address, cannot be scraped and is left out.
    """
    groups: list[tuple[str, dict[str, Any]]] = []
    shared: dict[str, str] | None = None
    for service_id, instance in sorted(view.services.items()):
        host = instance.address or view.addr
        if not host or instance.port <= 0:
            continue
        shared = shared if shared is not None else _node_labels(view)
        tags = TAG_SEPARATOR + TAG_SEPARATOR.join(instance.tags) + TAG_SEPARATOR
        labels = {
            **shared,
            f"{LABEL_PREFIX}service": instance.name,
            f"{LABEL_PREFIX}service_id": service_id,
            f"{LABEL_PREFIX}service_address": instance.address,
            f"{LABEL_PREFIX}service_port": str(instance.port),
            f"{LABEL_PREFIX}tags": tags,
        }
        group = {"targets": [host_port(host, instance.port)], "labels": labels}
        groups.append((instance.name, group))
    return groups


def target_groups(
    views: Iterable[NodeView], *, service: str | None = None, site: str | None = None
) -> list[dict[str, Any]]:
    """The target groups of every node, by node name; ``service`` keeps one service name,
    ``site`` one site (by name or code)."""
    return [
        group
        for view in sorted(views, key=lambda v: v.node)
        if in_site(view, site)
        for name, group in node_groups(view)
        if service is None or name == service
    ]
