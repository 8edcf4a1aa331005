"""Consul's internal UI answers, and what to do when a Consul does not let nodeview use them."""

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from services import metrics
from services.consul import UI_NODES, UI_SERVICES, ConsulError, ConsulHTTPError, ConsulTimeout
from services.enricher import reads
from services.enricher.inventory import (
    BadConsulPayload,
    Inventory,
    NodeServices,
    ServiceSummary,
    parse_node_services,
    parse_ui_services,
)

log = logging.getLogger("nodeview.enricher")

T = TypeVar("T")

INTERNAL_RETRY_SECONDS = 300.0
"""How long a refused internal endpoint is not asked again."""

EVERY_NAME = "every service name"
"""What the enricher reads instead of a refused internal endpoint."""


@dataclass
class Refusals:
    """When each internal endpoint may be asked again after Consul refused it."""

    clock: Callable[[], float] = time.monotonic
    _until: dict[str, float] = field(default_factory=dict)

    def refused(self, endpoint: str) -> bool:
        """Tell whether ``endpoint`` was refused less than ``INTERNAL_RETRY_SECONDS`` ago."""
        return self.clock() < self._until.get(endpoint, 0.0)

    def refuse(self, endpoint: str, status: str, instead: str) -> None:
        """Leave ``endpoint`` alone a while; counted and logged once per refusal."""
        metrics.CONSUL_INTERNAL_FALLBACK.labels(endpoint, status).inc()
        self._until[endpoint] = self.clock() + INTERNAL_RETRY_SECONDS
        log.warning(
            "Consul refused an internal endpoint; reading the public ones instead",
            extra={
                "event": "enrich.internal_refused",
                "endpoint": endpoint,
                "status": status,
                "instead": instead,
                "retry_in_s": INTERNAL_RETRY_SECONDS,
            },
        )


async def _read_internal(
    refusals: Refusals, endpoint: str, instead: str, read: Callable[[], Awaitable[T]]
) -> T | None:
    """Run ``read`` unless ``endpoint`` is refused; a refusal (403/404/405, ACL-filtered) is
    recorded and gives ``None``; other failures raise for the caller to retry."""
    if refusals.refused(endpoint):
        return None
    try:
        return await read()
    except ConsulHTTPError as exc:
        if exc.status not in reads.REFUSED_STATUSES:
            raise
        refusals.refuse(endpoint, str(exc.status), instead)
    except reads.AclFiltered:
        refusals.refuse(endpoint, "acl_filtered", instead)
    return None


Summaries = dict[str, ServiceSummary] | None | ConsulError | BadConsulPayload
"""A summary read: by name, ``None`` while Consul refuses it, or the error that failed it."""


@dataclass
class ServiceSummaries:
    """Reads ``/v1/internal/ui/services``; once Consul refuses it, leaves it alone a while.

    Refused means answered 403/404/405, or filtered by ACLs (a partial summary cannot say where
    instances moved). Each refusal is counted and logged once; the caller reads every name.
    """

    consul: reads.ConsulReads
    refusals: Refusals

    async def read(self) -> dict[str, ServiceSummary] | None:
        """The summary by name, or ``None`` while Consul refuses it.

        Other failures raise (``ConsulError``, ``BadConsulPayload``): the caller retries.
        """

        async def read() -> dict[str, ServiceSummary]:
            response = await self.consul.ui_services()
            return parse_ui_services(reads.unfiltered(response, "the service summaries"))

        return await _read_internal(self.refusals, UI_SERVICES, EVERY_NAME, read)


@dataclass(frozen=True)
class NodeDump:
    """Every node's services from one ``/v1/internal/ui/nodes`` answer, and its index."""

    services: dict[str, NodeServices]
    index: int | None


def parse_ui_nodes(payload: Any) -> dict[str, NodeServices]:
    """Parse ``/v1/internal/ui/nodes`` into node → its service instances (peers' left out)."""
    if not isinstance(payload, list):
        raise BadConsulPayload("node dump payload is not a list")
    result: dict[str, NodeServices] = {}
    for item in payload:
        if not isinstance(item, dict) or not isinstance(item.get("Node"), str):
            raise BadConsulPayload("node dump entry needs a Node name")
        if item.get("PeerName"):
            continue
        result[item["Node"]] = parse_node_services(item)
    return result


@dataclass
class NodeDumps:
    """Reads ``/v1/internal/ui/nodes`` for a resync; refused, the caller reads every name."""

    consul: reads.ConsulReads
    refusals: Refusals

    async def read(self) -> NodeDump | None:
        """Every node's services, or ``None`` while Consul refuses the dump.

        Other failures raise (``ConsulError``, ``BadConsulPayload``).
        """

        async def read() -> NodeDump:
            response = await self.consul.ui_nodes()
            services = parse_ui_nodes(reads.unfiltered(response, "the node dump"))
            return NodeDump(services, response.index)

        try:
            return await _read_internal(self.refusals, UI_NODES, EVERY_NAME, read)
        except ConsulTimeout:
            # One answer holds the whole catalog: on a Consul too large or too busy to give it
            # in time, asking again at every resync would cost the timeout each time.
            self.refusals.refuse(UI_NODES, "timeout", EVERY_NAME)
            return None

    async def read_or_none(self) -> NodeDump | None:
        """``read``, or ``None`` when the dump fails: the caller then reads every name, whose
        reads record each failure where it belongs."""
        try:
            return await self.read()
        except (ConsulError, BadConsulPayload) as exc:
            log.warning(
                "node dump read failed; reading every service name instead",
                extra={
                    "event": "enrich.node_dump_failed",
                    "reason": str(exc),
                    "error_type": reads.error_kind(exc),
                },
            )
            return None


def apply_node_dump(inv: Inventory, dump: NodeDump) -> None:
    """Take every node's instances from the dump: each listed name is read, none failed."""
    for node, instances in dump.services.items():
        if instances:
            inv.services[node] = dict(instances)
    inv.service_failures.clear()
