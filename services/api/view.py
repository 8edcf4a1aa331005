"""The in-memory view of one API replica: apply KV updates, build bodies once per change."""

import gzip
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from contracts import subjects
from contracts.views import Heartbeat, NodeEntry, NodeView, ViewMeta
from services import metrics
from services.api.filters import MetaFilter, meta_matches
from services.api.prometheus_sd import in_site, node_groups

_ENTRY_FIELDS = tuple(NodeEntry.model_fields)

log = logging.getLogger("nodeview.api")


@dataclass(frozen=True)
class Delta:
    """What one KV update changed, as sent to SSE subscribers."""

    kind: Literal["node", "node_deleted", "meta", "heartbeat", "none"]
    data: dict[str, Any] = field(default_factory=dict)


MAX_CACHED_BODIES = 64
"""Filter combinations whose bodies are kept until the next change (least recently used go)."""

GZIP_LEVEL = 1
"""Fast compression: the body is compressed again after every change, on the event loop."""


@dataclass
class Body:
    """A serialised response with its ETag; the gzip form is made once, on first demand."""

    content: bytes
    etag: str
    _gzipped: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def gzipped(self) -> bytes:
        """The content compressed with gzip (deterministic: no timestamp)."""
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.content, compresslevel=GZIP_LEVEL, mtime=0)
        return self._gzipped


def entry_of(view: NodeView) -> dict[str, Any]:
    """Return the ``/api/v1/nodes`` entry of a view, in JSON-ready form."""
    data = view.model_dump(mode="json", include=set(_ENTRY_FIELDS))
    return {name: data[name] for name in _ENTRY_FIELDS}


class ViewState:
    """Nodes, meta and heartbeat of one replica; bodies are cached until the next change."""

    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self.nodes: dict[str, NodeView] = {}
        self.by_addr: dict[str, NodeView] = {}
        self.meta: ViewMeta | None = None
        self.heartbeat: Heartbeat | None = None
        self._entries: dict[str, dict[str, Any]] = {}
        self._sd_parts: dict[str, tuple[tuple[str, bytes], ...]] = {}
        """Node → its serialised discovery groups with their service names, made on demand:
        a change re-serialises one node's instances, not every instance of the cluster."""
        self.gauges = metrics.NodeGauges()
        """Counts behind the node gauges, kept in step with each change."""
        self._bodies: OrderedDict[tuple[object, ...], Body] = OrderedDict()
        """Bodies by what they answer (endpoint and filters), least recently used first."""

    def apply(self, key: str, value: bytes, deleted: bool) -> Delta:
        """Apply one KV entry (or its deletion) and say what changed."""
        try:
            if key == subjects.KEY_HEARTBEAT:
                if not deleted:
                    old_heartbeat = self.heartbeat
                    self.heartbeat = Heartbeat.model_validate_json(value)
                    if old_heartbeat is None or old_heartbeat.degraded != self.heartbeat.degraded:
                        self._bodies.clear()
                return Delta("heartbeat")
            if key == subjects.KEY_META:
                if deleted:
                    return Delta("none")
                self.meta = ViewMeta.model_validate_json(value)
                self._bodies.clear()
                return Delta("meta", {"generation": self.meta.generation})
            node = subjects.node_from_key(key)
            if node is None:
                return Delta("none")
            if deleted:
                return self._delete(node)
            view = NodeView.model_validate_json(value)
        except ValidationError as exc:
            # A view this release cannot read (a newer enricher's after a rollback, a damaged
            # entry) is skipped, never silently: the rest of the view still serves.
            kind = "node" if subjects.node_from_key(key) is not None else key
            metrics.VIEW_ENTRIES_REFUSED.labels(kind).inc()
            log.warning(
                "view entry refused",
                extra={"event": "api.entry_refused", "key": key[:200], "reason": str(exc)[:300]},
            )
            return Delta("none")
        old = self.nodes.get(view.node)
        self.nodes[view.node] = view
        self.gauges.replace(old, view)
        if old is not None:
            self._forget_addr(old)
        self.by_addr[view.addr] = view
        entry = entry_of(view)
        self._entries[view.node] = entry
        self._sd_parts.pop(view.node, None)
        self._bodies.clear()
        return Delta("node", entry)

    def _delete(self, node: str) -> Delta:
        old = self.nodes.pop(node, None)
        self._entries.pop(node, None)
        self._sd_parts.pop(node, None)
        if old is None:
            return Delta("none")
        self.gauges.replace(old, None)
        self._forget_addr(old)
        self._bodies.clear()
        return Delta("node_deleted", {"node": old.node, "addr": old.addr})

    def _forget_addr(self, old: NodeView) -> None:
        """Drop ``old`` from the address index, falling back to another node on that address."""
        if self.by_addr.get(old.addr) is not old:
            return
        del self.by_addr[old.addr]
        for other in self.nodes.values():
            if other.addr == old.addr:
                self.by_addr[old.addr] = other
                break

    def is_stale(self, now: datetime) -> bool:
        """Tell whether the enricher stopped beating or stopped making progress for too long.

        A beating enricher that cannot finish its work (a resync pending or failing) says so in
        ``behind_since``: its view is as stale as a silent one's once that is old enough.
        """
        if self.heartbeat is None:
            return True
        if (now - self.heartbeat.at).total_seconds() > self.stale_after:
            return True
        behind = self.heartbeat.behind_since
        return behind is not None and (now - behind).total_seconds() > self.stale_after

    def degraded_total(self) -> int:
        """How many items the active enricher cannot vouch for (all of them, not only listed)."""
        if self.heartbeat is None:
            return 0
        return max(self.heartbeat.degraded_total, len(self.heartbeat.degraded))

    def degraded(self) -> list[dict[str, Any]]:
        """What the active enricher cannot vouch for now (JSON-ready), from its heartbeat."""
        if self.heartbeat is None:
            return []
        return [item.model_dump(mode="json") for item in self.heartbeat.degraded]

    def view_age(self, now: datetime) -> float | None:
        """Return the age of the enricher's heartbeat in seconds."""
        return None if self.heartbeat is None else (now - self.heartbeat.at).total_seconds()

    def nodes_body(
        self,
        now: datetime,
        site: str | None = None,
        status: str | None = None,
        meta: MetaFilter = (),
    ) -> Body:
        """Return the ``/api/v1/nodes`` body, built once per change (and per filter)."""
        stale = self.is_stale(now)
        return self._cached(
            ("nodes", site, status, meta, stale), lambda: self._build(site, status, meta, stale)
        )

    def sd_body(self, service: str | None = None, site: str | None = None) -> Body:
        """Return the Prometheus HTTP service discovery body, built once per change (and filter)."""
        return self._cached(("sd", service, site), lambda: self._build_sd(service, site))

    def _build_sd(self, service: str | None, site: str | None) -> Body:
        parts: list[bytes] = []
        for name in sorted(self.nodes):
            view = self.nodes[name]
            if not in_site(view, site):
                continue
            node_parts = self._sd_parts.get(name)
            if node_parts is None:
                node_parts = tuple((n, _json(group)) for n, group in node_groups(view))
                self._sd_parts[name] = node_parts
            parts.extend(part for n, part in node_parts if service is None or n == service)
        return _body_of(b"[" + b",".join(parts) + b"]")

    def _cached(self, cache_key: tuple[object, ...], build: Callable[[], Body]) -> Body:
        body = self._bodies.get(cache_key)
        if body is None:
            body = build()
            self._bodies[cache_key] = body
            if len(self._bodies) > MAX_CACHED_BODIES:
                self._bodies.popitem(last=False)
        else:
            self._bodies.move_to_end(cache_key)
        return body

    def _build(
        self, site: str | None, status: str | None, node_meta: MetaFilter, stale: bool
    ) -> Body:
        entries = [
            entry
            for entry in (self._entries[name] for name in sorted(self._entries))
            if (site is None or site in (entry["site_name"], entry["site_code"]))
            and (status is None or entry["status"] == status)
            and meta_matches(entry["meta"], node_meta)
        ]
        meta = self.meta
        document = {
            "success": True,
            "data": entries,
            "total": len(entries),
            "main_server": meta.main_server if meta else "",
            "active_server": meta.active_server if meta else "",
            "generation": meta.generation if meta else 0,
            "synced_at": meta.synced_at.isoformat() if meta else None,
            "stale": stale,
            "degraded": self.degraded(),
        }
        return _body(document)


def _json(document: object) -> bytes:
    """Compact JSON bytes of a document."""
    return json.dumps(document, separators=(",", ":")).encode()


def _body(document: object) -> Body:
    """Serialise a JSON document once, with a strong ETag from its bytes."""
    return _body_of(_json(document))


def _body_of(content: bytes) -> Body:
    """A body of serialised JSON, with a strong ETag from its bytes."""
    return Body(content=content, etag='"' + hashlib.sha256(content).hexdigest()[:32] + '"')
