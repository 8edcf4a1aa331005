"""Injected faults (latency, 5xx answers) and the request counters tests read back."""

from collections import Counter
from dataclasses import dataclass
from typing import Any

INTERNAL_REFUSALS = (403, 404)
"""How a Consul refuses its internal UI endpoints: a token without the rights, or no such path."""


@dataclass
class ErrorRule:
    """Answer ``status`` for the next ``remaining`` requests (``None``: until cleared)."""

    status: int
    remaining: int | None


class Faults:
    """Latency and error injection rules, per server or for all servers."""

    def __init__(self) -> None:
        """Start without faults."""
        self._latency: dict[tuple[int | None, str | None], float] = {}
        self._errors: dict[int | None, ErrorRule] = {}
        self.acl_filtered = False
        """The token lost its read rights: list reads answer empty, marked as ACL-filtered."""
        self.internal_endpoints: int | None = None
        """Status every ``/v1/internal/`` request gets instead of its answer (``None``: served)."""

    def set_latency(
        self, seconds: float, *, server: int | None = None, path_prefix: str | None = None
    ) -> None:
        """Delay matching requests by ``seconds`` (0 removes the rule)."""
        key = (server, path_prefix)
        if seconds > 0:
            self._latency[key] = seconds
        else:
            self._latency.pop(key, None)

    def latency_for(self, server: int, path: str) -> float:
        """Largest delay of the rules matching a request to ``server`` for ``path``."""
        return max(
            (
                seconds
                for (rule_server, prefix), seconds in self._latency.items()
                if rule_server in (None, server) and (prefix is None or path.startswith(prefix))
            ),
            default=0.0,
        )

    def fail_requests(
        self, status: int = 500, count: int | None = None, server: int | None = None
    ) -> None:
        """Answer ``status`` for the next ``count`` requests (``None``: until cleared)."""
        if not 500 <= status <= 599:
            raise ValueError(f"status must be a 5xx code, got {status}")
        if count is not None and count <= 0:
            self._errors.pop(server, None)
            return
        self._errors[server] = ErrorRule(status, count)

    def take_error(self, server: int) -> int | None:
        """Status to inject for a request to ``server`` (consuming one from its rule), if any."""
        for key in (server, None):
            rule = self._errors.get(key)
            if rule is None:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    del self._errors[key]
            return rule.status
        return None

    def refuse_internal_endpoints(self, status: int | None) -> None:
        """Answer ``/v1/internal/`` requests 403 or 404 from now on (``None``: serve them again)."""
        if status is not None and status not in INTERNAL_REFUSALS:
            raise ValueError(f"status must be 403, 404 or null, got {status}")
        self.internal_endpoints = status

    def clear(self) -> None:
        """Remove every latency and error rule, the ACL filtering and the internal refusal."""
        self._latency.clear()
        self._errors.clear()
        self.acl_filtered = False
        self.internal_endpoints = None

    def to_json(self) -> dict[str, Any]:
        """Active rules as plain JSON."""
        return {
            "latency": [
                {"server": server, "path_prefix": prefix, "seconds": seconds}
                for (server, prefix), seconds in self._latency.items()
            ],
            "errors": [
                {"server": server, "status": rule.status, "remaining": rule.remaining}
                for server, rule in self._errors.items()
            ],
            "acl_filtered": self.acl_filtered,
            "internal_endpoints": self.internal_endpoints,
        }


class Counters:
    """Requests per (server, endpoint template, method) and high-water marks of concurrency."""

    def __init__(self) -> None:
        """Start with every count at zero."""
        self._counts: Counter[tuple[int, str, str]] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._max_by_endpoint: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0

    def started(self, server: int, endpoint: str, method: str) -> None:
        """Count a request that has just arrived."""
        self._counts[(server, endpoint, method)] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self._in_flight[endpoint] += 1
        self._max_by_endpoint[endpoint] = max(
            self._max_by_endpoint[endpoint], self._in_flight[endpoint]
        )

    def finished(self, endpoint: str) -> None:
        """Mark a request as answered (or abandoned by its client)."""
        self.in_flight -= 1
        self._in_flight[endpoint] -= 1

    def total(
        self, endpoint: str | None = None, server: int | None = None, method: str | None = None
    ) -> int:
        """Number of requests, optionally only for one endpoint template, server or method."""
        return sum(
            count
            for (srv, ep, meth), count in self._counts.items()
            if (endpoint is None or ep == endpoint)
            and (server is None or srv == server)
            and (method is None or meth == method)
        )

    def by_endpoint(self) -> dict[str, int]:
        """Requests per endpoint template, summed over servers and methods."""
        totals: Counter[str] = Counter()
        for (_, endpoint, _), count in self._counts.items():
            totals[endpoint] += count
        return dict(sorted(totals.items()))

    def by_server(self) -> dict[int, int]:
        """Requests per server index."""
        totals: Counter[int] = Counter()
        for (server, _, _), count in self._counts.items():
            totals[server] += count
        return dict(sorted(totals.items()))

    def max_in_flight_by_endpoint(self) -> dict[str, int]:
        """High-water mark of concurrent requests per endpoint template."""
        return dict(sorted(self._max_by_endpoint.items()))

    def reset(self) -> None:
        """Zero the counts; high-water marks restart from the requests still in flight."""
        self._counts.clear()
        self.max_in_flight = self.in_flight
        self._max_by_endpoint = Counter({k: v for k, v in self._in_flight.items() if v > 0})

    def to_json(self) -> dict[str, Any]:
        """Counts and high-water marks as plain JSON."""
        return {
            "total": self.total(),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "by_endpoint": self.by_endpoint(),
            "by_server": {str(k): v for k, v in self.by_server().items()},
            "max_in_flight_by_endpoint": self.max_in_flight_by_endpoint(),
            "requests": [
                {"server": server, "endpoint": endpoint, "method": method, "count": count}
                for (server, endpoint, method), count in sorted(self._counts.items())
            ],
        }
