"""The enricher's work: apply change batches and resyncs, read Consul, write changed views."""

import asyncio
import functools
import logging
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from contracts import subjects
from contracts.events import ConsulChange, ConsulDelta, utc_now
from contracts.views import NodeView, ViewMeta
from services import metrics
from services.consul import (
    ConsulError,
    ConsulHTTPError,
    ConsulResponse,
)
from services.enricher import degraded, reads
from services.enricher.degraded import Degradation
from services.enricher.deltas import LIST_ITEMS, apply_delta
from services.enricher.inventory import (
    BadConsulPayload,
    Fresh,
    Inventory,
    Member,
    build_view,
    drop_names,
    parse_catalog_nodes,
    parse_members,
    parse_serf_health,
    parse_service_tags,
    plan_moves,
    replace_service,
    same_view,
)
from services.enricher.planner import (
    EnricherState,
    ReadPlan,
    ResyncReason,
    Settings,
    apply_change,
    coalesce,
)
from services.enricher.sites import BadSitesDocument, SitesMap, decode_kv_value, parse_sites
from services.enricher.store import ViewStore
from services.enricher.summary import (
    NodeDumps,
    Refusals,
    ServiceSummaries,
    Summaries,
    apply_node_dump,
)
from services.enricher.writes import bounded_all
from services.telemetry import inject_headers, tracer

log = logging.getLogger("nodeview.enricher")

YIELD_EVERY_VIEWS = 500
"""Views built between two yields to the event loop during one commit."""

RECENT_RESYNC_IDS = 32
"""Completed resync request ids kept in the meta entry, for flush waiters."""

ENRICHER_READ = "enricher-read"
"""Observer name of a list the enricher read itself (its index order is Consul's)."""


class ResyncFailed(Exception):
    """A full resync could not read what it needs; the view was left as it was."""

    reason: ResyncReason | None = None
    """Why that resync was run."""


@dataclass(frozen=True)
class EngineSettings:
    """Settings of the enricher's core work."""

    sites_key: str
    resync_event: str
    unmapped_label: str
    datacenter: str | None = None
    """``CONSUL_DATACENTER``: another datacenter than the agent's, so its members do not apply."""


@dataclass
class CommitResult:
    """What one commit wrote."""

    written: int = 0
    deleted: int = 0
    generation: int = 0


@dataclass
class BatchResult:
    """Outcome of one batch of changes."""

    outcomes: Counter[str] = field(default_factory=Counter)
    commit: CommitResult = field(default_factory=CommitResult)
    resync: ResyncReason | None = None


def _observed_header(observed: datetime | None) -> dict[str, str]:
    if observed is None:
        return {}
    return {subjects.HEADER_OBSERVED_AT: f"{observed.timestamp():.6f}"}


async def _not_read() -> Summaries:
    """Stands in for the summary read of a batch that needs none (its result is not used)."""
    return None


class Engine:
    """Owns the enricher state; every entry point is serialised by one lock."""

    def __init__(
        self, consul: reads.ConsulReads, store: ViewStore, settings: EngineSettings
    ) -> None:
        self._consul = consul
        self._store = store
        self._settings = settings
        self._plan_settings = Settings(
            sites_key=settings.sites_key,
            resync_event=settings.resync_event,
            datacenter=settings.datacenter,
        )
        self.state = EnricherState()
        self.published: dict[str, NodeView] = {}
        self._gauges = metrics.NodeGauges()
        self.meta = ViewMeta(generation=0, synced_at=utc_now())
        self.pending_nodes: set[str] = set()
        self.pending_services: set[str] = set()
        self.pending_members = False
        """The last members read failed: statuses may be stale until a retry succeeds."""
        self.pending_moved = False
        """The last read of where instances moved failed: counts may be stale until a retry."""
        refusals = Refusals()
        self._summaries = ServiceSummaries(consul, refusals)
        self._dumps = NodeDumps(consul, refusals)
        self.members_read_at = -math.inf
        """When (monotonic) the members list was last read whole, by any path."""
        self.unwritten: set[str] = set()
        self.resynced = False
        self.degradation = Degradation()
        self._rebase_pending = False
        """A resync after an index reset failed: the next one that succeeds rebases."""
        self._lock = asyncio.Lock()

    def restore(self, views: Mapping[str, NodeView], meta: ViewMeta | None) -> None:
        """Start from what an earlier enricher left in the bucket, so only changes are written."""
        self.published = dict(views)
        self._gauges = metrics.NodeGauges.of(self.published.values())
        if meta is not None:
            self.meta = meta
            self.state.last_event_ltime = meta.last_event_ltime

    async def handle(
        self,
        changes: Sequence[ConsulChange | ConsulDelta],
        observed_floor: datetime | None = None,
    ) -> BatchResult:
        """Apply one burst of changes: coalesce, apply carried state, read the rest, commit."""
        async with self._lock:
            result = BatchResult()
            plan = ReadPlan()
            whole = [c for c in changes if isinstance(c, ConsulChange)]
            kept: list[ConsulChange | ConsulDelta] = [*coalesce(whole)]
            kept += [c for c in changes if isinstance(c, ConsulDelta)]
            for change in kept:
                step = ReadPlan()
                if isinstance(change, ConsulDelta):
                    outcome = apply_delta(self.state, change, self._plan_settings, step)
                else:
                    outcome = apply_change(self.state, change, self._plan_settings, step)
                plan.merge(step)
                result.outcomes[f"{change.watch_type}:{outcome}"] += 1
                metrics.EVENTS.labels(change.watch_type, outcome).inc()
                if outcome == "bad_payload":
                    log.warning(
                        "bad payload kept out of the view",
                        extra={
                            "event": "enrich.bad_payload",
                            "type": change.watch_type,
                            "consul_index": change.consul_index,
                        },
                    )
            duplicates = len(changes) - len(kept)
            if duplicates:
                result.outcomes["coalesced"] += duplicates
                metrics.EVENTS.labels("batch", "coalesced").inc(duplicates)
            observed = min(
                (t for t in (*(c.observed_at for c in changes), observed_floor) if t is not None),
                default=None,
            )
            trace = _observed_header(observed)
            self._record_degradation(plan)
            if plan.full_resync:
                result.resync = plan.full_resync
                try:
                    result.commit = await self._resync_locked(
                        plan.full_resync, (), trace, index_reset=plan.index_reset
                    )
                except ResyncFailed:
                    # What the events carried is still applied; the caller retries the resync.
                    self._rebase_pending |= plan.index_reset
                    await self._execute(plan)
                    result.commit = await self._commit(plan.dirty, plan.all_dirty, trace)
                    raise
                return result
            await self._execute(plan)
            result.commit = await self._commit(plan.dirty, plan.all_dirty, trace)
            return result

    def _record_degradation(self, plan: ReadPlan) -> None:
        """Open or close the degraded items a batch's answers showed."""
        for item, reason in plan.degraded.items():
            self.degradation.mark(item, reason)
        for item in plan.sound:
            self.degradation.clear(item)

    async def resync(
        self,
        reason: ResyncReason,
        request_ids: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        *,
        detail: str = "",
    ) -> CommitResult:
        """Read the whole inventory from Consul and write every view that differs."""
        async with self._lock:
            return await self._resync_locked(reason, request_ids, headers or {}, detail=detail)

    def has_pending(self) -> bool:
        """Tell whether some read failed and waits to be tried again."""
        return bool(
            self.pending_nodes
            or self.pending_services
            or self.pending_members
            or self.pending_moved
        )

    async def retry_pending(self) -> CommitResult | None:
        """Read again the nodes and services whose last read failed."""
        async with self._lock:
            if not self.has_pending():
                return None
            plan = ReadPlan(
                members=self.pending_members,
                services_moved=self.pending_moved,
                node_services=set(self.pending_nodes),
                service_names=set(self.pending_services),
            )
            self.pending_nodes.clear()
            self.pending_services.clear()
            await self._execute(plan)
            return await self._commit(plan.dirty, False, {})

    def members_due(self, every: float, now: float) -> bool:
        """Tell whether the members list was last read ``every`` seconds ago or more (0: never)."""
        return every > 0 and now - self.members_read_at >= every

    async def refresh_members(self) -> CommitResult | None:
        """Read the members list again: Serf membership has no index to watch.

        A node that joined and left between two answers of every list, or a left member that
        Consul reaped, shows only there. ``None`` when this Consul gives no members.
        """
        async with self._lock:
            if self.state.inventory.members is None:
                self.members_read_at = time.monotonic()
                return None
            plan = ReadPlan(members=True)
            await self._execute(plan)
            return await self._commit(plan.dirty, False, {})

    async def _execute(self, plan: ReadPlan) -> None:
        inv = self.state.inventory
        for watch_type in sorted(plan.reread):
            await self._reread(watch_type, plan)
        node_targets = [(n, self._addr(n)) for n in sorted(plan.node_services) if inv.knows(n)]
        # Every read runs at once: a batch waits for one round trip, plus one for the nodes
        # Consul's summary shows gained an instance.
        _, node_results, service_results, summaries = await asyncio.gather(
            self._read_members(plan) if plan.members else asyncio.sleep(0),
            reads.read_nodes(self._consul, node_targets),
            reads.read_services(self._consul, sorted(plan.service_names)),
            self._read_summaries() if plan.services_moved else _not_read(),
        )
        read = {node for node, _ in node_targets}
        late = [(n, self._addr(n)) for n in sorted(plan.node_services - read) if inv.knows(n)]
        if late:
            # Members the members read just found.
            node_results += await reads.read_nodes(self._consul, late)
        self._apply_node_reads(node_results, plan)
        for service_read in service_results:
            plan.dirty |= self._apply_service_read(inv, service_read)
        if plan.services_moved:
            # Only what was read: a failed read says nothing newer than the summary.
            fresh = Fresh(
                frozenset(r.node for r in node_results if r.ok),
                frozenset(r.name for r in service_results if r.instances is not None),
            )
            await self._apply_moves(summaries, plan, fresh)

    async def _reread(self, watch_type: str, plan: ReadPlan) -> None:
        """Read one list whole and apply it like a watch answer (its reads join ``plan``)."""
        fetch = {
            "nodes": self._consul.catalog_nodes,
            "checks": self._consul.serf_health,
            "services": self._consul.catalog_services,
        }[watch_type]
        try:
            response = await fetch()
        except ConsulError as exc:
            # Shown as degraded: the enricher reads Consul whole again, with back-off, until
            # the list is sound.
            kind = reads.error_kind(exc)
            self.degradation.mark(LIST_ITEMS[watch_type], reads.public_reason(kind))
            log.warning(
                "list read failed",
                extra={"event": "enrich.list_read_failed", "type": watch_type, "reason": str(exc)},
            )
            return
        answer = ConsulChange(
            watch_type=watch_type,
            consul_index=response.index or 0,
            datacenter=self._settings.datacenter,
            source="watcher",
            relay_id=ENRICHER_READ,
            payload=response.data,
            filtered_by_acls=response.filtered_by_acls,
        )
        step = ReadPlan()
        apply_change(self.state, answer, self._plan_settings, step)
        step.reread.clear()
        plan.merge(step)

    def _apply_node_reads(self, node_reads: Sequence[reads.NodeRead], plan: ReadPlan) -> None:
        """Apply node reads; a failed one marks the node and is read again later."""
        inv = self.state.inventory
        for node_read in node_reads:
            plan.dirty.add(node_read.node)
            if node_read.services is not None:
                inv.services[node_read.node] = node_read.services
                inv.failures.pop(node_read.node, None)
            else:
                inv.failures[node_read.node] = node_read.reason or "error"
                self.pending_nodes.add(node_read.node)

    async def _read_summaries(self) -> Summaries:
        """Consul's service summary, ``None`` while it is refused, or why the read failed."""
        try:
            return await self._summaries.read()
        except (ConsulError, BadConsulPayload) as exc:
            return exc

    async def _apply_moves(self, summaries: Summaries, plan: ReadPlan, fresh: Fresh) -> None:
        """Drop what the summary shows gone, read the nodes that gained, then unsure names.

        A Consul that refuses the internal summary is read name by name instead (counted and
        logged), less often tried again; any other failure marks the view degraded and is
        retried until it succeeds.
        """
        inv = self.state.inventory
        if isinstance(summaries, ConsulError | BadConsulPayload):
            self._moved_read_failed(summaries)
            return
        self.pending_moved = False
        self.degradation.clear(degraded.SERVICE_INSTANCES)
        if summaries is None:
            await self._read_every_name(plan, fresh.names)
            return
        moves = plan_moves(inv.services, summaries, fresh)
        for node, names in moves.drop.items():
            drop_names(inv.services[node], names)
            plan.dirty.add(node)
        touched = set(moves.drop)
        gained = [n for n in moves.read if inv.knows(n)]
        if gained:
            self._apply_node_reads(
                await reads.read_nodes(self._consul, [(n, self._addr(n)) for n in gained]), plan
            )
            touched.update(gained)
        unexplained = moves.unexplained(inv.services, touched)
        for service_read in await reads.read_services(self._consul, sorted(unexplained)):
            plan.dirty |= self._apply_service_read(inv, service_read)

    async def _read_every_name(self, plan: ReadPlan, read: frozenset[str]) -> None:
        """Read every service name but those just ``read``: the public way to find moves."""
        inv = self.state.inventory
        names = sorted(inv.service_tags.keys() - read)
        for service_read in await reads.read_services(self._consul, names):
            plan.dirty |= self._apply_service_read(inv, service_read)

    def _moved_read_failed(self, exc: Exception) -> None:
        kind = reads.error_kind(exc)
        self.pending_moved = True
        self.degradation.mark(degraded.SERVICE_INSTANCES, reads.public_reason(kind))
        log.warning(
            "service summaries read failed; instance counts kept until a retry succeeds",
            extra={"event": "enrich.summaries_failed", "reason": str(exc), "error_type": kind},
        )

    def _apply_service_read(self, inv: Inventory, service_read: reads.ServiceRead) -> set[str]:
        """Apply one service read; a failure keeps the instances known and marks their nodes."""
        name = service_read.name
        holders = {
            n for n, svcs in inv.services.items() if any(i.name == name for i in svcs.values())
        }
        if service_read.instances is None:
            inv.service_failures[name] = service_read.reason or "error"
            self.pending_services.add(name)
            self.degradation.mark(degraded.service_item(name), service_read.reason or "error")
            for node in sorted(holders):
                metrics.CONSUL_NODE_ENRICH_FAILURES.labels(
                    node, service_read.error_type or "error"
                ).inc()
                log.warning(
                    "node services read failed",
                    extra={
                        "event": "enrich.node_failed",
                        "node": node,
                        "addr": self._addr(node),
                        "reason": f"service {name}: {service_read.reason}",
                        "error_type": service_read.error_type,
                    },
                )
            return holders
        inv.service_failures.pop(name, None)
        self.degradation.clear(degraded.service_item(name))
        return holders | replace_service(inv.services, name, service_read.instances)

    async def _read_members(self, plan: ReadPlan) -> None:
        inv = self.state.inventory
        try:
            members = await self._members_or_none()
        except (ConsulError, BadConsulPayload) as exc:
            log.warning(
                "members read failed; statuses kept until a retry succeeds",
                extra={"event": "enrich.members_failed", "reason": str(exc)},
            )
            self.pending_members = True
            self.degradation.mark(
                degraded.MEMBERS, "the members read failed; node statuses may be out of date"
            )
            return
        if members is not None and not members and inv.members:
            # An agent always lists itself: an empty answer is a token that lost its rights.
            log.warning(
                "members read answered an empty list; statuses kept",
                extra={"event": "enrich.members_failed", "reason": "empty list"},
            )
            self.pending_members = True
            self.degradation.mark(degraded.MEMBERS, degraded.EMPTY_ANSWER)
            return
        self.pending_members = False
        self.degradation.clear(degraded.MEMBERS)
        if members is None:
            # Status now comes from serfHealth: every view may change.
            inv.members = None
            plan.all_dirty = True
            return
        old = inv.members or {}
        plan.dirty |= {n for n in members.keys() | old.keys() if members.get(n) != old.get(n)}
        plan.node_services |= {n for n in members.keys() - old.keys() if n not in inv.services}
        inv.members = members

    def _addr(self, node: str) -> str:
        inv = self.state.inventory
        member = inv.members.get(node) if inv.members is not None else None
        if member is not None:
            return member.addr
        catalog = inv.catalog.get(node)
        return catalog.addr if catalog else ""

    async def _resync_locked(
        self,
        reason: ResyncReason,
        request_ids: Sequence[str],
        headers: Mapping[str, str],
        *,
        index_reset: bool = False,
        detail: str = "",
    ) -> CommitResult:
        started = time.perf_counter()
        with tracer().start_as_current_span(
            "nodeview.resync",
            attributes={"nodeview.resync.reason": reason.value, "nodeview.resync.detail": detail},
        ):
            try:
                result = await self._resync_reads(reason, request_ids, headers, index_reset)
            except ResyncFailed as exc:
                exc.reason = reason
                metrics.RESYNCS.labels(reason.value, "failed").inc()
                raise
        duration = time.perf_counter() - started
        metrics.RESYNCS.labels(reason.value, "ok").inc()
        metrics.RESYNC_DURATION.observe(duration)
        log.info(
            "resync done",
            extra={
                "event": "enrich.resync",
                "reason": reason.value,
                "detail": detail or None,
                "nodes": len(self.published),
                "written": result.written,
                "deleted": result.deleted,
                "duration_ms": round(duration * 1000, 1),
                "generation": result.generation,
            },
        )
        return result

    async def _resync_reads(
        self,
        reason: ResyncReason,
        request_ids: Sequence[str],
        headers: Mapping[str, str],
        index_reset: bool,
    ) -> CommitResult:
        old = self.state.inventory
        try:
            members_read, nodes, services, health, kv, dump = await asyncio.gather(
                self._members_or_none(),
                self._consul.catalog_nodes(),
                self._consul.catalog_services(),
                self._consul.serf_health(),
                self._sites_or_none(),
                self._dumps.read_or_none(),
            )
            inv = Inventory(
                members=members_read,
                catalog=parse_catalog_nodes(nodes.data),
                service_tags=parse_service_tags(services.data),
                serf_health=parse_serf_health(health.data),
            )
        except (ConsulError, BadConsulPayload) as exc:
            log.warning(
                "resync failed; view kept",
                extra={
                    "event": "enrich.resync_failed",
                    "reason": str(exc),
                    "trigger": reason.value,
                },
            )
            raise ResyncFailed(reads.public_reason(reads.error_kind(exc))) from exc
        if not inv.node_names() or (old.service_tags and not inv.service_tags):
            # A Consul cluster always has its servers as nodes, and they run ``consul``: an
            # empty answer means an ACL filtered everything out. Keep the view.
            log.warning(
                "resync refused an empty list; view kept",
                extra={"event": "enrich.resync_failed", "reason": "empty list"},
            )
            raise ResyncFailed(degraded.EMPTY_ANSWER)
        if nodes.filtered_by_acls:
            # Nodes the token may not read are left out, not gone.
            for name, catalog_node in old.catalog.items():
                inv.catalog.setdefault(name, catalog_node)
        if services.filtered_by_acls:
            for name, tags in old.service_tags.items():
                inv.service_tags.setdefault(name, tags)
        if members_read is not None and not members_read and old.members:
            raise ResyncFailed(degraded.EMPTY_ANSWER)
        if health.filtered_by_acls:
            for name, status in old.serf_health.items():
                inv.serf_health.setdefault(name, status)
        checked = [
            (degraded.NODES_LIST, nodes),
            (degraded.SERVICES_LIST, services),
            (degraded.CHECKS_LIST, health),
        ]
        for item, response in checked:
            if response.filtered_by_acls:
                self.degradation.mark(item, degraded.FILTERED_ANSWER)
            else:
                self.degradation.clear(item)
        if dump is not None:
            # One answer holds every node's instances: no read per service name.
            apply_node_dump(inv, dump)
            for name in inv.service_tags:
                self.degradation.clear(degraded.service_item(name))
            service_reads = []
        else:
            service_reads = await reads.read_services(self._consul, sorted(inv.service_tags))
        failed = {r.name for r in service_reads if r.instances is None}
        for node, node_services in old.services.items():
            # What could not be read again is kept as it was known.
            kept = {sid: i for sid, i in node_services.items() if i.name in failed}
            if kept:
                inv.services.setdefault(node, {}).update(kept)
        for position, service_read in enumerate(service_reads):
            if position and not position % YIELD_EVERY_VIEWS:
                await asyncio.sleep(0)
            if service_read.instances is None:
                self._apply_service_read(inv, service_read)
                continue
            # The inventory is new: each name's instances are added, never replaced.
            inv.service_failures.pop(service_read.name, None)
            self.degradation.clear(degraded.service_item(service_read.name))
            for node, instances in service_read.instances.items():
                inv.services.setdefault(node, {}).update(instances)
        dump_index = dump.index or 0 if dump is not None else 0
        for node in inv.node_names():
            inv.node_index[node] = max(nodes.index or 0, services.index or 0, dump_index)
        if kv is not None:
            self._apply_sites(kv.data)
        self.state.inventory = inv
        self.state.datacenter = next(
            (node.datacenter for node in inv.catalog.values() if node.datacenter), None
        )
        read: dict[tuple[str, str | None], int] = {("checks", None): health.index or 0}
        read[("nodes", None)] = nodes.index or 0
        read[("services", None)] = services.index or 0
        if kv is not None and kv.index is not None:
            read[("key", self._settings.sites_key)] = kv.index
        if index_reset or self._rebase_pending:
            self.state.rebase(read)
            self._rebase_pending = False
        else:
            self.state.settle(read)
            for watch_type, before, after in (
                ("nodes", old.catalog, inv.catalog),
                ("checks", old.serf_health, inv.serf_health),
                ("services", old.service_tags, inv.service_tags),
            ):
                if before:  # a first read changes everything and contradicts nothing
                    self.state.record_changes(watch_type, before, after, read[(watch_type, None)])
        self.pending_nodes.clear()
        self.pending_members = False
        if members_read is not None:
            self.degradation.clear(degraded.MEMBERS)
        self.resynced = True
        return await self._commit(set(), True, headers, resync_ids=tuple(request_ids))

    async def _sites_or_none(self) -> ConsulResponse | None:
        """Read the sites key; on failure keep the last good sites (``None``)."""
        try:
            return await self._consul.kv_get(self._settings.sites_key)
        except ConsulError as exc:
            log.warning(
                "sites read failed; last good sites kept",
                extra={"event": "enrich.sites_read_failed", "reason": str(exc)},
            )
            return None

    async def _members_or_none(self) -> dict[str, Member] | None:
        """Read the members; ``None`` when this Consul does not let us (ACL, no agent API).

        Also ``None`` when serving a named datacenter: the agent lists its own datacenter's
        members only, whatever ``?dc=`` says, so statuses come from that datacenter's serfHealth.
        """
        if self._settings.datacenter is not None:
            return None
        try:
            response = await self._consul.members()
        except ConsulHTTPError as exc:
            if exc.status in reads.REFUSED_STATUSES:
                self.members_read_at = time.monotonic()
                return None
            raise
        members = parse_members(response.data)
        self.members_read_at = time.monotonic()
        return members

    def _apply_sites(self, entry: object) -> None:
        try:
            document = decode_kv_value(entry)
            self.state.sites = SitesMap() if document is None else parse_sites(document)
        except BadSitesDocument as exc:
            metrics.EVENTS.labels("key", "bad_payload").inc()
            log.warning(
                "sites document rejected; last good kept",
                extra={"event": "enrich.sites_invalid", "reason": str(exc)},
            )

    async def _commit(
        self,
        dirty: set[str],
        all_dirty: bool,
        headers: Mapping[str, str],
        *,
        resync_ids: tuple[str, ...] | None = None,
    ) -> CommitResult:
        inv = self.state.inventory
        # Only what changed is looked at (a node gone from Consul is among them): one change
        # costs the same whatever the number of nodes. A resync looks at every node.
        targets = inv.node_names() | self.published.keys() if all_dirty else dirty | self.unwritten
        headers = inject_headers(dict(headers))
        now = utc_now()
        result = CommitResult()
        # Nodes stay "unwritten" until their write succeeds, so a failed batch is not lost.
        self.unwritten |= targets
        views: list[NodeView] = []
        gone: list[str] = []
        for position, node in enumerate(sorted(targets)):
            if position and not position % YIELD_EVERY_VIEWS:
                # A resync builds every view: the heartbeat (the lease) must keep running.
                await asyncio.sleep(0)
            view = build_view(inv, node, self.state.sites, self._settings.unmapped_label, now)
            old = self.published.get(node)
            if view is None and old is not None and self.pending_members:
                # Gone from the catalog, but the members read that would say whether it left
                # failed: it stays as it was (and unwritten) until a retry of that read.
                continue
            if view is None and old is not None:
                gone.append(node)
            elif view is None or (old is not None and same_view(old, view)):
                self.unwritten.discard(node)
            else:
                views.append(view)

        async def put(view: NodeView) -> None:
            await self._store.put_view(view, headers)
            self._gauges.replace(self.published.get(view.node), view)
            self.published[view.node] = view
            self.unwritten.discard(view.node)
            result.written += 1

        async def delete(node: str) -> None:
            await self._store.delete_view(node, headers)
            self._gauges.replace(self.published.pop(node), None)
            self.unwritten.discard(node)
            metrics.forget_node(node)
            result.deleted += 1

        await bounded_all(
            [functools.partial(put, view) for view in views]
            + [functools.partial(delete, node) for node in gone]
        )
        changed = bool(result.written or result.deleted)
        if changed or resync_ids is not None:
            self.meta = ViewMeta(
                generation=self.meta.generation + 1,
                consul_index=max(self.state.seen_index.values(), default=0),
                main_server=self._consul.main_server,
                active_server=self._consul.active_server,
                synced_at=now,
                last_resync_id=resync_ids[-1] if resync_ids else self.meta.last_resync_id,
                recent_resync_ids=(
                    (*self.meta.recent_resync_ids, *resync_ids)[-RECENT_RESYNC_IDS:]
                    if resync_ids
                    else self.meta.recent_resync_ids
                ),
                last_resync_at=now if resync_ids is not None else self.meta.last_resync_at,
                last_resync_changed=(
                    result.written + result.deleted
                    if resync_ids is not None
                    else self.meta.last_resync_changed
                ),
                last_event_ltime=self.state.last_event_ltime,
            )
            await self._store.put_meta(self.meta, headers)
        self._update_gauges()
        result.generation = self.meta.generation
        return result

    def _update_gauges(self) -> None:
        self._gauges.export()
