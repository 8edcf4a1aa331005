"""Consul query options, blocking-wait rules and the context of one routed request."""

import asyncio
import random
from dataclasses import dataclass
from typing import Final

from devstack.consul_double.durations import parse_duration
from devstack.consul_double.errors import BadDuration, HttpError
from devstack.consul_double.protocol import Reply, Request

DEFAULT_WAIT_SECONDS = 300.0
"""Blocking wait when ``index`` is given without ``wait`` (Consul: 5 minutes)."""

MAX_WAIT_SECONDS = 600.0
"""Upper bound of a blocking wait (Consul: 10 minutes)."""

JITTER_FRACTION = 16
"""Consul adds up to wait/16 of random jitter to a blocking wait."""


class Cut:
    """Outcome of a blocking query whose connection must be dropped without an answer."""


class Gone:
    """Outcome of a request whose client disconnected before the answer."""


CUT: Final = Cut()
GONE: Final = Gone()
Outcome = Reply | Cut | Gone


def cap_wait(wait: float | None) -> float:
    """The wait Consul applies: the default when unset or zero, capped at 10 minutes."""
    if wait is None or wait <= 0:
        return DEFAULT_WAIT_SECONDS
    return min(wait, MAX_WAIT_SECONDS)


def blocking_timeout(wait: float | None, *, jitter: bool = True) -> float:
    """Capped wait plus Consul's random jitter of up to wait/16."""
    capped = cap_wait(wait)
    return capped + (random.uniform(0, capped / JITTER_FRACTION) if jitter else 0.0)


@dataclass(frozen=True)
class QueryOptions:
    """Consul's common query parameters."""

    dc: str | None
    stale: bool
    consistent: bool
    index: int
    wait: float | None
    pretty: bool

    @classmethod
    def parse(cls, request: Request) -> "QueryOptions":
        """Parse ``dc``, ``stale``, ``consistent``, ``index``, ``wait`` and ``pretty``."""
        stale, consistent = request.has("stale"), request.has("consistent")
        if stale and consistent:
            raise HttpError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
        try:
            index = int(request.query.get("index") or 0)
        except ValueError:
            raise HttpError(400, "Invalid index") from None
        if index < 0:
            raise HttpError(400, "Invalid index")
        wait_text = request.query.get("wait")
        try:
            wait = parse_duration(wait_text) if wait_text else None
        except BadDuration:
            raise HttpError(400, "Invalid wait time") from None
        return cls(
            request.query.get("dc") or None, stale, consistent, index, wait, request.has("pretty")
        )

    @property
    def level(self) -> str:
        """Value of X-Consul-Effective-Consistency."""
        return "stale" if self.stale else "consistent" if self.consistent else "leader"


@dataclass
class Call:
    """One routed request with its path parameters and a future set when the client leaves."""

    request: Request
    params: dict[str, str]
    disconnected: "asyncio.Future[None]"
