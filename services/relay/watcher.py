"""The built-in watcher: Consul blocking queries, following Consul's index rules."""

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats.errors

from contracts.events import ConsulChange
from services.bus import BusError, MessageTooLarge
from services.consul import ConsulACLDenied, ConsulClient, ConsulError, ConsulResponse
from services.relay.payloads import BadWatchPayload, make_change

log = logging.getLogger("nodeview.relay")

PUBLISH_ERRORS = (BusError, nats.errors.Error, OSError, TimeoutError)
"""Errors of a publish after which the same answer is fetched and published again."""

Fetch = Callable[[int, float], Awaitable[ConsulResponse]]
Publish = Callable[[ConsulChange], Awaitable[object]]
RequestResync = Callable[[str], Awaitable[None]]


def next_index(previous: int, returned: int | None) -> int:
    """Apply Consul's rules to the index of an answer: reset when it went backwards, never 0."""
    if returned is None:
        return 0
    if returned < previous:
        return 0
    return max(returned, 1)


@dataclass(frozen=True)
class Watch:
    """One blocking-query loop: what to read and how to label its changes."""

    watch_type: str
    fetch: Fetch
    key: str | None = None
    opaque_index: bool = False
    """The index only tells answers apart (user events): never "backwards", never reset."""
    datacenter: str | None = None
    """The datacenter queried (``CONSUL_DATACENTER``), named in the changes; None: the local one."""


def standard_watches(
    consul: ConsulClient, sites_key: str, event_name: str, datacenter: str | None = None
) -> list[Watch]:
    """Return the watches of DESIGN: nodes, services, Serf health, the sites key, user events."""
    watches = [
        Watch("nodes", lambda i, w: consul.catalog_nodes(index=i, wait=w)),
        Watch("services", lambda i, w: consul.catalog_services(index=i, wait=w)),
        Watch("checks", lambda i, w: consul.serf_health(index=i, wait=w)),
        Watch("key", lambda i, w: consul.kv_get(sites_key, index=i, wait=w), key=sites_key),
        Watch(
            "event",
            lambda i, w: consul.event_list(event_name, index=i, wait=w),
            key=event_name,
            opaque_index=True,
        ),
    ]
    return [dataclasses.replace(watch, datacenter=datacenter) for watch in watches]


@dataclass
class WatchStats:
    """Counters of one watch loop, for tests and the health page."""

    requests: int = 0
    published: int = 0
    errors: int = 0
    resets: int = 0
    denied: bool = False
    """The last query was refused by Consul's ACLs (403): no change can come through."""


async def run_watch(
    watch: Watch,
    publish: Publish,
    *,
    request_resync: RequestResync | None = None,
    wait: float,
    min_interval: float,
    backoff_max: float,
    stats: WatchStats,
    stop: asyncio.Event,
) -> None:
    """Run one watch until ``stop``: publish on the first answer and whenever the index moves."""
    index = 0
    published_index: int | None = None
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        stats.requests += 1
        try:
            response = await watch.fetch(index, wait)
        except ConsulError as exc:
            stats.errors += 1
            stats.denied = isinstance(exc, ConsulACLDenied)
            failures += 1
            delay = min(backoff_max, 0.5 * 2 ** min(failures, 10)) * (0.5 + random.random() / 2)
            log.warning(
                "watch query failed",
                extra={
                    "event": "relay.watch_failed",
                    "type": watch.watch_type,
                    "reason": str(exc),
                    "retry_in_s": round(delay, 2),
                },
            )
            await _sleep_or_stop(stop, delay)
            continue
        if response.index is None:
            # Without X-Consul-Index every query would return at once: back off instead.
            stats.errors += 1
            failures += 1
            log.warning(
                "answer without X-Consul-Index",
                extra={"event": "relay.no_index", "type": watch.watch_type},
            )
            await _sleep_or_stop(stop, min(backoff_max, 0.5 * 2 ** min(failures, 10)))
            continue
        failures = 0
        stats.denied = False
        if watch.opaque_index:
            # /v1/event/list derives its index from event IDs: it has no order, only identity.
            new_index = max(response.index, 1)
        else:
            new_index = next_index(index, response.index)
        if not watch.opaque_index and response.index < index:
            stats.resets += 1
            log.warning(
                "consul index went backwards; resetting",
                extra={
                    "event": "relay.index_reset",
                    "type": watch.watch_type,
                    "previous": index,
                    "returned": response.index,
                },
            )
        if response.index != published_index and new_index:
            try:
                change = make_change(
                    watch.watch_type,
                    response.data,
                    response.index,
                    "watcher",
                    key=watch.key,
                    datacenter=watch.datacenter,
                    filtered_by_acls=response.filtered_by_acls,
                )
                await publish(change)
                stats.published += 1
                published_index = response.index
            except MessageTooLarge as exc:
                # Retrying cannot help: count it, say it loudly, and follow the next change.
                stats.errors += 1
                log.error(  # noqa: TRY400 - the message says all; no traceback needed
                    "change too large to publish",
                    extra={
                        "event": "relay.too_large",
                        "type": watch.watch_type,
                        "reason": str(exc),
                    },
                )
                published_index = response.index
                await _ask_resync(request_resync, watch, "too large to publish")
            except PUBLISH_ERRORS as exc:
                stats.errors += 1
                log.warning(
                    "publish failed; will query again",
                    extra={
                        "event": "relay.publish_failed",
                        "type": watch.watch_type,
                        "reason": str(exc),
                    },
                )
                await _sleep_or_stop(stop, min(backoff_max, 1.0))
                continue
            except BadWatchPayload as exc:
                stats.errors += 1
                log.warning(
                    "watch answer rejected",
                    extra={
                        "event": "relay.bad_answer",
                        "type": watch.watch_type,
                        "reason": str(exc),
                    },
                )
                # Once per answer: the same rejected answer asks for no second resync.
                published_index = response.index
                await _ask_resync(request_resync, watch, "answer rejected")
        index = new_index
        elapsed = time.monotonic() - started
        if elapsed < min_interval:
            await _sleep_or_stop(stop, min_interval - elapsed)


async def supervise_watch(
    watch: Watch,
    publish: Publish,
    *,
    request_resync: RequestResync | None = None,
    wait: float,
    min_interval: float,
    backoff_max: float,
    stats: WatchStats,
    stop: asyncio.Event,
) -> None:
    """Run a watch loop and start it again, after a pause, if it ever fails unexpectedly."""
    while not stop.is_set():
        try:
            await run_watch(
                watch,
                publish,
                request_resync=request_resync,
                wait=wait,
                min_interval=min_interval,
                backoff_max=backoff_max,
                stats=stats,
                stop=stop,
            )
        except Exception:  # a watch must never die silently: it is logged and restarted
            stats.errors += 1
            log.exception(
                "watch loop failed; restarting",
                extra={"event": "relay.watch_crashed", "type": watch.watch_type},
            )
            await _sleep_or_stop(stop, backoff_max / 10)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return


async def _ask_resync(request_resync: RequestResync | None, watch: Watch, what: str) -> None:
    """An answer that was not passed on is a gap: ask the enricher to read Consul whole."""
    if request_resync is None:
        return
    try:
        await request_resync(f"relay: {watch.watch_type} {what}")
    except PUBLISH_ERRORS as exc:
        log.warning(
            "resync request failed",
            extra={"event": "relay.resync_failed", "type": watch.watch_type, "reason": str(exc)},
        )
