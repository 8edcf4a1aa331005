"""The Consul reads of the enricher, each turning errors into a recorded failure, never a 0."""

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from services import metrics
from services.consul import (
    ConsulError,
    ConsulNotFound,
    ConsulResponse,
    error_type,
)
from services.enricher.inventory import (
    BadConsulPayload,
    NodeServices,
    parse_catalog_service,
    parse_node_services,
)

log = logging.getLogger("nodeview.enricher")

REFUSED_STATUSES = (403, 404, 405)
"""Answers of an endpoint this Consul does not let nodeview use (ACL, no such endpoint): the
enricher does without it (members: statuses from serfHealth; the summary: every name read)."""

PUBLIC_REASONS = {
    "timeout": "Consul did not answer in time",
    "unavailable": "no Consul server gave an answer",
    "acl_denied": "Consul refused the ACL token",
    "not_found": "Consul did not find it",
    "http_4xx": "Consul refused the read",
    "bad_response": "Consul's answer was not JSON",
    "bad_payload": "Consul's answer did not have the documented shape",
    "acl_filtered": "Consul's ACLs hid it from the token",
}
"""What a view's public ``error`` says per error type; Consul's own text (ACL accessor ids,
server addresses) goes to the logs only."""


class ConsulReads(Protocol):
    """The Consul reads the enricher makes (``ConsulClient`` is the one real adapter)."""

    @property
    def main_server(self) -> str:
        """The first configured server."""

    @property
    def active_server(self) -> str:
        """The server that answered last."""

    async def members(self) -> ConsulResponse:
        """``/v1/agent/members``."""

    async def catalog_nodes(self) -> ConsulResponse:
        """``/v1/catalog/nodes``."""

    async def catalog_services(self) -> ConsulResponse:
        """``/v1/catalog/services``."""

    async def serf_health(self) -> ConsulResponse:
        """``/v1/health/state/any`` filtered to ``serfHealth``."""

    async def kv_get(self, key: str) -> ConsulResponse:
        """One KV entry (``data`` is ``None`` when missing)."""

    async def ui_services(self) -> ConsulResponse:
        """``/v1/internal/ui/services``."""

    async def ui_nodes(self) -> ConsulResponse:
        """``/v1/internal/ui/nodes``."""

    async def node_services(self, node: str) -> ConsulResponse:
        """``/v1/catalog/node-services/<node>``."""

    async def catalog_service(self, name: str) -> ConsulResponse:
        """``/v1/catalog/service/<name>``."""


class AclFiltered(Exception):
    """Consul answered, but its ACLs left out what was asked: not an empty answer."""


def unfiltered(response: ConsulResponse, what: str) -> Any:
    """The data of an answer, or ``AclFiltered`` when Consul's ACLs left parts of it out."""
    if response.filtered_by_acls:
        raise AclFiltered(f"Consul's ACLs filtered the answer for {what}")
    return response.data


def error_kind(exc: Exception) -> str:
    """The error type of a failed read, as counted and shown."""
    if isinstance(exc, ConsulError):
        return error_type(exc)
    if isinstance(exc, AclFiltered):
        return "acl_filtered"
    return "bad_payload"


def public_reason(kind: str) -> str:
    """The reason of a failed read as served publicly: its type and a fixed description."""
    return f"{kind}: {PUBLIC_REASONS.get(kind, 'the read failed')}"


@dataclass(frozen=True)
class NodeRead:
    """Result of reading one node's services: the services, or why they could not be read."""

    node: str
    services: NodeServices | None
    error_type: str | None = None
    reason: str | None = None
    index: int | None = None

    @property
    def ok(self) -> bool:
        """Tell whether the services were read."""
        return self.services is not None


@dataclass(frozen=True)
class ServiceRead:
    """Result of reading one service's instances: node → instances, or why not."""

    name: str
    instances: dict[str, NodeServices] | None
    error_type: str | None = None
    reason: str | None = None
    index: int | None = None


async def read_node_services(consul: ConsulReads, node: str, addr: str) -> NodeRead:
    """Read one node's services; a failure is logged, counted and returned, not swallowed."""
    started = time.perf_counter()
    try:
        response = await consul.node_services(node)
        services = parse_node_services(unfiltered(response, f"node {node}"))
    except ConsulNotFound:
        return NodeRead(node=node, services={})
    except (ConsulError, BadConsulPayload, AclFiltered) as exc:
        kind = error_kind(exc)
        metrics.CONSUL_NODE_ENRICH_FAILURES.labels(node, kind).inc()
        log.warning(
            "node services read failed",
            extra={
                "event": "enrich.node_failed",
                "node": node,
                "addr": addr,
                "reason": str(exc),
                "error_type": kind,
            },
        )
        return NodeRead(node=node, services=None, error_type=kind, reason=public_reason(kind))
    finally:
        metrics.CONSUL_NODE_ENRICH_DURATION.observe(time.perf_counter() - started)
    return NodeRead(node=node, services=services, index=response.index)


async def read_service(consul: ConsulReads, name: str) -> ServiceRead:
    """Read every instance of one service name."""
    try:
        response = await consul.catalog_service(name)
        instances = parse_catalog_service(unfiltered(response, f"service {name}"))
    except (ConsulError, BadConsulPayload, AclFiltered) as exc:
        kind = error_kind(exc)
        log.warning(
            "service read failed",
            extra={
                "event": "enrich.service_failed",
                "service": name,
                "reason": str(exc),
                "error_type": kind,
            },
        )
        return ServiceRead(name=name, instances=None, error_type=kind, reason=public_reason(kind))
    return ServiceRead(name=name, instances=instances, index=response.index)


async def read_nodes(consul: ConsulReads, nodes: Iterable[tuple[str, str]]) -> list[NodeRead]:
    """Read several nodes' services; the client bounds how many run at once."""
    return list(await asyncio.gather(*(read_node_services(consul, n, a) for n, a in nodes)))


async def read_services(consul: ConsulReads, names: Iterable[str]) -> list[ServiceRead]:
    """Read several services' instances; the client bounds how many run at once."""
    return list(await asyncio.gather(*(read_service(consul, name) for name in names)))
