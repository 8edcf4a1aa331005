"""Consul's service summary, and what to do when a Consul does not let nodeview use it."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from services import metrics
from services.consul import UI_SERVICES, ConsulHTTPError
from services.enricher import reads
from services.enricher.inventory import ServiceSummary, parse_ui_services

log = logging.getLogger("nodeview.enricher")

INTERNAL_RETRY_SECONDS = 300.0
"""How long a refused internal endpoint is not asked again."""


@dataclass
class ServiceSummaries:
    """Reads ``/v1/internal/ui/services``; once Consul refuses it, leaves it alone a while.

    Refused means answered 403/404/405, or filtered by ACLs (a partial summary cannot say where
    instances moved). Each refusal is counted and logged once; the caller reads every name.
    """

    consul: reads.ConsulReads
    clock: Callable[[], float] = time.monotonic
    _refused_until: float = 0.0

    async def read(self) -> dict[str, ServiceSummary] | None:
        """The summary by name, or ``None`` while Consul refuses it.

        Other failures raise (``ConsulError``, ``BadConsulPayload``): the caller retries.
        """
        if self.clock() < self._refused_until:
            return None
        try:
            response = await self.consul.ui_services()
            return parse_ui_services(reads.unfiltered(response, "the service summaries"))
        except ConsulHTTPError as exc:
            if exc.status not in reads.REFUSED_STATUSES:
                raise
            self._refused(str(exc.status))
        except reads.AclFiltered:
            self._refused("acl_filtered")
        return None

    def _refused(self, status: str) -> None:
        metrics.CONSUL_INTERNAL_FALLBACK.labels(UI_SERVICES, status).inc()
        self._refused_until = self.clock() + INTERNAL_RETRY_SECONDS
        log.warning(
            "Consul refused its internal service summary; reading every service name instead",
            extra={
                "event": "enrich.internal_refused",
                "endpoint": UI_SERVICES,
                "status": status,
                "retry_in_s": INTERNAL_RETRY_SECONDS,
            },
        )
