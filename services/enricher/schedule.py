"""When the enricher reads Consul whole, and why: pending reasons, back-off, batched requests."""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from services.backoff import next_backoff
from services.enricher.planner import ResyncReason

RESYNC_RETRY_MIN_SECONDS = 0.5
RESYNC_RETRY_MAX_SECONDS = 30.0
"""Bounds of the back-off between tries of a resync that keeps failing."""

RESYNC_REQUEST_MIN_INTERVAL_SECONDS = 1.0
"""Requested resyncs start at most this often; the requests in between share the next one."""

RECHECK_MIN_SECONDS = 2.0
RECHECK_MAX_SECONDS = 60.0
"""Bounds of the back-off between whole reads while a list answer stays refused or filtered."""

READ_RETRY_MAX_SECONDS = 30.0
"""Longest pause between tries of Consul reads that keep failing."""

JITTER_FRACTION = 0.2
"""A retry pause is spread this much either way."""

Clock = Callable[[], float]
Message = TypeVar("Message")


@dataclass
class ResyncSchedule:
    """The one pending resync (the first reason wins) and when it may be tried next."""

    clock: Clock = time.monotonic
    pending: ResyncReason | None = ResyncReason.START
    """Every enricher starts by reading Consul whole."""
    _delay: float = 0.0
    _retry_at: float = 0.0
    _recheck_delay: float = 0.0
    _recheck_at: float = 0.0

    def need(self, reason: ResyncReason) -> None:
        """Ask for a resync; one already pending keeps its reason."""
        self.pending = self.pending or reason

    def take_due(self) -> ResyncReason | None:
        """The pending reason once its retry time has come (it is then no longer pending)."""
        reason = self.pending
        if reason is None or self.clock() < self._retry_at:
            return None
        self.pending = None
        return reason

    def failed(self, reason: ResyncReason) -> float:
        """Keep the resync pending and put its next try off, doubling; return the delay."""
        self.need(reason)
        self._delay = next_backoff(self._delay, RESYNC_RETRY_MIN_SECONDS, RESYNC_RETRY_MAX_SECONDS)
        self._retry_at = self.clock() + self._delay
        return self._delay

    def succeeded(self) -> None:
        """A resync went through: the next failure starts the back-off afresh."""
        self._delay = 0.0

    def seconds_to_retry(self) -> float:
        """How long until the pending resync may be tried (a short minimum)."""
        return max(self._retry_at - self.clock(), 0.05)

    def recheck(self, lists_degraded: bool) -> None:
        """While a list answer stays refused, read whole again, less and less often.

        A token whose rights come back moves no Consul index, so no watch fires: only a read
        can tell that the lists are whole again.
        """
        if not lists_degraded:
            self._recheck_delay = 0.0
            return
        now = self.clock()
        if now < self._recheck_at:
            return
        self._recheck_delay = next_backoff(
            self._recheck_delay, RECHECK_MIN_SECONDS, RECHECK_MAX_SECONDS
        )
        self._recheck_at = now + self._recheck_delay
        self.need(ResyncReason.DEGRADED_ANSWER)


@dataclass
class RequestBatch(Generic[Message]):
    """Resync requests waiting for a resync that covers them, keyed by request id.

    Requests that arrive while one runs, or within the interval after it started, wait for
    the next: a burst of flushes costs two resyncs, not one each.
    """

    clock: Clock = time.monotonic
    waiting: dict[str, Message] = field(default_factory=dict)
    _next_at: float = 0.0

    def add(self, request_id: str, message: Message) -> None:
        """Keep a request until a resync covers it (a redelivery collapses with it)."""
        self.waiting.setdefault(request_id, message)

    def take_due(self) -> dict[str, Message]:
        """The requests one resync now serves, if the interval since the last one has passed."""
        if not self.waiting or self.clock() < self._next_at:
            return {}
        taken, self.waiting = self.waiting, {}
        self._next_at = self.clock() + RESYNC_REQUEST_MIN_INTERVAL_SECONDS
        return taken

    def put_back(self, taken: dict[str, Message]) -> None:
        """Requests whose resync failed wait for the next one."""
        for request_id, message in taken.items():
            self.add(request_id, message)


@dataclass
class RetryPacing:
    """When failed reads are tried again: after ``first`` seconds, then less and less often.

    The pause doubles up to ``READ_RETRY_MAX_SECONDS`` while they keep failing, spread by
    ``JITTER_FRACTION`` so that a fleet does not retry in step; a success resets it.
    """

    first: float
    clock: Clock = time.monotonic
    jitter: Callable[[], float] = random.random
    _delay: float = 0.0
    _next_at: float = 0.0

    def due(self) -> bool:
        """Tell whether the next try may run now."""
        return self.clock() >= self._next_at

    def tried(self, still_failing: bool) -> None:
        """Record a try: a failure puts the next one further off, a success resets the pace."""
        if not still_failing:
            self._delay = 0.0
            self._next_at = 0.0
            return
        self._delay = next_backoff(self._delay, self.first, READ_RETRY_MAX_SECONDS)
        spread = 1 - JITTER_FRACTION + 2 * JITTER_FRACTION * self.jitter()
        self._next_at = self.clock() + self._delay * spread
