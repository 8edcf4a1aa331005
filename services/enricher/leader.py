"""Active/standby election of enrichers through a JetStream KV key with a TTL."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import (
    BucketNotFoundError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)

from contracts import subjects
from services import bus

log = logging.getLogger("nodeview.enricher")


LEASE_SAFETY = 0.75
"""Share of the lock TTL this process writes in after its last successful refresh: the rest
covers clock drift and a standby that takes the expired lock at once."""


class LeadershipLost(Exception):
    """Another enricher holds the lock now; this one must stop acting."""


class Leadership:
    """Holds the enricher lock: acquire once, then refresh well inside the TTL."""

    def __init__(
        self,
        js: JetStreamContext,
        owner: str,
        ttl: float,
        replicas: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._js = js
        self._replicas = replicas
        self._owner = owner.encode()
        self._ttl = ttl
        self._revision: int | None = None
        self._clock = clock
        self._valid_until = 0.0

    def _lease_from(self, sent_at: float) -> None:
        """The lease runs from when the write that took or extended it was sent."""
        self._valid_until = sent_at + self._ttl * LEASE_SAFETY

    def may_write(self) -> bool:
        """Tell whether the lease is surely still ours (held, and not near its expiry)."""
        return self.held and self._clock() < self._valid_until

    def check(self) -> None:
        """Raise ``LeadershipLost`` unless this process may still write (fencing)."""
        if not self.may_write():
            raise LeadershipLost("the enricher lease may have expired; not writing")

    @property
    def held(self) -> bool:
        """Tell whether this process holds the lock."""
        return self._revision is not None

    async def acquire(self) -> None:
        """Wait until the lock is free (its holder stopped refreshing it) and take it."""
        while True:
            try:
                kv = await self._js.key_value(subjects.BUCKET_ENRICHER_LOCK)
                sent_at = self._clock()
                self._revision = await kv.create(subjects.KEY_ENRICHER_LOCK, self._owner)
                self._lease_from(sent_at)
            except KeyWrongLastSequenceError:
                await asyncio.sleep(self._ttl / 4)
                continue
            except (KeyNotFoundError, KeyDeletedError):
                # The holder's entry expired or was released while we looked: try again now.
                await asyncio.sleep(0.05)
                continue
            except (nats.errors.Error, TimeoutError) as exc:
                # NATS is down or lost the bucket: wait, recreate it, and try again.
                log.warning(
                    "enricher lock unavailable",
                    extra={"event": "enrich.lock_unavailable", "reason": str(exc)},
                )
                await asyncio.sleep(self._ttl / 4)
                with contextlib.suppress(nats.errors.Error, TimeoutError):
                    await bus.ensure_bucket(
                        self._js,
                        subjects.BUCKET_ENRICHER_LOCK,
                        replicas=self._replicas,
                        ttl=self._ttl,
                    )
                continue
            log.info("enricher is active", extra={"event": "enrich.lock_acquired"})
            return

    async def refresh(self) -> None:
        """Extend the lock; raise ``LeadershipLost`` when someone else took it or it is gone."""
        try:
            kv = await self._js.key_value(subjects.BUCKET_ENRICHER_LOCK)
        except BucketNotFoundError as exc:
            # NATS lost its store: nobody holds the lock now; compete for it again.
            self._revision = None
            raise LeadershipLost("the enricher lock bucket is gone") from exc
        try:
            sent_at = self._clock()
            self._revision = await kv.update(
                subjects.KEY_ENRICHER_LOCK, self._owner, last=self._revision
            )
            self._lease_from(sent_at)
        except KeyWrongLastSequenceError as exc:
            self._revision = None
            raise LeadershipLost("the enricher lock was taken over") from exc

    async def release(self) -> None:
        """Give the lock up so a standby takes over at once."""
        if self._revision is None:
            return
        kv = await self._js.key_value(subjects.BUCKET_ENRICHER_LOCK)
        with contextlib.suppress(KeyWrongLastSequenceError):
            await kv.delete(subjects.KEY_ENRICHER_LOCK, last=self._revision)
        self._revision = None
